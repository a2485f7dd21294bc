"""Train the two delinquency models with a time-based split, calibrate, evaluate.

Time semantics (DESIGN section 7). A training set has one row per (account, ``as_of``)
with the label columns ``y``, ``label_resolved_date`` and ``censored``. Censored rows are
never used. With ``T`` the last ``as_of`` date whose rows are mostly resolved:

- **test**: ``as_of`` in the final ``test_weeks`` weeks up to ``T``;
- **validation** (early stopping, calibration, baseline calibration): the ``val_weeks``
  weeks before the test period (less ``embargo_days``), keeping only rows whose label
  resolved strictly before the test period starts;
- **train**: ``as_of`` before the validation start (less ``embargo_days``) and label
  resolved strictly before the validation start.

So no row's outcome is known later than the period that judges it, exactly as when a
model trained on date ``d`` (with the labels known on ``d``) scores accounts on ``d``.
The label filter is what removes leakage; ``embargo_days`` optionally adds a gap of
``as_of`` dates on top (default 0: adjacent weeks share accounts, as in production).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.calibration import Calibrator, choose_calibrator
from models.drift import reference_profile
from models.evaluate import (
    Scores,
    baseline_scores,
    evaluate_scorers,
    fit_baselines,
    format_metrics_table,
)

MODELS: tuple[str, ...] = ("early_warning", "persistence")
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
    }
)
DEFAULT_NAMES: dict[str, str] = {
    "early_warning": "delinq-early-warning",
    "persistence": "delinq-persistence",
}


@dataclass(frozen=True)
class TrainConfig:
    """LightGBM parameters and the time split (weeks of ``as_of`` dates; days for embargo)."""

    n_estimators: int = 300
    early_stopping_rounds: int = 30
    num_leaves: int = 31
    #: Depth cap: nightly SHAP for every account costs ~8x more on uncapped trees (median
    #: depth 11 here) than at depth 6, where exact TreeSHAP stays on its fast tables.
    max_depth: int = 6
    learning_rate: float = 0.05
    min_child_samples: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    seed: int = 0
    #: LightGBM threads; None = 1 below 100k training rows (threads cost more than they
    #: save on small data, and spin badly on a busy machine), else 2.
    n_jobs: int | None = None
    val_weeks: int = 8
    test_weeks: int = 8
    embargo_days: int = 0
    #: An ``as_of`` date with a larger censored share is too recent to be a test date.
    max_censored_share: float = 0.2

    def lgbm_params(self, n_rows: int = 0) -> dict[str, Any]:
        """Keyword arguments of ``lightgbm.LGBMClassifier`` for ``n_rows`` training rows."""
        n_jobs = self.n_jobs if self.n_jobs is not None else (1 if n_rows < 100_000 else 2)
        return {
            "n_estimators": self.n_estimators,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "colsample_bytree": self.feature_fraction,
            "subsample": self.bagging_fraction,
            "subsample_freq": 1 if self.bagging_fraction < 1 else 0,
            "reg_lambda": self.lambda_l2,
            "random_state": self.seed,
            "n_jobs": n_jobs,
            "verbose": -1,
        }


# ---------------------------------------------------------------------------- split


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).astype("datetime64[s]")


def split_bounds(training_set: pd.DataFrame, *, config: TrainConfig) -> dict[str, pd.Timestamp]:
    """The split dates: ``val_start``, ``test_start`` (inclusive) and ``test_end`` (inclusive)."""
    usable = training_set[~training_set["censored"].astype(bool)]
    if usable.empty:
        raise ValueError("no resolved labels in the training set: the book is too short")
    censored_share = training_set.groupby(_dates(training_set["as_of"]))["censored"].mean()
    mature = censored_share[censored_share <= config.max_censored_share].index
    test_end = pd.Timestamp(mature.max() if len(mature) else _dates(usable["as_of"]).max())
    test_start = test_end - pd.Timedelta(days=7 * config.test_weeks - 1)
    gap = pd.Timedelta(days=config.embargo_days)
    val_start = test_start - gap - pd.Timedelta(days=7 * config.val_weeks)
    return {"val_start": val_start, "test_start": test_start, "test_end": test_end}


def split_by_time(
    training_set: pd.DataFrame, *, config: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(train, val, test)`` rows of a training set by the module's time rules.

    Censored rows are dropped from all three. Raises ``ValueError`` if a part is empty.
    """
    b = split_bounds(training_set, config=config)
    gap = pd.Timedelta(days=config.embargo_days)
    as_of = _dates(training_set["as_of"])
    resolved = _dates(training_set["label_resolved_date"])
    ok = ~training_set["censored"].astype(bool) & training_set["y"].notna()
    train_mask = ok & (as_of < b["val_start"] - gap) & (resolved < b["val_start"])
    val_mask = (
        ok
        & (as_of >= b["val_start"])
        & (as_of < b["test_start"] - gap)
        & (resolved < b["test_start"])
    )
    test_mask = ok & (as_of >= b["test_start"]) & (as_of <= b["test_end"])
    parts = tuple(training_set[m].reset_index(drop=True) for m in (train_mask, val_mask, test_mask))
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        if part.empty:
            raise ValueError(
                f"the {name} period is empty (validation from {b['val_start'].date()}, "
                f"test {b['test_start'].date()}..{b['test_end'].date()}): the book is too "
                "short for this split; lower val_weeks/test_weeks or use a longer history"
            )
    return parts  # type: ignore[return-value]


