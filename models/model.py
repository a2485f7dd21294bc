"""The one model type: a calibrated LightGBM delinquency model (DESIGN sections 7-8).

A :class:`DelinqModel` is what training produces, what the registry stores and loads, and
what scoring uses. It scores a *feature frame*: one row per account as of one date, with
the columns of ``features.build_features`` (extra columns are ignored). Scores are:

- :meth:`DelinqModel.raw_score`: LightGBM's raw score, in log-odds (the ranking score, and
  what explanations add up to);
- :meth:`DelinqModel.risk`: the calibrated probability (0-1) of the model's bad event, a
  monotone map of the raw score (what the worklist shows and multiplies by the balance);
- :meth:`DelinqModel.predict_proba`: the same probability in scikit-learn's ``(n, 2)``
  layout (column 1 = bad event), for code that expects a classifier;
- :meth:`DelinqModel.explain`: exact TreeSHAP values of the raw score (log-odds).

:meth:`DelinqModel.save` / :meth:`DelinqModel.load` write and read a folder of plain files
(LightGBM text model and JSON), the same files the registered MLflow pyfunc carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pit.sampling import WEIGHT
from features.spec import FEATURE_COLUMNS, MODELS
from models.calibration import Calibrator
from models.evaluate import Scores
from models.treeshap import TreeExplainer

#: Columns of a training set that are never model inputs.
META_COLUMNS: frozenset[str] = frozenset(
    {
        "account_id",
        "as_of",
        "segment",
        "model",
        "y",
        "label_resolved_date",
        "censored",
        "delinquent_amount",
        WEIGHT,
    }
)

#: File names of a saved model, by part (the pyfunc's artifacts use the same names).
FILES: dict[str, str] = {
    "booster": "booster.txt",
    "calibrator": "calibrator.json",
    "meta": "meta.json",
    "reference_profile": "reference_profile.json",
}


# ------------------------------------------------------------------ feature matrix


def resolve_feature_names(frame: pd.DataFrame) -> list[str]:
    """Model inputs: the spec's feature columns when the frame has them all, else every
    non-meta column of the frame (in frame order; hand-made test frames)."""
    names = list(FEATURE_COLUMNS)
    if all(n in frame.columns for n in names):
        return names
    return [c for c in frame.columns if c not in META_COLUMNS]


def categorical_levels(frame: pd.DataFrame, feature_names: Sequence[str]) -> dict[str, list[str]]:
    """Levels of every non-numeric feature, as seen in ``frame`` (sorted strings)."""
    out = {}
    for c in feature_names:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)
        ):
            out[c] = sorted({str(v) for v in s.dropna().astype(object)})
    return out


def feature_matrix(
    frame: pd.DataFrame, feature_names: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """The model's input frame: features in order, numeric as float64 (inf -> NaN),
    categoricals with the training levels (unseen levels -> NaN). Never mutates ``frame``."""
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise KeyError(f"feature frame lacks model features: {missing[:5]}")
    cols: dict[str, Any] = {}
    for c in feature_names:
        if c in categories:
            levels = pd.Index(list(categories[c]), dtype=object)
            cols[c] = pd.Categorical.from_codes(_level_codes(frame[c], levels),
                                                dtype=pd.CategoricalDtype(levels))
        else:
            v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            cols[c] = np.where(np.isfinite(v), v, np.nan)
    return pd.DataFrame(cols, index=frame.index)


def _level_codes(values: pd.Series, levels: pd.Index) -> np.ndarray:
    """Code in ``levels`` of each value's ``str`` (-1: missing or an unseen level).

    ``str`` is applied once per distinct value, not per row (a per-row ``map`` was ~30% of
    the shadow scores at 100k accounts): a categorical's categories, or the distinct texts
    of a string column. Other columns (mixed objects, numbers: ``1`` and ``1.0`` are one
    distinct value but two texts) keep the per-row ``str``."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        texts = [str(v) for v in values.cat.categories]
        codes = values.cat.codes.to_numpy()
    elif pd.api.types.is_string_dtype(values.dtype) and (
            not pd.api.types.is_object_dtype(values.dtype)
            or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")):
        codes, uniques = pd.factorize(values)  # missing values -> -1
        texts = [str(v) for v in uniques]
    else:
        present = values.notna().to_numpy()
        texts = [str(v) for v in values.to_numpy(dtype=object)[present]]
        codes = np.full(len(values), -1, np.int64)
        codes[present] = np.arange(len(texts))
    lut = np.append(levels.get_indexer(pd.Index(texts, dtype=object)), -1)
    return lut[np.where(codes >= 0, codes, len(texts))]


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True, eq=False)
class Explanation:
    """Exact TreeSHAP explanation of a model's raw score for the rows of a frame.

    ``values``: ``(n_rows, n_features)`` SHAP values in log-odds, columns in the model's
    feature order; ``base_value``: the expected raw score (log-odds); ``raw_score``:
    ``base_value + values.sum(axis=1)``, which *is* the booster's raw score (additivity of
    exact TreeSHAP, to ~1e-9); ``features``: the model's input matrix of the same rows
    (:func:`feature_matrix`, index of the input frame).
    """

    values: np.ndarray
    base_value: float
    raw_score: np.ndarray
    features: pd.DataFrame


