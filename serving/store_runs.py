"""Runs that cannot get stuck: heartbeats, reaping dead runs, deleting runs and their files.

A writer's run is ``running`` from ``begin_run`` until ``write_run`` publishes it or
``fail_run`` records its failure. A process killed in between (``kill -9``, a power cut, an
out-of-memory kill) leaves it ``running`` for ever, with half-written files: its explanation
folder ``<explanations_dir>/<run_id>/`` and staged exports
``<export_dir>/<as_of>/.<run_id>.*.parquet``. So:

- **Heartbeat.** While a run is in progress its process refreshes ``runs.heartbeat_at``
  every :data:`HEARTBEAT_EVERY` (a daemon thread, :class:`Heartbeat`), including while
  scoring (minutes for 1M accounts) before anything is written.
- **Reaping.** A ``running`` run whose heartbeat (or, for runs of stores before revision
  0002, whose start) is older than the stale limit (:data:`STALE_AFTER` by default, far above
  the heartbeat period and any lock wait) belongs to a dead process: :func:`reap` marks it
  ``failed`` with a message saying so and removes its files. Writers reap when they begin
  a run; ``delinq runs`` reaps too.
- **Deleting** a run (:func:`delete`, and :func:`prune`'s deletions) removes its rows, its
  explanation folder and, when it was the published run of its ``as_of``, that date's
  export, in short transactions: first the run is hidden (un-published and marked
  :data:`DELETING_KEY` in ONE transaction, with its small rows), then its worklist rows go
  in chunks that let a waiting writer in (:func:`serving.store_publish.drop_rows`), then
  its record. A deletion killed midway leaves a hidden run that the next writer finishes
  (:func:`finish_deletions`).
- **Facts learned later** about a run (its live performance once its labels resolved,
  issue 19) go under one key of its ``meta`` JSON (:func:`set_meta`), without a schema
  change. Guarantees: the read-modify-write of ``meta`` is ONE transaction that holds the
  run's row (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite ``BEGIN IMMEDIATE``, the write
  lock), so two writers of different keys both keep theirs; a failure anywhere leaves
  ``meta`` exactly as it was; the other keys, the columns and the status are untouched.

Times come from the store's clock (UTC); staleness is about when the store last heard from
a process, not about what the data is as of.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq
import sqlalchemy as sa

from serving import store_io, store_publish
from serving import store_schema as S
from serving.store_records import json_safe
from serving.store_totals import worklist_totals

#: ``meta`` keys :func:`set_meta` refuses: ``begin_run``/``write_run`` map them onto columns
#: (``serving.store_records.meta_columns``), so in the JSON they would be shadowed.
COLUMN_META_KEYS: Final = frozenset({"model_versions", "feature_set_version", "message",
                                     "timings"})

#: How often a running run's process refreshes its heartbeat.
HEARTBEAT_EVERY: Final = timedelta(seconds=60)
#: A running run without a heartbeat for this long is taken as dead (10 heartbeats missed;
#: SQLite's busy timeout, the longest a heartbeat may wait for the write lock, is 2 min).
STALE_AFTER: Final = timedelta(minutes=10)

_log = logging.getLogger(__name__)


class RunInProgressError(ValueError):
    """The run is still running (its heartbeat is fresh): it cannot be deleted now."""


class Heartbeat:
    """A daemon thread refreshing ``runs.heartbeat_at`` of one running run every ``every``.

    A failed refresh (the database busy or briefly unreachable) is logged and retried at
    the next tick: a missed beat is harmless, the stale limit is ten of them.
    """

    def __init__(self, engine: sa.Engine, run_id: str, *, every: timedelta,
                 clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._run_id = run_id
        self._every = every.total_seconds()
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"store-heartbeat-{run_id}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                beat(self._engine, self._run_id, now=self._clock())
            except sa.exc.SQLAlchemyError as exc:
                _log.warning("heartbeat of run %s failed (retrying): %s", self._run_id, exc)

    def stop(self) -> None:
        """Stop beating (waits for a beat in progress)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def beat(engine: sa.Engine, run_id: str, *, now: datetime) -> None:
    """Set the heartbeat of ``run_id`` to ``now`` if it is still running."""
    r = S.runs
    with store_io.writing(engine) as conn:
        conn.execute(r.update().where(r.c.run_id == run_id, r.c.status == "running")
                     .values(heartbeat_at=now))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def last_sign_of_life(heartbeat_at: datetime | None, started_at: datetime) -> datetime:
    """When a running run's process was last heard of (UTC): heartbeat, else start."""
    return _utc(heartbeat_at) or _utc(started_at)  # type: ignore[return-value]


