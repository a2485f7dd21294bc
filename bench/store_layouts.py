"""Benchmark: worklist layouts that would change the SQLite store write (issue 20, store write).

    python -m bench.store_layouts --rows 300000 [--only per_run_file ...] [--json PATH]

``bench.store_indexes`` measures the store's one ``worklist`` table with its indexes
varied; its one halving (the indexes built by ``CREATE INDEX`` after the rows) needs a
run's rows in a structure of their own. This measures such layouts end to end for one
run of ``--rows`` synthetic rows (``bench.store.synthetic_run``) into a fresh store, as
this process's CPU seconds (the figure to compare; wall seconds depend on the load):

- ``all``: the publish's insert as it is (:func:`serving.store_bulk.insert_chunks` into
  the store's ``worklist`` and its four secondary indexes), the baseline;
- ``per_run_file``: the run's rows in a SQLite file of their own (``rank`` the rowid,
  ``run_id`` a column of the same value in every row, so that the workbench's statements
  run unchanged against it; journal and syncs off while it is built, one ``fsync`` at
  the end: nobody reads the file before the flip, and a failure deletes it), its four
  indexes (the store's keys without ``run_id``; the account index carrying the score
  history's columns) built by ``CREATE INDEX`` after the rows, then the cross-run rows
  the score history needs (``run_id, account_id`` and its columns, ``WITHOUT ROWID``)
  copied into the store from the attached file's account index by one ``INSERT ..
  SELECT`` (C only, appends; the product would copy it in paced steps);
- ``order_tables``: one table, no secondary index: the run's rows copied (C only) from a
  temporary table into a ``WITHOUT ROWID`` worklist keyed ``(run_id, rank)``, and each
  secondary index replaced by a table of its own keyed ``(run_id, position)`` filled in
  its own order (``row_number()`` over the sort key): every b-tree written as appends;
- ``page_65536``: the store's table and indexes in a database of 64 KiB pages (SQLite's
  default is 4 KiB; an existing store keeps its page size until a ``VACUUM``).

``all`` and ``per_run_file`` also time the workbench's reads of the run
(``workbench.queries``' own statements, values bound as the workbench binds them; each
plan must read an index: ``<read>_ms`` per execution, with the account directory and
state empty) and ``per_run_file`` what opening the file costs a reader per request
(``attach_detach_ms``).

Measured (session 14, 2 cores shared with two other helpers, load 4-7; CPU s of the
write): 300k rows ``all`` 7.0, ``per_run_file`` 3.8 (rows 1.8, indexes 1.75, history
0.23; the history copied from the table instead of the covering index: 0.8),
``order_tables`` 5.5, ``page_65536`` 5.6 (16 KiB pages: 6.0, 8 KiB: 6.5). 1M rows
``all`` 26.0-28.5, ``per_run_file`` 13.2-13.4 (rows 6.3, indexes 6.4, history 0.7; wall
21.7-27.9 s against 52.9-57.3), ``order_tables`` 19.6, ``page_65536`` 24.3. The reads
from the attached file cost what they cost from the store's table (1M rows: first page
0.31 / 0.25 ms, middle page by probability 0.38 / 0.29, a rare filter by DPD 0.37 /
0.39, a narrow search 0.14 / 0.12, an account's row 0.04 / 0.03) and an ``ATTACH`` +
``DETACH`` 0.1-0.3 ms. Also measured at 300k: the publish's 10 ms steps
(:data:`serving.store_bulk.SQLITE_STEP_SECONDS`) cost nothing measurable against
100k-row ``executemany`` calls (6.56 vs 6.64 CPU s), and the Python rows the
``executemany`` binds take ~0.7 CPU s (columns to lists 0.32, ``zip`` 0.38), a tenth of
the insert.

Built in session 15 (``serving.store_rowfile``, ``serving.store_rows``, store revision
0010), as below except: the file's indexes keep the store's leading ``run_id`` and the
file also indexes the store's primary key ``(run_id, rank)`` (without them SQLite, which
has no statistics, sorted the whole run for a page by priority or the top rows, and
planned a page filtered by region from the directory); the history is copied in ranges
of the run's sorted ids. What ``per_run_file`` would need in the product (session 14's
study): on a
SQLite file store, the publish builds ``<db stem>_rows/<run_id>.db`` as above (holding
no lock of the store: analysts never wait for it), then copies the history rows into a
``worklist_history`` table of the store from the attached file's account index in the
publish's paced steps (``INSERT .. SELECT .. WHERE account_id > :last ORDER BY
account_id LIMIT :step``, or a range of ids cut from the run's sorted ids: C only,
committed early when a writer waits; measured at 1M rows, each step committed, load 7:
0.79 CPU s in 132 steps, the longest 35 ms, against 0.69 in one statement), and the flip
records the file with the run (revision 0010: ``worklist_history`` on both databases,
the run's file; PostgreSQL keeps its rows in ``worklist`` and fills the history by
``COPY``). A reader of one run resolves it and its file in one snapshot and ``ATTACH``es
the file (read-only) inside that transaction, which SQLite allows (``DETACH`` only after
it); the workbench's statements stay as they are, run against the file through
SQLAlchemy's ``schema_translate_map`` on a copy of ``worklist`` in a placeholder schema
(the store's own table for PostgreSQL and for runs written before 0010); a pooled
connection keeps its few latest attachments (SQLite allows 10). Reads across runs
(score history, ``in_any_run``) read ``worklist_history`` (0010 fills it from
``worklist``); a totals refresh attaches each run in turn. Retiring, deleting, sweeping
and pruning delete the run's history rows in steps and unlink its file after the flip
(a reader that attached it reads on until it ends). The rows folder is then part of the
store, like the explanation files (backups copy it).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from bench.store import synthetic_run
from bench.store_indexes import DAY
from serving import store_bulk
from serving import store_schema as S
from serving.store_tables import metadata

RUN_ID = "2024-03-01-0123456789ab"
#: The columns of the score history (``workbench.queries.score_history``) besides the run.
HISTORY = ("rank", "segment", "probability", "priority", "action")
VARIANTS = ("all", "per_run_file", "order_tables", "page_65536")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _sort_keys() -> dict[str, str]:
    """The store's sort key expressions (``SORT_KEYS``) as SQLite text."""
    return {name: str(key.compile(dialect=sa.dialects.sqlite.dialect(),
                                  compile_kwargs={"literal_binds": True}))
            .replace("worklist.", "") for name, key in S.SORT_KEYS.items()}


