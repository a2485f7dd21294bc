"""Benchmark: the weekly retrain's stages on a synthetic book (issue 11, item 4).

``python -m bench.retrain --accounts 100000 --json out.json``
generates a synthetic book (``bench.features._generate``: the contract columns the
features read; with ``--loop`` also the promises and contacts ``delinq generate`` writes,
whose loop features ``delinq train`` computes), then runs the retrain's stages as
``delinq train`` times them (``models.stages.StageBudget``: wall seconds, CPU seconds,
sampled peak RSS and the process high-water mark per stage, printed as a table):

- ``labels``, ``sampling``, ``features``: labels of every (account, ``as_of``) of the
  weekly grid, the sample (``models.train.TrainConfig().sampling()``, the product's
  default budgets: the training period's, or ``--max-rows``, and the validation and test
  periods'), features of the kept rows, streamed to Parquet
  (``features.pit.training_set.write_training_set``);
- ``read``: the Parquet file back (``pipelines.steps.read_training_set``);
- ``split``, ``early_warning``, ``persistence``, ``calibration``, ``baselines``: the time
  split, each model's LightGBM fit (with its drift reference and test scores), the
  calibration and the baselines with the metrics (``models.train.train_models``);
- ``gate``: the quality gate's account bootstrap on each test period;
- ``mlflow``: MLflow logging and registration (SQLite in a temporary folder);
- ``period_spread``: each model's out-of-time refits (``models.live_period``), the last
  stage of ``delinq train``.

The same stages run first, in the same process, on a *baseline*: a book of
``--baseline-accounts`` accounts (default 3,000) trained in full (sampling off), the
full-stack method of earlier releases (it does not fit in memory beyond ~100k accounts:
19 GB there). The ratio printed is the sampled run's wall seconds per account over the
baseline's: below 1 means the sampled run costs less per account than the full method
does on a small book.

The acceptance figures are ``delinq train``'s own (a quiet machine)::

    delinq generate --accounts 300000 --seed 3 --out book && /usr/bin/time -v delinq train book
    delinq generate --accounts 1000000 --seed 3 --out book && /usr/bin/time -v delinq train book

(``delinq train`` prints the same stage table); this benchmark is the same pipeline without
the CLI, for profiling: ``python -m bench.retrain --accounts 1000000``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.features import _generate


def retrain(accounts: int, *, seed: int, sampled: bool, max_rows: int | None,
            folder: Path, loop: bool = False) -> dict[str, Any]:
    """Run the stages on a book of ``accounts`` accounts; the figures as a dict."""
    from features.pit.training_set import as_of_grid, write_training_set
    from models.gate import judge_all
    from models.live_period import period_spread
    from models.registry import default_tracking_uri, register
    from models.stages import StageBudget
    from models.train import TrainConfig, TrainingResult, train_models
    from pipelines.steps import read_training_set

    config = TrainConfig(seed=seed)
    if max_rows is not None:
        config = TrainConfig(seed=seed, sample_max_rows=max_rows)
    sampling = config.sampling() if sampled else None
    label = "sampled" if sampled else "full (sampling off)"
    print(f"{accounts:,} accounts, {label}", flush=True)
    t0 = time.perf_counter()
    held = {"book": _generate(accounts, seed, loop=loop)}  # popped by the stage that uses it last
    gen_seconds = time.perf_counter() - t0
    dates = as_of_grid(held["book"], freq="weekly")
    n_invoices = len(held["book"].invoices)
    path = folder / f"training_set_{accounts}_{int(sampled)}.parquet"
    budget = StageBudget()
    with budget:
        stats = write_training_set(held.pop("book"), path, as_of_dates=dates,
                                   sampling=sampling, stages=budget.stage)
        with budget.stage("read"):
            frame = read_training_set(path)
        results = train_models(frame, config=config, stages=budget.stage)
        trained = {k: r for k, r in results.items() if isinstance(r, TrainingResult)}
        with budget.stage("gate"):
            gates = judge_all(trained)
        uri = default_tracking_uri(folder / f"mlflow_{accounts}_{int(sampled)}")
        names = {k: f"bench-{k}-{accounts}-{int(sampled)}" for k in trained}
        with budget.stage("mlflow"):
            register(trained, tracking_uri=uri, names=names)
        with budget.stage("period_spread"):  # as delinq train: the live check's refits
            for r in trained.values():
                period_spread(frame, r, config=config)
        del frame
    for line in budget.lines():
        print(f"  {line}", flush=True)
    stages = budget.as_dict()
    total = sum(s["seconds"] for s in stages.values())
    cpu = sum(s["cpu_seconds"] for s in stages.values())
    return {
        "accounts": accounts,
        "loop": loop,
        "invoices": n_invoices,
        "as_of_dates": len(dates),
        "sampled": sampled,
        "rates": {k: list(v) for k, v in stats.rates.items()},
        "holdout": None if stats.holdout is None else [str(d.date()) for d in stats.holdout],
        "holdout_rates": {k: list(v) for k, v in stats.holdout_rates.items()},
        "labelled_rows": stats.labelled_rows,
        "kept_rows": stats.rows,
        "generate_seconds": round(gen_seconds, 2),
        "stages": stages,
        "seconds": round(total, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(max(s["rss_peak_mb"] for s in stages.values()), 1),
        "seconds_per_1k_accounts": round(1000 * total / accounts, 3),
        "metrics": {k: {m: round(float(r.metrics.loc["lightgbm", m]), 4)
                        for m in ("roc_auc", "capture@10")}
                    for k, r in trained.items()},
        "aging_rule_capture@10": {k: round(float(r.metrics.loc["aging_rule", "capture@10"]), 4)
                                  for k, r in trained.items()},
        "gate": {k: g.passed for k, g in gates.items()},
        "failed": {k: r.error for k, r in results.items() if not isinstance(r, TrainingResult)},
    }


def run(accounts: int = 100_000, *, baseline_accounts: int = 3_000, seed: int = 3,
        max_rows: int | None = None, json_path: str | Path | None = None,
        loop: bool = False) -> dict[str, Any]:
    """Run the baseline and the sampled retrain, print the figures, write JSON if asked."""
    from features.pit.sampling import Sampling
    from features.pit.training_set import as_of_grid, write_training_set

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_retrain_") as tmp:
        folder = Path(tmp)
        # numba's compilation (or its disk cache's load) is not part of either run
        t0 = time.perf_counter()
        tiny = _generate(50, seed)
        for sampling in (None, Sampling(negative_rate=0.5)):
            write_training_set(tiny, folder / "warmup.parquet",
                               as_of_dates=as_of_grid(tiny)[:2], sampling=sampling)
        compile_seconds = time.perf_counter() - t0
        base = retrain(baseline_accounts, seed=seed, sampled=False, max_rows=None,
                       folder=folder, loop=loop) if baseline_accounts else None
        main = retrain(accounts, seed=seed, sampled=True, max_rows=max_rows, folder=folder,
                       loop=loop)
    result: dict[str, Any] = {
        "run": main,
        "baseline": base,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_1m_at_start": round(load, 2),
        "compile_seconds": round(compile_seconds, 2),
        "cpu_count": os.cpu_count(),
    }
    if base is not None:
        result["ratio_seconds_per_account"] = round(
            main["seconds_per_1k_accounts"] / base["seconds_per_1k_accounts"], 3)
    print(json.dumps(result, indent=2))
    print(f"retrain of {accounts:,} accounts: {main['seconds']:.1f} s wall "
          f"(stages), peak RSS {result['peak_rss_mb']:,.0f} MB; "
          + (f"{result['ratio_seconds_per_account']:.3f}x the full method's seconds per "
             f"account at {baseline_accounts:,} accounts" if base is not None else ""))
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--baseline-accounts", type=int, default=3_000,
                        help="book trained in full for the ratio (0: none)")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="sample budget per model (default: TrainConfig's)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--loop", action="store_true",
                        help="books with promises and contacts, as delinq generate writes "
                             "(the loop features are then part of the features stage)")
    args = parser.parse_args(argv)
    run(args.accounts, baseline_accounts=args.baseline_accounts, seed=args.seed,
        max_rows=args.max_rows, json_path=args.json_path, loop=args.loop)


if __name__ == "__main__":
    main()
