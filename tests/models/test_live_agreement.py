"""Live vs offline agreement (issue 19): the weighted AUC matches scikit-learn's, and the
paired account bootstrap of the difference covers 0 for two samples of one population and
not for a ranking that lost its skill; the evidence rule judges only samples with enough
distinct accounts of each class, pooled runs counting each account once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.gate import MIN_POSITIVE_ACCOUNTS, GatePolicy
from models.live_agreement import (
    MIN_ACCOUNTS,
    PeriodSpread,
    auc_agreement,
    evidence,
    evidence_of_counts,
    judge_agreement,
    movement_by_lag,
    pool_runs,
    subset_aucs,
    weighted_aucs,
)


def test_weighted_auc_is_sklearns_with_ties_and_weights() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300).astype(float)
    score = np.round(rng.random(300) + 0.3 * y, 1)  # coarse: many ties
    w = rng.integers(0, 4, size=(5, 300)).astype(float)
    got = weighted_aucs(y, score, w)
    want = [roc_auc_score(y, score, sample_weight=row) for row in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(weighted_aucs(np.ones(4), np.arange(4.0), np.ones((1, 4))))[0]


def _population(n_accounts: int, *, skill: float, seed: int, dates: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n_accounts)
    rows = []
    for _ in range(dates):  # an account on several as_of dates (the test period)
        y = (rng.random(n_accounts) < 1 / (1 + np.exp(-(risk - 1.0)))).astype(float)
        p = 1 / (1 + np.exp(-(skill * risk + rng.normal(scale=0.5, size=n_accounts))))
        rows.append(pd.DataFrame({"account_id": [f"a{i}" for i in range(n_accounts)],
                                  "y": y, "probability": p}))
    return pd.concat(rows, ignore_index=True)


def test_two_samples_of_one_population_agree_and_a_lost_skill_does_not() -> None:
    offline = _population(600, skill=1.0, seed=1, dates=4)
    live = _population(600, skill=1.0, seed=2).sample(300, random_state=0)
    same = auc_agreement(live, offline, resamples=300)
    assert same.agrees and same.low < same.difference < same.high
    assert same.n_live == 300 and same.n_offline == 2400
    assert same.live_auc == pytest.approx(roc_auc_score(live["y"], live["probability"]))
    # the difference's interval is wider than the live one alone would suggest
    assert same.high - same.low > (same.live_high - same.live_low) * 0.9
    lost = auc_agreement(_population(600, skill=0.1, seed=2), offline, resamples=300)
    assert not lost.agrees and lost.high < 0
    assert lost.to_dict()["agrees"] is False
    # weights of a sampled test period count as rows
    doubled = auc_agreement(live, offline.assign(weight=2.0), resamples=50)
    assert doubled.offline_auc == pytest.approx(same.offline_auc)
    assert len(live) == 300 and "weight" not in offline  # inputs untouched


# The evidence rule (models.live_agreement's rule table), one test per edge, on hand-built
# samples: ``pos`` positive and ``neg`` negative accounts, one row each.
def _sample(pos: int, neg: int, *, prefix: str = "a", skill: float = 1.0) -> pd.DataFrame:
    y = np.r_[np.ones(pos), np.zeros(neg)]
    rng = np.random.default_rng(pos * 1000 + neg)
    p = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(size=pos + neg))))
    return pd.DataFrame({"account_id": [f"{prefix}{i}" for i in range(pos + neg)],
                         "y": y, "probability": p})


OFFLINE = _sample(200, 400, prefix="t")


def test_rule_1_below_the_gates_minimum_of_either_class_is_too_few_to_judge() -> None:
    assert MIN_ACCOUNTS == MIN_POSITIVE_ACCOUNTS == GatePolicy().min_positive_accounts == 30
    few = judge_agreement(_sample(29, 40), OFFLINE, resamples=50)
    assert few.verdict == "too few" and few.agreement is None  # no interval drawn
    assert few.line() == ("too few to judge (29 positive / 40 negative accounts; "
                          "needs 30 each); 1 run(s)")
    assert judge_agreement(_sample(40, 29), OFFLINE, resamples=50).verdict == "too few"
    # at the minimum of both classes: judged
    enough = judge_agreement(_sample(30, 30), OFFLINE, resamples=50)
    assert enough.verdict in ("agrees", "differs") and enough.agreement is not None


def test_pooled_runs_count_each_account_once() -> None:
    # three weekly runs of the same 40 positive / 12 negative accounts: 156 rows, still
    # 12 negative accounts (the holdout re-uses its accounts every week)
    same = pool_runs({f"w{k}": _sample(40, 12) for k in range(3)})
    assert len(same) == 156 and set(same["run_id"]) == {"w0", "w1", "w2"}
    ev = evidence(same)
    assert (ev.positive, ev.negative, ev.enough) == (40, 12, False)
    assert judge_agreement(same, OFFLINE, runs=3, resamples=50).verdict == "too few"
    # three runs of different accounts: 36 negative accounts, judged
    other = pool_runs({f"w{k}": _sample(40, 12, prefix=f"r{k}-") for k in range(3)})
    assert evidence(other).negative == 36
    assert judge_agreement(other, OFFLINE, runs=3, resamples=50).agreement is not None
    # an account whose label changed between runs counts for both classes; rows without
    # a label or probability do not count
    flip = pd.DataFrame({"account_id": ["x", "x", "y"], "y": [1.0, 0.0, np.nan],
                         "probability": [0.5, 0.5, 0.5]})
    assert (evidence(flip).positive, evidence(flip).negative) == (1, 1)
    assert evidence_of_counts(n_rows=45, n_positive=35).line() == (
        "too few to judge (35 positive / 10 negative accounts; needs 30 each)")


def test_rule_2_an_offline_period_below_the_minimum_is_too_few_too() -> None:
    out = judge_agreement(_sample(40, 40), _sample(20, 400, prefix="t"), resamples=50)
    assert out.verdict == "too few" and out.line().startswith("too few to judge (offline: ")


def test_rules_3_to_5_the_interval_decides_once_the_evidence_suffices() -> None:
    agrees = judge_agreement(_sample(60, 120, prefix="l"), OFFLINE, resamples=200)
    assert agrees.verdict == "agrees" and agrees.line().startswith("agrees: live AUC ")
    assert "accounts only: no period spread recorded" in agrees.line()  # rule 3
    lost = judge_agreement(_sample(60, 120, prefix="l", skill=0.0), OFFLINE, resamples=200)
    assert lost.verdict == "differs" and lost.line().startswith("differs (live below): ")


#: A spread recorded at training: 8-week windows, the test period 2024-05-06..06-30.
SPREAD = PeriodSpread(window_weeks=8, test_start="2024-05-06", test_end="2024-06-30",
                      sigma_by_lag=(0.02, 0.05))


def test_the_period_sd_grows_with_the_lag_as_pre_registered() -> None:
    # lag from the test period's midpoint (06-02 12:00) in 8-week windows
    assert SPREAD.lag_windows("2024-07-28") == pytest.approx((56 - 0.5) / 56)
    assert SPREAD.lag_windows("2024-09-02", "2024-10-28") == pytest.approx(
        SPREAD.lag_windows("2024-09-30"))  # a pooled sample: the middle of its runs
    # linear from (0, 0) through the recorded lags, in proportion beyond the last
    assert [SPREAD.sigma(x) for x in (0, 0.5, 1, 1.5, 2, 3)] == pytest.approx(
        [0.0, 0.01, 0.02, 0.035, 0.05, 0.075])
    assert np.isnan(PeriodSpread(8, "2024-05-06", "2024-06-30").sigma(1.0))
    assert PeriodSpread.from_dict(SPREAD.to_dict()) == SPREAD


def test_movement_by_lag_takes_the_accounts_noise_out_and_keeps_a_trend() -> None:
    # a steady trend of +0.03 per window: every lag-j difference is 0.03 j; each pair's
    # own accounts' variance (0.0001) is taken out of its square
    aucs = [0.90, 0.87, 0.84, 0.81]
    var = {(i, j): 1e-4 for i in range(4) for j in range(i + 1, 4)}
    got = movement_by_lag(aucs, var)
    assert got == pytest.approx([np.sqrt(0.03 ** 2 - 1e-4), np.sqrt(0.06 ** 2 - 1e-4),
                                 np.sqrt(0.09 ** 2 - 1e-4)])
    # differences smaller than the accounts' noise: no movement (not a negative one)
    assert movement_by_lag([0.80, 0.805], {(0, 1): 1e-3}) == (0.0,)
    assert movement_by_lag([0.80], {}) == ()


def test_rule_4_the_period_shift_widens_the_interval_not_the_accounts_draws() -> None:
    live = _sample(60, 120, prefix="l", skill=0.45)
    alone = auc_agreement(live, OFFLINE, resamples=300)
    both = auc_agreement(live, OFFLINE, resamples=300, period_sd=0.08)
    # the same account draws (sd, each figure's own interval), a wider difference interval
    assert (both.sd, both.live_low, both.offline_high) == (
        alone.sd, alone.live_low, alone.offline_high)
    assert both.high - both.low > alone.high - alone.low + 2 * 1.5 * 0.08 * 0.5
    assert both.difference == alone.difference and both.period_sd == 0.08
    with pytest.raises(ValueError, match="period_sd"):
        auc_agreement(live, OFFLINE, period_sd=-0.1)
    # judged: accounts only it differs; with a spread recorded, the lag's sd decides
    assert not alone.agrees
    wide = PeriodSpread(window_weeks=8, test_start="2024-05-06", test_end="2024-06-30",
                        sigma_by_lag=(0.1,))
    judged = judge_agreement(live, OFFLINE, resamples=300, period=wide,
                             live_dates=("2024-09-02", "2024-10-28"))
    assert judged.lag == pytest.approx(wide.lag_windows("2024-09-30"))
    assert judged.agreement.period_sd == pytest.approx(wide.sigma(judged.lag))
    assert judged.verdict == "agrees", judged.line()
    assert f"period sd {wide.sigma(judged.lag):.3f} at lag {judged.lag:.1f}" in judged.line()
    # without the live runs' dates the lag is unknown: accounts only (rule 3)
    assert judge_agreement(live, OFFLINE, resamples=300, period=wide).verdict == "differs"


def test_subset_aucs_draw_whole_accounts_without_replacement() -> None:
    # a ranks above b and d, c only above b: of the 6 pairs of accounts, {c, d} scores 0,
    # {a, c} and {b, d} hold one class (NaN), the other three 1; a brings both its rows
    rows = pd.DataFrame({"account_id": ["a", "a", "b", "c", "d", "e"],
                         "y": [1.0, 1.0, 0.0, 1.0, 0.0, 0.0],
                         "probability": [0.9, 0.85, 0.1, 0.2, 0.8, np.nan]})
    got = subset_aucs(rows, accounts=2, draws=300, seed=1)
    assert got.shape == (300,)
    assert set(got[np.isfinite(got)]) == {0.0, 1.0}
    assert 0.05 < np.mean(got == 0.0) < 0.3 and np.isnan(got).any()  # 1 pair in 6
    # every account drawn: the whole sample's AUC each time (e's row has no probability)
    whole = subset_aucs(rows, accounts=4, draws=3)
    ok = rows["probability"].notna()
    np.testing.assert_allclose(whole, roc_auc_score(rows["y"][ok], rows["probability"][ok]))
    for bad in (0, 5):
        with pytest.raises(ValueError, match="accounts must be within 1 .. 4"):
            subset_aucs(rows, accounts=bad)