@dataclass(frozen=True, eq=False)
class DelinqModel:
    """A fitted, calibrated delinquency model of one ``kind`` (see module docstring).

    ``feature_names`` is the input order, ``categories`` the training levels of each
    categorical feature, ``feature_set_version`` the ``features.spec`` version it was
    trained on, ``reference_profile`` the training distribution for drift
    (``models.drift``), ``data_window`` the ``as_of`` ranges of its train, validation and
    test periods (ISO dates; ``data_end``: the last day whose data the training read, see
    :attr:`data_end`), ``version`` the registry version (``None`` until registered).
    """

    kind: str
    booster: lgb.Booster = field(repr=False)
    calibrator: Calibrator
    feature_names: list[str] = field(repr=False)
    categories: dict[str, list[str]] = field(repr=False)
    feature_set_version: str
    reference_profile: dict[str, Any] = field(default_factory=dict, repr=False)
    data_window: dict[str, str] = field(default_factory=dict)
    version: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODELS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {MODELS}")

    @property
    def data_end(self) -> date | None:
        """The last day of the data its training read (fit, calibration and the gate's
        test period: the latest ``as_of`` or label resolution date of its rows), so it may
        score only dates on or after it (a crossing or check day d is known to a run as
        of d; a payment on d only the day after: a one-day slack). Models trained before
        this was recorded give their last test ``as_of`` (a lower bound); ``None`` when
        neither is known."""
        end = self.data_window.get("data_end") or self.data_window.get("test_end")
        return date.fromisoformat(str(end)[:10]) if end else None

    # -- scores --------------------------------------------------------------------

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input matrix of a feature frame (:func:`feature_matrix`)."""
        return feature_matrix(frame, self.feature_names, self.categories)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """LightGBM raw score (log-odds) per row of a feature frame, 1-D float64."""
        return np.asarray(self.booster.predict(self.matrix(frame), raw_score=True), dtype=float)

    def calibrate(self, raw_score: np.ndarray) -> np.ndarray:
        """Calibrated probability (0-1) of raw scores (log-odds), 1-D float64."""
        return np.asarray(self.calibrator.predict(raw_score), dtype=np.float64)

    def risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability (0-1) of the bad event per row of a feature frame, 1-D."""
        return self.calibrate(self.raw_score(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """``(n, 2)`` class probabilities, scikit-learn style: column 1 is :meth:`risk`."""
        p = self.risk(frame)
        return np.column_stack([1.0 - p, p])

    def scores(self, frame: pd.DataFrame) -> Scores:
        """What the metrics judge (``models.evaluate``): calibrated probability, priority =
        probability x ``open_balance`` (expected amount at risk), ranking = raw log-odds."""
        raw = self.raw_score(frame)
        proba = self.calibrate(raw)
        return Scores(proba=proba, priority=proba * frame["open_balance"].to_numpy(dtype=float),
                      ranking=raw)

    def explain(self, frame: pd.DataFrame, *, table_budget_mb: int = 512) -> Explanation:
        """Exact TreeSHAP values (log-odds) of every row of a feature frame.

        ``table_budget_mb`` caps the explainer's precomputed tables (``models.treeshap``);
        a lower cap is slower, never less exact.
        """
        x = self.matrix(frame)
        explainer = TreeExplainer(self.booster, table_budget_mb=table_budget_mb)
        phi = explainer.shap_values(x)
        base = float(explainer.expected_value)
        return Explanation(values=phi, base_value=base, raw_score=phi.sum(axis=1) + base,
                           features=x)

    # -- files ---------------------------------------------------------------------

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write the model's files (:data:`FILES`) into ``folder`` (created if needed);
        returns ``{part: path}``. ``version`` is the registry's and is not written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {part: str(folder / name) for part, name in FILES.items()}
        self.booster.save_model(paths["booster"])
        Path(paths["calibrator"]).write_text(json.dumps(self.calibrator.to_dict()))
        meta = {
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "feature_set_version": self.feature_set_version,
            "data_window": dict(self.data_window),
        }
        Path(paths["meta"]).write_text(json.dumps(meta, indent=1))
        Path(paths["reference_profile"]).write_text(json.dumps(self.reference_profile))
        return paths

    @classmethod
    def load(cls, folder: str | Path, *, version: str | None = None) -> DelinqModel:
        """A model from the files :meth:`save` wrote into ``folder``."""
        folder = Path(folder)
        meta = json.loads((folder / FILES["meta"]).read_text())
        return cls(
            # "model" is the key of versions registered before this type existed.
            kind=meta.get("kind", meta.get("model", "")),
            booster=lgb.Booster(model_file=str(folder / FILES["booster"])),
            calibrator=Calibrator.from_dict(
                json.loads((folder / FILES["calibrator"]).read_text())
            ),
            feature_names=list(meta["feature_names"]),
            categories={k: list(v) for k, v in meta["categories"].items()},
            feature_set_version=str(meta["feature_set_version"]),
            reference_profile=json.loads((folder / FILES["reference_profile"]).read_text()),
            data_window=dict(meta.get("data_window", {})),
            version=version,
        )
