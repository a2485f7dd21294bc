"""Runs that cannot get stuck, on SQLite and PostgreSQL: a writer killed with SIGKILL in the
middle of its write (between two chunks) is reaped by the next writer (run failed, files
and rows removed, the previous worklist intact); heartbeats keep a live run from being
reaped; runs are deleted with their files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving import store_schema as S
from serving.store import RunInProgressError, WorklistStore
from tests.serving.test_store import DAY, frames, publish, rows_table, worklist_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


def _worklist_rows(store: WorklistStore, run_id: str) -> int:
    """The run's rows committed in chunks: its worklist rows (PostgreSQL), or on a SQLite
    file store its history rows (its worklist rows went into their file first)."""
    t = S.worklist if rows_table(store) == "worklist" else S.worklist_history
    with store._engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(t.c.run_id == run_id)).scalar_one()


def _open(url: str, tmp_path: Path, **kwargs: object) -> WorklistStore:
    return WorklistStore(url, export_dir=tmp_path / "exports",
                         explanations_dir=tmp_path / "explanations", **kwargs)  # type: ignore[arg-type]


# The writer: begins a run and writes it in chunks of 10 rows; after the second chunk is
# committed (and once its files are staged) it hangs between two chunks, until killed.
_WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from serving import store_bulk
    from serving.store import WorklistStore
    from tests.serving.test_store import DAY, frames, rows_table

    url, work = sys.argv[2], Path(sys.argv[3])

    def hang_after_two(table, rows_done):
        if table == rows_table(store) and rows_done == 20:
            run_id = (work / "run_id").read_text()
            staged = work / "exports" / DAY.isoformat()
            while len(list(staged.glob(f".{run_id}.*"))) < 2:
                time.sleep(0.02)
            (work / "hanging").write_text("1")
            time.sleep(600)

    store_bulk.CHUNK_ROWS = 10
    store_bulk._after_chunk = hang_after_two
    store = WorklistStore(url, export_dir=work / "exports",
                          explanations_dir=work / "explanations", upgrade=True)
    wl, ex, dr = frames(40, seed=7, version="7")
    run_id = store.begin_run(as_of=DAY, meta={})
    (work / "run_id").write_text(run_id)
    store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
''')


def _killed_writer(url: str, work: Path) -> str:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(REPO), url, str(work)],
                            cwd=work, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (work / "hanging").exists():
            if proc.poll() is not None:
                pytest.fail(f"writer ended early: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                pytest.fail("writer never reached its third chunk")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return (work / "run_id").read_text()


def test_a_killed_writer_is_reaped_by_the_next_writer_and_its_files_removed(
    url: str, tmp_path: Path
) -> None:
    with _open(url, tmp_path) as store:
        before = publish(store, 12)
        worklist_before = store.read_worklist(as_of=DAY)
    dead = _killed_writer(url, tmp_path)
    run_dir = tmp_path / "explanations" / dead
    staged = sorted((tmp_path / "exports" / DAY.isoformat()).glob(f".{dead}.*"))
    assert (run_dir / "explanations.parquet").exists() and staged  # the orphans exist

    # Just after the kill the run is still "running" (its heartbeat is fresh): not reaped.
    # Its first two chunks are committed, and read by nobody.
    with _open(url, tmp_path) as store:
        assert store.reap_stale() == []
        assert store._run(dead).status == "running"
        assert _worklist_rows(store, dead) == 20
        # A SQLite file store: its rows file was whole before those chunks; unread.
        assert worklist_rows(store, dead) == (20 if rows_table(store) == "worklist" else 40)
        assert store.read_worklist(as_of=DAY).equals(worklist_before)
    # Eleven minutes later the next writer reaps it when it begins its own run.
    later = datetime.now(UTC) + timedelta(minutes=11)
    with _open(url, tmp_path, clock=lambda: later) as store:
        wl, ex, dr = frames(5, seed=3)
        new = store.begin_run(as_of=DAY, meta={})
        record = store._run(dead)
        assert record.status == "failed" and record.finished_at == later
        assert "abandoned: no sign of life" in (record.message or "")
        assert not run_dir.exists()
        assert not any(p.exists() for p in staged)
        assert _worklist_rows(store, dead) == 0  # swept with the reaped run
        assert worklist_rows(store, dead) == 0  # its rows file too
        # The previous worklist stayed current and intact throughout.
        assert store.current_run(as_of=DAY).run_id == before.run_id  # type: ignore[union-attr]
        assert store.read_worklist(as_of=DAY).equals(worklist_before)
        assert (tmp_path / "exports" / DAY.isoformat() / "worklist.parquet").exists()
        store.write_run(new, worklist=wl, explanations=ex, drift=dr, meta={})
        assert store.current_run(as_of=DAY).run_id == new  # type: ignore[union-attr]


def test_a_live_run_keeps_its_heartbeat_fresh(url: str, tmp_path: Path) -> None:
    t = [datetime(2024, 3, 1, 2, 0, tzinfo=UTC)]

    def clock() -> datetime:
        t[0] += timedelta(minutes=3)  # every reading is three minutes later
        return t[0]

    with _open(url, tmp_path, clock=clock, heartbeat_every=timedelta(seconds=0.05)) as store:
        run_id = store.begin_run(as_of=DAY, meta={})
        first = store._run(run_id).heartbeat_at
        deadline = time.monotonic() + 30
        while store._run(run_id).heartbeat_at == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store._run(run_id).heartbeat_at > first  # type: ignore[operator]
        assert store._run(run_id).runner == f"{os.uname().nodename}:{os.getpid()}"
        with pytest.raises(RunInProgressError, match="in progress"):
            store.delete_run(run_id)
        wl, ex, dr = frames(4)
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
        beat = store._run(run_id).heartbeat_at
        time.sleep(0.3)
        assert store._run(run_id).heartbeat_at == beat  # a finished run beats no more


def test_runs_of_old_stores_without_a_heartbeat_are_judged_by_their_start(
    url: str, tmp_path: Path
) -> None:
    start = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    with _open(url, tmp_path, clock=lambda: start, heartbeat_every=timedelta(hours=1)) as store:
        run_id = store.begin_run(as_of=DAY, meta={})
    from serving import store_schema as S

    with store._engine.begin() as conn:  # as a run written before revision 0002
        conn.execute(S.runs.update().values(heartbeat_at=None))
    with _open(url, tmp_path, clock=lambda: start + timedelta(minutes=9)) as store:
        assert store.reap_stale() == []
        assert store.reap_stale(stale_after=timedelta(minutes=5)) == [run_id]


def test_delete_a_run_removes_its_rows_explanations_and_export(url: str, tmp_path: Path) -> None:
    later = DAY + timedelta(days=30)
    with _open(url, tmp_path) as store:
        kept = publish(store, 10)
        wrong = publish(store, 8, as_of=later, seed=2)  # scored with a wrong as_of
        assert store.current_run().run_id == wrong.run_id  # type: ignore[union-attr]
        export = tmp_path / "exports" / later.isoformat()
        assert (export / "worklist.parquet").exists()
        gone = store.delete_run(wrong.run_id)
        assert gone.run_id == wrong.run_id
        assert wrong.run_id not in set(store.list_runs()["run_id"])
        assert store.read_drift(wrong.run_id).empty
        with pytest.raises(KeyError):
            store.read_explanations(wrong.run_id)
        assert not (tmp_path / "explanations" / wrong.run_id).exists()
        assert not export.exists()
        # The latest worklist is again the one of the right date, untouched.
        assert store.current_run().run_id == kept.run_id  # type: ignore[union-attr]
        assert len(store.read_worklist()) == 10
        assert (tmp_path / "exports" / DAY.isoformat() / "worklist.parquet").exists()
        with pytest.raises(KeyError, match="no run"):
            store.delete_run("nope")
