"""What live performance decides (issue 19): the demotion streak, the holdout draw and
persistent drift, on hand-made run records."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from models.live_policy import demotion_check, in_holdout, persistent_drift


def _run(k: int, *, auc: float | None, rule: float | None, version: str = "3",
         population: str = "early_warning", slice_: str = "untouched") -> dict:
    table = [{"slice": slice_, "population": population, "ranked_by": "model",
              "auc": auc, "rule_auc": rule}]
    return {"run_id": f"r{k}", "as_of": date(2024, 1, 1) + timedelta(days=7 * k),
            "meta": {"model_versions": {population: version}, "live": {"table": table}}}


def test_the_streak_counts_the_latest_runs_below_the_rule() -> None:
    runs = [
        _run(0, auc=0.60, rule=0.70),  # below, but before a run above: not in the streak
        _run(1, auc=0.80, rule=0.70),
        _run(2, auc=0.60, rule=0.65),
        _run(3, auc=None, rule=0.65),  # one class: says nothing, passed over
        _run(4, auc=0.61, rule=0.66),
        _run(5, auc=0.50, rule=0.70, version="2"),  # another version's run
        _run(6, auc=0.62, rule=0.70),
    ]
    check = demotion_check(runs, kind="early_warning", version="3", fallback_runs=3)
    assert [s[0] for s in check.streak] == ["r6", "r4", "r2"]  # newest first
    assert check.demote
    assert check.reason.startswith(
        "early_warning champion v3 ranked untouched accounts below the aging rule in 3 "
        "consecutive resolved runs (2024-02-12 AUC 0.620 vs 0.700; ")
    assert check.reason.endswith("demoted to challenger (live_fallback_runs 3), the aging "
                                 "rule ranks its population")
    assert not demotion_check(runs, kind="early_warning", version="3", fallback_runs=4).demote
    # the all slice and other populations do not count
    other = [_run(k, auc=0.5, rule=0.7, slice_="all") for k in range(5)]
    assert demotion_check(other, kind="early_warning", version="3", fallback_runs=1).streak == ()
    # runs not yet evaluated (no meta["live"]) are not judged
    pending = [{**_run(k, auc=0.5, rule=0.7), "meta": {"model_versions": {
        "early_warning": "3"}}} for k in range(5)]
    assert not demotion_check(pending, kind="early_warning", version="3",
                              fallback_runs=1).demote


def test_an_equal_auc_is_not_below_the_rule() -> None:
    runs = [_run(k, auc=0.7, rule=0.7) for k in range(5)]
    assert demotion_check(runs, kind="early_warning", version="3", fallback_runs=1).streak == ()


def test_the_holdout_is_a_stable_share_of_accounts() -> None:
    ids = [f"ACC{i:05d}" for i in range(20_000)]
    mask = in_holdout(ids, share=0.1)
    assert mask.dtype == bool and abs(mask.mean() - 0.1) < 0.01
    # the same accounts every night, in any order and in any company
    sub = ids[::7][::-1]
    assert (in_holdout(sub, share=0.1) == mask[::7][::-1]).all()
    # a larger share holds the smaller one's accounts
    assert (in_holdout(ids, share=0.2) | ~mask).all()
    assert not in_holdout(ids, share=0.0).any()
    assert np.array_equal(in_holdout([], share=0.5), np.zeros(0, dtype=bool))


def test_drift_alerts_that_persist_warn() -> None:
    a, b = ("early_warning", "dpd_max"), ("persistence", "utilisation")
    history = [{a}, {a, b}, {a, b}]
    (line,) = persistent_drift(history, runs=2) and persistent_drift(history, runs=3)
    assert line.startswith("persistent drift: early_warning dpd_max has a PSI alert in each "
                           "of the last 3 runs (drift_persist_runs 3)")
    assert len(persistent_drift(history, runs=2)) == 2
    assert persistent_drift(history, runs=4) == []  # fewer runs known
    assert persistent_drift(history, runs=0) == []


@pytest.mark.parametrize("share", [0.05, 0.25])
def test_holdout_share_is_close_to_the_setting(share: float) -> None:
    mask = in_holdout([str(i) for i in range(10_000)], share=share)
    assert abs(mask.mean() - share) < 0.015
