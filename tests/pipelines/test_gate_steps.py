"""The quality gate through the steps layer: settings map to the gate, `steps.train`
promotes nothing that fails it and says why in one line per model."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import steps
from pipelines.settings import SettingsError, load_settings
from tests.factories import make_training_set, spec_complete


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings file and no DELINQ_ settings from the caller's environment."""
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    for var in ("DELINQ_DATA_DIR", "DELINQ_DELINQUENCY_DPD", "DELINQ_SEED"):
        monkeypatch.delenv(var, raising=False)


def test_gate_policy_maps_the_settings(monkeypatch: pytest.MonkeyPatch,
                                       no_config: None) -> None:
    from models.gate import GatePolicy

    assert steps.gate_policy(load_settings()) == GatePolicy()  # library defaults kept
    monkeypatch.setenv("DELINQ_GATE__MIN_POSITIVE_ROWS", "50")
    policy = steps.gate_policy(load_settings(seed=7, gate={"resamples": 200}))
    assert policy == GatePolicy(min_positive_rows=50, resamples=200, seed=7)
    with pytest.raises(SettingsError, match="did you mean 'gate.min_positive_rows'"):
        load_settings(gate={"min_positive_row": 5})


def test_train_step_promotes_nothing_that_fails_the_gate(
    tmp_path: Path, no_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from models.gate import FAILED, TAG

    path = tmp_path / "training_set.parquet"
    spec_complete(make_training_set(n_accounts=300, n_weeks=30, seed=0)).to_parquet(
        path, index=False)
    monkeypatch.setenv("DELINQ_GATE__MIN_POSITIVE_ACCOUNTS", "100000")
    settings = load_settings(data_dir=tmp_path / "state", train={
        "n_estimators": 40, "min_child_samples": 20, "val_weeks": 6, "test_weeks": 6,
        "n_jobs": 1})
    out = steps.train(settings=settings, training_set=path)
    assert out.promoted == []
    client = mlflow.MlflowClient(tracking_uri=settings.resolved_tracking_uri)
    for m in out.models:
        assert not m.promoted and m.champion_version is None
        assert m.reason.startswith("gate failed (evidence)") and "\n" not in m.reason
        assert "gate.min_positive_accounts" in m.reason
        assert client.get_model_version(m.registered_name, m.version).tags[TAG] == FAILED
        assert f"{m.reason}" in out.report
    assert "challenger (no champion)" in out.report
    # trained: the gate's verdict stands until the weekly retraining (no nightly retrain loop)
    assert steps.has_champions(settings=settings)
