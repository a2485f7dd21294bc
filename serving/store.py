"""The worklist store: scoring runs, worklist rows, explanations and drift (DESIGN section 8).

One SQLAlchemy store, embedded SQLite by default (``sqlite:///<data_dir>/worklist.db``) or
PostgreSQL by URL (``postgresql+psycopg://...``). A run's life::

    run_id = store.begin_run(as_of=day, meta={...})            # status 'running'
    store.write_run(run_id, worklist=..., explanations=..., drift=..., meta={...})
    store.read_worklist(as_of=day, top=10)

Guarantees:

- **Atomic and idempotent.** ``write_run`` publishes the run as the current one for its
  ``as_of`` in ONE short transaction (the *flip*), retiring any earlier run for that date
  in it; readers see the old run or the new one, each whole. The rows go in before that,
  while the run is ``running`` and not current, which no reader looks at
  (:mod:`serving.store_publish`): on a SQLite file store into a file of the run's own,
  built holding no lock of the store (:mod:`serving.store_rowfile`), then its
  ``worklist_history`` rows; elsewhere into ``worklist`` and ``worklist_history``. The
  store's tables get them in chunks committed one by one. On SQLite (one writer at a
  time) a chunk is committed early when another writer waits at the store's turnstile
  (:func:`serving.store_io.make_engine`), so an analyst's event waits about one insert
  step (~10 ms of work) instead of the whole publish. An exception anywhere (a frame
  breaking the schema, a database error, a failed file write, the flip itself) leaves
  the previous run current and intact, records the new run as ``failed`` with the error
  message and deletes the rows (and rows file) it had written. A writer killed mid-write
  leaves an invisible ``running`` run: the next writer reaps it (below) and deletes its
  rows and the file no run records. A retired run's rows are deleted in chunks after the
  flip (no longer current: unread), then its rows file is unlinked (a reader that
  attached it reads on to the end of its transaction).
- **Readers never see a mix.** Each read resolves the current run and reads its rows in
  one committed snapshot (one statement, or on SQLite one transaction): the old run or
  the new. SQLite runs in WAL mode (readers do not wait for the writer) with a busy
  timeout. A run's rows are in the store's ``worklist`` table or, on a SQLite file store
  since revision 0010, in a file of their own that the reader attaches in its snapshot
  (:mod:`serving.store_rows`, the one place that resolves them); the reads across runs
  (an account's score history) read ``worklist_history``, written with the rows.
- **Totals** per (segment, action, region, scorer) of each run's rows are summed from its
  worklist before the flip and inserted by it (:mod:`serving.store_totals`), so they
  appear with the run, for the workbench's filtered totals.
- **Explanations** (SHAP vector and feature values of every scored account) are a wide
  Parquet file per run beside the store (:mod:`serving.store_files`), referenced by the
  ``explanations`` table, written on a thread while the rows go into the database. At 1M
  accounts x 60 features (``python -m bench.store --compare-explanations``, one loaded
  machine) the file took 21 s wall (6 s CPU), a wide SQLite table ~137 s, a long one ~540 s.
- **Parquet export** per ``as_of``: ``<export_dir>/<as_of>/worklist.parquet`` and
  ``explanations.parquet`` (a hard link to the run's file when possible), written under a
  temporary name and renamed after the commit (each rename is atomic on POSIX).
- **Versioned schema** (Alembic, :mod:`serving.store_migrate`). :func:`upgrade` (``delinq
  db upgrade``) and writers (``upgrade=True``; scoring) apply pending revisions in one
  transaction, each exactly once, keeping every run; a store of the release before
  migrations is recognised by its tables and stamped. Readers (the default) never change
  an existing store: on an older one they raise :class:`StoreVersionError` saying to run
  ``delinq db upgrade``; a store newer than this code is refused to all, untouched. An
  empty database is created at the newest revision by whoever opens it.

- **Runs cannot get stuck** (:mod:`serving.store_runs`): a running run's process refreshes
  its ``heartbeat_at``; a run whose heartbeat is older than ``stale_after`` is reaped by
  the next writer (marked ``failed``, its files removed, then its rows deleted with those
  of any replaced run a killed writer left: :func:`serving.store_publish.sweep`);
  :meth:`WorklistStore.delete_run` deletes a run with its files.
- **Deleting and pruning never hold the write lock long, nor show a half-deleted run**
  (:func:`serving.store_runs.delete`, :meth:`WorklistStore.prune`). A run is first hidden
  in ONE short transaction (un-published, marked ``meta["deleting"]``, its drift, totals
  and explanations reference deleted): from then on no read shows it (worklist reads and
  the account history resolve published runs; :meth:`WorklistStore.list_runs` skips
  hidden runs). Its worklist and history rows (1M for a 1M-account run; its rows file is
  unlinked after them) then go in chunks, each its
  own transaction, committed early when another writer waits at the turnstile, as in the
  publish: an analyst's event waits about one step (~10 ms), not the whole delete. Then
  its files, then ONE short transaction deletes its record (or, for a run whose KPIs
  stay, records ``meta["scores_pruned"]``). An exception or a kill between chunks leaves
  the run hidden, never half-shown; the next writer (:meth:`WorklistStore.begin_run`,
  :meth:`WorklistStore.prune`) finishes the deletion.

Timestamps (``started_at``, ``finished_at``, ``heartbeat_at``) come from ``clock`` (UTC now
by default): they record when the store did things, not what the data is as of.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from serving import (
    loop_events,
    store_bulk,
    store_files,
    store_io,
    store_migrate,
    store_publish,
    store_rows,
    store_runs,
)
from serving import store_schema as S
from serving.loop_events import LoopEvents
from serving.store_files import EXPLANATIONS_FORMAT
from serving.store_io import (
    StoreDamagedError,
    StoreError,
    StoreMissingError,
    StoreUnavailableError,
)
from serving.store_migrate import StoreVersionError, current_revision, revision_status, upgrade
from serving.store_records import RUN_FIELDS, RunRecord, as_date, meta_columns, record_of
from serving.store_runs import HEARTBEAT_EVERY, STALE_AFTER, RunInProgressError
from serving.store_schema import StoreSchemaError

__all__ = [
    "EXPLANATIONS_FORMAT", "HEARTBEAT_EVERY", "STALE_AFTER", "RunInProgressError",
    "RunRecord", "StoreDamagedError", "StoreError", "StoreMissingError", "StoreSchemaError",
    "StoreUnavailableError", "StoreVersionError",
    "WorklistStore", "current_revision", "revision_status", "upgrade",
]



def _utc_now() -> datetime:
    return datetime.now(UTC)


_WORKLIST_ARROW = pa.schema(
    [("run_id", pa.string())] + [(n, t) for n, (t, _) in S.WORKLIST_COLUMNS.items()]
)


class WorklistStore:
    """Scoring runs and their worklists in SQLite or PostgreSQL (see the module docstring).

    ``export_dir``: where per-``as_of`` Parquet exports go (none if ``None``).
    ``explanations_dir``: where per-run explanation files live; default beside a SQLite
    file (``<db stem>_explanations/``), else ``<export_dir>/_explanations``.
    ``upgrade``: a writer applies pending schema revisions on opening; a reader (False)
    raises :class:`StoreVersionError` on a store that needs them (module docstring).
    ``read_only``: a reader that changes nothing and creates nothing: SQLite is opened
    with ``mode=ro`` (it works in a read-only folder), PostgreSQL sessions are read-only; a
    missing store is :class:`StoreMissingError`, a damaged one :class:`StoreDamagedError`.
    ``stale_after``: a running run without a heartbeat for this long is reaped by
    :meth:`begin_run` and :meth:`reap_stale`; ``heartbeat_every``: how often this process
    refreshes the heartbeat of its own running runs.
    """

    def __init__(
        self,
        url: str,
        *,
        export_dir: Path | None = None,
        explanations_dir: Path | None = None,
        clock: Callable[[], datetime] = _utc_now,
        upgrade: bool = False,
        stale_after: timedelta = STALE_AFTER,
        heartbeat_every: timedelta = HEARTBEAT_EVERY,
        read_only: bool = False,
    ) -> None:
        if read_only and upgrade:
            raise ValueError("a read-only store cannot upgrade its schema")
        self.url = store_io.normalise_url(url)
        self.read_only = read_only
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.stale_after = stale_after
        self._heartbeat_every = heartbeat_every
        self._heartbeats: dict[str, store_runs.Heartbeat] = {}
        self._clock = clock
        with store_io.translated_errors(self.url):
            store_io.check_sqlite_file(self.url, read_only=read_only)
            self._engine = store_io.make_engine(self.url, read_only=read_only)
        self.explanations_dir = store_io.explanations_dir(
            self.url, explanations_dir, self.export_dir
        )
        try:
            with store_io.translated_errors(self.url):
                store_migrate.ensure_revision(self._engine, upgrade=upgrade,
                                              create=not read_only)
        except BaseException:
            self._engine.dispose()
            raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop this process's heartbeats and release the database connections."""
        for run_id in list(self._heartbeats):
            self._stop_heartbeat(run_id)
        self._engine.dispose()

    def __enter__(self) -> WorklistStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WorklistStore({store_io.display_url(self.url)!r})"

    # ------------------------------------------------------------------ writing
    def begin_run(self, *, as_of: date, meta: dict[str, Any]) -> str:
        """Record a ``running`` run for ``as_of`` and return its id.

        ``meta`` may name ``model_versions`` (``{"early_warning": .., "persistence": ..}``)
        and ``feature_set_version``; everything else is kept as JSON in ``meta``. The run's
        ``runner`` is ``<host>:<pid>`` of this process (who runs it). Stale runs of dead processes
        are reaped first (:meth:`reap_stale`); this process then keeps the new run's
        heartbeat fresh until :meth:`write_run` or :meth:`fail_run` ends it.
        """
        as_of = as_date(as_of)
        now = self._now()
        self._reap(now, self.stale_after)
        store_publish.sweep(self._engine)  # rows of reaped (and killed-after-flip) runs
        store_runs.finish_deletions(self._engine, explanations_dir=self.explanations_dir,
                                    export_dir=self.export_dir)  # of a killed delete/prune
        run_id = f"{as_of.isoformat()}-{uuid.uuid4().hex[:12]}"
        row = {
            "run_id": run_id,
            "as_of": as_of,
            "status": "running",
            "started_at": now,
            "heartbeat_at": now,
            "is_current": False,
            "runner": f"{socket.gethostname()}:{os.getpid()}"[:S.ID_LENGTH],
            **meta_columns(meta),
        }
        with store_io.writing(self._engine) as conn:
            conn.execute(S.runs.insert().values(**row))
        if not _in_memory(self.url):  # one shared connection there: no second thread on it
            self._heartbeats[run_id] = store_runs.Heartbeat(
                self._engine, run_id, every=self._heartbeat_every, clock=self._now)
        return run_id

    def reap_stale(self, *, stale_after: timedelta | None = None) -> list[str]:
        """Mark ``failed`` every running run without a heartbeat for ``stale_after``
        (default: the store's) and remove its files; return their ids."""
        return self._reap(self._now(), stale_after or self.stale_after)

    def _reap(self, now: datetime, stale_after: timedelta) -> list[str]:
        return store_runs.reap(self._engine, now=now, stale_after=stale_after,
                               explanations_dir=self.explanations_dir, export_dir=self.export_dir)

    def delete_run(self, run_id: str) -> RunRecord:
        """Delete a run: its rows, explanation file and, if it is the published run of its
        ``as_of``, that date's export (that date then has no worklist). Returns the run as
        it was. ``KeyError`` if unknown; :class:`RunInProgressError` if it is running with
        a fresh heartbeat."""
        record = self._run(run_id)
        store_runs.delete(self._engine, run_id, now=self._now(), stale_after=self.stale_after,
                          explanations_dir=self.explanations_dir, export_dir=self.export_dir)
        return record

    def prune(self, *, today: date, keep_explanations: int, keep_scores_days: int,
              keep_exports_days: int, keep_kpis_days: int | None = None
              ) -> dict[str, list[str]]:
        """Apply the retention policy as of ``today`` (see :func:`serving.store_runs.prune`);
        returns what was removed: ``explanations``, ``runs`` and ``scores`` (run ids; a run
        in ``scores`` keeps its record and KPIs), ``exports``."""
        return store_runs.prune(
            self._engine, today=as_date(today), keep_explanations=keep_explanations,
            keep_scores_days=keep_scores_days, keep_exports_days=keep_exports_days,
            keep_kpis_days=keep_kpis_days,
            explanations_dir=self.explanations_dir, export_dir=self.export_dir)

    def set_run_meta(self, run_id: str, key: str, value: Any) -> RunRecord:
        """Record ``value`` under ``key`` of a run's ``meta`` JSON (a fact learned after
        the run, e.g. its live performance), atomically: other keys, the run's columns and
        its rows are untouched, and a failure leaves ``meta`` as it was
        (:func:`serving.store_runs.set_meta`). Returns the run. ``KeyError`` if unknown."""
        store_runs.set_meta(self._engine, run_id, key, value)
        return self._run(run_id)

    def _stop_heartbeat(self, run_id: str) -> None:
        beat = self._heartbeats.pop(run_id, None)
        if beat is not None:
            beat.stop()

    def write_run(
        self,
        run_id: str,
        *,
        worklist: pd.DataFrame,
        explanations: pd.DataFrame,
        drift: pd.DataFrame,
        meta: dict[str, Any],
    ) -> RunRecord:
        """Write a run's rows and publish it as the current run for its ``as_of``.

        All-or-nothing: on any exception (a frame breaking the schema, a database error,
        a failed file write) the previous current run stays current and intact, this run is
        recorded ``failed`` with the message, and the exception is re-raised.
        """
        try:
            return self._write_run(run_id, worklist=worklist, explanations=explanations,
                                   drift=drift, meta=meta)
        finally:
            self._stop_heartbeat(run_id)

    def _write_run(
        self,
        run_id: str,
        *,
        worklist: pd.DataFrame,
        explanations: pd.DataFrame,
        drift: pd.DataFrame,
        meta: dict[str, Any],
    ) -> RunRecord:
        run = self._run(run_id)
        if run.status != "running":
            raise ValueError(f"run {run_id} is {run.status}, not running: begin a new run")
        t0 = time.perf_counter()
        staged: list[Path] = []
        run_dir: Path | None = None
        database = store_io.sqlite_path(self.url)
        # A SQLite file store's run rows go into a file of their own (serving.store_rows).
        rows_file = (None if database is None
                     else store_rows.rows_dir(database) / f"{run_id}.db")
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-parquet")
        try:
            run_dir = self._run_dir(run_id)
            wl = S.check_worklist(worklist, as_of=run.as_of)
            ex = S.check_explanations(explanations, account_ids=wl.column("account_id"))
            dr = S.check_drift(drift)
            t_check = time.perf_counter()
            # Files go on a thread (Arrow releases the GIL) while rows go into the database.
            files = pool.submit(store_files.write_run_files, run_dir, self.export_dir,
                                run_id, run.as_of, wl, ex, staged)
            timings = store_publish.publish(self._engine, run, wl, dr, files, meta,
                                            check_s=t_check - t0, now=self._now,
                                            rows_file=rows_file)
        except BaseException as exc:
            pool.shutdown(wait=True)
            for path in staged:
                path.unlink(missing_ok=True)
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            if rows_file is not None:
                rows_file.unlink(missing_ok=True)
            with contextlib.suppress(Exception):
                self.fail_run(run_id, message=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):  # else the next writer's sweep does it
                store_publish.drop_rows(self._engine, [run_id])
            raise
        pool.shutdown(wait=True)
        # After the commit: move the exports into place, drop retired runs' rows and files.
        for tmp in staged:
            os.replace(tmp, tmp.with_name(tmp.name.split(".", 2)[2]))
        retired = timings.pop("_retired", [])
        store_publish.drop_rows(self._engine, retired)
        for old in retired:
            shutil.rmtree(self._run_dir(old), ignore_errors=True)
        return self._run(run_id)

    def fail_run(self, run_id: str, *, message: str) -> None:
        """Record a ``running`` run as ``failed`` with ``message`` (it is never published)."""
        self._stop_heartbeat(run_id)
        with store_io.writing(self._engine) as conn:
            status = conn.execute(
                sa.select(S.runs.c.status).where(S.runs.c.run_id == run_id)
            ).scalar_one_or_none()
            if status is None:
                raise KeyError(f"no run {run_id!r} in {self!r}")
            if status != "running":
                raise ValueError(f"run {run_id} is {status}; only a running run can fail")
            conn.execute(S.runs.update().where(S.runs.c.run_id == run_id).values(
                status="failed", finished_at=self._now(), message=message[:4000]))

    def record_blocked(self, *, as_of: date, reason: str) -> str:
        """Record a run stopped before it started (e.g. too little free disk) as a
        ``failed`` run with ``meta["blocked"] = True`` and ``reason`` as its message, so
        that readers of the runs (``delinq runs``, the workbench's banner) see it; returns
        its id. Nothing else is written."""
        run_id = self.begin_run(as_of=as_of, meta={"blocked": True})
        self.fail_run(run_id, message=reason)
        return run_id

    # ------------------------------------------------------------------ reading
    def current_run(self, *, as_of: date | None = None) -> RunRecord | None:
        """The published run for ``as_of`` (the latest ``as_of`` if None), or None."""
        with self._engine.connect() as conn:
            return current_run_of(conn, as_of=as_of)

    def read_worklist(
        self, *, as_of: date | None = None, top: int | None = None, segment: str | None = None
    ) -> pd.DataFrame:
        """The current run's worklist for ``as_of`` (latest if None), ordered by ``rank``.

        Columns: ``run_id`` then the worklist columns (``as_of`` as ``datetime64[s]``).
        ``segment`` filters (ranks stay book-wide); ``top`` keeps the first rows. Empty
        frame (same columns) when there is no such run.
        """
        if segment is not None and segment not in S.SEGMENTS:
            raise ValueError(f"segment must be one of {list(S.SEGMENTS)}, got {segment!r}")
        if top is not None and top < 0:
            raise ValueError(f"top must be >= 0, got {top}")
        w = store_rows.run_worklist
        with self._engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # One transaction (SQLite's snapshot): the current run, then its rows from
                # wherever they are (its file or the store's table).
                run_id = conn.execute(sa.select(_current_run_id(as_of))).scalar_one_or_none()
                conn = store_rows.run_rows(conn, run_id or "")
                current: Any = run_id
            else:
                # One statement (PostgreSQL reads each statement's own snapshot; its runs'
                # rows are always in the store's table).
                conn = store_rows.run_rows(conn, "")
                current = _current_run_id(as_of)
            query = sa.select(w).where(w.c.run_id == current).order_by(w.c.rank)
            if segment is not None:
                query = query.where(w.c.segment == segment)
            if top is not None:
                query = query.limit(top)
            table = store_bulk.read_arrow(conn, query, _WORKLIST_ARROW)
        frame = table.to_pandas(date_as_object=False)
        for col in ("as_of", "hold_date", "hold_ends"):
            frame[col] = frame[col].astype("datetime64[s]")
        # Rows written before revision 0003 were all ranked by a model.
        frame["scorer"] = frame["scorer"].fillna(S.LEGACY_SCORER)
        return frame

    def read_explanations(
        self, run_id: str, *, account_ids: list[str] | None = None
    ) -> pd.DataFrame:
        """SHAP vectors and feature values of a run's accounts (all, or ``account_ids``).

        Rows are in written order; columns are as written by the scorer. Raises
        ``KeyError`` if the run has no stored explanations (unknown, failed or replaced).
        """
        return self.read_explanation_table(run_id, account_ids=account_ids).to_pandas()

    def read_explanation_table(
        self, run_id: str, *, account_ids: list[str] | None = None
    ) -> pa.Table:
        """:meth:`read_explanations` as the Arrow table read from the run's file (no
        pandas frame: the workbench's account page reads one row of ~120 columns)."""
        with self._engine.connect() as conn:
            path = conn.execute(
                sa.select(S.explanations.c.path).where(S.explanations.c.run_id == run_id)
            ).scalar_one_or_none()
        if path is None:
            raise KeyError(f"run {run_id!r} has no stored explanations in {self!r}")
        try:
            return store_files.read_parquet_accounts(Path(path), account_ids)
        except FileNotFoundError as exc:
            raise KeyError(f"run {run_id!r} was replaced while reading; read again") from exc

    def read_loop_events(self, *, as_of: date) -> LoopEvents:
        """The workbench's events recorded strictly before ``as_of`` (UTC midnight), as
        the collections loop's data (:func:`serving.loop_events.read_loop_events`)."""
        with self._engine.connect() as conn:
            return loop_events.read_loop_events(conn, as_of=as_of)

    def read_final_notices(self) -> list[str]:
        """Ids of the accounts dunning sent its final notice
        (:func:`serving.dunning.run.final_notice_accounts`), read on this store's engine."""
        from serving.dunning.run import final_notice_accounts

        with self._engine.connect() as conn:
            return final_notice_accounts(conn)

    def read_drift(self, run_id: str) -> pd.DataFrame:
        """Drift rows of a run (``model``, ``feature``, ``psi``, ``flag``) in written order."""
        d = S.drift
        query = sa.select(d.c.model, d.c.feature, d.c.psi, d.c.flag).where(
            d.c.run_id == run_id).order_by(d.c.position)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame.from_records(rows, columns=["model", "feature", "psi", "flag"])
        return frame.astype({"model": "str", "feature": "str", "psi": "float64", "flag": "str"})

    def list_runs(self) -> pd.DataFrame:
        """All runs, oldest first: one row per run with the :class:`RunRecord` fields.
        A run being deleted (hidden, :func:`serving.store_runs.is_hidden`) is left out."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                self._runs_query().order_by(S.runs.c.started_at, S.runs.c.run_id)
            ).mappings().all()
        records = [record_of(r).__dict__ for r in rows
                   if not store_runs.is_hidden(r["meta"])]
        return pd.DataFrame.from_records(records, columns=RUN_FIELDS)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _runs_query() -> sa.Select[Any]:
        return sa.select(S.runs, S.explanations.c.path.label("explanations_path")).outerjoin(
            S.explanations, S.explanations.c.run_id == S.runs.c.run_id
        )

    def _run(self, run_id: str) -> RunRecord:
        with self._engine.connect() as conn:
            row = conn.execute(
                self._runs_query().where(S.runs.c.run_id == run_id)
            ).mappings().first()
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self!r}")
        return record_of(row)

    def _run_dir(self, run_id: str) -> Path:
        if self.explanations_dir is None:
            raise ValueError(
                "no place for explanation files: pass explanations_dir= or export_dir= "
                "(needed with PostgreSQL or an in-memory SQLite store)"
            )
        return self.explanations_dir / run_id

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)


# ---------------------------------------------------------------------- module helpers
def _current_run_id(as_of: date | sa.BindParameter[Any] | None) -> sa.ScalarSelect[Any]:
    """Sub-select of the current run's id for ``as_of`` (a date or a bound parameter; the
    latest current if None)."""
    r = S.runs
    if as_of is None:
        latest = sa.select(sa.func.max(r.c.as_of)).where(r.c.is_current).scalar_subquery()
        day: Any = latest
    else:
        day = as_of if isinstance(as_of, sa.BindParameter) else as_date(as_of)
    return sa.select(r.c.run_id).where(r.c.is_current, r.c.as_of == day).scalar_subquery()


def current_run_of(conn: sa.Connection, *, as_of: date | None = None) -> RunRecord | None:
    """:meth:`WorklistStore.current_run` on the caller's connection (a reader of the run
    and its rows in one transaction: the workbench's worklist)."""
    values = {} if as_of is None else {"as_of": as_date(as_of)}
    row = conn.execute(_current_run_query(as_of is None), values).mappings().first()
    return None if row is None else record_of(row)


@functools.cache
def _current_run_query(latest: bool) -> sa.Select[Any]:
    """:meth:`WorklistStore.current_run`'s statement, for the latest ``as_of`` or the bound
    ``as_of``: built once (the workbench reads the current run on every request, and
    building and keying the statement cost more than running it)."""
    as_of = None if latest else sa.bindparam("as_of", type_=sa.Date)
    return WorklistStore._runs_query().where(S.runs.c.run_id == _current_run_id(as_of))


def _in_memory(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
