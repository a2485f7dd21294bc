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
