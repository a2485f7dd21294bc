"""Plausibility checks of the steps layer (issue 13): the settings' limits, and the run
checks that stop a scoring run before it replaces the last worklist.

The checks themselves are pure functions of ``features.contract.plausibility``; here they
get their inputs (the staged book, the last published run's totals from the store's public
API) and the settings' limits. No Prefect, no "now".
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from features.spec import DEFAULT_MATERIALITY, Materiality
from pipelines.progress import progress
from pipelines.settings import Settings

if TYPE_CHECKING:
    from features.contract.book import Book
    from features.contract.options import Plausibility
    from features.contract.plausibility import Anomaly, RunTotals
    from features.pit.snapshot import Snapshot


def plausibility(settings: Settings) -> Plausibility:
    """``features.contract.options.Plausibility`` from the settings: the
    ``plausibility`` options that are set (the others keep the library's defaults)."""
    from features.contract.options import Plausibility

    return Plausibility(**settings.plausibility.model_dump(exclude_none=True))


def last_run_totals(*, settings: Settings) -> tuple[RunTotals | None, date | None]:
    """The totals of the last published (current) run and its as_of, from the store's
    public API; (None, None) when there is no store or no run yet. Runs that recorded no
    totals give what their record holds (accounts scored and share late; the open
    balance unknown, so not compared)."""
    from features.contract.plausibility import RunTotals
    from serving.store import StoreMissingError, WorklistStore

    try:
        with WorklistStore(settings.resolved_store_url, read_only=True) as store:
            last = store.current_run()
    except (StoreMissingError, FileNotFoundError):
        return None, None
    if last is None or not last.n_scored:
        return None, None
    totals = RunTotals.from_meta((last.meta or {}).get("totals"))
    if totals is None:
        late = last.n_by_segment.get("late", 0) / last.n_scored
        totals = RunTotals(float("nan"), late, int(last.n_scored))
    return totals, last.as_of


def check_run(*, settings: Settings, book: Book, as_of: date,
              accept_anomalies: bool = False,
              materiality: Materiality = DEFAULT_MATERIALITY,
              snapshot: Snapshot | None = None) -> dict[str, Any]:
    """The run-level plausibility checks, before a run may replace the last worklist:
    ``as_of_beyond_data`` and ``totals_jump`` against the last published run
    (``features.contract.plausibility``; limits from the ``plausibility`` settings).

    Raises the first anomaly's ``DataContractError`` (one message naming the check and the
    numbers) unless ``accept_anomalies``; returns what the run records in its meta: the
    run's ``totals`` and the ``accepted_anomalies`` (messages) it published anyway. The
    totals count past-due amounts under ``materiality`` (the run's own, so the share late
    is the one its worklist shows). ``snapshot``: the book's features at ``as_of`` under
    ``materiality`` already built (``features.pit.snapshot``: the scoring's, not rebuilt)."""
    from features import build_features
    from features.contract.plausibility import RunTotals

    if snapshot is not None:
        snapshot.check(as_of=as_of, materiality=materiality)
    feats = (snapshot.features if snapshot is not None
             else build_features(book, as_of=as_of, materiality=materiality))
    return run_meta_of_totals(settings=settings, totals=RunTotals.of(feats), as_of=as_of,
                              last_event=book.last_date.date(),
                              accept_anomalies=accept_anomalies)


def run_meta_of_totals(*, settings: Settings, totals: RunTotals, as_of: date,
                       last_event: date, accept_anomalies: bool = False) -> dict[str, Any]:
    """:func:`check_run` on a run's ``totals`` (e.g. added up over its account partitions,
    ``pipelines.steps_partitioned``) and the book's ``last_event`` (its last event's day):
    the same checks, errors and returned meta."""
    from features.contract.plausibility import as_of_anomalies, totals_anomalies

    limits = plausibility(settings)
    found = as_of_anomalies(as_of=as_of, last_event=last_event, plausible=limits)
    previous, previous_as_of = last_run_totals(settings=settings)
    found += totals_anomalies(totals, previous, plausible=limits, previous_as_of=previous_as_of)
    if found and not accept_anomalies:
        raise _first_anomaly(found)
    for anomaly in found:
        progress(f"  accepted anomaly: {anomaly.message}")
    return {"totals": totals.as_meta(),
            "accepted_anomalies": [a.message for a in found]}


def _first_anomaly(found: list[Anomaly]) -> Exception:
    error = found[0].error()
    if len(found) > 1:
        from features.contract.rules import DataContractError

        others = "; ".join(a.message for a in found[1:])
        error = DataContractError(error.file, error.column, error.rule,
                                  f"{error.detail} (also: {others})")
    return error
