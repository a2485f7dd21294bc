"""The quality gate: may a trained model rank a worklist at all? (issue 12, item 1)

A model becomes ``champion`` only when its test period says it is worth more than what
would rank its population if it were not promoted: the aging rule **as served**
(``models.rule``: the rule's key, oldest DPD then balance, calibrated into a probability
as serving would calibrate it after this training, the worklist ranked by probability x
open balance; ``models.evaluate`` baseline ``aging_rule``). Three conditions, checked in
this order on the test period the model was judged on (``TrainingResult.test``, scores
computed once at training; nothing is re-scored here):

1. **evidence**: at least :attr:`GatePolicy.min_positive_accounts` distinct accounts with a
   positive label and :attr:`GatePolicy.min_positive_rows` positive rows. Below that every
   comparison is noise (a test period with 0 positives makes every metric NaN).
2. **not constant**: the booster made at least one split and the model's ranking score
   takes more than one value on the test rows (a model with one probability for every
   account ranks nothing; the aging rule would then be what really orders the list).
3. **beats the aging rule as served**: the lower end (:attr:`GatePolicy.quantile`, default
   the 5th percentile) of an *account-level* bootstrap of the capture@10 difference (model
   minus the served rule, :func:`bootstrap_capture_difference`, both worklists by their
   priority: probability x open balance) is above 0, and the model's ROC-AUC (of its
   log-odds) is not below the rule's (of its key). Accounts, not rows, are resampled: an
   account appears on many ``as_of`` dates of the test period and its rows are not
   independent evidence. Comparing with the served rule, not with the rule's bare key,
   matters: a model that only learned the exposure (balance) beats the key, yet the
   served rule uses the exposure too, so the model adds nothing to what the rule ranks.
   The served rule's calibration is fitted only on rows resolved before the test period
   (``models.rule.served_rule_calibration``).

:func:`judge` returns a :class:`GateOutcome` whose ``reason`` is the one line the training
report prints and the registry records on the model version (``tags()``); the line names
the rule it compared with (``Scores.label``) and the interval.

A sampled training set (``features.pit.sampling``): the test rows' ``weight`` column weighs
the positive-row count, both capture@10s, both AUCs and every bootstrap draw (an account
drawn ``c`` times brings each of its rows as ``c x weight`` rows), so the gate judges the
estimate of the full test period. Positive accounts are counted among the kept rows (every
positive is kept unless positives are sampled too, when the count is a lower bound).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from features.pit.sampling import row_weights
from models.evaluate import Scores, balance_score, capture_at_k

if TYPE_CHECKING:
    import lightgbm as lgb

    from models.train import TrainingResult

#: The baseline every model must beat (a key of ``models.evaluate.fit_baselines``: the
#: aging rule as served), also the worklist's ``scorer`` of the rows the rule ranks.
RULE = "aging_rule"
#: How a gate line names the rule when its scores carry no label.
RULE_LABEL = "the aging rule as served"
#: The capture share the gate compares (percent of accounts per ``as_of`` worklist).
GATE_K = 10
#: Tag names on a registered model version (``models.registry``).
TAG = "gate"
TAG_REASON = "gate.reason"
PASSED, FAILED = "passed", "failed"
#: Condition names, in the order they are checked (``GateOutcome.failed``).
CONDITIONS = ("evidence", "not_constant", "beats_aging_rule")
#: Fewest distinct positive accounts a judgement needs (:attr:`GatePolicy.min_positive_accounts`'s
#: default; ``models.live_agreement`` requires as many of each class in a live sample).
MIN_POSITIVE_ACCOUNTS: Final = 30
#: Tolerance of "AUC not below the rule's" (float noise only).
_AUC_TIE = 1e-9
#: Resamples per block of the bootstrap: bounds memory at ~block x rows x 8 bytes.
_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class GatePolicy:
    """The gate's thresholds (settings ``[gate]`` map onto these; defaults defined here).

    ``min_positive_accounts`` and ``min_positive_rows``: evidence the test period must
    hold (distinct accounts with ``y == 1``, rows with ``y == 1``). ``resamples``: account
    bootstrap draws; ``quantile``: the lower bound of the difference's interval that must
    be above 0 (0.05: the 5th percentile); ``seed``: the bootstrap's random seed;
    ``auc_tolerance``: how far the model's ROC-AUC may fall below the rule's (0: not
    below at all); ``capture_tolerance``: how far below 0 the interval's lower end may be
    (0: it must be above 0; setting ``gate.capture_tolerance``, for test books too small to
    show a model's gain over the rule as served).
    """

    min_positive_accounts: int = MIN_POSITIVE_ACCOUNTS
    min_positive_rows: int = 100
    resamples: int = 1000
    quantile: float = 0.05
    seed: int = 0
    auc_tolerance: float = 0.0
    capture_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {self.resamples}")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be within (0, 1), got {self.quantile}")


@dataclass(frozen=True)
class GateOutcome:
    """The gate's verdict on one model: ``passed``; ``failed`` names the first condition
    that failed (one of :data:`CONDITIONS`, ``None`` when passed); ``reason`` is one line
    with the numbers; ``numbers`` the figures behind it (counts, capture@10 of model and
    rule, the difference's point estimate and interval, both AUCs)."""

    passed: bool
    failed: str | None
    reason: str
    numbers: Mapping[str, float] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """MLflow tags recording the verdict on a model version."""
        return {TAG: PASSED if self.passed else FAILED, TAG_REASON: self.reason[:5000]}


def draw_counts(rng: np.random.Generator, n_draws: int, n_accounts: int) -> np.ndarray:
    """``(n_draws, n_accounts)`` copies of each account in ``n_draws`` bootstrap draws of
    ``n_accounts`` accounts with replacement (the account bootstrap of the gate and of
    ``models.live_agreement``)."""
    idx = rng.integers(0, n_accounts, size=(n_draws, n_accounts), dtype=np.int64)
    idx += np.arange(n_draws, dtype=np.int64)[:, None] * n_accounts
    counts = np.bincount(idx.ravel(), minlength=n_draws * n_accounts)
    # float32: counts and cumulative counts are small whole numbers (exact below 2**24).
    return counts.reshape(n_draws, n_accounts).astype(np.float32)


def _captured(
    counts: np.ndarray, *, acc_sorted: np.ndarray, amount_sorted: np.ndarray,
    bounds: np.ndarray, n_top: np.ndarray, share: float,
    weight_sorted: np.ndarray | None = None,
) -> np.ndarray:
    """Captured amount per draw for one fixed row ordering (rows sorted by group, then
    priority). Only a prefix of each group is read: the rows whose copies can fall in the
    group's top ``n_top`` (a draw's top rarely reaches past 1.25x the share); the prefix
    grows until every draw's top fits in it."""
    sizes = np.diff(bounds)
    prefix = np.minimum(sizes, np.ceil(1.25 * share * sizes).astype(np.int64) + 64)
    while True:
        sel = np.concatenate([np.arange(b, b + p) for b, p in zip(bounds[:-1], prefix,
                                                                  strict=True)])
        ws = counts[:, acc_sorted[sel]]  # copies of each prefix row, per draw
        if weight_sorted is not None:  # each copy stands for `weight` rows
            ws *= weight_sorted[sel]
        cum = np.cumsum(ws, axis=1)
        ends = np.cumsum(prefix)
        before = np.zeros((len(counts), len(prefix)), dtype=counts.dtype)
        before[:, 1:] = cum[:, ends[:-1] - 1]
        short = ((cum[:, ends - 1] - before) < n_top).any(axis=0) & (prefix < sizes)
        if not short.any():
            break
        prefix = np.where(short, np.minimum(sizes, 2 * prefix), prefix)
    # Copies of a row taken = clip(n_top - copies ranked above it, 0, its copies), with
    # copies above = cum - ws - before (in place: these arrays are the bulk of the work).
    taken = np.repeat(n_top + before, prefix, axis=1)
    taken -= cum
    taken += ws
    np.clip(taken, 0.0, ws, out=taken)
    return taken @ amount_sorted[sel]


def bootstrap_capture_difference(
    *,
    accounts: np.ndarray,
    groups: np.ndarray,
    amount: np.ndarray,
    priority_a: np.ndarray,
    priority_b: np.ndarray,
    tiebreak: np.ndarray | None = None,
    k: float = GATE_K,
    resamples: int = 1000,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """capture@k of ranking ``a`` minus that of ranking ``b``, over ``resamples`` account
    bootstrap draws (1-D array, one difference per draw; NaN where a draw holds no
    delinquent amount).

    Each draw takes as many accounts as there are, with replacement; an account drawn
    ``w`` times brings each of its rows ``w`` times. capture@k is then exactly
    ``models.evaluate.capture_at_k`` on the resampled rows: per ``groups`` value (the
    ``as_of`` date) the top ``ceil(k% of the group's resampled size)`` rows by priority
    (ties by ``tiebreak``, then row order) are taken, and captured ``amount`` is pooled
    over groups. Copies of a row sit next to each other in that order, so a draw is a
    weighted cumulative sum over one fixed ordering per ranking: vectorised over draws.
    ``weights`` (sample weights of the rows): a drawn row counts ``weight`` times, as in
    ``capture_at_k(..., weights=...)``.
    """
    amount = np.nan_to_num(np.asarray(amount, dtype=float), nan=0.0)
    n = len(amount)
    if n == 0:
        return np.full(resamples, np.nan)
    acc_code, acc_index = pd.factorize(np.asarray(accounts))
    n_acc = len(acc_index)
    grp, grp_index = pd.factorize(np.asarray(groups))
    tie = np.zeros(n) if tiebreak is None else np.nan_to_num(
        np.asarray(tiebreak, dtype=float), nan=-np.inf)
    orders = [np.lexsort((np.arange(n), -tie,
                          -np.nan_to_num(np.asarray(pr, dtype=float), nan=-np.inf), grp))
              for pr in (priority_a, priority_b)]
    # Both orders sort by group first: group boundaries sit at the same positions.
    bounds = np.r_[0, np.cumsum(np.bincount(grp, minlength=len(grp_index)))].astype(np.int64)
    # Rows of each account per group and delinquent amount per account: a draw's group
    # sizes and total amount are then two small matrix products.
    n_grp = len(grp_index)
    w = None if weights is None else np.asarray(weights, dtype=float)
    rows_in_group = np.bincount(acc_code * n_grp + grp, weights=w,
                                minlength=n_acc * n_grp).reshape(n_acc, n_grp).astype(np.float64)
    amount_of_acc = np.bincount(acc_code, weights=amount if w is None else amount * w,
                                minlength=n_acc)
    w32 = None if w is None else w.astype(np.float32)
    # Single precision in the bulk (relative error ~1e-6 on a share: far below any
    # decision the interval informs), double where the totals are formed.
    amount32 = amount.astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    block = max(1, _BLOCK_CELLS // max(n, n_acc))
    for b0 in range(0, resamples, block):
        counts = draw_counts(rng, min(block, resamples - b0), n_acc)
        n_top = np.ceil(k / 100.0 * (counts @ rows_in_group)).astype(np.float32)
        total = counts @ amount_of_acc
        a, b = (_captured(counts, acc_sorted=acc_code[o], amount_sorted=amount32[o],
                          bounds=bounds, n_top=n_top, share=k / 100.0,
                          weight_sorted=None if w32 is None else w32[o]) for o in orders)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0:b0 + len(counts)] = np.where(total > 0, (a - b) / total, np.nan)
    return out


def _auc(y: np.ndarray, ranking: np.ndarray, weights: np.ndarray | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.nan_to_num(np.asarray(ranking, dtype=float), nan=-1e300),
                               sample_weight=weights))


def has_splits(booster: lgb.Booster) -> bool:
    """Whether any tree of ``booster`` made a split (a stump-only model is constant)."""
    return int(np.asarray(booster.feature_importance("split")).sum()) > 0


def judge(
    test: pd.DataFrame,
    *,
    model: Scores,
    rule: Scores,
    made_splits: bool = True,
    policy: GatePolicy | None = None,
) -> GateOutcome:
    """The gate's verdict (module docstring) on the ``test`` rows.

    ``test`` needs ``account_id``, ``as_of``, ``y``, ``delinquent_amount`` and
    ``open_balance`` (the worklist tiebreak), and ``weight`` when sampled (module
    docstring); ``model`` and ``rule`` are the two scorers'
    :class:`~models.evaluate.Scores` of those rows (``priority`` orders the worklist,
    ``ranking`` (else ``proba``) is what ROC-AUC judges; ``rule.label`` names the rule in
    the line, :data:`RULE_LABEL` when empty). ``made_splits``: whether the
    booster split at all (:func:`has_splits`).
    """
    policy = policy or GatePolicy()
    y = test["y"].to_numpy(dtype=float)
    w = row_weights(test)
    pos = y == 1
    n_pos_rows = int(pos.sum()) if w is None else int(round(w[pos].sum()))
    n_pos_accounts = int(pd.Series(test["account_id"].to_numpy()[pos]).nunique())
    numbers: dict[str, float] = {"positive_rows": n_pos_rows,
                                 "positive_accounts": n_pos_accounts}
    if n_pos_accounts < policy.min_positive_accounts or n_pos_rows < policy.min_positive_rows:
        return GateOutcome(False, "evidence", (
            f"gate failed (evidence): the test period holds {n_pos_accounts} positive "
            f"accounts and {n_pos_rows} positive rows; at least "
            f"{policy.min_positive_accounts} and {policy.min_positive_rows} are needed "
            "(settings gate.min_positive_accounts / gate.min_positive_rows, or a longer "
            "test period: train.test_weeks)"), numbers)
    ranking = np.asarray(model.proba if model.ranking is None else model.ranking, dtype=float)
    distinct = int(np.unique(ranking[np.isfinite(ranking)]).size)
    numbers["distinct_scores"] = distinct
    if not made_splits or distinct < 2:
        what = "made no split" if not made_splits else "gives every test row the same score"
        return GateOutcome(False, "not_constant", (
            f"gate failed (not constant): the model {what}; it cannot rank accounts"),
            numbers)
    amount = test["delinquent_amount"].to_numpy(dtype=float)
    groups = test["as_of"].to_numpy()
    tie = balance_score(test)
    cap_m = capture_at_k(model.priority, amount, k=GATE_K, groups=groups, tiebreak=tie,
                         weights=w)
    cap_r = capture_at_k(rule.priority, amount, k=GATE_K, groups=groups, tiebreak=tie,
                         weights=w)
    diffs = bootstrap_capture_difference(
        accounts=test["account_id"].to_numpy(), groups=groups, amount=amount,
        priority_a=model.priority, priority_b=rule.priority, tiebreak=tie, k=GATE_K,
        resamples=policy.resamples, seed=policy.seed, weights=w)
    lo = float(np.nanquantile(diffs, policy.quantile)) if np.isfinite(diffs).any() else np.nan
    hi = float(np.nanquantile(diffs, 1 - policy.quantile)) if np.isfinite(diffs).any() else np.nan
    auc_m = _auc(y, ranking, w)
    auc_r = _auc(y, rule.proba if rule.ranking is None else rule.ranking, w)
    numbers |= {"capture@10": cap_m, "rule_capture@10": cap_r, "difference": cap_m - cap_r,
                "difference_low": lo, "difference_high": hi, "roc_auc": auc_m,
                "rule_roc_auc": auc_r}
    pct = int(round(100 * policy.quantile))
    facts = (f"capture@10 {cap_m:.3f} vs {rule.label or RULE_LABEL} {cap_r:.3f}, difference "
             f"{cap_m - cap_r:+.3f} ({100 - 2 * pct}% account-bootstrap interval "
             f"{lo:+.3f}..{hi:+.3f}, {policy.resamples} resamples); AUC {auc_m:.3f} vs the "
             f"rule's {auc_r:.3f}")
    if not lo > -policy.capture_tolerance:
        return GateOutcome(False, "beats_aging_rule", (
            f"gate failed (does not beat the aging rule as served): {facts}; the "
            f"interval's lower end must be above {0 - policy.capture_tolerance:g}"), numbers)
    if not auc_m >= auc_r - policy.auc_tolerance - _AUC_TIE:
        return GateOutcome(False, "beats_aging_rule", (
            f"gate failed (does not beat the aging rule as served): {facts}; the AUC is "
            "below the rule's" + (f" by more than {policy.auc_tolerance}"
                                  if policy.auc_tolerance else "")), numbers)
    return GateOutcome(True, None, f"gate passed: {facts}", numbers)


#: Verdicts already judged, per training result (weakly held: freed with the result).
_VERDICTS: weakref.WeakKeyDictionary[TrainingResult, dict[GatePolicy, GateOutcome]] = (
    weakref.WeakKeyDictionary())


def judge_result(result: TrainingResult, *, policy: GatePolicy | None = None) -> GateOutcome:
    """:func:`judge` on a training result's test period, scores computed at training.

    A result is immutable and the bootstrap seeded, so its verdict under a policy is
    computed once: the retrain times the gate as its own stage, and the registry's call
    then reads the same verdict instead of drawing the bootstrap again."""
    policy = policy or GatePolicy()
    cached = _VERDICTS.setdefault(result, {})
    if policy not in cached:
        cached[policy] = judge(result.test, model=result.test_scores,
                               rule=result.baseline_scores[RULE],
                               made_splits=has_splits(result.model.booster), policy=policy)
    return cached[policy]


def judge_all(results: Mapping[str, object], *,
              policy: GatePolicy | None = None) -> dict[str, GateOutcome]:
    """:func:`judge_result` of every trained result among ``results`` (model -> a
    ``TrainingResult`` or a failure, which is skipped)."""
    from models.train import TrainingResult

    return {k: judge_result(r, policy=policy) for k, r in results.items()
            if isinstance(r, TrainingResult)}
