"""Train the delinquency models with a time-based split, calibrate, evaluate.

Time semantics (DESIGN section 7). A training set has one row per (account, ``as_of``)
with the label columns ``y``, ``label_resolved_date`` and ``censored``. Censored rows are
never used. With ``T`` the last ``as_of`` date whose rows are mostly resolved:

- **test**: ``as_of`` in the final ``test_weeks`` weeks up to ``T`` (or up to
  ``test_end`` when the user sets it: the test period need not be the book's last weeks);
- **validation** (early stopping, calibration, baseline calibration): the ``val_weeks``
  weeks before the test period (less ``embargo_days``), keeping only rows whose label
  resolved strictly before the test period starts;
- **train**: ``as_of`` before the validation start (less ``embargo_days``) and label
  resolved strictly before the validation start.

So no row's outcome is known later than the period that judges it, exactly as when a
model trained on date ``d`` (with the labels known on ``d``) scores accounts on ``d``.
The label filter is what removes leakage; ``embargo_days`` optionally adds a gap of
``as_of`` dates on top (default 0: adjacent weeks share accounts, as in production).

**Sampled training sets** (``features.pit.sampling``): a training set may carry a
``weight`` column (a row stands for ``weight`` rows of the full grid). The split's censored
share per date, LightGBM (sample weights, also in early stopping), the calibration, the
baselines, the metrics and the gate are then all weighted, so every figure estimates the
full set's; the drift reference is drawn from the training rows as a uniform sample of the
full set (each row kept with probability ``min weight / weight``, seeded). The
``sample_*`` options of :class:`TrainConfig` say how the steps sample
(:meth:`TrainConfig.sampling`): the training period on the ``sample_max_rows`` budget (or
explicit rates), the validation and test periods (:func:`holdout_period`, this split's own
rule applied to the labels before sampling) on their own ``sample_holdout_max_rows``
budget, kept in full up to it (weight 1: the test figures and the gate are then the full
run's, not estimates, and only the fit carries the sampling noise). Without weights (or
all 1) everything is unweighted, as before.

A book that cannot be split so (a period empty, or too thin to fit or judge a model) raises
:class:`SplitError`: one line naming the setting to change (``train.val_weeks``,
``train.test_weeks``, ``train.test_end``, or the label definition); the user can fix it.

:func:`train_model` returns one :class:`TrainingResult` (the model, its metrics beside the
baselines, the data window and the test-period scores, computed once); :func:`train_models`
trains every model kind on one shared split. Registering is ``models.registry``'s job and
the caller's decision: nothing here writes anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pit.sampling import Sampling, row_weights
from features.pit.training_set import StageHook, no_stage
from features.spec import FEATURE_DIRECTION, MODELS, feature_set_version_of
from models.calibration import Calibrator, choose_calibrator
from models.drift import reference_profile
from models.errors import SplitError  # noqa: F401 (re-exported: raised here)
from models.evaluate import Scores, baseline_scores, evaluate_scorers, fit_baselines
from models.model import DelinqModel, categorical_levels, feature_matrix, resolve_feature_names
from models.rule import RuleCalibration, fit_rule_calibration


@dataclass(frozen=True)
class TrainConfig:
    """Every training parameter a user may set, as plain fields (settings map onto them).

    LightGBM: ``n_estimators`` (most boosting rounds), ``early_stopping_rounds`` (rounds
    without validation improvement), ``num_leaves``, ``max_depth``, ``learning_rate``,
    ``min_child_samples`` (rows per leaf), ``feature_fraction`` and ``bagging_fraction``
    (shares 0-1), ``lambda_l2``, ``seed``, ``n_jobs`` (threads). The time split:
    ``val_weeks`` and ``test_weeks`` (weeks of ``as_of`` dates), ``test_end`` (the last
    ``as_of`` date of the test period; ``None``: the last mature date of the book),
    ``embargo_days`` (days), ``max_censored_share`` (0-1). Sampling of the training set
    (``features.pit.sampling``, :meth:`sampling`): ``sample_max_rows`` (row budget per
    model population in the training period; ``None``: no sampling),
    ``sample_positive_rate`` and ``sample_negative_rate`` (explicit rates 0-1, overriding
    the budget), ``sample_holdout_max_rows`` (row budget per model population of the
    validation and test periods together; ``None`` or 0: kept in full), ``sample_seed``
    (``None``: ``seed``).
    """

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
    test_end: date | None = None
    embargo_days: int = 0
    #: An ``as_of`` date with a larger censored share is too recent to be a test date.
    max_censored_share: float = 0.2
    #: Train monotone in each feature's known risk direction
    #: (``features.spec.FEATURE_DIRECTION``), so an explanation can never read backwards.
    monotone: bool = True
    #: Training-period rows per model population above which they are sampled. LightGBM's
    #: time grows with the rows (~1 min per 1M rows and 100 rounds on 2 busy cores,
    #: measured), so the budget, not the book, sets the cost of the fit; books up to ~20k
    #: accounts on the weekly grid are trained in full.
    sample_max_rows: int | None = 800_000  # None or 0: never sample
    sample_positive_rate: float | None = None
    sample_negative_rate: float | None = None
    #: Validation and test rows (together) per model population above which they are
    #: sampled. 16 of the ~79 weekly dates at 1M accounts: ~12M labelled rows, too many to
    #: featurise whole (features cost ~12 s per date there); 250,000 keep the figures'
    #: sampling error far below the gate's margins (tens of thousands of positives, all
    #: kept), and books up to ~15k accounts keep both periods whole. With the training
    #: budget, ~1.05M rows per model: the cost of the former single 1M budget.
    sample_holdout_max_rows: int | None = 250_000  # None or 0: kept in full
    sample_seed: int | None = None  # None: ``seed``

    def sampling(self) -> Sampling | None:
        """The training set's :class:`~features.pit.sampling.Sampling` (``None``: none)."""
        budget = self.sample_max_rows or None
        if budget is None and self.sample_positive_rate is None \
                and self.sample_negative_rate is None:
            return None
        return Sampling(max_rows=budget, positive_rate=self.sample_positive_rate,
                        negative_rate=self.sample_negative_rate,
                        seed=self.seed if self.sample_seed is None else self.sample_seed,
                        holdout=partial(holdout_period, config=self),
                        holdout_max_rows=self.sample_holdout_max_rows or None)

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


