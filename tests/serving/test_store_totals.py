"""Worklist totals precomputed at publish time: equal to the sums of the rows per
segment, action and region (aging buckets by hand), published with the run in its
transaction, gone with the rows when the run is retired or deleted, and recomputed when
the account directory changes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from serving import store_bulk, store_totals
from serving import store_schema as S
from serving.store import WorklistStore
from serving.store_events import account_directory
from tests.serving.test_store import DAY, frames, publish


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


def _by_hand(rows: pd.DataFrame) -> dict[str, object]:
    dpd = rows["oldest_dpd"]
    buckets = {"1-30": (dpd >= 1) & (dpd <= 30), "31-60": (dpd >= 31) & (dpd <= 60),
               "61-90": (dpd >= 61) & (dpd <= 90), "91+": dpd >= 91}
    return {"accounts": len(rows), "open_balance": rows["open_balance"].sum(),
            "at_risk": rows["priority"].sum(),
            "aging": {k: int(m.sum()) for k, m in buckets.items()},
            "aging_balance": {k: rows.loc[m, "open_balance"].sum() for k, m in buckets.items()}}


def _same(got: dict[str, object] | None, want: dict[str, object]) -> None:
    assert got is not None
    assert got["accounts"] == want["accounts"] and got["aging"] == want["aging"]
    for key in ("open_balance", "at_risk"):
        assert got[key] == pytest.approx(want[key])
    assert got["aging_balance"] == pytest.approx(want["aging_balance"])


def test_totals_are_the_sums_of_the_rows_and_follow_the_run(url: str, tmp_path: Path) -> None:
    store = WorklistStore(url, explanations_dir=tmp_path / "ex")
    engine = store._engine
    try:
        ids = [f"A00{i:05d}" for i in range(40)]
        regions = {a: ("north" if i % 3 else "south") for i, a in enumerate(ids[:30])}
        with engine.begin() as conn:
            conn.execute(account_directory.insert(), [
                {"account_id": a, "name": f"Name {a}", "region": r} for a, r in regions.items()])
        run = publish(store, 40)
        rows = store.read_worklist(as_of=DAY)
        rows["region"] = rows["account_id"].map(regions)
        with engine.connect() as conn:
            _same(store_totals.read(conn, run_id=run.run_id), _by_hand(rows))
            for segment in rows["segment"].unique():
                _same(store_totals.read(conn, run_id=run.run_id, segment=segment),
                      _by_hand(rows[rows["segment"] == segment]))
            _same(store_totals.read(conn, run_id=run.run_id, region="south",
                                    action="automated reminder"),
                  _by_hand(rows[rows["region"] == "south"]))
            _same(store_totals.read(conn, run_id=run.run_id, action="legal"),
                  _by_hand(rows.iloc[:0]))
        # The directory changes: the totals by region follow when recomputed.
        with engine.begin() as conn:
            conn.execute(account_directory.update().values(region="west"))
        assert store_totals.refresh(engine) == 1
        with engine.connect() as conn:
            got = store_totals.read(conn, run_id=run.run_id, region="west")
            assert got is not None and got["accounts"] == 30
        # A re-run of the day retires the old run's totals with its rows; delete removes.
        again = publish(store, 12, seed=4)
        later = publish(store, 5, as_of=DAY + timedelta(days=1), seed=5)
        store.delete_run(later.run_id)
        with engine.connect() as conn:
            left = conn.execute(sa.select(store_totals.worklist_totals.c.run_id).distinct()
                                ).scalars().all()
            assert left == [again.run_id]
            assert store_totals.read(conn, run_id=again.run_id)["accounts"] == 12  # type: ignore[index]
            assert store_totals.read(conn, run_id=run.run_id) is None
    finally:
        store.close()


def _key(row: dict[str, object]) -> tuple[object, ...]:
    return tuple(str(row[k]) for k in ("run_id", "segment", "action", "region", "scorer"))


def test_totals_from_the_frame_equal_the_sql_sums_of_the_written_rows(tmp_path: Path) -> None:
    # The publish sums the Arrow table; the workbench's refresh sums the rows in SQL: the
    # two must agree, missing DPD (no bucket) and accounts missing from the directory
    # (region null) included.
    store = WorklistStore(f"sqlite:///{tmp_path / 'w.db'}", explanations_dir=tmp_path / "ex")
    try:
        wl, _, _ = frames(60, seed=8)
        wl.loc[::7, "oldest_dpd"] = np.nan
        wl.loc[::5, "oldest_dpd"] = 30.0  # on a bucket edge
        wl.loc[::4, "action"] = "legal"
        table = S.check_worklist(wl, as_of=DAY)
        ids = table.column("account_id").to_pylist()
        with store._engine.begin() as conn:
            conn.execute(account_directory.insert(), [
                {"account_id": a, "name": a, "region": ["north", "south", None][i % 3]}
                for i, a in enumerate(ids[:45])])
            store_bulk.bulk_insert(conn, S.worklist, table, constants={"run_id": "r1"})
            want = [dict(r._mapping) for r in conn.execute(store_totals.totals_query(["r1"]))]
            got = store_totals.from_table(conn, table, run_id="r1")
        assert sorted(map(_key, got)) == sorted(map(_key, want)) and len(want) > 8
        by_key = {_key(r): r for r in want}
        for row in got:
            assert row == pytest.approx(by_key[_key(row)])
    finally:
        store.close()
