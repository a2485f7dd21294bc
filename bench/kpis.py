"""Benchmark: the receivables KPIs of one run (``features.pit.kpis.compute_kpis``) and
``open_invoices`` on a synthetic book.

    python -m bench.kpis --accounts 100000 [--json PATH]

What the score step adds to a nightly run: one encoding of the book, two openness passes
(as_of and a month before, for the CEI), the monthly sales of the countback and the
payments of the previous worklist's accounts (here: every tenth account). The first call
compiles or loads numba's cache and is timed apart (``warmup_seconds``). Other processes
sharing the cores inflate wall time; CPU seconds (all threads) are printed too.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path


def run(accounts: int, seed: int = 0) -> dict[str, float]:
    from features import generate_book, open_invoices
    from features.pit.kpis import compute_kpis

    t0 = time.perf_counter()
    book = generate_book(accounts, seed=seed)
    generated = time.perf_counter() - t0
    as_of = (book.invoices["issue_date"].max() + timedelta(days=1)).date()
    previous = (as_of - timedelta(days=1),
                book.invoices["account_id"].drop_duplicates().iloc[::10].tolist())
    t0 = time.perf_counter()
    compute_kpis(book, as_of=as_of, previous=previous)
    warmup = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    kpis = compute_kpis(book, as_of=as_of, previous=previous)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    rows = open_invoices(book, as_of=as_of)
    open_seconds = time.perf_counter() - t0
    return {
        "accounts": accounts, "invoices": len(book.invoices), "payments": len(book.payments),
        "generate_seconds": round(generated, 2), "warmup_seconds": round(warmup, 2),
        "kpi_seconds": round(seconds, 2),
        "kpi_cpu_seconds": round(cpu, 2), "open_invoices_seconds": round(open_seconds, 2),
        "open_invoices": len(rows), "total_ar": kpis.total_ar, "dso": kpis.dso,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.accounts, args.seed)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
