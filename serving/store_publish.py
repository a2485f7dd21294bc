"""Publishing a run in short transactions: rows in chunks, then one short flip.

A 1M-account run is ~80 s of inserts. Done in one transaction, SQLite's single write lock
is held all that time and an analyst's event written meanwhile waits for all of it
(measured 32.9 s p95 at 100k accounts). So :meth:`serving.store.WorklistStore.write_run`
publishes in three steps:

1. **Rows** (:func:`write_rows`): the worklist rows go in chunks, each committed in a
   transaction of its own (:func:`serving.store_bulk.insert_chunks`), under the run's id
   while the run is still ``running`` and not current. No reader looks at them: every
   read of a worklist resolves the *current* run (``runs.is_current``) in the same
   statement, and the account history only follows current runs. On SQLite a chunk is
   committed early, and the waiting writer let in, when another writer waits
   (:func:`serving.store_bulk.insert_chunks`).
   Then the run's ``worklist_history`` rows (:func:`write_history`), the same way.
2. **Totals** (:func:`read_totals`): summed from the run's worklist table with the
   account directory's regions, read without the write lock.
3. **Flip** (:func:`flip`): ONE short transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
   the as_of's advisory lock) inserts the totals, drift and explanations reference,
   un-publishes the as_of's previous run and marks this one ``succeeded`` and current. A
   reader sees the old run or the new one, each whole, never a mix.

After the flip, the retired run's worklist and history rows are deleted in chunks too
(:func:`drop_rows`); it is no longer current, so nobody reads them. A failure before or in
the flip leaves the previous run current and intact; the rows written so far are deleted
(:func:`drop_rows`) by the failing writer or, if it died (``kill -9``), by the next writer
once the dead run is reaped (:func:`sweep`: rows of ``failed`` and replaced runs).

Totals and the account directory: the workbench recomputes every run's totals in the
transaction that replaces the directory (:func:`serving.store_totals.refresh`). If that
happens between step 2 and the flip, the totals it wrote for this run (complete: all its
rows were committed in step 1) are newer than ours, so the flip keeps totals that already
sum to the run's row count and replaces any others (partial ones, from a refresh during
step 1).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from serving import store_bulk, store_files, store_io, store_rowfile, store_rows, store_totals
from serving import store_schema as S
from serving.store_files import EXPLANATIONS_FORMAT
from serving.store_records import RunRecord, meta_columns


def _in_flip(run_id: str) -> None:
    """Called inside the flip's transaction before it commits (a fault-injection seam)."""


def _after_drop_step(run_id: str, rows_done: int) -> None:
    """Called by :func:`drop_rows` after each committed delete transaction of worklist
    rows (a fault-injection seam)."""


def _after_history_step(run_id: str, rows_done: int) -> None:
    """Called by :func:`drop_rows` after each committed delete transaction of history rows
    (a fault-injection seam)."""


