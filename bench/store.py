"""Benchmark: writing and reading one scoring run in the worklist store (DESIGN sections 8, 11).

    python -m bench.store --rows 1000000 [--url URL] [--features 60] [--json PATH]
                          [--compare-explanations]

Times, for ``--rows`` accounts (synthetic frames; building them is not timed), each as
wall seconds ``<part>_s`` and this process's CPU seconds ``<part>_cpu_s``:

- ``write_run``: the whole atomic :meth:`WorklistStore.write_run` (checks, worklist rows,
  drift, the explanation Parquet file on a thread, publish, Parquet exports), with the
  store's own split (``write_run_check_s``, ``write_run_worklist_s`` (the chunks),
  ``write_run_totals_s``, ...);
- ``worklist_insert_alone``: the worklist rows alone, in a transaction rolled back (on
  PostgreSQL also ``..._server_cpu_s``, the backend's CPU for the COPY);
- ``explanations_file_alone``: the explanation file alone (``--features`` feature values
  and SHAP values per account, the store's Parquet settings);
- ``rerun``: the same as_of again (replaces the run, deleting the old rows);
- reads: top 10, the whole worklist, 10 accounts' explanations.

Baseline, measured in the same run on ``--baseline-rows`` rows: pandas ``DataFrame.to_sql``
of the same worklist (the straightforward way); the printed ratio compares rows per second
with ``worklist_insert_alone``. ``--compare-explanations`` also times two table layouts for
explanations on ``--alt-rows`` accounts (a wide table; a long table of account, feature,
shap, value), extrapolated linearly to ``--rows``. Other processes sharing the 2 cores
inflate wall time (the 1-minute load average is recorded before and after); CPU seconds
are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from features.spec import MODEL_OF_SEGMENT, SEGMENTS

DAY = date(2024, 3, 1)
SEGMENT_NAMES = np.array(SEGMENTS, dtype=object)
EARLY_WARNING_SEGMENTS = [s for s, m in MODEL_OF_SEGMENT.items() if m == "early_warning"]


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def synthetic_run(
    n: int, *, features: int = 60, seed: int = 0, as_of: date = DAY
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Worklist, explanations (wide: values + ``shap_<feature>``) and drift frames."""
    rng = np.random.default_rng(seed)
    ids = pd.Series(np.char.add("A", np.arange(n).astype("U8")), dtype="str")
    seg = SEGMENT_NAMES[rng.integers(0, len(SEGMENTS), n)]
    balance = rng.gamma(2.0, 1000.0, n).round(2)
    prob = rng.random(n)
    priority = prob * balance
    order = np.argsort(-priority, kind="stable")
    late = rng.integers(0, 7, n).astype("U1")
    wl = pd.DataFrame({
        "rank": np.arange(1, n + 1, dtype=np.int64),
        "account_id": ids.to_numpy()[order],
        "segment": seg[order],
        "open_balance": balance[order],
        "past_due_amount": (balance * rng.random(n)).round(2)[order],
        "oldest_dpd": rng.integers(-30, 200, n).astype(float)[order],
        "model": np.where(np.isin(seg, EARLY_WARNING_SEGMENTS), "early_warning",
                          "persistence")[order],
        "probability": prob[order],
        "priority": priority[order],
        "action": np.array(["automated reminder", "pre-due call", "personal follow-up"],
                           dtype=object)[rng.integers(0, 3, n)],
        "reason_1": np.char.add(late, " of the last 6 invoices were paid 15+ days late"),
        "reason_2": np.char.add("Open balance is up ", late),
        "reason_3": "Oldest open invoice is 45 days past due (INV-0001234)",
        "mitigating_reason": "Customer for 7 years",
        "reasons_json": np.char.add('[{"feature":"late_share_6","shap":0.41,"value":', late),
        "model_version": "3",
        "scorer": "model",
        "calibration": "validation",
        "as_of": pd.Timestamp(as_of),
    })
    wl = wl.astype({c: "str" for c in ("account_id", "segment", "model", "action", "reason_1",
                                       "reason_2", "reason_3", "mitigating_reason",
                                       "reasons_json", "model_version", "scorer",
                                       "calibration")})
    wl["as_of"] = wl["as_of"].astype("datetime64[s]")
    cols: dict[str, Any] = {"account_id": ids, "model": "early_warning", "model_version": "3",
                            "base_value": -2.0, "raw_score": rng.normal(size=n)}
    for j in range(features):
        # Counts, money and shares, as real features are; SHAP sparse-ish (unused = 0).
        cols[f"f{j}"] = (rng.poisson(3, n).astype(float) if j % 2 else
                         rng.gamma(2.0, 100.0, n).round(2))
    for j in range(features):
        s = rng.normal(scale=0.2, size=n)
        s[rng.random(n) < 0.3] = 0.0
        cols[f"shap_f{j}"] = s
    ex = pd.DataFrame(cols)
    drift = pd.DataFrame({"model": "early_warning", "feature": [f"f{j}" for j in range(features)],
                          "psi": rng.random(features) * 0.3, "flag": "ok"})
    return wl, ex, drift


