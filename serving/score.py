"""Nightly scoring: a book as of a date -> worklist, explanations, drift (DESIGN section 8).

:func:`score_book` is the pure library step (features, calibrated probability of the model
that fits each account's segment, priority, rank, action, reason codes, exact TreeSHAP
vectors, PSI drift). ``serving.score_run`` adds the side effects: it loads the champion
models from MLflow and writes one atomic run into the worklist store.

Time semantics: features use everything dated strictly before ``as_of`` (see
``features.build_features``); nothing here reads the clock.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit import build_features
from features.pit.loop import with_loop_features
from features.pit.promises import DEFAULT_GRACE_DAYS
from features.spec import (
    DEFAULT_MATERIALITY,
    FEATURE_SET_VERSION,
    LOOP_FEATURE_SET_VERSION,
    LOOP_FEATURE_SPEC,
    MODEL_OF_SEGMENT,
    Materiality,
    as_day,
    check_feature_frame,
)
from models.drift import bin_counts, psi_from_counts
from models.live_policy import in_holdout
from models.model import DelinqModel
from serving.actions import DEFAULT_POLICY, ActionPolicy
from serving.loop_worklist import loop_facts
from serving.reasons import reason_codes, typical_values
from serving.rule_scoring import RuleScorer, rule_part
from serving.score_worklist import WORKLIST_COLUMNS, worklist_frame
from serving.store_schema import RULE_SCORER

SHAP_PREFIX = "shap_"


class FeatureSetMismatchError(ValueError):
    """The model was trained on a different feature-set version than the code builds."""


@dataclass(frozen=True)
class ScoreResult:
    """Output of :func:`score_book`.

    ``worklist``: one row per scored account (:data:`WORKLIST_COLUMNS`, rank order).
    ``explanations``: ``account_id``, ``model``, ``model_version``, ``base_value`` and
    ``raw_score`` (log-odds), the feature values under their own names and the SHAP values
    as ``shap_<feature>`` (raw-score units; ``base_value + sum(shap_*) == raw_score``).
    ``drift``: ``model``, ``feature`` (``__score__`` for the score), ``psi``, ``flag``.
    ``meta``: counts, per-stage ``timings`` in seconds and a one-line ``message``.
    ``drift_counts``: model -> feature -> rows per reference bin (``models.drift.bin_counts``)
    of the rows ``drift`` was computed from: they add up over account partitions
    (``serving.partitioned``).
    """

    worklist: pd.DataFrame
    explanations: pd.DataFrame
    drift: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    drift_counts: dict[str, dict[str, list[float]]] = field(default_factory=dict)


class _Timer:
    """Per-stage wall-clock and CPU (all threads) seconds, accumulated by stage name.

    CPU seconds are kept because wall time on a shared 2-core machine says more about the
    neighbours than about the code.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0


#: The feature sets this code builds: the base one, and the base one with the collections
#: loop's features (a model trained on a book with promises and contacts, issue 17).
FEATURE_SET_VERSIONS: tuple[str, ...] = (FEATURE_SET_VERSION, LOOP_FEATURE_SET_VERSION)


def check_feature_set(models: Mapping[str, DelinqModel],
                      version: str | tuple[str, ...] = FEATURE_SET_VERSIONS) -> None:
    """Refuse models trained on another feature-set version (error names both versions);
    ``version``: the one version, or the versions, this code builds."""
    allowed = (version,) if isinstance(version, str) else tuple(version)
    for name, model in models.items():
        if str(model.feature_set_version) not in allowed:
            raise FeatureSetMismatchError(
                f"model {name!r} was trained on feature set {model.feature_set_version!r} but "
                f"this code builds feature set {allowed[0]!r}: retrain (`delinq train`) or score "
                "with the matching delinq version"
            )