def reap(engine: sa.Engine, *, now: datetime, stale_after: timedelta,
         explanations_dir: Path | None, export_dir: Path | None) -> list[str]:
    """Mark every stale ``running`` run ``failed`` and remove its files; return their ids.

    Each run is failed by one guarded UPDATE (still running, heartbeat unchanged since it
    was read), so a run whose process beats at that moment, or that another reaper got
    first, is left alone.
    """
    r = S.runs
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.run_id, r.c.as_of, r.c.started_at, r.c.heartbeat_at)
                            .where(r.c.status == "running")).all()
    reaped = []
    for run_id, as_of, started_at, heartbeat_at in rows:
        last = last_sign_of_life(heartbeat_at, started_at)
        if now - last < stale_after:
            continue
        same_beat = (r.c.heartbeat_at.is_(None) if heartbeat_at is None
                     else r.c.heartbeat_at == heartbeat_at)
        message = (f"abandoned: no sign of life from its process since "
                   f"{last.isoformat(timespec='seconds')} (stale after "
                   f"{stale_after.total_seconds() / 60:g} min); reaped at "
                   f"{now.isoformat(timespec='seconds')}")
        with store_io.writing(engine) as conn:
            done = conn.execute(
                r.update().where(r.c.run_id == run_id, r.c.status == "running", same_beat)
                .values(status="failed", finished_at=now, message=message)
            ).rowcount
        if done:
            remove_files(run_id, as_of=_as_date(as_of), explanations_dir=explanations_dir,
                         export_dir=export_dir, published=False)
            reaped.append(run_id)
    return reaped


def delete(engine: sa.Engine, run_id: str, *, now: datetime, stale_after: timedelta,
           explanations_dir: Path | None, export_dir: Path | None) -> dict[str, Any]:
    """Delete ``run_id``: its rows in every table, its explanation folder and, if it was
    the published run of its ``as_of``, that date's export. Returns the run's row.

    In short transactions (:func:`_hide`, then :func:`_finish`): the run is first hidden,
    so no reader sees it half-deleted, and a deletion killed midway is finished by the
    next writer (:func:`finish_deletions`).

    ``KeyError`` for an unknown run; :class:`RunInProgressError` for a running run whose
    heartbeat is fresh (its process is alive: let it finish, or stop it first).
    """
    row = _hide(engine, run_id, now=now, stale_after=stale_after, keep_record_as=None)
    _finish(engine, run_id, row["meta"][DELETING_KEY], as_of=_as_date(row["as_of"]),
            explanations_dir=explanations_dir, export_dir=export_dir)
    mark = row["meta"].pop(DELETING_KEY)
    row["is_current"] = bool(mark["published"])  # the run as it was
    return row


#: Key of a run's ``meta`` marking a deletion in progress (:func:`_hide`): ``published``
#: (whether the run was its ``as_of``'s published run, so its export goes too) and
#: ``scores_pruned`` (None: the whole run goes; a date: only its rows and files go, the
#: record stays with ``meta["scores_pruned"]`` set to that date).
DELETING_KEY: Final = "deleting"


