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
ones would be.

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

Pure functions; nothing here reads the clock or mutates its inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from models.gate import draw_counts
from models.rule import numeric_column

#: Account-bootstrap draws of the difference.
RESAMPLES: Final = 1000
#: Two-sided level of the difference's interval.
LEVEL: Final = 0.95
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
