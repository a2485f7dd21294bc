"""Shared fixtures.

``pg_url``: the URL of a real PostgreSQL server for tests that need one, from the
environment variable ``DELINQ_TEST_PG_URL`` (start a throw-away server with
``eval "$(bash .ci/postgres.sh)"``). In CI (``CI=true``) a missing URL fails the test;
elsewhere the test is skipped with the reason.

``pg_schema_url``: ``pg_url`` pointed at a fresh, empty schema (dropped afterwards), so
tests never see each other's tables.

``trained_state``: both models trained once on a small synthetic book and registered in a
temporary MLflow store (``tests.factories.TrainedState``), shared by the whole session so
that tests needing a trained model, a champion or a registry do not train again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.factories import TrainedState, build_trained_state

PG_ENV = "DELINQ_TEST_PG_URL"


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
