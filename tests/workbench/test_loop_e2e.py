"""Issue 17, end to end through the store: a promise recorded with the workbench API takes
its account off the main ranking of the next run."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from serving.actions import AWAIT_PROMISE
from serving.score_run import score_into_store
from serving.store import WorklistStore
from tests.workbench.conftest import Bench
from workbench.roles import Role


def test_a_promise_recorded_in_the_workbench_changes_the_next_run(bench: Bench,
                                                                   trained_state) -> None:
    client = bench.client(Role.ANALYST)
    top = client.get("/api/worklist?limit=1").json()["items"][0]
    today = bench.clock().date()
    promised = today + timedelta(days=5)
    body = {"kind": "promise", "promised_date": promised.isoformat(),
            "amount": round(min(100.0, top["open_balance"]), 2)}
    r = client.post(f"/api/accounts/{top['account_id']}/events", json=body)
    assert r.status_code == 201, r.text

    next_day = today + timedelta(days=1)
    score_into_store(trained_state.book, as_of=next_day, models=trained_state.models,
                     store_url=bench.config.store_url, export_dir=None)
    with WorklistStore(bench.config.store_url, read_only=True) as store:
        wl = store.read_worklist(as_of=next_day)
    row = wl[wl["account_id"] == top["account_id"]].iloc[0]
    assert row["hold"] == "promise" and row["action"] == AWAIT_PROMISE
    assert row["hold_date"] == pd.Timestamp(promised)
    assert row["rank"] == len(wl) and wl["hold"].notna().sum() == 1
