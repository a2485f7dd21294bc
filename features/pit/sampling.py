"""Sampling a training set by its labels, so features are computed only for kept rows.

The labels of every (account, ``as_of``) of a grid are cheap (one numba pass per date);
the features are not (about 12 s per ``as_of`` at 1M accounts). So a large training set
is *sampled on its labels* before any feature is computed, with weights that make every
figure computed on the kept rows an unbiased estimate of the same figure on all rows.

Design (stratified simple random sampling without replacement, Horvitz-Thompson weights):

- **strata**: one per ``as_of`` date, model population (``early_warning`` /
  ``persistence``) and outcome (positive ``y == 1``, negative ``y == 0``, censored);
- **rates**: per model population, a positive rate and a negative rate (censored rows
  take the negative rate). :class:`Sampling` gives them explicitly, or derives them from a
  row budget ``max_rows`` per model (:meth:`Sampling.rates`): a population that fits keeps
  every row (rate 1: small books are trained in full, exactly as without sampling); above
  the budget, positives are kept first (all of them while they fill at most half the
  budget, else half the budget's worth) and negatives fill the rest;
- **holdout**: the dates that judge a model (the split's validation and test periods,
  which the caller's :data:`HoldoutRule` finds from the censored share of each date, the
  only thing the split reads to place them) take their own rates, from their own budget
  ``holdout_max_rows`` (``None``: kept in full, weight 1). A few weeks of dates, they are
  cheap to keep whole, and then the test metrics and the gate are the full run's figures
  on the same rows rather than noisy estimates, and early stopping and the calibration see
  the full validation period; the training period alone carries the sampling noise;
- **draw**: a stratum of ``n`` rows at rate ``r < 1`` keeps ``k = ceil(r * n)`` of them,
  drawn uniformly without replacement by a generator seeded with ``(seed, as_of day,
  model, outcome)``: deterministic, and a date's sample does not depend on the other dates
  of the grid;
- **weight** of each kept row: ``n / k``. The weights of a stratum sum to ``n`` exactly,
  so every count per stratum (rows, positives, censored rows per ``as_of``: what the split
  reads) is exact, and any other total (a sum over a subset, e.g. rows whose label resolved
  before a date) is unbiased. Ratios of totals (AUC, Brier, capture@k) are consistent
  estimates. With rate 1 every weight is exactly 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.spec import MODELS

#: The sample weight column of a sampled training set (after the label columns).
WEIGHT = "weight"
#: Outcome codes of a stratum (the seed of its draw uses them).
POSITIVE, NEGATIVE, CENSORED = 0, 1, 2
#: The holdout period of a grid: given the censored share (0-1) of each ``as_of`` date that
#: holds rows (a float Series indexed by the dates as midnight Timestamps, ascending), the
#: first and last ``as_of`` (inclusive) of the validation and test periods, or ``None``
#: (no holdout: every date takes the training rates). ``models.train.holdout_period`` is
#: the split's own rule.
HoldoutRule = Callable[[pd.Series], tuple[pd.Timestamp, pd.Timestamp] | None]


def _budget_rates(n_pos: int, n_neg: int, n_cens: int, budget: int | None
                  ) -> tuple[float, float]:
    """(positive rate, negative rate) of a population of these counts under a row budget
    (module docstring): 1 while it fits, else positives first, up to half the budget."""
    if budget is None or n_pos + n_neg + n_cens <= budget:
        return 1.0, 1.0
    pos_rate = min(1.0, (budget / 2) / n_pos) if n_pos else 1.0
    left = budget - pos_rate * n_pos
    neg_rate = min(1.0, left / (n_neg + n_cens)) if n_neg + n_cens else 1.0
    return pos_rate, neg_rate


@dataclass(frozen=True)
class Sampling:
    """How to sample a training set (module docstring).

    ``max_rows``: the row budget of each model population (``None``: no budget, keep
    everything unless rates are given); ``positive_rate`` / ``negative_rate``: explicit
    rates (0-1) for every population, overriding the budget when set; ``seed``: the seed
    of every stratum's draw. ``holdout``: the rule placing the validation and test periods
    (``None``: none, every date takes the rates above); the budget and the rates then
    apply to the other dates only (the training period), and the holdout's dates take the
    rates of their own row budget ``holdout_max_rows`` per model population (``None``:
    kept in full).
    """

    max_rows: int | None = None
    positive_rate: float | None = None
    negative_rate: float | None = None
    seed: int = 0
    holdout: HoldoutRule | None = None
    holdout_max_rows: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_rows", "holdout_max_rows"):
            budget = getattr(self, name)
            if budget is not None and budget < 2:
                raise ValueError(f"{name} must be at least 2, got {budget}")
        for name in ("positive_rate", "negative_rate"):
            rate = getattr(self, name)
            if rate is not None and not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be within (0, 1], got {rate}")

    def rates(self, counts: Mapping[str, tuple[int, int, int]]) -> dict[str, tuple[float, float]]:
        """``{model: (positive rate, negative rate)}`` from the label counts of the whole
        grid, ``{model: (positives, negatives, censored)}``."""
        out = {}
        for model in MODELS:
            pos_rate, neg_rate = _budget_rates(*counts.get(model, (0, 0, 0)), self.max_rows)
            if self.positive_rate is not None:
                pos_rate = self.positive_rate
            if self.negative_rate is not None:
                neg_rate = self.negative_rate
            out[model] = (pos_rate, neg_rate)
        return out

    def holdout_rates(self, counts: Mapping[str, tuple[int, int, int]]
                      ) -> dict[str, tuple[float, float]]:
        """``{model: (positive rate, negative rate)}`` of the holdout's dates from their
        label counts (as in :meth:`rates`), under ``holdout_max_rows`` only."""
        return {m: _budget_rates(*counts.get(m, (0, 0, 0)), self.holdout_max_rows)
                for m in MODELS}


def outcome_codes(y: np.ndarray) -> np.ndarray:
    """:data:`POSITIVE` / :data:`NEGATIVE` / :data:`CENSORED` (NaN) of labels ``y``."""
    y = np.asarray(y, dtype=float)
    return np.where(np.isnan(y), CENSORED, np.where(y == 1, POSITIVE, NEGATIVE)).astype(np.int8)


def sample_rows(model_codes: np.ndarray, outcomes: np.ndarray, *, day: int,
                rates: Mapping[str, tuple[float, float]], seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(kept positions in increasing order, their weights) of one ``as_of`` date's rows.

    ``model_codes``: index into ``features.spec.MODELS`` per row; ``outcomes``: codes of
    :func:`outcome_codes`; ``day``: the ``as_of`` day number (part of each stratum's
    seed). Every row of a stratum at rate 1 is kept with weight exactly 1.0.
    """
    n_rows = len(model_codes)
    keep = np.zeros(n_rows, dtype=bool)
    weight = np.ones(n_rows, dtype=np.float64)
    for m, model in enumerate(MODELS):
        pos_rate, neg_rate = rates.get(model, (1.0, 1.0))
        for outcome in (POSITIVE, NEGATIVE, CENSORED):
            idx = np.flatnonzero((model_codes == m) & (outcomes == outcome))
            rate = pos_rate if outcome == POSITIVE else neg_rate
            n = len(idx)
            if n == 0:
                continue
            if rate >= 1.0:
                keep[idx] = True
                continue
            k = min(n, max(1, math.ceil(rate * n)))
            # SeedSequence entropy must be non-negative: the seed modulo 2**63, the day offset
            rng = np.random.default_rng((int(seed) % 2**63, int(day) + 2**20, m, outcome))
            chosen = idx[rng.choice(n, size=k, replace=False)]
            keep[chosen] = True
            weight[chosen] = n / k
    positions = np.flatnonzero(keep)
    return positions, weight[positions]


def row_weights(frame: pd.DataFrame) -> np.ndarray | None:
    """The sample weights of a training frame's rows (float64), or ``None`` when it has no
    :data:`WEIGHT` column or every weight is 1 (then every computation is the unweighted
    one, bit for bit)."""
    if WEIGHT not in frame.columns:
        return None
    w = frame[WEIGHT].to_numpy(dtype=np.float64)
    return None if bool((w == 1.0).all()) else w