def _hide(engine: sa.Engine, run_id: str, *, now: datetime, stale_after: timedelta,
          keep_record_as: date | None) -> dict[str, Any]:
    """The first, short transaction of a deletion: un-publish the run, mark it
    :data:`DELETING_KEY` and delete its small rows (drift, totals, explanations
    reference). From its commit on, no reader sees the run (reads resolve published runs,
    :meth:`serving.store.WorklistStore.list_runs` skips marked ones), so its worklist rows
    can go chunk by chunk. Returns the run's row as it is after this transaction."""
    r = S.runs
    with store_io.writing(engine) as conn:
        query = sa.select(r).where(r.c.run_id == run_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise KeyError(f"no run {run_id!r}")
        row = dict(row)
        if row["status"] == "running":
            last = last_sign_of_life(row["heartbeat_at"], row["started_at"])
            if now - last < stale_after:
                raise RunInProgressError(
                    f"run {run_id} is in progress (last heartbeat "
                    f"{last.isoformat(timespec='seconds')}); let it finish or stop it first"
                )
        meta = dict(row["meta"] or {})
        # A deletion already under way knows whether the run was published; what to keep
        # is this caller's to say.
        earlier = meta.get(DELETING_KEY) if isinstance(meta.get(DELETING_KEY), dict) else {}
        meta[DELETING_KEY] = {
            "published": bool(earlier.get("published", row["is_current"])),
            "scores_pruned": None if keep_record_as is None else keep_record_as.isoformat()}
        conn.execute(r.update().where(r.c.run_id == run_id).values(is_current=False,
                                                                     meta=meta))
        for table in (S.drift, S.explanations, worklist_totals):
            conn.execute(table.delete().where(table.c.run_id == run_id))
    row.update(is_current=False, meta=meta)
    return row


def _finish(engine: sa.Engine, run_id: str, mark: dict[str, Any], *, as_of: date,
            explanations_dir: Path | None, export_dir: Path | None) -> None:
    """The rest of a deletion hidden by :func:`_hide`: the worklist rows in chunks that a
    waiting writer may interrupt (:func:`serving.store_publish.drop_rows`), the files,
    then one short transaction deleting the run's record, or, when the mark keeps it,
    setting ``meta["scores_pruned"]`` and removing the mark. Idempotent: a second call
    (the next writer after a kill) finishes what the first left."""
    store_publish.drop_rows(engine, [run_id])
    remove_files(run_id, as_of=as_of, explanations_dir=explanations_dir,
                 export_dir=export_dir, published=bool(mark.get("published")))
    r = S.runs
    kept_as = mark.get("scores_pruned")
    with store_io.writing(engine) as conn:
        if kept_as is None:
            conn.execute(r.delete().where(r.c.run_id == run_id))
            return
        query = sa.select(r.c.meta).where(r.c.run_id == run_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        meta = conn.execute(query).scalar_one_or_none()
        if meta is None:
            return
        meta = {k: v for k, v in dict(meta).items() if k != DELETING_KEY}
        meta[SCORES_PRUNED_KEY] = kept_as
        conn.execute(r.update().where(r.c.run_id == run_id).values(meta=meta))


def finish_deletions(engine: sa.Engine, *, explanations_dir: Path | None,
                     export_dir: Path | None) -> list[str]:
    """Finish every deletion a killed process left hidden but not done (:func:`_finish`);
    return the run ids. Writers call it when they begin a run and before pruning."""
    r = S.runs
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.run_id, r.c.as_of, r.c.meta)
                            .where(~r.c.is_current)).all()
    done = []
    for run_id, as_of, meta in rows:
        mark = meta.get(DELETING_KEY) if isinstance(meta, dict) else None
        if isinstance(mark, dict):
            _finish(engine, run_id, mark, as_of=_as_date(as_of),
                    explanations_dir=explanations_dir, export_dir=export_dir)
            done.append(run_id)
    return done


def is_hidden(meta: Any) -> bool:
    """Whether a run's ``meta`` marks a deletion in progress (the run is not shown)."""
    return isinstance(meta, dict) and meta.get(DELETING_KEY) is not None


