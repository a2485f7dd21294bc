"""Benchmark: the nightly score single-process vs in account partitions on Dask (issue 20).

    python -m bench.scaleout --accounts 100000 [--partitions 4] [--workers 2]
        [--mode both|single|partitioned] [--scheduler tcp://host:8786]
        [--work-location URL] [--json PATH]

Per-account cost (wall and CPU microseconds per account) and peak memory of the nightly's
scoring step (the staged book, validated once before, scored as of the day after its last
event and published in a throw-away store):

- **single**: ``pipelines.steps.score`` with ``partitions = 1``, in one process;
- **partitioned**: the same step with ``partitions = P`` through the flows' Prefect
  sub-flow on ``DaskTaskRunner`` pointed at a scheduler: a LocalCluster of ``--workers``
  worker processes (one thread each) started by the benchmark, or the existing scheduler
  at ``--scheduler`` (its workers' CPU counts then include whatever else they ran).

Each mode runs in its own child process so that its peak RSS (``VmHWM``,
``bench.score._rss_mb``) is its own; for the partitioned mode the driver's peak and each
worker's peak are reported (a worker's peak is the largest partition it scored). CPU seconds
of the partitioned mode add the driver's and the workers'. Models: quick champions trained
on a small book (``--train-accounts``), not timed. The book is written by ``delinq
generate``'s writer and staged by ``delinq validate``'s ingest (timed apart).

The ratio printed is partitioned / single per-account wall cost; run it with the
single-process mode at 1M and the partitioned mode at 5M to get the issue's figure
(README "Scaling out").

``--no-validate``: the generated book (error-free by construction: error rate 0) is scored
as the staged book, without ``ingest``. For a book whose validation does not fit in memory
(validation holds the whole book: ~10 GB at 1M accounts, so 5M does not fit in 24 GB; the
streamed book-wide pass that would is issue 20's next step). Its tables differ from a
staged book's in their physical form only (ids as plain strings, the generator's row
order); the scores do not depend on either.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.score import NAMES, _cpu_s, _rss_mb  # one definition for both benchmarks


def _settings(root: Path, partitions: int, scheduler: str | None,
              work: str | None) -> Any:
    from pipelines.settings import load_settings

    return load_settings(data_dir=root / f"state-{partitions}", partitions=partitions,
                         mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                         early_warning_model=NAMES["early_warning"],
                         persistence_model=NAMES["persistence"],
                         dask_scheduler=scheduler, work_location=work,
                         min_free_disk_mb=0)


def _child(root: Path, partitions: int, scheduler: str | None, work: str | None,
           workers: int) -> dict[str, Any]:
    """One mode, in this (child) process: score the staged book at ``root``. The
    partitioned mode runs on the scheduler given, else on a LocalCluster started here (so
    its workers can be asked their peak RSS and CPU seconds afterwards)."""
    from features.partition import book_dates
    from pipelines import steps

    staged = root / "staged"
    as_of = (book_dates(staged)[1] + timedelta(days=1)).date()
    run_parts, server, cluster, stats = None, None, None, []
    if partitions > 1:
        from distributed import Client, LocalCluster
        from prefect.server.api.server import SubprocessASGIServer

        from pipelines.partitioned import partition_runner

        # one Prefect server for the driver and every worker, started before the cluster
        server = SubprocessASGIServer()
        server.start(timeout=180)
        os.environ["PREFECT_API_URL"] = server.api_url
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            scheduler = cluster.scheduler_address
    settings = _settings(root, partitions, scheduler, work)
    if partitions > 1:
        run_parts = partition_runner(settings)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    summary = steps.score(settings=settings, book=staged, as_of=as_of, run_parts=run_parts)
    seconds = time.perf_counter() - t0
    if partitions > 1:
        with Client(scheduler) as client:
            stats = list(client.run(_worker_stats).values())
    out = {"partitions": partitions, "scored": summary.n_scored, "seconds": seconds,
           "driver_cpu_s": _cpu_s() - cpu0, "driver_peak_rss_mb": _rss_mb(),
           "workers": stats}
    if cluster is not None:
        cluster.close()
    if server is not None:
        server.stop()
    return out


def _worker_stats() -> dict[str, float]:
    """On a Dask worker: its process's peak RSS (MB) and CPU seconds."""
    return {"peak_rss_mb": _rss_mb(), "cpu_s": _cpu_s()}


