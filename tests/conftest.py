"""Shared fixtures.

``pg_url``: the URL of a real PostgreSQL server for tests that need one, from the
environment variable ``DELINQ_TEST_PG_URL`` (start a throw-away server with
``eval "$(bash .ci/postgres.sh)"``). In CI (``CI=true``) a missing URL fails the test;
elsewhere the test is skipped with the reason.

``pg_schema_url``: ``pg_url`` pointed at a fresh, empty schema (dropped afterwards), so
tests never see each other's tables.

``mlflow_schema_template`` (automatic): MLflow builds the schema of a fresh SQLite store
by running its ~60 Alembic migrations (~2 s of CPU and ~100 synced commits each time);
in this process, a fresh store gets a copy of one empty, fully migrated schema built once
per session instead (SQLite's backup API, the same tables and Alembic revision). MLflow's
own check and every delinq code path are unchanged; the CLI, demo and notebook tests run
in subprocesses, so they still create their stores through the migrations.

``trained_state``: both models trained once on a small synthetic book and registered in a
temporary MLflow store (``tests.factories.TrainedState``), shared by the whole session so
that tests needing a trained model, a champion or a registry do not train again.

Parallel runs (``make test`` runs ``pytest -n 2 --dist loadgroup``, pytest-xdist): each
worker is a process of its own, so every session fixture above is built once per worker
that needs it (a worker's own temporary folder, its own PostgreSQL schemas). Tests sharing
a live server (:data:`XDIST_GROUPS`) run on one worker so that it is started once.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.factories import TrainedState, build_trained_state

if TYPE_CHECKING:
    from models.live_agreement import PeriodSpread

PG_ENV = "DELINQ_TEST_PG_URL"

#: A session fixture holding a live server, and the xdist group of every test that uses it
#: (directly or through another fixture): under ``--dist loadgroup`` a group runs on one
#: worker, so the server starts once (the Prefect server, ~20 s of start-up, and the main
#: job run on it, ~40 s; one Chromium) instead of once per worker. The Dask tests use the
#: Prefect server, so they run there too, one after the other, never two clusters at once.
XDIST_GROUPS = {"prefect_server": "prefect", "browser": "browser"}


@pytest.hookimpl(trylast=True)  # after xdist's own hook (see below)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = getattr(item, "fixturenames", ())
        group = next((g for fixture, g in XDIST_GROUPS.items() if fixture in used), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    if not getattr(config.option, "loadgroup", False):  # not an xdist worker of loadgroup
        return
    # xdist 3.8 groups a test by an "@group" suffix of its node id, which it sets through
    # `item._nodeid`; pytest 9.2 reads the id from `item._id`, so without this the groups
    # are silently ignored (checked: the notebooks ran on both workers). Set it here.
    from _pytest.nodeid import coerce_node_id

    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{mark.args[0]}")
            # if pytest stops reading `_id` too, say so instead of splitting the group
            assert item.nodeid.endswith(f"@{mark.args[0]}"), item.nodeid


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get(PG_ENV, "").strip()
    if url:
        return url
    message = (
        f"{PG_ENV} is not set: start a PostgreSQL server with "
        f'`eval "$(bash .ci/postgres.sh)"` before running the tests'
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs PostgreSQL for the store tests. {message}", pytrace=False)
    pytest.skip(f"no PostgreSQL server for this test ({message})")


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    import sqlalchemy as sa

    from serving.store_io import normalise_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = normalise_url(pg_url)  # the driver the store itself uses
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    # libpq `options` makes the schema the first (and only) one on the search path.
    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(scope="session")
def trained_state(tmp_path_factory: pytest.TempPathFactory) -> TrainedState:
    return build_trained_state(tmp_path_factory.mktemp("trained_state"))


class _Spreads(dict):
    """kind -> the period spread of ``trained_state``'s model, computed on first use."""

    def __init__(self, state: TrainedState) -> None:
        super().__init__()
        self.state = state

    def __missing__(self, kind: str) -> PeriodSpread:
        from models.live_period import period_spread

        self[kind] = period_spread(self.state.training_set, self.state.results[kind],
                                   config=self.state.config)
        return self[kind]


@pytest.fixture(scope="session")
def trained_spreads(trained_state: TrainedState) -> dict[str, PeriodSpread]:
    """The period spread (``models.live_period.period_spread``: up to 6 refits per model)
    of each of ``trained_state``'s models (``trained_spreads[kind]``), computed once per
    session (process) and only for the kinds a test reads."""
    return _Spreads(trained_state)


_MIGRATE: list = []  # MLflow's own _initialize_tables, once replaced
_TEMPLATE: list[str] = []  # the migrated template's path, once built


@pytest.fixture(autouse=True)
def mlflow_schema_template(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fresh MLflow SQLite stores of this process start from one migrated copy (see the
    module docstring); any other database goes through MLflow's own migrations. Installed
    once MLflow's store module is imported (a test that never uses MLflow does not pay
    for importing it)."""
    import sys

    db_utils = sys.modules.get("mlflow.store.db.utils")
    registry_store = sys.modules.get("mlflow.store.model_registry.sqlalchemy_store")
    if _MIGRATE or db_utils is None or registry_store is None:
        return
    migrate = db_utils._initialize_tables

    def initialize(engine) -> None:  # noqa: ANN001 - MLflow's signature
        if engine.url.get_backend_name() != "sqlite" or engine.url.database in (
                None, "", ":memory:"):
            migrate(engine)
            return
        if not _TEMPLATE:
            import sqlalchemy as sa

            path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
            built = sa.create_engine(f"sqlite:///{path}")
            migrate(built)
            built.dispose()
            _TEMPLATE.append(str(path))
        raw = engine.raw_connection()
        try:
            with sqlite3.connect(_TEMPLATE[0]) as source:
                source.backup(raw.driver_connection)
        finally:
            raw.close()

    _MIGRATE.append(migrate)
    db_utils._initialize_tables = initialize
    registry_store._initialize_tables = initialize
