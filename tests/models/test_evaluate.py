"""Metrics, baselines and calibration on tiny hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.calibration import Calibrator, brier, choose_calibrator, sigmoid
from models.evaluate import (
    aging_rule_score,
    baseline_scores,
    capture_at_k,
    expected_calibration_error,
    fit_baselines,
    hist_days_late_column,
    logistic_rows,
    metrics_table,
    score_metrics,
)


def test_capture_at_k_by_hand() -> None:
    # 10 rows; the top 10% is one row: the one scored 0.9, holding 50 of 100 dollars.
    score = np.array([0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.05])
    amount = np.array([0, 50, 0, 0, 0, 0, 0, 0, 25, 25], dtype=float)
    assert capture_at_k(score, amount, k=10) == pytest.approx(0.5)
    assert capture_at_k(score, amount, k=20) == pytest.approx(0.75)
    assert capture_at_k(score, amount, k=100) == pytest.approx(1.0)


def test_capture_ranks_within_each_group() -> None:
    # Two as_of dates of 10 rows each: each date contributes its own top row.
    score = np.r_[np.arange(10.0), np.arange(10.0) / 100]
    amount = np.zeros(20)
    amount[9] = 10.0  # top of date 1
    amount[19] = 30.0  # top of date 2 although its score is lower than all of date 1's
    groups = np.repeat(["d1", "d2"], 10)
    assert capture_at_k(score, amount, k=10, groups=groups) == pytest.approx(1.0)
    assert capture_at_k(score, amount, k=10) == pytest.approx(0.25)  # pooled: 2 rows of date 1


def test_capture_tiebreak_by_balance() -> None:
    score = np.zeros(10)
    amount = np.zeros(10)
    amount[3] = 1.0
    balance = np.zeros(10)
    balance[3] = 5.0
    assert capture_at_k(score, amount, k=10, tiebreak=balance) == 1.0
    assert capture_at_k(score, amount, k=10) == 0.0  # row order: row 0 first


def test_ece_is_zero_for_perfect_bins_and_positive_otherwise() -> None:
    y = np.array([0, 1] * 50, dtype=float)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.9)) == pytest.approx(0.4)


def test_aging_rule_orders_by_dpd_then_balance() -> None:
    frame = pd.DataFrame({"oldest_dpd": [10, 10, 40, -5], "open_balance": [100.0, 5e6, 1.0, 9e9]})
    order = np.argsort(-aging_rule_score(frame))
    assert list(order) == [2, 1, 0, 3]


def test_hist_days_late_column_prefers_all_history() -> None:
    assert hist_days_late_column(["days_late_mean_180d", "days_late_mean_all"]) == (
        "days_late_mean_all"
    )
    assert hist_days_late_column(["x", "days_late_mean_90d"]) == "days_late_mean_90d"
    assert hist_days_late_column(["x"]) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=20, max_value=300), st.integers(min_value=0, max_value=10_000))
def test_calibrators_are_monotone(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    y = (rng.random(n) < sigmoid(1.5 * s)).astype(float)
    if len(np.unique(y)) < 2:
        y[0], y[1] = 0.0, 1.0
    grid = np.linspace(-5, 5, 101)
    for method in ("isotonic", "platt"):
        p = Calibrator(method=method).fit(s, y).predict(grid)
        assert np.all(np.diff(p) >= -1e-12)
        assert np.all((p > 0) & (p < 1))


def test_choose_calibrator_fixes_a_miscalibrated_score() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=4000)
    y = (rng.random(4000) < sigmoid(s)).astype(float)
    shifted = 3 * s + 2  # over-confident and biased raw score
    choice = choose_calibrator(shifted, y)
    assert brier(y, choice.calibrator.predict(shifted)) < brier(y, sigmoid(shifted))
    restored = Calibrator.from_dict(choice.calibrator.to_dict())
    np.testing.assert_array_equal(restored.predict(shifted), choice.calibrator.predict(shifted))


def test_score_metrics_and_table_columns() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(float)
    p = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(scale=0.1, size=200), 0.01, 0.99)
    m = score_metrics(y, p, priority=p, amount=y * 100)
    assert 0.5 < m["roc_auc"] <= 1.0
    table = metrics_table({"model": m, "coin": score_metrics(y, np.full(200, 0.3),
                                                                priority=rng.random(200),
                                                                amount=y * 100)})
    assert list(table.index) == ["model", "coin"]
    assert table.loc["model", "capture@10"] > table.loc["coin", "capture@10"]


def test_fit_baselines_all_five() -> None:
    rng = np.random.default_rng(2)
    n = 400
    z = rng.normal(size=n)
    frame = pd.DataFrame({
        "oldest_dpd": np.round(10 * z),
        "open_balance": rng.lognormal(7, 1, n),
        "days_late_mean_all": 3 * z + rng.normal(size=n),
        "account_region": pd.Categorical(rng.choice(["n", "s"], n)),
        "y": (rng.random(n) < sigmoid(z)).astype(float),
    })
    feats = ["oldest_dpd", "open_balance", "days_late_mean_all", "account_region"]
    base = fit_baselines(frame, frame, feature_names=feats, categorical=["account_region"])
    assert set(base) == {"aging_rule", "aging_rule_key", "balance_only", "hist_days_late",
                         "logistic_regression"}
    # the rule as served ranks by probability x open balance, its key by DPD then balance
    served, key = baseline_scores(base["aging_rule"], frame), baseline_scores(
        base["aging_rule_key"], frame)
    np.testing.assert_allclose(served.priority, served.proba * frame["open_balance"])
    np.testing.assert_array_equal(key.priority, aging_rule_score(frame))
    np.testing.assert_array_equal(served.ranking, key.ranking)
    for b in base.values():
        p = b.predict_proba(frame)
        assert p.shape == (n,) and np.all((p >= 0) & (p <= 1))
    # An unseen region level must not break the logistic regression.
    other = frame.assign(account_region=pd.Categorical(["w"] * n))
    assert np.isfinite(base["logistic_regression"].predict_proba(other)).all()


def test_the_logistic_baseline_on_a_subsample_ranks_as_the_full_fit() -> None:
    """Above ``logistic_max_rows`` the logistic baseline is fitted on a seeded uniform
    subsample (weights carried): a handful of coefficients from 3,000 of ~9,000 weighted
    rows rank a test set as the full fit does (AUC within 0.005, far inside the gate's
    margins), while a fit on 40 rows (too few) visibly does not: the check can fail."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    n = 30_000
    x = rng.normal(size=(n, 6))
    z = x @ np.array([1.0, -0.8, 0.5, 0.3, 0.0, 0.2]) - 2.0
    frame = pd.DataFrame({f"f{i}": x[:, i] for i in range(6)}).assign(
        account_region=pd.Categorical(rng.choice(["n", "s", "e"], n)),
        open_balance=rng.lognormal(7, 1, n), oldest_dpd=0.0,
        y=(rng.random(n) < sigmoid(z)).astype(float))
    # a sampled training set: every positive, a third of the negatives weighted 3
    keep = (frame["y"] == 1) | (rng.random(n) < 1 / 3)
    frame = frame.assign(weight=np.where(frame["y"] == 1, 1.0, 3.0))
    # the training rows come from the first 20,000, the test rows are the last 10,000
    train = frame[:20_000][keep[:20_000]].reset_index(drop=True)
    test = frame[20_000:]
    feats = [f"f{i}" for i in range(6)] + ["account_region"]

    def auc(max_rows: int) -> float:
        base = fit_baselines(train, test[:500], feature_names=feats, categorical=["account_region"],
                             logistic_max_rows=max_rows)["logistic_regression"]
        return roc_auc_score(test["y"], base.predict_proba(test))

    full = auc(len(train))
    assert auc(3_000) == pytest.approx(full, abs=0.005)
    assert auc(40) < full - 0.005
    rows = logistic_rows(train, max_rows=3_000, seed=0)
    assert len(rows) == 3_000 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, logistic_rows(train, max_rows=3_000, seed=0))
    np.testing.assert_array_equal(logistic_rows(test, max_rows=len(test)), np.arange(len(test)))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=10_000))
def test_capture_is_monotone_in_k_and_complete_at_100(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    amount = np.where(rng.random(n) < 0.3, rng.lognormal(5, 1, n), 0.0)
    amount[0] = 1.0  # at least some delinquent dollars
    groups = rng.integers(0, 3, n)
    caps = [capture_at_k(score, amount, k=k, groups=groups) for k in (5, 10, 20, 50, 100)]
    assert all(a <= b + 1e-12 for a, b in zip(caps, caps[1:], strict=False))
    assert caps[-1] == pytest.approx(1.0)
    # Perfect foresight is an upper bound for any ranking.
    assert capture_at_k(amount, amount, k=10, groups=groups) >= caps[1] - 1e-12
