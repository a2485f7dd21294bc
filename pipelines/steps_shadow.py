"""What the nightly scores beside a published run and what it decides from it (issue 19),
part of the steps layer (:mod:`pipelines.steps`): the **shadow** models (each
population's registered ``challenger`` other than its champion and, with
``live_holdout_share``, the champion on the random holdout's accounts, which the
published list ranked by the aging rule), their scores kept beside the run and never
published (:func:`watch_run`, ``serving.shadow``), the files' retention
(:func:`prune_shadow`), and the promotion of a challenger that ranked better live
(:func:`promote_on_live`, with ``promote_on_live``). The live figures of those scores are
computed by :mod:`pipelines.steps_live` once the run's labels resolve.

No "now": nothing here reads the clock (the audit row's ``at`` is
``pipelines.steps_base.write_audit``'s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.progress import progress
from pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


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
    deleted; a run's resolved holdout rows (``pipelines.steps_live.holdout_rows_path``,
    what later runs pool) go with the run itself. Returns the run ids whose shadow file
    went. Called by ``pipelines.steps.prune`` (``delinq runs prune`` and the nightly's
    retention), so the files follow the store's retention settings."""
    folder = Path(settings.data_dir) / "shadow"
    if not folder.is_dir():
        return []
    runs_kept = {str(r.run_id) for r in runs.itertuples(index=False)}
    for path in sorted((folder / "resolved").glob("*.parquet")):
        if path.stem not in runs_kept:
            path.unlink(missing_ok=True)
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
    from pipelines.steps_base import model_names, write_audit

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