# ------------------------------------------------------------------ feature matrix


def resolve_feature_names(frame: pd.DataFrame) -> list[str]:
    """Model inputs: ``features.feature_names()`` when the frame has them all, else every
    non-meta column of the frame (in frame order)."""
    try:
        from features import feature_names as _names

        names = list(_names())
        if names and all(n in frame.columns for n in names):
            return names
    except ImportError:
        pass
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
            values = frame[c].astype(object).where(frame[c].notna(), None)
            values = values.map(lambda v: None if v is None else str(v))
            values = values.where(values.isin(levels), None)  # unseen level -> missing
            cols[c] = pd.Categorical(values, dtype=pd.CategoricalDtype(levels))
        else:
            v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            cols[c] = np.where(np.isfinite(v), v, np.nan)
    return pd.DataFrame(cols, index=frame.index)


class ScoringMixin:
    """Scoring shared by trained and loaded models (needs booster, calibrator, features)."""

    booster: lgb.Booster
    calibrator: Calibrator
    feature_names: list[str]
    categories: dict[str, list[str]]

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """LightGBM raw score (log-odds) per row of a feature frame."""
        x = feature_matrix(frame, self.feature_names, self.categories)
        return np.asarray(self.booster.predict(x, raw_score=True), dtype=float)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the bad event per row (1-D array)."""
        return self.calibrator.predict(self.raw_score(frame))


@dataclass
class TrainedModel(ScoringMixin):
    """One fitted model with everything the registry logs (see module docstring)."""

    model: str
    booster: lgb.Booster
    calibrator: Calibrator
    feature_names: list[str]
    categories: dict[str, list[str]]
    feature_set_version: str
    data_window: dict[str, str]
    metrics: pd.DataFrame
    reference_profile: dict[str, Any]
    params: dict[str, Any]
    calibration_brier: dict[str, float]
    test_frame: pd.DataFrame = field(repr=False)
    n_rows: dict[str, int] = field(default_factory=dict)
    #: Each baseline's scores on ``test_frame`` (for the plots).
    baseline_scores: dict[str, Scores] = field(default_factory=dict, repr=False)


def model_scores(model: ScoringMixin, frame: pd.DataFrame) -> Scores:
    """Scores of a LightGBM model: calibrated probability, priority = probability x open
    balance (expected dollars at risk), ranking = raw log-odds."""
    raw = model.raw_score(frame)
    proba = model.calibrator.predict(raw)
    return Scores(
        proba=proba, priority=proba * frame["open_balance"].to_numpy(dtype=float), ranking=raw
    )


def _feature_set_version() -> str:
    try:
        from features import FEATURE_SET_VERSION

        return str(FEATURE_SET_VERSION)
    except ImportError:
        return "unknown"


def _window(parts: Mapping[str, pd.DataFrame], bounds: Mapping[str, pd.Timestamp]) -> dict:
    out = {}
    for name, part in parts.items():
        d = _dates(part["as_of"])
        out[f"{name}_start"] = str(d.min().date()) if len(d) else ""
        out[f"{name}_end"] = str(d.max().date()) if len(d) else ""
    out["train_labels_before"] = str(bounds["val_start"].date())
    out["val_labels_before"] = str(bounds["test_start"].date())
    return out


def fit_model(
    train: pd.DataFrame,
    val: pd.DataFrame,
    *,
    feature_names: Sequence[str],
    config: TrainConfig,
) -> tuple[lgb.Booster, Calibrator, dict[str, list[str]], dict[str, float]]:
    """Fit LightGBM on ``train`` (early stopping on ``val``), calibrate on ``val``.

    Returns the booster trimmed to its best iteration, the calibrator, the categorical
    levels and the validation Briers of the calibration candidates.
    """
    for name, part in (("train", train), ("validation", val)):
        if part["y"].nunique() < 2:
            raise ValueError(f"the {name} rows have a single outcome class: cannot fit")
    cats = categorical_levels(train, feature_names)
    x_tr = feature_matrix(train, feature_names, cats)
    x_va = feature_matrix(val, feature_names, cats)
    y_tr = train["y"].to_numpy(dtype=int)
    y_va = val["y"].to_numpy(dtype=int)
    clf = lgb.LGBMClassifier(**config.lgbm_params(len(train)))
    clf.fit(
        x_tr,
        y_tr,
        eval_X=(x_va,),
        eval_y=(y_va,),
        eval_metric="binary_logloss",
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    best = clf.best_iteration_ or clf.n_estimators
    booster = lgb.Booster(model_str=clf.booster_.model_to_string(num_iteration=best))
    raw_val = np.asarray(booster.predict(x_va, raw_score=True), dtype=float)
    choice = choose_calibrator(raw_val, y_va, seed=config.seed)
    return booster, choice.calibrator, cats, choice.brier_by_method


def train_model(
    training_set: pd.DataFrame,
    *,
    model: str,
    config: TrainConfig | None = None,
    feature_names: Sequence[str] | None = None,
    split: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None,
) -> TrainedModel:
    """Train, calibrate and evaluate ``model`` ("early_warning" or "persistence").

    Uses the rows of that model's population and :func:`split_by_time` (or a given
    ``split``). The metrics table compares the calibrated model with the baselines on the
    test period.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    config = config or TrainConfig()
    names = list(feature_names) if feature_names is not None else resolve_feature_names(
        training_set
    )
    if split is None:
        bounds = split_bounds(training_set, config=config)
        split = split_by_time(training_set, config=config)
    else:
        bounds = {
            "val_start": _dates(split[1]["as_of"]).min(),
            "test_start": _dates(split[2]["as_of"]).min(),
        }
    train, val, test = (p[p["model"] == model].reset_index(drop=True) for p in split)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if part.empty:
            raise ValueError(f"no {model} rows in the {name} period")
    booster, calibrator, cats, briers = fit_model(train, val, feature_names=names, config=config)
    trained = TrainedModel(
        model=model,
        booster=booster,
        calibrator=calibrator,
        feature_names=names,
        categories=cats,
        feature_set_version=_feature_set_version(),
        data_window=_window({"train": train, "val": val, "test": test}, bounds),
        metrics=pd.DataFrame(),
        reference_profile={},
        params={**config.lgbm_params(len(train)), "best_iteration": booster.current_iteration()},
        calibration_brier=briers,
        test_frame=test,
        n_rows={"train": len(train), "val": len(val), "test": len(test)},
    )
    baselines = fit_baselines(
        train, val, feature_names=names, categorical=list(cats), seed=config.seed
    )
    trained.baseline_scores = {name: baseline_scores(b, test) for name, b in baselines.items()}
    scorers = {"lightgbm": model_scores(trained, test), **trained.baseline_scores}
    trained.metrics = evaluate_scorers(test, scorers)
    trained.reference_profile = reference_profile(
        train, feature_names=names, scores=trained.predict_proba(train)
    )
    return trained


