"""A run's rows file: built beside a SQLite store before the flip, read by attaching it.

The publish of a SQLite file store (:mod:`serving.store_publish`) writes a run's worklist
rows into ``<db stem>_rows/<run_id>.db`` (:func:`serving.store_rows.rows_dir`) instead of
the store's ``worklist`` table, holding no lock of the store (analysts never wait for it):

- one table ``worklist`` of the store's columns, ``rank`` its rowid and ``run_id`` the
  run's id in every row (the readers' statements run unchanged against it:
  :mod:`serving.store_rows`), filled in rank order (appends) with the journal and syncs
  off (nobody reads the file before the flip records it, and a failure deletes it);
- then its indexes, built by ``CREATE INDEX`` from the rows (a sort each, written in
  order): the store's three sort indexes, its account index and its primary key
  ``(run_id, rank)`` (``rank`` is the rowid here: an index), the account index carrying the
  columns of :data:`serving.store_schema.HISTORY_COLUMNS` (the publish copies
  ``worklist_history`` from it in key order). They keep the store's leading ``run_id``
  (one value per file): without it SQLite, which has no statistics, planned a page
  filtered by segment, action and region from the directory's region index and sorted
  the matches, instead of walking the sort index as it does in the store;
- one ``fsync`` of the file at the end.

Measured (``bench.store_layouts``, session 14, 2 loaded cores): 1M rows 13.2-13.4 CPU s
(rows 6.3, indexes 6.4, history copy 0.7) against 26.0-28.5 for the store's indexed
table; the workbench's reads of the attached file cost what they cost from the table.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

import pyarrow as pa
import sqlalchemy as sa

from serving import store_bulk
from serving import store_schema as S
from serving.store_rows import FILE_TABLE

_DIALECT: Final = sa.dialects.sqlite.dialect()


def _ddl() -> str:
    """The file's table: the store's ``worklist`` columns and types, ``rank`` the rowid."""
    parts = []
    for column in S.worklist.columns:
        if column.name == "rank":
            parts.append("rank INTEGER PRIMARY KEY")
            continue
        kind = column.type.compile(dialect=_DIALECT)
        parts.append(f"{column.name} {kind}{'' if column.nullable else ' NOT NULL'}")
    return f"CREATE TABLE {FILE_TABLE} ({', '.join(parts)})"


def _indexes() -> list[str]:
    """The file's indexes (module docstring): the store's, the account index carrying the
    history's columns."""
    history = ", ".join(c for c in S.HISTORY_COLUMNS if c != "account_id")
    out = [f"CREATE INDEX ix_worklist_account ON {FILE_TABLE} (run_id, account_id, {history})",
           # The store's primary key: ``run_id = ? ORDER BY rank`` (a page by priority,
           # the top rows) reads this range; else SQLite, taking the equality on ``run_id``
           # for a few rows, read another index's range and sorted the whole run.
           f"CREATE INDEX ix_worklist_rank ON {FILE_TABLE} (run_id, rank)"]
    for name, key in S.SORT_KEYS.items():
        text = str(key.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))
        text = text.replace(f"{S.worklist.name}.", "")
        out.append(f"CREATE INDEX ix_worklist_{name} ON {FILE_TABLE} (run_id, {text} DESC, "
                   "rank, segment, action, account_id)")
    return out


def build(path: Path, run_id: str, wl: pa.Table) -> int:
    """Write run ``run_id``'s checked worklist ``wl`` (rank order) into a new rows file at
    ``path`` (module docstring); returns its size in bytes. Raises ``FileExistsError``
    if ``path`` exists; leaves a partial file on any other error (the caller deletes
    it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(f"rows file {path} exists already")
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute(f"PRAGMA cache_size = -{store_bulk.SQLITE_WRITE_CACHE_KIB}")
        con.execute(_ddl())
        con.execute("BEGIN")
        store_bulk.insert_raw(con, FILE_TABLE, wl, constants={"run_id": run_id},
                              names=[c.name for c in S.worklist.columns])
        for sql in _indexes():
            con.execute(sql)
        con.execute("COMMIT")
    finally:
        con.close()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the one sync: the file is whole on disk before the flip records it
    finally:
        os.close(fd)
    return path.stat().st_size
