"""Bulk insert of Arrow tables into the store, the fastest way each database allows.

- SQLite: one prepared ``INSERT`` fed by ``executemany`` from per-column Python lists,
  chunk by chunk (the per-row cost is the sqlite3 module binding values; building the lists
  with numpy/Arrow ``tolist`` is several times faster than ``itertuples``).
- PostgreSQL: ``COPY ... FROM STDIN (FORMAT csv)`` through psycopg's ``cursor.copy``; each
  chunk is rendered to CSV by Arrow's C++ writer, so the server parses while Python renders
  the next chunk (the two processes use both cores).

:func:`bulk_insert` runs inside the caller's transaction (the SQLAlchemy connection's DBAPI
connection), so nothing is visible to readers until the caller commits.
:func:`insert_chunks` commits each chunk in a transaction of its own (the chunked publish
of :mod:`serving.store_publish`); on SQLite a chunk is committed early when another writer
(an analyst's event) waits for the single write lock.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from itertools import repeat
from typing import Any, Final

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from serving import store_io

#: Rows per chunk: bounds the Python objects alive at once (~100 MB for the worklist).
CHUNK_ROWS = 100_000
#: Seconds per *step* of a long SQLite write (:func:`insert_chunks`, the chunked deletes
#: of :mod:`serving.store_publish`): between two steps the writer asks whether another
#: writer waits (:class:`serving.store_io.Waiters`) and, if so, commits and lets it in; so
#: an analyst's event waits about one step. Nobody waiting, a transaction takes
#: :data:`CHUNK_ROWS` rows: each commit rewrites into the WAL every index page its rows
#: touched, so small transactions cost more in total (measured at 100k rows: 80 ms
#: transactions took ~1.7 times the CPU of 100k-row ones). Steps are sized by time
#: (:class:`Pacer`): rows per second vary with the run's size, the indexes and the load.
#: A step only ends in a check (the commit comes when someone waits), so a short one costs
#: the publish little: measured on 2 loaded cores (load ~14, an event written every
#: 10 ms during a 20k-account publish, twice each), 10 ms steps instead of 40 took an
#: event's write transaction from p50 71-98 / p95 540-600 ms to 57-59 / 270-300 ms, and
#: the publish no longer (10.4 s vs 11-13.5 s).
SQLITE_STEP_SECONDS: Final = 0.01
#: Rows of the first step, and the fewest of any step.
SQLITE_FIRST_STEP_ROWS: Final = 1_000
SQLITE_MIN_STEP_ROWS: Final = 200
#: SQLite page cache of a connection while it inserts chunks (KiB; the default is 2 MB):
#: the worklist's four secondary indexes take their entries in random order, and with the
#: default cache each insert re-reads evicted index pages.
SQLITE_WRITE_CACHE_KIB: Final = 262_144


class Pacer:
    """Rows for the next step so that it takes about ``seconds``: the last step's rate
    times ``seconds``, within ``[least, most]`` (and at most :data:`CHUNK_ROWS`,
    read when asked, so that tests can shrink it)."""

    def __init__(self, *, seconds: float = SQLITE_STEP_SECONDS,
                 first: int = SQLITE_FIRST_STEP_ROWS,
                 least: int = SQLITE_MIN_STEP_ROWS) -> None:
        self.seconds, self.least, self._next = seconds, least, first

    def rows(self) -> int:
        return max(1, min(self._next, CHUNK_ROWS))

    def took(self, rows: int, seconds: float) -> None:
        """Record that a step of ``rows`` took ``seconds``."""
        rate = rows / max(seconds, 1e-6)
        # Grow at most fourfold a step: one fast step (a warm cache) is not a trend.
        self._next = int(max(self.least, min(rate * self.seconds, 4 * max(rows, 1))))


def _after_chunk(table: str, rows_done: int) -> None:
    """Called after each chunk is sent (a seam for progress and for fault-injection tests)."""


def _in_step(table: str, rows_done: int) -> None:
    """Called in each step of :func:`insert_chunks` on SQLite, timed with it (a seam for
    tests of a slow step)."""


def bulk_insert(
    conn: sa.Connection,
    target: sa.Table,
    data: pa.Table,
    *,
    constants: Mapping[str, Any],
    after_chunk: Callable[[str, int], None] | None = None,
) -> int:
    """Insert ``data`` plus ``constants`` (same value in every row) into ``target``.

    Column names of ``data`` and ``constants`` together must be columns of ``target``.
    Returns the number of rows inserted. Runs in ``conn``'s open transaction.
    """
    names = _names(target, data, constants)
    hook = after_chunk or _after_chunk
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _insert_sqlite(conn, target.name, names, data, constants, hook)
    if dialect == "postgresql":
        return _copy_postgres(conn, target.name, names, data, constants, hook)
    raise ValueError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def _names(target: sa.Table, data: pa.Table, constants: Mapping[str, Any]) -> list[str]:
    """The columns to insert, in ``target``'s order; unknown columns of ``data`` fail."""
    names = [c.name for c in target.columns if c.name in constants or c.name in data.column_names]
    unknown = set(data.column_names) - set(names)
    if unknown:
        raise ValueError(f"columns {sorted(unknown)} are not in table {target.name!r}")
    return names


