"""Do live and offline agree? (issue 19, done-when): the live ROC-AUC of a run's ranking
against the offline test-period AUC the training reported, judged by the bootstrap interval
of their **difference** (live minus offline) covering 0.

Both figures are estimates with their own sampling noise: a live run holds a few hundred
accounts of one ``as_of``, the test period a few thousand rows of several ``as_of`` dates
with each account on many of them. Checking the offline point inside the live interval
ignores the second noise; checking that two intervals overlap is a much weaker test than
the 95% level it quotes. The difference's interval carries both.

The bootstrap resamples **accounts** (as ``models.gate`` does): an account drawn ``c``
times brings each of its rows, in both frames, ``c`` times (``c x weight`` for a sampled
test period's rows). One draw serves both frames, so an account present in both (the same
customer in the test period and on the live list) moves both figures together: the paired
interval is the honest one for correlated estimates, and narrower than two independent
ones would be. It carries the accounts' noise, not a period's: the test period is one
window of weeks and the live runs another, so "differs" can be the book changing between
them (a real difference, not an error); :func:`subset_aucs` places a holdout's AUC among
random subsets of its population's accounts to tell that from an unusual draw.

Which live rows make the comparison unbiased is the caller's choice and the whole point:
the offline AUC is over *every* resolved row of the population, so the live rows must be a
random sample of the run's population, not a subset chosen by the model's score. Taking
the contacted top of the worklist out (the ``untouched`` slice of ``models.live``) removes
the rows the model ranked highest (the easiest to rank): that slice's AUC is lower by
construction (selection bias), whatever the model's quality. The random holdout
(``live_holdout_share``, ``models.live_policy.in_holdout``) is that random sample: its
accounts are ranked by the aging rule, so no model-driven priority touched them, and the
champion's probability of them is kept beside the run (``serving.shadow``, role
``holdout``) to be judged once the labels resolve.

**The evidence rule** (pre-registered: fixed before any run was judged by it, in
:func:`judge_agreement`; tried top to bottom, the first that matches decides). The live
sample is a population's resolved holdout rows, of one run or pooled over its resolved
runs of one champion version (the offline figure is that version's test period):

=====  ==============================================  =====================================
 #      when                                            verdict (:attr:`AgreementVerdict.line`)
=====  ==============================================  =====================================
 1      the live sample holds fewer than                ``too few to judge (N positive / M
        :data:`MIN_ACCOUNTS` distinct accounts with a   negative accounts; needs 30 each)``
        positive label, or fewer with a negative one    (no interval is drawn)
 2      the offline test period holds fewer (the        ``too few to judge (offline: ...)``
        gate's own minimum; a gated model's has them)
 3      the difference's interval covers 0              ``agrees``
 4      otherwise                                       ``differs`` (live below / above)
=====  ==============================================  =====================================

:data:`MIN_ACCOUNTS` is the quality gate's evidence minimum
(``models.gate.MIN_POSITIVE_ACCOUNTS``, one definition), asked of *both* classes here: an
AUC compares positives with negatives, and ten negative accounts make an interval that
covers almost anything, or, drawn from a handful of accounts, misses by their quirks. A
verdict needs independent units, and the unit is the account: the holdout's accounts are
the same every week (a stable hash, ``models.live_policy.in_holdout``), so nine weekly runs
of 45 accounts are 45 accounts, not 405. Hence **pooling** (:func:`pool_runs`): a
population's resolved runs are judged together, every resolved row kept (tagged with its
run), the evidence counted in *distinct* accounts and the bootstrap drawing accounts, an
account drawn ``c`` times bringing its rows of every week ``c`` times; the interval then
carries the correlation of an account's weekly rows instead of counting them as new
evidence. A small holdout thus reaches a verdict only when enough distinct accounts of
each class have resolved; until then its line says how many it holds.

Pure functions; nothing here reads the clock or mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from models.gate import MIN_POSITIVE_ACCOUNTS, draw_counts
from models.rule import numeric_column

#: Account-bootstrap draws of the difference.
RESAMPLES: Final = 1000
#: Two-sided level of the difference's interval.
LEVEL: Final = 0.95
#: Distinct accounts of each class (positive, negative) a sample needs for a verdict.
MIN_ACCOUNTS: Final = MIN_POSITIVE_ACCOUNTS
#: The verdicts of the evidence rule (module docstring), in rule order.
VERDICTS: Final = ("too few", "agrees", "differs")
#: Cells of ``resamples x rows`` per block of draws (bounds memory at ~8 bytes each).
_BLOCK_CELLS: Final = 4_000_000


@dataclass(frozen=True)
class AucAgreement:
    """Live vs offline ROC-AUC: both point estimates (all rows, weighted), their
    ``difference`` (live minus offline), its account-bootstrap interval ``low``..``high``
    at ``level``, and ``agrees`` (the interval covers 0). ``live_low``/``live_high`` and
    ``offline_low``/``offline_high``: each figure's own interval from the same draws.
    ``n_live``/``n_offline``: rows; NaN figures when a frame has one class only."""

    live_auc: float
    offline_auc: float
    difference: float
    low: float
    high: float
    live_low: float
    live_high: float
    offline_low: float
    offline_high: float
    n_live: int
    n_offline: int
    level: float
    resamples: int

    @property
    def agrees(self) -> bool:
        """Whether the difference's interval covers 0 (False when it is undefined)."""
        return bool(self.low <= 0.0 <= self.high)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (``agrees`` included) for a table or JSON."""
        return {**asdict(self), "agrees": self.agrees}


def weighted_aucs(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` for the 0/1 labels ``y`` under each row of ``weights``
    (``(draws, rows)``, a row's multiplicity per draw); ties count one half, as
    ``sklearn.metrics.roc_auc_score`` with ``sample_weight``. NaN for a draw with no
    positive or no negative weight."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(np.asarray(score, dtype=float), kind="mergesort")
    s = np.asarray(score, dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # one group per distinct score
    w = np.atleast_2d(np.asarray(weights, dtype=float))[:, order]
    pos = np.add.reduceat(w * y[order], starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - y[order]), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight scored strictly lower
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def auc_agreement(live: pd.DataFrame, offline: pd.DataFrame, *, resamples: int = RESAMPLES,
                  level: float = LEVEL, seed: int = 0) -> AucAgreement:
    """The paired account-bootstrap comparison (module docstring) of two frames of
    resolved rows, each with ``account_id``, ``y`` (0/1) and ``probability`` (0-1; what
    ROC-AUC ranks), and an optional ``weight`` (a sampled test period's row weights).
    Rows with a missing ``y`` or ``probability`` are left out."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be within (0, 1), got {level}")
    parts = []
    for frame in (live, offline):
        y, p = numeric_column(frame, "y"), numeric_column(frame, "probability")
        ok = np.isfinite(y) & np.isfinite(p)
        w = (numeric_column(frame, "weight") if "weight" in frame.columns
             else np.ones(len(frame)))
        parts.append((frame["account_id"].astype(str).to_numpy()[ok], y[ok], p[ok], w[ok]))
    codes, index = pd.factorize(np.concatenate([parts[0][0], parts[1][0]]))
    split = len(parts[0][0])
    acc = (codes[:split], codes[split:])
    points = [float(weighted_aucs(y, p, w[None, :])[0]) for _, y, p, w in parts]
    rng = np.random.default_rng(seed)
    draws = np.empty((2, resamples))
    block = max(1, _BLOCK_CELLS // max(1, len(codes)))
    for b0 in range(0, resamples, block):
        n = min(block, resamples - b0)
        # copies of each account in each draw (one draw for both frames: paired)
        counts = draw_counts(rng, n, len(index))
        for k, (_, y, p, w) in enumerate(parts):
            draws[k, b0:b0 + n] = weighted_aucs(y, p, counts[:, acc[k]] * w)
    diff = draws[0] - draws[1]
    q = ((1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0)

    def interval(values: np.ndarray) -> tuple[float, float]:
        if not np.isfinite(values).any():
            return float("nan"), float("nan")
        lo, hi = np.nanquantile(values, q)
        return float(lo), float(hi)

    lo, hi = interval(diff)
    (llo, lhi), (olo, ohi) = interval(draws[0]), interval(draws[1])
    return AucAgreement(
        live_auc=points[0], offline_auc=points[1], difference=points[0] - points[1],
        low=lo, high=hi, live_low=llo, live_high=lhi, offline_low=olo, offline_high=ohi,
        n_live=len(parts[0][1]), n_offline=len(parts[1][1]), level=level,
        resamples=resamples)


@dataclass(frozen=True)
class Evidence:
    """Distinct accounts of each class in a sample (``positive``: with a ``y == 1`` row,
    ``negative``: with a ``y == 0`` row; an account whose label changed between pooled
    runs is in both) and the ``minimum`` each needs (:data:`MIN_ACCOUNTS`)."""

    positive: int
    negative: int
    minimum: int = MIN_ACCOUNTS

    @property
    def enough(self) -> bool:
        """Whether both classes reach the minimum (rule 1 of the module docstring)."""
        return min(self.positive, self.negative) >= self.minimum

    def line(self) -> str:
        """``too few to judge (N positive / M negative accounts; needs 30 each)``, or
        ``N positive / M negative accounts`` when enough."""
        counts = f"{self.positive:,} positive / {self.negative:,} negative accounts"
        if self.enough:
            return counts
        return f"too few to judge ({counts}; needs {self.minimum} each)"

    def holdout_line(self) -> str:
        """What a report says of a run's random holdout: ``too few to judge live vs offline
        (...; needs 30 each)`` or ``N positive / M negative accounts, enough to judge live
        vs offline``."""
        if self.enough:
            return f"{self.line()}, enough to judge live vs offline"
        return self.line().replace("too few to judge", "too few to judge live vs offline", 1)


def evidence(rows: pd.DataFrame, *, minimum: int = MIN_ACCOUNTS) -> Evidence:
    """The :class:`Evidence` of resolved rows (``account_id``, ``y`` 0/1; rows with a
    missing ``y`` or ``probability``, when present, are left out as in
    :func:`auc_agreement`)."""
    y = numeric_column(rows, "y")
    ok = np.isfinite(y)
    if "probability" in rows.columns:
        ok &= np.isfinite(numeric_column(rows, "probability"))
    acc = rows["account_id"].astype(str).to_numpy()[ok]
    y = y[ok]
    return Evidence(positive=int(pd.unique(acc[y == 1]).size),
                    negative=int(pd.unique(acc[y == 0]).size), minimum=minimum)


def evidence_of_counts(*, n_rows: int, n_positive: int,
                       minimum: int = MIN_ACCOUNTS) -> Evidence:
    """The :class:`Evidence` of one run's stored figures (``models.live`` table row:
    ``n_rows``, ``n_positive``): a run lists each account once, so rows are accounts."""
    return Evidence(positive=int(n_positive), negative=int(n_rows) - int(n_positive),
                    minimum=minimum)


@dataclass(frozen=True)
class AgreementVerdict:
    """The evidence rule's verdict (module docstring): ``evidence`` of the live sample and
    of the offline test period, ``runs`` pooled, and the :class:`AucAgreement` when the
    evidence sufficed (None for "too few": no interval is drawn)."""

    live: Evidence
    offline: Evidence
    runs: int
    agreement: AucAgreement | None

    @property
    def verdict(self) -> str:
        """One of :data:`VERDICTS`."""
        if self.agreement is None:
            return "too few"
        return "agrees" if self.agreement.agrees else "differs"

    def line(self) -> str:
        """The verdict in words with its numbers, for a report."""
        if not self.live.enough:
            return f"{self.live.line()}; {self.runs} run(s)"
        if not self.offline.enough:
            return f"too few to judge (offline: {self.offline.line()})"
        a = self.agreement
        assert a is not None
        where = "" if a.agrees else (" (live below)" if a.high < 0 else " (live above)")
        return (f"{self.verdict}{where}: live AUC {a.live_auc:.3f} vs offline "
                f"{a.offline_auc:.3f}, difference {a.difference:+.3f} "
                f"[{a.low:+.3f}, {a.high:+.3f}] ({a.level:.0%} account bootstrap); "
                f"{self.live.line()}, {self.runs} run(s)")


def pool_runs(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One population's resolved live rows of several runs (run id -> rows with
    ``account_id``, ``y``, ``probability``) as one frame with a ``run_id`` column: every
    row kept; :func:`auc_agreement` resamples accounts, so an account's rows of every
    run move together (module docstring)."""
    parts = [frame.assign(run_id=str(run)) for run, frame in runs.items()]
    if not parts:
        return pd.DataFrame({"account_id": pd.Series(dtype=str), "y": pd.Series(dtype=float),
                             "probability": pd.Series(dtype=float),
                             "run_id": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def subset_aucs(rows: pd.DataFrame, *, accounts: int, draws: int = 500,
                seed: int = 0) -> np.ndarray:
    """ROC-AUCs (``draws`` values, 0-1) of random subsets of ``accounts`` distinct accounts
    of ``rows`` (``account_id``, ``y`` 0/1, ``probability``, optional ``weight``), drawn
    without replacement, each account bringing all its rows (of every pooled run): the
    spread a random holdout of that many accounts shows by the luck of the draw alone,
    to place a holdout's AUC among (is a gap the sample's or the period's?). Rows with a
    missing ``y`` or ``probability`` are left out; NaN for a subset with one class only.
    Raises ``ValueError`` when ``accounts`` is not within 1 .. the distinct accounts."""
    y, p = numeric_column(rows, "y"), numeric_column(rows, "probability")
    ok = np.isfinite(y) & np.isfinite(p)
    w = numeric_column(rows, "weight") if "weight" in rows.columns else np.ones(len(rows))
    codes, index = pd.factorize(rows["account_id"].astype(str).to_numpy()[ok])
    if not 1 <= accounts <= len(index):
        raise ValueError(f"accounts must be within 1 .. {len(index)}, got {accounts}")
    rng = np.random.default_rng(seed)
    picked = np.zeros((draws, len(index)), dtype=bool)
    chosen = np.argsort(rng.random((draws, len(index))), axis=1)[:, :accounts]
    np.put_along_axis(picked, chosen, True, axis=1)
    return weighted_aucs(y[ok], p[ok], picked[:, codes] * w[ok])


def judge_agreement(live: pd.DataFrame, offline: pd.DataFrame, *, runs: int = 1,
                    minimum: int = MIN_ACCOUNTS, resamples: int = RESAMPLES,
                    level: float = LEVEL, seed: int = 0) -> AgreementVerdict:
    """The evidence rule (module docstring) on ``live`` (one run's rows, or
    :func:`pool_runs` of ``runs`` runs) against ``offline`` (the test period's rows):
    "too few" without drawing anything below ``minimum`` distinct accounts of a class,
    else :func:`auc_agreement`'s interval decides."""
    got, off = evidence(live, minimum=minimum), evidence(offline, minimum=minimum)
    agreement = (auc_agreement(live, offline, resamples=resamples, level=level, seed=seed)
                 if got.enough and off.enough else None)
    return AgreementVerdict(live=got, offline=off, runs=int(runs), agreement=agreement)


def holdout_lines(live: Mapping[str, Any]) -> list[str]:
    """Per population with a random holdout judged in a run's ``live`` figures
    (``meta["live"]``), the evidence rule (module docstring) on that holdout alone
    (:meth:`Evidence.holdout_line`), e.g. ``persistence holdout: too few to judge live vs
    offline (35 positive / 10 negative accounts; needs 30 each)``: the nightly summary's
    and ``delinq runs evaluate``'s line. A run lists each account once: rows are accounts."""
    lines = []
    for kind, held in sorted(((live or {}).get("holdout") or {}).items()):
        row = next((r for r in held.get("table", [])
                    if (r.get("slice"), r.get("population"), r.get("ranked_by"))
                    == ("all", kind, "model")), None)
        if row is None:
            continue
        ev = evidence_of_counts(n_rows=row["n_rows"], n_positive=row["n_positive"])
        lines.append(f"{kind} holdout: {ev.holdout_line()}")
    return lines
