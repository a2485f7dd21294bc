"""Population stability (PSI) of features and score against the training reference.

:func:`reference_profile` summarises the training rows once (stored with the model, JSON);
:func:`psi_table` compares a scoring frame with it. PSI = sum over bins of
``(actual - expected) * ln(actual / expected)``, shares floored at 1e-4 so empty bins stay
finite. Flags follow the usual reading: ``ok`` below 0.1, ``watch`` from 0.1 to 0.25,
``alert`` from 0.25.

Numeric features: decile edges of the training values (duplicates merged, so a feature
with few distinct values gets fewer bins) plus one bin for missing values. Categorical
features: one bin per training level, one for unseen levels, one for missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

WATCH: float = 0.1
ALERT: float = 0.25
SCORE_KEY = "__score__"
_FLOOR = 1e-4
_OTHER = "__other__"
_MISSING = "__missing__"


def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)
    )


def _as_float(values: Any) -> np.ndarray:
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(v), v, np.nan)


def _numeric_profile(values: Any, bins: int = 10) -> dict[str, Any]:
    v = _as_float(values)
    ok = v[~np.isnan(v)]
    edges = (
        np.unique(np.quantile(ok, np.linspace(0, 1, bins + 1)[1:-1])) if len(ok) else np.array([])
    )
    return {
        "kind": "numeric",
        # the typical value the reason codes compare an account with (NaN: no value)
        "median": float(np.median(ok)) if len(ok) else float("nan"),
        "edges": [float(e) for e in edges],
        "shares": [float(s) for s in _numeric_shares(v, edges)],
    }


def _numeric_counts(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows in each of len(edges)+1 value bins (right-closed inner edges), then the missing
    bin."""
    miss = np.isnan(v)
    idx = np.searchsorted(np.asarray(edges, dtype=float), v[~miss], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return np.append(counts, float(miss.sum()))


def _numeric_shares(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of :func:`_numeric_counts`' bins (all 0 without rows)."""
    return _numeric_counts(v, edges) / max(len(v), 1)


def _categorical_profile(values: pd.Series) -> dict[str, Any]:
    s = values.astype(object)
    n = len(s)
    counts = s[s.notna()].astype(str).value_counts()
    return {
        "kind": "categorical",
        "levels": [str(x) for x in counts.index],
        "shares": [float(c / n) for c in counts.to_numpy()] if n else [],
        "other_share": 0.0,
        "missing_share": float(s.isna().mean()) if n else 0.0,
    }


def _categorical_counts(values: pd.Series, levels: Sequence[str]) -> np.ndarray:
    """Rows per training level, then unseen levels, then missing."""
    s = values.astype(object)
    present = s[s.notna()].astype(str)
    counts = present.value_counts()
    known = np.array([float(counts.get(lv, 0)) for lv in levels], dtype=float)
    other = float(len(present) - known.sum())
    return np.append(known, [other, float(len(s) - len(present))])


def reference_profile(
    frame: pd.DataFrame, *, feature_names: Sequence[str], scores: np.ndarray
) -> dict[str, Any]:
    """Training reference for drift: per-feature bins and shares, and the score's bins.

    ``scores`` are the model's calibrated probabilities on the same rows. The result holds
    only lists, floats and strings (JSON-serialisable) and is stored with the model.
    """
    features: dict[str, Any] = {}
    for name in feature_names:
        col = frame[name]
        is_cat = _is_categorical(col)
        features[name] = _categorical_profile(col) if is_cat else _numeric_profile(col)
    return {
        "n_rows": len(frame),
        "features": features,
        "score": _numeric_profile(np.asarray(scores, dtype=float)),
    }


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), _FLOOR, None)
    a = np.clip(np.asarray(actual, dtype=float), _FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def flag(value: float) -> str:
    """``ok`` (< 0.1), ``watch`` (0.1 to < 0.25) or ``alert`` (>= 0.25)."""
    if value >= ALERT:
        return "alert"
    return "watch" if value >= WATCH else "ok"


def bin_counts(
    profile: dict[str, Any], frame: pd.DataFrame, *, scores: np.ndarray | None = None
) -> dict[str, list[float]]:
    """Rows per reference bin of each profiled feature in ``frame`` (and of ``scores``
    under ``__score__``), in the bins of ``profile``. Counts of disjoint row sets add up
    (partitions of one run); :func:`psi_from_counts` turns their sum into the PSI table, so
    a book's PSI is the same however its rows were split (never an average of PSIs)."""
    out: dict[str, list[float]] = {}
    n = len(frame)
    for name, ref in profile["features"].items():
        col = frame[name] if name in frame.columns else pd.Series([np.nan] * n)
        if ref["kind"] == "numeric":
            counts = _numeric_counts(_as_float(col), np.asarray(ref["edges"], dtype=float))
        else:
            counts = _categorical_counts(col, ref["levels"])
        out[name] = [float(x) for x in counts]
    if scores is not None:
        ref = profile["score"]
        counts = _numeric_counts(_as_float(scores), np.asarray(ref["edges"], dtype=float))
        out[SCORE_KEY] = [float(x) for x in counts]
    return out


def add_counts(*counts: dict[str, list[float]]) -> dict[str, list[float]]:
    """The bin counts of several row sets together (:func:`bin_counts` of each)."""
    total: dict[str, list[float]] = {}
    for c in counts:
        for name, values in c.items():
            have = total.get(name)
            total[name] = (list(values) if have is None
                           else [a + b for a, b in zip(have, values, strict=True)])
    return total


def psi_from_counts(profile: dict[str, Any], counts: dict[str, list[float]]) -> pd.DataFrame:
    """The PSI table (as :func:`psi_table`) of summed bin counts (:func:`bin_counts`)."""
    rows = []
    for name, ref in profile["features"].items():
        if name not in counts:
            continue
        expected = (ref["shares"] if ref["kind"] == "numeric"
                    else [*ref["shares"], ref["other_share"], ref["missing_share"]])
        rows.append((name, psi(expected, _shares(counts[name]))))
    if SCORE_KEY in counts:
        rows.append((SCORE_KEY, psi(profile["score"]["shares"], _shares(counts[SCORE_KEY]))))
    table = pd.DataFrame(rows, columns=["feature", "psi"])
    table["flag"] = [flag(v) for v in table["psi"]]
    return table.sort_values("psi", ascending=False, kind="mergesort").reset_index(drop=True)


def _shares(counts: Sequence[float]) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    n = c.sum()
    return c / n if n else np.zeros(len(c))


def psi_table(
    profile: dict[str, Any], frame: pd.DataFrame, *, scores: np.ndarray | None = None
) -> pd.DataFrame:
    """PSI of each profiled feature present in ``frame`` (and of ``scores`` if given).

    Columns: ``feature`` (``__score__`` for the score), ``psi``, ``flag``; sorted by PSI,
    largest first. A feature missing from ``frame`` is reported as all-missing.
    """
    return psi_from_counts(profile, bin_counts(profile, frame, scores=scores))
