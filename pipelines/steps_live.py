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
``pipelines.steps_shadow.watch_run``): the unbiased sample ``models.live_agreement``
compares with the offline test period (the ``untouched`` slice is not one: the contacted
top is gone).

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
from pipelines.steps_base import write_audit

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
    models_uri: str | None = None,
) -> LiveSummary:
    """Evaluate the published runs whose labels resolved in the staged book ``book`` and
    that have no live performance yet (every resolved run with ``redo``); see the module
    docstring. ``contacts(run_id)``: the account ids with a recorded contact or promise
    between that run's ``as_of`` and their label's resolution (default: the store's
    recorded events, :func:`recorded_contacts`). Each random holdout is judged against its
    champion version's offline test period (:func:`judge_holdouts`), what its training
    recorded read from the registry at ``models_uri`` (default: the settings' store)."""
    from features.pit.labels import build_labels, default_data_end
    from models.live import (
        contacted_accounts,
        headline,
        label_horizon_days,
        live_performance,
        live_slices,
    )
    from models.live_agreement import holdout_lines
    from models.live_verdict import agreement_lines
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
        references: dict[tuple[str, str], tuple[Any, Any]] = {}

        def reference(kind: str, version: str) -> tuple[Any, Any]:
            if (kind, version) not in references:  # read once per version
                references[kind, version] = champion_reference(
                    settings, kind, version, models_uri=models_uri)
            return references[kind, version]

        earlier = [(r.run_id, r.as_of) for r in published.itertuples(index=False)]
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
            shadow, holdout, held = _shadow_live(run, worklist, labels, contacted, rules)
            if shadow:
                store.set_run_meta(run.run_id, "live_shadow", shadow)
            slices = live_slices(worklist, labels, accounts, as_of=run.as_of,
                                 contacted=contacted, rule_calibrations=rules)
            payload = {
                "slices": slices,
                "holdout": holdout,
                "agreement": judge_holdouts(
                    settings=settings, run=run, held=held, earlier=earlier,
                    versions=((run.meta or {}).get("shadow") or {}).get("holdout") or {},
                    reference=reference),
                "as_of": run.as_of.isoformat(),
                "data_end": data_end.isoformat(),
                "label_horizon_days": horizon,
                "contacts": source,
                **live.to_dict(),
            }
            payload["mlflow_run_id"] = _log(settings, run, payload)
            store.set_run_meta(run.run_id, "live", payload)
            line = headline(payload)
            # per holdout, live vs offline (or, where its champion's offline test period
            # was not recorded, the evidence rule's count of its accounts)
            judged = agreement_lines(payload)
            line = "; ".join([line, *(judged or holdout_lines(payload))])
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
            from pipelines.steps_shadow import promote_on_live

            demotions += promote_on_live(settings=settings, runs=store.list_runs())
    return LiveSummary(data_end=data_end, evaluated=tuple(rows), pending=pending,
                       seconds=time.perf_counter() - t0, demotions=tuple(demotions))