#: What to change, per period, when it is empty or too thin (settings names).
_HINT = {
    "train": "use a longer history, or shorten train.val_weeks / train.test_weeks",
    "validation": "lengthen train.val_weeks",
    "test": "lengthen train.test_weeks or move train.test_end",
}


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).astype("datetime64[s]")


@dataclass(frozen=True)
class SplitBounds:
    """The split dates (midnight timestamps): validation starts at ``val_start``; the test
    period is ``test_start``..``test_end`` (both inclusive)."""

    val_start: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def split_bounds(training_set: pd.DataFrame, *, config: TrainConfig) -> SplitBounds:
    """The split dates of a training set under ``config`` (see the module docstring)."""
    w = row_weights(training_set)
    by_date = _dates(training_set["as_of"]).to_numpy()
    censored = training_set["censored"].astype(bool).to_numpy()
    if w is None:
        censored_share = pd.Series(censored, dtype=float).groupby(by_date).mean()
    else:  # weighted: each stratum's weights sum to its full count (an integer), so the
        # rounded sums are the full set's counts and the shares exactly the full set's
        sums = pd.DataFrame({"c": censored * w, "w": w}).groupby(by_date).sum().round()
        censored_share = sums["c"] / sums["w"]
    return bounds_from_shares(censored_share, config=config)


def bounds_from_shares(censored_share: pd.Series, *, config: TrainConfig) -> SplitBounds:
    """The split dates from the censored share (0-1) of each ``as_of`` date holding rows
    (indexed by the dates): all :func:`split_bounds` reads of a training set, so the
    sampler can place the split from the labels alone (:func:`holdout_period`)."""
    usable = censored_share[censored_share < 1]
    if usable.empty:
        raise SplitError("no resolved labels in the training set: the book is too short "
                         "(use a longer history, or shorten persistence_days)")
    mature = censored_share[censored_share <= config.max_censored_share].index
    test_end = pd.Timestamp(mature.max() if len(mature) else usable.index.max())
    if config.test_end is not None:
        test_end = min(test_end, pd.Timestamp(config.test_end))
    test_start = test_end - pd.Timedelta(days=7 * config.test_weeks - 1)
    gap = pd.Timedelta(days=config.embargo_days)
    val_start = test_start - gap - pd.Timedelta(days=7 * config.val_weeks)
    return SplitBounds(val_start=val_start, test_start=test_start, test_end=test_end)


