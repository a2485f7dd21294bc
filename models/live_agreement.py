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

**The evidence rule** (pre-registered: the period part was fixed, with the rule below, in
the commit that added it and before ``bench.live`` was run again; :func:`judge_agreement`;
tried top to bottom, the first that matches decides). The live sample is a population's
resolved holdout rows, of one run or pooled over its resolved runs of one champion version
(the offline figure is that version's test period):

=====  ==============================================  =====================================
 #      when                                            verdict (:attr:`AgreementVerdict.line`)
=====  ==============================================  =====================================
 1      the live sample holds fewer than                ``too few to judge (N positive / M
        :data:`MIN_ACCOUNTS` distinct accounts with a   negative accounts; needs 30 each)``
        positive label, or fewer with a negative one    (no interval is drawn)
 2      the offline test period holds fewer (the        ``too few to judge (offline: ...)``
        gate's own minimum; a gated model's has them)
 3      no :class:`PeriodSpread` was recorded when the  ``agrees`` / ``differs`` on the
        champion was trained (trained before it was,    account bootstrap alone, the line
        or a history too short for two windows)         saying ``accounts only: no period
                                                        spread recorded``
 4      the interval of live minus offline covers 0,    ``agrees``
        each account-bootstrap draw of the difference
        shifted by an independent normal draw of sd
        :meth:`PeriodSpread.sigma` at the live
        sample's lag (two-level: periods, accounts)
 5      otherwise                                       ``differs`` (live below / above)
=====  ==============================================  =====================================

**Why the period part** (rule 4). An offline test-period AUC is one period's estimate: the
account bootstrap says how much it moves with the accounts drawn, not how much the metric
moves from one period of that length to the next, and the live weeks are another period.
On a book whose separability grows with its age (the synthetic one: 8-week windows
0.815 -> 0.903 in half a year), a model that ranks exactly as well as it will on any period
"differs" from its own test period by the accounts-only rule. How much the AUC moves
between periods is measured **at training time, on data known then**
(``models.live_period.period_spread``, stored with the model version in MLflow, so the
live check cannot be tuned after seeing live data):

- windows of the test period's length (``test_weeks``) stepping back from the test period
  (window 0 is the test period's own dates), at most :data:`PERIOD_WINDOWS`;
- each window judged **out of time**: a model refitted with the champion's parameters and
  boosting rounds on the rows whose labels resolved before the window's own validation
  gap (the layout of the real split: train, ``val_weeks``, then the window), scoring only
  that window. The final model's own AUC on earlier windows is not evidence: it was fitted
  on them (in-sample, optimistic and flat), and its validation period chose its rounds and
  calibration; the test period alone is one window, no spread. Refits, not the final
  model, are what "the test-period AUC of a model trained ``k`` windows earlier" means;
- per lag ``j`` windows, the movement ``sigma_j = sqrt(max(0, mean(d^2 - v)))`` over the
  pairs of windows ``j`` apart: ``d`` the difference of their AUCs, ``v`` its own paired
  account-bootstrap variance (:func:`auc_agreement`'s ``sd``), subtracted because the live
  check's bootstrap already carries the accounts' noise. The mean square, not the
  variance: a steady trend is movement (it is what makes live differ from offline);
- at judgment, the lag ``m`` (in windows) is from the test period's midpoint to the live
  sample's (the middle of its first and last run's ``as_of``); ``sigma(m)`` is linear
  between ``(0, 0)`` and the recorded ``(j, sigma_j)`` and beyond the last recorded lag
  ``J`` grows in proportion, ``sigma_J * m / J`` (a trend's growth, the conservative one
  of the usual shapes: a random walk grows as ``sqrt(m)``, a stationary wobble not at all).

The period draws are a separate seeded stream: the account draws (and rules 1-3's
figures) are the same with or without a spread.

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

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
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
#: Most windows of the test period's length the period spread judges (window 0 = the test
#: period): five steps back, about ten months of an 8-week test period's history.
PERIOD_WINDOWS: Final = 6
#: Account-bootstrap draws of each window pair's difference in the period spread (its
#: variance only, not a tail quantile: a few hundred draws give it within ~10%).
PERIOD_RESAMPLES: Final = 200


@dataclass(frozen=True)
class AucAgreement:
    """Live vs offline ROC-AUC: both point estimates (all rows, weighted), their
    ``difference`` (live minus offline), its account-bootstrap interval ``low``..``high``
    at ``level``, and ``agrees`` (the interval covers 0). ``live_low``/``live_high`` and
    ``offline_low``/``offline_high``: each figure's own interval from the same draws.
    ``n_live``/``n_offline``: rows; NaN figures when a frame has one class only.
    ``sd``: the standard deviation of the accounts' draws of the difference;
    ``period_sd``: the sd of the period shift added to each draw (0: accounts only)."""

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
    sd: float = float("nan")
    period_sd: float = 0.0

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


def point_auc(rows: pd.DataFrame) -> float:
    """The ROC-AUC (0-1) of resolved ``rows`` (``y`` 0/1, ``probability``, optional
    ``weight``: a sampled period's row weights), no draws: :func:`weighted_aucs` under the
    rows' own weights. NaN with one class only."""
    y = numeric_column(rows, "y")
    w = numeric_column(rows, "weight") if "weight" in rows.columns else np.ones(len(rows))
    return float(weighted_aucs(y, numeric_column(rows, "probability"), w[None, :])[0])


def auc_agreement(live: pd.DataFrame, offline: pd.DataFrame, *, resamples: int = RESAMPLES,
                  level: float = LEVEL, seed: int = 0, period_sd: float = 0.0) -> AucAgreement:
    """The paired account-bootstrap comparison (module docstring) of two frames of
    resolved rows, each with ``account_id``, ``y`` (0/1) and ``probability`` (0-1; what
    ROC-AUC ranks), and an optional ``weight`` (a sampled test period's row weights).
    Rows with a missing ``y`` or ``probability`` are left out. ``period_sd`` (AUC units,
    >= 0): each draw of the difference is shifted by an independent normal draw of that sd
    (rule 4 of the module docstring; a separate stream seeded from ``seed``, so the
    accounts' draws are the same with or without it)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be within (0, 1), got {level}")
    if not period_sd >= 0.0:
        raise ValueError(f"period_sd must be >= 0, got {period_sd}")
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
    sd = float(np.nanstd(diff)) if np.isfinite(diff).any() else float("nan")
    if period_sd > 0:
        diff = diff + np.random.default_rng([seed, 1]).normal(0.0, period_sd, resamples)
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
        resamples=resamples, sd=sd, period_sd=float(period_sd))


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
class PeriodSpread:
    """How much the model's test-period AUC moves from one period of the test period's
    length to another (rule 4 of the module docstring), measured at training time
    (``models.live_period.period_spread``) and stored with the model version.
    ``window_weeks``: the windows' length (the test period's, weeks); ``test_start`` /
    ``test_end``: the test period (ISO dates); ``windows``: per window, newest first
    (window 0 = the test period), ``start``, ``end`` (ISO), ``auc`` (0-1, out of time),
    ``sd`` (its account-bootstrap sd), ``rows``, ``positive_accounts``,
    ``negative_accounts``; ``sigma_by_lag``: ``sigma_j`` (AUC units) for lags
    ``j = 1, 2, ...`` windows (empty with fewer than two windows)."""

    window_weeks: int
    test_start: str
    test_end: str
    windows: tuple[dict[str, Any], ...] = ()
    sigma_by_lag: tuple[float, ...] = ()
    method: str = field(default=(
        "out-of-time refits per window (the champion's parameters and rounds, labels "
        "resolved before the window's validation gap); sigma_j = sqrt(max(0, mean(d^2 - v))) "
        "over window pairs j apart"))

    def lag_windows(self, first: date | str | pd.Timestamp,
                    last: date | str | pd.Timestamp | None = None) -> float:
        """The lag, in windows, from the test period's midpoint to the midpoint of a live
        sample whose runs span ``first`` .. ``last`` (``as_of`` dates; one run: ``first``)."""
        t0, t1 = pd.Timestamp(self.test_start), pd.Timestamp(self.test_end)
        a0 = pd.Timestamp(first)
        a1 = pd.Timestamp(last) if last is not None else a0
        days = ((a0 + (a1 - a0) / 2) - (t0 + (t1 - t0) / 2)) / pd.Timedelta(days=1)
        return float(days) / (7.0 * self.window_weeks)

    def sigma(self, lag: float) -> float:
        """The period sd (AUC units) at ``lag`` windows (module docstring): linear between
        ``(0, 0)`` and the recorded ``(j, sigma_j)``, in proportion beyond the last; NaN
        when none is recorded."""
        if not self.sigma_by_lag:
            return float("nan")
        lag = abs(float(lag))
        last = len(self.sigma_by_lag)
        if lag >= last:
            return float(self.sigma_by_lag[-1]) * lag / last
        return float(np.interp(lag, np.arange(last + 1.0), [0.0, *self.sigma_by_lag]))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON) for the MLflow artifact."""
        return {"window_weeks": self.window_weeks, "test_start": self.test_start,
                "test_end": self.test_end, "windows": [dict(w) for w in self.windows],
                "sigma_by_lag": list(self.sigma_by_lag), "method": self.method}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PeriodSpread:
        """The inverse of :meth:`to_dict`."""
        return cls(window_weeks=int(data["window_weeks"]), test_start=str(data["test_start"]),
                   test_end=str(data["test_end"]),
                   windows=tuple(dict(w) for w in data.get("windows", ())),
                   sigma_by_lag=tuple(float(v) for v in data.get("sigma_by_lag", ())),
                   method=str(data.get("method", cls.method)))


def movement_by_lag(aucs: Sequence[float], pair_variance: Mapping[tuple[int, int], float],
                    ) -> tuple[float, ...]:
    """``sigma_j`` for ``j = 1 .. len(aucs) - 1`` (module docstring): per lag, over the
    pairs ``(k, k + j)`` of windows with finite AUCs, ``sqrt(max(0, mean(d^2 - v)))``,
    ``d`` their AUC difference, ``v = pair_variance[(k, k + j)]`` its accounts' variance;
    the list stops at the first lag without a pair."""
    out = []
    for lag in range(1, len(aucs)):
        terms = [(aucs[k] - aucs[k + lag]) ** 2 - pair_variance.get((k, k + lag), 0.0)
                 for k in range(len(aucs) - lag)
                 if np.isfinite(aucs[k]) and np.isfinite(aucs[k + lag])]
        if not terms:
            break
        out.append(float(np.sqrt(max(0.0, float(np.mean(terms))))))
    return tuple(out)


@dataclass(frozen=True)
class AgreementVerdict:
    """The evidence rule's verdict (module docstring): ``evidence`` of the live sample and
    of the offline test period, ``runs`` pooled, and the :class:`AucAgreement` when the
    evidence sufficed (None for "too few": no interval is drawn)."""

    live: Evidence
    offline: Evidence
    runs: int
    agreement: AucAgreement | None
    #: The lag (windows) the period sd was taken at; None: no spread recorded (rule 3).
    lag: float | None = None

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
        basis = (f"{a.level:.0%}: accounts sd {a.sd:.3f}, period sd {a.period_sd:.3f} at "
                 f"lag {self.lag:.1f} test periods" if self.lag is not None else
                 f"{a.level:.0%} account bootstrap; accounts only: no period spread recorded")
        return (f"{self.verdict}{where}: live AUC {a.live_auc:.3f} vs offline "
                f"{a.offline_auc:.3f}, difference {a.difference:+.3f} "
                f"[{a.low:+.3f}, {a.high:+.3f}] ({basis}); "
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
                    level: float = LEVEL, seed: int = 0,
                    period: PeriodSpread | None = None,
                    live_dates: tuple[Any, Any] | None = None) -> AgreementVerdict:
    """The evidence rule (module docstring) on ``live`` (one run's rows, or
    :func:`pool_runs` of ``runs`` runs) against ``offline`` (the test period's rows):
    "too few" without drawing anything below ``minimum`` distinct accounts of a class,
    else :func:`auc_agreement`'s interval decides, widened by the champion's recorded
    ``period`` spread at the lag of ``live_dates`` (the first and last run's ``as_of``;
    both needed for rule 4, else rule 3: accounts only)."""
    got, off = evidence(live, minimum=minimum), evidence(offline, minimum=minimum)
    lag, period_sd = None, 0.0
    if period is not None and live_dates is not None and period.sigma_by_lag:
        lag = period.lag_windows(*live_dates)
        period_sd = period.sigma(lag)
    agreement = (auc_agreement(live, offline, resamples=resamples, level=level, seed=seed,
                               period_sd=period_sd)
                 if got.enough and off.enough else None)
    return AgreementVerdict(live=got, offline=off, runs=int(runs), agreement=agreement,
                            lag=lag)


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
