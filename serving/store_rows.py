"""Where a run's worklist rows are: the one place a reader resolves them (revision 0010).

A run published into a SQLite file store has its rows in a SQLite file of their own,
``<db stem>_rows/<run_id>.db`` (``runs.rows_path``), in a table ``worklist`` of the
store's columns (``rank`` the rowid, ``run_id`` the run's id in every row) with the
store's sort and account indexes (:mod:`serving.store_rowfile` builds it). Every other
run (PostgreSQL, an in-memory store, runs written before 0010) has its rows in the
store's ``worklist`` table. The
reads across runs (the score history, ``in_any_run``) never open a run's file: they read
``worklist_history`` (:data:`serving.store_schema.worklist_history`).

A reader of one run's rows writes its statements once, against :data:`run_worklist` (a
copy of ``worklist`` in the placeholder schema :data:`ROWS_SCHEMA`), and runs them on
the connection :func:`run_rows` returns: that resolves the run's file in the reader's
open transaction (its snapshot: the run and its rows agree) and ``ATTACH``es the file
read-only inside that transaction (SQLite allows it; ``DETACH`` only after it), then
points the placeholder at the attached file, or at the store's own table, through
SQLAlchemy's ``schema_translate_map``. A pooled connection keeps its latest few files
attached when it goes back to the pool and detaches the others and any unlinked one
(``serving.store_io.release_rows``, a listener of the engines it makes). A run's file is
unlinked only after the flip that retired the run; a reader that attached it reads on
until its transaction ends (POSIX keeps an open file). A file that is gone when a
reader attaches it is a :class:`RunRowsMissingError` naming it, never a traceback.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

import pyarrow as pa
import sqlalchemy as sa

from serving import store_schema as S
from serving.store_io import ATTACHED_ROWS, StoreError

#: The placeholder schema of :data:`run_worklist` (never a real schema).
ROWS_SCHEMA: Final = "delinq_run_rows"
#: The table of a run's rows file.
FILE_TABLE: Final = "worklist"
#: SQLite attaches at most 10 databases to a connection (its compile-time default).
MAX_ATTACHED: Final = 10

_placeholder = sa.MetaData()
#: ``worklist`` in :data:`ROWS_SCHEMA`: the readers' statements of one run's rows.
run_worklist: Final = S.worklist.to_metadata(_placeholder, schema=ROWS_SCHEMA)
#: :data:`serving.store_schema.SORT_KEYS` over :data:`run_worklist` (the same text: a
#: statement's ``ORDER BY`` is its index's expression, in the store or in a run's file).
SORT_KEYS: Final[dict[str, sa.ColumnElement[float]]] = S.sort_keys(run_worklist)


class RunRowsMissingError(StoreError):
    """A run's rows file recorded in the store is not on disk (deleted or moved by hand, or
    a backup restored without the store's ``_rows`` folder)."""


def rows_dir(database: Path) -> Path:
    """The folder of a SQLite store file's run rows files: ``<db stem>_rows/``."""
    return database.with_name(f"{database.stem}_rows")


def rows_path(conn: sa.Connection, run_id: str) -> str | None:
    """The run's rows file (None: its rows are in ``worklist``), read in ``conn``'s
    transaction: ``runs.rows_path`` holds the file's name, found in the rows folder of
    the store file ``conn`` opened (:func:`rows_dir`), however its URL spells it."""
    if conn.dialect.name != "sqlite":
        return None
    name = conn.execute(_ROWS_PATH, {"run_id": run_id}).scalar_one_or_none()
    database = None if name is None else _store_file(conn)
    if database is None:
        return None
    return str(rows_dir(database) / Path(name).name)


def _store_file(conn: sa.Connection) -> Path | None:
    """The file of the SQLite database ``conn`` opened (None: in memory), as SQLite names
    it (``PRAGMA database_list``; a read-only engine's URL does not say it), once per
    pooled connection."""
    info = conn.connection.info
    if _STORE_FILE not in info:
        info[_STORE_FILE] = next(
            (file for _, name, file in conn.exec_driver_sql("PRAGMA database_list")
             if name == "main"), "")
    return Path(info[_STORE_FILE]) if info[_STORE_FILE] else None


#: Where a pooled connection remembers its store's file (:func:`_store_file`).
_STORE_FILE: Final = "delinq_store_file"


_ROWS_PATH: Final = sa.select(S.runs.c.rows_path).where(
    S.runs.c.run_id == sa.bindparam("run_id", type_=sa.String))


def run_rows(conn: sa.Connection, run_id: str) -> sa.Connection:
    """``conn`` with :data:`run_worklist` pointing at run ``run_id``'s rows (its file
    attached read-only in ``conn``'s transaction, or the store's ``worklist``); the same
    connection, its ``schema_translate_map`` set (statements on other tables are
    unaffected). Raises :class:`RunRowsMissingError` if the run's file is gone."""
    path = rows_path(conn, run_id)
    where = None if path is None else attach(conn, path, run_id)
    return conn.execution_options(schema_translate_map={ROWS_SCHEMA: where})


def attach(conn: sa.Connection, path: str, run_id: str) -> str:
    """The alias of ``path`` attached to ``conn``'s DBAPI connection (attached now if it
    was not): read-only, by URI."""
    attached: dict[str, str] = conn.connection.info.setdefault(ATTACHED_ROWS, {})
    alias = attached.pop(path, None)
    if alias is not None:
        attached[path] = alias  # the most recently used last
        return alias
    if len(attached) >= MAX_ATTACHED:
        raise StoreError(f"more than {MAX_ATTACHED} runs' rows read in one transaction")
    if not Path(path).is_file():  # SQLite's own error would not name the file
        raise RunRowsMissingError(
            f"the rows of run {run_id} are missing: no file {path} (restore the store's "
            "rows folder with it, or delete the run: `delinq runs delete`)")
    used = set(attached.values())
    alias = next(f"run_rows_{i}" for i in range(MAX_ATTACHED) if f"run_rows_{i}" not in used)
    try:
        conn.exec_driver_sql(f"ATTACH DATABASE ? AS {alias}",
                             (f"{Path(path).resolve().as_uri()}?mode=ro",))
    except sa.exc.OperationalError as exc:
        raise RunRowsMissingError(
            f"the rows of run {run_id} cannot be read from {path}: {exc.orig}") from None
    attached[path] = alias
    return alias


def read_columns(conn: sa.Connection, run_id: str, columns: list[str],
                 schema: pa.Schema) -> pa.Table:
    """Columns ``columns`` (Arrow ``schema``) of all of run ``run_id``'s rows in rank
    order, from wherever they are, without attaching anything: for a reader of many runs
    in one transaction (a totals refresh). A file is read on a connection of its own (the
    file never changes once recorded, and is unlinked only after the flip that retires
    its run, which waits for a refresh's write transaction)."""
    from serving import store_bulk

    path = rows_path(conn, run_id)
    if path is None:
        w = S.worklist
        return store_bulk.read_arrow(
            conn, sa.select(*(w.c[c] for c in columns)).where(w.c.run_id == run_id)
            .order_by(w.c.rank), schema)
    if not Path(path).is_file():
        raise RunRowsMissingError(f"the rows of run {run_id} are missing: no file {path}")
    own = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = own.execute(f"SELECT {', '.join(columns)} FROM {FILE_TABLE} ORDER BY rank"
                           ).fetchall()
    finally:
        own.close()
    return store_bulk.sqlite_rows_table(rows, schema)
