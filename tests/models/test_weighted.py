"""Sample weights through training, calibration, metrics and the gate (issue 11 item 1).

A row of weight ``w`` stands for ``w`` rows of the full set: with whole weights every
weighted figure equals the figure on the rows repeated; on a sampled test period the
weighted figures estimate the full period's (tolerances stated below); and with sampling
off (no weights, or all 1) training gives exactly what it gave without them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pit._prep import day_number
from features.pit.sampling import WEIGHT, outcome_codes, sample_rows
from features.spec import MODELS, as_day
from models.calibration import Calibrator, choose_calibrator
from models.evaluate import capture_at_k, evaluate_scorers
from models.gate import bootstrap_capture_difference
from models.train import TrainingResult, train_models
from tests.factories import FAST, FEATURES, make_training_set

#: Tolerances of the estimates on the shared state's early-warning test period
#: (negatives and censored rows kept at rate 0.2): mean of 20 seeded samples vs
#: the full figure (bias), and any single sample (spread).
BIAS_TOL = {"roc_auc": 0.005, "capture@10": 0.02, "brier": 0.003}
SPREAD_TOL = {"roc_auc": 0.035, "capture@10": 0.08, "brier": 0.02}


def _repeat(w: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    return [np.repeat(a, w) for a in arrays]


def test_whole_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    n = 400
    score = rng.normal(size=n)
    amount = np.where(rng.random(n) < 0.3, rng.uniform(10, 500, n), 0.0)
    groups = rng.integers(0, 4, n)
    tie = rng.uniform(0, 1000, n)
    accounts = rng.integers(0, 90, n)
    w = rng.integers(1, 5, n)
    s_r, a_r, g_r, t_r, acc_r = _repeat(w, score, amount, groups, tie, accounts)
    for k in (5, 10, 20):
        assert capture_at_k(score, amount, k=k, groups=groups, tiebreak=tie,
                            weights=w.astype(float)) == pytest.approx(
            capture_at_k(s_r, a_r, k=k, groups=g_r, tiebreak=t_r), abs=1e-12)
    other = score + rng.normal(scale=0.5, size=n)
    kw = dict(k=10, resamples=50, seed=2)
    weighted = bootstrap_capture_difference(
        accounts=accounts, groups=groups, amount=amount, priority_a=score,
        priority_b=other, tiebreak=tie, weights=w.astype(float), **kw)
    repeated = bootstrap_capture_difference(
        accounts=acc_r, groups=g_r, amount=a_r, priority_a=s_r,
        priority_b=np.repeat(other, w), tiebreak=t_r, **kw)
    np.testing.assert_allclose(weighted, repeated, atol=1e-5)
    y = (rng.random(n) < 0.3).astype(float)
    iso_w = Calibrator("isotonic").fit(score, y, w.astype(float))
    iso_r = Calibrator("isotonic").fit(np.repeat(score, w), np.repeat(y, w))
    np.testing.assert_allclose(iso_w.predict(score), iso_r.predict(score), atol=1e-12)
    platt_w = Calibrator("platt").fit(score, y, w.astype(float))
    platt_r = Calibrator("platt").fit(np.repeat(score, w), np.repeat(y, w))
    np.testing.assert_allclose(platt_w.predict(score), platt_r.predict(score), atol=1e-9)
    assert platt_w.params["n_rows"] == int(w.sum())


def _sample(test: pd.DataFrame, *, rate: float, seed: int) -> pd.DataFrame:
    """``test``'s rows sampled as the training set builder samples (per as_of date and
    outcome, negatives and censored at ``rate``), with their weights."""
    parts = []
    for as_of, rows in test.groupby("as_of", sort=True):
        codes = np.array([MODELS.index(m) for m in rows["model"]], dtype=np.int8)
        keep, w = sample_rows(codes, outcome_codes(rows["y"].to_numpy(dtype=float)),
                              day=day_number(as_day(as_of)),
                              rates={m: (1.0, rate) for m in MODELS}, seed=seed)
        parts.append(rows.iloc[keep].assign(**{WEIGHT: w}))
    return pd.concat(parts)


def test_weighted_metrics_estimate_the_full_test_period(trained_state) -> None:
    result = trained_state.results["early_warning"]
    test = result.test.reset_index(drop=True)
    scores = result.test_scores
    full = evaluate_scorers(test, {"lightgbm": scores}).loc["lightgbm"]
    estimates = []
    for seed in range(20):
        sampled = _sample(test, rate=0.2, seed=seed)
        idx = sampled.index.to_numpy()
        sub = type(scores)(proba=scores.proba[idx], priority=scores.priority[idx],
                           ranking=None if scores.ranking is None else scores.ranking[idx])
        assert len(sampled) < 0.5 * len(test)
        estimates.append(evaluate_scorers(sampled.reset_index(drop=True),
                                          {"lightgbm": sub}).loc["lightgbm"])
    est = pd.DataFrame(estimates)
    for metric, tol in BIAS_TOL.items():
        # Unbiased: the mean of the repeats is within 4 standard errors of the full figure
        # (a fixed tolerance failed by chance: on this test period the AUC estimates' sd is
        # ~0.009, so a 20-repeat mean wanders ~0.002; over 200 repeats it lands 0.0008 from
        # the full figure). The bias floor ``tol`` keeps a degenerate zero spread honest.
        e = est[metric].astype(float)
        bound = max(tol, 4 * e.std(ddof=1) / np.sqrt(len(e)))
        assert abs(e.mean() - full[metric]) < bound, (metric, e.mean(), full[metric], bound)
        spread = (est[metric] - full[metric]).abs().max()
        assert spread < SPREAD_TOL[metric], metric


def test_calibration_choice_weighted_counts() -> None:
    # 30 positives of weight 2 are 60 positives of the full set: isotonic is a candidate
    rng = np.random.default_rng(0)
    s = rng.normal(size=400)
    y = np.r_[np.ones(30), np.zeros(370)]
    w = np.r_[np.full(30, 2.0), np.ones(370)]
    assert "isotonic" not in choose_calibrator(s, y).brier_by_method
    assert "isotonic" in choose_calibrator(s, y, weights=w).brier_by_method


def test_sampling_off_trains_exactly_as_before() -> None:
    frame = make_training_set(300, 30, seed=2)
    plain = train_models(frame, config=FAST, feature_names=FEATURES)
    ones = train_models(frame.assign(**{WEIGHT: 1.0}), config=FAST, feature_names=FEATURES)
    for kind in MODELS:
        a, b = plain[kind], ones[kind]
        assert isinstance(a, TrainingResult) and isinstance(b, TrainingResult)
        assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
        assert a.model.calibrator.to_dict() == b.model.calibrator.to_dict()
        pd.testing.assert_frame_equal(a.metrics, b.metrics)
        assert a.evidence["train"]["rows"] == b.evidence["train"]["rows"]
        assert a.model.reference_profile == b.model.reference_profile


def test_weights_change_the_fit() -> None:
    # the weights reach LightGBM: doubling the weight of every positive moves the model
    frame = make_training_set(300, 30, seed=2)
    w = np.where(frame["y"].to_numpy(dtype=float) == 1, 2.0, 1.0)
    plain = train_models(frame, config=FAST, feature_names=FEATURES, kinds=("early_warning",))
    heavy = train_models(frame.assign(**{WEIGHT: w}), config=FAST, feature_names=FEATURES,
                         kinds=("early_warning",))
    a, b = plain["early_warning"], heavy["early_warning"]
    assert isinstance(a, TrainingResult) and isinstance(b, TrainingResult)
    assert b.model.raw_score(a.test).mean() > a.model.raw_score(a.test).mean() + 0.3
    assert b.evidence["test"]["positive_rows"] == 2 * a.evidence["test"]["positive_rows"]