def publish(
    engine: sa.Engine,
    run: RunRecord,
    wl: pa.Table,
    dr: pa.Table,
    files: Future[tuple[Path | None, int]],
    meta: dict[str, Any],
    *,
    check_s: float,
    now: Callable[[], datetime],
    rows_file: Path | None = None,
) -> dict[str, Any]:
    """Publish ``run`` (checked frames ``wl`` and ``dr``; its explanation file being
    written by ``files``): rows in chunks (:func:`write_rows`), totals by a read
    (:func:`read_totals`), then the flip (:func:`flip`). Returns the store's timings
    (seconds; ``check_s`` is the caller's check), with ``_retired``: the runs the flip
    retired (their rows for :func:`drop_rows`). ``rows_file``: the run's rows go into
    a file of their own there (:mod:`serving.store_rowfile`; the caller deletes it if
    this raises) instead of the store's ``worklist``."""
    t_start = time.perf_counter()
    timings: dict[str, Any] = {"store_check_s": round(check_s, 3)}
    if rows_file is None:
        write_rows(engine, run.run_id, wl)
    else:
        store_rowfile.build(rows_file, run.run_id, wl)
    timings["store_worklist_s"] = round(time.perf_counter() - t_start, 3)
    t = time.perf_counter()
    if rows_file is None:
        write_history(engine, run.run_id, wl)
    else:
        copy_history(engine, run.run_id, rows_file, wl)
    timings["store_history_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    totals = read_totals(engine, run.run_id, wl)
    timings["store_totals_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    path, size = files.result()
    timings["store_files_wait_s"] = round(time.perf_counter() - t, 3)
    reference = None if path is None else {
        "format": EXPLANATIONS_FORMAT, "path": str(path), "n_rows": wl.num_rows,
        "columns": store_files.parquet_columns(path), "size_bytes": size}
    counts = pc.value_counts(wl.column("segment")).to_pylist()
    values = meta_columns(meta, base=run)
    t = time.perf_counter()
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            timings["store_total_s"] = round(time.perf_counter() - t_start + check_s, 3)
            values["timings"] = {**values.get("timings", {}), **timings}
            retired = flip(
                conn, run_id=run.run_id, as_of=run.as_of, n_rows=wl.num_rows,
                totals=totals, drift=dr, explanations=reference, now=now,
                values={"status": "succeeded", "n_scored": wl.num_rows,
                        # the name: found in the store's rows folder however its URL
                        # spells the store's path (serving.store_rows.rows_path)
                        "rows_path": None if rows_file is None else rows_file.name,
                        "n_by_segment": {c["values"]: int(c["counts"]) for c in counts},
                        **values})
    timings["store_flip_s"] = round(time.perf_counter() - t, 3)
    timings["_retired"] = retired
    return timings


def write_rows(engine: sa.Engine, run_id: str, wl: pa.Table) -> int:
    """Insert a run's worklist rows in chunks, each committed on its own (step 1)."""
    return store_bulk.insert_chunks(engine, S.worklist, wl, constants={"run_id": run_id})


def write_history(engine: sa.Engine, run_id: str, wl: pa.Table) -> int:
    """Insert a run's ``worklist_history`` rows in chunks, each committed on its own, in
    the order of their key (appends to the run's range)."""
    rows = wl.select(list(S.HISTORY_COLUMNS))
    rows = rows.take(pc.sort_indices(rows.column("account_id")))
    return store_bulk.insert_chunks(engine, S.worklist_history, rows,
                                    constants={"run_id": run_id})


def copy_history(engine: sa.Engine, run_id: str, path: Path, wl: pa.Table) -> int:
    """Copy a run's ``worklist_history`` rows from its rows file (attached to the writing
    connection) in paced steps, each a range of the run's sorted account ids read from
    the file's account index in key order (C only: appends), committed early when
    another writer waits, as :func:`store_bulk.insert_chunks`."""
    ids = pc.sort_indices(wl.column("account_id"))
    ids = wl.column("account_id").take(ids)
    n = len(ids)
    cols = ", ".join(S.HISTORY_COLUMNS)

    table = S.worklist_history.name

    def step(conn: sa.Connection, lo: int, k: int) -> int:
        store_bulk._in_step(table, lo)  # insert_chunks' fault-injection seams
        alias = store_rows.attach(conn, str(path), run_id)
        hi = min(n, lo + k)
        conn.exec_driver_sql(
            f"INSERT INTO {table} (run_id, {cols}) SELECT ?, {cols} "
            f"FROM {alias}.{store_rows.FILE_TABLE} WHERE run_id = ? AND account_id >= ? "
            "AND account_id <= ? ORDER BY account_id",
            (run_id, run_id, ids[lo].as_py(), ids[hi - 1].as_py()))
        return hi - lo

    _in_steps(engine, step, run_id=run_id, top=n,
              hook=lambda _run, done: store_bulk._after_chunk(table, done))
    return n


def read_totals(engine: sa.Engine, run_id: str, wl: pa.Table) -> list[dict[str, Any]]:
    """The run's totals rows (:mod:`serving.store_totals`), summed from its worklist with
    the account directory's regions by a read: SQLite readers do not take the write lock
    (step 2)."""
    with engine.connect() as conn:
        return store_totals.from_table(conn, wl, run_id=run_id)


def flip(
    conn: sa.Connection,
    *,
    run_id: str,
    as_of: date,
    n_rows: int,
    totals: list[dict[str, Any]],
    drift: pa.Table,
    explanations: dict[str, Any] | None,
    values: dict[str, Any],
    now: Callable[[], datetime],
) -> list[str]:
    """Publish ``run_id`` (step 3) in ``conn``'s open write transaction; return the ids
    of the runs it retired (their worklist rows are left for :func:`drop_rows`).

    ``values``: the run's columns to set (status, counts, meta, ...); ``finished_at`` is
    ``now()`` read once the publish lock is held, so of two runs of one ``as_of`` the one
    published last (the current one) never has the earlier ``finished_at`` (PostgreSQL's
    lock is taken here, after the caller built ``values``).
    Raises ``RuntimeError`` if the run is no longer ``running`` (reaped meanwhile).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
            store_io.PG_LOCK_SPACE, as_of.toordinal())))
    t = store_totals.worklist_totals
    have = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.accounts), 0))
                        .where(t.c.run_id == run_id)).scalar_one()
    if int(have) != n_rows:
        conn.execute(t.delete().where(t.c.run_id == run_id))
        if totals:
            conn.execute(t.insert(), totals)
    if drift.num_rows:
        positions = pa.array(range(drift.num_rows), pa.int64())
        store_bulk.bulk_insert(conn, S.drift, drift.append_column("position", positions),
                               constants={"run_id": run_id})
    if explanations is not None:
        conn.execute(S.explanations.insert().values(run_id=run_id, **explanations))
    retired = _retire(conn, run_id, as_of)
    _in_flip(run_id)
    r = S.runs
    done = conn.execute(r.update().where(r.c.run_id == run_id, r.c.status == "running")
                        .values(is_current=True, **values, finished_at=now())).rowcount
    if done != 1:
        raise RuntimeError(f"run {run_id} is no longer running (reaped while it was "
                           "written?): not published")
    return retired


def _retire(conn: sa.Connection, run_id: str, as_of: date) -> list[str]:
    """Un-publish earlier runs of ``as_of`` and delete their small rows (same
    transaction); their worklist rows go after the commit (:func:`drop_rows`)."""
    r = S.runs
    old = conn.execute(sa.select(r.c.run_id).where(
        r.c.as_of == as_of, r.c.is_current, r.c.run_id != run_id)).scalars().all()
    if old:
        conn.execute(r.update().where(r.c.run_id.in_(old)).values(
            is_current=False, replaced_by=run_id))
        for table in (S.drift, S.explanations, store_totals.worklist_totals):
            conn.execute(table.delete().where(table.c.run_id.in_(old)))
    return list(old)


def drop_rows(engine: sa.Engine, run_ids: Iterable[str]) -> None:
    """Delete the rows of runs nobody reads (failed, retired, being deleted): worklist
    rows by rank range, then history rows, in transactions of at most
    ``store_bulk.CHUNK_ROWS`` rows committed early when another writer waits (as
    :func:`store_bulk.insert_chunks`), then their drift and totals. Callers never pass
    the current run of an as_of (a reader would see it shrink).
    """
    w = S.worklist
    for run_id in run_ids:
        with engine.connect() as conn:
            top = int(conn.execute(sa.select(sa.func.max(w.c.rank))
                                   .where(w.c.run_id == run_id)).scalar_one_or_none() or 0)
        _in_steps(engine, functools.partial(_delete_ranks, run_id), run_id=run_id, top=top,
                  hook=_after_drop_step)
        _in_steps(engine, functools.partial(_delete_history, run_id), run_id=run_id,
                  top=None, hook=_after_history_step)
        _drop_file(engine, run_id)
        with store_io.writing(engine) as conn:
            for table in (S.drift, store_totals.worklist_totals):
                conn.execute(table.delete().where(table.c.run_id == run_id))


def _drop_file(engine: sa.Engine, run_id: str) -> None:
    """Forget the run's rows file (one short transaction), then unlink it: a reader that
    attached it before reads on until its transaction ends."""
    r = S.runs
    with engine.connect() as conn:
        path = store_rows.rows_path(conn, run_id)
    if path is None:
        return
    with store_io.writing(engine) as conn:
        conn.execute(r.update().where(r.c.run_id == run_id).values(rows_path=None))
    Path(path).unlink(missing_ok=True)


def _delete_ranks(run_id: str, conn: sa.Connection, lo: int, step: int) -> int:
    """Delete the run's worklist rows of ranks ``lo + 1 .. lo + step``."""
    w = S.worklist
    conn.execute(w.delete().where(w.c.run_id == run_id, w.c.rank > lo, w.c.rank <= lo + step))
    return step


def _delete_history(run_id: str, conn: sa.Connection, lo: int, step: int) -> int:
    """Delete ``step`` of the run's history rows (its first in key order; the key has no
    rank to range over); returns how many went."""
    h = S.worklist_history
    first = sa.select(h.c.account_id).where(h.c.run_id == run_id).limit(step)
    return conn.execute(h.delete().where(h.c.run_id == run_id,
                                         h.c.account_id.in_(first))).rowcount


def _in_steps(engine: sa.Engine, step_fn: Callable[[sa.Connection, int, int], int], *,
              run_id: str, top: int | None, hook: Callable[[str, int], None]) -> None:
    """Run ``step_fn(conn, rows_done, step)`` (it deletes up to ``step`` rows and returns
    how many) in paced steps until ``top`` rows are done (None: until a step deletes
    fewer than asked), in transactions of at most ``store_bulk.CHUNK_ROWS`` rows,
    committed early when another writer waits (:func:`drop_rows`); ``hook(run_id,
    rows_done)`` after each commit."""
    pacer = store_bulk.Pacer()
    lo = 0
    more = top is None or lo < top
    with (engine.connect() as conn, store_io.Waiters(engine.url) as waiters,
          store_io.stepped_writes(conn) as checkpoint):
        conn.execution_options(sqlite_begin="IMMEDIATE")
        while more:
            end = lo + store_bulk.CHUNK_ROWS if top is None else min(top,
                                                                     lo + store_bulk.CHUNK_ROWS)
            waiting = False
            with conn.begin():
                while more and lo < end and not waiting:  # steps; commit when a writer waits
                    step = min(pacer.rows(), end - lo)
                    t = time.perf_counter()
                    done = step_fn(conn, lo, step)
                    pacer.took(step, time.perf_counter() - t)
                    lo += done
                    more = done == step if top is None else lo < top
                    waiting = waiters.any()
            if waiting:
                waiters.let_in()
            checkpoint()
            hook(run_id, lo)


def sweep(engine: sa.Engine) -> list[str]:
    """Delete the rows left behind by runs that failed (a writer killed mid-write, then
    reaped) or were replaced (a writer killed after its flip); return their ids. On a
    SQLite file store, also unlink the rows files no run records that no running run is
    building (a writer killed between its file and its flip)."""
    r, w, h = S.runs, S.worklist, S.worklist_history
    database = store_io.sqlite_path(engine.url)
    folder = None if database is None else store_rows.rows_dir(database)
    # The files first, then the runs: a file listed here was begun by a run recorded by
    # then (as running, or with its file, or failed).
    files = sorted(folder.glob("*.db")) if folder is not None and folder.is_dir() else []
    with engine.connect() as conn:
        candidates = conn.execute(sa.select(r.c.run_id, r.c.rows_path).where(
            sa.or_(r.c.status == "failed", r.c.replaced_by.is_not(None)),
            ~r.c.is_current)).all()
        left = [run_id for run_id, path in candidates
                if path is not None
                or any(conn.execute(sa.select(t.c.run_id).where(t.c.run_id == run_id)
                                    .limit(1)).first() is not None for t in (w, h))]
        recorded = set(conn.execute(sa.select(r.c.rows_path)
                                    .where(r.c.rows_path.is_not(None))).scalars())
        running = set(conn.execute(sa.select(r.c.run_id)
                                   .where(r.c.status == "running")).scalars())
    orphans = [f for f in files if f.name not in recorded and f.stem not in running]
    drop_rows(engine, left)
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return left