def _explanation_tables(engine: sa.Engine, ex: pd.DataFrame, n_full: int) -> dict[str, float]:
    """Seconds to write ``ex`` as a wide table and as a long table, scaled to ``n_full``."""
    from serving import store_bulk

    feats = [c[5:] for c in ex.columns if c.startswith("shap_")]
    meta = sa.MetaData()
    wide = sa.Table("bench_expl_wide", meta, sa.Column("account_id", sa.Text),
                    *(sa.Column(c, sa.Double) for c in ex.columns if c != "account_id"
                      and c not in ("model", "model_version")))
    long = sa.Table("bench_expl_long", meta, sa.Column("account_id", sa.Text),
                    sa.Column("feature", sa.Text), sa.Column("shap", sa.Double),
                    sa.Column("value", sa.Double))
    meta.drop_all(engine)
    meta.create_all(engine)
    out: dict[str, float] = {}
    scale = n_full / max(len(ex), 1)
    data = pa.Table.from_pandas(ex.drop(columns=["model", "model_version"]), preserve_index=False)
    t = time.perf_counter()
    with engine.begin() as conn:
        store_bulk.bulk_insert(conn, wide, data, constants={})
    out["explanations_wide_table_est_s"] = round((time.perf_counter() - t) * scale, 2)
    n = len(ex)
    long_data = pa.table({
        "account_id": np.repeat(ex["account_id"].to_numpy(dtype=object), len(feats)),
        "feature": np.tile(np.array(feats, dtype=object), n),
        "shap": ex[[f"shap_{f}" for f in feats]].to_numpy().ravel(),
        "value": ex[feats].to_numpy().ravel(),
    })
    t = time.perf_counter()
    with engine.begin() as conn:
        store_bulk.bulk_insert(conn, long, long_data, constants={})
    out["explanations_long_table_est_s"] = round((time.perf_counter() - t) * scale, 2)
    meta.drop_all(engine)
    return out


