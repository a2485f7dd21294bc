"""The period spread recorded at training (issue 19; ``models.live_period``, rule 4 of
``models.live_agreement``): window 0 is the test period, each window is judged out of time
(changing the outcomes its refit must not see leaves its AUC unchanged), the movement by lag
is the stored windows' (accounts' noise taken out). The training step that stores it on the
model version's run is tested in ``tests/pipelines/test_train_steps.py``."""

from __future__ import annotations

import pandas as pd
import pytest

from models.live_agreement import PeriodSpread
from models.live_period import period_spread, window_bounds


@pytest.fixture
def spread(trained_spreads) -> PeriodSpread:
    return trained_spreads["early_warning"]


def test_windows_step_back_from_the_test_period_and_the_movement_is_theirs(
    spread, trained_state
) -> None:
    r = trained_state.results["early_warning"]
    w0 = spread.windows[0]
    # window 0 is the test period itself: its dates and its rows
    assert (w0["start"], w0["end"]) == (r.data_window["test_start"], r.data_window["test_end"])
    assert w0["rows"] == len(r.test)
    assert len(spread.windows) >= 2, spread  # this book holds two 6-week windows at least
    step = pd.Timedelta(weeks=trained_state.config.test_weeks)
    for newer, older in zip(spread.windows, spread.windows[1:], strict=False):
        assert pd.Timestamp(newer["start"]) - pd.Timestamp(older["start"]) == step
        assert min(older["positive_accounts"], older["negative_accounts"]) >= 30
        assert 0.5 < older["auc"] <= 1 and 0 < older["sd"] < 0.1
    assert len(spread.sigma_by_lag) == len(spread.windows) - 1
    assert spread.sigma(1.0) == spread.sigma_by_lag[0]


def test_a_window_is_judged_out_of_time(spread, trained_state) -> None:
    """The refit for window 0 learns only from rows resolved before its validation gap:
    scrambling every outcome from that gap on, except the window's own, leaves its AUC as
    it was (a refit that saw them would move), while window 1's (inside the gap) moves."""
    r = trained_state.results["early_warning"]
    frame = trained_state.training_set
    val_start, start, end = window_bounds(r, config=trained_state.config, windows=1)[0]
    day = pd.to_datetime(frame["as_of"])
    later = (day >= val_start) & ~((day >= start) & (day <= end)) & frame["y"].notna()
    y = frame["y"].to_numpy(dtype=float).copy()
    y[later.to_numpy()] = 1.0 - y[later.to_numpy()]  # every later outcome turned round
    scrambled = period_spread(frame.assign(y=y), r, config=trained_state.config, windows=2)
    assert scrambled.windows[0]["auc"] == spread.windows[0]["auc"]
    assert scrambled.windows[1]["auc"] != pytest.approx(spread.windows[1]["auc"], abs=1e-3)
    assert frame["y"].equals(trained_state.training_set["y"])  # input untouched
