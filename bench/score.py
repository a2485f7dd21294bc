"""Benchmark: nightly scoring end to end (features, scores, SHAP, reasons, actions, store write).

    python -m bench.score --accounts 1000000 [--json PATH] [--train-accounts N]

Target (DESIGN section 11): 1M accounts in under 3 minutes on 2 cores. Steps:

1. train both models (quick LightGBM settings) on a small book (``--train-accounts``) and
   register them as champions in a throw-away MLflow store (not timed as scoring);
2. write the book to score (``--accounts``, ~50 invoices per account) as Parquet and read
   it back through validation, as ``delinq score DATA_DIR`` does (timed apart, not part
   of ``seconds``);
3. time :func:`serving.score_run.run_scoring` as of the day after the book's last event: load
   the champions, build features, score, explain (exact TreeSHAP), reason codes, actions,
   drift, and the atomic write to a throw-away SQLite store with its Parquet files.

The baseline, measured in the same run on ``--baseline-accounts`` rows: the explanation and
reason steps done the straightforward way (LightGBM ``pred_contrib`` and a per-account
Python loop that sorts SHAP values and formats sentences); the printed ratio compares
accounts per second of those two stages. Peak RSS is ``ru_maxrss`` (it includes the book
in memory). Other processes sharing the 2 cores inflate wall time; CPU seconds are printed
too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET_SECONDS = 180.0
NAMES = {"early_warning": "bench-early-warning", "persistence": "bench-persistence"}


def _rss_mb() -> float:
    """This process's own peak resident memory (MB): ``VmHWM`` of ``/proc/self/status``
    where there is one, else ``ru_maxrss``. Not ``ru_maxrss`` first: Linux carries it
    across ``exec``, so a child started by a process that had peaked (``bench.scaleout``'s
    mode children, after the parent's ingest: 10.7 GB) reported the parent's peak."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _train(accounts: int, tracking_uri: str, seed: int) -> float:
    """Register quick champions of both models; returns the seconds it took."""
    from features.pit.training_set import as_of_grid, build_training_set
    from features.synthetic import generate_book
    from models.registry import register
    from models.train import TrainConfig, train_models

    t0 = time.perf_counter()
    book = generate_book(accounts, seed=seed + 1)
    config = TrainConfig(n_estimators=300, early_stopping_rounds=30, val_weeks=8, test_weeks=8)
    training_set = build_training_set(book, as_of_dates=as_of_grid(book, freq="monthly"))
    register(train_models(training_set, config=config), tracking_uri=tracking_uri, names=NAMES)
    return time.perf_counter() - t0


def _naive_reasons(values: pd.DataFrame, phi: np.ndarray, names: list[str]) -> list[str]:
    """The straightforward way: per account, sort its SHAP row and format four sentences."""
    out = []
    for i in range(len(values)):
        row = phi[i]
        order = np.argsort(-row)
        risk = [names[j] for j in order[:3] if row[j] > 0]
        low = names[order[-1]] if row[order[-1]] < 0 else None
        texts = [f"{f} is {values.iloc[i][f]}" for f in risk]
        if low:
            texts.append(f"{low} is {values.iloc[i][low]}")
        out.append(json.dumps(texts))
    return out


def _baseline(book: Any, as_of: pd.Timestamp, tracking_uri: str, rows: int) -> dict:
    """Accounts/s of pred_contrib + per-row reasons on ``rows`` accounts of one model."""
    from features import build_features
    from serving.score_run import load_champions

    model = load_champions(tracking_uri=tracking_uri, model_names=NAMES)["early_warning"]
    feats = build_features(book, as_of=as_of.date()).head(rows)
    x = model.matrix(feats)
    t0 = time.perf_counter()
    phi = np.asarray(model.booster.predict(x, pred_contrib=True))[:, :-1]
    t1 = time.perf_counter()
    _naive_reasons(x, phi, model.feature_names)
    t2 = time.perf_counter()
    n = len(x)
    return {"rows": n, "pred_contrib_s": round(t1 - t0, 3), "naive_reasons_s": round(t2 - t1, 3),
            "rows_per_s": round(n / (t2 - t0), 1)}


def run(
    accounts: int = 100_000,
    json_path: str | None = None,
    *,
    seed: int = 0,
    train_accounts: int = 3_000,
    baseline_accounts: int = 5_000,
) -> dict:
    """Run the benchmark; returns (and optionally writes as JSON) the figures."""
    from features.contract.validation import validate_folder
    from features.synthetic import write_book_folder
    from serving.score_run import run_scoring

    tmp = Path(tempfile.mkdtemp(prefix="delinq-bench-score-"))
    try:
        tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        train_s = _train(train_accounts, tracking_uri, seed)
        gc.collect()
        # The book goes through files, as a nightly run reads it: the chunked writer and the
        # table-by-table validation keep the peak far below an in-memory generation.
        t0 = time.perf_counter()
        write_book_folder(accounts, tmp / "book", seed=seed)
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        book = validate_folder(tmp / "book", quarantine_dir=tmp / "quarantine").book
        load_s = time.perf_counter() - t0
        shutil.rmtree(tmp / "book", ignore_errors=True)
        as_of = pd.Timestamp(book.last_date) + pd.Timedelta(days=1)
        rss_before = _rss_mb()
        cpu0, t0 = _cpu_s(), time.perf_counter()
        record = run_scoring(
            book,
            as_of=as_of.date(),
            tracking_uri=tracking_uri,
            store_url=f"sqlite:///{tmp / 'worklist.db'}",
            export_dir=tmp / "exports",
            model_names=NAMES,
        )
        seconds = time.perf_counter() - t0
        cpu = _cpu_s() - cpu0
        peak = _rss_mb()
        ours_stage = sum(record.timings.get(k, 0.0) for k in ("explain", "reasons"))
        base = _baseline(book, as_of, tracking_uri, min(baseline_accounts, accounts))
        ours_rate = (record.n_scored or 0) / ours_stage if ours_stage else float("nan")
        result = {
            "accounts": accounts,
            "invoices": len(book.invoices),
            "scored": record.n_scored,
            "n_by_segment": record.n_by_segment,
            "as_of": as_of.date().isoformat(),
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(peak, 1),
            "rss_before_scoring_mb": round(rss_before, 1),
            "stages_s": {k: round(float(v), 3) for k, v in record.timings.items()},
            "stages_cpu_s": {k: round(float(v), 3)
                             for k, v in record.meta.get("cpu_timings", {}).items()},
            "explain_reasons_rows_per_s": round(ours_rate, 1),
            "baseline": base,
            "speedup_explain_reasons": round(ours_rate / base["rows_per_s"], 1),
            "target_seconds_1m": TARGET_SECONDS,
            "generate_s": round(generate_s, 3),
            "load_and_validate_s": round(load_s, 3),
            "train_s": round(train_s, 3),
            "train_accounts": train_accounts,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-accounts", type=int, default=3_000)
    parser.add_argument("--baseline-accounts", type=int, default=5_000)
    args = parser.parse_args(argv)
    r = run(args.accounts, args.json_path, seed=args.seed, train_accounts=args.train_accounts,
            baseline_accounts=args.baseline_accounts)
    print(f"scored {r['scored']:,} of {r['accounts']:,} accounts ({r['invoices']:,} invoices) "
          f"as of {r['as_of']}")
    print(f"end to end: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (target for 1M: < {TARGET_SECONDS:.0f} s)")
    print("stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items()))
    print("stages (CPU s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_cpu_s"].items()))
    b = r["baseline"]
    print(f"explain+reasons: {r['explain_reasons_rows_per_s']:,.0f} accounts/s vs baseline "
          f"(pred_contrib + per-row loop, {b['rows']:,} rows) {b['rows_per_s']:,.0f}/s: "
          f"{r['speedup_explain_reasons']:.1f}x")


if __name__ == "__main__":
    main()