def apply_demotions(*, settings: Settings, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Demote each champion whose last ``settings.live_fallback_runs`` judged runs ranked
    untouched accounts below the aging rule (``models.live_policy.demotion_check`` over the
    published ``runs`` of ``WorklistStore.list_runs``): the registry moves it to
    ``challenger`` with the reason (the next scoring's aging-rule line says it), and the
    store's audit table records it (actor :data:`pipelines.steps_base.ACTOR`). Returns the
    changes made."""
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
                 ) -> tuple[dict[str, Any], dict[str, Any], dict[str, pd.DataFrame]]:
    """Live performance of what ``pipelines.steps_shadow.watch_run`` scored beside the
    run (``meta["shadow"]``, one file read once), per population ``{kind: {"version",
    "table", ...}}``: the shadow challengers (``versions``; the untouched slice by
    ``contacted``) and the champion on the random holdout (``holdout``; every holdout
    account counts, contacted or not: the rule, not the model, put it where a collector
    found it, so it is a random sample of the population, ``models.live_agreement``); and
    per population the holdout's resolved rows
    (``account_id``, ``y``, ``probability``: what the live check judges)."""
    import pandas as pd

    from models.live import live_performance, resolved_rows
    from serving.shadow import shadow_worklist

    info = (run.meta or {}).get("shadow") or {}
    path = info.get("path")
    if not path or not Path(path).exists():
        return {}, {}, {}
    scores = pd.read_parquet(path)
    held_rows = {}
    for kind in info.get("holdout") or {}:
        rows = resolved_rows(shadow_worklist(worklist, scores, kind=kind, role="holdout"),
                             labels)
        held_rows[kind] = rows[["account_id", "y", "probability"]]

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
            judged(info.get("holdout") or {}, "holdout", frozenset()), held_rows)


def judge_holdouts(*, settings: Settings, run: Any, held: Mapping[str, pd.DataFrame],
                   versions: Mapping[str, str], earlier: list[tuple[str, date]],
                   reference: Callable[[str, str], tuple[Any, Any]],
                   ) -> dict[str, dict[str, Any]]:
    """The live check of a run's random holdouts (``models.live_verdict``): ``held``, per
    population, its resolved rows; ``versions`` the champion version that scored each.
    The rows are kept (:func:`holdout_rows_path`, with the version) so that a later run
    pools them: each population is judged on this run alone and pooled with the
    ``earlier`` published runs (``(run_id, as_of)``) whose kept rows the same version
    scored. ``reference(kind, version)``: that version's offline test rows and period
    spread (:func:`champion_reference`; None, None when not recorded). Returns per
    population ``{"version", "run", "pooled"}`` (``models.live_verdict.judge_holdout``)
    or ``{"version", "line"}`` (``models.live_verdict.NOT_RECORDED``)."""
    import pandas as pd

    from models.live_verdict import NOT_RECORDED, judge_holdout

    path = holdout_rows_path(settings, run.run_id)
    mine = [rows.assign(model=kind, version=str(versions[kind]))
            for kind, rows in held.items()]
    if mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(mine, ignore_index=True).to_parquet(path, index=False)
    kept = {}
    for run_id, as_of in earlier:
        other = holdout_rows_path(settings, run_id)
        if as_of < run.as_of and other.exists():
            kept[as_of.isoformat()] = pd.read_parquet(other)
    out: dict[str, dict[str, Any]] = {}
    for kind, rows in held.items():
        version = str(versions[kind])
        offline, period = reference(kind, version)
        if offline is None:
            out[kind] = {"version": version, "line": NOT_RECORDED}
            continue
        runs = {day: frame[(frame["model"] == kind) & (frame["version"] == version)]
                for day, frame in kept.items()}
        runs = {day: frame for day, frame in runs.items() if len(frame)}
        runs[run.as_of.isoformat()] = rows
        out[kind] = {"version": version, **judge_holdout(runs, offline, period=period)}
    return out


def champion_reference(settings: Settings, kind: str, version: str, *,
                       models_uri: str | None = None) -> tuple[Any, Any]:
    """What the live check compares ``version`` of the ``kind`` model with, recorded when
    it was trained: its offline test rows (``models.registry_offline.offline_test_of``)
    and its ``models.live_agreement.PeriodSpread`` (None each when not recorded), read
    from the registry at ``models_uri`` (default: the settings' tracking store)."""
    from models.live_agreement import PeriodSpread
    from models.registry_aliases import period_spread_of
    from models.registry_offline import offline_test_of
    from pipelines.steps_base import model_names

    uri = models_uri or settings.resolved_tracking_uri
    name = model_names(settings)[kind]
    offline = offline_test_of(name, version, tracking_uri=uri)
    spread = period_spread_of(name, version, tracking_uri=uri)
    return offline, None if spread is None else PeriodSpread.from_dict(spread)


def holdout_rows_path(settings: Settings, run_id: str) -> Path:
    """Where a run's resolved holdout rows are kept for pooling (:func:`judge_holdouts`):
    ``<data_dir>/shadow/resolved/<run_id>.parquet``, removed with the run
    (``pipelines.steps_shadow.prune_shadow``)."""
    return Path(settings.data_dir) / "shadow" / "resolved" / f"{run_id}.parquet"


def account_slices(book: Book) -> pd.DataFrame:
    """``account_id``, ``account_segment``, ``account_region`` (the accounts table's, when
    the book has one) and ``first_invoice`` (first issue date) of every invoiced account:
    what ``models.live.live_slices`` slices by."""
    # grouped on the accounts' codes (no id string per invoice), the few ids then as text
    first = (book.invoices.groupby("account_id", observed=True)["issue_date"]
             .min().rename("first_invoice").reset_index())
    first["account_id"] = first["account_id"].astype(str)
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
