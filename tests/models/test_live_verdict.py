"""Live vs offline in the product's words (issue 19): the sentence reads live first and
says the verdict the evidence rule gave (agrees, differs below / above, too few with the
counts), a run is judged alone and pooled with the earlier runs of its champion version,
and the offline rows a version records are exactly the test period its training judged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.live_agreement import PeriodSpread, judge_agreement, pool_runs
from models.live_verdict import (
    NOT_RECORDED,
    OFFLINE_COLUMNS,
    agreement_lines,
    judge_holdout,
    offline_test_rows,
    verdict_sentence,
    verdict_text,
)


def _rows(accounts: int, *, skill: float, seed: int, prefix: str = "a") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=accounts)
    y = (rng.random(accounts) < 1 / (1 + np.exp(-risk))).astype(float)
    p = 1 / (1 + np.exp(-(skill * risk + rng.normal(scale=0.5, size=accounts))))
    return pd.DataFrame({"account_id": [f"{prefix}{i}" for i in range(accounts)], "y": y,
                         "probability": p})


def test_the_sentence_reads_live_first_and_says_the_rules_verdict() -> None:
    offline = _rows(800, skill=1.0, seed=1)
    same = judge_agreement(_rows(300, skill=1.0, seed=2), offline, resamples=300)
    a = same.agreement
    assert same.verdict == "agrees"
    assert verdict_sentence(same) == (
        f"live AUC {a.live_auc:.3f} vs {a.offline_auc:.3f} offline on the test period: "
        f"agrees (difference {a.difference:+.3f}, 95% interval {a.low:+.3f} to "
        f"{a.high:+.3f}, accounts only: no period spread recorded for this version; "
        f"{same.live.positive:,} positive / {same.live.negative:,} negative accounts over "
        "1 run)")
    assert a.live_auc != a.offline_auc  # the two figures are not swapped
    lost = judge_agreement(_rows(300, skill=0.05, seed=2), offline, resamples=300)
    assert lost.verdict == "differs" and lost.agreement.high < 0
    assert ": differs, live below (difference -0." in verdict_sentence(lost)
    better = judge_agreement(offline, _rows(800, skill=0.05, seed=3), resamples=300)
    assert ": differs, live above (difference +0." in verdict_sentence(better)
    # rule 4: the basis names the period sd and the lag it was taken at (84 days after
    # the test period's midpoint, 2024-01-29: 1.5 windows of 8 weeks, sd halfway between)
    spread = PeriodSpread(window_weeks=8, test_start="2024-01-01", test_end="2024-02-26",
                          sigma_by_lag=(0.02, 0.03))
    dated = judge_agreement(_rows(300, skill=1.0, seed=2), offline, resamples=300,
                            period=spread, live_dates=("2024-04-22", "2024-04-22"))
    assert "accounts and period: period sd 0.025 at 1.5 test periods;" in verdict_sentence(
        dated)


def test_too_few_says_its_counts_live_or_offline() -> None:
    few = _rows(40, skill=1.0, seed=4)
    verdict = judge_agreement(few, _rows(800, skill=1.0, seed=1), runs=3)
    pos, neg = int(few["y"].sum()), int((few["y"] == 0).sum())
    assert verdict_sentence(verdict) == (
        f"too few accounts to judge live vs offline ({pos} positive / {neg} negative over "
        "3 runs; needs 30 each)")
    thin = judge_agreement(_rows(300, skill=1.0, seed=2), few)
    assert verdict_sentence(thin) == (
        f"too few accounts to judge live vs offline (the offline test period holds {pos} "
        f"positive / {neg} negative; needs 30 each)")


def test_a_run_is_judged_alone_and_pooled_with_its_versions_earlier_runs() -> None:
    offline = _rows(800, skill=1.0, seed=1)
    # the holdout's accounts recur weekly: 50 accounts, four runs
    weeks = {f"2024-09-{d:02d}": _rows(50, skill=1.0, seed=10 + d) for d in (2, 9, 16, 23)}
    judged = judge_holdout(weeks, offline)
    assert judged["run"]["verdict"] == "too few" and judged["run"]["runs"] == 1
    assert judged["run"]["first"] == judged["run"]["last"] == "2024-09-23"
    pooled = judge_agreement(pool_runs(weeks), offline, runs=4)
    assert judged["pooled"]["verdict"] == pooled.verdict == "agrees"
    assert (judged["pooled"]["first"], judged["pooled"]["last"], judged["pooled"]["runs"]) == (
        "2024-09-02", "2024-09-23", 4)
    assert judged["pooled"]["difference"] == pytest.approx(pooled.agreement.difference)
    assert judged["pooled"]["line"] == verdict_sentence(pooled)
    assert (judged["pooled"]["positive"], judged["pooled"]["negative"]) == (
        pooled.live.positive, pooled.live.negative)
    text = verdict_text({"version": "3", **judged})
    assert text == (f"pooled over 4 runs 2024-09-02 .. 2024-09-23 of champion v3: "
                    f"{judged['pooled']['line']}; this run alone: {judged['run']['line']}")
    assert agreement_lines({"agreement": {"persistence": {"version": "3", **judged},
                                          "early_warning": {"version": "2",
                                                            "line": NOT_RECORDED}}}) == [
        f"early_warning holdout: {NOT_RECORDED}", f"persistence holdout: {text}"]
    one = judge_holdout({"2024-09-02": weeks["2024-09-02"]}, offline)
    assert verdict_text({"version": "3", **one}) == (
        f"this run, champion v3: {one['pooled']['line']}")
    assert verdict_text(None) is None and agreement_lines({}) == []
    with pytest.raises(ValueError, match="no run"):
        judge_holdout({}, offline)


def test_a_versions_offline_rows_are_the_test_period_its_training_judged(trained_state) -> None:
    for kind, result in trained_state.results.items():
        rows = offline_test_rows(result)
        assert tuple(rows.columns) == OFFLINE_COLUMNS
        assert len(rows) == result.n_rows["test"] == len(result.test)
        np.testing.assert_array_equal(rows["probability"], result.test_scores.proba)
        assert rows["account_id"].tolist() == result.test["account_id"].astype(str).tolist()
        assert set(rows["y"]) == {0, 1}
        # what the champion loaded back from the registry publishes for those rows
        np.testing.assert_allclose(rows["probability"],
                                   trained_state.models[kind].risk(result.test), rtol=1e-9)
