"""Alias changes after registration (issue 19): demotion of a champion that falls below
the aging rule live, rollback to the previous champion, and the live-performance runs.

Every champion the registry sets is appended to the registered model's tag
:data:`HISTORY_TAG` (comma-separated versions, oldest first): :func:`rollback` undoes the
last change by it. Each alias change is recorded in MLflow twice: on the versions (tags
:data:`DEMOTED_TAG` / :data:`ROLLED_BACK_TAG` with the reason) and as one run of the
experiment :data:`ALIAS_EXPERIMENT` (tags ``action``, ``registered_name``,
``from_version``, ``to_version``, ``reason``). The store's audit table is the caller's
(``pipelines.steps_live``): this module knows MLflow only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.mlflow_store import (
    CHALLENGER,
    CHAMPION,
    NoChampionError,
    client,
    experiment_id,
    log_run_data,
    never_created,
    quiet_mlflow,
    run_artifact_text,
    version_by_alias,
)

#: The registered model's tag listing every version that became champion, oldest first.
HISTORY_TAG: Final = "delinq.champion_history"
#: Version tag: why the version was demoted from champion to challenger.
DEMOTED_TAG: Final = "demoted"
#: Version tag: why the version lost the champion alias to a rollback.
ROLLED_BACK_TAG: Final = "rolled_back"
#: The experiment that holds one run per alias change (demotion, rollback).
ALIAS_EXPERIMENT: Final = "alias-changes"
#: The experiment that holds one run per evaluated scoring run.
LIVE_EXPERIMENT: Final = "live-performance"


class RollbackError(LookupError):
    """No previous champion to restore."""


@dataclass(frozen=True)
class AliasChange:
    """One alias change: ``action`` (``demote`` | ``rollback``), the champion before
    (``from_version``, None when there was none) and after (``to_version``, None when the
    aging rule ranks the population now), the reason and the MLflow run recording it."""

    action: str
    registered_name: str
    from_version: str | None
    to_version: str | None
    reason: str
    mlflow_run_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for a run's meta and the audit table."""
        return {"action": self.action, "registered_name": self.registered_name,
                "from_version": self.from_version, "to_version": self.to_version,
                "reason": self.reason, "mlflow_run_id": self.mlflow_run_id}


def record_champion(mlflow_client: MlflowClient, registered_name: str, version: str) -> None:
    """Append ``version`` to the champion history (called where the alias is set)."""
    history = _history(mlflow_client, registered_name)
    mlflow_client.set_registered_model_tag(registered_name, HISTORY_TAG,
                                           ",".join([*history, str(version)]))


def champion_history(registered_name: str, *, tracking_uri: str) -> list[str]:
    """Versions that became champion of ``registered_name``, oldest first (a version
    promoted, rolled back and restored appears twice); empty when none did."""
    with quiet_mlflow():
        return _history(client(tracking_uri), registered_name)


def _history(mlflow_client: MlflowClient, registered_name: str) -> list[str]:
    try:
        tags = mlflow_client.get_registered_model(registered_name).tags or {}
    except MlflowException:
        return []
    if HISTORY_TAG in tags:
        return [v for v in tags[HISTORY_TAG].split(",") if v]
    # Registered before the history tag: the versions whose run says it was promoted.
    out = []
    for mv in mlflow_client.search_model_versions(f"name = '{registered_name}'"):
        if not mv.run_id:
            continue
        try:
            if mlflow_client.get_run(mv.run_id).data.tags.get("promotion") == CHAMPION:
                out.append(str(mv.version))
        except MlflowException:
            continue
    return sorted(out, key=int)


def demote(registered_name: str, *, tracking_uri: str, reason: str) -> AliasChange | None:
    """Move the champion of ``registered_name`` to ``challenger`` (tag
    :data:`DEMOTED_TAG` = ``reason``): scoring then ranks its population with the aging
    rule until a retraining promotes a version or :func:`rollback` restores one. None when
    there is no champion."""
    with quiet_mlflow():
        c = client(tracking_uri)
        mv = version_by_alias(c, registered_name, CHAMPION)
        if mv is None:
            return None
        version = str(mv.version)
        c.set_model_version_tag(registered_name, version, DEMOTED_TAG, reason)
        c.delete_registered_model_alias(registered_name, CHAMPION)
        c.set_registered_model_alias(registered_name, CHALLENGER, version)
        return _record(c, tracking_uri, "demote", registered_name, version, None, reason)


def rollback(registered_name: str, *, tracking_uri: str, reason: str = "") -> AliasChange:
    """Restore the previous champion of ``registered_name``: the last entry of the champion
    history before the current champion (when the champion was demoted, the demoted one).
    The version that loses the alias is tagged :data:`ROLLED_BACK_TAG` and leaves the
    history. Raises :class:`RollbackError` when there is no previous champion."""
    why = reason or "rolled back by an operator"
    with quiet_mlflow():
        c = client(tracking_uri)
        history = _history(c, registered_name)
        current = version_by_alias(c, registered_name, CHAMPION)
        now = None if current is None else str(current.version)
        rest = list(history)
        if now is not None:
            while rest and rest[-1] == now:
                rest.pop()
        if not rest:
            raise RollbackError(
                f"no previous champion of '{registered_name}' to restore (champion history: "
                f"{', '.join(history) or 'none'})")
        target = rest[-1]
        if now is not None:
            c.set_model_version_tag(registered_name, now, ROLLED_BACK_TAG, why)
        c.set_registered_model_alias(registered_name, CHAMPION, target)
        c.set_registered_model_tag(registered_name, HISTORY_TAG, ",".join(rest))
        challenger = version_by_alias(c, registered_name, CHALLENGER)
        if challenger is not None and str(challenger.version) == target:
            c.delete_registered_model_alias(registered_name, CHALLENGER)
        return _record(c, tracking_uri, "rollback", registered_name, now, target, why)


