"""The nightly score's partitions as Prefect tasks on a Dask cluster (issue 20).

:func:`partition_runner` gives :func:`pipelines.steps_partitioned.score_partitioned` its
``run_parts``: with ``settings.partitions`` 1 it is None (one process, no cluster: the
steps' own loop); above 1 it runs the sub-flow ``score-partitions``, whose task runner is
``prefect_dask.DaskTaskRunner`` on the scheduler at ``settings.dask_scheduler``, else on a
``distributed.LocalCluster`` of worker processes (one thread each: LightGBM, numba and
Polars are not shared across tasks). Tasks get the plan (locations) and a partition
number and return the location of the partition's output: never frames.

A task whose worker dies is run again by Dask on another worker, and Prefect retries a
failed one: both are safe, since a partition's output files are written under temporary
names and renamed into place (the same inputs give the same files).

Before the cluster starts, :func:`share_prefect_api` exports the Prefect API URL of this
process (``PREFECT_API_URL``) so that local workers talk to the same server instead of each
starting a temporary one, and :func:`warm_numba` compiles the TreeSHAP and feature kernels
into numba's on-disk cache once, so workers load them instead of compiling each.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines.settings import Settings
from pipelines.steps_partitioned import PartitionPlan, score_one_partition


@task(name="score-partition", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def score_partition_task(plan: dict[str, Any], index: int) -> str:
    """:func:`pipelines.steps_partitioned.score_one_partition` of partition ``index``."""
    return score_one_partition(PartitionPlan(**plan), index)


@flow(name="score-partitions")
def score_partitions_flow(plan: dict[str, Any]) -> list[str]:
    """Score every partition of ``plan`` (a task each, on the flow's task runner); the
    partitions' output locations, partition 0 first."""
    futures = [score_partition_task.submit(plan, i) for i in range(len(plan["books"]))]
    return [f.result() for f in futures]


def dask_task_runner(settings: Settings) -> Any:
    """The ``DaskTaskRunner`` of the settings: the existing scheduler at
    ``dask_scheduler``, else a local cluster of ``min(partitions, CPUs)`` worker
    processes with a dashboard on a free port."""
    from prefect_dask import DaskTaskRunner

    if settings.dask_scheduler:
        return DaskTaskRunner(address=settings.dask_scheduler)
    workers = max(1, min(int(settings.partitions), os.cpu_count() or 1))
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": ":0"})


def share_prefect_api() -> None:
    """Export this process's Prefect API URL (a temporary server's too) as
    ``PREFECT_API_URL`` for the worker processes started after it."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        # no API URL set: this process runs Prefect's temporary server (a CLI job)
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        url = server.api_url if server.running else None
    if url and not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = str(url)


def warm_numba(plan: PartitionPlan) -> None:
    """Compile the numba kernels (features, TreeSHAP) into their on-disk cache before
    workers start, by scoring a tiny synthetic book with the run's scorers here (a worker
    on another machine with its own cache compiles once, on its first partition)."""
    from dataclasses import replace

    from features.synthetic import generate_book
    from serving.partitioned import load_scorers, score_partition

    scorers = replace(load_scorers(plan.scorers), events=None)
    tiny = generate_book(20, seed=0, start=plan.first_date, end=plan.as_of)
    score_partition(tiny, as_of=plan.as_of, scorers=scorers, history_start=plan.first_date)


def partition_runner(settings: Settings) -> Any:
    """``run_parts`` for :func:`~pipelines.steps_partitioned.score_partitioned`: None
    (the steps' in-process loop) when ``settings.partitions`` is 1, else a function that
    runs :func:`score_partitions_flow` on :func:`dask_task_runner`."""
    if int(settings.partitions) == 1:
        return None

    def run(plan: PartitionPlan) -> list[str]:
        share_prefect_api()
        warm_numba(plan)
        runner = score_partitions_flow.with_options(task_runner=dask_task_runner(settings))
        return list(runner(asdict(plan)))

    return run
