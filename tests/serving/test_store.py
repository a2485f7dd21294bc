"""The worklist store on SQLite and on a real PostgreSQL: round trips, atomic idempotent runs,
failure in the middle of a write, readers during a write, exports, schema checks."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.spec import MODEL_OF_SEGMENT, SEGMENTS
from serving import store_bulk, store_events, store_io, store_publish, store_rows, store_totals
from serving import store_schema as S
from serving.store import RunRecord, StoreSchemaError, WorklistStore

DAY = date(2024, 3, 1)
FEATURES = ("late_share_6", "open_balance", "account_segment")


EARLY_WARNING_SEGMENTS = [s for s, m in MODEL_OF_SEGMENT.items() if m == "early_warning"]


def frames(
    n: int, *, as_of: date = DAY, seed: int = 0, version: str = "1"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A small consistent run: worklist (rank order), explanations, drift."""
    rng = np.random.default_rng(seed)
    ids = [f"A{seed:02d}{i:05d}" for i in range(n)]
    segment = np.array(SEGMENTS, dtype=object)[rng.integers(0, 4, n)]
    balance = rng.gamma(2.0, 1000.0, n).round(2)
    prob = rng.random(n)
    priority = prob * balance
    order = np.lexsort((np.array(ids, dtype=object), -priority))
    wl = pd.DataFrame(
        {
            "rank": np.arange(1, n + 1, dtype=np.int64),
            "account_id": pd.Series(np.array(ids, dtype=object)[order], dtype="str"),
            "segment": pd.Series(segment[order], dtype="str"),
            "open_balance": balance[order],
            "past_due_amount": np.where(rng.random(n) < 0.2, np.nan, balance / 3)[order],
            "oldest_dpd": rng.integers(-20, 150, n).astype(float)[order],
            "model": pd.Series(
                np.where(np.isin(segment, EARLY_WARNING_SEGMENTS), "early_warning",
                         "persistence")[order], dtype="str"),
            "probability": prob[order],
            "priority": priority[order],
            "action": pd.Series(["automated reminder"] * n, dtype="str"),
            "reason_1": [f'4 of the last 6 invoices were paid 15+ days late, "{i}"' for i in order],
            "reason_2": [None if i % 3 == 0 else f"balance up {i}%" for i in order],
            "reason_3": [None] * n,
            "mitigating_reason": ["customer for 7 years"] * n,
            "reasons_json": [json.dumps([{"feature": "late_share_6", "value": int(i)}])
                             for i in order],
            "model_version": pd.Series([version] * n, dtype="str"),
            "scorer": pd.Series(["model"] * n, dtype="str"),
            "calibration": pd.Series(["validation"] * n, dtype="str"),
            # issue 17: the last row is held by a promise (ranked after the others)
            "hold": pd.Series([None] * (n - 1) + ["promise"] * (n > 0), dtype="str"),
            "hold_date": pd.Series([pd.NaT] * (n - 1) + [pd.Timestamp(as_of) + pd.Timedelta(
                days=5)] * (n > 0), dtype="datetime64[s]"),
            "hold_ends": pd.Series([pd.NaT] * (n - 1) + [pd.Timestamp(as_of) + pd.Timedelta(
                days=9)] * (n > 0), dtype="datetime64[s]"),
            "as_of": pd.Series([pd.Timestamp(as_of)] * n, dtype="datetime64[s]"),
        }
    )
    ex = pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="str"),
            "model": pd.Series(["early_warning"] * n, dtype="str"),
            "model_version": pd.Series([version] * n, dtype="str"),
            "base_value": -2.0,
            "raw_score": rng.normal(size=n),
            "late_share_6": rng.random(n),
            "open_balance": balance,
            "account_segment": pd.Categorical(rng.choice(["smb", "corp"], n)),
            **{f"shap_{f}": rng.normal(size=n) for f in FEATURES},
        }
    )
    drift = pd.DataFrame(
        {
            "model": ["early_warning", "early_warning", "persistence"],
            "feature": ["late_share_6", "__score__", "late_share_6"],
            "psi": [0.02, 0.3, np.nan],
            "flag": ["ok", "alert", None],
        }
    )
    return wl, ex, drift


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def store(url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    s = WorklistStore(url, export_dir=tmp_path / "exports",
                      explanations_dir=tmp_path / "explanations")
    yield s
    s.close()


def publish(store: WorklistStore, n: int, *, as_of: date = DAY, seed: int = 0,
            version: str = "1") -> RunRecord:
    wl, ex, dr = frames(n, as_of=as_of, seed=seed, version=version)
    run_id = store.begin_run(
        as_of=as_of,
        meta={"model_versions": {"early_warning": version, "persistence": "p" + version},
              "feature_set_version": "fs1", "data": "synthetic"},
    )
    return store.write_run(run_id, worklist=wl, explanations=ex, drift=dr,
                           meta={"timings": {"features": 1.5}, "message": "ok"})


def assert_same_worklist(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        got.drop(columns="run_id").reset_index(drop=True),
        want.astype({c: "str" for c in ("reason_1", "reason_2", "reason_3",
                                        "mitigating_reason", "reasons_json")}),
        check_dtype=True,
    )


# ------------------------------------------------------------------------ round trips
def test_round_trip_worklist_run_record_drift_explanations(store: WorklistStore) -> None:
    wl, ex, dr = frames(40)
    rec = publish(store, 40)
    assert rec.status == "succeeded" and rec.is_current and rec.as_of == DAY
    assert rec.n_scored == 40 and sum(rec.n_by_segment.values()) == 40
    assert rec.early_warning_version == "1" and rec.persistence_version == "p1"
    assert rec.feature_set_version == "fs1" and rec.message == "ok"
    assert rec.meta == {"data": "synthetic"}
    assert rec.timings["features"] == 1.5 and "store_worklist_s" in rec.timings
    assert rec.started_at.tzinfo is not None and rec.finished_at >= rec.started_at

    got = store.read_worklist(as_of=DAY)
    assert (got["run_id"] == rec.run_id).all()
    assert_same_worklist(got, wl)
    assert store.current_run() == rec == store.current_run(as_of=DAY)

    drift = store.read_drift(rec.run_id)
    assert drift["feature"].tolist() == dr["feature"].tolist()
    assert drift["psi"].iloc[0] == 0.02 and np.isnan(drift["psi"].iloc[2])

    expl = store.read_explanations(rec.run_id)
    want = ex
    pd.testing.assert_frame_equal(expl, want, check_dtype=False, check_categorical=False)
    some = store.read_explanations(rec.run_id, account_ids=[want.account_id[3], "nope"])
    assert some["account_id"].tolist() == [want.account_id[3]]
    assert store.read_explanations(rec.run_id, account_ids=[]).empty


def test_top_segment_and_latest_as_of(store: WorklistStore) -> None:
    first = publish(store, 30, as_of=DAY, seed=1)
    later = publish(store, 20, as_of=DAY + timedelta(days=7), seed=2)
    assert store.current_run() == later
    assert store.current_run(as_of=DAY) == first
    assert store.current_run(as_of=DAY - timedelta(days=1)) is None
    assert store.read_worklist()["run_id"].unique().tolist() == [later.run_id]
    top = store.read_worklist(as_of=DAY, top=5)
    assert top["rank"].tolist() == [1, 2, 3, 4, 5]
    late = store.read_worklist(as_of=DAY, segment="late")
    full = store.read_worklist(as_of=DAY)
    assert late["rank"].tolist() == full.loc[full.segment == "late", "rank"].tolist()
    with pytest.raises(ValueError, match="segment"):
        store.read_worklist(segment="vip")
    runs = store.list_runs()
    assert runs["run_id"].tolist() == [first.run_id, later.run_id]
    assert runs["is_current"].all()


def test_no_run_gives_empty_frames(store: WorklistStore) -> None:
    assert store.current_run() is None
    empty = store.read_worklist()
    assert empty.empty and "priority" in empty.columns and "run_id" in empty.columns
    assert store.list_runs().empty
    with pytest.raises(KeyError):
        store.read_explanations("nope")


def test_empty_population_is_a_valid_run(store: WorklistStore) -> None:
    wl, ex, dr = frames(0)
    run_id = store.begin_run(as_of=DAY, meta={})
    rec = store.write_run(run_id, worklist=wl, explanations=ex, drift=dr.iloc[:0],
                          meta={"message": "no accounts with open receivables"})
    assert rec.status == "succeeded" and rec.n_scored == 0 and rec.is_current
    assert store.read_worklist(as_of=DAY).empty
    assert store.read_drift(run_id).empty
    assert store.read_explanations(run_id).empty


# ------------------------------------------------------------------------ idempotent reruns
def test_rerun_replaces_the_run_for_that_day_only(store: WorklistStore, tmp_path: Path) -> None:
    other_day = publish(store, 10, as_of=DAY - timedelta(days=7), seed=3)
    old = publish(store, 25, seed=4, version="1")
    with pytest.MonkeyPatch.context() as m:  # the writer "dies" between its flip and drop
        m.setattr(store_publish, "drop_rows", lambda engine, run_ids: None)
        new = publish(store, 15, seed=5, version="2")
    assert _rows_of(store, old.run_id)["worklist"] == 25  # retired: unread, still there
    store.fail_run(store.begin_run(as_of=DAY, meta={}), message="the next writer sweeps")
    assert _rows_of(store, old.run_id)["worklist"] == 0
    assert store.current_run(as_of=DAY) == new
    got = store.read_worklist(as_of=DAY)
    assert len(got) == 15 and set(got["model_version"]) == {"2"}
    runs = store.list_runs().set_index("run_id")
    assert not runs.loc[old.run_id, "is_current"]
    assert runs.loc[old.run_id, "replaced_by"] == new.run_id
    assert runs.loc[other_day.run_id, "is_current"]  # another as_of is untouched
    with pytest.raises(KeyError):
        store.read_explanations(old.run_id)
    assert not Path(old.explanations_path).exists()
    assert store.read_drift(old.run_id).empty
    assert len(store.read_worklist(as_of=other_day.as_of)) == 10
    # The export follows the current run and no temp files are left behind.
    out = tmp_path / "exports" / DAY.isoformat()
    exported = pq.read_table(out / "worklist.parquet")
    assert exported.schema.metadata[b"delinq.run_id"] == new.run_id.encode()
    assert exported.num_rows == 15
    assert pq.read_table(out / "explanations.parquet").num_rows == 15
    assert sorted(p.name for p in out.iterdir()) == ["explanations.parquet", "worklist.parquet"]


# ------------------------------------------------------------------------ failures
def test_failure_mid_write_keeps_previous_run(
    store: WorklistStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = publish(store, 30, seed=6, version="old")
    before = store.read_worklist(as_of=DAY)
    export = tmp_path / "exports" / DAY.isoformat() / "worklist.parquet"
    export_bytes = export.read_bytes()

    seen: list[int] = []

    def explode(table: str, rows_done: int) -> None:
        if table != rows_table(store):
            return
        seen.append(rows_done)
        if rows_done >= 14:
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(store_bulk, "CHUNK_ROWS", 7)
    monkeypatch.setattr(store_bulk, "_after_chunk", explode)
    wl, ex, dr = frames(40, seed=7, version="new")
    run_id = store.begin_run(as_of=DAY, meta={})
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    assert seen == [7, 14]  # it really failed half way through

    failed = store.list_runs().set_index("run_id").loc[run_id]
    assert failed["status"] == "failed" and "disk on fire" in failed["message"]
    assert not failed["is_current"]
    assert store.current_run(as_of=DAY) == old
    pd.testing.assert_frame_equal(store.read_worklist(as_of=DAY), before)
    assert export.read_bytes() == export_bytes
    assert not (tmp_path / "explanations" / run_id).exists()
    assert [p.name for p in export.parent.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(KeyError):
        store.read_explanations(run_id)
    with pytest.raises(ValueError, match="failed"):
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    assert _rows_of(store, run_id) == {"worklist": 0, "drift": 0, "explanations": 0,
                                       "worklist_totals": 0, "worklist_history": 0}
    assert rows_file(store, run_id) is None or not rows_file(store, run_id).exists()

    # The same for an exception inside the flip, all rows written, the old run retired.
    old_rows = _rows_of(store, old.run_id)

    def explode_in_flip(run_id: str) -> None:
        assert _rows_of(store, run_id)["worklist"] == 40
        raise RuntimeError("power cut in the flip")

    monkeypatch.setattr(store_bulk, "_after_chunk", lambda table, rows_done: None)
    monkeypatch.setattr(store_publish, "_in_flip", explode_in_flip)
    run_id = store.begin_run(as_of=DAY, meta={})
    with pytest.raises(RuntimeError, match="power cut"):
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    assert store._run(run_id).status == "failed"
    assert store.current_run(as_of=DAY) == old
    pd.testing.assert_frame_equal(store.read_worklist(as_of=DAY), before)
    assert _rows_of(store, old.run_id) == old_rows  # totals, drift, reference intact
    assert _rows_of(store, run_id) == dict.fromkeys(old_rows, 0)
    assert export.read_bytes() == export_bytes


def _rows_of(store: WorklistStore, run_id: str) -> dict[str, int]:
    """How many rows a run has in each of its tables (counted, visible or not; its
    worklist rows in the store's table and in its rows file, recorded or not)."""
    with store._engine.connect() as conn:
        out = {t.name: conn.execute(sa.select(sa.func.count()).where(t.c.run_id == run_id)
                                    ).scalar_one()
               for t in (S.worklist, S.drift, S.explanations, store_totals.worklist_totals,
                         S.worklist_history)}
    out["worklist"] += _file_rows(store, run_id)
    return out


def rows_file(store: WorklistStore, run_id: str) -> Path | None:
    """Where a SQLite file store puts run ``run_id``'s rows file (None: no files)."""
    database = store_io.sqlite_path(store.url)
    return None if database is None else store_rows.rows_dir(database) / f"{run_id}.db"


def _file_rows(store: WorklistStore, run_id: str) -> int:
    path = rows_file(store, run_id)
    if path is None or not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT COUNT(*) FROM worklist").fetchone()[0])
    finally:
        con.close()


def worklist_rows(store: WorklistStore, run_id: str) -> int:
    """A run's worklist rows, in the store's table or in its rows file."""
    return _rows_of(store, run_id)["worklist"]


def rows_table(store: WorklistStore) -> str:
    """The table a publish fills in chunks committed one by one: ``worklist`` (PostgreSQL),
    or on a SQLite file store ``worklist_history`` (its rows go into their file first)."""
    return "worklist" if rows_file(store, "x") is None else "worklist_history"


def test_an_event_is_written_between_two_chunks_of_a_publish(
    store: WorklistStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = publish(store, 20, seed=1)
    url = store.url.render_as_string(hide_password=False)
    # The analyst's side: its own connection, waiting at most 200 ms for a lock.
    sqlite = store.url.get_backend_name() == "sqlite"
    analyst = sa.create_engine(url, connect_args={"timeout": 0.2} if sqlite else {})
    seen: list[tuple[int, str, float]] = []

    def write_event(table: str, rows_done: int) -> None:
        if table != rows_table(store) or rows_done != 10:
            return
        t = time.perf_counter()
        with analyst.begin() as conn:
            if not sqlite:
                conn.exec_driver_sql("SET LOCAL lock_timeout = 200")
            conn.execute(store_events.events.insert().values(
                kind="note", account_id="A0000001", recorded_at=datetime.now(UTC),
                recorded_by="ann", event_date=DAY, note="called mid-publish"))
        took = time.perf_counter() - t
        current = store.read_worklist(as_of=DAY)["run_id"].unique().tolist()
        seen.append((rows_done, current[0], took))

    monkeypatch.setattr(store_bulk, "CHUNK_ROWS", 10)
    monkeypatch.setattr(store_bulk, "_after_chunk", write_event)
    try:
        new = publish(store, 45, seed=2)
        with analyst.connect() as conn:
            notes = conn.execute(sa.select(store_events.events.c.note)).scalars().all()
    finally:
        analyst.dispose()
    # Mid-way the old run was still the one read; the event did not wait for the publish.
    assert [(n, run) for n, run, _ in seen] == [(10, old.run_id)]
    assert seen[0][2] < 1.0
    assert notes == ["called mid-publish"]
    assert store.current_run(as_of=DAY) == new
    assert _rows_of(store, old.run_id)["worklist"] == 0  # retired rows dropped after it


def test_a_waiting_event_makes_a_sqlite_publish_commit_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nobody waiting, a publish inserts CHUNK_ROWS rows per transaction; an event that
    # waits at the store's turnstile makes it commit after its current step and let the
    # event in, long before the publish ends.
    url = f"sqlite:///{tmp_path / 'worklist.db'}"
    store = WorklistStore(url, explanations_dir=tmp_path / "ex")
    old = publish(store, 10, seed=1)
    started, commits, seen = threading.Event(), [], []
    w = S.worklist_history  # the publish's committed steps (its rows are in their file)

    def slow_step(table: str, done: int) -> None:
        started.set()
        time.sleep(0.02)  # a slow step: the publish lasts > 1 s

    def analyst() -> None:
        started.wait(30)
        engine = store_io.make_engine(sa.make_url(url))
        try:
            with store_io.writing(engine) as conn:
                conn.execute(store_events.events.insert().values(
                    kind="note", account_id="A0100000", recorded_at=datetime.now(UTC),
                    recorded_by="ann", event_date=DAY, note="waited at the turnstile"))
                # What the publish had committed when it let the event in.
                written = conn.execute(sa.select(sa.func.count()).select_from(w).where(
                    w.c.run_id != old.run_id)).scalar_one()
            seen.append((written, store.current_run(as_of=DAY)))
        finally:
            engine.dispose()

    monkeypatch.setattr(store_bulk, "_in_step", slow_step)
    monkeypatch.setattr(store_bulk, "_after_chunk",
                        lambda table, done: table == w.name and commits.append(done))
    thread = threading.Thread(target=analyst)
    thread.start()
    try:
        new = publish(store, 2_000, seed=2)
    finally:
        thread.join(60)
        store.close()
    (written_then, current_then), = seen
    assert current_then == old  # written mid-publish
    assert 0 < written_then < 2_000  # the publish committed early for it
    assert commits[-1] == 2_000 and new.n_scored == 2_000


def test_a_stepped_writer_checkpoints_after_its_commits_not_inside_them(tmp_path: Path) -> None:
    # SQLite checkpoints inside the COMMIT that crosses the WAL threshold, and the
    # turnstile opens after the commit: a long writer turns that off and checkpoints
    # itself once the writers it let in are in; its pooled connection gets it back.
    engine = store_io.make_engine(sa.make_url(f"sqlite:///{tmp_path / 'w.db'}"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.connect() as conn, store_io.stepped_writes(conn) as checkpoint:
            driver = conn.connection.dbapi_connection
            assert driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            before = (tmp_path / "w.db").stat().st_size  # the insert is in the WAL only
            checkpoint()
            # the checkpoint copied the WAL's pages into the database file (a second
            # PASSIVE checkpoint would copy them too, so the file is what shows it)
            assert (tmp_path / "w.db").stat().st_size > before
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.execute(
                "PRAGMA wal_autocheckpoint").fetchone()[0] == store_io.SQLITE_AUTOCHECKPOINT_PAGES
    finally:
        engine.dispose()


def _fill_wal(conn: sa.Connection, pages: int = 1_500) -> None:
    """Commit ~``pages`` new 4 KiB pages (over SQLite's checkpoint threshold of 1,000)."""
    with conn.begin():
        conn.exec_driver_sql(
            "INSERT INTO t WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
            f"WHERE i < {pages}) SELECT randomblob(4000) FROM c")


def test_a_stepped_writer_checkpoints_at_most_once_a_period(tmp_path: Path) -> None:
    # Each checkpoint syncs the file; after every commit of a publish that lets events in
    # that was most of its time. The first call checkpoints, one right after does not.
    db = tmp_path / "w.db"
    engine = store_io.make_engine(sa.make_url(f"sqlite:///{db}"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
        with engine.connect() as conn, store_io.stepped_writes(conn, every_s=0.3) as checkpoint:
            _fill_wal(conn, 10)
            checkpoint()
            first = db.stat().st_size
            _fill_wal(conn, 10)
            checkpoint()  # within the period: skipped
            assert db.stat().st_size == first
            time.sleep(0.35)
            checkpoint()
            assert db.stat().st_size > first
    finally:
        engine.dispose()


def test_an_engine_that_does_not_checkpoint_in_commits_leaves_it_to_its_checkpointer(
        tmp_path: Path) -> None:
    # SQLite checkpoints inside the COMMIT that finds the WAL over its threshold (the
    # default engine shows it: the file grows at the commit). A server's engine does not:
    # its Checkpointer's thread copies the pages, and stops with it.
    default, lazy = tmp_path / "default.db", tmp_path / "lazy.db"
    for db, in_commit in ((default, True), (lazy, False)):
        engine = store_io.make_engine(sa.make_url(f"sqlite:///{db}"),
                                      checkpoint_in_commit=in_commit)
        checkpointer = store_io.Checkpointer(engine, every_s=0.05)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
            with engine.connect() as conn:
                assert conn.connection.dbapi_connection.execute(
                    "PRAGMA wal_autocheckpoint").fetchone()[0] == (
                        store_io.SQLITE_AUTOCHECKPOINT_PAGES if in_commit else 0)
                _fill_wal(conn)
                # the pages were copied into the file by the commit, or are in the WAL only
                assert (db.stat().st_size > 4_000_000) is in_commit
                if in_commit:
                    continue
                # a long writer's steps leave the engine's setting as it was
                with store_io.stepped_writes(conn):
                    pass
                assert conn.connection.dbapi_connection.execute(
                    "PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            checkpointer.start()
            deadline = time.monotonic() + 5
            while db.stat().st_size < 4_000_000 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert db.stat().st_size > 4_000_000
            checkpointer.stop()
            assert not any(t.name == "store-checkpoint" for t in threading.enumerate())
        finally:
            checkpointer.stop()
            engine.dispose()


def _break(kind: str, wl: pd.DataFrame, ex: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    wl, ex = wl.copy(), ex.copy()
    if kind == "missing_column":
        wl = wl.drop(columns="priority")
    elif kind == "extra_column":
        wl["surprise"] = 1
    elif kind == "probability":
        wl.loc[3, "probability"] = 1.5
    elif kind == "null_probability":
        wl.loc[3, "probability"] = np.nan
    elif kind == "duplicate_account":
        wl.loc[1, "account_id"] = wl.loc[0, "account_id"]
    elif kind == "rank_gap":
        wl.loc[len(wl) - 1, "rank"] = len(wl) + 5
    elif kind == "priority_order":
        wl["rank"] = wl["rank"].to_numpy()[::-1]
    elif kind == "as_of":
        wl["as_of"] = pd.Timestamp(DAY + timedelta(days=1))
    elif kind == "segment":
        wl.loc[0, "segment"] = "vip"
    elif kind == "string_type":
        wl["action"] = 3.0
    elif kind == "nul_text":
        wl.loc[2, "reason_2"] = "bad\x00text"
    elif kind == "scorer":
        wl.loc[0, "scorer"] = "oracle"
    elif kind == "null_scorer":
        wl.loc[0, "scorer"] = None
    elif kind == "model_without_calibration":  # only the aging rule may lack a probability
        wl.loc[3, ["probability", "calibration"]] = [np.nan, "none"]
    elif kind == "uncalibrated_probability":
        wl.loc[3, ["scorer", "calibration"]] = ["aging_rule", "none"]
    elif kind == "explanations_missing_account":
        ex = ex.iloc[1:]
    return wl, ex


@pytest.mark.parametrize(
    ("kind", "column"),
    [
        ("missing_column", "priority"),
        ("extra_column", "surprise"),
        ("probability", "probability"),
        ("null_probability", "probability"),
        ("duplicate_account", "account_id"),
        ("rank_gap", "rank"),
        ("priority_order", "priority"),
        ("as_of", "as_of"),
        ("segment", "segment"),
        ("string_type", "action"),
        ("nul_text", "reason_2"),
        ("scorer", "scorer"),
        ("null_scorer", "scorer"),
        ("model_without_calibration", "calibration"),
        ("uncalibrated_probability", "probability"),
        ("explanations_missing_account", "explanations"),
    ],
)
def test_schema_violations_name_the_column_and_fail_the_run(
    tmp_path: Path, kind: str, column: str
) -> None:
    with WorklistStore(f"sqlite:///{tmp_path / 'w.db'}") as store:
        old = publish(store, 12, seed=8)
        wl, ex, dr = frames(12, seed=9)
        wl, ex = _break(kind, wl, ex)
        run_id = store.begin_run(as_of=DAY, meta={})
        with pytest.raises(StoreSchemaError, match=column):
            store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
        assert store.current_run(as_of=DAY) == old
        status = store.list_runs().set_index("run_id").loc[run_id, "status"]
        assert status == "failed"


def test_nul_text_is_found_in_its_value_only() -> None:
    """The NUL test searches a column's bytes at once, then the values: a NUL in bytes
    outside an array's values (a slice) is no NUL of the column; one in any chunk is."""
    import pyarrow as pa

    values = pa.array(["ab", "c\x00d", None, "e"])
    assert S._has_nul(values) and S._has_nul(values.slice(1, 1))
    assert not S._has_nul(values.slice(2)) and not S._has_nul(values.slice(0, 1))
    assert not S._has_nul(pa.nulls(3, pa.string())) and not S._has_nul(pa.array([], pa.string()))
    assert S._has_nul(pa.chunked_array([["a"], [None, "b\x00"]]))
    assert not S._has_nul(pa.chunked_array([["a"], ["b"]]))


def test_aging_rule_rows_without_a_probability_round_trip(store: WorklistStore) -> None:
    """Thin data: the rule's rows have no probability ("n/a"), calibration ``none``."""
    wl, ex, dr = frames(12, seed=4)
    thin = wl.index[wl["rank"] > 8]
    wl.loc[thin, ["scorer", "calibration", "probability"]] = ["aging_rule", "none", np.nan]
    wl.loc[wl.index[wl["rank"].between(5, 8)], ["scorer", "calibration"]] = [
        "aging_rule", "dpd_band"]
    run_id = store.begin_run(as_of=DAY, meta={})
    store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    got = store.read_worklist(as_of=DAY)
    assert got["probability"].isna().tolist() == (wl["rank"] > 8).tolist()
    assert got["scorer"].tolist() == wl["scorer"].tolist()
    assert got["calibration"].tolist() == wl["calibration"].tolist()


def test_fail_run_and_unknown_runs(store: WorklistStore) -> None:
    run_id = store.begin_run(as_of=DAY, meta={})
    store.fail_run(run_id, message="no champion model")
    rec = store.list_runs().iloc[0]
    assert rec["status"] == "failed" and rec["message"] == "no champion model"
    with pytest.raises(ValueError, match="only a running run"):
        store.fail_run(run_id, message="again")
    with pytest.raises(KeyError):
        store.fail_run("nope", message="x")
    with pytest.raises(KeyError):
        store.write_run("nope", worklist=pd.DataFrame(), explanations=pd.DataFrame(),
                        drift=pd.DataFrame(), meta={})


# ------------------------------------------------------------------------ concurrency
def test_reader_during_write_sees_old_or_new_never_a_mix(
    store: WorklistStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    n_old, n_new = 300, 500
    old = publish(store, n_old, seed=10, version="old")
    # Many small chunks, each followed by a pause, stretch the write over ~1 s.
    monkeypatch.setattr(store_bulk, "CHUNK_ROWS", 10)
    writing = threading.Event()

    def slow(table: str, rows_done: int) -> None:
        writing.set()
        threading.Event().wait(0.02)

    monkeypatch.setattr(store_bulk, "_after_chunk", slow)
    reads: list[tuple[str, int, bool]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            reader_store = WorklistStore(store.url.render_as_string(hide_password=False))
            while not done.is_set() or len(reads) < 3:
                started_during = writing.is_set() and not done.is_set()
                got = reader_store.read_worklist(as_of=DAY)
                ids = got["run_id"].unique().tolist()
                assert len(ids) == 1, f"mixed runs {ids}"
                assert got["rank"].tolist() == list(range(1, len(got) + 1))
                assert got["model_version"].nunique() == 1
                reads.append((ids[0], len(got), started_during))
            reader_store.close()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    new = publish(store, n_new, seed=11, version="new")
    done.set()
    thread.join(timeout=60)
    assert not errors, errors[0]
    sizes = {old.run_id: n_old, new.run_id: n_new}
    assert {run for run, _, _ in reads} <= set(sizes)
    assert all(size == sizes[run] for run, size, _ in reads)
    during = [r for r in reads if r[2]]
    assert during, "no read happened while the write was in progress"
    # Once a reader has seen the new run it never sees the old one again.
    seen_new = [run == new.run_id for run, _, _ in reads]
    assert seen_new == sorted(seen_new)
    assert store.read_worklist(as_of=DAY)["run_id"].unique().tolist() == [new.run_id]


def test_two_writers_for_one_day_both_succeed_and_the_last_one_is_current(
    store: WorklistStore,
) -> None:
    url = store.url.render_as_string(hide_password=False)
    records: list[RunRecord] = []
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            with WorklistStore(url, explanations_dir=store.explanations_dir) as own:
                records.append(publish(own, 200, seed=seed, version=str(seed)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (20, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    runs = store.list_runs().set_index("run_id")
    current = runs[runs["is_current"]]
    assert len(current) == 1
    winner = current.index[0]
    loser = next(r.run_id for r in records if r.run_id != winner)
    assert runs.loc[loser, "replaced_by"] == winner
    assert runs.loc[winner, "finished_at"] >= runs.loc[loser, "finished_at"]
    got = store.read_worklist(as_of=DAY)
    assert set(got["run_id"]) == {winner} and len(got) == 200


# ------------------------------------------------------------------------ properties
_text = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
    st.sampled_from(['', '"', '""', ',', '\n', '\\N', 'a,"b"\r\nc', '\\', 'NULL']),
)


def _py(values: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in values]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_text_and_numbers_survive_the_round_trip(store: WorklistStore, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    wl, ex, dr = frames(n, seed=12)
    for col in ("reason_1", "reason_2", "reason_3", "mitigating_reason", "reasons_json"):
        wl[col] = data.draw(st.lists(_text, min_size=n, max_size=n))
    floats = st.floats(0, 1e12, allow_nan=False)
    wl["probability"] = data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    wl["open_balance"] = data.draw(st.lists(floats, min_size=n, max_size=n))
    wl["priority"] = sorted(data.draw(st.lists(floats, min_size=n, max_size=n)), reverse=True)
    run_id = store.begin_run(as_of=DAY, meta={})
    store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    got = store.read_worklist(as_of=DAY)
    assert (got["run_id"] == run_id).all()
    for col in ("reason_1", "reason_2", "reason_3", "mitigating_reason", "reasons_json"):
        assert _py(got[col]) == _py(wl[col]), col
    for col in ("probability", "open_balance", "priority"):
        assert got[col].tolist() == wl[col].tolist(), col  # bit-exact doubles


# ------------------------------------------------------------------------ construction
def test_schema_creation_is_idempotent_and_urls_are_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x' / 'w.db'}"
    with WorklistStore(url) as a:
        run = publish(a, 5)
    with WorklistStore(url) as b:
        assert b.current_run() == run
        assert b.explanations_dir == tmp_path / "x" / "w_explanations"
    with pytest.raises(ValueError, match="unsupported store URL"):
        WorklistStore("mysql://u@localhost/db")
    memory = WorklistStore("sqlite://")
    run_id = memory.begin_run(as_of=DAY, meta={})
    wl, ex, dr = frames(3)
    with pytest.raises(ValueError, match="explanations_dir"):
        memory.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    assert memory.list_runs()["status"].tolist() == ["failed"]
    memory.close()


def test_clock_is_injectable(tmp_path: Path) -> None:
    t0 = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    ticks = iter([t0 + timedelta(seconds=s) for s in range(10)])
    with WorklistStore(f"sqlite:///{tmp_path / 'w.db'}", clock=lambda: next(ticks)) as store:
        rec = publish(store, 3)
    assert rec.started_at == t0 and rec.finished_at == t0 + timedelta(seconds=1)


def test_bench_store_reports_each_part(tmp_path: Path) -> None:
    from bench.store import bench_store

    out = bench_store(300, f"sqlite:///{tmp_path / 'b.db'}", features=4, baseline_rows=100)
    for key in ("worklist_insert_alone_s", "explanations_file_alone_s", "write_run_s",
                "read_top10_s", "read_all_cpu_s", "baseline_to_sql_s"):
        assert out[key] >= 0, key
    assert out["rows"] == 300


def test_read_explanations_of_a_few_accounts_reads_their_row_groups(
    store: WorklistStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import store_files

    monkeypatch.setattr(store_files, "EXPLANATION_ROWS_PER_GROUP", 4)
    wl, ex, dr = frames(30, seed=13)
    run_id = store.begin_run(as_of=DAY, meta={})
    rec = store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    assert pq.ParquetFile(rec.explanations_path).num_row_groups == 8
    wanted = [ex.account_id[29], ex.account_id[0], ex.account_id[13], "missing"]
    got = store.read_explanations(run_id, account_ids=wanted)
    assert got["account_id"].tolist() == [ex.account_id[0], ex.account_id[13], ex.account_id[29]]
    want = ex.iloc[[0, 13, 29]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_categorical=False)