def holdout_period(censored_share: pd.Series, *, config: TrainConfig
                   ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The first and last ``as_of`` of the validation and test periods
    (:func:`bounds_from_shares`), ``None`` when the labels cannot be split: the
    ``features.pit.sampling.HoldoutRule`` of :meth:`TrainConfig.sampling`."""
    try:
        b = bounds_from_shares(censored_share, config=config)
    except SplitError:  # the split itself says so, with its hint, when training
        return None
    return b.val_start, b.test_end


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
    train_mask = ok & (as_of < b.val_start - gap) & (resolved < b.val_start)
    val_mask = (
        ok
        & (as_of >= b.val_start)
        & (as_of < b.test_start - gap)
        & (resolved < b.test_start)
    )
    test_mask = ok & (as_of >= b.test_start) & (as_of <= b.test_end)
    parts = tuple(training_set[m].reset_index(drop=True) for m in (train_mask, val_mask, test_mask))
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        if part.empty:
            raise SplitError(
                f"the {name} period is empty (validation from {b.val_start.date()}, "
                f"test {b.test_start.date()}..{b.test_end.date()}): the book is too "
                f"short for this split; {_HINT[name]}"
            )
    return parts  # type: ignore[return-value]


# ------------------------------------------------------------------------ results


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """One trained model and what it was judged on (the registry logs all of it).

    ``metrics``: one row per scorer (``lightgbm`` first, then the baselines), one column
    per metric, on the test period (``models.evaluate``). ``data_window``: ISO dates of
    each period's first and last ``as_of`` and the label cut-offs. ``bounds``: the split
    dates. ``test``: the test-period rows of this model's population (feature frame with
    labels); ``test_scores`` the model's scores of those rows and ``baseline_scores`` each
    baseline's, computed once at training. ``n_rows``: rows per period.
    ``params``: the LightGBM parameters and ``best_iteration``; ``calibration_brier``: the
    validation Brier of each calibration candidate. ``evidence``: per period (``train``,
    ``val``, ``test``) its rows, positive rows and distinct positive accounts.
    """

    model: DelinqModel
    metrics: pd.DataFrame
    data_window: dict[str, str]
    bounds: SplitBounds
    test: pd.DataFrame
    test_scores: Scores
    baseline_scores: dict[str, Scores]
    n_rows: dict[str, int]
    params: dict[str, Any]
    calibration_brier: dict[str, float]
    evidence: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The aging rule's calibration on this validation period (``models.rule``; None when
    #: too thin): what ranks the population if this model fails the gate.
    rule_calibration: RuleCalibration | None = None

    @property
    def kind(self) -> str:
        """The model kind (``"early_warning"`` or ``"persistence"``)."""
        return self.model.kind


@dataclass(frozen=True)
class TrainingFailure:
    """A model kind that could not be trained on this training set, and why (for example
    a population too small in this book for the split)."""

    kind: str
    error: str


# ------------------------------------------------------------------------ training


def _window(parts: Mapping[str, pd.DataFrame], bounds: SplitBounds) -> dict[str, str]:
    out = {}
    for name, part in parts.items():
        d = _dates(part["as_of"])
        out[f"{name}_start"] = str(d.min().date()) if len(d) else ""
        out[f"{name}_end"] = str(d.max().date()) if len(d) else ""
    out["train_labels_before"] = str(bounds.val_start.date())
    out["val_labels_before"] = str(bounds.test_start.date())
    # The last day whose data the training read (the test outcomes the gate judged
    # included): the model may score only dates after it (``DelinqModel.data_end``).
    ends = [d.max() for part in parts.values() if len(part)
            for d in (_dates(part["as_of"]), _dates(part["label_resolved_date"]))]
    ends = [e for e in ends if pd.notna(e)]
    out["data_end"] = str(max(ends).date()) if ends else ""
    return out


def period_evidence(part: pd.DataFrame) -> dict[str, int]:
    """Rows, positive rows and distinct positive accounts of one period's rows (rows and
    positive rows weighted, rounded: the full set's, when the part is sampled), and
    ``kept_rows``, the rows actually in ``part``."""
    pos = part["y"].to_numpy(dtype=float) == 1
    w = row_weights(part)
    rows = len(part) if w is None else int(round(w.sum()))
    positive_rows = int(pos.sum()) if w is None else int(round(w[pos].sum()))
    return {"rows": rows, "positive_rows": positive_rows,
            "positive_accounts": int(part["account_id"][pos].nunique()),
            "kept_rows": len(part)}


def _describe(part: pd.DataFrame) -> str:
    e = period_evidence(part)
    return (f"holds {e['rows']:,} rows, {e['positive_rows']:,} positive "
            f"({e['positive_accounts']:,} accounts)")


def monotone_constraints(feature_names: Sequence[str]) -> dict[str, Any]:
    """LightGBM parameters constraining each feature to its known risk direction
    (+1 / -1, 0 = free: ``features.spec.FEATURE_DIRECTION``); ``intermediate`` costs less
    accuracy than ``basic`` at a small training-time price."""
    return {"monotone_constraints": [FEATURE_DIRECTION.get(f, 0) for f in feature_names],
            "monotone_constraints_method": "intermediate"}


def uniform_rows(part: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The rows of a (possibly sampled) part as a uniform sample of the full set: each row
    kept with probability ``min weight / weight`` (seeded), so what is summarised without
    weights (the drift reference's quantile bins) has the full set's distribution.
    ``part`` itself when it has no weights."""
    w = row_weights(part)
    if w is None:
        return part
    keep = np.random.default_rng(seed).random(len(part)) < w.min() / w
    return part[keep].reset_index(drop=True)


