"""The training steps (``pipelines.steps_train``) run on the session's trained state: the
period-spread step stores each model's spread on its version's run, read back by version
(``models.registry_aliases.period_spread_of``)."""

from __future__ import annotations

from mlflow import MlflowClient

from models.live_agreement import PeriodSpread
from models.registry_aliases import period_spread_of
from pipelines.steps_train import record_period_spreads


def test_the_training_step_stores_the_spread_on_the_versions_run(
    trained_spreads, trained_state, tmp_path
) -> None:
    # the shared state's store (already migrated), under a name of this test's own
    uri = trained_state.tracking_uri
    c = MlflowClient(tracking_uri=uri)
    run_id = c.create_run(c.create_experiment("period-spread-test")).info.run_id
    c.create_registered_model("period-spread-test")
    c.create_model_version("period-spread-test", source=str(tmp_path), run_id=run_id)
    assert period_spread_of("period-spread-test", "1", tracking_uri=uri) is None
    stored = record_period_spreads(
        frame=trained_state.training_set,
        results={"early_warning": trained_state.results["early_warning"]},
        config=trained_state.config, runs={"early_warning": run_id}, tracking_uri=uri)
    back = PeriodSpread.from_dict(period_spread_of("period-spread-test", "1", tracking_uri=uri))
    # recomputed by the step, equal to the session's: the spread is reproducible
    assert back == PeriodSpread.from_dict(stored["early_warning"]) \
        == trained_spreads["early_warning"]
    assert c.get_run(run_id).data.metrics["period.sigma_lag1"] == \
        trained_spreads["early_warning"].sigma_by_lag[0]
