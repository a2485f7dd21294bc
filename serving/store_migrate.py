"""Versions of the worklist store's schema: Alembic revisions, applied from code.

The tables of :mod:`serving.store_schema` are revision ``store_schema.REVISION`` of a
chain in ``serving/migrations/versions``; ``0001`` (the baseline) is the schema of the
release before migrations. The configuration is built in code with the package-resource
location ``serving:migrations``, so an installed wheel migrates like the checkout.

Who migrates:

- :func:`upgrade` (``delinq db upgrade``) and a *writer* (``WorklistStore(url,
  upgrade=True)``, which scoring opens) apply the pending revisions.
- A *reader* (``WorklistStore(url)``) never changes an existing store. On an older one it
  raises :class:`StoreVersionError` telling to run ``delinq db upgrade``: a revision may
  rewrite big tables under the write lock (minutes on a store of 1M-account runs), a reader
  may have read-only access, and the operator (or the nightly scorer) decides when the
  schema moves. An *empty* database is created at the newest revision by anyone who opens
  it, as before migrations (there is nothing to lose).
- A store at a revision this code does not know (written by a newer delinq) raises
  :class:`StoreVersionError` for readers, writers and :func:`upgrade`; nothing is touched.
- A store of the release before migrations (the tables, no version table) is recognised
  when its tables hold the baseline's columns: an upgrade stamps it ``0001`` and applies
  the rest in the same transaction; a reader reads it as ``0001`` without writing. Tables
  that look like the store's but differ raise :class:`StoreVersionError` naming the
  difference; nothing is touched.

Guarantees of :func:`upgrade`: all pending revisions run in ONE transaction (SQLite and
PostgreSQL both have transactional DDL), so a failure leaves the store at its previous
revision with every run; concurrent upgraders are serialised (SQLite ``BEGIN IMMEDIATE``,
a PostgreSQL advisory lock) and the later one finds nothing to do, so each revision runs
exactly once; upgrading a store at the newest revision changes nothing.

The version lives in table ``delinq_store_version``, not Alembic's default
``alembic_version``: a PostgreSQL database shared with another Alembic user (MLflow's
tracking store is one) would otherwise mix two version histories in one table.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa

from serving import store_io
from serving import store_schema as S

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "BASELINE", "MIGRATIONS", "VERSION_TABLE", "StoreVersionError", "alembic_config",
    "current_revision", "ensure_revision", "revision_status", "upgrade",
]

VERSION_TABLE: Final = "delinq_store_version"
#: Alembic script location: a package resource, so it resolves inside an installed wheel.
MIGRATIONS: Final = "serving:migrations"
#: The revision of the store as the release before migrations created it.
BASELINE: Final = "0001"
_MIGRATION_LOCK_KEY: Final = 0  # publishes lock on as_of ordinals (>= 1), never on 0


class StoreVersionError(store_io.StoreError):
    """The store's schema revision does not fit this code (one line saying what to do)."""


def alembic_config(
    connection: sa.Connection | None = None, *, script_location: str | Path | None = None
) -> Config:
    """An Alembic ``Config`` for the store's migrations (no ``alembic.ini``).

    ``connection`` is where ``env.py`` runs the revisions (required for every command
    that touches a database; drafting a revision file needs none).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location or MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(
    url: str, *, revision: str = "head", script_location: str | Path | None = None
) -> str:
    """Apply the pending revisions of the store at ``url`` up to ``revision``; return it.

    Creates the store in an empty database; stamps a store of the release before
    migrations first (see the module docstring for the guarantees). Raises
    :class:`StoreVersionError` for a store this code cannot upgrade (a newer revision, or
    tables that are not the store's). ``script_location`` (default :data:`MIGRATIONS`) is
    for tests.
    """
    engine = store_io.make_engine(store_io.normalise_url(url))
    try:
        return _migrate(engine, revision, script_location or MIGRATIONS)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The store's schema revision; None when there is no store yet (changes nothing).

    A store of the release before migrations reads as ``BASELINE`` (not yet stamped). A
    SQLite file that does not exist is not created.
    """
    parsed = store_io.normalise_url(url)
    if _missing_sqlite_file(parsed):
        return None
    engine = store_io.make_engine(parsed)
    try:
        with engine.connect() as conn:
            return _state(conn, engine.url)[0]
    finally:
        engine.dispose()


def revision_status(url: str) -> str:
    """One line on the store's schema revision and what to do about it (changes nothing).

    Raises :class:`StoreVersionError` for tables that are not a store of a known release.
    """
    where = store_io.display_url(store_io.normalise_url(url))
    revision = current_revision(url)
    if revision is None:
        return f"no worklist store at {where} yet (it is created at schema revision {S.REVISION})"
    if revision == S.REVISION:
        return f"the worklist store {where} is at schema revision {revision}: up to date"
    return str(_mismatch(where, revision))


def ensure_revision(engine: sa.Engine, *, upgrade: bool, create: bool = True) -> str:
    """Bring ``engine``'s store to ``store_schema.REVISION`` (``upgrade``) or check it is.

    Called when a store is opened. At the expected revision this is two small queries and
    no Alembic import. An empty database is created either way. Otherwise a reader
    (``upgrade=False``) gets :class:`StoreVersionError`; a writer applies the revisions.
    ``create=False`` (a read-only reader): an empty database is
    :class:`~serving.store_io.StoreMissingError` instead of being created.
    """
    with engine.connect() as conn:
        revision, stamped = _state(conn, engine.url)
    if revision is None and not create:
        raise store_io.StoreMissingError(
            f"no store at {store_io.display_url(engine.url)}: nothing has been scored there "
            "yet (check the settings, or run `delinq score`)")
    if revision == S.REVISION and (stamped or not upgrade):
        return revision
    if upgrade or revision is None:
        return _migrate(engine, "head", MIGRATIONS)
    raise _mismatch(store_io.display_url(engine.url), revision)


# ---------------------------------------------------------------------- internals
def _migrate(engine: sa.Engine, target: str, script_location: str | Path) -> str:
    from alembic import command

    known = _known_revisions(script_location)
    with engine.connect() as conn:
        # Writers take SQLite's write lock up front; the check below is then race-free.
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
                    store_io.PG_LOCK_SPACE, _MIGRATION_LOCK_KEY)))
            revision, stamped = _state(conn, engine.url)
            if revision is not None and revision not in known:
                raise _newer(store_io.display_url(engine.url), revision)
            cfg = alembic_config(conn, script_location=script_location)
            if revision is not None and not stamped:
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, target)
            return _state(conn, engine.url)[0] or ""


