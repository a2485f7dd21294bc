"""Benchmark: the collections loop's features of one ``as_of`` date
(``features.pit.loop.loop_features``), computed from scratch (the baseline: what a training
set paid on every date of its grid before the per-book lookups) and with the per-book
lookups a training set now computes once (each dispute's and payment's account,
``dispute_owners`` / ``payment_accounts``).

    python -m bench.loop --accounts 30000 [--dates 3] [--json PATH]

Prints the seconds per date of both, their ratio (measured in the same process), the
once-per-book cost of the lookups, and checks the two give equal frames. Other processes
sharing the cores inflate wall time; CPU seconds are printed too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd


def _timed(fn: Any) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def run(accounts: int, *, dates: int = 3, seed: int = 3) -> dict[str, float]:
    from features import generate_book
    from features.pit.loop import dispute_owners, loop_features, recorded_since
    from features.pit.promises import payment_accounts

    book = generate_book(accounts, seed=seed, loop=True)
    ids = book.accounts["account_id"].tolist()
    since = recorded_since(book)
    grid = pd.date_range("2023-06-05", "2024-11-25", periods=dates).normalize()
    lookups, once, once_cpu = _timed(lambda: {"owners": dispute_owners(book),
                                              "pay_accounts": payment_accounts(book)})
    scratch = cached = scratch_cpu = cached_cpu = 0.0
    for as_of in grid:
        a, s, sc = _timed(lambda d=as_of: loop_features(book, as_of=d, accounts=ids,
                                                        since=since))
        b, c, cc = _timed(lambda d=as_of: loop_features(book, as_of=d, accounts=ids,
                                                        since=since, **lookups))
        pd.testing.assert_frame_equal(a, b)
        scratch, cached = scratch + s, cached + c
        scratch_cpu, cached_cpu = scratch_cpu + sc, cached_cpu + cc
    return {"accounts": accounts, "invoices": len(book.invoices),
            "promises": len(book.promises), "dates": dates,
            "scratch_seconds_per_date": scratch / dates,
            "scratch_cpu_per_date": scratch_cpu / dates,
            "lookups_seconds_per_date": cached / dates,
            "lookups_cpu_per_date": cached_cpu / dates,
            "lookups_once_seconds": once, "lookups_once_cpu": once_cpu,
            "ratio": cached / scratch if scratch else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=30_000)
    parser.add_argument("--dates", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    r = run(args.accounts, dates=args.dates)
    print(f"loop features, {r['accounts']:,} accounts ({r['invoices']:,} invoices, "
          f"{r['promises']:,} promises), {r['dates']} dates: from scratch "
          f"{r['scratch_seconds_per_date']:.2f} s/date ({r['scratch_cpu_per_date']:.2f} CPU s), "
          f"with the per-book lookups {r['lookups_seconds_per_date']:.2f} s/date "
          f"({r['lookups_cpu_per_date']:.2f} CPU s), ratio {r['ratio']:.2f}; lookups once "
          f"{r['lookups_once_seconds']:.2f} s; frames equal")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
