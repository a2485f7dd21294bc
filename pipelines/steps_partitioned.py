"""The nightly score in account partitions (issue 20): the scoring step the CLI and the flows
share (:func:`pipelines.steps.score`), with P = ``settings.partitions``; P = 1, in one
process, is the default and goes through the same functions.

1. :func:`plan_partitions` (driver): the staged book was validated book-wide by
   :func:`pipelines.steps.ingest` (duplicate ids, unknown invoices, bad-row share,
   plausibility of the tables); it is split by ``crc32(account_id) mod P``
   (``features.partition``) into data folders under the work location (P = 1: the staged
   folder itself, no copy). The run's :class:`~serving.partitioned.RunScorers` are loaded
   once: champions and aging rules, the shadow challengers and the holdout's champions
   (``pipelines.steps_shadow.shadow_models``), the store's loop events known at ``as_of``
   and dunning's final notices; with P > 1 they are written there for the workers.
2. :func:`score_one_partition` (a worker, once per partition; the flows run these as
   Prefect tasks on a Dask cluster): the partition's snapshot (``features.pit.snapshot``),
   its scoring (``serving.partitioned.score_partition``: worklist rows, explanations,
   drift bin counts, shadow scores), its KPI pieces and run-check totals, written as files
   (``serving.partitioned.write_part``: temporary names renamed into place; a re-run gives
   the same files). Locations in, locations out: never frames. In one process
   (:func:`run_parts_in_process`) the same scoring keeps its parts in memory.
3. :func:`merge_and_publish` (driver): the book-wide rank, drift from the summed bin
   counts, the run checks on the added-up totals (before anything is published), the KPIs
   from their added-up pieces, then the store's one atomic publish; the shadow scores go
   beside the run (``pipelines.steps_shadow.watch_run``).

What is book-wide and how it is carried: the random holdout is a stable hash of each
account id (``models.live_policy.in_holdout``), so every partition selects its own share of
it; the loop's events are read once and given whole to every partition (each keeps the
rows of its own accounts and invoices); rank, drift, KPIs, totals and counts are merged
from additive per-partition pieces. No Prefect here (the flows give
:func:`score_partitioned` a ``run_parts`` that maps step 2 over a Dask cluster), no "now".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.partition import join, partition_name
from features.pit.promises import DEFAULT_GRACE_DAYS
from pipelines.progress import heartbeat, progress
from pipelines.settings import TEST_DIE_AFTER_PART_ENV as DIE_AFTER_PART_ENV
from pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from features.contract.book import Book
    from features.pit.snapshot import Snapshot
    from pipelines.steps_shadow import ShadowModels
    from serving.partitioned import BookReads, PartScore, RunScorers
    from serving.store import RunRecord

#: The tests' worker-death hook (``DIE_AFTER_PART_ENV``) is a file path: the process that
#: writes a partition's output while the file does not exist creates it and dies at once
#: (``os._exit``), after its output files are in place and before its task reports back.
__all__ = ["DIE_AFTER_PART_ENV", "PartitionPlan", "Planned", "merge_and_publish",
           "plan_partitions", "run_parts_in_process", "score_one_partition",
           "score_partitioned", "work_location"]


@dataclass(frozen=True)
class PartitionPlan:
    """Where one scoring run's partitions are: ``books`` (a data folder per partition),
    ``outputs`` (where each partition's scoring goes), ``scorers`` (the pickled
    :class:`~serving.partitioned.RunScorers`; empty in one process), and the whole book's
    ``first_date`` / ``last_date``. Locations are paths or fsspec URLs every worker can
    reach; the plan is small and JSON-safe."""

    as_of: date
    books: tuple[str, ...]
    outputs: tuple[str, ...]
    scorers: str
    first_date: date
    last_date: date
    table_budget_mb: int
    policy: dict[str, Any]
    materiality: dict[str, Any]
    holdout_share: float = 0.0
    grace_days: int = DEFAULT_GRACE_DAYS
    #: The latest published run before ``as_of`` (the KPIs count what its worklist's
    #: accounts paid since): its as_of and the location of its account ids (Parquet).
    previous_as_of: date | None = None
    previous_ids: str | None = None


@dataclass(frozen=True)
class Planned:
    """The driver's side of a plan: the plan, the scorers loaded once, the shadow models
    (for the run's meta), the previous worklist's account ids, and in one process all the
    scoring reads of the staged book (``reads``: its shadow scores, features at ``as_of``
    and loop facts, ``serving.partitioned.BookReads``) and its :class:`Pieces`, all from
    one snapshot, built once; it holds neither the book nor the snapshot's prepared arrays
    (see :func:`plan_partitions`)."""

    plan: PartitionPlan
    scorers: RunScorers
    shadow: ShadowModels
    previous_ids: list[str] | None
    reads: BookReads | None = None
    pieces: Pieces | None = None
    load_seconds: float = 0.0


@dataclass(frozen=True)
class Pieces:
    """A partition's additive pieces of the run's KPIs (``features.pit.kpis.kpi_part``,
    with the ``seconds`` they took) and of its run-check totals (open balance, accounts,
    late accounts), merged by :func:`merge_and_publish`."""

    kpis: dict[str, Any]
    totals: dict[str, Any]


def work_location(settings: Settings) -> str:
    """The root of the partitions' files: ``settings.work_location`` (a path or an fsspec
    URL that every worker can reach), default ``<data_dir>/work``."""
    if settings.work_location:
        return str(settings.work_location)
    return str((Path(settings.data_dir) / "work").resolve())


class _LazyBook:
    """The staged book, read only when a scorer needs its history (the aging rule
    without a validation calibration): a run with both champions never reads it here."""

    def __init__(self, path: Path) -> None:
        self._path, self._book = path, None

    def __getattr__(self, name: str) -> Any:
        if self._book is None:
            from features.partition import read_partition

            self._book = read_partition(self._path)
        return getattr(self._book, name)


def plan_partitions(*, settings: Settings, book: Path, as_of: date,
                    why: dict[str, str] | None = None) -> Planned:
    """Split the staged book ``book`` into ``settings.partitions`` partitions under
    :func:`work_location` and load the run's scorers once (see the module); with one
    partition the staged book is read, its snapshot built here and the partition's
    :class:`Pieces` and everything its scoring reads of it (``Planned.reads``) taken from
    it, nothing is written. The snapshot's arrays are freed before the scoring's own
    peak (~2 GB at 1M accounts); the Book is not released: the nightly flow's live
    evaluation after the publish reads it from memory (released, it read the staged files
    back: at 1M accounts 20.7 s and the nightly's peak, 10.3 GB, session 15)."""
    from features.partition import book_dates, write_partitions
    from features.pit.snapshot import snapshot
    from pipelines.steps_base import materiality, model_names
    from pipelines.steps_ingest import StagingError, read_book, wait_staged
    from pipelines.steps_shadow import shadow_models
    from serving.partitioned import RunScorers, book_reads, save_scorers, write_frame
    from serving.rule_scoring import resolve_scorers
    from serving.store import WorklistStore

    n = int(settings.partitions)
    work = join(work_location(settings), f"score-{as_of.isoformat()}")
    staged = shared = None
    try:  # a staging write on a thread that failed: a failed run says so
        if n == 1:
            staged = read_book(book)  # in memory while being staged (see above)
        else:
            wait_staged(Path(book))  # the partitions are split from the staged files
    except StagingError as exc:
        with WorklistStore(settings.resolved_store_url, upgrade=True) as store:
            store.record_blocked(as_of=as_of, reason=str(exc))
        raise
    if staged is not None:
        books = [str(Path(book).resolve())]
        # The book is encoded and its features built once, here; the KPIs, the run checks'
        # totals, the aging rule's history and the scoring all read this one snapshot.
        with heartbeat("features"):
            shared = snapshot(staged, as_of=as_of, materiality=materiality(settings))
        first, last = staged.first_date, staged.last_date
    else:
        with heartbeat("partitioning"):
            t0 = time.perf_counter()
            books = write_partitions(book, join(work, "book"), partitions=n)
            progress(f"  {n} account partitions under {work} ({time.perf_counter() - t0:.1f} s)")
        first, last = book_dates(book)
    t_load = time.perf_counter()
    models, rules = resolve_scorers(
        staged if staged is not None else _LazyBook(Path(book)), as_of=as_of,
        tracking_uri=settings.resolved_tracking_uri, model_names=model_names(settings),
        why=why, delinquency_dpd=settings.delinquency_dpd,
        persistence_days=settings.persistence_days, materiality=materiality(settings),
        prepared=None if shared is None else shared.prepared,
        every_rule=settings.live_holdout_share > 0)
    load_seconds = time.perf_counter() - t_load
    shadow = shadow_models(settings=settings)
    with WorklistStore(settings.resolved_store_url, upgrade=True) as store:
        events = store.read_loop_events(as_of=as_of)
        final_notice = tuple(store.read_final_notices())
        previous_as_of, previous_ids = _previous_worklist(store, as_of)
    scorers = RunScorers(models=models, rules=rules, challengers=shadow.challengers,
                         champions=shadow.champions, events=events, final_notice=final_notice)
    ids_file = None
    if n > 1:
        save_scorers(scorers, work)
        if previous_ids is not None:
            import pandas as pd

            ids_file = write_frame(pd.DataFrame({"account_id": previous_ids}), work,
                                   "previous.parquet")
    plan = PartitionPlan(
        as_of=as_of, books=tuple(books),
        outputs=tuple(join(work, "scored", partition_name(i)) for i in range(n)),
        scorers=join(work, "scorers.pkl") if n > 1 else "",
        first_date=first.date(), last_date=last.date(),
        table_budget_mb=settings.shap_table_budget_mb,
        policy=settings.actions.model_dump(exclude_none=True),
        materiality=settings.materiality.model_dump(exclude_none=True),
        holdout_share=float(settings.live_holdout_share),
        grace_days=int(settings.promise_grace_days),
        previous_as_of=previous_as_of, previous_ids=ids_file)
    if shared is None:
        return Planned(plan=plan, scorers=scorers, shadow=shadow, previous_ids=previous_ids,
                       load_seconds=load_seconds)
    # What reads the book or its prepared arrays is done here (the scorers above, the KPI
    # pieces and totals, the shadow scores, the loop's facts and features now), so the
    # scoring holds neither (the arrays are freed: ~2 GB at 1M accounts; the Book would be
    # too if no later step of the process read it, see above).
    pieces = _pieces(plan, staged, shared, previous_ids)
    features, pay_invoices = shared.features, shared.prepared.pay_invoices
    del shared  # the prepared arrays (but each payment's invoice row) before the reads
    reads = book_reads(staged, as_of=plan.as_of, scorers=scorers, features=features,
                       materiality=materiality(settings),
                       holdout_share=plan.holdout_share, grace_days=plan.grace_days,
                       pay_invoices=pay_invoices)
    return Planned(plan=plan, scorers=scorers, shadow=shadow, previous_ids=previous_ids,
                   reads=reads, pieces=pieces, load_seconds=load_seconds)


def _previous_worklist(store: Any, as_of: date) -> tuple[date | None, list[str] | None]:
    """The latest published run before ``as_of`` and its worklist's account ids (the KPIs'
    amount collected since, ``features.pit.kpis``)."""
    runs = store.list_runs()
    runs = runs[runs["is_current"] & (runs["as_of"] < as_of)]
    if runs.empty:
        return None, None
    previous = max(runs["as_of"])
    return previous, store.read_worklist(as_of=previous)["account_id"].astype("str").tolist()


def _pieces(plan: PartitionPlan, book: Book, shared: Snapshot,
            previous_ids: list[str] | None) -> Pieces:
    """The :class:`Pieces` of the partition ``book`` of ``plan`` from its snapshot."""
    from features.contract.plausibility import RunTotals
    from features.pit.kpis import kpi_part

    t0 = time.perf_counter()
    previous = None
    if plan.previous_as_of is not None and previous_ids is not None:
        previous = (plan.previous_as_of, previous_ids)
    first_issue = plan.first_date if plan.first_date < plan.as_of else None
    kpis = kpi_part(book, as_of=plan.as_of, first_issue=first_issue, previous=previous,
                    prepared=shared.prepared)
    totals = RunTotals.of(shared.features)
    return Pieces(kpis={**kpis, "seconds": time.perf_counter() - t0},
                  totals={"open_balance": totals.open_balance, "accounts": totals.accounts,
                          "late": round(totals.share_late * totals.accounts)})


def _score_part(plan: PartitionPlan, index: int, scorers: RunScorers, *,
                previous_ids: list[str] | None, reads: BookReads | None = None,
                pieces: Pieces | None = None) -> PartScore:
    """The scoring of partition ``index`` of ``plan`` with ``scorers``, its KPI pieces and
    run-check totals (``reads`` and ``pieces``: what the scoring reads of the partition's
    book and its :class:`Pieces` when the caller took them, else read from
    ``plan.books[index]`` and built here from one snapshot, whose prepared arrays but the
    payments' invoice rows are dropped before the scoring)."""
    from features.partition import read_partition
    from features.pit.snapshot import snapshot
    from features.spec import Materiality
    from serving.actions import ActionPolicy
    from serving.partitioned import score_partition

    material = Materiality(**plan.materiality)
    part_book = features = pay_invoices = None
    if reads is None or pieces is None:
        part_book = read_partition(plan.books[index])
        shared = snapshot(part_book, as_of=plan.as_of, materiality=material)
        pieces = _pieces(plan, part_book, shared, previous_ids)
        features, pay_invoices = shared.features, shared.prepared.pay_invoices
        del shared  # its prepared arrays: the scoring does not read them
        reads = None
    part = score_partition(
        part_book, as_of=plan.as_of, scorers=scorers, history_start=plan.first_date,
        features=features, table_budget_mb=plan.table_budget_mb,
        policy=ActionPolicy(**plan.policy), materiality=material,
        holdout_share=plan.holdout_share, grace_days=plan.grace_days,
        pay_invoices=pay_invoices, reads=reads)
    return replace(part, kpis=pieces.kpis, totals=pieces.totals)


def score_one_partition(plan: PartitionPlan, index: int) -> str:
    """Score partition ``index`` of ``plan`` (a worker's task) and write its part to
    ``plan.outputs[index]`` (returned): temporary names renamed into place, so a re-run
    after a worker died writes the same files."""
    from serving.partitioned import load_scorers, read_frame, write_part

    previous_ids = None
    if plan.previous_ids is not None:
        previous_ids = read_frame(plan.previous_ids)["account_id"].tolist()
    part = _score_part(plan, index, load_scorers(plan.scorers), previous_ids=previous_ids)
    write_part(part, plan.outputs[index])
    _die_after_part_hook()
    return plan.outputs[index]


def _die_after_part_hook() -> None:
    """The tests' worker death (:data:`DIE_AFTER_PART_ENV`): once per marker file."""
    marker = os.environ.get(DIE_AFTER_PART_ENV)
    if marker and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)