def _prepare(root: Path, accounts: int, train_accounts: int, seed: int,
             validate: bool = True) -> dict[str, Any]:
    """Quick champions, the book's folder and its staged (validated) copy; with
    ``validate`` False the generated book itself is the staged book (see the module)."""
    from bench.score import _train
    from pipelines import steps

    train_s = _train(train_accounts, f"sqlite:///{root / 'mlflow.db'}", seed)
    settings = _settings(root, 1, None, None)
    t0 = time.perf_counter()
    done = steps.generate(settings=settings, out=root / "book", accounts=accounts)
    generate_s = time.perf_counter() - t0
    if not validate:
        (root / "book").rename(root / "staged")
        return {"train_s": train_s, "generate_s": generate_s, "ingest_s": None,
                "invoices": int(done.rows["invoices"]), "ingest_peak_rss_mb": _rss_mb(),
                "staged": "generated book, not validated"}
    t0 = time.perf_counter()
    staged = steps.ingest(settings=settings, source=root / "book")
    ingest_s = time.perf_counter() - t0
    shutil.rmtree(root / "book", ignore_errors=True)
    shutil.move(str(staged.staged), root / "staged")
    return {"train_s": train_s, "generate_s": generate_s, "ingest_s": ingest_s,
            "invoices": staged.invoices, "ingest_peak_rss_mb": _rss_mb(),
            "staged": "ingest"}


def _run_child(root: Path, partitions: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.scaleout", "--child", str(root),
           "--partitions", str(partitions), "--workers", str(args.workers)]
    if args.scheduler and partitions > 1:
        cmd += ["--scheduler", args.scheduler]
    if args.work_location:
        cmd += ["--work-location", args.work_location]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _per_account(r: dict[str, Any], accounts: int) -> dict[str, Any]:
    cpu = r["driver_cpu_s"] + sum(w["cpu_s"] for w in r["workers"])
    worker_peak = max((w["peak_rss_mb"] for w in r["workers"]), default=0.0)
    return {**r, "cpu_s": round(cpu, 3), "seconds": round(r["seconds"], 3),
            "us_per_account": round(r["seconds"] / accounts * 1e6, 2),
            "cpu_us_per_account": round(cpu / accounts * 1e6, 2),
            "max_worker_peak_rss_mb": round(worker_peak, 1),
            "sum_worker_peak_rss_mb": round(sum(w["peak_rss_mb"] for w in r["workers"]), 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare once, run the modes asked for, return (and write as JSON) the figures."""
    root = Path(tempfile.mkdtemp(prefix="delinq-bench-scaleout-"))
    try:
        result: dict[str, Any] = {"accounts": args.accounts, "cpus": os.cpu_count(),
                                  **_prepare(root, args.accounts, args.train_accounts,
                                             args.seed, validate=not args.no_validate)}
        if args.mode in ("both", "single"):
            result["single"] = _per_account(_run_child(root, 1, args), args.accounts)
        if args.mode in ("both", "partitioned"):
            result["partitioned"] = _per_account(_run_child(root, args.partitions, args),
                                                 args.accounts)
        if "single" in result and "partitioned" in result:
            result["ratio_partitioned_to_single"] = round(
                result["partitioned"]["us_per_account"] / result["single"]["us_per_account"], 3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=["both", "single", "partitioned"], default="both")
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--work-location", default=None)
    parser.add_argument("--train-accounts", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--no-validate", action="store_true",
                        help="score the generated book as staged, without ingest (a book "
                             "whose validation does not fit in memory)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        r = _child(Path(args.child), args.partitions, args.scheduler, args.work_location,
                   args.workers)
        print(json.dumps(r))
        return
    r = run(args)
    ingest = "not validated" if r["ingest_s"] is None else f"ingest {r['ingest_s']:.1f} s"
    print(f"{r['accounts']:,} accounts, {r['invoices']:,} invoices "
          f"(generate {r['generate_s']:.1f} s, {ingest})")
    for mode in ("single", "partitioned"):
        if mode in r:
            m = r[mode]
            print(f"{mode} (P={m['partitions']}): {m['seconds']:.1f} s wall, "
                  f"{m['us_per_account']:.1f} us/account wall, {m['cpu_us_per_account']:.1f} "
                  f"us/account CPU; peak RSS driver {m['driver_peak_rss_mb']:.0f} MB, worker "
                  f"max {m['max_worker_peak_rss_mb']:.0f} MB (sum "
                  f"{m['sum_worker_peak_rss_mb']:.0f} MB)")
    if "ratio_partitioned_to_single" in r:
        print(f"per-account cost partitioned / single: {r['ratio_partitioned_to_single']:.2f}")


if __name__ == "__main__":
    main()