def fit_model(
    train: pd.DataFrame,
    val: pd.DataFrame,
    *,
    feature_names: Sequence[str],
    config: TrainConfig,
    kind: str = "lightgbm",
    stages: StageHook | None = None,
) -> tuple[lgb.Booster, Calibrator, dict[str, list[str]], dict[str, float]]:
    """Fit LightGBM on ``train`` (early stopping on ``val``), calibrate on ``val``.

    Returns the booster trimmed to its best iteration, the calibrator, the categorical
    levels and the validation Briers of the calibration candidates. The parts' ``weight``
    columns, when present, are LightGBM's sample weights and the calibration's.
    ``stages`` times the fit as stage ``kind`` and the calibration as ``calibration``.
    """
    stage = stages or no_stage
    for name, part in (("train", train), ("validation", val)):
        if part["y"].nunique() < 2:
            raise SplitError(f"the {name} period {_describe(part)}: a single outcome class, "
                             f"cannot fit; {_HINT[name]}")
    with stage(kind):
        booster, cats, x_va = _fit_booster(train, val, feature_names=feature_names,
                                           config=config)
    with stage("calibration"):
        raw_val = np.asarray(booster.predict(x_va, raw_score=True), dtype=float)
        choice = choose_calibrator(raw_val, val["y"].to_numpy(dtype=int), seed=config.seed,
                                   weights=row_weights(val))
    return booster, choice.calibrator, cats, choice.brier_by_method


def _fit_booster(train: pd.DataFrame, val: pd.DataFrame, *, feature_names: Sequence[str],
                 config: TrainConfig) -> tuple[lgb.Booster, dict[str, list[str]], pd.DataFrame]:
    """The LightGBM part of :func:`fit_model`: the booster at its best iteration, the
    categorical levels and the validation matrix."""
    cats = categorical_levels(train, feature_names)
    x_tr = feature_matrix(train, feature_names, cats)
    x_va = feature_matrix(val, feature_names, cats)
    y_tr = train["y"].to_numpy(dtype=int)
    y_va = val["y"].to_numpy(dtype=int)
    w_tr, w_va = row_weights(train), row_weights(val)
    weighted = {} if w_tr is None and w_va is None else {
        "sample_weight": w_tr, "eval_sample_weight": [w_va]}
    params = config.lgbm_params(len(train))
    if config.monotone:
        params.update(monotone_constraints(feature_names))
    clf = lgb.LGBMClassifier(**params)
    clf.fit(
        x_tr,
        y_tr,
        eval_X=(x_va,),
        eval_y=(y_va,),
        eval_metric="binary_logloss",
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        **weighted,
    )
    best = clf.best_iteration_ or clf.n_estimators
    booster = lgb.Booster(model_str=clf.booster_.model_to_string(num_iteration=best))
    return booster, cats, x_va


