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
  the run's own entries once would cost);
- ``int_run_id``: every index as it is, but ``run_id`` a small integer (a run number)
  instead of the text id every key comparison starts with;
- ``narrow_sort``: the sort indexes of revision 0005 (``run_id``, key, ``rank``), without
  revision 0008's ``segment``, ``action``, ``account_id`` (what 0008's tail costs);
- ``account_first``: every index as it is but the account index keyed
  ``(account_id, run_id)``, as before revision 0009 (``(run_id, account_id)``): each of
  the run's entries beside the same account's entries of every other run, not the run's
  entries one range (with ``--prior`` runs, what the interleaving costs: 300k rows into
  a store of 30 runs took 13.3 CPU s this way, 6.7 keyed by run first; load 5-12);
- ``without_rowid``: every index as it is, the table ``WITHOUT ROWID``: a row's columns
  in the primary key's b-tree instead of a rowid table beside it (one b-tree fewer);
- ``per_run_table``: the run's rows in a table of its own (no ``run_id`` column, ``rank``
  the rowid), its four indexes (the same keys without ``run_id``) built by ``CREATE
  INDEX`` after its rows: the cheapest the run's entries can be had. Not a drop-in: the
  workbench's statements name one ``worklist`` table, and each ``CREATE INDEX`` is one
  statement holding SQLite's write lock for seconds (the publish's steps are 10 ms).

Measured into an empty store (``--rows 1000000 --prior 0``, 2 cores at load 4-7, CPU s of
the insert): ``all`` 24.3, ``none`` 7.6 (the table, its primary key and the Python rows:
the four secondary indexes cost 16.7), ``build_after`` 7.5 + 7.95 for the four
``CREATE INDEX`` (the indexes at half their price when built from the rows at once),
``narrow_sort`` 20.7, ``without_rowid`` 22.7, ``int_run_id`` 23.3 (at 100k rows it cut
23%, at 1M 4%).
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


def _ddl(engine: sa.Engine, name: str) -> str:
    """The ``CREATE`` statement of the table or index ``name`` as SQLite holds it."""
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?",
                                        (name,)).scalar_one())


def _int_run_id(engine: sa.Engine) -> None:
    """Recreate the (empty) worklist with an integer ``run_id``, its indexes as they are."""
    indexes = [_ddl(engine, ix) for ix in INDEXES]
    table = _ddl(engine, "worklist").replace("run_id VARCHAR(64)", "run_id INTEGER")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE worklist")
        conn.exec_driver_sql(table)
        for ddl in indexes:
            conn.exec_driver_sql(ddl)


def _narrow_sort(engine: sa.Engine) -> None:
    """Revision 0005's sort indexes: no ``segment, action, account_id`` after ``rank``."""
    with engine.begin() as conn:
        for ix in INDEXES:
            if ix != "ix_worklist_account":
                ddl = _ddl(engine, ix).replace(", segment, action, account_id)", ")")
                conn.exec_driver_sql(f"DROP INDEX {ix}")
                conn.exec_driver_sql(ddl)


