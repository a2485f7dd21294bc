"""Benchmark: point-in-time features for one ``as_of`` (DESIGN section 11).

``python -m bench.features --accounts 100000 --json out.json``
generates a synthetic book (``features.synthetic``, keeping the contract columns the
features read), times
``features.build_features`` for one ``as_of`` two weeks before the end of the book, tracks
peak memory, and times the pandas reference (``bench/reference_features.py``) in the same
run: on the whole book when it has at most ``reference_max_accounts`` accounts, otherwise on
the first ``reference_max_accounts`` accounts (``reference_accounts`` in the JSON), in which
case ``speedup`` compares time per account. Numba compilation happens in a warm-up on a tiny
book and is reported separately (``compile_seconds``; cached on disk after the first run).
Optionally (``--training-weeks 52``) times a weekly training set over the same book.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.book import Book


def _rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


class _PeakRss:
    """Samples this process's RSS every 10 ms while active (peak of one phase)."""

    def __enter__(self) -> _PeakRss:
        self.start = _rss_mb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def slice_accounts(book: Book, n: int) -> Book:
    """The sub-book of the first ``n`` accounts (sorted ids) with all their events."""
    ids = pd.Series(book.accounts["account_id"].sort_values().iloc[:n].to_numpy(), dtype="str")
    keep_ids = pa.array(ids)
    inv = book.invoices[pc.is_in(pa.array(book.invoices["account_id"]),
                                 value_set=keep_ids).to_numpy(zero_copy_only=False)]
    inv_ids = pa.array(inv["invoice_id"])

    def children(frame: pd.DataFrame) -> pd.DataFrame:
        mask = pc.is_in(pa.array(frame["invoice_id"]), value_set=inv_ids)
        return frame[mask.to_numpy(zero_copy_only=False)].reset_index(drop=True)

    acc = book.accounts[pc.is_in(pa.array(book.accounts["account_id"]),
                                 value_set=keep_ids).to_numpy(zero_copy_only=False)]
    return Book(invoices=inv.reset_index(drop=True), payments=children(book.payments),
                accounts=acc.reset_index(drop=True), disputes=children(book.disputes))


#: The contract columns the features and labels read; the benchmark book keeps only these
#: so a 1M-account book (~50M invoices) fits beside the measurement.
_LEAN = {
    "invoices": ["invoice_id", "account_id", "issue_date", "due_date", "amount"],
    "payments": ["invoice_id", "payment_date", "amount"],
    "accounts": ["account_id", "segment", "region", "credit_limit", "created_date"],
    "disputes": ["invoice_id", "opened_date", "resolved_date"],
}


def _generate(accounts: int, seed: int, *, loop: bool = False) -> Book:
    """``features.synthetic.generate_book`` restricted, chunk by chunk, to the columns the
    features use (same rows and values; the unused text columns would double memory).
    ``loop``: with the collections loop's promises and contacts (as ``delinq generate``
    writes them: ``delinq train`` then computes the loop features too)."""
    import pyarrow as pa

    from features.synthetic import generator as synthetic

    start, end = synthetic._day("2023-01-01"), synthetic._day("2024-12-31")
    parts: dict[str, list[pa.Table]] = {t: [] for t in _LEAN}
    if loop:
        parts |= {"promises": [], "contacts": []}
    for tables, _info in synthetic._chunks(accounts, seed, start, end, text=False, loop=loop):
        for name, tbl in tables.items():
            parts[name].append(tbl.select(_LEAN[name]) if name in _LEAN else tbl)
    frames = {}
    for name in list(parts):
        table = pa.concat_tables(parts.pop(name))
        df = table.to_pandas(split_blocks=True, self_destruct=True)
        del table
        for col in df.columns:
            if col.endswith("_date"):
                df[col] = df[col].astype("datetime64[s]")
        frames[name] = df
    return Book(**frames)


def run(accounts: int = 100_000, json_path: str | Path | None = None,
        reference_max_accounts: int = 100_000, training_weeks: int = 0,
        seed: int = 0) -> dict[str, Any]:
    """Run the benchmark, print the figures, write JSON when ``json_path`` is given."""
    from bench.reference_features import reference_features
    from features import build_features, build_training_set

    t0 = time.perf_counter()
    build_features(_generate(50, seed), as_of=pd.Timestamp("2024-06-01"))
    compile_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    book = _generate(accounts, seed)
    gen_seconds = time.perf_counter() - t0
    as_of = book.last_date.normalize() - pd.Timedelta(days=14)

    load = os.getloadavg()[0]
    with _PeakRss() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        feats = build_features(book, as_of=as_of)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    result: dict[str, Any] = {
        "accounts": accounts,
        "invoices": len(book.invoices),
        "payments": len(book.payments),
        "disputes": len(book.disputes),
        "as_of": str(as_of.date()),
        "scored_accounts": len(feats),
        "n_features": feats.shape[1] - 3,
        "seconds": round(seconds, 3),
        # CPU seconds of all threads: robust to other load on a shared machine (wall time
        # on an idle 2-core machine lies between cpu_seconds / 2 and cpu_seconds)
        "cpu_seconds": round(cpu, 3),
        "load_average_1m_at_start": round(load, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "rss_before_mb": round(mem.start, 1),
        "build_features_rss_increment_mb": round(mem.peak - mem.start, 1),
        "generate_seconds": round(gen_seconds, 2),
        "compile_seconds": round(compile_seconds, 2),
        "cpu_count": os.cpu_count(),
    }
    del feats

    ref_accounts = min(accounts, reference_max_accounts)
    if ref_accounts > 0:
        ref_book = book if ref_accounts == accounts else slice_accounts(book, ref_accounts)
        t0, c0 = time.perf_counter(), time.process_time()
        reference_features(ref_book, as_of=as_of)
        ref_seconds, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        build_features(ref_book, as_of=as_of)
        same_slice, same_cpu = time.perf_counter() - t0, time.process_time() - c0
        result.update({
            "reference_accounts": ref_accounts,
            "reference_invoices": len(ref_book.invoices),
            "reference_seconds": round(ref_seconds, 3),
            "reference_is_slice": ref_accounts < accounts,
            "seconds_on_reference_book": round(same_slice, 3),
            # time per account, so a slice compares like with like
            "speedup": round((ref_seconds / ref_accounts) / (seconds / accounts), 2),
            "speedup_same_book": round(ref_seconds / same_slice, 2),
            "speedup_same_book_cpu": round(ref_cpu / same_cpu, 2),
            "reference_cpu_seconds": round(ref_cpu, 3),
            "speedup_cpu": round((ref_cpu / ref_accounts) / (cpu / accounts), 2),
        })
        del ref_book

    if training_weeks:
        end = as_of + pd.Timedelta(days=14)
        dates = [end - pd.Timedelta(weeks=k) for k in range(training_weeks, 0, -1)]
        t0, c0 = time.perf_counter(), time.process_time()
        ts = build_training_set(book, as_of_dates=dates)
        result.update({"training_weeks": training_weeks,
                       "training_rows": len(ts),
                       "training_seconds": round(time.perf_counter() - t0, 2),
                       "training_cpu_seconds": round(time.process_time() - c0, 2)})

    print(json.dumps(result, indent=2))
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--reference-max-accounts", type=int, default=100_000)
    parser.add_argument("--training-weeks", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(accounts=args.accounts, json_path=args.json_path,
        reference_max_accounts=args.reference_max_accounts,
        training_weeks=args.training_weeks, seed=args.seed)


if __name__ == "__main__":
    main()