def remove_files(run_id: str, *, as_of: date, explanations_dir: Path | None,
                 export_dir: Path | None, published: bool) -> None:
    """Remove the files of ``run_id``: its explanation folder, its staged exports and, if
    ``published``, the export of ``as_of`` when that export is this run's."""
    if explanations_dir is not None:
        shutil.rmtree(Path(explanations_dir) / run_id, ignore_errors=True)
    if export_dir is None:
        return
    out = Path(export_dir) / as_of.isoformat()
    for staged in out.glob(f".{run_id}.*"):
        staged.unlink(missing_ok=True)
    if published and export_owner(out / "worklist.parquet") == run_id:
        for name in ("worklist.parquet", "explanations.parquet"):
            (out / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            out.rmdir()  # only if nothing else is left in it


def export_owner(path: Path) -> str | None:
    """The run id an export file was written by (its Parquet metadata), or None."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return None
    owner = meta.get(b"delinq.run_id")
    return None if owner is None else owner.decode()


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


#: Key of a run's ``meta`` that holds its receivables KPIs, and the key :func:`prune` sets
#: (to the pruning day) on a run whose rows went while its KPIs stay.
KPIS_KEY: Final = "kpis"
SCORES_PRUNED_KEY: Final = "scores_pruned"


def prune(engine: sa.Engine, *, today: date, keep_explanations: int, keep_scores_days: int,
          keep_exports_days: int, explanations_dir: Path | None,
          export_dir: Path | None, keep_kpis_days: int | None = None) -> dict[str, list[str]]:
    """Apply the retention policy; return what went (``explanations``, ``runs``,
    ``scores``, ``exports``: run ids, run ids, run ids, export folder names).

    - Explanation files of published runs beyond the newest ``keep_explanations`` (by
      ``as_of``) are removed (their worklist rows stay: reasons are in the rows).
    - Finished runs with ``as_of`` more than ``keep_scores_days`` before ``today`` lose
      their rows and files. A run whose ``meta`` holds KPIs (``"kpis"``) keeps its record,
      KPIs included, until ``as_of`` is more than ``keep_kpis_days`` before ``today``
      (``scores``: its ``meta["scores_pruned"]`` says when its rows went); every other
      such run is deleted with everything of theirs (:func:`delete`, ``runs``). Either
      way the run is hidden first and its rows go in chunks (:func:`_hide`,
      :func:`_finish`): a run whose scores went is no longer its ``as_of``'s published
      run. Running runs are never touched. ``keep_kpis_days`` None or below
      ``keep_scores_days``: KPIs go with the scores.
    - Export folders ``<export_dir>/<as_of>/`` older than ``keep_exports_days`` go.

    ``today`` is the caller's date (the nightly's ``as_of``): the library reads no clock.
    """
    r, e = S.runs, S.explanations
    gone: dict[str, list[str]] = {"explanations": [], "runs": [], "scores": [], "exports": []}
    kpi_days = max(keep_kpis_days or 0, keep_scores_days)
    finish_deletions(engine, explanations_dir=explanations_dir, export_dir=export_dir)
    with engine.connect() as conn:
        published = conn.execute(
            sa.select(r.c.run_id).join(e, e.c.run_id == r.c.run_id)
            .where(r.c.is_current).order_by(r.c.as_of.desc(), r.c.run_id.desc())
        ).scalars().all()
        cutoff = today - timedelta(days=keep_scores_days)
        kpi_cutoff = today - timedelta(days=kpi_days)
        old = conn.execute(sa.select(r.c.run_id, r.c.as_of, r.c.meta).where(
            r.c.as_of < cutoff, r.c.status != "running")).all()
    for run_id in published[keep_explanations:]:
        with store_io.writing(engine) as conn:
            conn.execute(e.delete().where(e.c.run_id == run_id))
        if explanations_dir is not None:
            shutil.rmtree(Path(explanations_dir) / run_id, ignore_errors=True)
        gone["explanations"].append(run_id)
    for run_id, as_of, meta in old:
        meta = meta if isinstance(meta, dict) else {}
        if meta.get(KPIS_KEY) is not None and _as_date(as_of) >= kpi_cutoff:
            if not meta.get(SCORES_PRUNED_KEY):
                _drop_scores(engine, run_id, today=today, explanations_dir=explanations_dir,
                             export_dir=export_dir)
                gone["scores"].append(run_id)
            continue
        delete(engine, run_id, now=datetime.max.replace(tzinfo=UTC), stale_after=STALE_AFTER,
               explanations_dir=explanations_dir, export_dir=export_dir)
        gone["runs"].append(run_id)
    if export_dir is not None and Path(export_dir).is_dir():
        limit = today - timedelta(days=keep_exports_days)
        for folder in sorted(Path(export_dir).iterdir()):
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue  # not an as_of folder (e.g. _explanations)
            if folder.is_dir() and day < limit:
                shutil.rmtree(folder, ignore_errors=True)
                gone["exports"].append(folder.name)
    return gone


def _drop_scores(engine: sa.Engine, run_id: str, *, today: date,
                 explanations_dir: Path | None, export_dir: Path | None) -> None:
    """Delete a run's rows and files but keep its record (its KPIs), marked pruned
    ``today``; hidden first and in chunks, as :func:`delete`."""
    row = _hide(engine, run_id, now=datetime.max.replace(tzinfo=UTC), stale_after=STALE_AFTER,
                keep_record_as=today)
    _finish(engine, run_id, row["meta"][DELETING_KEY], as_of=_as_date(row["as_of"]),
            explanations_dir=explanations_dir, export_dir=export_dir)


def set_meta(engine: sa.Engine, run_id: str, key: str, value: Any) -> dict[str, Any]:
    """Set ``meta[key] = value`` (made JSON-safe) of run ``run_id`` atomically (module
    docstring) and return the run's whole ``meta`` as written.

    ``KeyError`` for an unknown run; ``ValueError`` for an empty key or one that names a
    run column (:data:`COLUMN_META_KEYS`). Any status: facts about a failed run may be
    recorded too.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"meta key must be a non-empty string, got {key!r}")
    if key in COLUMN_META_KEYS:
        raise ValueError(f"meta key {key!r} is a run column, not a meta entry")
    r = S.runs
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            query = sa.select(r.c.meta).where(r.c.run_id == run_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            found = conn.execute(query).first()
            if found is None:
                raise KeyError(f"no run {run_id!r}")
            meta = {**dict(found[0] or {}), key: _finite(json_safe(value))}
            conn.execute(r.update().where(r.c.run_id == run_id).values(meta=meta))
    return meta


def _finite(value: Any) -> Any:
    """NaN and infinities as None: PostgreSQL's JSON has no such numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
