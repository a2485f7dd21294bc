"""Training: time split and embargo, calibration, behaviour of the fitted model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.calibration import brier, sigmoid
from models.model import feature_matrix
from models.train import (
    TrainConfig,
    TrainingFailure,
    TrainingResult,
    split_bounds,
    split_by_time,
    train_model,
    train_models,
)
from tests.factories import FAST, FEATURES, make_training_set


@pytest.fixture(scope="module")
def training_set() -> pd.DataFrame:
    return make_training_set(400, 30, seed=0)


@pytest.fixture(scope="module")
def trained(training_set: pd.DataFrame):
    return train_model(training_set, kind="early_warning", config=FAST, feature_names=FEATURES)


def _check_no_leak(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> None:
    val_start = val["as_of"].min()
    test_start = test["as_of"].min()
    assert train["as_of"].max() < val_start
    assert val["as_of"].max() < test_start
    # Every training outcome was known before validation starts, every validation
    # outcome before the test period starts: no row judged later is learned from.
    assert (train["label_resolved_date"] < val_start).all()
    assert (val["label_resolved_date"] < test_start).all()
    for part in (train, val, test):
        assert not part["censored"].any() and part["y"].notna().all()


def test_split_has_no_test_period_row_in_training(training_set: pd.DataFrame) -> None:
    train, val, test = split_by_time(training_set, config=FAST)
    _check_no_leak(train, val, test)
    b = split_bounds(training_set, config=FAST)
    assert test["as_of"].min() >= b.test_start and test["as_of"].max() <= b.test_end
    assert test["as_of"].nunique() == FAST.test_weeks
    keys = ["account_id", "as_of"]
    assert train.merge(test, on=keys).empty and train.merge(val, on=keys).empty


@settings(max_examples=8, deadline=None)
@given(st.integers(2, 8), st.integers(1, 6), st.integers(0, 21))
def test_split_property(val_weeks: int, test_weeks: int, embargo_days: int) -> None:
    frame = make_training_set(60, 30, seed=val_weeks * 100 + test_weeks)
    cfg = TrainConfig(val_weeks=val_weeks, test_weeks=test_weeks, embargo_days=embargo_days)
    train, val, test = split_by_time(frame, config=cfg)
    _check_no_leak(train, val, test)
    assert (val["as_of"].min() - train["as_of"].max()).days > embargo_days
    assert (test["as_of"].min() - val["as_of"].max()).days > embargo_days


def test_trained_model_used_no_test_rows(trained, training_set: pd.DataFrame) -> None:
    w = trained.data_window
    assert pd.Timestamp(w["train_end"]) < pd.Timestamp(w["val_start"])
    assert pd.Timestamp(w["val_end"]) < pd.Timestamp(w["test_start"])
    assert (trained.test["model"] == "early_warning").all()
    assert trained.n_rows["test"] == len(trained.test)
    # The test-period scores are computed once, at training, from the model itself.
    np.testing.assert_array_equal(trained.test_scores.proba, trained.model.risk(trained.test))


def test_short_book_is_a_clear_error() -> None:
    frame = make_training_set(50, 6, seed=1)
    with pytest.raises(ValueError, match="too short"):
        split_by_time(frame, config=TrainConfig(val_weeks=8, test_weeks=8))


def test_metrics_table_has_model_and_baselines(trained) -> None:
    table = trained.metrics
    assert list(table.index) == ["lightgbm", "aging_rule", "aging_rule_key", "balance_only",
                                 "hist_days_late", "logistic_regression"]
    assert {"roc_auc", "brier", "ece", "capture@10"} <= set(table.columns)
    # The latent driver is learnable: the model beats ranking by balance alone.
    assert table.loc["lightgbm", "roc_auc"] > table.loc["balance_only", "roc_auc"] + 0.1


def test_calibration_does_not_worsen_validation_brier(trained, training_set) -> None:
    _, val, _ = split_by_time(training_set, config=FAST)
    val = val[val["model"] == "early_warning"]
    raw = trained.model.raw_score(val)
    y = val["y"].to_numpy(dtype=float)
    assert brier(y, trained.model.calibrate(raw)) <= brier(y, sigmoid(raw)) + 1e-6


def test_later_payment_history_raises_risk(trained) -> None:
    test = trained.test
    later = test.assign(days_late_mean_all=test["days_late_mean_all"] + 10)
    before, after = trained.model.risk(test), trained.model.risk(later)
    assert after.mean() > before.mean() + 0.05
    assert (after >= before - 1e-9).mean() > 0.9


def test_account_ids_change_nothing(training_set: pd.DataFrame, trained) -> None:
    renamed = training_set.assign(
        account_id=("X" + training_set["account_id"].str[::-1]).astype("str")
    )
    again = train_model(renamed, kind="early_warning", config=FAST, feature_names=FEATURES)
    t = trained.test
    np.testing.assert_array_equal(again.model.risk(t), trained.model.risk(t))
    pd.testing.assert_frame_equal(again.metrics, trained.metrics)


def test_unseen_category_level_scores_as_missing(trained) -> None:
    t = trained.test.head(20)
    odd = t.assign(account_region=pd.Categorical(["atlantis"] * len(t)))
    as_nan = t.assign(account_region=pd.Categorical([None] * len(t)))
    x = feature_matrix(odd, trained.model.feature_names, trained.model.categories)
    assert x["account_region"].isna().all()
    np.testing.assert_array_equal(trained.model.risk(odd), trained.model.risk(as_nan))


def test_train_models_shares_one_split(training_set: pd.DataFrame) -> None:
    both = train_models(training_set, config=FAST, feature_names=FEATURES)
    assert set(both) == {"early_warning", "persistence"}
    ew, pe = both["early_warning"], both["persistence"]
    assert isinstance(ew, TrainingResult) and isinstance(pe, TrainingResult)
    assert ew.data_window["test_start"] == pe.data_window["test_start"]
    assert ew.bounds == pe.bounds
    assert (pe.test["model"] == "persistence").all() and pe.kind == "persistence"


def test_one_failing_model_does_not_stop_the_other(training_set: pd.DataFrame) -> None:
    # No persistence row in the test period: that model cannot be judged, the other can.
    b = split_bounds(training_set, config=FAST)
    gone = (training_set["model"] == "persistence") & (training_set["as_of"] >= b.test_start)
    both = train_models(training_set[~gone], config=FAST, feature_names=FEATURES)
    assert isinstance(both["early_warning"], TrainingResult)
    failed = both["persistence"]
    assert isinstance(failed, TrainingFailure) and failed.kind == "persistence"
    assert "no persistence rows in the test period" in failed.error


def test_no_model_trainable_is_one_clear_error(training_set: pd.DataFrame) -> None:
    one_class = training_set.assign(y=training_set["y"].where(training_set["y"].isna(), 0.0))
    with pytest.raises(ValueError, match=r"no model could be trained: early_warning: .*single "
                                         r"outcome class.*; persistence: .*single outcome"):
        train_models(one_class, config=FAST, feature_names=FEATURES)
    with pytest.raises(ValueError, match="unknown model"):
        train_model(training_set, kind="nope", config=FAST)
