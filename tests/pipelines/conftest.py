"""Fixtures shared by the pipelines tests: one temporary Prefect server per session, and
the main job run once on it (``main_job``), whose state the flow tests and the schedule
test start from."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: The main job's synthetic book: small, yet both models train (``main_job``).
MAIN_JOB_ACCOUNTS = 300


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server and database for the whole session (the flows' API)."""
    from prefect.testing.utilities import prefect_test_harness

    # The server's telemetry service races schema migration on a fresh database.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def prefect_api_env(prefect_server) -> dict[str, str]:
    """A subprocess environment without the caller's PREFECT_/DELINQ_ variables that points
    at the session's Prefect server: a `delinq run` in it uses that server instead of
    starting a temporary one of its own (~20 s each on 2 cores)."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DELINQ_"))}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    return env


@dataclass(frozen=True)
class MainJob:
    """The main job's run: what ``run_main_job`` returned, the lines it printed, its
    settings, and ``pristine``: a copy of its state folder taken right after the run
    (before any test publishes more runs into it). Read-only: a test that needs a state to
    write into copies ``pristine`` (``copy_state``)."""

    result: dict[str, Any]
    lines: list[str]
    settings: Any  # pipelines.settings.Settings
    pristine: Path

    def copy_state(self, dest: Path) -> Path:
        """A fresh copy of the state folder right after the main job, at ``dest``: its
        stores (worklist, MLflow with the champions) and the staged book. The MLflow
        store's artifact locations still name the original folder, which is only read."""
        shutil.copytree(self.pristine, dest)
        return dest


@pytest.fixture(scope="session")
def main_job_run(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> MainJob:
    """The main job at small size, once per session (training both models is the bulk of
    its ~30 s), on the session's Prefect server."""
    from pipelines.jobs import run_main_job
    from pipelines.settings import load_settings

    data_dir = tmp_path_factory.mktemp("demo")
    # On 300 accounts the early-warning model cannot show it beats the aging rule as
    # served (exposure orders both lists alike; see tests.factories.STATE_GATE): the gate
    # is given the same tolerance as the session's trained state, so a champion exists.
    settings = load_settings(data_dir=data_dir, seed=3, gate={"capture_tolerance": 0.1,
                                                                  "auc_tolerance": 0.01})
    lines: list[str] = []
    result = run_main_job(data_dir=data_dir, settings=settings, accounts=MAIN_JOB_ACCOUNTS,
                          echo=lines.append)
    pristine = tmp_path_factory.mktemp("main_job_pristine") / "state"
    # Prefect's own files (if any) are not part of delinq's state.
    shutil.copytree(data_dir, pristine, ignore=shutil.ignore_patterns(".prefect"))
    return MainJob(result=result, lines=lines, settings=settings, pristine=pristine)


@pytest.fixture(scope="session")
def main_job(main_job_run: MainJob) -> tuple[dict[str, Any], list[str], Any]:
    """The main job's (result, printed lines, settings); see ``main_job_run``."""
    return main_job_run.result, main_job_run.lines, main_job_run.settings
