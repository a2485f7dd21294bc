"""A run's rows in a file of their own (revision 0010, SQLite file stores): where the
publish puts them, what readers see (the same rows as from the store's table, through the
one resolver), what a failure, a retire and a missing file do."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from serving import store_io, store_publish, store_rows, store_totals
from serving import store_schema as S
from serving.store import WorklistStore
from serving.store_rows import RunRowsMissingError
from tests.serving.test_store import DAY, frames, publish, rows_file, worklist_rows
from workbench import queries
from workbench.schemas import Sort


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = WorklistStore(f"sqlite:///{tmp_path / 'state' / 'worklist.db'}",
                      export_dir=tmp_path / "exports", explanations_dir=tmp_path / "ex")
    yield s
    s.close()


def _in_table(store: WorklistStore, table: sa.Table, run_id: str) -> int:
    with store._engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(
            table.c.run_id == run_id)).scalar_one())


def test_a_published_run_s_rows_are_its_file_read_as_from_the_table(
        store: WorklistStore, tmp_path: Path) -> None:
    wl, _, _ = frames(30, seed=3)
    run = publish(store, 30, seed=3)
    path = rows_file(store, run.run_id)
    assert path == tmp_path / "state" / "worklist_rows" / f"{run.run_id}.db"
    with store._engine.connect() as conn:
        assert store_rows.rows_path(conn, run.run_id) == str(path)
    assert _in_table(store, S.worklist, run.run_id) == 0  # none in the store's table
    assert _in_table(store, S.worklist_history, run.run_id) == 30
    assert worklist_rows(store, run.run_id) == 30
    got = store.read_worklist(as_of=DAY)
    assert got["account_id"].tolist() == wl["account_id"].tolist()
    assert (got["run_id"] == run.run_id).all()
    pd.testing.assert_series_equal(got["probability"], wl["probability"], check_names=False)
    assert store.read_worklist(as_of=DAY, top=4, segment=got["segment"].iloc[0])[
        "rank"].tolist() == got.loc[got["segment"] == got["segment"].iloc[0], "rank"][:4].tolist()
    # The workbench's reads of the run: a page by probability, one account, its history.
    with store._engine.connect() as conn:
        rows, _ = queries.worklist_page(conn, run_id=run.run_id, filters=queries.Filters(),
                                        sort=Sort.PROBABILITY, after=None, limit=5, today=DAY)
        want = got.sort_values(["probability", "rank"], ascending=[False, True])
        assert [r["account_id"] for r in rows] == want["account_id"][:5].tolist()
        account = got["account_id"].iloc[7]
        row = queries.account_row(conn, run_id=run.run_id, account_id=account)
        assert row is not None and row["rank"] == 8
        history = queries.score_history(conn, account)
        assert [(h["run_id"], h["rank"]) for h in history] == [(run.run_id, 8)]
        assert queries.in_any_run(conn, account)
        totals = queries.worklist_totals(conn, run_id=run.run_id,
                                         filters=queries.Filters(snoozed=False), today=DAY)
        assert totals["accounts"] == 30
    # The file has the store's indexes (the pages' plans: tests/workbench).
    con = sqlite3.connect(path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    con.close()
    assert names == {"ix_worklist_account", "ix_worklist_probability", "ix_worklist_balance",
                     "ix_worklist_dpd", "ix_worklist_rank"}


def test_a_totals_refresh_sums_a_run_s_file_as_the_publish_did(store: WorklistStore) -> None:
    run = publish(store, 40, seed=5)
    with store._engine.connect() as conn:
        before = store_totals.read(conn, run_id=run.run_id)
    assert store_totals.refresh(store._engine) == 1
    with store._engine.connect() as conn:
        assert store_totals.read(conn, run_id=run.run_id) == before
        assert store_totals.runs_with_rows(conn) == [run.run_id]


def test_a_failure_in_the_flip_deletes_the_file_and_keeps_the_previous_run(
        store: WorklistStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = publish(store, 12, seed=1)
    before = store.read_worklist(as_of=DAY)
    seen = []

    def power_cut(run_id: str) -> None:
        seen.append(rows_file(store, run_id).exists())  # type: ignore[union-attr]
        raise RuntimeError("power cut between the file and the flip")

    monkeypatch.setattr(store_publish, "_in_flip", power_cut)
    wl, ex, dr = frames(20, seed=2)
    run_id = store.begin_run(as_of=DAY, meta={})
    with pytest.raises(RuntimeError, match="power cut"):
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
    assert seen == [True]  # the file was whole when the flip failed ...
    assert not rows_file(store, run_id).exists()  # type: ignore[union-attr]  # ... and is gone
    assert _in_table(store, S.worklist_history, run_id) == 0
    assert store.current_run(as_of=DAY) == old
    pd.testing.assert_frame_equal(store.read_worklist(as_of=DAY), before)
    assert rows_file(store, old.run_id).exists()  # type: ignore[union-attr]


def test_a_retired_run_s_file_goes_after_the_flip_a_reader_reads_it_on(
        store: WorklistStore) -> None:
    old = publish(store, 25, seed=1)
    old_file = rows_file(store, old.run_id)
    with store._engine.connect() as reader:
        # A reader's transaction that attached the old run's file before the new flip ...
        reader = store_rows.run_rows(reader, old.run_id)
        w = store_rows.run_worklist
        first = reader.execute(sa.select(w.c.account_id).where(
            w.c.run_id == old.run_id).order_by(w.c.rank).limit(3)).scalars().all()
        new = publish(store, 10, seed=2)
        assert not old_file.exists()  # type: ignore[union-attr]  # unlinked after the flip
        # ... reads the whole old run on (its snapshot, its open file).
        assert reader.execute(sa.select(sa.func.count()).where(
            w.c.run_id == old.run_id)).scalar_one() == 25
        assert reader.execute(sa.select(w.c.account_id).where(w.c.run_id == old.run_id)
                              .order_by(w.c.rank).limit(3)).scalars().all() == first
    assert store.current_run(as_of=DAY) == new
    assert len(store.read_worklist(as_of=DAY)) == 10
    with store._engine.connect() as conn:
        assert store_rows.rows_path(conn, old.run_id) is None
    assert _in_table(store, S.worklist_history, old.run_id) == 0
    # Deleting the current run unlinks its file too.
    store.delete_run(new.run_id)
    assert not rows_file(store, new.run_id).exists()  # type: ignore[union-attr]
    assert _in_table(store, S.worklist_history, new.run_id) == 0


def test_a_missing_rows_file_is_an_error_naming_it(store: WorklistStore) -> None:
    run = publish(store, 8, seed=4)
    path = rows_file(store, run.run_id)
    path.unlink()  # type: ignore[union-attr]  # deleted by hand
    # (A pooled connection that still has it attached reads on from the open file until
    # it goes back to the pool; a new connection, e.g. after a restart, finds it gone.)
    store._engine.dispose()
    with pytest.raises(RunRowsMissingError, match=f"run {run.run_id}.*{path}"):
        store.read_worklist(as_of=DAY)
    with store._engine.connect() as conn, pytest.raises(RunRowsMissingError,
                                                         match=str(path)):
        queries.account_row(conn, run_id=run.run_id, account_id="A0400000")
    # Reads that do not need the run's rows still work; the next run replaces it.
    assert store.current_run(as_of=DAY) == run
    newer = publish(store, 5, as_of=DAY + timedelta(days=1), seed=5)
    assert len(store.read_worklist()) == 5 and store.current_run() == newer


def test_a_pooled_connection_keeps_its_latest_files_and_lets_unlinked_ones_go(
        store: WorklistStore) -> None:
    runs = [publish(store, 3, as_of=DAY + timedelta(days=i), seed=i) for i in range(12)]
    # More runs than SQLite attaches at once, read one request (connection) after another.
    for run in runs:
        assert len(store.read_worklist(as_of=run.as_of)) == 3

    def attached() -> list[str]:
        with store._engine.connect() as conn:
            return [r[2] for r in conn.exec_driver_sql("PRAGMA database_list").all()
                    if r[1].startswith("run_rows")]

    kept = attached()
    assert kept == [str(rows_file(store, r.run_id)) for r in runs[-store_io.KEEP_ATTACHED:]]
    store.delete_run(runs[-1].run_id)  # its file unlinked: let go at the next check-in
    attached()
    assert attached() == kept[:-1]


def test_a_store_opened_by_another_spelling_of_its_path_finds_and_keeps_its_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's rows file is found from the store file ``runs.rows_path`` names it in, not
    from the path the writer spelled: a store published by a relative URL and opened by
    an absolute one (or from another folder, or moved whole) reads its runs, and its
    sweep (every ``begin_run``) takes the live file for no orphan."""
    monkeypatch.chdir(tmp_path)
    wl, _, _ = frames(20, seed=4)
    with WorklistStore("sqlite:///state/worklist.db", export_dir=tmp_path / "exports",
                       explanations_dir=tmp_path / "ex") as relative:
        run = publish(relative, 20, seed=4)
    moved = tmp_path / "moved"
    (tmp_path / "state").rename(moved)
    monkeypatch.chdir(moved / "worklist_rows")  # anywhere else
    with WorklistStore(f"sqlite:///{moved / 'worklist.db'}", export_dir=tmp_path / "exports",
                       explanations_dir=tmp_path / "ex") as absolute:
        absolute.begin_run(as_of=DAY + timedelta(days=1), meta={})  # sweeps
        assert (moved / "worklist_rows" / f"{run.run_id}.db").is_file()
        got = absolute.read_worklist(as_of=DAY)
    assert got["account_id"].tolist() == wl["account_id"].tolist()
