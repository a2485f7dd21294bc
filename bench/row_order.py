"""Benchmark: validation's canonical row order, packed integer keys vs polars' sort.

    python -m bench.row_order DIR [--shuffle] [--seed 11] [--json PATH]

Reads the invoices and payments of the book folder ``DIR`` (Parquet, e.g. ``delinq
generate``), their canonical sort keys (``features.contract.canonical.SORT_KEYS``; the
payments' every column, as validation sorts them), optionally shuffles the rows
(``--shuffle``: the order of a real export; a book written by the generator is already
sorted), then orders them twice in this process: polars' ``arg_sort_by(keys,
nulls_last=True, maintain_order=True)`` (the baseline: what validation used until
session 10) and :func:`features.row_order.arg_sort_rows`. Prints CPU and wall seconds of
each, their ratio, and checks both orders are the same. CPU is the figure to compare
(wall depends on the load).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.contract.canonical import SORT_KEYS
from features.row_order import arg_sort_rows


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Any) -> tuple[Any, float, float]:
    cpu, wall = _cpu(), time.perf_counter()
    out = fn()
    return out, round(_cpu() - cpu, 2), round(time.perf_counter() - wall, 2)


def measure(book: Path, *, shuffle: bool, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for table in ("invoices", "payments"):
        frame = pl.read_parquet(book / f"{table}.parquet")
        keys = [k for k in SORT_KEYS[table] if k in frame.columns]
        if table == "payments":  # no unique id: every column breaks ties
            keys += [c for c in frame.columns if c not in keys]
        frame = frame.select(keys)
        if shuffle:
            frame = frame[rng.permutation(frame.height)]
        base, base_cpu, base_wall = _timed(lambda f=frame, k=keys: f.select(pl.arg_sort_by(
            k, nulls_last=True, maintain_order=True)).to_series().to_numpy())
        packed, cpu, wall = _timed(lambda f=frame: arg_sort_rows(f))
        out[table] = {"rows": frame.height, "keys": keys, "polars_cpu_s": base_cpu,
                      "polars_wall_s": base_wall, "packed_cpu_s": cpu, "packed_wall_s": wall,
                      "cpu_ratio": round(base_cpu / max(cpu, 1e-9), 2),
                      "same_order": bool(np.array_equal(base, packed))}
        del frame, base, packed
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", type=Path)
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out = measure(args.book, shuffle=args.shuffle, seed=args.seed)
    for table, r in out.items():
        print(f"{table}: {r['rows']:,} rows by {', '.join(r['keys'])}: polars "
              f"{r['polars_cpu_s']} CPU s ({r['polars_wall_s']} s), packed keys "
              f"{r['packed_cpu_s']} CPU s ({r['packed_wall_s']} s): {r['cpu_ratio']}x; "
              f"same order: {r['same_order']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
