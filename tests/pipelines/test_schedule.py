"""Real schedules on a real Prefect server (DESIGN section 9): an integration test.

Starts ``prefect server start`` on a free loopback port with a throw-away PREFECT_HOME,
creates the two deployments, checks their cron schedules and timezone through the API and
that the server's scheduler turns them into upcoming runs at 02:00 local time, starts the
serving process (``delinq schedule --serve``), triggers ``nightly-score`` through the API,
waits for it to complete (bounded), and checks the worklist it wrote and its artifacts.
Everything started here is stopped, also on failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipelines.settings import Settings

pytestmark = pytest.mark.slow

TIMEZONE = "Europe/Paris"
SERVER_START_S = 180
RUN_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without Prefect/delinq settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DELINQ_"))}
    return {**env, **extra}


def _stop(proc: subprocess.Popen, first: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a process group we started: ``first`` (then SIGTERM), SIGKILL as a last resort."""
    for sig in dict.fromkeys((first, signal.SIGTERM, signal.SIGKILL)):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


@pytest.fixture
def trained(main_job_run, tmp_path: Path) -> tuple[Path, Settings]:
    """A small synthetic data folder and a state dir holding champion models: a copy of the
    session's main job state (300 accounts, its book ending on the generator's default last
    date, both models trained and gated at the trained state's tolerances), in Paris time.
    Training again here would cost ~20 s for the same kind of state."""
    state = main_job_run.copy_state(tmp_path / "state")
    settings = main_job_run.settings.model_copy(update={"data_dir": state,
                                                        "timezone": TIMEZONE})
    return state / "book", settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``prefect server start`` on a free loopback port; yields the API URL."""
    port = _free_port()
    log = tmp_path / "server.log"
    env = _clean_env(
        PREFECT_HOME=str(tmp_path / "server-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        # Let the scheduler service create upcoming runs within seconds, not a minute.
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_START_S} s:\n{_tail(log)}")
            time.sleep(1)
        yield url
    finally:
        _stop(proc)


def _scheduled_runs(deployment: str, *, timeout: float) -> list:
    """Upcoming SCHEDULED runs of ``deployment`` (waits up to ``timeout`` seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"]))
                ),
                limit=3,
            )
        if runs or time.monotonic() > deadline:
            return runs
        time.sleep(2)


def test_nightly_score_deployment_runs_on_a_real_server(server, trained, tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.deploy import create_deployments
    from serving.store import WorklistStore

    source, settings = trained
    server_log = tmp_path / "server.log"
    with temporary_settings(updates={PREFECT_API_URL: server}):
        names = create_deployments(settings, data_source=str(source))
        assert names == ["nightly-score/nightly-score", "weekly-retrain/weekly-retrain"]
        with get_client(sync_client=True) as client:
            for name, cron in zip(names, (settings.nightly_cron, settings.weekly_cron),
                                  strict=True):
                deployment = client.read_deployment_by_name(name)
                (schedule,) = deployment.schedules
                assert schedule.active
                assert schedule.schedule.cron == cron
                assert schedule.schedule.timezone == TIMEZONE
                assert deployment.parameters["data_source"] == str(source.resolve())
        assert settings.nightly_cron == "0 2 * * *"
        # The server's scheduler turns the cron into upcoming runs at 02:00 Paris time.
        upcoming = _scheduled_runs("nightly-score", timeout=120)
        assert upcoming, f"no scheduled run was created:\n{_tail(server_log)}"
        for run in upcoming:
            local = run.expected_start_time.astimezone(ZoneInfo(TIMEZONE))
            assert (local.hour, local.minute) == (2, 0)

        # The serving process, as a user starts it; it re-registers and executes runs.
        runner_log = tmp_path / "runner.log"
        env = _clean_env(
            PREFECT_API_URL=server,
            PREFECT_HOME=str(tmp_path / "runner-home"),
            PREFECT_RUNNER_POLL_FREQUENCY="2",
            DELINQ_DATA_DIR=str(settings.data_dir),
            DELINQ_TIMEZONE=TIMEZONE,
        )
        with runner_log.open("wb") as out:
            runner = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "schedule", "--serve",
                 "--data-source", str(source)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            book_end = date(2024, 12, 31)  # the generator's default last date
            as_of = book_end - timedelta(days=14)
            flow_run = run_deployment(
                names[0], parameters={"as_of": as_of.isoformat()}, timeout=RUN_TIMEOUT_S,
                poll_interval=2,
            )
            assert flow_run.state is not None
            assert flow_run.state.is_completed(), f"{flow_run.state}\n{_tail(runner_log)}"
            with get_client(sync_client=True) as client:
                artifacts = client.read_artifacts(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
                )
        finally:
            _stop(runner, first=signal.SIGINT)  # what Ctrl-C sends: a clean runner shutdown

    keys = {a.key for a in artifacts}
    assert {"nightly-score-summary", "nightly-score-worklist"} <= keys
    summary = next(a for a in artifacts if a.key == "nightly-score-summary")
    assert as_of.isoformat() in summary.data
    with WorklistStore(settings.resolved_store_url) as store:
        worklist = store.read_worklist(as_of=as_of)
        record = store.current_run(as_of=as_of)
    assert record is not None and record.status == "succeeded" and record.is_current
    assert len(worklist) == record.n_scored > 0