def _account_first(engine: sa.Engine) -> None:
    """The account index keyed ``(account_id, run_id)`` (before revision 0009)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_worklist_account")
        conn.exec_driver_sql("CREATE INDEX ix_worklist_account ON worklist (account_id, run_id)")


def _without_rowid(engine: sa.Engine) -> None:
    """Recreate the (empty) worklist ``WITHOUT ROWID``, its indexes as they are: the rows
    live in the primary key's b-tree ``(run_id, rank)`` (one b-tree fewer per row; the
    secondary indexes end in ``(run_id, rank)`` instead of a rowid)."""
    indexes = [_ddl(engine, ix) for ix in INDEXES]
    table = _ddl(engine, "worklist").rstrip().rstrip(")").rstrip() + "\n) WITHOUT ROWID"
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE worklist")
        conn.exec_driver_sql(table)
        for ddl in indexes:
            conn.exec_driver_sql(ddl)


def _per_run_table(engine: sa.Engine, rows: pa.Table) -> dict[str, float]:
    """The run's rows into a table of its own, then its indexes by ``CREATE INDEX``."""
    table = (_ddl(engine, "worklist").replace("TABLE worklist", "TABLE worklist_run")
             .replace("run_id VARCHAR(64) NOT NULL, ", "")
             .replace("rank INTEGER NOT NULL", "rank INTEGER PRIMARY KEY"))
    table = table[:table.index(", \n\tCONSTRAINT pk_worklist")] + "\n)"
    indexes = [_ddl(engine, ix).replace(f"INDEX {ix} ON worklist", f"INDEX {ix}_run ON "
                                        "worklist_run").replace("run_id, ", "")
               .replace(", run_id)", ")") for ix in INDEXES]
    target = sa.Table("worklist_run", sa.MetaData(),
                      *(sa.Column(c.name) for c in S.worklist.columns if c.name != "run_id"))
    with engine.begin() as conn:
        conn.exec_driver_sql(table)
    cpu, wall = _cpu(), time.perf_counter()
    store_bulk.insert_chunks(engine, target, rows, constants={})
    out = {"insert_cpu_s": _cpu() - cpu, "insert_wall_s": time.perf_counter() - wall}
    cpu = _cpu()
    with engine.begin() as conn, store_bulk.write_cache(conn):  # the publish's cache
        for ddl in indexes:
            conn.exec_driver_sql(ddl)
    out["build_cpu_s"] = _cpu() - cpu
    return out


def _variant(rows: pa.Table, prior: int, name: str, folder: Path) -> dict[str, float]:
    engine = sa.create_engine(f"sqlite:///{folder / f'{name}.db'}")
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        run_ids = [f"2024-02-{k + 1:02d}-prior{k:07d}" for k in range(prior)] + ["2024-03-01-x"]
        if name == "int_run_id":
            _int_run_id(engine)
            run_ids = list(range(1, prior + 2))
        if name == "narrow_sort":
            _narrow_sort(engine)
        if name == "without_rowid":
            _without_rowid(engine)
        if name == "account_first":
            _account_first(engine)
        for run_id in run_ids[:-1]:
            store_bulk.insert_chunks(engine, S.worklist, rows, constants={"run_id": run_id})
        if name == "per_run_table":
            return {k: round(v, 2) for k, v in _per_run_table(engine, rows).items()}
        kind, _, index = name.partition("_")
        keep = {"all": set(INDEXES), "only": {index}, "sorted": {index}, "int": set(INDEXES),
                "narrow": set(INDEXES), "account": set(INDEXES),
                "without": set(INDEXES)}.get(kind, set())
        with engine.begin() as conn:
            for ix in set(INDEXES) - keep:
                conn.exec_driver_sql(f"DROP INDEX {ix}")
        data = rows.take(pc.sort_indices(rows, sort_keys=INDEXES[index])) if kind == "sorted" \
            else rows
        cpu, wall = _cpu(), time.perf_counter()
        store_bulk.insert_chunks(engine, S.worklist, data, constants={"run_id": run_ids[-1]})
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


def run(n_rows: int, prior: int, *, only: list[str] | None = None) -> dict[str, Any]:
    """CPU (and wall) seconds of each variant (see the module docstring), or of ``only``
    those."""
    wl, _, _ = synthetic_run(n_rows, features=1)
    rows = S.check_worklist(wl, as_of=DAY)
    names = ["all", "none", *(f"only_{ix}" for ix in INDEXES),
             *(f"sorted_{ix}" for ix in INDEXES), "build_after", "int_run_id", "narrow_sort",
             "account_first", "without_rowid", "per_run_table"]
    names = [n for n in names if only is None or n in only]
    out: dict[str, Any] = {"rows": n_rows, "prior_runs": prior,
                           "load_avg_1m_before": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory(prefix="delinq-bench-indexes-") as tmp:
        # Not recorded: the process's first write pays one-off costs (measured: the first
        # variant ~40% more CPU than the same variant run again).
        (Path(tmp) / "warm").mkdir()
        _variant(rows.slice(0, min(n_rows, 20_000)), 0, "all", Path(tmp) / "warm")
        for name in names:
            out[name] = _variant(rows, prior, name, Path(tmp))
            print(name, out[name], flush=True)
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--prior", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="variants to run (default: all)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = run(args.rows, args.prior, only=args.only)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