def run_parts_in_process(planned: Planned) -> list[PartScore]:
    """Score every partition of ``planned`` here, one after the other, keeping the parts
    in memory (P = 1: with what the driver read of the book and snapshot already)."""
    one = len(planned.plan.books) == 1
    return [_score_part(planned.plan, i, planned.scorers, previous_ids=planned.previous_ids,
                        reads=planned.reads if one else None,
                        pieces=planned.pieces if one else None)
            for i in range(len(planned.plan.books))]


def _merged_totals(parts: Sequence[PartScore]) -> Any:
    from features.contract.plausibility import RunTotals

    pieces = [p.totals or {} for p in parts]
    n = sum(int(t.get("accounts", 0)) for t in pieces)
    late = sum(int(t.get("late", 0)) for t in pieces)
    return RunTotals(sum(float(t.get("open_balance", 0.0)) for t in pieces),
                     late / n if n else 0.0, n)


def merge_and_publish(*, settings: Settings, planned: Planned,
                      outputs: Sequence[str | PartScore],
                      accept_anomalies: bool = False
                      ) -> tuple[RunRecord, tuple[ShadowModels, pd.DataFrame]]:
    """Merge the partitions' parts (``outputs``: their locations, or the parts themselves
    when scored in this process; ``serving.partitioned.merge_partitions``), run the run
    checks on the added-up totals, merge the KPIs of the parts
    (``features.pit.kpis.merge_kpi_parts``) and publish the run in the store in one atomic
    write. Returns the run's record and its shadow models and scores (for
    ``pipelines.steps_shadow.watch_run``). A book staged on a thread
    (``steps.ingest(background=True)``) must be written before the run is published: the
    run waits for it, and is recorded failed with the write's error if it failed."""
    from features.pit.kpis import merge_kpi_parts
    from pipelines.run_checks import run_meta_of_totals
    from pipelines.steps_base import export_dir
    from pipelines.steps_ingest import wait_staged
    from serving.partitioned import PartScore, merge_partitions, merge_shadow, read_part
    from serving.score_run import publish_result

    plan, scorers = planned.plan, planned.scorers
    t_merge = time.perf_counter()
    parts = [o if isinstance(o, PartScore) else read_part(o) for o in outputs]
    result = merge_partitions(parts, as_of=plan.as_of, models=scorers.models,
                              rules=scorers.rules)
    shadow = merge_shadow(parts)
    merge_seconds = time.perf_counter() - t_merge
    run_meta = run_meta_of_totals(settings=settings, totals=_merged_totals(parts),
                                  as_of=plan.as_of, last_event=plan.last_date,
                                  accept_anomalies=accept_anomalies)
    t_kpis = time.perf_counter()
    kpis = merge_kpi_parts([p.kpis or {} for p in parts], as_of=plan.as_of,
                           previous_as_of=plan.previous_as_of).as_dict()
    kpis["seconds"] = round(time.perf_counter() - t_kpis
                            + sum(float((p.kpis or {}).get("seconds", 0.0)) for p in parts), 3)
    del parts
    timings = {"load_models": planned.load_seconds}
    if len(outputs) > 1:
        timings["merge_read"] = merge_seconds
    record = publish_result(
        result, as_of=plan.as_of, models=scorers.models, rules=scorers.rules,
        store_url=settings.resolved_store_url, export_dir=export_dir(settings),
        extra_meta={**run_meta, "kpis": kpis, "partitions": len(outputs)},
        timings=timings, ready=lambda: wait_staged(Path(plan.books[0])))
    return record, (planned.shadow, shadow)


def score_partitioned(
    *, settings: Settings, book: Path, as_of: date, why: dict[str, str] | None = None,
    accept_anomalies: bool = False,
    run_parts: Callable[[PartitionPlan], list[str]] | None = None,
) -> tuple[RunRecord, tuple[ShadowModels, pd.DataFrame]]:
    """The scoring in ``settings.partitions`` partitions (see the module):
    :func:`plan_partitions`, then ``run_parts`` (the flows: Prefect tasks on Dask; default
    and with one partition: :func:`run_parts_in_process`), then :func:`merge_and_publish`."""
    planned = plan_partitions(settings=settings, book=book, as_of=as_of, why=why)
    with heartbeat("scoring"):
        outputs: list[Any]
        if run_parts is None or len(planned.plan.books) == 1:
            outputs = list(run_parts_in_process(planned))
            # the features are scored: not held through the merge and the store write
            planned = replace(planned, reads=None, pieces=None)
        else:
            outputs = list(run_parts(planned.plan))
        return merge_and_publish(settings=settings, planned=planned, outputs=outputs,
                                 accept_anomalies=accept_anomalies)
