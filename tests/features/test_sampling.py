"""Sampling a training set on its labels (features.pit.sampling, issue 11 item 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pit.sampling import (
    WEIGHT,
    Sampling,
    outcome_codes,
    row_weights,
    sample_rows,
)
from features.pit.training_set import as_of_grid, build_training_set, write_training_set
from features.spec import MODELS
from features.synthetic import generate_book

KEYS = ["account_id", "as_of"]


@pytest.fixture(scope="module")
def book():
    return generate_book(300, seed=11, start="2023-01-01", end="2024-03-31")


@pytest.fixture(scope="module")
def full(book) -> pd.DataFrame:
    return build_training_set(book, as_of_dates=as_of_grid(book))


def _strata(frame: pd.DataFrame) -> pd.Series:
    outcome = outcome_codes(frame["y"].to_numpy(dtype=float))
    return frame.assign(outcome=outcome).groupby(["as_of", "model", "outcome"]).size()


def test_rates_from_the_budget() -> None:
    counts = {"early_warning": (100, 800, 100), "persistence": (40, 50, 10)}
    rates = Sampling(max_rows=500).rates(counts)
    # early warning: positives fill at most half the budget, negatives the rest
    assert rates["early_warning"] == (1.0, (500 - 100) / 900)
    assert rates["persistence"] == (1.0, 1.0)  # fits the budget: kept in full
    rates = Sampling(max_rows=100).rates(counts)
    assert rates["early_warning"] == (0.5, (100 - 50) / 900)
    assert Sampling(max_rows=100, negative_rate=0.3).rates(counts)["persistence"][1] == 0.3


def test_sample_is_seeded_and_exact_per_stratum() -> None:
    rng = np.random.default_rng(0)
    model = rng.integers(0, 2, 5000).astype(np.int8)
    y = np.where(rng.random(5000) < 0.1, np.nan, (rng.random(5000) < 0.2).astype(float))
    rates = {m: (1.0, 0.15) for m in MODELS}
    keep, w = sample_rows(model, outcome_codes(y), day=19800, rates=rates, seed=3)
    again, w2 = sample_rows(model, outcome_codes(y), day=19800, rates=rates, seed=3)
    np.testing.assert_array_equal(keep, again)
    np.testing.assert_array_equal(w, w2)
    other, _ = sample_rows(model, outcome_codes(y), day=19800, rates=rates, seed=4)
    assert not np.array_equal(keep, other)
    assert np.all(np.diff(keep) > 0)
    kept_out = outcome_codes(y)[keep]
    for m in range(len(MODELS)):
        for o in (0, 1, 2):
            n = int(((model == m) & (outcome_codes(y) == o)).sum())
            sel = (model[keep] == m) & (kept_out == o)
            # the weights of a stratum sum to its full count
            assert w[sel].sum() == pytest.approx(n, rel=1e-12)
            if o == 0:  # every positive kept, weight 1
                assert sel.sum() == n and np.all(w[sel] == 1.0)


def test_sampled_rows_are_the_full_rows(book, full: pd.DataFrame) -> None:
    sampling = Sampling(negative_rate=0.2, seed=5)
    sampled = build_training_set(book, as_of_dates=as_of_grid(book), sampling=sampling)
    assert list(sampled.columns) == [*full.columns, WEIGHT]
    assert 0.2 * len(full) < len(sampled) < 0.7 * len(full)
    # features computed for the kept rows only are the full set's values of those rows
    joined = sampled.merge(full, on=KEYS, suffixes=("", "_full"), validate="one_to_one")
    assert len(joined) == len(sampled)
    for col in full.columns.drop(KEYS):
        a, b = joined[col], joined[f"{col}_full"]
        assert ((a == b) | (a.isna() & b.isna())).all(), col
    # every count per (as_of, model, outcome) is exact in the weighted sample
    outcome = outcome_codes(sampled["y"].to_numpy(dtype=float))
    weighted = sampled.assign(outcome=outcome).groupby(
        ["as_of", "model", "outcome"])[WEIGHT].sum()
    counts = _strata(full)
    np.testing.assert_allclose(weighted.reindex(counts.index).to_numpy(), counts.to_numpy())
    # deterministic
    again = build_training_set(book, as_of_dates=as_of_grid(book), sampling=sampling)
    pd.testing.assert_frame_equal(sampled, again)


def test_a_budget_the_book_fits_is_the_full_set(book, full: pd.DataFrame) -> None:
    sampled = build_training_set(book, as_of_dates=as_of_grid(book),
                                 sampling=Sampling(max_rows=len(full)))
    pd.testing.assert_frame_equal(sampled.drop(columns=WEIGHT), full)
    assert (sampled[WEIGHT] == 1.0).all() and row_weights(sampled) is None


def _last_weeks(seen: list[pd.Series]):
    def rule(shares: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
        seen.append(shares)
        return shares.index[-6], shares.index[-3]
    return rule


def test_streamed_file_holds_the_frame_and_the_holdout_its_rows(book, full: pd.DataFrame,
                                                                 tmp_path) -> None:
    seen: list[pd.Series] = []
    sampling = Sampling(negative_rate=0.2, seed=2, holdout=_last_weeks(seen))
    dates = as_of_grid(book)
    path = tmp_path / "ts.parquet"
    stats = write_training_set(book, path, as_of_dates=dates, sampling=sampling)
    frame = build_training_set(book, as_of_dates=dates, sampling=sampling)
    back = pd.read_parquet(path)
    back = back.astype({"as_of": "datetime64[s]", "label_resolved_date": "datetime64[s]"})
    pd.testing.assert_frame_equal(back, frame)
    assert stats.rows == len(frame) and stats.labelled_rows > stats.rows
    assert set(stats.rates) == set(MODELS)
    assert not (tmp_path / "ts.parquet.tmp").exists()
    # the holdout rule reads the full grid's censored share per date (what the split reads)
    pd.testing.assert_series_equal(seen[0], full.groupby("as_of")["censored"].mean(),
                                   check_names=False, check_index_type=False)
    start, end = stats.holdout
    held = (frame["as_of"] >= start) & (frame["as_of"] <= end)
    full_held = full[(full["as_of"] >= start) & (full["as_of"] <= end)]
    # kept whole (no holdout budget): the same rows, weight 1; the other dates sampled
    pd.testing.assert_frame_equal(frame.loc[held, full.columns].reset_index(drop=True),
                                  full_held.reset_index(drop=True))
    assert (frame.loc[held, WEIGHT] == 1.0).all() and frame.loc[~held, WEIGHT].max() > 4
    assert stats.holdout_rates == {m: (1.0, 1.0) for m in MODELS}
    assert all(r[1] == 0.2 for r in stats.rates.values())
    # a holdout budget samples them too, every count per stratum still exact
    small = build_training_set(book, as_of_dates=dates, sampling=Sampling(
        negative_rate=0.2, seed=2, holdout=_last_weeks([]), holdout_max_rows=50))
    at = small[(small["as_of"] >= start) & (small["as_of"] <= end)]
    assert len(at) < len(full_held)
    weighted = at.assign(outcome=outcome_codes(at["y"].to_numpy(dtype=float))).groupby(
        ["as_of", "model", "outcome"])[WEIGHT].sum()
    counts = _strata(full_held)
    np.testing.assert_allclose(weighted.reindex(counts.index).to_numpy(), counts.to_numpy())