def _py_values(column: pa.ChunkedArray) -> list[Any]:
    """Python values of an Arrow column; numpy's tolist is fastest when there are no nulls."""
    t = column.type
    if column.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return column.to_numpy().tolist()
    if pa.types.is_date32(t):
        # SQLite stores dates as ISO text, the format SQLAlchemy's Date type reads back.
        return column.cast(pa.string()).to_pylist()
    return column.to_pylist()


def _sqlite_sql(table: str, names: list[str]) -> str:
    return f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'


def _sqlite_rows(part: pa.Table, names: list[str], constants: Mapping[str, Any]) -> list[tuple]:
    """The rows of ``part`` (plus ``constants``) as the tuples sqlite3 binds."""
    consts = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in constants.items()}
    cols = [
        repeat(consts[n], part.num_rows) if n in consts else _py_values(part.column(n))
        for n in names
    ]
    return list(zip(*cols, strict=False))


def _insert_sqlite(
    conn: sa.Connection,
    table: str,
    names: list[str],
    data: pa.Table,
    constants: Mapping[str, Any],
    hook: Callable[[str, int], None],
) -> int:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return insert_raw(cursor, table, data, constants=constants, names=names, hook=hook)
    finally:
        cursor.close()


def insert_raw(con: Any, table: str, data: pa.Table, *, constants: Mapping[str, Any],
               names: list[str], hook: Callable[[str, int], None] | None = None) -> int:
    """Insert ``data`` plus ``constants`` (columns ``names``, in that order) into SQLite
    ``table`` on a plain ``sqlite3`` connection or cursor, chunk by chunk, in the caller's
    transaction (``hook(table, rows done)`` after each chunk); returns the rows. Also a
    run's rows file's insert (:mod:`serving.store_rowfile`)."""
    sql = _sqlite_sql(table, names)
    done = 0
    for start in range(0, data.num_rows, CHUNK_ROWS):
        part = data.slice(start, CHUNK_ROWS)
        con.executemany(sql, _sqlite_rows(part, names, constants))
        done += part.num_rows
        if hook is not None:
            hook(table, done)
    return done


def _copy_sql(table: str, names: list[str]) -> str:
    return f'COPY "{table}" ({", ".join(names)}) FROM STDIN (FORMAT csv)'


def _csv_bytes(part: pa.Table, names: list[str], constants: Mapping[str, Any]) -> memoryview:
    """The rows of ``part`` (plus ``constants``) as CSV for ``COPY`` (Arrow's writer)."""
    cols = [
        pa.repeat(pa.scalar(_csv_scalar(constants[n])), part.num_rows)
        if n in constants
        else part.column(n)
        for n in names
    ]
    buf = io.BytesIO()
    # Arrow quotes every string, so "" stays an empty string and null stays NULL.
    pacsv.write_csv(pa.table(cols, names=names), buf,
                    write_options=pacsv.WriteOptions(include_header=False))
    return buf.getbuffer()


def _copy_postgres(
    conn: sa.Connection,
    table: str,
    names: list[str],
    data: pa.Table,
    constants: Mapping[str, Any],
    hook: Callable[[str, int], None],
) -> int:
    driver = conn.connection.dbapi_connection
    done = 0
    with driver.cursor() as cursor, cursor.copy(_copy_sql(table, names)) as copy:  # type: ignore[union-attr]
        for start in range(0, data.num_rows, CHUNK_ROWS):
            part = data.slice(start, CHUNK_ROWS)
            copy.write(_csv_bytes(part, names, constants))
            done += part.num_rows
            hook(table, done)
    return done


