"""Benchmark: a name search with the store out of the page cache and in it (workbench.prewarm).

    python -m bench.search_cache --work DIR [--searches 200] [--seed 1] [--json PATH]

On a ``bench.workbench`` build (``--work``: its ``worklist.db``), in this one process, one
search after another as the API runs it (``workbench.queries.narrow_search`` then the first
page, 50 rows by priority) for a name prefix a person would type (a random account's name
less its last two characters, lower case: ~100 matching accounts at 1M):

1. ``cold``: the store's file dropped from the kernel's page cache first
   (``posix_fadvise(DONTNEED)``: no root needed; pages the kernel cannot drop stay);
2. ``warm``: the same file read once by :func:`workbench.prewarm.read_in_child`, as a
   starting server does, then new searches (other prefixes of the same kind).

Prints p50 / p95 / max milliseconds of each. The difference is waits for the disk, not
CPU: run it with nothing else using the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import sqlalchemy as sa

from bench.workbench import stats
from serving.store import current_run_of
from workbench import prewarm
from workbench.queries import Filters, narrow_search, page_query
from workbench.schemas import Sort


def _searches(conn: sa.Connection, run_id: str, prefixes: list[str]) -> dict[str, float]:
    times = []
    for prefix in prefixes:
        t = time.perf_counter()
        filters = Filters(search=prefix)
        narrow = narrow_search(conn, run_id=run_id, filters=filters)
        conn.execute(page_query(run_id=run_id, filters=filters, sort=Sort.PRIORITY,
                                after=None, limit=50, today=date.today(),
                                narrow=narrow)).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    return stats(times)


def measure(work: Path, *, searches: int, seed: int) -> dict[str, Any]:
    db = work / "worklist.db"
    names = pq.read_table(work / "staging" / "book" / "accounts.parquet",
                          columns=["name"]).column("name").to_pylist()
    rng = np.random.default_rng(seed)
    picked = [str(names[i])[:-2].lower() for i in rng.choice(len(names), 2 * searches)]
    # The file is opened (and closed) here before any connection: a close while a SQLite
    # connection of this process is open would drop its locks (workbench.prewarm).
    with open(db, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            run = current_run_of(conn)
            assert run is not None, f"no finished run in {db}"
            cold = _searches(conn, run.run_id, picked[:searches])
            with tempfile.TemporaryDirectory() as tmp:
                read = prewarm.read_in_child([db], Path(tmp) / "prewarm.lock")
            warm = _searches(conn, run.run_id, picked[searches:])
    finally:
        engine.dispose()
    return {"store_gb": round(db.stat().st_size / 1e9, 2), "prewarm_bytes": read,
            "cold_ms": cold, "warm_ms": warm, "load": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out = measure(args.work.resolve(), searches=args.searches, seed=args.seed)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
