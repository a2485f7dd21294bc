"""Scoring and the quality gate: a population whose trained model failed the gate, or
whose champion has no recorded gate pass, is not scored by it; the error says why in one
line (the aging-rule fallback of issue 12 item 2 is not built yet)."""

from __future__ import annotations

import mlflow
import pytest

from models.gate import TAG, GatePolicy
from models.registry import NoChampionError, UngatedChampionError, gate_reason, register_result
from serving.score_run import load_champions
from tests.factories import STATE_GATE, TrainedState


def test_a_model_that_failed_the_gate_is_named_with_its_line(
    trained_state: TrainedState,
) -> None:
    uri = trained_state.tracking_uri
    out = register_result(trained_state.results["early_warning"], tracking_uri=uri,
                          registered_name="sg-ew",
                          gate=GatePolicy(min_positive_accounts=10_000))
    assert gate_reason("sg-ew", tracking_uri=uri) == out.gate.reason
    with pytest.raises(NoChampionError) as exc:
        load_champions(tracking_uri=uri, model_names={"early_warning": "sg-ew"})
    text = str(exc.value)
    assert "\n" not in text and "passed the quality gate" in text
    assert "gate failed (evidence)" in text
    assert gate_reason("absent", tracking_uri=uri) is None


def test_an_ungated_champion_is_refused_for_scoring(trained_state: TrainedState) -> None:
    uri = trained_state.tracking_uri
    out = register_result(trained_state.results["persistence"], tracking_uri=uri,
                          registered_name="sg-pe", gate=STATE_GATE)
    assert out.promoted
    assert load_champions(tracking_uri=uri, model_names={"persistence": "sg-pe"})
    mlflow.MlflowClient(tracking_uri=uri).delete_model_version_tag("sg-pe", out.version, TAG)
    with pytest.raises(UngatedChampionError, match="not used for scoring"):
        load_champions(tracking_uri=uri, model_names={"persistence": "sg-pe"})


def test_a_champion_that_saw_data_after_the_run_date_does_not_rank_it(
    trained_state: TrainedState,
) -> None:
    """`delinq run --as-of D` after a training on later data: the champion would rank D
    knowing its future, so the aging rule ranks the population (history before D) and the
    line names the champion's data end; on or after that end the champion ranks."""
    from datetime import timedelta

    from serving.rule_scoring import resolve_scorers

    uri, names = trained_state.tracking_uri, trained_state.names
    end = trained_state.models["early_warning"].data_end
    assert end is not None and end <= trained_state.as_of.date()  # labels known before it
    models, rules = resolve_scorers(trained_state.book, as_of=end, tracking_uri=uri,
                                    model_names=names)
    assert set(models) == set(names) and not rules
    before = end - timedelta(days=1)
    models, rules = resolve_scorers(trained_state.book, as_of=before, tracking_uri=uri,
                                    model_names={"early_warning": names["early_warning"]})
    assert not models and rules["early_warning"].calibration.source != "validation"
    line = rules["early_warning"].line
    assert "\n" not in line and f"trained on data up to {end.isoformat()}" in line
    assert f"after this run's as_of {before.isoformat()}" in line