@contextmanager
def write_cache(conn: sa.Connection) -> Iterator[None]:
    """A SQLite connection's page cache at :data:`SQLITE_WRITE_CACHE_KIB` while the block
    runs, back to SQLite's default (2 MB) before the connection returns to the pool;
    nothing on another database."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.dbapi_connection
    driver.execute(f"PRAGMA cache_size = -{SQLITE_WRITE_CACHE_KIB}")  # type: ignore[union-attr]
    try:
        yield
    finally:
        driver.execute("PRAGMA cache_size = -2000")  # type: ignore[union-attr]  # the default


def insert_chunks(
    engine: sa.Engine,
    target: sa.Table,
    data: pa.Table,
    *,
    constants: Mapping[str, Any],
    after_chunk: Callable[[str, int], None] | None = None,
) -> int:
    """Insert ``data`` plus ``constants`` into ``target`` in chunks of at most
    :data:`CHUNK_ROWS` rows, each committed in a transaction of its own. SQLite
    (``BEGIN IMMEDIATE``): a chunk is inserted in steps of :data:`SQLITE_STEP_SECONDS`, and
    committed early when another writer waits at the store's turnstile
    (:class:`serving.store_io.Waiters`), so that writer waits about one step, not the
    chunk. PostgreSQL: one ``COPY`` per chunk (it blocks no other writer).
    ``after_chunk(table, rows_done)`` runs after each commit, outside any transaction.
    Returns the number of rows inserted.

    Not atomic: a failure leaves the chunks committed so far. The caller writes rows that
    no reader looks at until it publishes them (:mod:`serving.store_publish`).
    """
    names = _names(target, data, constants)
    hook = after_chunk or _after_chunk
    dialect = engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    pacer = Pacer()
    done = 0
    with (engine.connect() as conn, store_io.Waiters(engine.url) as waiters,
          store_io.stepped_writes(conn) as checkpoint, write_cache(conn)):
        conn.execution_options(sqlite_begin="IMMEDIATE")
        driver = conn.connection.dbapi_connection
        sql = _sqlite_sql(target.name, names)
        rows: list[tuple] = []  # the Python rows of data[first:], one chunk at a time
        first = 0
        while done < data.num_rows:
            end = min(data.num_rows, done + CHUNK_ROWS)
            if dialect == "sqlite":
                if done - first >= len(rows):
                    # A chunk's rows built at once, each step a slice of them: built
                    # per step (~200 rows on a loaded machine), the per-column
                    # conversions cost ~a third of the insert itself.
                    rows = _sqlite_rows(data.slice(done, CHUNK_ROWS), names, constants)
                    first = done
                end = min(end, first + len(rows))  # within the rows built
                waiting = False
                with conn.begin():
                    while done < end and not waiting:
                        step = min(pacer.rows(), end - done)
                        t = time.perf_counter()
                        _in_step(target.name, done)
                        driver.executemany(sql, rows[done - first:done - first + step])  # type: ignore[union-attr]
                        pacer.took(step, time.perf_counter() - t)
                        done += step
                        waiting = waiters.any()  # then commit now and let it in
                if waiting:
                    waiters.let_in()
                checkpoint()  # after the commit, beside the writers let in
            else:
                csv = _csv_bytes(data.slice(done, end - done), names, constants)
                with conn.begin(), driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                        _copy_sql(target.name, names)) as copy:
                    copy.write(csv)
                done = end
            hook(target.name, done)
    return done


def _csv_scalar(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def read_arrow(conn: sa.Connection, query: sa.Select[Any], schema: pa.Schema) -> pa.Table:
    """Rows of ``query`` as an Arrow table with ``schema`` (names in select order).

    PostgreSQL streams ``COPY (query) TO STDOUT`` as CSV into Arrow's CSV reader; SQLite
    fetches tuples from the raw cursor and builds each column with one ``pa.array`` call.
    Both skip SQLAlchemy's per-row result processing (the slow part for 1M rows).
    """
    # The connection's schema translation (a run's rows file: :mod:`serving.store_rows`)
    # rendered in, as SQLAlchemy's own execution would.
    translate = conn.get_execution_options().get("schema_translate_map")
    compiled = query.compile(dialect=conn.dialect, schema_translate_map=translate,
                             render_schema_translate=translate is not None)
    sql = str(compiled)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.dbapi_connection
        with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
            f"COPY ({sql}) TO STDOUT (FORMAT csv)", compiled.params
        ) as copy:
            data = b"".join(bytes(block) for block in copy)
        if not data:
            return schema.empty_table()
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=schema.names),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            # PostgreSQL writes NULL as an unquoted empty field and '' as "": only the
            # former is null ("NULL" or "NaN" text stays text).
            convert_options=pacsv.ConvertOptions(
                column_types=schema, null_values=[""], strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    params = [compiled.params[name] for name in compiled.positiontup or []]
    params = [p.isoformat() if hasattr(p, "isoformat") else p for p in params]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        rows = cursor.execute(sql, params).fetchall()
    finally:
        cursor.close()
    return sqlite_rows_table(rows, schema)


def sqlite_rows_table(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """SQLite's fetched ``rows`` (tuples, columns in ``schema``'s order) as an Arrow table
    of ``schema``: one ``pa.array`` per column (dates come as ``YYYY-MM-DD`` text)."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = []
    for values, fld in zip(columns, schema, strict=True):
        if pa.types.is_date32(fld.type):
            arrays.append(pa.array(values, pa.string()).cast(pa.date32()))
        else:
            arrays.append(pa.array(values, fld.type))
    return pa.table(arrays, schema=schema)
