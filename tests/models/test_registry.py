"""MLflow registry: champion/challenger promotion, pyfunc round trip, loading by alias."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.registry import (
    NoChampionError,
    default_tracking_uri,
    load_model,
    log_and_register,
)
from models.train import train_model
from tests.factories import FAST, FEATURES, make_training_set


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One throw-away store for the module (creating the schema is the slow part)."""
    return default_tracking_uri(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def frames() -> pd.DataFrame:
    return make_training_set(400, 30, seed=3)


@pytest.fixture(scope="module")
def good(frames: pd.DataFrame):
    return train_model(frames, model="early_warning", config=FAST, feature_names=FEATURES)


@pytest.fixture(scope="module")
def shuffled(frames: pd.DataFrame):
    # Same rows and test period, labels permuted: a model that learned nothing.
    rng = np.random.default_rng(0)
    bad = frames.copy()
    bad["y"] = rng.permutation(bad["y"].to_numpy())
    bad["censored"] = bad["y"].isna()
    trained = train_model(bad, model="early_warning", config=FAST, feature_names=FEATURES)
    # Judge it on the real outcomes of the same test period.
    real_test = trained.test_frame.copy()
    key = ["account_id", "as_of"]
    truth = frames[key + ["y", "delinquent_amount"]]
    real_test = real_test.drop(columns=["y", "delinquent_amount"]).merge(truth, on=key)
    return dataclasses.replace(trained, test_frame=real_test[real_test["y"].notna()],
                               baseline_scores={})


def test_no_champion_is_a_clear_error(uri: str) -> None:
    with pytest.raises(NoChampionError, match=r"no champion model for 'nope': run `delinq train`"):
        load_model(tracking_uri=uri, registered_name="nope")


def test_champion_then_worse_model_stays_challenger(uri: str, good, shuffled) -> None:
    first = log_and_register(good, tracking_uri=uri, registered_name="ew")
    assert first.promoted and first.version == "1" and first.champion_version == "1"
    store = Path(uri.removeprefix("sqlite:///")).parent
    assert (store / "mlflow.db").exists() and (store / "mlartifacts").is_dir()

    worse = log_and_register(shuffled, tracking_uri=uri, registered_name="ew")
    assert not worse.promoted and worse.version == "2" and worse.champion_version == "1"
    assert worse.comparison["new_capture@10"] < worse.comparison["champion_capture@10"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert str(client.get_model_version_by_alias("ew", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("ew", "challenger").version) == "2"

    # Run contents: metrics of model and baselines, window, card with the rule, plots.
    run = client.get_run(first.run_id)
    assert "lightgbm.capture_at_10" in run.data.metrics
    assert "aging_rule.roc_auc" in run.data.metrics
    assert run.data.params["window_test_start"] == good.data_window["test_start"]
    arts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"model_card.md", "plots", "reference_profile.json", "metrics_table.csv"} <= arts
    plots = {Path(a.path).name for a in client.list_artifacts(first.run_id, "plots")}
    assert plots == {"roc.png", "calibration.png", "capture_curve.png", "shap_summary.png"}
    card = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/model_card.md")
    assert "same test period" in card and "capture@10" in card

    # Loading by alias: the champion is the good model, bit for bit.
    t = good.test_frame
    loaded = load_model(tracking_uri=uri, registered_name="ew")
    assert loaded.version == "1"
    assert loaded.feature_names == good.feature_names
    assert loaded.feature_set_version == good.feature_set_version
    assert loaded.reference_profile == json.loads(json.dumps(good.reference_profile))
    np.testing.assert_allclose(loaded.predict_proba(t), good.predict_proba(t), rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.raw_score(t), good.raw_score(t), rtol=0, atol=1e-12)
    # ... and through plain MLflow pyfunc.
    pyfunc = mlflow.pyfunc.load_model("models:/ew@champion")
    np.testing.assert_allclose(np.asarray(pyfunc.predict(t[good.feature_names])),
                               good.predict_proba(t), rtol=0, atol=1e-12)
    challenger = load_model(tracking_uri=uri, registered_name="ew", alias="challenger")
    assert challenger.version == "2"

    # Retraining to the very same model is not an improvement: it stays challenger.
    again = log_and_register(good, tracking_uri=uri, registered_name="ew")
    assert not again.promoted and again.champion_version == "1" and "not better" in again.reason
    assert load_model(tracking_uri=uri, registered_name="ew").version == "1"


@pytest.mark.slow
def test_train_and_register_end_to_end_on_a_synthetic_book(tmp_path: Path) -> None:
    from features.synthetic import generate_book
    from models.train import TrainConfig, format_report, train_and_register

    book = generate_book(300, seed=5, start="2023-01-01", end="2024-06-30")
    uri = default_tracking_uri(tmp_path)
    cfg = TrainConfig(n_estimators=60, min_child_samples=10, n_jobs=1)
    names = {"early_warning": "t-ew", "persistence": "t-pe"}
    summary = train_and_register(book, tracking_uri=uri, grid="weekly", config=cfg, names=names)
    assert set(summary) == {"early_warning", "persistence"}
    for model, info in summary.items():
        assert info["promoted"] and info["version"] == "1", info
        table = pd.DataFrame.from_dict(info["metrics_table"], orient="index")
        assert {"lightgbm", "aging_rule", "logistic_regression"} <= set(table.index)
        loaded = load_model(tracking_uri=uri, registered_name=names[model])
        assert loaded.model == model and loaded.version == "1"
    report = format_report(summary)
    assert "promoted to champion" in report and "aging_rule" in report and "capture@10" in report

    # Same book, same config: an identical model, so nothing is promoted the second time.
    again = train_and_register(book, tracking_uri=uri, grid="weekly", config=cfg, names=names)
    assert all(not info["promoted"] and info["version"] == "2" for info in again.values())
    assert "challenger" in format_report(again)
