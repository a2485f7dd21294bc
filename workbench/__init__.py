"""The analysts' workbench (DESIGN section 1, use 2): users and roles, recorded outcomes as
append-only events, a REST API and its pages, over the worklist store.

Layering: workbench sits above ``serving`` (it reads runs through ``serving.store``) and
below ``pipelines`` (whose CLI builds its :class:`WorkbenchConfig` from the settings and
serves it); it never imports Prefect or the pipelines.

- :func:`create_app`: the FastAPI app over a :class:`WorkbenchConfig`
  (:func:`open_workbench` opens its store and key first; :func:`refresh_history` indexes
  the staged book for the account page; :func:`serve_workers` serves an app factory
  with uvicorn in several processes);
- :mod:`workbench.users`: users, tokens and the audit trail (``delinq users``);
- :mod:`workbench.events`: the event kinds, their rules and ``record_event``;
- :mod:`workbench.history`: the account-history index of the staged book.

Re-exported lazily, so ``import workbench.config`` stays light (no FastAPI).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.app import (
        create_app,
        open_store_engine,
        open_workbench,
        refresh_history,
        serve_workers,
    )
    from workbench.config import AnalystScope, WorkbenchConfig

_EXPORTS = {
    "create_app": "workbench.app",
    "open_store_engine": "workbench.app",
    "open_workbench": "workbench.app",
    "refresh_history": "workbench.app",
    "serve_workers": "workbench.app",
    "AnalystScope": "workbench.config",
    "WorkbenchConfig": "workbench.config",
}
__all__ = ["AnalystScope", "WorkbenchConfig", "create_app", "open_store_engine",
           "open_workbench", "refresh_history", "serve_workers"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
