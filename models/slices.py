"""Quality on important slices (issue 19, item 4): the model beside the aging rule per
customer segment, region, customer-size band and tenure band, for the training report
(test period) and the live report (a run's resolved rows) alike.

A slice is one value of one dimension:

- ``segment``: the accounts table's customer segment (``account_segment``);
- ``region``: its region (``account_region``);
- ``size``: the account's open balance at ``as_of`` (dollars) in :data:`SIZE_EDGES` bands;
- ``tenure``: days since the account's first invoice at ``as_of`` (``tenure_days``) in
  :data:`TENURE_EDGES` bands.

Per slice: rows, positives, the model's ROC-AUC and the aging rule's on the same rows,
and ``below_rule`` when the model's is lower. The rule is the aging rule **as served**
(``models.rule``; what the quality gate compares with): its calibrated probability
(``rule_probability``: the training's served calibration of the test period, a run's
served calibration live), or, where the served rule has no probability (thin data) or the
caller knows none, its bare key (``models.evaluate.aging_rule_score``); ``rule_basis``
(``served`` / ``key``) says which, and so does the flagged line. One decision for the
slices and the live table (``models.live``): :func:`rule_auc_score`. A slice with one class
only, or fewer than ``min_rows`` rows, has no AUCs and is never flagged (too few to say).
Pure functions; inputs are not mutated.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.pit.sampling import row_weights
from models.evaluate import aging_rule_score

#: Open-balance band edges, dollars: under 1k, 1k-10k, 10k-100k, 100k and more.
SIZE_EDGES: Final = (1_000.0, 10_000.0, 100_000.0)
SIZE_LABELS: Final = ("under 1k", "1k-10k", "10k-100k", "100k+")
#: Tenure band edges, days since the first invoice: under 6 months, to 2 years, beyond.
TENURE_EDGES: Final = (182.0, 730.0)
TENURE_LABELS: Final = ("under 6 months", "6 months-2 years", "2 years+")
#: The dimensions, in report order.
DIMENSIONS: Final = ("segment", "region", "size", "tenure")
#: Columns of :func:`slice_metrics`.
SLICE_COLUMNS: Final = ("dimension", "value", "n_rows", "n_positive", "auc", "rule_auc",
                        "below_rule", "rule_basis")
#: What a rule figure compares with (``rule_basis``): the aging rule as served (its
#: probability, finite on every row judged) or its bare key (:func:`rule_auc_score`).
RULE_BASES: Final = ("served", "key")
#: How a flagged line names the rule of each ``rule_basis``.
RULE_NAMES: Final = {"served": "the aging rule as served", "key": "the aging rule's key"}
#: Fewest rows for a slice's AUCs.
MIN_ROWS: Final = 30


def slice_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """The slice of each row (one column per :data:`DIMENSIONS`) from ``account_segment``,
    ``account_region``, ``open_balance`` (dollars) and ``tenure_days`` (missing: the value
    ``unknown``)."""
    def band(values: pd.Series, edges: tuple[float, ...], labels: tuple[str, ...]) -> pd.Series:
        v = pd.to_numeric(values, errors="coerce").to_numpy(float)
        out = np.asarray(labels, dtype=object)[np.searchsorted(edges, v, side="right")]
        out[np.isnan(v)] = "unknown"
        return pd.Series(out, index=values.index)

    def text(col: str) -> pd.Series:
        s = rows[col] if col in rows else pd.Series(None, index=rows.index, dtype=object)
        return s.astype(object).where(s.notna(), "unknown").astype(str)

    return pd.DataFrame({
        "segment": text("account_segment"),
        "region": text("account_region"),
        "size": band(rows["open_balance"], SIZE_EDGES, SIZE_LABELS),
        "tenure": band(rows["tenure_days"] if "tenure_days" in rows
                       else pd.Series(np.nan, index=rows.index), TENURE_EDGES, TENURE_LABELS),
    }, index=rows.index)


def rule_auc_score(rows: pd.DataFrame, rule_probability: np.ndarray | None, *,
                   judged: np.ndarray) -> tuple[np.ndarray, str]:
    """The aging rule's score for an AUC beside the model's on ``rows`` (one per row) and
    its ``rule_basis`` (:data:`RULE_BASES`): the served rule's probability (0-1) when known
    (not None) and finite on every ``judged`` row (a bool mask: the rows the AUCs read),
    ``"served"``; else its key (``oldest_dpd`` then ``open_balance``,
    ``models.evaluate.aging_rule_score``), ``"key"``: no served calibration known, or one
    without a probability there (thin data), so the figure is the key's and says so."""
    if rule_probability is not None:
        p = np.asarray(rule_probability, dtype=float)
        if np.isfinite(p[np.asarray(judged, dtype=bool)]).all():
            return p, "served"
    return aging_rule_score(rows), "key"


def slice_metrics(rows: pd.DataFrame, *, probability: np.ndarray,
                  rule_probability: np.ndarray | None = None,
                  min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """Per slice (:func:`slice_keys` of ``rows``), the model's AUC (``probability``, one
    per row) beside the aging rule's on the same rows (:func:`rule_auc_score`: the served
    rule's probability, ``rule_probability``, when given and defined on every row judged,
    else its key); ``rows['y']`` the 0/1 label
    (:data:`SLICE_COLUMNS`). Sampled rows (a ``weight`` column,
    ``features.pit.sampling``): counts and AUCs weighted, the full set's (``min_rows``
    counts the rows kept)."""
    keys = slice_keys(rows)
    y = rows["y"].to_numpy(dtype=float)
    p = np.asarray(probability, dtype=float)
    rule, basis = rule_auc_score(rows, rule_probability,
                                 judged=np.isfinite(p) & np.isfinite(y))
    w = row_weights(rows)
    weight = np.ones(len(rows)) if w is None else w
    out = []
    for dim in DIMENSIONS:
        for value, idx in keys.groupby(dim, sort=True).indices.items():
            yy, pp, rr = y[idx], p[idx], rule[idx]
            ok = np.isfinite(pp) & np.isfinite(yy)
            yy, pp, rr, ww = yy[ok], pp[ok], rr[ok], weight[idx][ok]
            sw = None if w is None else ww
            both = len(yy) >= min_rows and len(np.unique(yy)) == 2
            auc = float(roc_auc_score(yy, pp, sample_weight=sw)) if both else float("nan")
            rule_auc = (float(roc_auc_score(yy, rr, sample_weight=sw)) if both
                        else float("nan"))
            out.append({"dimension": dim, "value": str(value),
                        "n_rows": int(round(weight[idx].sum())),
                        "n_positive": int(round(ww[yy == 1].sum())), "auc": auc,
                        "rule_auc": rule_auc, "below_rule": bool(both and auc < rule_auc),
                        "rule_basis": basis})
    return pd.DataFrame(out, columns=list(SLICE_COLUMNS))


def flagged_lines(table: pd.DataFrame | list[dict[str, Any]], *, model: str) -> list[str]:
    """One line per slice where the model is below the rule, for a report."""
    frame = pd.DataFrame(table, columns=list(SLICE_COLUMNS))
    bad = frame[frame["below_rule"].astype(bool)]
    return [f"{model}: below {RULE_NAMES.get(r.rule_basis, RULE_NAMES['key'])} on "
            f"{r.dimension} = {r.value} "
            f"(AUC {r.auc:.3f} vs {r.rule_auc:.3f}, {r.n_rows:,} rows)"
            for r in bad.itertuples(index=False)]