def train_model(
    training_set: pd.DataFrame,
    *,
    kind: str,
    config: TrainConfig | None = None,
    feature_names: Sequence[str] | None = None,
    split: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None,
    stages: StageHook | None = None,
) -> TrainingResult:
    """Train, calibrate and evaluate the model ``kind`` (``"early_warning"`` or
    ``"persistence"``) on the rows of its population.

    The split is :func:`split_by_time` (or a given ``(train, val, test)``, for protocols
    that split otherwise); ``feature_names`` default to :func:`resolve_feature_names`.
    Raises ``ValueError`` when a period holds no row (or a single outcome class) of this
    population. Never mutates ``training_set``. ``stages`` (a
    ``features.pit.training_set.StageHook``) times the fit (stage ``kind``),
    ``calibration`` and ``baselines`` (with the metrics and the drift reference).
    """
    stage = stages or no_stage
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; expected one of {MODELS}")
    config = config or TrainConfig()
    names = (list(feature_names) if feature_names is not None
             else resolve_feature_names(training_set))
    if split is None:
        bounds = split_bounds(training_set, config=config)
        split = split_by_time(training_set, config=config)
    else:
        bounds = SplitBounds(val_start=_dates(split[1]["as_of"]).min(),
                             test_start=_dates(split[2]["as_of"]).min(),
                             test_end=_dates(split[2]["as_of"]).max())
    train, val, test = (p[p["model"] == kind].reset_index(drop=True) for p in split)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if part.empty:
            raise SplitError(f"no {kind} rows in the {name} period; {_HINT[name]}")
    booster, calibrator, cats, briers = fit_model(train, val, feature_names=names, config=config,
                                                  kind=kind, stages=stages)
    window = _window({"train": train, "val": val, "test": test}, bounds)
    bare = DelinqModel(kind=kind, booster=booster, calibrator=calibrator, feature_names=names,
                       categories=cats, feature_set_version=feature_set_version_of(names),
                       data_window=window)
    with stage(kind):
        # The drift reference: the training rows' features and calibrated probabilities.
        ref = uniform_rows(train, seed=config.seed)
        model = replace(bare, reference_profile=reference_profile(
            ref, feature_names=names, scores=bare.risk(ref)))
        test_scores = model.scores(test)
    with stage("baselines"):
        baselines = fit_baselines(
            train, val, feature_names=names, categorical=list(cats), seed=config.seed
        )
        base_scores = {name: baseline_scores(b, test) for name, b in baselines.items()}
        metrics = evaluate_scorers(test, {"lightgbm": test_scores, **base_scores})
        rule_calibration = fit_rule_calibration(val, source="validation")
    return TrainingResult(
        model=model,
        metrics=metrics,
        data_window=window,
        bounds=bounds,
        test=test,
        test_scores=test_scores,
        baseline_scores=base_scores,
        n_rows={"train": len(train), "val": len(val), "test": len(test)},
        params={**config.lgbm_params(len(train)), "best_iteration": booster.current_iteration()},
        calibration_brier=briers,
        evidence={k: period_evidence(p) for k, p in (("train", train), ("val", val),
                                                      ("test", test))},
        rule_calibration=rule_calibration,
    )


def train_models(
    training_set: pd.DataFrame,
    *,
    config: TrainConfig | None = None,
    kinds: Sequence[str] = MODELS,
    feature_names: Sequence[str] | None = None,
    stages: StageHook | None = None,
) -> dict[str, TrainingResult | TrainingFailure]:
    """Each model of ``kinds`` on one shared time split: ``{kind: result}``.

    A kind that cannot be trained on this training set (``ValueError`` of
    :func:`train_model`, e.g. an empty period for its population) becomes a
    :class:`TrainingFailure` and the others still train; :class:`SplitError` naming every
    reason when none can (or when the split itself is impossible). ``stages``: as in
    :func:`train_model`, plus ``split``.
    """
    config = config or TrainConfig()
    with (stages or no_stage)("split"):
        split = split_by_time(training_set, config=config)
    out: dict[str, TrainingResult | TrainingFailure] = {}
    for kind in kinds:
        try:
            out[kind] = train_model(training_set, kind=kind, config=config,
                                    feature_names=feature_names, split=split, stages=stages)
        except ValueError as exc:  # this population only: say so, train the others
            out[kind] = TrainingFailure(kind=kind, error=str(exc))
    failures = [r for r in out.values() if isinstance(r, TrainingFailure)]
    if failures and len(failures) == len(out):
        positives = int((training_set["y"].to_numpy(dtype=float) == 1).sum())
        why = "; ".join(f"{f.kind}: {f.error}" for f in failures)
        if not positives:
            why += ("; the training set holds no positive label at all (no invoice went "
                    "delinquent): nothing to learn (delinquency_dpd sets what counts as late)")
        raise SplitError("no model could be trained: " + why)
    return out
