"""Benchmark: server time of the workbench's account endpoint on a store with a big run.

    python -m bench.workbench_account --accounts 100000 [--requests 300] [--work DIR]
                                      [--json PATH]

Builds (not timed) a synthetic book of ``--accounts`` accounts (``write_book_folder``, about
50 invoices each) as the staged book, and one published run over the same accounts
(``bench.store.synthetic_run``: worklist rows and a 60-feature explanation file). Then
times, each reported:

- ``index_build_s``: the account-history index of the staged book (sorted Parquet, small
  row groups; ``workbench.history``) and the account directory synced into the store;
- ``account_ms``: ``GET /api/accounts/{id}`` for ``--requests`` random accounts, in
  process (the app's own time: routing, auth, the worklist row by index, the account's
  SHAP vector, its invoices/payments/disputes from the index, score history, events),
  p50/p95/max in milliseconds (an upper bound: FastAPI's test client starts a thread per
  request), and the same for the parts alone (``part_ms``).

For 1M accounts (~50M invoices) pass ``--accounts 1000000`` (needs ~10 GB of disk and
several minutes to build). Other processes on the machine inflate the times; the load
average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

AS_OF = date(2025, 1, 1)


def _pct(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000.0
    return {"p50": round(float(np.percentile(arr, 50)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2), "max": round(float(arr.max()), 2)}


def run(accounts: int, requests: int, work: Path) -> dict[str, Any]:
    import pandas as pd
    import pyarrow.parquet as pq
    from fastapi.testclient import TestClient

    from bench.store import synthetic_run
    from features.synthetic import write_book_folder
    from serving.store import WorklistStore
    from workbench import WorkbenchConfig, create_app, open_workbench, refresh_history
    from workbench.history import account_history
    from workbench.roles import Role
    from workbench.users import add_user, create_token

    out: dict[str, Any] = {"accounts": accounts, "requests": requests,
                           "load_before": os.getloadavg()[0]}
    book = work / "staging" / "book"
    t = time.perf_counter()
    write_book_folder(accounts, book, seed=0, start="2023-01-01", end="2024-12-31")
    out["generate_s"] = round(time.perf_counter() - t, 1)
    ids = pq.read_table(book / "accounts.parquet", columns=["account_id"]).column(
        "account_id").to_pylist()
    out["invoices"] = pq.ParquetFile(book / "invoices.parquet").metadata.num_rows
    wl, ex, drift = synthetic_run(len(ids), as_of=AS_OF)
    rng = np.random.default_rng(1)
    shuffled = np.asarray(ids, dtype=object)[rng.permutation(len(ids))]
    order = {a: i for i, a in enumerate(wl["account_id"])}
    wl["account_id"] = pd.Series(shuffled, dtype="str")
    ex["account_id"] = pd.Series(shuffled[[order[a] for a in ex["account_id"]]], dtype="str")
    url = f"sqlite:///{work / 'worklist.db'}"
    t = time.perf_counter()
    with WorklistStore(url, upgrade=True) as store:
        run_id = store.begin_run(as_of=AS_OF, meta={})
        store.write_run(run_id, worklist=wl, explanations=ex, drift=drift, meta={})
    out["publish_s"] = round(time.perf_counter() - t, 1)

    config = WorkbenchConfig(store_url=url, state_dir=work, book_dir=book)
    wb = open_workbench(config)
    t = time.perf_counter()
    rows = refresh_history(wb)
    out["index_build_s"] = round(time.perf_counter() - t, 1)
    out["index_rows"] = rows
    now = datetime.now(UTC)
    add_user(wb.engine, username="bench", role=Role.ANALYST, password="bench password",
             actor="bench", now=now)
    token = create_token(wb.engine, username="bench", name="bench", actor="bench", now=now)
    client = TestClient(create_app(config, workbench=wb))
    client.headers["Authorization"] = f"Bearer {token}"
    sample = [str(a) for a in rng.choice(shuffled, size=requests, replace=False)]
    client.get(f"/api/accounts/{sample[0]}")  # warm: imports, first connection
    times = []
    for account in sample:
        t = time.perf_counter()
        r = client.get(f"/api/accounts/{account}")
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    out["account_ms"] = _pct(times)
    index = wb.history_index()
    parts: dict[str, list[float]] = {"explanation": [], "history": [], "worklist_row": []}
    from workbench import queries

    for account in sample[:100]:
        t = time.perf_counter()
        wb.store.read_explanations(run_id, account_ids=[account])
        parts["explanation"].append(time.perf_counter() - t)
        t = time.perf_counter()
        account_history(index, account, as_of=AS_OF)
        parts["history"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with wb.engine.connect() as conn:
            queries.account_row(conn, run_id=run_id, account_id=account)
        parts["worklist_row"].append(time.perf_counter() - t)
    out["part_ms"] = {k: _pct(v) for k, v in parts.items()}
    out["row_groups_read"] = {t: index.groups_read(t, sample[0]) for t in ("invoices",
                                                                            "payments")}
    out["load_after"] = os.getloadavg()[0]
    wb.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_workbench_"))
    try:
        out = run(args.accounts, args.requests, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