def train_both(
    training_set: pd.DataFrame,
    *,
    config: TrainConfig | None = None,
    feature_names: Sequence[str] | None = None,
) -> dict[str, TrainedModel]:
    """Both models on one shared time split: ``{"early_warning": ..., "persistence": ...}``."""
    config = config or TrainConfig()
    split = split_by_time(training_set, config=config)
    return {
        m: train_model(training_set, model=m, config=config, feature_names=feature_names,
                       split=split)
        for m in MODELS
    }


# ---------------------------------------------------------------------- pipeline entry


def train_and_register(
    book: Any,
    *,
    tracking_uri: str,
    grid: str = "weekly",
    config: TrainConfig | None = None,
    names: Mapping[str, str] | None = None,
    delinquency_dpd: int = 30,
    persistence_days: int = 30,
) -> dict[str, dict[str, Any]]:
    """Build the training set of ``book`` over the ``grid`` of ``as_of`` dates, train both
    models, register both; promotion by the registry's rule.

    Returns what :func:`train_and_register_frame` returns; :func:`format_report` prints it.
    """
    from features import build_training_set
    from features.pit.training_set import as_of_grid

    dates = as_of_grid(book, freq=grid)
    training_set = build_training_set(
        book, as_of_dates=dates, delinquency_dpd=delinquency_dpd,
        persistence_days=persistence_days,
    )
    return train_and_register_frame(
        training_set, tracking_uri=tracking_uri, config=config, names=names,
        extra_params={"grid": grid, "delinquency_dpd": delinquency_dpd,
                      "persistence_days": persistence_days},
    )


