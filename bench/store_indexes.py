"""Benchmark: what each worklist index costs the SQLite store write (issue 20, store write).

    python -m bench.store_indexes --rows 100000 [--prior 2] [--json PATH]

Writes one run of ``--rows`` synthetic worklist rows (``bench.store.synthetic_run``) with
:func:`serving.store_bulk.insert_chunks`, as the publish does, into a fresh SQLite store
already holding ``--prior`` runs of the same size, once per variant, and reports this
process's CPU seconds (wall seconds are load-dependent; the figure to compare is CPU):

- ``all``: the store's tables as they are (revision :data:`serving.store_schema.REVISION`);
- ``none``: every secondary index dropped (the table and its primary key only);
- ``only_<index>``: one secondary index kept;
- ``sorted_<index>``: that one index kept, the rows inserted in its order (whether the
  order of the inserts matters);
- ``build_after``: no secondary index during the insert, then each built by
  ``CREATE INDEX`` over the whole table (every run's rows: an upper bound of what building
  the run's own entries once would cost).
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

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex

from bench.store import synthetic_run
from serving import store_bulk
from serving import store_schema as S
from serving.store_tables import metadata

DAY = date(2024, 3, 1)
#: The worklist's secondary indexes and the columns a run's rows would be sorted by.
INDEXES = {"ix_worklist_account": [("account_id", "ascending")],
           "ix_worklist_probability": [("probability", "descending"), ("rank", "ascending")],
           "ix_worklist_balance": [("open_balance", "descending"), ("rank", "ascending")],
           "ix_worklist_dpd": [("oldest_dpd", "descending"), ("rank", "ascending")]}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _variant(rows: pa.Table, prior: int, name: str, folder: Path) -> dict[str, float]:
    engine = sa.create_engine(f"sqlite:///{folder / f'{name}.db'}")
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        for k in range(prior):
            store_bulk.insert_chunks(engine, S.worklist, rows,
                                     constants={"run_id": f"2024-02-{k + 1:02d}-prior{k:07d}"})
        kind, _, index = name.partition("_")
        keep = {"all": set(INDEXES), "only": {index}, "sorted": {index}}.get(kind, set())
        with engine.begin() as conn:
            for ix in set(INDEXES) - keep:
                conn.exec_driver_sql(f"DROP INDEX {ix}")
        data = rows.take(pc.sort_indices(rows, sort_keys=INDEXES[index])) if kind == "sorted" \
            else rows
        cpu, wall = _cpu(), time.perf_counter()
        store_bulk.insert_chunks(engine, S.worklist, data, constants={"run_id": "2024-03-01-x"})
        out = {"insert_cpu_s": _cpu() - cpu, "insert_wall_s": time.perf_counter() - wall}
        if kind == "build":
            cpu = _cpu()
            with engine.begin() as conn:
                conn.exec_driver_sql(f"PRAGMA cache_size = -{store_bulk.SQLITE_WRITE_CACHE_KIB}")
                for ix in S.worklist.indexes:
                    if ix.name in INDEXES:
                        conn.execute(CreateIndex(ix))
            out["build_cpu_s"] = _cpu() - cpu
        return {k: round(v, 2) for k, v in out.items()}
    finally:
        engine.dispose()


def run(n_rows: int, prior: int) -> dict[str, Any]:
    """CPU (and wall) seconds of each variant (see the module docstring)."""
    wl, _, _ = synthetic_run(n_rows, features=1)
    rows = S.check_worklist(wl, as_of=DAY)
    names = ["all", "none", *(f"only_{ix}" for ix in INDEXES),
             *(f"sorted_{ix}" for ix in INDEXES), "build_after"]
    out: dict[str, Any] = {"rows": n_rows, "prior_runs": prior,
                           "load_avg_1m_before": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory(prefix="delinq-bench-indexes-") as tmp:
        for name in names:
            out[name] = _variant(rows, prior, name, Path(tmp))
            print(name, out[name], flush=True)
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--prior", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = run(args.rows, args.prior)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
