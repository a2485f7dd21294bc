"""Connections and files of the worklist store: engines for SQLite/PostgreSQL, Parquet I/O.

SQLite connections run in WAL mode (readers never wait for the writer, the writer never
waits for readers) with a busy timeout for a second writer, and transactions are begun by
us: ``BEGIN`` (a snapshot for reads) or ``BEGIN IMMEDIATE`` (writers take the write lock up
front instead of failing to upgrade a read lock later).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

# zstd without dictionary encoding of number columns: dictionary attempts on 120 float
# columns were half the CPU of the write and made the file larger (bench/store.py).
# Row groups of 16k rows: reading a few accounts decodes only their groups.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 16_384}
BUSY_TIMEOUT_MS = 120_000
#: PostgreSQL advisory-lock namespace of the store ("del"): publishes lock (space, as_of
#: ordinal), migrations lock (space, 0).
PG_LOCK_SPACE = 0x64656C


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with dictionary encoding only for repetitive text (not ids, not numbers)."""
    repetitive = [
        f.name for f in table.schema
        if f.name != "account_id"
        and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
             or pa.types.is_dictionary(f.type))
    ]
    pq.write_table(table, path, use_dictionary=repetitive, **PARQUET_OPTIONS)


def read_parquet_accounts(path: Path, account_ids: list[str] | None) -> pa.Table:
    """The whole file, or only the rows of ``account_ids`` (reading just their row groups)."""
    if account_ids is None:
        return pq.read_table(path)
    with pq.ParquetFile(path) as f:
        ids = f.read(columns=["account_id"]).column("account_id")
        rows = np.flatnonzero(pc.is_in(ids, value_set=pa.array(
            [str(a) for a in account_ids], pa.string())).to_numpy(zero_copy_only=False))
        bounds = np.cumsum([0] + [f.metadata.row_group(i).num_rows
                                  for i in range(f.num_row_groups)])
        groups = sorted(set(np.searchsorted(bounds, rows, side="right") - 1))
        if not groups:
            return f.schema_arrow.empty_table()
        part = f.read_row_groups(groups)
    keep = pc.is_in(part.column("account_id"), value_set=pa.array(
        [str(a) for a in account_ids], pa.string()))
    return part.filter(keep)


def parquet_columns(path: Path) -> list[str]:
    """Column names of a Parquet file (from its footer only)."""
    return pq.read_schema(path).names


def normalise_url(url: str) -> sa.URL:
    """The store URL with the psycopg 3 driver for PostgreSQL; only SQLite/PostgreSQL pass."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported store URL {url!r}: use sqlite:/// or postgresql+psycopg://")
    return parsed


def display_url(url: str | sa.URL) -> str:
    """The store URL as shown to people: any password replaced by ``***``."""
    return sa.make_url(url).render_as_string(hide_password=True)


def make_engine(url: sa.URL) -> sa.Engine:
    """An engine for ``url`` (SQLite: WAL, busy timeout, explicit BEGIN; see module doc)."""
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True)
    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below), so reads get snapshot transactions and writers
        # take the write lock up front (BEGIN IMMEDIATE) instead of failing to upgrade.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: never corrupt; a power cut may lose the last commit, not more.
            cursor.execute("PRAGMA synchronous = NORMAL")
            # A 1M-row run leaves a ~400 MB WAL; truncate it after checkpoints.
            cursor.execute("PRAGMA journal_size_limit = 67108864")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def explanations_dir(url: sa.URL, given: Path | None, export_dir: Path | None) -> Path | None:
    """Where run explanation files go: ``given``, beside a SQLite file, or under exports."""
    if given is not None:
        return Path(given)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(url.database)
        return db.parent / f"{db.stem}_explanations"
    if export_dir is not None:
        return export_dir / "_explanations"
    return None
