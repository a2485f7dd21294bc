"""The scoring steps of :mod:`pipelines.steps`: the nightly's score (run checks, KPIs and the
scoring over one shared snapshot of the staged book), and the store's housekeeping around
it (stale runs, free disk, retention)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines.progress import progress
from pipelines.settings import Settings
from pipelines.steps_base import export_dir
from pipelines.summaries import ScoreSummary
from serving.store_io import display_url

#: Rows of the worklist's top kept in a score summary (for artifacts and reports).
TOP_ROWS = 10


def reap_stale_runs(*, settings: Settings) -> list[str]:
    """Mark failed the running runs whose process died (no heartbeat for
    ``settings.run_stale_after_min``) and remove their files; return their ids."""
    from serving.store import WorklistStore

    with WorklistStore(settings.resolved_store_url, export_dir=export_dir(settings),
                       upgrade=True,
                       stale_after=timedelta(minutes=settings.run_stale_after_min)) as store:
        reaped = store.reap_stale()
    for run_id in reaped:
        progress(f"  run {run_id} had stopped (its process died): marked failed, files removed")
    return reaped


def check_disk(*, settings: Settings) -> int:
    """Raise :class:`~pipelines.errors.NotEnoughDiskError` (one line) when the disk under
    ``settings.data_dir`` has less free space than a run needs: ``min_free_disk_mb``, or
    twice the last published run's explanation file if larger (the file and its export
    link, plus the database's growth). Returns the free space in MB."""
    from pipelines.errors import NotEnoughDiskError
    from serving.store import StoreMissingError, WorklistStore

    folder = Path(settings.data_dir).resolve()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    free_mb = shutil.disk_usage(existing).free // 2**20
    need_mb = settings.min_free_disk_mb
    try:
        with WorklistStore(settings.resolved_store_url, read_only=True) as store:
            last = store.current_run()
            if last is not None and last.explanations_path:
                size = Path(last.explanations_path).stat().st_size
                need_mb = max(need_mb, 2 * size // 2**20)
    except (StoreMissingError, FileNotFoundError):
        pass  # no run yet: the setting alone
    if free_mb < need_mb:
        raise NotEnoughDiskError(
            f"not enough free disk under {folder}: {free_mb:,} MB free, a run needs about "
            f"{need_mb:,} MB; the run did not start (free space, or lower the retention "
            "settings and run `delinq runs prune`)")
    return int(free_mb)


def prune(*, settings: Settings, today: date) -> dict[str, list[str]]:
    """Apply the settings' retention policy as of ``today`` (explanation files of the
    newest ``retain_explanations_runs`` published runs kept; runs older than
    ``resolved_retain_scores_days`` and exports older than ``retain_exports_days``
    deleted, and their shadow files, ``pipelines.steps_shadow.prune_shadow``); returns what
    went."""
    from pipelines.steps_shadow import prune_shadow
    from serving.store import WorklistStore

    with WorklistStore(settings.resolved_store_url, export_dir=export_dir(settings),
                       upgrade=True,
                       stale_after=timedelta(minutes=settings.run_stale_after_min)) as store:
        gone = store.prune(today=today, keep_explanations=settings.retain_explanations_runs,
                           keep_scores_days=settings.resolved_retain_scores_days,
                           keep_exports_days=settings.retain_exports_days,
                           keep_kpis_days=settings.resolved_retain_kpis_days)
        # issue 19: the shadow scores kept beside each run go with its rows
        gone["shadow"] = prune_shadow(settings=settings, runs=store.list_runs())
    progress(f"  retention: {len(gone['explanations'])} explanation files, "
             f"{len(gone['runs'])} old runs, {len(gone['scores'])} runs' scores (KPIs kept), "
             f"{len(gone['exports'])} export folders, {len(gone['shadow'])} shadow files "
             "removed")
    return gone


def score(*, settings: Settings, book: Path, as_of: date,
          why: dict[str, str] | None = None,
          accept_anomalies: bool = False,
          run_parts: Callable[[Any], list[str]] | None = None) -> ScoreSummary:
    """Score every account of the staged book ``book`` with open receivables as of
    ``as_of`` (events strictly before it) with the champion models, and a population
    without a gated champion with the aging rule (``why``: model -> why it has none, when
    the caller knows, e.g. training stopped); write the worklist run to the store and its
    Parquet export, with the receivables KPIs in the run's ``meta["kpis"]``. The summary's
    ``rule_lines`` say which populations the rule ranked. The run checks
    (``pipelines.run_checks``) come before anything is written: a failed one stops the
    run, unless ``accept_anomalies`` (then the run's meta records it).

    The scoring goes through the partitioned steps (:mod:`pipelines.steps_partitioned`)
    with ``settings.partitions`` account partitions, here in this process, or by
    ``run_parts`` (the flows': Prefect tasks on a Dask cluster,
    ``pipelines.partitioned``); P = 1, the default, is the same code in one process."""
    from models.live import staleness_lines
    from pipelines.artifacts import drift_flags, worklist_table
    from pipelines.steps_partitioned import score_partitioned
    from pipelines.steps_shadow import watch_run
    from serving.store import WorklistStore
    from serving.worklist import kpi_line

    if not isinstance(as_of, date):
        raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
    progress(f"scoring as of {as_of.isoformat()} (exact TreeSHAP reasons for every account)")
    t0 = time.perf_counter()
    reap_stale_runs(settings=settings)
    record, shadow = score_partitioned(settings=settings, book=book, as_of=as_of, why=why,
                                       accept_anomalies=accept_anomalies, run_parts=run_parts)
    with WorklistStore(settings.resolved_store_url) as store:
        top = store.read_worklist(as_of=as_of, top=TOP_ROWS)
        drift = store.read_drift(record.run_id)
    seconds = time.perf_counter() - t0
    # a champion whose training data is old is said first (issue 19, staleness)
    stale = staleness_lines(as_of, record.meta.get("champion_data_end") or {},
                            max_age_days=settings.stale_model_days)
    drift_lines = drift_flags(drift)
    # issue 19: shadow challengers scored beside the run, drift alerts that persist
    watch = watch_run(settings=settings, run_id=record.run_id, scored=shadow)
    flags = [*stale, *watch, *drift_lines]
    # said by the run's message (printed by the CLI) and the flows' summaries
    rule_lines = tuple(str(x) for x in record.meta.get("rule_lines", []))
    for line in [*stale, *watch]:
        progress(f"  {line}")
    progress(f"  {record.n_scored or 0:,} accounts scored; drift: {drift_lines[0]} "
             f"({seconds:.1f} s)")
    if record.meta.get("kpis"):
        progress(f"  {kpi_line(record.meta['kpis'])}")
    return ScoreSummary(
        as_of=as_of,
        run_id=record.run_id,
        status=record.status,
        message=record.message,
        n_scored=int(record.n_scored or 0),
        n_by_segment={k: int(v) for k, v in record.n_by_segment.items()},
        early_warning_version=record.early_warning_version,
        persistence_version=record.persistence_version,
        feature_set_version=record.feature_set_version,
        store_url=display_url(settings.resolved_store_url),
        export_path=export_dir(settings) / as_of.isoformat() / "worklist.parquet",
        flags=tuple(flags),
        top=tuple(worklist_table(top, top=TOP_ROWS)),
        seconds=seconds,
        rule_lines=rule_lines,
        kpis=dict(record.meta.get("kpis") or {}),
    )
