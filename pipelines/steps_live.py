"""The live-performance step (issue 19, item 1), part of the steps layer
(:mod:`pipelines.steps`): the nightly flow calls it at its end and ``delinq runs evaluate``
backfills with it, so both evaluate exactly alike.

For every published scoring run whose labels have resolved in the staged book (its
``as_of`` + ``models.live.label_horizon_days`` is on or before the book's ``data_end``, the
day after its last event) and that has no ``meta["live"]`` yet (or every resolved run,
``redo``): the run's stored worklist (``WorklistStore.read_worklist``) is judged against
``features.build_labels`` of the staged book at the run's ``as_of`` with ``data_end`` =
the book's end and the settings' horizons and materiality (the label training uses);
``models.live.live_performance`` computes the figures; they are logged to MLflow
(experiment ``models.registry.LIVE_EXPERIMENT``) and stored in the run's ``meta`` under
``"live"`` (``WorklistStore.set_run_meta``; no schema change). Recorded contacts are not
available yet (the workbench, issue 15): ``contacted`` is empty, so the ``untouched`` slice
equals ``all`` and the stored ``contacts`` says so; :func:`evaluate_live` takes the
contacted ids per run (``contacts``) as the seam.

No "now": resolution is judged against the book's own end, never the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines.progress import progress
from pipelines.settings import Settings

#: Where recorded contacts come from; none until the workbench (issue 15) is wired.
NO_CONTACTS = "none recorded (the workbench's contact log is not wired yet)"


@dataclass(frozen=True)
class LiveSummary:
    """Runs evaluated by :func:`evaluate_live`: one row each (``run_id``, ``as_of``,
    ``headline``, ``resolved``, ``censored``, ``mlflow_run_id``), how many published runs
    still wait for their labels (``pending``), the book's ``data_end``, wall seconds."""

    data_end: date
    evaluated: tuple[Mapping[str, Any], ...]
    pending: int
    seconds: float


def evaluate_live(
    *, settings: Settings, book: Path, redo: bool = False,
    contacts: Callable[[str], AbstractSet[str]] | None = None,
) -> LiveSummary:
    """Evaluate the published runs whose labels resolved in the staged book ``book`` and
    that have no live performance yet (every resolved run with ``redo``); see the module
    docstring. ``contacts(run_id)``: the account ids with a recorded contact or promise
    between that run's ``as_of`` and their label's resolution (default: none recorded)."""
    from features.pit.labels import build_labels, default_data_end
    from models.live import headline, label_horizon_days, live_performance
    from pipelines.steps import export_dir, materiality, read_book
    from serving.store import WorklistStore

    t0 = time.perf_counter()
    staged = read_book(book)
    data_end = default_data_end(staged)
    horizon = label_horizon_days(delinquency_dpd=settings.delinquency_dpd,
                                 persistence_days=settings.persistence_days)
    rows: list[dict[str, Any]] = []
    with WorklistStore(settings.resolved_store_url, export_dir=export_dir(settings),
                       upgrade=True,
                       stale_after=timedelta(minutes=settings.run_stale_after_min)) as store:
        runs = store.list_runs()
        published = runs[(runs["status"] == "succeeded") & runs["is_current"]]
        due = [r for r in published.itertuples(index=False)
               if r.as_of + timedelta(days=horizon) <= data_end
               and (redo or "live" not in (r.meta or {}))]
        pending = int(sum(r.as_of + timedelta(days=horizon) > data_end
                          for r in published.itertuples(index=False)))
        if due:
            progress(f"live performance: {len(due)} past run(s) whose labels resolved by "
                     f"{data_end} (horizon {horizon} days)")
        for run in sorted(due, key=lambda r: r.as_of):
            worklist = store.read_worklist(as_of=run.as_of)
            if worklist.empty or (worklist["run_id"] != run.run_id).any():
                continue  # replaced meanwhile: the new run is evaluated in its turn
            labels = build_labels(staged, as_of=run.as_of, data_end=data_end,
                                  delinquency_dpd=settings.delinquency_dpd,
                                  persistence_days=settings.persistence_days,
                                  materiality=materiality(settings))
            contacted = frozenset(contacts(run.run_id)) if contacts else frozenset()
            live = live_performance(worklist, labels, contacted=contacted)
            payload = {
                "as_of": run.as_of.isoformat(),
                "data_end": data_end.isoformat(),
                "label_horizon_days": horizon,
                "contacts": "recorded" if contacts else NO_CONTACTS,
                **live.to_dict(),
            }
            payload["mlflow_run_id"] = _log(settings, run, payload)
            store.set_run_meta(run.run_id, "live", payload)
            line = headline(payload)
            progress(f"  run {run.run_id} (as of {run.as_of}): {line}; "
                     f"{live.counts['resolved']:,} resolved, "
                     f"{live.counts['censored']:,} undecided")
            rows.append({"run_id": run.run_id, "as_of": run.as_of, "headline": line,
                         "resolved": live.counts["resolved"],
                         "censored": live.counts["censored"],
                         "mlflow_run_id": payload["mlflow_run_id"]})
    return LiveSummary(data_end=data_end, evaluated=tuple(rows), pending=pending,
                       seconds=time.perf_counter() - t0)


def _log(settings: Settings, run: Any, payload: Mapping[str, Any]) -> str:
    from models.live import flat_metrics
    from models.registry import log_live_performance

    return log_live_performance(
        tracking_uri=settings.resolved_tracking_uri, run_id=run.run_id, as_of=run.as_of,
        model_versions={"early_warning": run.early_warning_version,
                        "persistence": run.persistence_version},
        metrics=flat_metrics(payload), payload=payload)
