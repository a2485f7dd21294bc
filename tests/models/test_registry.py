"""MLflow registry: champion/challenger promotion, pyfunc round trip, loading by alias."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.evaluate import Scores, aging_rule_score
from models.registry import (
    NoChampionError,
    load_champion,
    load_model,
    register,
    register_result,
)
from models.report import format_report, training_summary
from models.train import TrainingFailure, TrainingResult, train_model
from tests.factories import STATE_GATE, TrainedState


@pytest.fixture(scope="module")
def uri(trained_state: TrainedState) -> str:
    """The session's store (creating a store's schema is the slow part); the tests here
    register under their own names, so the session's champions stay as they are."""
    return trained_state.tracking_uri


@pytest.fixture(scope="module")
def good(trained_state: TrainedState) -> TrainingResult:
    return trained_state.results["early_warning"]


@pytest.fixture(scope="module")
def shuffled(trained_state: TrainedState) -> TrainingResult:
    # Same rows and test period, labels permuted: a model that learned nothing.
    frames = trained_state.training_set
    rng = np.random.default_rng(0)
    bad = frames.copy()
    bad["y"] = rng.permutation(bad["y"].to_numpy())
    bad["censored"] = bad["y"].isna()
    result = train_model(bad, kind="early_warning", config=trained_state.config)
    # Judge it on the real outcomes of the same test period.
    key = ["account_id", "as_of"]
    truth = frames[key + ["y", "delinquent_amount"]]
    real_test = result.test.drop(columns=["y", "delinquent_amount"]).merge(truth, on=key)
    real_test = real_test[real_test["y"].notna()].reset_index(drop=True)
    rule = aging_rule_score(real_test)
    return dataclasses.replace(result, test=real_test,
                               test_scores=result.model.scores(real_test),
                               baseline_scores={"aging_rule": Scores(proba=rule, priority=rule,
                                                                     ranking=rule)})


def test_no_champion_is_a_clear_error(uri: str) -> None:
    with pytest.raises(NoChampionError, match=r"no champion model for 'nope': run `delinq train`"):
        load_champion("nope", tracking_uri=uri)


def test_a_store_that_was_never_created_has_no_model_and_stays_absent(tmp_path: Path) -> None:
    """Readers do not create (and migrate) an embedded store only to find it empty."""
    from models.registry import default_tracking_uri, gate_reason, last_trained
    from models.registry_aliases import alias_version

    uri = default_tracking_uri(tmp_path / "state")
    with pytest.raises(NoChampionError, match=r"no champion model for 'ew'"):
        load_champion("ew", tracking_uri=uri)
    assert last_trained("ew", tracking_uri=uri) is None
    assert alias_version("ew", tracking_uri=uri) is None
    assert gate_reason("ew", tracking_uri=uri) is None
    assert list(tmp_path.iterdir()) == []