def score_book(
    book: Book | None,
    *,
    as_of: date | pd.Timestamp,
    models: Mapping[str, DelinqModel],
    table_budget_mb: int = 512,
    policy: ActionPolicy = DEFAULT_POLICY,
    currency: str = "$",
    rules: Mapping[str, RuleScorer] | None = None,
    materiality: Materiality = DEFAULT_MATERIALITY,
    features: pd.DataFrame | None = None,
    holdout_share: float = 0.0,
    grace_days: int = DEFAULT_GRACE_DAYS,
    snoozes: pd.DataFrame | None = None,
    final_notice: Collection[str] = (),
    history_start: date | pd.Timestamp | None = None,
    pay_invoices: np.ndarray | None = None,
    loop: pd.DataFrame | None = None,
) -> ScoreResult:
    """Score every account with open receivables at ``as_of`` (see :class:`ScoreResult`).

    ``models`` maps ``"early_warning"`` and ``"persistence"`` to loaded models; each
    account is scored by the model of its segment (``features.spec.MODEL_OF_SEGMENT``).
    ``probability`` is that model's calibrated probability (0-1), ``priority`` =
    probability x open balance (expected amount at risk, book currency) and ``rank`` 1 is
    the highest priority over the whole book (ties broken by ``account_id``). Explanations
    are exact TreeSHAP values of each account's own model (``models.treeshap``).
    ``final_notice``: ids of accounts dunning sent its final notice (the policy table hands
    them to a person; ``serving.score_run.score_into_store`` reads them from the store).

    ``rules`` maps a population without a gated champion to the aging-rule scorer
    (``serving.rule_scoring``) that ranks it instead: its rows have ``scorer`` =
    ``aging_rule``, the rule's calibrated probability (NaN when the data are too thin:
    priority is then the past-due amount) and the rule's facts as reasons; ``meta``'s
    ``rule_lines`` say why, one line per such population.

    ``features``: the book's features with facts at ``as_of`` under ``materiality``
    (``features.pit.snapshot.Snapshot.features``) when the caller has them already; else
    they are built here.

    ``holdout_share`` (0-1): the random holdout (``models.live_policy.in_holdout``, the
    same accounts every night) of a population with both a model and a rule in ``rules``
    is ranked by the rule, not the model (issue 19: live comparisons free of selection
    bias); ``meta["holdout"]`` counts them per population.

    The collections loop (issue 17, ``serving.loop_worklist``): an account with an open
    promise (``grace_days`` after its promised date) or snoozed (``snoozes``:
    ``account_id``, ``snoozed_until``) is held: ranked after the main ranking, its
    ``hold`` columns set; a promise that broke gives the action "broken promise: follow
    up" and a first reason naming it. A model trained with the loop features
    (``features.spec.LOOP_FEATURE_SET_VERSION``) gets them computed from the book.

    ``history_start``: the first day of the history the reasons cite (default
    ``book.first_date``; an account partition of a book passes the whole book's,
    ``serving.partitioned``). ``pay_invoices``: the row in ``book.invoices`` of each
    payment's invoice (a snapshot's ``prepared.pay_invoices``, ``features.pit.snapshot``)
    when the caller has it: the promises' states then match no payment id again.

    ``loop``: what the scoring reads of ``book`` beyond the features, taken beforehand by
    :func:`book_reads` (which then gave ``features``, with the loop features a model
    reads); ``book`` is not read then and may be None (the nightly frees its Book before
    the scoring's own peak, ``pipelines.steps_partitioned``), given ``history_start``.

    Raises :class:`FeatureSetMismatchError` when a model's feature set is none of
    :data:`FEATURE_SET_VERSIONS` and ``KeyError`` when a population has neither.
    """
    rules = dict(rules or {})
    if history_start is None:
        if book is None:
            raise ValueError("score_book without a book needs history_start")
        history_start = book.first_date
    start = pd.Timestamp(history_start)
    check_feature_set(models)
    as_of_ts = pd.Timestamp(as_day(as_of))
    timer = _Timer()
    if loop is None:
        if book is None:
            raise ValueError("score_book without a book needs loop (book_reads)")
        with timer.stage("features"):
            # the facts reasons and actions cite (oldest open invoice, partial payer) come
            # from the same pass and openness rule as the features
            feats = features if features is not None else build_features(
                book, as_of=as_of_ts.date(), facts=True, materiality=materiality)
        if not feats.empty:
            feats, loop = book_reads(book, as_of=as_of_ts, models=models, features=feats,
                                     grace_days=grace_days, snoozes=snoozes,
                                     pay_invoices=pay_invoices, timer=timer)
    elif features is None:
        raise ValueError("score_book given loop needs the features book_reads gave")
    else:
        feats = features
    if feats.empty:
        return _empty_result(models, as_of_ts, timer,
                             [r.line for k, r in rules.items() if k not in models])
    frame = feats

    model_of = feats["segment"].astype(object).map(MODEL_OF_SEGMENT).to_numpy(dtype=object)
    needed = sorted(set(model_of[pd.notna(model_of)]))
    lacking = [m for m in needed if m not in models and m not in rules]
    if lacking:
        raise KeyError(f"no model given for {lacking}; got {sorted(models)}")

    n = len(feats)
    probability = np.full(n, np.nan)
    version = np.full(n, "", dtype=object)
    scorer = np.full(n, "model", dtype=object)
    calibration = np.full(n, "validation", dtype=object)
    reason_parts, expl_parts, drift_parts = [], [], []
    drift_counts: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    held = np.zeros(n, dtype=bool)
    if holdout_share > 0:
        held = in_holdout(feats["account_id"], share=holdout_share) & np.isin(
            model_of, [k for k in models if k in rules])
    passes = [(name, np.flatnonzero((model_of == name) & ~held), name not in models)
              for name in needed]
    passes += [(name, np.flatnonzero((model_of == name) & held), True)
               for name in needed if held.any()]
    for name, rows, by_rule in passes:
        # the last pass's rows, model matrix and SHAP values go before this pass's copy is
        # made (they are in its explanation and reason parts already; at 1M accounts they
        # were ~1.3 GB held into the second pass)
        part = ex = x = phi = reasons = ranked = None
        part = frame.iloc[rows]
        counts[name] = counts.get(name, 0) + len(rows)
        if not len(rows):
            continue
        if by_rule:
            with timer.stage("rule"):
                ranked = rule_part(part, rules[name], currency=currency)
                probability[rows] = ranked.probability
                scorer[rows] = RULE_SCORER
                calibration[rows] = rules[name].calibration.source
                reason_parts.append(ranked.reasons.set_index(pd.Index(rows)))
                expl_parts.append(ranked.explanations)
            continue
        model = models[name]
        with timer.stage("explain"):
            ex = model.explain(part, table_budget_mb=table_budget_mb)
            x, phi, base = ex.features, ex.values, ex.base_value
        with timer.stage("score"):
            # Additivity of exact TreeSHAP: the explanation's raw score *is* the booster's
            # (to ~1e-9), so the booster need not be evaluated a second time.
            probability[rows] = model.calibrate(ex.raw_score)
            version[rows] = model.version or ""
        with timer.stage("reasons"):
            reasons = reason_codes(
                part, phi, model.feature_names, segment=part["segment"], currency=currency,
                typical=typical_values(model), population=name,
                history_days=(as_of_ts - start).days,
            )
            reason_parts.append(reasons.set_index(pd.Index(rows)))
        with timer.stage("explanations"):
            expl_parts.append(_explanations(part, x, phi, base, ex.raw_score, name,
                                             version[rows]))
        with timer.stage("drift"):
            if model.reference_profile:
                drift_counts[name] = bin_counts(model.reference_profile, x,
                                                scores=probability[rows])
                drift_parts.append(drift_table(model, drift_counts[name], name))

    # Memory (issue 20): the last pass's inputs (a copy of its rows, its model matrix and
    # SHAP values) are not held through what follows, and each gathered whole below frees
    # its parts at once, so the reasons are held at most twice (never three times: parts,
    # their concatenation, its sorted copy) and the explanations are concatenated before
    # the worklist exists.
    part = ex = x = phi = reasons = ranked = None
    with timer.stage("worklist"):
        explanations = pd.concat(expl_parts, ignore_index=True)
        expl_parts.clear()
        reasons_all = pd.concat(reason_parts)
        reason_parts.clear()
        reasons_all = reasons_all.sort_index()
        worklist = worklist_frame(frame, model_of, probability, version, reasons_all,
                                  as_of_ts, policy, scorer=scorer, calibration=calibration,
                                  loop=loop, currency=currency, final_notice=final_notice)
        del reasons_all
        drift = (pd.concat(drift_parts, ignore_index=True) if drift_parts
                 else _empty_drift())

    meta = run_meta(
        as_of_ts=as_of_ts, worklist=worklist, drift=drift, timer=timer, n_by_model=counts,
        models=models, rules=rules,
        holdout={k: int((held & (model_of == k)).sum()) for k in models if held.any()},
        n_held={str(k): int(v) for k, v in worklist["hold"].dropna().value_counts().items()})
    return ScoreResult(worklist=worklist, explanations=explanations, drift=drift, meta=meta,
                       drift_counts=drift_counts)


