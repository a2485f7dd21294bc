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
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.spec import MODELS

#: The sample weight column of a sampled training set (after the label columns).
WEIGHT = "weight"
#: Outcome codes of a stratum (the seed of its draw uses them).
POSITIVE, NEGATIVE, CENSORED = 0, 1, 2


@dataclass(frozen=True)
class Sampling:
    """How to sample a training set (module docstring).

    ``max_rows``: the row budget of each model population (``None``: no budget, keep
    everything unless rates are given); ``positive_rate`` / ``negative_rate``: explicit
    rates (0-1) for every population, overriding the budget when set; ``seed``: the seed
    of every stratum's draw.
    """

    max_rows: int | None = None
    positive_rate: float | None = None
    negative_rate: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_rows is not None and self.max_rows < 2:
            raise ValueError(f"max_rows must be at least 2, got {self.max_rows}")
        for name in ("positive_rate", "negative_rate"):
            rate = getattr(self, name)
            if rate is not None and not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be within (0, 1], got {rate}")

    def rates(self, counts: Mapping[str, tuple[int, int, int]]) -> dict[str, tuple[float, float]]:
        """``{model: (positive rate, negative rate)}`` from the label counts of the whole
        grid, ``{model: (positives, negatives, censored)}``."""
        out = {}
        for model in MODELS:
            n_pos, n_neg, n_cens = counts.get(model, (0, 0, 0))
            pos_rate, neg_rate = 1.0, 1.0
            budget = self.max_rows
            if budget is not None and n_pos + n_neg + n_cens > budget:
                pos_rate = min(1.0, (budget / 2) / n_pos) if n_pos else 1.0
                left = budget - pos_rate * n_pos
                neg_rate = min(1.0, left / (n_neg + n_cens)) if n_neg + n_cens else 1.0
            if self.positive_rate is not None:
                pos_rate = self.positive_rate
            if self.negative_rate is not None:
                neg_rate = self.negative_rate
            out[model] = (pos_rate, neg_rate)
        return out


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