def _timed(out: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; record wall seconds as ``<key>_s`` and this process's CPU as ``_cpu_s``."""
    t, c = time.perf_counter(), _cpu_s()
    result = fn()
    out[f"{key}_s"] = round(time.perf_counter() - t, 3)
    out[f"{key}_cpu_s"] = round(_cpu_s() - c, 3)
    return result


def _server_cpu_s(conn: sa.Connection) -> float | None:
    """CPU seconds of this connection's PostgreSQL backend (local server), else None."""
    if conn.dialect.name != "postgresql":
        return None
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _insert_rolled_back(store: Any, run_id: str, data: pa.Table, out: dict[str, Any]) -> None:
    from serving import store_bulk
    from serving.store_schema import worklist

    # The publish's page cache (store_bulk.insert_chunks), so that this figure is the
    # publish's rows: at SQLite's default 2 MB each insert re-reads evicted index pages.
    with store._engine.connect() as conn, store_bulk.write_cache(conn):
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin() as txn:
            before = _server_cpu_s(conn)
            store_bulk.bulk_insert(conn, worklist, data, constants={"run_id": run_id})
            after = _server_cpu_s(conn)
            if before is not None and after is not None:
                out["worklist_insert_alone_server_cpu_s"] = round(after - before, 3)
            txn.rollback()


def bench_store(
    n_rows: int,
    url: str | None = None,
    *,
    features: int = 60,
    baseline_rows: int = 50_000,
    compare_explanations: bool = False,
    alt_rows: int = 20_000,
) -> dict[str, Any]:
    """Write/read one run of ``n_rows`` accounts; seconds per part (see module docstring).

    ``url`` None: a SQLite file in a temporary directory. A PostgreSQL URL should point at
    a throw-away database (the benchmark creates the store's tables there).
    """
    from serving.store import WorklistStore
    from serving.store_files import write_explanations_parquet
    from serving.store_schema import check_worklist

    with tempfile.TemporaryDirectory(prefix="delinq-bench-store-") as tmp:
        root = Path(tmp)
        url = url or f"sqlite:///{root / 'worklist.db'}"
        t = time.perf_counter()
        wl, ex, drift = synthetic_run(n_rows, features=features)
        out: dict[str, Any] = {"rows": n_rows, "features": features,
                               "backend": sa.make_url(url).get_backend_name(),
                               "build_frames_s": round(time.perf_counter() - t, 2)}
        store = WorklistStore(url, export_dir=root / "exports",
                              explanations_dir=root / "explanations")
        out["load_avg_1m_before"] = round(os.getloadavg()[0], 1)
        try:
            run_id = store.begin_run(as_of=DAY, meta={})
            rec = _timed(out, "write_run", lambda: store.write_run(
                run_id, worklist=wl, explanations=ex, drift=drift, meta={}))
            for part in ("check", "worklist", "totals", "files_wait", "total"):
                out[f"write_run_{part}_s"] = rec.timings[f"store_{part}_s"]
            out["explanations_mb"] = round(Path(rec.explanations_path).stat().st_size / 1e6, 1)

            # The parts alone (no other thread competing): the worklist rows inside a
            # transaction that is rolled back, and the explanation file.
            wl_arrow = check_worklist(wl, as_of=DAY)
            scratch = store.begin_run(as_of=DAY, meta={})
            _timed(out, "worklist_insert_alone",
                   lambda: _insert_rolled_back(store, scratch, wl_arrow, out))
            store.fail_run(scratch, message="benchmark: rolled back on purpose")
            table = pa.Table.from_pandas(ex, preserve_index=False)
            _timed(out, "explanations_file_alone",
                   lambda: write_explanations_parquet(table, root / "alone.parquet"))

            _timed(out, "read_top10", lambda: store.read_worklist(as_of=DAY, top=10))
            got = _timed(out, "read_all", lambda: store.read_worklist(as_of=DAY))
            assert len(got) == n_rows
            some = wl["account_id"].sample(10, random_state=0).tolist()
            _timed(out, "read_explanations_10",
                   lambda: store.read_explanations(run_id, account_ids=some))

            again = store.begin_run(as_of=DAY, meta={})
            _timed(out, "rerun", lambda: store.write_run(
                again, worklist=wl, explanations=ex, drift=drift, meta={}))
        finally:
            store.close()

        # Baseline: pandas to_sql of the same worklist rows into a fresh table.
        base = wl.head(baseline_rows).copy()
        engine = sa.create_engine(url)
        try:
            out["baseline_rows"] = len(base)
            _timed(out, "baseline_to_sql", lambda: base.to_sql(
                "bench_to_sql", engine, if_exists="replace", index=False, chunksize=10_000))
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE bench_to_sql")
            if compare_explanations:
                out.update(_explanation_tables(engine, ex.head(alt_rows), n_rows))
        finally:
            engine.dispose()
        out["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
    ours = n_rows / max(out["worklist_insert_alone_s"], 1e-9)
    theirs = out["baseline_rows"] / max(out["baseline_to_sql_s"], 1e-9)
    out["worklist_rows_per_s"] = round(ours)
    out["baseline_rows_per_s"] = round(theirs)
    out["speedup_vs_to_sql"] = round(ours / theirs, 1)
    cpu_ours = n_rows / max(out["worklist_insert_alone_cpu_s"], 1e-9)
    cpu_theirs = out["baseline_rows"] / max(out["baseline_to_sql_cpu_s"], 1e-9)
    out["speedup_vs_to_sql_cpu"] = round(cpu_ours / cpu_theirs, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", default=None, help="store URL (default: temporary SQLite file)")
    ap.add_argument("--features", type=int, default=60)
    ap.add_argument("--baseline-rows", type=int, default=50_000)
    ap.add_argument("--compare-explanations", action="store_true")
    ap.add_argument("--alt-rows", type=int, default=20_000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = bench_store(args.rows, args.url, features=args.features,
                      baseline_rows=args.baseline_rows,
                      compare_explanations=args.compare_explanations, alt_rows=args.alt_rows)
    for key, value in out.items():
        print(f"{key:32s} {value}")
    print(f"worklist insert: {out['worklist_rows_per_s']:,} rows/s vs pandas to_sql "
          f"{out['baseline_rows_per_s']:,} rows/s ({out['speedup_vs_to_sql']}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