def book_reads(
    book: Book,
    *,
    as_of: date | pd.Timestamp,
    models: Mapping[str, DelinqModel],
    features: pd.DataFrame,
    grace_days: int = DEFAULT_GRACE_DAYS,
    snoozes: pd.DataFrame | None = None,
    pay_invoices: np.ndarray | None = None,
    timer: _Timer | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What :func:`score_book` reads of ``book`` (with its recorded events) beyond the
    features at ``as_of``: ``(features, loop)``, the non-empty ``features`` (default
    index; checked, ``features.spec.check_feature_frame``) with the collections loop's
    features appended when one of ``models`` reads them, and the loop facts of their
    accounts, in their order (``serving.loop_worklist.loop_facts``; ``snoozes``,
    ``grace_days``, ``pay_invoices`` as :func:`score_book`'s). Given both to
    :func:`score_book` (``features=``, ``loop=``), the scoring reads nothing of ``book``
    any more: its owner may free it first (at 1M accounts ~5 GB)."""
    timer = timer or _Timer()
    as_of_ts = pd.Timestamp(as_day(as_of))
    check_feature_frame(features)
    feats = features.reset_index(drop=True)
    if any(f in LOOP_FEATURE_SPEC for m in models.values() for f in m.feature_names):
        with timer.stage("features"):
            feats = with_loop_features(feats, book, grace_days=grace_days)
    with timer.stage("loop"):
        loop = loop_facts(book, as_of=as_of_ts, accounts=feats["account_id"].tolist(),
                          grace_days=grace_days, snoozes=snoozes, pay_invoices=pay_invoices)
    return feats, loop


def _explanations(
    part: pd.DataFrame,
    x: pd.DataFrame,
    phi: np.ndarray,
    base: float,
    raw: np.ndarray,
    model: str,
    version: np.ndarray,
) -> pd.DataFrame:
    """Wide explanations: ids, base value, raw score, feature values, ``shap_<feature>``."""
    head = pd.DataFrame(
        {
            "account_id": part["account_id"].astype("str").to_numpy(dtype=object),
            "model": model,
            "model_version": pd.Series(version, dtype="str").to_numpy(dtype=object),
            "base_value": base,
            "raw_score": raw,
        }
    ).astype({"account_id": "str", "model": "str", "model_version": "str"})
    values = x.reset_index(drop=True)
    shap = pd.DataFrame(phi, columns=[SHAP_PREFIX + c for c in x.columns])
    return pd.concat([head, values, shap], axis=1)


def drift_table(model: DelinqModel, counts: dict[str, list[float]], name: str) -> pd.DataFrame:
    """The drift rows of population ``name`` (``model``, ``feature``, ``psi``, ``flag``): the
    PSI of its bin ``counts`` (``models.drift.bin_counts``; summed over partitions)."""
    table = psi_from_counts(model.reference_profile, counts)
    table.insert(0, "model", name)
    return table


def run_meta(
    *, as_of_ts: pd.Timestamp, worklist: pd.DataFrame, drift: pd.DataFrame, timer: _Timer,
    n_by_model: Mapping[str, int], models: Mapping[str, DelinqModel],
    rules: Mapping[str, RuleScorer], holdout: Mapping[str, int], n_held: Mapping[str, int],
) -> dict[str, Any]:
    """A scored run's ``meta`` (one definition for a book scored whole and for a run merged
    from partitions, ``serving.partitioned``): counts per model, segment and hold, the
    amount at risk (currency units), drift alerts, stage timings (seconds), the message,
    and the aging rule's lines (populations it ranked) and calibrations."""
    n = len(worklist)
    segments = worklist["segment"].astype(object).value_counts().to_dict()
    rule_lines = [r.line for k, r in rules.items() if k not in models]
    meta = {
        "as_of": as_of_ts.date().isoformat(),
        "n_accounts": n,
        "n_by_model": dict(n_by_model),
        "n_by_segment": {str(k): int(v) for k, v in segments.items()},
        "amount_at_risk": float(worklist["priority"].sum()),
        "n_drift_alerts": int((drift["flag"] == "alert").sum()) if len(drift) else 0,
        "timings": dict(timer.seconds),
        "cpu_timings": dict(timer.cpu),
        "message": f"scored {n:,} accounts with open receivables as of {as_of_ts.date()}",
        "rule_lines": rule_lines,
        # the aging rule as served tonight, per population it was resolved for: what live
        # performance compares the published ranking with (models.live, issue 19)
        "rule_calibrations": {k: r.calibration.to_dict() for k, r in rules.items()},
        "holdout": dict(holdout),
        "n_held": dict(n_held),
    }
    if rule_lines:
        meta["message"] += "; " + "; ".join(rule_lines)
    return meta


def _empty_result(
    models: Mapping[str, DelinqModel], as_of: pd.Timestamp, timer: _Timer,
    rule_lines: list[str],
) -> ScoreResult:
    worklist = pd.DataFrame({c: pd.Series(dtype=_WORKLIST_DTYPES.get(c, "str"))
                             for c in WORKLIST_COLUMNS})
    explanations = pd.DataFrame(
        {c: pd.Series(dtype="str") for c in ("account_id", "model", "model_version")}
        | {c: pd.Series(dtype="float64") for c in ("base_value", "raw_score")}
    )
    drift = _empty_drift()
    message = f"no accounts with open receivables as of {as_of.date()}: the worklist is empty"
    meta = {
        "as_of": as_of.date().isoformat(),
        "n_accounts": 0,
        "n_by_model": {m: 0 for m in models},
        "n_by_segment": {},
        "amount_at_risk": 0.0,
        "n_drift_alerts": 0,
        "timings": dict(timer.seconds),
        "message": "; ".join([message, *rule_lines]),
        "rule_lines": rule_lines,
    }
    return ScoreResult(worklist=worklist, explanations=explanations, drift=drift, meta=meta)


def _empty_drift() -> pd.DataFrame:
    return pd.DataFrame({"model": pd.Series(dtype="str"), "feature": pd.Series(dtype="str"),
                         "psi": pd.Series(dtype="float64"), "flag": pd.Series(dtype="str")})


_WORKLIST_DTYPES = {
    "rank": "int64",
    "reasons_json": "str",
    "open_balance": "float64",
    "past_due_amount": "float64",
    "oldest_dpd": "float64",
    "probability": "float64",
    "priority": "float64",
    "as_of": "datetime64[s]",
    "hold_date": "datetime64[s]",
    "hold_ends": "datetime64[s]",
}