def _record(c: MlflowClient, tracking_uri: str, action: str, name: str,
            before: str | None, after: str | None, reason: str) -> AliasChange:
    exp = experiment_id(c, tracking_uri, ALIAS_EXPERIMENT)
    run = c.create_run(exp, run_name=f"{action} {name}", tags={
        "action": action, "registered_name": name, "from_version": str(before or ""),
        "to_version": str(after or ""), "reason": reason[:5000]})
    c.set_terminated(run.info.run_id)
    return AliasChange(action=action, registered_name=name, from_version=before,
                       to_version=after, reason=reason, mlflow_run_id=run.info.run_id)


def log_live_performance(
    *, tracking_uri: str, run_id: str, as_of: Any, model_versions: Mapping[str, Any],
    metrics: Mapping[str, float], payload: Mapping[str, Any],
    experiment: str = LIVE_EXPERIMENT,
) -> str:
    """Log a scoring run's live performance (``models.live``) as one MLflow run of
    ``experiment``, tagged ``delinq.run_id``, ``delinq.as_of`` and each model's version
    (``delinq.<model>_version``); ``metrics`` as given (``models.live.flat_metrics``),
    ``payload`` as the artifact ``live_performance.json``. Returns the MLflow run id; a
    re-evaluation logs a new run."""
    with quiet_mlflow():
        c = client(tracking_uri)
        exp_id = experiment_id(c, tracking_uri, experiment)
        tags = {"delinq.run_id": run_id, "delinq.as_of": str(as_of)}
        tags |= {f"delinq.{m}_version": str(v) for m, v in model_versions.items()
                 if v is not None}
        run = c.create_run(exp_id, run_name=f"live {as_of} {run_id}", tags=tags)
        mlflow_run = run.info.run_id
        try:
            log_run_data(c, mlflow_run, {}, metrics)
            c.log_dict(mlflow_run, dict(payload), "live_performance.json")
        except BaseException:
            c.set_terminated(mlflow_run, status="FAILED")
            raise
        c.set_terminated(mlflow_run)
    return mlflow_run




def alias_version(registered_name: str, *, tracking_uri: str,
                  alias: str = CHAMPION) -> str | None:
    """The version under ``alias`` (default ``champion``), or None when there is none."""
    if never_created(tracking_uri):
        return None
    with quiet_mlflow():
        mv = version_by_alias(client(tracking_uri), registered_name, alias)
    return None if mv is None else str(mv.version)


def promote(registered_name: str, *, tracking_uri: str, version: str,
            reason: str) -> AliasChange:
    """Make ``version`` the champion (live evidence, ``promote_on_live``): the old champion
    becomes ``challenger``; recorded like the other changes. Raises ``ValueError`` when the
    version has no recorded gate pass (scoring would refuse it)."""
    from models.gate import PASSED, TAG

    with quiet_mlflow():
        c = client(tracking_uri)
        mv = c.get_model_version(registered_name, str(version))
        if (mv.tags or {}).get(TAG) != PASSED:
            raise ValueError(f"v{version} of '{registered_name}' has no recorded gate pass")
        old = version_by_alias(c, registered_name, CHAMPION)
        c.set_registered_model_alias(registered_name, CHAMPION, str(version))
        record_champion(c, registered_name, str(version))
        if old is not None and str(old.version) != str(version):
            c.set_registered_model_alias(registered_name, CHALLENGER, str(old.version))
        return _record(c, tracking_uri, "promote", registered_name,
                       None if old is None else str(old.version), str(version), reason)


__all__ = ["ALIAS_EXPERIMENT", "alias_version", "DEMOTED_TAG", "HISTORY_TAG", "LIVE_EXPERIMENT",
           "ROLLED_BACK_TAG", "AliasChange", "NoChampionError", "RollbackError",
           "champion_history", "demote", "log_live_performance", "promote", "record_champion",
           "rollback"]


#: The training run's artifact holding the model's period spread (``models.live_period``).
PERIOD_ARTIFACT: Final = "period_spread.json"


def log_period_spread(*, tracking_uri: str, run_id: str, spread: Mapping[str, Any]) -> None:
    """Store a model version's period spread (``models.live_agreement.PeriodSpread.to_dict``,
    computed at training time) on its training run: the artifact :data:`PERIOD_ARTIFACT`
    and the metrics ``period.sigma_lag<j>`` (AUC units), so the live check reads what was
    fixed before any live label existed."""
    metrics = {f"period.sigma_lag{j}": float(v)
               for j, v in enumerate(spread.get("sigma_by_lag", ()), start=1)}
    with quiet_mlflow():
        c = client(tracking_uri)
        c.log_dict(run_id, dict(spread), PERIOD_ARTIFACT)
        log_run_data(c, run_id, {"period.windows": len(spread.get("windows", ()))}, metrics)


def period_spread_of(registered_name: str, version: str, *,
                     tracking_uri: str) -> dict[str, Any] | None:
    """The period spread recorded when ``version`` of ``registered_name`` was trained
    (:func:`log_period_spread`), or None (trained before it was recorded, or unknown)."""
    import json

    if never_created(tracking_uri):
        return None
    with quiet_mlflow():
        c = client(tracking_uri)
        try:
            run_id = c.get_model_version(registered_name, str(version)).run_id
            return dict(json.loads(run_artifact_text(c, run_id, PERIOD_ARTIFACT,
                                                     tracking_uri=tracking_uri)))
        except (MlflowException, OSError, ValueError):
            return None
