"""Fixtures shared by the pipelines tests: one temporary Prefect server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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
