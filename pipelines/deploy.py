"""Deployments on a real Prefect server: ``nightly-score`` and ``weekly-retrain``.

``delinq schedule`` registers both deployments with their cron schedules (timezone from
settings) on the server named by ``PREFECT_API_URL``; ``delinq schedule --serve`` also runs
the process that executes them (a Prefect runner: it polls the server, and each scheduled
or triggered run executes in a subprocess). Registering without serving is enough for a
runner started later with the same deployment names (``--serve`` again) to pick up runs.

A local server: ``prefect server start`` (SQLite under ``PREFECT_HOME``), then
``export PREFECT_API_URL=http://127.0.0.1:4200/api``; the UI is at http://127.0.0.1:4200.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import PrefectServerUnavailable
from pipelines.settings import Settings

NIGHTLY = "nightly-score"
WEEKLY = "weekly-retrain"

_HOW_TO_START = (
    "start one with `prefect server start` (UI at http://127.0.0.1:4200) and "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


def deployment_full_names() -> list[str]:
    """``<flow name>/<deployment name>`` of the two deployments (for ``run_deployment``)."""
    return [f"{NIGHTLY}/{NIGHTLY}", f"{WEEKLY}/{WEEKLY}"]


def api_url() -> str | None:
    """The Prefect API URL in force (settings, profile or environment), or ``None``."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def check_server() -> str:
    """The URL of a running, healthy Prefect server; else :class:`PrefectServerUnavailable`
    with a message saying how to start one."""
    from prefect.client.orchestration import get_client

    url = api_url()
    if not url:
        raise PrefectServerUnavailable(f"PREFECT_API_URL is not set: {_HOW_TO_START}")
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise PrefectServerUnavailable(
            f"the Prefect server at {url} does not answer ({error}): {_HOW_TO_START}"
        )
    return url


def build_deployments(settings: Settings, *, data_source: str | None = None) -> list[Any]:
    """The two runner deployments (not yet registered) with cron schedules in the settings'
    timezone and JSON parameters: the data folder to ingest and the settings to run with.

    ``data_source`` defaults to ``<data_dir>/book`` (where ``delinq demo`` writes).
    """
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from pipelines.flows import book_folder, nightly_score, settings_params, weekly_retrain

    source = str(Path(data_source or book_folder(settings)).resolve())
    params = {"data_source": source, "settings": settings_params(settings)}
    common: dict[str, Any] = {
        "parameters": params,
        "tags": ["delinq"],
        # Module path, not file path: the runner imports the installed package wherever
        # it runs from.
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return [
        nightly_score.to_deployment(
            NIGHTLY,
            schedule=Cron(settings.nightly_cron, timezone=settings.timezone),
            description="Score every account with open receivables as of today; write the "
            "worklist before the analysts arrive.",
            **common,
        ),
        weekly_retrain.to_deployment(
            WEEKLY,
            schedule=Cron(settings.weekly_cron, timezone=settings.timezone),
            description="Rebuild the training set, retrain both models, promote only if "
            "better than the champion.",
            **common,
        ),
    ]


def create_deployments(
    settings: Settings, *, serve: bool = False, data_source: str | None = None
) -> list[str]:
    """Create (or update) ``nightly-score`` and ``weekly-retrain`` on the running Prefect
    server and return their full names; with ``serve=True`` also execute their runs here
    until interrupted (Ctrl-C).

    Raises :class:`PrefectServerUnavailable` when ``PREFECT_API_URL`` is unset or the
    server does not answer.
    """
    check_server()
    deployments = build_deployments(settings, data_source=data_source)
    for deployment in deployments:
        deployment.apply()
    names = deployment_full_names()
    if serve:
        from prefect import serve as prefect_serve

        # Schedules stay active when this process stops, so runs due meanwhile wait for
        # the next runner instead of being silently paused.
        prefect_serve(*deployments, pause_on_shutdown=False)
    return names