def test_champion_then_worse_model_stays_challenger(uri: str, good, shuffled) -> None:
    first = register_result(good, tracking_uri=uri, registered_name="ew", gate=STATE_GATE)
    assert first.promoted and first.version == "1" and first.champion_version == "1"
    store = Path(uri.removeprefix("sqlite:///")).parent
    assert (store / "mlflow.db").exists() and (store / "mlartifacts").is_dir()

    worse = register_result(shuffled, tracking_uri=uri, registered_name="ew", gate=STATE_GATE)
    assert not worse.promoted and worse.version == "2" and worse.champion_version == "1"
    # A model that learned nothing stops at the gate: it is never compared.
    assert not worse.gate.passed and worse.reason.startswith("gate failed")
    assert worse.comparison == {}
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert str(client.get_model_version_by_alias("ew", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("ew", "challenger").version) == "2"

    # Run contents: metrics of model and baselines, window, card with the rule, plots.
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
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
    t = good.test
    loaded = load_champion("ew", tracking_uri=uri)
    assert loaded.version == "1" and loaded.kind == "early_warning"
    assert loaded.feature_names == good.model.feature_names
    assert loaded.feature_set_version == good.model.feature_set_version
    assert loaded.reference_profile == json.loads(json.dumps(good.model.reference_profile))
    np.testing.assert_allclose(loaded.risk(t), good.model.risk(t), rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.predict_proba(t), good.model.predict_proba(t), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(loaded.raw_score(t), good.model.raw_score(t), rtol=0, atol=1e-12)
    # ... and through plain MLflow pyfunc: calibrated probabilities.
    champion = client.get_model_version_by_alias("ew", "champion")
    pyfunc = mlflow.pyfunc.load_model(client.get_model_version_download_uri("ew",
                                                                           champion.version))
    np.testing.assert_allclose(np.asarray(pyfunc.predict(t[good.model.feature_names])),
                               good.model.risk(t), rtol=0, atol=1e-12)
    challenger = load_model("ew", tracking_uri=uri, alias="challenger")
    assert challenger.version == "2"

    # Retraining to the very same model is not an improvement: it stays challenger.
    again = register_result(good, tracking_uri=uri, registered_name="ew", gate=STATE_GATE)
    assert not again.promoted and again.champion_version == "1" and "not better" in again.reason
    # The champion was scored on the very rows the new result holds: the same numbers.
    assert again.comparison["new_capture@10"] == again.comparison["champion_capture@10"]
    assert again.comparison["new_roc_auc"] == again.comparison["champion_roc_auc"]
    assert load_champion("ew", tracking_uri=uri).version == "1"


def test_register_and_load_leave_process_state_alone(uri: str, good) -> None:
    """No environment variable and no process-wide tracking or registry URI is changed."""
    env = dict(os.environ)
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    out = register({"early_warning": good, "persistence": TrainingFailure("persistence", "x")},
                   tracking_uri=uri, names={"early_warning": "ew-other"}, gate=STATE_GATE)
    assert set(out) == {"early_warning"}  # failures are not registered
    assert load_champion("ew-other", tracking_uri=uri).version == out["early_warning"].version
    assert dict(os.environ) == env
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (tracking, registry)
    assert uri not in (mlflow.get_tracking_uri(), mlflow.get_registry_uri())


def test_session_state_is_registered_and_reported(trained_state: TrainedState) -> None:
    regs = trained_state.registrations
    assert set(regs) == {"early_warning", "persistence"}
    summary = training_summary(trained_state.results, regs)
    for kind, info in summary.items():
        assert info["promoted"] and info["version"] == "1", info
        table = pd.DataFrame.from_dict(info["metrics_table"], orient="index")
        assert {"lightgbm", "aging_rule", "logistic_regression"} <= set(table.index)
        loaded = trained_state.models[kind]
        assert loaded.kind == kind and loaded.version == "1"
        assert info["registered_name"] == trained_state.names[kind]
    report = format_report(summary)
    assert "promoted to champion" in report and "aging_rule" in report and "capture@10" in report
    # A kind that could not be trained is reported, not registered.
    failed = {**trained_state.results, "persistence": TrainingFailure("persistence", "too short")}
    partial = training_summary(failed, {"early_warning": regs["early_warning"]})
    assert partial["persistence"] == {"error": "too short"}
    assert "persistence: not trained (too short)" in format_report(partial)


@pytest.mark.slow
def test_train_and_register_end_to_end_on_a_synthetic_book(
        tmp_path: Path, trained_state: TrainedState) -> None:
    from models.registry import default_tracking_uri
    from models.train import train_models

    # The session's synthetic book and its training set (generating and building another
    # one is what the state already did), trained here into a store of its own.
    uri = default_tracking_uri(tmp_path)
    cfg = dataclasses.replace(trained_state.config, n_estimators=60)
    names = {"early_warning": "t-ew", "persistence": "t-pe"}
    training_set = trained_state.training_set

    def train_and_register() -> dict:
        results = train_models(training_set, config=cfg)
        return training_summary(results, register(results, tracking_uri=uri, names=names))

    summary = train_and_register()
    assert set(summary) == {"early_warning", "persistence"}
    for model, info in summary.items():
        # The first version is champion exactly when it passed the gate.
        assert info["promoted"] == info["gate_passed"] and info["version"] == "1", info
        assert info["reason"].startswith(info["gate"])
        table = pd.DataFrame.from_dict(info["metrics_table"], orient="index")
        assert {"lightgbm", "aging_rule", "logistic_regression"} <= set(table.index)
        if info["promoted"]:
            loaded = load_champion(names[model], tracking_uri=uri)
            assert loaded.kind == model and loaded.version == "1"
    report = format_report(summary)
    assert "gate " in report and "aging_rule" in report and "capture@10" in report

    # Same book, same config: an identical model, so nothing is promoted the second time.
    again = train_and_register()
    assert all(not info["promoted"] and info["version"] == "2" for info in again.values())
    assert "challenger" in format_report(again)