def _state(conn: sa.Connection, url: sa.URL) -> tuple[str | None, bool]:
    """``(revision, stamped)``: ``(None, False)`` empty, ``(BASELINE, False)`` pre-Alembic."""
    names = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE in names:
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(rows) != 1:
            raise StoreVersionError(
                f"the worklist store {store_io.display_url(url)} has {len(rows)} rows in "
                f"{VERSION_TABLE} ({rows}); expected one revision: repair it before using it"
            )
        return str(rows[0]), True
    baseline = _baseline_tables()
    present = sorted(names & set(baseline))
    if not present:
        return None, False
    problems = [f"table {t!r} is missing" for t in sorted(set(baseline) - names)]
    columns = {t: {c["name"] for c in sa.inspect(conn).get_columns(t)} for t in present}
    for table in present:
        lacks = sorted(baseline[table] - columns[table])
        extra = sorted(columns[table] - baseline[table])
        if lacks:
            problems.append(f"table {table!r} lacks column(s) {lacks}")
        if extra:
            problems.append(f"table {table!r} has unknown column(s) {extra}")
    if problems:
        raise StoreVersionError(
            f"{store_io.display_url(url)} holds tables named like the worklist store's but is "
            f"not a store of a known release ({'; '.join(problems)}); nothing was changed"
        )
    return BASELINE, False


@functools.cache
def _baseline_tables() -> dict[str, frozenset[str]]:
    """Tables and columns of revision ``BASELINE`` (built once in an in-memory SQLite)."""
    from alembic import command

    engine = store_io.make_engine(sa.make_url("sqlite://"))
    try:
        with engine.connect() as conn, conn.begin():
            command.upgrade(alembic_config(conn), BASELINE)
            inspector = sa.inspect(conn)
            return {
                t: frozenset(c["name"] for c in inspector.get_columns(t))
                for t in inspector.get_table_names() if t != VERSION_TABLE
            }
    finally:
        engine.dispose()


def _script(script_location: str | Path) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(script_location=script_location))


def _known_revisions(script_location: str | Path) -> set[str]:
    return {s.revision for s in _script(script_location).walk_revisions()}


def _mismatch(where: str, revision: str) -> StoreVersionError:
    """The error for a store at ``revision`` when this code needs ``REVISION``."""
    if revision not in _known_revisions(MIGRATIONS):
        return _newer(where, revision)
    return StoreVersionError(
        f"the worklist store {where} has schema revision {revision} and this delinq needs "
        f"{S.REVISION}: run `delinq db upgrade` (it keeps every run)"
    )


def _newer(where: str, revision: str) -> StoreVersionError:
    return StoreVersionError(
        f"the worklist store {where} has schema revision {revision}, which this delinq "
        f"(schema {S.REVISION}) does not know: it was written by a newer delinq; upgrade "
        "delinq to use it (nothing was changed)"
    )


def _missing_sqlite_file(url: sa.URL) -> bool:
    return (url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            and not Path(url.database).exists())


