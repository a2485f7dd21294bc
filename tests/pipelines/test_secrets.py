"""Secrets stay secret: one masking function, secret settings, and a real run against a
PostgreSQL store whose URL carries a password (a role created for the test): the password
appears nowhere, neither on the console, in the log file, in the store's run records,
in the MLflow params and tags, nor in what a Prefect flow run would store as parameters."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.flows import settings_params
from pipelines.settings import SettingsError, load_settings
from serving.redact import display_url, redact
from serving.store_io import display_url as store_display_url
from serving.store_io import normalise_url


def test_one_masking_function_for_urls_and_text() -> None:
    url = "postgresql+psycopg://ops:s3cret-x@db.example:5432/delinq?sslmode=require"
    assert display_url(url) == "postgresql+psycopg://ops:***@db.example:5432/delinq?sslmode=require"
    assert store_display_url(url) == display_url(url)
    assert display_url(sa.make_url(url)) == display_url(url)
    text = f"cannot reach {url}; also https://u:tok3n@mlflow.example/?token=abc123 and s3cret-x"
    masked = redact(text, ["s3cret-x"])
    assert "s3cret-x" not in masked and "tok3n" not in masked and "abc123" not in masked
    assert "ops:***@db.example" in masked and "u:***@mlflow.example" in masked
    assert display_url("sqlite:////tmp/state/worklist.db") == "sqlite:////tmp/state/worklist.db"


def test_secret_settings_are_masked_and_never_flow_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    store = "postgresql+psycopg://ops:s3cret-y@db.example/delinq"
    tracking = "https://ops:t0ken-y@mlflow.example"
    monkeypatch.setenv("DELINQ_STORE_URL", store)
    monkeypatch.setenv("DELINQ_MLFLOW_TRACKING_URI", tracking)
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_store_url == store and settings.resolved_tracking_uri == tracking
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "s3cret-y" not in shown and "t0ken-y" not in shown
    assert set(settings.secrets()) == {"s3cret-y", "t0ken-y"}
    params = json.dumps(settings_params(settings))
    assert "s3cret-y" not in params and "t0ken-y" not in params
    assert "store_url" not in params
    # A secret that only a keyword argument holds cannot reach a flow run: said, not lost.
    other = load_settings(data_dir=tmp_path, store_url="postgresql://a:b-secret@h/d")
    with pytest.raises(SettingsError, match="DELINQ_STORE_URL"):
        settings_params(other)


@pytest.fixture
def pg_url_with_password(pg_url: str) -> Iterator[tuple[str, str]]:
    """A login role with a password owning a fresh schema: (its URL, the password)."""
    tag = uuid.uuid4().hex[:10]
    role, password, schema = f"delinq_ops_{tag}", f"s3cret-{tag}-pw", f"t_ops_{tag}"
    admin_url = normalise_url(pg_url)  # the driver the store itself uses
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}" AUTHORIZATION {role}')
    url = admin_url.set(username=role, password=password).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def _book_and_env(url: str, trained_state, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The shared trained state's book written to ``tmp_path/book`` and the environment of
    a run against the store ``url`` with its models: (book folder, state folder)."""
    from features.contract.io import write_book

    data, state = tmp_path / "book", tmp_path / "state"
    write_book(trained_state.book, data)
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DELINQ_DATA_DIR", raising=False)
    monkeypatch.setenv("DELINQ_STORE_URL", url)
    monkeypatch.setenv("DELINQ_MLFLOW_TRACKING_URI", trained_state.tracking_uri)
    monkeypatch.setenv("DELINQ_EARLY_WARNING_MODEL", trained_state.names["early_warning"])
    monkeypatch.setenv("DELINQ_PERSISTENCE_MODEL", trained_state.names["persistence"])
    return data, state


@pytest.mark.postgres
def test_a_run_with_a_password_in_the_store_url_shows_it_nowhere(
    pg_url_with_password: tuple[str, str], trained_state, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow


    url, password = pg_url_with_password
    data, state = _book_and_env(url, trained_state, tmp_path, monkeypatch)

    seen: list[str] = []
    for args in (["score", str(data), "--as-of", "2024-03-01", "--state-dir", str(state)],
                 ["worklist", str(state), "--top", "3"], ["runs", "--state-dir", str(state)],
                 ["db", "current", "--state-dir", str(state)],
                 ["db", "upgrade", "--state-dir", str(state)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        seen.append(result.output)
    assert "ops_" in seen[0] and "***@" in seen[0]  # the store is named, masked
    seen += [p.read_text() for p in (state / "logs").glob("*.log")]
    # The store's own records of the run.
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        seen += [json.dumps([list(map(str, r)) for r in conn.execute(sa.text(
            "SELECT * FROM runs")).all()])]
    engine.dispose()
    # MLflow: params and tags of every run in the tracking store.
    client = mlflow.MlflowClient(tracking_uri=trained_state.tracking_uri)
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            seen.append(json.dumps({**run.data.params, **run.data.tags}))
    # What a flow run of these settings would store as its Prefect parameters.
    seen.append(json.dumps(settings_params(load_settings(data_dir=state))))
    leaks = [text for text in seen if password in text]
    assert not leaks, leaks[0][:2000]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_prefect_flow_run_with_a_password_in_the_store_url_stores_it_nowhere(
    pg_url_with_password: tuple[str, str], trained_state, prefect_server, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The nightly as a real Prefect flow run: the password reaches none of what the Prefect
    server keeps (flow and task run parameters, states, logs, artifacts)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from pipelines.flows import nightly_score

    url, password = pg_url_with_password
    data, state = _book_and_env(url, trained_state, tmp_path, monkeypatch)

    params = settings_params(load_settings(data_dir=state))
    state_of_run = nightly_score(data_source=str(data), as_of="2024-03-01", settings=params,
                                 return_state=True)
    assert state_of_run.is_completed(), state_of_run.message
    run_id = state_of_run.state_details.flow_run_id
    assert state_of_run.result()["score"].n_scored > 0

    ids = [run_id]
    seen: list[str] = []
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        seen.append(flow_run.model_dump_json())
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        assert task_runs, "the nightly's tasks ran on the server"
        seen += [t.model_dump_json() for t in task_runs]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        seen += [log.message for log in logs]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
        assert artifacts, "the nightly published its artifacts"
        seen += [a.model_dump_json() for a in artifacts]
    assert logs, "the flow's log records reached the server (so they were scanned)"
    text = "\n".join(seen)
    assert password not in text, text[max(0, text.find(password) - 300):][:600]
