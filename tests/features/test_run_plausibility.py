"""Run-level plausibility checks (issue 13): pure functions, numbers in, findings out."""

from __future__ import annotations

import math
from datetime import date

import pytest

from features.contract.options import Plausibility
from features.contract.plausibility import RunTotals, as_of_anomalies, totals_anomalies
from features.contract.rules import ANOMALY_RULES

LIMITS = Plausibility()
BEFORE = RunTotals(open_balance=31_900_000.0, share_late=0.10, accounts=1_499)


def test_as_of_within_the_window_after_the_data_is_plausible():
    assert as_of_anomalies(as_of=date(2024, 8, 15), last_event=date(2024, 7, 1),
                           plausible=LIMITS) == []  # 45 days: the edge is allowed


def test_as_of_years_after_the_data_is_named_with_the_numbers():
    (found,) = as_of_anomalies(as_of=date(2030, 1, 1), last_event=date(2024, 7, 1),
                               plausible=LIMITS)
    assert found.rule == "as_of_beyond_data" and found.rule in ANOMALY_RULES
    assert "2030-01-01 is 2,010 days after the data's last event (2024-07-01" in found.message
    assert "at most 45 allowed" in found.message and "accept_anomalies" in found.message


def test_no_previous_run_nothing_to_compare():
    assert totals_anomalies(BEFORE, None, plausible=LIMITS) == []


@pytest.mark.parametrize(("now", "what"), [
    (RunTotals(432_000_000.0, 0.10, 1_499), "open balance 432,000,000 against 31,900,000"),
    (RunTotals(31_900_000.0, 0.98, 1_499), "share of accounts late 98.0% against 10.0%"),
    (RunTotals(31_900_000.0, 0.10, 120), "accounts scored 120 against 1,499"),
])
def test_a_total_that_jumps_is_named_with_the_numbers(now, what):
    found = totals_anomalies(now, BEFORE, plausible=LIMITS, previous_as_of=date(2024, 7, 1))
    assert [a.rule for a in found] == ["totals_jump"]
    assert what in found[0].message and "since the run of 2024-07-01" in found[0].message


def test_changes_within_the_thresholds_pass_and_thresholds_are_settings():
    near = RunTotals(31_900_000.0 * 1.5, 0.30, 1_499 // 2 + 1)
    assert totals_anomalies(near, BEFORE, plausible=LIMITS) == []
    strict = Plausibility(max_balance_change=0.1)
    assert [a.rule for a in totals_anomalies(near, BEFORE, plausible=strict)] == [
        "totals_jump"]


def test_a_previous_run_without_a_recorded_balance_compares_the_rest():
    old = RunTotals(math.nan, 0.10, 1_499)
    assert totals_anomalies(RunTotals(1e12, 0.10, 1_499), old, plausible=LIMITS) == []
    assert RunTotals.from_meta(RunTotals(5.0, 0.5, 2).as_meta()) == RunTotals(5.0, 0.5, 2)
    assert RunTotals.from_meta({}) is None