def train_and_register_frame(
    training_set: pd.DataFrame,
    *,
    tracking_uri: str,
    config: TrainConfig | None = None,
    names: Mapping[str, str] | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train both models on an already built training set and register them.

    Returns ``{model: {registered_name, version, promoted, champion_version, reason,
    run_id, metrics (the LightGBM row), metrics_table ({scorer: {metric: value}}),
    data_window, n_rows}}`` (or ``{registered_name, error}`` for a model whose population
    cannot be trained in this book; ``ValueError`` if neither can).
    """
    from models.registry import log_and_register

    names = {**DEFAULT_NAMES, **dict(names or {})}
    config = config or TrainConfig()
    split = split_by_time(training_set, config=config)
    summary: dict[str, dict[str, Any]] = {}
    errors = []
    for model in MODELS:
        try:
            tm = train_model(training_set, model=model, config=config, split=split)
        except ValueError as exc:  # e.g. a population too small in this book: say so
            summary[model] = {"registered_name": names[model], "error": str(exc)}
            errors.append(f"{model}: {exc}")
            continue
        res = log_and_register(tm, tracking_uri=tracking_uri, registered_name=names[model],
                               extra_params=extra_params)
        summary[model] = {
            "registered_name": names[model],
            "version": res.version,
            "promoted": res.promoted,
            "champion_version": res.champion_version,
            "reason": res.reason,
            "run_id": res.run_id,
            "metrics": {k: float(v) for k, v in tm.metrics.loc["lightgbm"].items()},
            "metrics_table": {str(s): {k: float(v) for k, v in row.items()}
                              for s, row in tm.metrics.iterrows()},
            "data_window": dict(tm.data_window),
            "n_rows": dict(tm.n_rows),
        }
    if len(errors) == len(MODELS):
        raise ValueError("no model could be trained: " + "; ".join(errors))
    return summary


def format_report(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The printed training report: per model, the metrics table (model vs baselines) on
    the test period, the registered version and whether it was promoted."""
    blocks = []
    for model, info in summary.items():
        if "error" in info:
            blocks.append(f"{model}: not trained ({info['error']})")
            continue
        table = pd.DataFrame.from_dict(dict(info["metrics_table"]), orient="index")
        w = info.get("data_window", {})
        n = info.get("n_rows", {})
        title = (f"{model}: test period {w.get('test_start')}..{w.get('test_end')} "
                 f"({n.get('test', '?')} rows; trained on {n.get('train', '?')} rows "
                 f"{w.get('train_start')}..{w.get('train_end')})")
        status = "promoted to champion" if info["promoted"] else (
            f"challenger (champion stays v{info.get('champion_version')})")
        blocks.append(
            format_metrics_table(table, title=title)
            + f"\n  registered {info['registered_name']} v{info['version']}: {status}"
            + f"\n  {info['reason']}"
        )
    return "\n\n".join(blocks)
