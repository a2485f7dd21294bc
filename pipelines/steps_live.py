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
``"live"`` (``WorklistStore.set_run_meta``; no schema change). The ``untouched`` slice
leaves out the accounts with a contact or promise recorded in the store's events (the
workbench, ``serving.store_events.read_contacts`` / ``read_promises``) between the run's
``as_of`` and its resolution (``models.live.contacted_accounts``); the stored ``contacts``
says how many events were read, or :data:`NO_CONTACTS`. :func:`evaluate_live` takes the
contacted ids per run (``contacts``) as a seam for other sources (an ERP's own tables).
With a random holdout (``live_holdout_share``), ``meta["live"]["holdout"]`` holds the
champion's live figures on the holdout's accounts (scored beside the run by
:func:`watch_run`): the unbiased sample ``models.live_agreement`` compares with the
offline test period (the ``untouched`` slice is not one: the contacted top is gone).

No "now": resolution is judged against the book's own end, never the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.progress import progress
from pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from features.contract.book import Book

#: Summary lines that are warnings worth a notification (issue 19, staleness and rollback).
WARNING_PREFIXES = ("stale model", "persistent drift", "demoted", "promoted")


def warning_lines(flags: Any, live: Any = None) -> list[str]:
    """The warnings among a run's ``flags`` (:data:`WARNING_PREFIXES`) and a
    :class:`LiveSummary`'s alias changes, for the notification."""
    lines = [str(f) for f in flags if str(f).startswith(WARNING_PREFIXES)]
    return lines + (list(live.lines) if isinstance(live, LiveSummary) else [])


#: What the stored ``contacts`` says when the store holds no contact or promise event.
NO_CONTACTS = "none recorded (no contact or promise in the store's events)"


@dataclass(frozen=True)
class LiveSummary:
    """Runs evaluated by :func:`evaluate_live`: one row each (``run_id``, ``as_of``,
    ``headline``, ``resolved``, ``censored``, ``mlflow_run_id``), how many published runs
    still wait for their labels (``pending``), the book's ``data_end``, wall seconds."""

    data_end: date
    evaluated: tuple[Mapping[str, Any], ...]
    pending: int
    seconds: float
    #: Champions demoted (and, with ``promote_on_live``, challengers promoted) by this
    #: evaluation (``models.registry_aliases.AliasChange.to_dict``).
    demotions: tuple[Mapping[str, Any], ...] = ()

    @property
    def lines(self) -> tuple[str, ...]:
        """One summary line per alias change (demotion or live promotion) with its reason."""
        return tuple(f"{d['action']}d: {d['reason']}" for d in self.demotions)


def evaluate_live(
    *, settings: Settings, book: Path, redo: bool = False,
    contacts: Callable[[str], AbstractSet[str]] | None = None,
) -> LiveSummary:
    """Evaluate the published runs whose labels resolved in the staged book ``book`` and
    that have no live performance yet (every resolved run with ``redo``); see the module
    docstring. ``contacts(run_id)``: the account ids with a recorded contact or promise
    between that run's ``as_of`` and their label's resolution (default: the store's
    recorded events, :func:`recorded_contacts`)."""
    from features.pit.labels import build_labels, default_data_end
    from models.live import (
        contacted_accounts,
        headline,
        label_horizon_days,
        live_performance,
        live_slices,
    )
    from models.live_agreement import holdout_lines
    from models.slices import flagged_lines
    from pipelines.steps_base import export_dir, materiality
    from pipelines.steps_ingest import read_book
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
        events = None if contacts else recorded_contacts(settings)
        accounts = account_slices(staged)
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
            if contacts:
                contacted, source = frozenset(contacts(run.run_id)), "recorded"
            else:
                assert events is not None
                contacted = contacted_accounts(
                    *events, as_of=run.as_of, until=run.as_of + timedelta(days=horizon))
                source = _events_line(*events)
            rules = served_rules(run.meta)
            live = live_performance(worklist, labels, contacted=contacted,
                                    rule_calibrations=rules)
            shadow, holdout = _shadow_live(run, worklist, labels, contacted, rules)
            if shadow:
                store.set_run_meta(run.run_id, "live_shadow", shadow)
            slices = live_slices(worklist, labels, accounts, as_of=run.as_of,
                                 contacted=contacted, rule_calibrations=rules)
            payload = {
                "slices": slices,
                "holdout": holdout,
                "as_of": run.as_of.isoformat(),
                "data_end": data_end.isoformat(),
                "label_horizon_days": horizon,
                "contacts": source,
                **live.to_dict(),
            }
            payload["mlflow_run_id"] = _log(settings, run, payload)
            store.set_run_meta(run.run_id, "live", payload)
            line = headline(payload)
            held = holdout_lines(payload)  # the evidence rule's count per holdout
            line = "; ".join([line, *held])
            for kind, table in slices.items():
                for flagged in flagged_lines(table, model=kind):
                    progress(f"  run {run.run_id} slice {flagged}")
            progress(f"  run {run.run_id} (as of {run.as_of}): {line}; "
                     f"{live.counts['resolved']:,} resolved, "
                     f"{live.counts['censored']:,} undecided")
            rows.append({"run_id": run.run_id, "as_of": run.as_of, "headline": line,
                         "resolved": live.counts["resolved"],
                         "censored": live.counts["censored"],
                         "mlflow_run_id": payload["mlflow_run_id"]})
        runs = store.list_runs()
        demotions = apply_demotions(settings=settings, runs=runs)
        if settings.promote_on_live:
            demotions += promote_on_live(settings=settings, runs=store.list_runs())
    return LiveSummary(data_end=data_end, evaluated=tuple(rows), pending=pending,
                       seconds=time.perf_counter() - t0, demotions=tuple(demotions))


def apply_demotions(*, settings: Settings, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Demote each champion whose last ``settings.live_fallback_runs`` judged runs ranked
    untouched accounts below the aging rule (``models.live_policy.demotion_check`` over the
    published ``runs`` of ``WorklistStore.list_runs``): the registry moves it to
    ``challenger`` with the reason (the next scoring's aging-rule line says it), and the
    store's audit table records it (actor :data:`ACTOR`). Returns the changes made."""
    from models.live_policy import demotion_check
    from models.registry_aliases import alias_version, demote
    from pipelines.steps_base import model_names

    published = runs[(runs["status"] == "succeeded") & runs["is_current"]]
    records = [{"run_id": r.run_id, "as_of": r.as_of, "meta": r.meta or {}}
               for r in published.itertuples(index=False)]
    changes = []
    for kind, name in model_names(settings).items():
        version = alias_version(name, tracking_uri=settings.resolved_tracking_uri)
        if version is None:
            continue
        check = demotion_check(records, kind=kind, version=version,
                               fallback_runs=settings.live_fallback_runs)
        if not check.demote:
            continue
        change = demote(name, tracking_uri=settings.resolved_tracking_uri, reason=check.reason)
        if change is None:
            continue
        record = {**change.to_dict(), "kind": kind,
                  "runs": [run_id for run_id, *_ in check.streak]}
        write_audit(settings, action="model.demote", target=f"model:{name}",
                    before={"champion": version}, after=record)
        progress(f"  demoted: {check.reason}")
        changes.append(record)
    return changes


def rollback_model(*, settings: Settings, kind: str, reason: str = "",
                   actor: str | None = None) -> dict[str, Any]:
    """Restore the previous champion of model ``kind`` (``early_warning`` |
    ``persistence``): ``models.registry_aliases.rollback`` (recorded in MLflow), and the
    store's audit table. Raises ``models.registry_aliases.RollbackError`` when there is no
    previous champion, ``KeyError`` for an unknown kind."""
    from models.registry_aliases import rollback
    from pipelines.steps_base import model_names

    name = model_names(settings)[kind]
    change = rollback(name, tracking_uri=settings.resolved_tracking_uri, reason=reason)
    record = {**change.to_dict(), "kind": kind}
    write_audit(settings, action="model.rollback", target=f"model:{name}",
                before={"champion": change.from_version}, after=record, actor=actor)
    progress(f"  {kind}: champion v{change.from_version or '-'} -> v{change.to_version} "
             f"({change.reason})")
    return record


#: The audit trail's actor of what the pipeline does by itself (demotions).
ACTOR = "delinq"


def write_audit(settings: Settings, *, action: str, target: str, before: Any, after: Any,
                actor: str | None = None) -> None:
    """Append one row to the store's audit table (migration 0004; the workbench's trail),
    ``actor`` defaulting to :data:`ACTOR`, ``at`` the wall clock (when it was recorded)."""
    from datetime import UTC, datetime

    from serving import store_io
    from serving.store import WorklistStore
    from serving.store_events import audit

    WorklistStore(settings.resolved_store_url, upgrade=True).close()
    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url))
    try:
        with engine.begin() as conn:
            conn.execute(audit.insert().values(
                at=datetime.now(UTC), actor=actor or ACTOR, action=action,
                target=target[:256], before=before, after=after))
    finally:
        engine.dispose()


def served_rules(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """The aging rule's served calibration per population of a run (``models.rule.
    RuleCalibration``, from ``meta["rule_calibrations"]`` recorded by its scoring); empty
    for a run scored before they were recorded (its live figures then compare with the
    rule's key, ``models.live``'s ``rule_basis``)."""
    from models.rule import RuleCalibration

    stored = (meta or {}).get("rule_calibrations") or {}
    return {str(k): RuleCalibration.from_dict(v) for k, v in stored.items()}


def _shadow_live(run: Any, worklist: pd.DataFrame, labels: pd.DataFrame,
                 contacted: AbstractSet[str], rules: Mapping[str, Any] | None = None,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Live performance of what :func:`watch_run` scored beside the run (``meta["shadow"]``,
    one file read once), per population ``{kind: {"version", "table", ...}}``: the shadow
    challengers (``versions``; the untouched slice by ``contacted``) and the champion on
    the random holdout (``holdout``; every holdout account counts, contacted or not: the
    rule, not the model, put it where a collector found it, so it is a random sample of the
    population, ``models.live_agreement``)."""
    import pandas as pd

    from models.live import live_performance
    from serving.shadow import shadow_worklist

    info = (run.meta or {}).get("shadow") or {}
    path = info.get("path")
    if not path or not Path(path).exists():
        return {}, {}
    scores = pd.read_parquet(path)

    def judged(versions: dict[str, str], role: str,
               touched: AbstractSet[str]) -> dict[str, Any]:
        out = {}
        for kind, version in versions.items():
            rows = shadow_worklist(worklist, scores, kind=kind, role=role)
            if not rows.empty:
                out[kind] = {"version": version,
                             **live_performance(rows, labels, contacted=touched,
                                                rule_calibrations=rules).to_dict()}
        return out

    return (judged(info.get("versions") or {}, "challenger", contacted),
            judged(info.get("holdout") or {}, "holdout", frozenset()))


@dataclass(frozen=True)
class ShadowModels:
    """What :func:`watch_run` scores beside a run, loaded once: the populations'
    ``challengers`` (and their ``versions``), with ``settings.live_holdout_share`` the
    ``champions`` that score the holdout (and their versions, ``held``), and ``lines``
    for a model that could not be loaded."""

    challengers: dict[str, Any]
    versions: dict[str, str]
    champions: dict[str, Any]
    held: dict[str, str]
    lines: tuple[str, ...] = ()


def shadow_models(*, settings: Settings) -> ShadowModels:
    """Load the models :func:`watch_run` scores beside a run (see :class:`ShadowModels`); a
    model that cannot be loaded is a line, never a failed run."""
    from models.registry import CHALLENGER, NoChampionError, load_champion, load_model
    from models.registry_aliases import alias_version
    from pipelines.steps_base import model_names

    lines: list[str] = []
    challengers, versions = {}, {}
    uri = settings.resolved_tracking_uri
    for kind, name in model_names(settings).items():
        version = alias_version(name, tracking_uri=uri, alias=CHALLENGER)
        if version is None or version == alias_version(name, tracking_uri=uri):
            continue
        try:
            challengers[kind] = load_model(name, tracking_uri=uri, alias=CHALLENGER)
            versions[kind] = version
        except Exception as exc:  # a broken challenger must not stop the night
            lines.append(f"shadow: {kind} challenger v{version} not scored: {exc}")
    champions, held = {}, {}
    if settings.live_holdout_share > 0:
        for kind, name in model_names(settings).items():
            try:  # the champion that ranked the rest of the population tonight
                champions[kind] = load_champion(name, tracking_uri=uri)
                held[kind] = str(champions[kind].version or "")
            except NoChampionError:  # no gated champion: the rule ranks it all
                continue
            except Exception as exc:  # a broken champion must not stop the night either
                lines.append(f"shadow: {kind} champion not scored on the holdout: {exc}")
    return ShadowModels(challengers, versions, champions, held, tuple(lines))


def watch_run(*, settings: Settings, run_id: str,
              scored: tuple[ShadowModels, pd.DataFrame]) -> list[str]:
    """What the nightly adds to a published run (issue 19): the shadow challengers'
    scores (each population whose registered model has a ``challenger`` other than its
    champion) and, with ``settings.live_holdout_share``, the champion's scores of the
    random holdout's accounts (which the published list ranked by the rule), both written
    to ``<data_dir>/shadow/<run_id>.parquet`` (``serving.shadow``, column ``role``) and named
    in the run's ``meta["shadow"]`` (``versions``: challengers, ``holdout``: champions),
    never published; and warning lines for drift alerts that persisted over
    ``settings.drift_persist_runs`` runs. A model that cannot be loaded or scored is a line,
    never a failed run. The file goes with its run (``serving.store`` retention).
    ``scored``: the models (:func:`shadow_models`) and their scores, computed with the
    run by its account partitions (``serving.partitioned``)."""
    from models.live_policy import persistent_drift
    from serving.store import WorklistStore

    loaded, scores = scored
    lines = list(loaded.lines)
    challengers, versions = loaded.challengers, loaded.versions
    champions, held = loaded.champions, loaded.held
    with WorklistStore(settings.resolved_store_url, upgrade=True) as store:
        if challengers or champions:
            path = shadow_path(settings, run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            scores.to_parquet(path, index=False)
            store.set_run_meta(run_id, "shadow", {
                "path": str(path.resolve()), "versions": versions, "holdout": held,
                "holdout_share": settings.live_holdout_share, "rows": int(len(scores))})
            what = [f"{k} challenger v{v}" for k, v in versions.items()]
            what += [f"{k} champion v{v} on the holdout" for k, v in held.items()]
            progress(f"  shadow: {', '.join(what)} scored {len(scores):,} accounts "
                     "(not published)")
        if settings.drift_persist_runs:
            runs = store.list_runs()
            runs = runs[(runs["status"] == "succeeded") & runs["is_current"]]
            recent = runs.sort_values("as_of").tail(settings.drift_persist_runs)
            history = []
            for rid in recent["run_id"]:
                drift = store.read_drift(rid)
                alerts = drift[drift["flag"] == "alert"]
                history.append(set(zip(alerts["model"], alerts["feature"], strict=True)))
            lines += persistent_drift(history, runs=settings.drift_persist_runs)
    return lines


def shadow_path(settings: Settings, run_id: str) -> Path:
    """Where a run's shadow scores are kept: ``<data_dir>/shadow/<run_id>.parquet``."""
    return Path(settings.data_dir) / "shadow" / f"{run_id}.parquet"


def prune_shadow(*, settings: Settings, runs: pd.DataFrame) -> list[str]:
    """Retention of the shadow files (``<data_dir>/shadow/<run_id>.parquet``): each file
    whose run is gone from the store (``runs``: ``WorklistStore.list_runs`` after the
    store's own retention, or a ``delinq runs delete``) or whose scores were pruned
    (``meta["scores_pruned"]``: without its worklist rows the file judges nothing) is
    deleted. Returns the run ids whose file went. Called by ``pipelines.steps.prune``
    (``delinq runs prune`` and the nightly's retention), so the files follow the store's
    retention settings."""
    folder = Path(settings.data_dir) / "shadow"
    if not folder.is_dir():
        return []
    keep = {str(r.run_id) for r in runs.itertuples(index=False)
            if not (r.meta or {}).get("scores_pruned")}
    gone = []
    for path in sorted(folder.glob("*.parquet")):
        if path.stem not in keep:
            path.unlink(missing_ok=True)
            gone.append(path.stem)
    return gone


def promote_on_live(*, settings: Settings, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """With ``settings.promote_on_live``: promote a shadow challenger that ranked the
    untouched accounts better than the champion (AUC) in the latest
    ``settings.live_fallback_runs`` resolved runs (``models.live_policy.shadow_wins``),
    if it passed the quality gate; audited like a demotion."""
    from models.live_policy import shadow_wins
    from models.registry import CHALLENGER
    from models.registry_aliases import alias_version, promote
    from pipelines.steps_base import model_names

    published = runs[(runs["status"] == "succeeded") & runs["is_current"]]
    records = [{"run_id": r.run_id, "as_of": r.as_of, "meta": r.meta or {}}
               for r in published.itertuples(index=False)]
    uri = settings.resolved_tracking_uri
    changes = []
    for kind, name in model_names(settings).items():
        champion = alias_version(name, tracking_uri=uri)
        challenger = alias_version(name, tracking_uri=uri, alias=CHALLENGER)
        if champion is None or challenger is None:
            continue
        streak = shadow_wins(records, kind=kind, champion=champion, challenger=challenger)
        if len(streak) < settings.live_fallback_runs:
            continue
        figures = "; ".join(f"{d} AUC {a:.3f} vs {b:.3f}" for _, d, a, b in streak)
        reason = (f"{kind} challenger v{challenger} ranked untouched accounts better than "
                  f"champion v{champion} in {len(streak)} consecutive resolved runs "
                  f"({figures}); promoted on live evidence (promote_on_live)")
        try:
            change = promote(name, tracking_uri=uri, version=challenger, reason=reason)
        except ValueError as exc:
            progress(f"  not promoted: {exc}")
            continue
        record = {**change.to_dict(), "kind": kind}
        write_audit(settings, action="model.promote", target=f"model:{name}",
                    before={"champion": champion}, after=record)
        progress(f"  promoted: {reason}")
        changes.append(record)
    return changes


def account_slices(book: Book) -> pd.DataFrame:
    """``account_id``, ``account_segment``, ``account_region`` (the accounts table's, when
    the book has one) and ``first_invoice`` (first issue date) of every invoiced account:
    what ``models.live.live_slices`` slices by."""
    first = (book.invoices.groupby(book.invoices["account_id"].astype(str))["issue_date"]
             .min().rename("first_invoice").reset_index())
    acc = book.accounts
    if acc is None or acc.empty:
        return first.assign(account_segment=None, account_region=None)
    cols = {c: f"account_{c}" for c in ("segment", "region") if c in acc}
    attrs = acc[["account_id", *cols]].rename(columns=cols)
    attrs = attrs.assign(account_id=attrs["account_id"].astype(str))
    return first.merge(attrs, on="account_id", how="left")


def recorded_contacts(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(contacts, promises)`` recorded in the store's events (the workbench's, issue 15;
    the collections loop's data contract, issue 17), every one the store holds: a run's
    window is cut by business date (``models.live.contacted_accounts``)."""
    from serving import store_io
    from serving.store_events import read_contacts, read_promises

    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url),
                                  read_only=True)
    try:
        with engine.connect() as conn:
            return read_contacts(conn), read_promises(conn)
    finally:
        engine.dispose()


def _events_line(contacts: pd.DataFrame, promises: pd.DataFrame) -> str:
    if not len(contacts) and not len(promises):
        return NO_CONTACTS
    return f"recorded events: {len(contacts):,} contacts, {len(promises):,} promises"


def _log(settings: Settings, run: Any, payload: Mapping[str, Any]) -> str:
    from models.live import flat_metrics
    from models.registry import log_live_performance

    return log_live_performance(
        tracking_uri=settings.resolved_tracking_uri, run_id=run.run_id, as_of=run.as_of,
        model_versions={"early_warning": run.early_warning_version,
                        "persistence": run.persistence_version},
        metrics=flat_metrics(payload), payload=payload)