def _store(path: Path, *, page_size: int | None = None) -> sa.Engine:
    """A fresh store file with the store's tables, in WAL mode as the store runs."""
    if page_size is not None:
        with sqlite3.connect(path) as raw:
            raw.execute(f"PRAGMA page_size = {page_size}")
            raw.execute("VACUUM")
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    return engine


def _baseline(rows: pa.Table, folder: Path, *, page_size: int | None = None
              ) -> dict[str, float]:
    engine = _store(folder / f"store-{page_size}.db", page_size=page_size)
    try:
        cpu = _cpu()
        store_bulk.insert_chunks(engine, S.worklist, rows, constants={"run_id": RUN_ID})
        out = {"cpu_s": _cpu() - cpu}
        if page_size is None and rows.num_rows > 20_000:  # not the warm-up
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                out.update({f"{k}_ms": v for k, v in _reads(raw, rows, "worklist").items()})
        return out
    finally:
        engine.dispose()


def _raw(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA cache_size = -{store_bulk.SQLITE_WRITE_CACHE_KIB}")
    return con


def _fill(con: sqlite3.Connection, table: str, rows: pa.Table, names: list[str],
          constants: dict[str, Any] | None = None) -> None:
    """The rows of ``rows`` (columns ``names``, ``constants`` in every row) into ``table``
    in one transaction."""
    sql = store_bulk._sqlite_sql(table, names)
    con.execute("BEGIN")
    for start in range(0, rows.num_rows, store_bulk.CHUNK_ROWS):
        part = rows.slice(start, store_bulk.CHUNK_ROWS)
        con.executemany(sql, store_bulk._sqlite_rows(part, names, constants or {}))
    con.execute("COMMIT")


def _columns_ddl(names: list[str]) -> str:
    return ", ".join("rank INTEGER PRIMARY KEY" if n == "rank" else n for n in names)


def _per_run_file(rows: pa.Table, folder: Path) -> dict[str, float]:
    engine = _store(folder / "store.db")
    engine.dispose()
    # ``run_id`` stays a column (the same value in every row): the workbench's statements
    # then run unchanged against the attached file (:func:`_reads`).
    names = [c.name for c in S.worklist.columns]
    path = folder / f"{RUN_ID}.db"
    out: dict[str, float] = {}
    cpu = _cpu()
    con = _raw(path)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute(f"CREATE TABLE worklist ({_columns_ddl(names)})")
    _fill(con, "worklist", rows, names, {"run_id": RUN_ID})
    out["rows_cpu_s"] = _cpu() - cpu
    cpu = _cpu()
    con.execute("BEGIN")
    # The account index carries the history's columns: the account page's lookups are
    # index-only, and the history below is copied from it in order (no sort, no row
    # lookups: 0.2 CPU s per 300k rows, 0.8 from the table).
    con.execute(f"CREATE INDEX ix_worklist_account ON worklist (account_id, {', '.join(HISTORY)})")
    for name, key in _sort_keys().items():
        con.execute(f"CREATE INDEX ix_worklist_{name} ON worklist ({key} DESC, rank, segment, "
                    "action, account_id)")
    con.execute("COMMIT")
    con.close()
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    out["indexes_cpu_s"] = _cpu() - cpu
    cpu = _cpu()
    store = _raw(folder / "store.db")
    store.execute("PRAGMA journal_mode = WAL")
    store.execute(f"CREATE TABLE worklist_history (run_id TEXT NOT NULL, account_id TEXT NOT "
                  f"NULL, {', '.join(HISTORY)}, PRIMARY KEY (run_id, account_id)) WITHOUT ROWID")
    store.execute(f"ATTACH DATABASE '{path}' AS run")
    store.execute("BEGIN IMMEDIATE")
    store.execute(f"INSERT INTO worklist_history SELECT ?, account_id, {', '.join(HISTORY)} "
                  "FROM run.worklist ORDER BY account_id", (RUN_ID,))
    store.execute("COMMIT")
    store.execute("DETACH DATABASE run")
    out["history_cpu_s"] = _cpu() - cpu
    out["cpu_s"] = out["rows_cpu_s"] + out["indexes_cpu_s"] + out["history_cpu_s"]
    t, n = time.perf_counter(), 200
    for _ in range(n):  # what a reader pays to open the run's file per request
        store.execute(f"ATTACH DATABASE '{path}' AS run")
        store.execute("DETACH DATABASE run")
    out["attach_detach_ms"] = (time.perf_counter() - t) / n * 1000
    store.execute(f"ATTACH DATABASE '{path}' AS run")
    out.update({f"{k}_ms": v for k, v in _reads(store, rows, "run.worklist").items()})
    store.close()
    return out


def _statements(rows: pa.Table) -> dict[str, tuple[sa.Select[Any], bool]]:
    """The workbench's reads of one run (``workbench.queries``' own statements), each
    with whether its plan may sort (a narrow search sorts its few rows by design)."""
    from workbench import queries as Q
    from workbench.schemas import Sort

    mid = rows.num_rows // 2
    row = rows.slice(mid, 1).to_pylist()[0]
    key = row["probability"] if row["probability"] is not None else -1.0
    after = Q.encode_cursor(Sort.PROBABILITY, key, row["rank"])
    rare = Q.Filters(segment=row["segment"], action=row["action"])

    def page(filters: Q.Filters, sort: Sort, cursor: str | None = None) -> sa.Select[Any]:
        return Q.page_query(run_id=RUN_ID, filters=filters, sort=sort, after=cursor,
                            limit=50, today=DAY)

    account = Q._ACCOUNT_ROW.params(run_id=RUN_ID, account_id=row["account_id"])
    return {"page_first": (page(Q.Filters(), Sort.PRIORITY), False),
            "page_middle_probability": (page(Q.Filters(), Sort.PROBABILITY, after), False),
            "page_filtered_dpd": (page(rare, Sort.DPD), False),
            "page_search": (Q.page_query(run_id=RUN_ID, filters=Q.Filters(
                search=row["account_id"][:-1]), sort=Sort.BALANCE, after=None, limit=50,
                today=DAY, narrow=True), True),
            "account_row": (account, False)}


def _reads(con: sqlite3.Connection, rows: pa.Table, table: str) -> dict[str, float]:
    """Milliseconds per execution of each of :func:`_statements` with the worklist read
    from ``table``; every plan must read an index (no scan of the run, no sort of it)."""
    out = {}
    for name, (statement, may_sort) in _statements(rows).items():
        compiled = statement.compile(dialect=sa.dialects.sqlite.dialect())
        sql = str(compiled).replace("FROM worklist", f"FROM {table}").replace(
            "JOIN worklist", f"JOIN {table}")
        params = [compiled.params[p] for p in compiled.positiontup or []]
        plan = str(con.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
        assert "SCAN worklist" not in plan or "USING" in plan, (name, plan)
        assert may_sort or "TEMP B-TREE" not in plan, (name, plan)
        t, n = time.perf_counter(), 200
        for _ in range(n):
            assert con.execute(sql, params).fetchall()
        out[name] = (time.perf_counter() - t) / n * 1000
    return out


def _order_tables(rows: pa.Table, folder: Path) -> dict[str, float]:
    names = [c.name for c in S.worklist.columns if c.name != "run_id"]
    con = _raw(folder / "orders.db")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(f"CREATE TABLE worklist (run_id TEXT NOT NULL, {', '.join(names)}, "
                "PRIMARY KEY (run_id, rank)) WITHOUT ROWID")
    con.execute("CREATE TABLE by_account (run_id TEXT NOT NULL, account_id TEXT NOT NULL, "
                "rank INTEGER NOT NULL, PRIMARY KEY (run_id, account_id)) WITHOUT ROWID")
    keys = _sort_keys()
    for name in keys:
        con.execute(f"CREATE TABLE by_{name} (run_id TEXT NOT NULL, pos INTEGER NOT NULL, "
                    "key REAL, rank INTEGER NOT NULL, segment TEXT, action TEXT, account_id "
                    "TEXT, PRIMARY KEY (run_id, pos)) WITHOUT ROWID")
    cpu = _cpu()
    con.execute(f"CREATE TEMP TABLE side ({_columns_ddl(names)})")
    _fill(con, "side", rows, names)
    statements = [f"INSERT INTO worklist SELECT ?, {', '.join(names)} FROM side ORDER BY rank",
                  "INSERT INTO by_account SELECT ?, account_id, rank FROM side "
                  "ORDER BY account_id"]
    statements += [f"INSERT INTO by_{name} SELECT ?, row_number() OVER (ORDER BY {key} DESC, "
                   f"rank), {key}, rank, segment, action, account_id FROM side "
                   f"ORDER BY {key} DESC, rank" for name, key in keys.items()]
    for sql in statements:
        con.execute("BEGIN IMMEDIATE")
        con.execute(sql, (RUN_ID,))
        con.execute("COMMIT")
    con.close()
    return {"cpu_s": _cpu() - cpu}


def run(n_rows: int, *, only: list[str] | None = None) -> dict[str, Any]:
    """CPU seconds of each variant (module docstring), or of ``only`` those."""
    wl, _, _ = synthetic_run(n_rows, features=1)
    rows = S.check_worklist(wl, as_of=DAY)
    out: dict[str, Any] = {"rows": n_rows, "load_avg_1m_before": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory(prefix="delinq-bench-layouts-") as tmp:
        (Path(tmp) / "warm").mkdir()  # the process's first write pays one-off costs
        _baseline(rows.slice(0, min(n_rows, 20_000)), Path(tmp) / "warm")
        for name in VARIANTS:
            if only is not None and name not in only:
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            wall = time.perf_counter()
            if name == "per_run_file":
                result = _per_run_file(rows, folder)
            elif name == "order_tables":
                result = _order_tables(rows, folder)
            else:
                result = _baseline(rows, folder,
                                   page_size=65536 if name == "page_65536" else None)
            result["wall_s"] = time.perf_counter() - wall
            out[name] = {k: round(v, 2) for k, v in result.items()}
            print(name, out[name], flush=True)
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--only", nargs="*", default=None, choices=VARIANTS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = run(args.rows, only=args.only)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
