"""A scored run's life in the store: load the champions, score a book as of a date and
publish one run atomically (DESIGN section 8).

:func:`run_scoring` loads the champion models from MLflow (or resolves the aging rule for a
population without one) and calls :func:`score_into_store` (the library's whole path in one
call, without the steps layer: ``bench.score`` and the tests; the product's nightly goes
through ``pipelines.steps_partitioned`` and :func:`publish_result`), which begins a run, scores
(``serving.score.score_book``) and writes it; :func:`publish_result` publishes a result
scored already (the merge of a book's account partitions, ``serving.partitioned``). Both go
through one run life (:func:`_run_into_store`): on any exception the run is marked
``failed``, the previous worklist for that ``as_of`` stays current, and the exception is
re-raised.

Time semantics: as in ``serving.score``; nothing here reads the clock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.contract.book import Book
from features.pit.promises import DEFAULT_GRACE_DAYS
from features.spec import DEFAULT_MATERIALITY, FEATURE_SET_VERSION, Materiality, as_day
from models.model import DelinqModel
from serving.actions import DEFAULT_POLICY, ActionPolicy
from serving.loop_events import book_with_events
from serving.rule_scoring import RuleScorer, resolve_scorers
from serving.score import ScoreResult, score_book
from serving.store_schema import RULE_SCORER

if TYPE_CHECKING:
    from features.pit.snapshot import Snapshot
    from serving.store import RunRecord


def load_champions(
    *, tracking_uri: str, model_names: Mapping[str, str]
) -> dict[str, DelinqModel]:
    """The ``champion`` of each registered model: ``{"early_warning": .., ...}``.

    Raises ``models.registry.NoChampionError`` ("no champion model: run `delinq train`
    first", with the gate line of the last trained version when it failed the gate) when
    one is missing, and ``UngatedChampionError`` for a champion without a gate pass.
    """
    # MLflow is imported here, not with the module: a Dask worker that only scores a
    # partition never loads it (issue 20)
    from models.registry import NoChampionError, UngatedChampionError, gate_reason, load_champion
    loaded: dict[str, DelinqModel] = {}
    for key, registered in model_names.items():
        try:
            loaded[key] = load_champion(registered, tracking_uri=tracking_uri)
        except UngatedChampionError:
            raise
        except NoChampionError as exc:
            # A trained version that failed the quality gate says why in one line.
            why = gate_reason(registered, tracking_uri=tracking_uri)
            if why:
                raise NoChampionError(
                    f"no champion model: no trained version of {key} model {registered!r} "
                    f"passed the quality gate; the last: {why}"
                ) from exc
            raise NoChampionError(
                f"no champion model: run `delinq train` first ({key} model {registered!r} "
                "has no champion)"
            ) from exc
    return loaded


def run_scoring(
    book: Book,
    *,
    as_of: date | pd.Timestamp,
    tracking_uri: str,
    store_url: str,
    export_dir: str | Path | None,
    model_names: Mapping[str, str],
    table_budget_mb: int = 512,
    policy: ActionPolicy = DEFAULT_POLICY,
    why: Mapping[str, str] | None = None,
    delinquency_dpd: int | None = None,
    persistence_days: int | None = None,
    materiality: Materiality = DEFAULT_MATERIALITY,
    extra_meta: Mapping[str, Any] | None = None,
    snapshot: Snapshot | None = None,
    holdout_share: float = 0.0,
    grace_days: int = DEFAULT_GRACE_DAYS,
) -> RunRecord:
    """Score ``book`` as of ``as_of`` and publish one run in the store.

    Each entry of ``model_names`` (model key -> registered name) is scored by its gated
    champion, or, without one, by the aging rule (``serving.rule_scoring.resolve_scorers``;
    ``why``: key -> why there is no model, when the caller knows; the labels of the rule's
    history calibration use ``delinquency_dpd`` and ``persistence_days``); then
    :func:`score_into_store`. ``extra_meta`` is recorded in the run's meta (e.g. the
    plausibility totals and accepted anomalies). ``snapshot``: ``book`` prepared once with
    its features at ``as_of`` under ``materiality`` (``features.pit.snapshot``), shared
    with the caller's other steps instead of being computed again.
    """
    t0 = time.perf_counter()
    if snapshot is not None:
        snapshot.check(as_of=as_of, materiality=materiality)
    models, rules = resolve_scorers(
        book, as_of=as_of, tracking_uri=tracking_uri, model_names=model_names, why=why,
        delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
        materiality=materiality, prepared=None if snapshot is None else snapshot.prepared,
        every_rule=holdout_share > 0)
    return score_into_store(  # checked before resolve_scorers used it; again there (cheap)
        book, as_of=as_of, models=models, rules=rules, store_url=store_url,
        export_dir=export_dir, table_budget_mb=table_budget_mb, policy=policy,
        materiality=materiality, extra_meta=extra_meta, holdout_share=holdout_share,
        timings={"load_models": time.perf_counter() - t0}, snapshot=snapshot,
        grace_days=grace_days,
    )


def score_into_store(
    book: Book,
    *,
    as_of: date | pd.Timestamp,
    models: Mapping[str, DelinqModel],
    store_url: str,
    export_dir: str | Path | None,
    table_budget_mb: int = 512,
    policy: ActionPolicy = DEFAULT_POLICY,
    materiality: Materiality = DEFAULT_MATERIALITY,
    timings: Mapping[str, float] | None = None,
    rules: Mapping[str, RuleScorer] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    snapshot: Snapshot | None = None,
    holdout_share: float = 0.0,
    grace_days: int = DEFAULT_GRACE_DAYS,
) -> RunRecord:
    """Begin a run, score (:func:`score_book`, drift included) and write it atomically
    (:func:`publish_result`'s run life, the scoring inside it).

    The events the workbench recorded in this store strictly before ``as_of`` (promises,
    contacts, disputes, snoozes: ``serving.loop_events``) are scored with the book, so what
    an analyst records changes the next run's worklist (issue 17).

    On any exception the run is marked ``failed`` (the previous worklist for that ``as_of``
    stays current) and the exception is re-raised. The returned record's ``timings`` hold
    the scoring stages, the store's own figures, ``write`` and ``total`` (seconds).
    ``snapshot``: the book's features at ``as_of`` already built (see :func:`run_scoring`).
    """
    if snapshot is not None:
        snapshot.check(as_of=as_of, materiality=materiality)
    day = as_day(as_of)

    def scored(store: Any) -> ScoreResult:
        events = store.read_loop_events(as_of=day)
        return score_book(
            book_with_events(book, events), as_of=day, models=models,
            table_budget_mb=table_budget_mb, policy=policy, rules=rules,
            materiality=materiality, grace_days=grace_days, snoozes=events.snoozes,
            holdout_share=holdout_share,
            features=None if snapshot is None else snapshot.features,
            final_notice=store.read_final_notices())

    return _run_into_store(scored, as_of=day, models=models, rules=rules,
                           store_url=store_url, export_dir=export_dir, timings=timings,
                           extra_meta=extra_meta)


def publish_result(
    result: ScoreResult,
    *,
    as_of: date | pd.Timestamp,
    models: Mapping[str, DelinqModel],
    store_url: str,
    export_dir: str | Path | None,
    rules: Mapping[str, RuleScorer] | None = None,
    timings: Mapping[str, float] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    ready: Callable[[], None] | None = None,
) -> RunRecord:
    """Publish a result scored already (the merge of a book's account partitions,
    ``serving.partitioned``) as one run: the same run life as :func:`score_into_store`
    (begun, written atomically, marked ``failed`` on any exception), without scoring.
    ``ready``: called in the run before its rows are written (e.g. waiting for the scored
    book's staged files, ``pipelines.steps_ingest.wait_staged``); its exception fails the
    run with its message."""

    def scored(_store: Any) -> ScoreResult:
        if ready is not None:
            ready()
        return result

    return _run_into_store(scored, as_of=as_day(as_of), models=models,
                           rules=rules, store_url=store_url, export_dir=export_dir,
                           timings=timings, extra_meta=extra_meta)


def _run_into_store(
    scored: Callable[[Any], ScoreResult],
    *,
    as_of: date,
    models: Mapping[str, DelinqModel],
    rules: Mapping[str, RuleScorer] | None,
    store_url: str,
    export_dir: str | Path | None,
    timings: Mapping[str, float] | None,
    extra_meta: Mapping[str, Any] | None,
) -> RunRecord:
    """The one run life: begin a run, ``scored(store)`` (its result), write it atomically;
    on any exception the run is marked failed and the exception re-raised."""
    from serving.store import WorklistStore

    t0 = time.perf_counter()
    versions = {k: m.version or "" for k, m in models.items()}
    versions |= {k: RULE_SCORER for k in (rules or {}) if k not in models}
    store = WorklistStore(
        store_url, export_dir=Path(export_dir) if export_dir else None, upgrade=True
    )
    stamp = {"model_versions": versions, "feature_set_version": FEATURE_SET_VERSION}
    try:
        run_id = store.begin_run(as_of=as_of, meta={**dict(extra_meta or {}), **stamp})
        try:
            result = scored(store)
            meta = {**dict(extra_meta or {}), **result.meta, **stamp,
                    # issue 19, staleness: the newest as_of of each champion's training set
                    "champion_data_end": {k: m.data_window.get("test_end") or None
                                          for k, m in models.items()}}
            meta["timings"] = {**dict(timings or {}), **result.meta["timings"]}
            t_write = time.perf_counter()
            record = store.write_run(
                run_id,
                worklist=result.worklist,
                explanations=result.explanations,
                drift=result.drift,
                meta=meta,
            )
        except BaseException as exc:
            # write_run marks its own failures; this covers everything before it.
            with contextlib.suppress(Exception):
                store.fail_run(run_id, message=f"{type(exc).__name__}: {exc}")
            raise
        total = time.perf_counter() - t0 + sum((timings or {}).values())
        return replace(record, timings={**record.timings,
                                        "write": time.perf_counter() - t_write,
                                        "total": total})
    finally:
        store.close()
