"""The stage budget of a long job (issue 11, item 3): wall seconds, CPU seconds and peak
memory per named stage, for the retrain's printout, its log and its MLflow runs.

:class:`StageBudget` times named stages (``with budget.stage("features"): ...``). A stage
entered several times (the features of each ``as_of`` date) accumulates: seconds add up,
peaks take the maximum. Memory is the process's resident set (RSS):

- ``rss_peak_mb``: the highest RSS sampled while the stage ran (a background thread reads
  it every :data:`SAMPLE_SECONDS` while the budget is open, plus a reading at each entry
  and exit), so a stage that allocates and frees between samples may read a little low;
- ``process_peak_mb``: the process's high-water mark at the stage's end
  (``resource.getrusage``'s ``ru_maxrss``: exact, but never lower than any earlier stage's).

CPU seconds are the whole process's (all threads), kept beside wall seconds because wall
time on a shared machine says more about the neighbours than about the code.

Library code receives a budget's :meth:`StageBudget.stage` as a plain hook (``stages``,
a ``features.pit.training_set.StageHook``), so ``features`` needs no import of this
module; no hook means no timing. Nothing here reads the calendar clock.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

#: Seconds between two RSS samples while a budget is open.
SAMPLE_SECONDS: Final = 0.05
#: The retrain's stages, in order (none nests in another; each model's fit is named by
#: the model kind): their seconds add up to the retrain's.
TOP_LEVEL: Final = ("validation", "read", "labels", "sampling", "features", "split",
                    "early_warning", "persistence", "calibration", "baselines", "gate",
                    "mlflow", "period_spread", "offline_rows")
#: MLflow artifact name of the stage table on a training run.
ARTIFACT: Final = "stage_budget.txt"


def _rss_mb() -> float:
    """Current resident set of this process (MB), from ``/proc`` (psutil elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def process_peak_mb() -> float:
    """The process's RSS high-water mark so far (MB; ``ru_maxrss`` is KB on Linux, bytes
    on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass
class StageFigures:
    """One stage's figures: ``seconds`` (wall), ``cpu_seconds`` (all threads),
    ``rss_peak_mb`` (sampled), ``process_peak_mb`` (high-water mark at its end), ``calls``
    (times entered)."""

    name: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    rss_peak_mb: float = 0.0
    process_peak_mb: float = 0.0
    calls: int = 0

    def line(self) -> str:
        """One fixed-width line of the printed table."""
        return (f"{self.name:<16} {self.seconds:9.1f} s wall {self.cpu_seconds:9.1f} s cpu "
                f"  peak RSS {self.rss_peak_mb:8,.0f} MB (process {self.process_peak_mb:,.0f}"
                " MB)")


class StageBudget:
    """Per-stage wall and CPU seconds and peak RSS (module docstring), in first-entry
    order. Use as a context manager to sample RSS in the background while it is open;
    without it, stages still record their entry and exit readings."""

    def __init__(self, *, sample_seconds: float = SAMPLE_SECONDS) -> None:
        self._sample = sample_seconds
        self._figures: dict[str, StageFigures] = {}
        self._active: list[StageFigures] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._depth = 0

    def __enter__(self) -> StageBudget:
        self._depth += 1  # re-entrant: the sampler runs while the outermost is open
        if self._depth == 1:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="stage-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._sample):
            self._observe(_rss_mb())

    def _observe(self, rss: float) -> None:
        with self._lock:
            for fig in self._active:
                fig.rss_peak_mb = max(fig.rss_peak_mb, rss)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (accumulating over repeated entries)."""
        with self._lock:
            fig = self._figures.setdefault(name, StageFigures(name))
            fig.calls += 1
            self._active.append(fig)
        self._observe(_rss_mb())
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            self._observe(_rss_mb())
            with self._lock:
                fig.seconds += wall
                fig.cpu_seconds += cpu
                fig.process_peak_mb = max(fig.process_peak_mb, process_peak_mb())
                self._active.remove(fig)

    @property
    def figures(self) -> list[StageFigures]:
        """The stages recorded so far, in the order first entered."""
        with self._lock:
            return [StageFigures(**vars(f)) for f in self._figures.values()]

    def lines(self) -> list[str]:
        """The stage table, one line per stage (printed and logged)."""
        return [f.line() for f in self.figures]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{stage: {seconds, cpu_seconds, rss_peak_mb, process_peak_mb, calls}}``
        (rounded; JSON-ready)."""
        return {f.name: {"seconds": round(f.seconds, 3), "cpu_seconds": round(f.cpu_seconds, 3),
                         "rss_peak_mb": round(f.rss_peak_mb, 1),
                         "process_peak_mb": round(f.process_peak_mb, 1), "calls": f.calls}
                for f in self.figures}

    def metrics(self) -> dict[str, float]:
        """MLflow metrics: ``stage.<name>.<figure>`` (seconds, cpu_seconds, rss_peak_mb,
        process_peak_mb)."""
        return {f"stage.{name}.{k}": float(v) for name, figs in self.as_dict().items()
                for k, v in figs.items() if k != "calls"}


def title_line(budget: StageBudget) -> str:
    """The stage table's title: wall and CPU seconds summed over the :data:`TOP_LEVEL`
    stages recorded (every stage of the retrain, the last included), the process's peak."""
    top = [f for f in budget.figures if f.name in TOP_LEVEL]
    total, cpu = sum(f.seconds for f in top), sum(f.cpu_seconds for f in top)
    return (f"  stages ({total:.1f} s wall, {cpu:.1f} s cpu; peak RSS "
            f"{process_peak_mb():,.0f} MB):")


def report_stages(budget: StageBudget, *, tracking_uri: str,
                  run_ids: Mapping[str, str | None], emit: Callable[[str], None]) -> None:
    """Emit the stage table (one ``emit`` call per line, after :func:`title_line`) and log
    it on the MLflow runs of ``run_ids`` (:func:`log_stage_budget`)."""
    emit(title_line(budget))
    for line in budget.lines():
        emit(f"    {line}")
    log_stage_budget(budget, tracking_uri=tracking_uri, run_ids=run_ids)


def log_stage_budget(budget: StageBudget, *, tracking_uri: str,
                     run_ids: Mapping[str, str | None]) -> None:
    """Log ``budget`` on each MLflow run of ``run_ids`` (model -> run id): its
    :meth:`StageBudget.metrics` and the table as the artifact :data:`ARTIFACT`. The
    stages are the whole retrain's, shared by its runs (one training serves both models).
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from models.registry import quiet_mlflow

    stamp = int(time.time() * 1000)  # MLflow's own record time, not a data date
    metrics = [Metric(k, v, stamp, 0) for k, v in budget.metrics().items()]
    table = "\n".join(budget.lines()) + "\n"
    with quiet_mlflow():
        client = MlflowClient(tracking_uri=tracking_uri)
        for run_id in run_ids.values():
            if not run_id:
                continue
            client.log_batch(run_id, metrics=metrics)
            client.log_text(run_id, table, ARTIFACT)
