"""What the workbench is given: where the store and state are, and its role policy.

A small frozen object built by the caller (``pipelines.cli_workbench`` builds it from the
settings); the workbench reads no settings, environment or clock of its own: the clock is
part of the config, so tests can move time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path


class AnalystScope(StrEnum):
    """Which accounts an analyst may record outcomes on."""

    ANY = "any"
    ASSIGNED = "assigned"


def utc_now() -> datetime:
    """The wall clock in UTC (the default ``clock``)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkbenchConfig:
    """The workbench's inputs.

    ``store_url``: the worklist store (SQLite or PostgreSQL; a secret, never shown
    unmasked). ``state_dir``: the state folder; the session key is
    ``<state_dir>/workbench/session.key`` (mode 0600) and the account-history index
    ``<state_dir>/workbench/history/``. ``book_dir``: the staged book the history index is
    built from (None: no invoices and payments on the account page). ``export_dir``: the
    store's export root (where published runs' files are found). ``analyst_scope``: any
    account, or only those assigned to the analyst. ``session_hours``: lifetime of a
    sign-in. ``login_max_failures`` failed sign-ins per username and client within
    ``login_window_s`` seconds, then 429 until the window passes. ``cookie_secure``: send
    the session cookie only over HTTPS (set it behind TLS). ``tracking_uri`` (a secret: it may
    hold credentials) and ``registered_names`` (model -> registered MLflow name): where the
    run page finds each model version's test metrics beside the baselines (none shown
    without them). ``label_horizon_days``: days after a run's ``as_of`` by which its
    labels resolve (``models.live.label_horizon_days`` of the settings' horizons): the run
    page says when a run's live performance is due. ``clock``: UTC now.
    """

    store_url: str
    state_dir: Path
    book_dir: Path | None = None
    export_dir: Path | None = None
    analyst_scope: AnalystScope = AnalystScope.ANY
    session_hours: float = 12.0
    login_max_failures: int = 5
    login_window_s: float = 300.0
    cookie_secure: bool = False
    tracking_uri: str | None = field(default=None, repr=False)
    registered_names: Mapping[str, str] = field(default_factory=dict)
    #: The settings' defaults: delinquency_dpd 30 + persistence_days 30.
    label_horizon_days: int = 60
    clock: Callable[[], datetime] = field(default=utc_now, repr=False)

    @property
    def workbench_dir(self) -> Path:
        """``<state_dir>/workbench``: the session key and the history index."""
        return Path(self.state_dir) / "workbench"


def default_workers() -> int:
    """Server processes of ``delinq serve`` when none are given: one per CPU."""
    return os.cpu_count() or 1
