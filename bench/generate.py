"""Benchmark: write a synthetic book folder (Parquet) and report time, peak memory and rows.

    python -m bench.generate --accounts 1000000 [--loop] [--out DIR] [--json PATH]
                             [--baseline-accounts N]

Target (issue 2 / DESIGN section 10): 1M accounts (~50M invoices) in under 180 s and under
8 GB peak RSS on 2 cores. The baseline, measured in the same run on a smaller book
(``--baseline-accounts``, default min(accounts, 100,000)), is the straightforward route:
build the whole book in memory (``generate_book``) and write it with pandas
(``features.contract.io.write_book``); the printed ratio compares rows written per second.
Peak RSS is the process's ``ru_maxrss`` right after the main run (the baseline runs after
it, so it cannot inflate the figure). ``--loop`` also writes the collections loop's
promises and contacts (as ``delinq generate`` does by default), streamed chunk by chunk with
the other tables; the baseline stays the four core tables. Run on a quiet machine: other
processes sharing the 2 cores inflate wall time, which is why CPU seconds are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_RSS_MB = 8 * 1024.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _baseline(accounts: int, seed: int) -> dict:
    """Rows/second of generate_book + pandas to_parquet (features.contract.io.write_book)."""
    from features.contract.io import write_book
    from features.synthetic import generate_book

    tmp = Path(tempfile.mkdtemp(prefix="delinq-bench-base-"))
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        book = generate_book(accounts, seed=seed)
        write_book(book, tmp, fmt="parquet")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        rows = sum(len(t) for t in book.tables().values())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"accounts": accounts, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "rows": rows, "rows_per_s": round(rows / seconds),
            "rows_per_cpu_s": round(rows / cpu)}


def run(
    accounts: int,
    out: str | None = None,
    json_path: str | None = None,
    *,
    seed: int = 0,
    baseline_accounts: int | None = None,
    loop: bool = False,
) -> dict:
    """Write a ``accounts``-account book to ``out`` (a temp dir, removed, when None).

    Returns and optionally writes to ``json_path``: seconds (wall), cpu_seconds,
    peak_rss_mb, rows per table, rows_per_s, the baseline and the speed ratio.
    """
    from features.synthetic import write_book_folder

    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="delinq-bench-gen-"))
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        summary = write_book_folder(accounts, target, seed=seed, loop=loop)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        peak = _rss_mb()
        size_mb = sum(f.stat().st_size for f in target.iterdir()) / 2**20
    finally:
        if out is None:
            shutil.rmtree(target, ignore_errors=True)
    rows = summary["rows"]
    total = sum(rows.values())
    base_n = min(accounts, 100_000) if baseline_accounts is None else baseline_accounts
    baseline = _baseline(base_n, seed) if base_n > 0 else None
    result = {
        "benchmark": "generate",
        "accounts": accounts,
        "seed": seed,
        "loop": loop,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": round(peak, 1),
        "rows": rows,
        "rows_per_s": round(total / seconds),
        "parquet_mb": round(size_mb, 1),
        "target_seconds": TARGET_SECONDS,
        "target_rss_mb": TARGET_RSS_MB,
        "within_target": seconds < TARGET_SECONDS and peak < TARGET_RSS_MB,
        "baseline": baseline,
        "speedup_vs_baseline": (
            round(total / seconds / baseline["rows_per_s"], 2) if baseline else None
        ),
        # CPU-time throughput ratio: robust when other processes share the cores.
        "cpu_speedup_vs_baseline": (
            round(total / cpu / baseline["rows_per_cpu_s"], 2) if baseline else None
        ),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point: parse arguments, run, print the figures."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--out", default=None, help="output folder (default: temp, removed)")
    ap.add_argument("--json", dest="json_path", default=None, help="write results here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-accounts", type=int, default=None,
                    help="size of the pandas baseline run (0 = skip)")
    ap.add_argument("--loop", action="store_true",
                    help="also write the collections loop's promises and contacts")
    args = ap.parse_args(argv)
    r = run(args.accounts, args.out, args.json_path, seed=args.seed,
            baseline_accounts=args.baseline_accounts, loop=args.loop)
    print(f"accounts        {r['accounts']:,}")
    for table, n in r["rows"].items():
        print(f"rows.{table:<10} {n:,}")
    print(f"seconds         {r['seconds']:.1f} (target < {TARGET_SECONDS:.0f}; "
          f"cpu {r['cpu_seconds']:.1f}; load avg {r['loadavg_1m']})")
    print(f"peak_rss_mb     {r['peak_rss_mb']:,.0f} (target < {TARGET_RSS_MB:,.0f})")
    print(f"rows_per_s      {r['rows_per_s']:,}; parquet {r['parquet_mb']:,.0f} MB")
    if r["baseline"]:
        b = r["baseline"]
        print(f"baseline        generate_book + pandas to_parquet, {b['accounts']:,} accounts: "
              f"{b['seconds']:.1f} s (cpu {b['cpu_seconds']:.1f}), {b['rows_per_s']:,} rows/s")
        print(f"speedup         {r['speedup_vs_baseline']}x rows/s (wall), "
              f"{r['cpu_speedup_vs_baseline']}x rows per cpu-second vs baseline")
    print("within target" if r["within_target"] else "OUTSIDE TARGET")
    return r


if __name__ == "__main__":
    main()
