"""Demotion and rollback of a champion (issue 19): aliases, the champion history, the
records in MLflow, and what scoring loads afterwards. The versions are the shared trained
state's early-warning model registered again (same files) under a name of this test's own,
so the state's champions are never changed."""

from __future__ import annotations

import mlflow
import pytest

from models.registry import (
    NoChampionError,
    demote,
    last_trained,
    load_champion,
    rollback,
)
from models.registry_aliases import (
    ALIAS_EXPERIMENT,
    DEMOTED_TAG,
    HISTORY_TAG,
    ROLLED_BACK_TAG,
    RollbackError,
    champion_history,
    record_champion,
)

NAME = "alias-ew"


def _store(trained_state, versions: int) -> tuple[str, mlflow.MlflowClient]:
    """``versions`` versions of the state's early-warning model (gate passed, no alias
    yet) under :data:`NAME`, in the state's store (an existing store: no schema to create)."""
    uri = trained_state.tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    src = client.get_model_version(trained_state.names["early_warning"], "1")
    # the versions share the state's training run, which says "promoted": an empty history
    # keeps the registry from reading the history from the runs (older stores)
    client.create_registered_model(NAME, tags={HISTORY_TAG: ""})
    for _ in range(versions):
        client.create_model_version(NAME, source=src.source, run_id=src.run_id,
                                    tags=dict(src.tags))
    return uri, client


def _promote(client: mlflow.MlflowClient, version: str) -> None:
    """What ``register_result`` does on a promotion."""
    client.set_registered_model_alias(NAME, "champion", version)
    record_champion(client, NAME, version)


def test_rollback_demotion_and_their_records(trained_state) -> None:
    uri, client = _store(trained_state, versions=2)
    _promote(client, "1")
    _promote(client, "2")
    assert champion_history(NAME, tracking_uri=uri) == ["1", "2"]
    assert load_champion(NAME, tracking_uri=uri).version == "2"

    # rollback: the previous champion is restored, the change recorded in MLflow
    change = rollback(NAME, tracking_uri=uri, reason="v2 misranks the north region")
    assert (change.action, change.from_version, change.to_version) == ("rollback", "2", "1")
    assert load_champion(NAME, tracking_uri=uri).version == "1"
    assert client.get_model_version(NAME, "2").tags[ROLLED_BACK_TAG] == (
        "v2 misranks the north region")
    assert champion_history(NAME, tracking_uri=uri) == ["1"]
    exp = client.get_experiment_by_name(ALIAS_EXPERIMENT)
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.registered_name = '{NAME}'")
    assert [r.info.run_id for r in runs] == [change.mlflow_run_id]
    assert {k: runs[0].data.tags[k] for k in ("action", "from_version", "to_version")} == {
        "action": "rollback", "from_version": "2", "to_version": "1"}
    # nothing before the first champion
    with pytest.raises(RollbackError, match="no previous champion"):
        rollback(NAME, tracking_uri=uri)
    assert load_champion(NAME, tracking_uri=uri).version == "1"

    # demotion: no champion (the aging rule ranks), the reason on the challenger
    change = demote(NAME, tracking_uri=uri, reason="below the rule in 4 runs")
    assert (change.action, change.from_version, change.to_version) == ("demote", "1", None)
    with pytest.raises(NoChampionError):
        load_champion(NAME, tracking_uri=uri)
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "1"
    assert client.get_model_version(NAME, "1").tags[DEMOTED_TAG] == "below the rule in 4 runs"
    # what the aging rule's line in the next run says
    assert last_trained(NAME, tracking_uri=uri)["demoted"] == "below the rule in 4 runs"
    assert demote(NAME, tracking_uri=uri, reason="again") is None  # no champion left

    # a rollback after a demotion restores the demoted champion
    restored = rollback(NAME, tracking_uri=uri, reason="the data issue is fixed")
    assert (restored.from_version, restored.to_version) == (None, "1")
    assert load_champion(NAME, tracking_uri=uri).version == "1"
    assert last_trained(NAME, tracking_uri=uri)["demoted"] is None  # no challenger now
