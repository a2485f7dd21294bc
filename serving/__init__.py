"""Nightly scoring, the worklist, its store and what an analyst reads (DESIGN section 8).

What a notebook needs, re-exported lazily (``import serving.store`` stays light):

- :func:`score_book`: a Book as of a date -> worklist rows, exact SHAP vectors, drift
  (pure; the caller passes the models);
- :func:`load_champions`: the two champion models from an MLflow registry;
- :func:`score_into_store`: score and publish one run atomically into the store;
- :class:`WorklistStore`: the versioned store of runs (SQLite or PostgreSQL) and
  :func:`upgrade`, which applies its schema migrations;
- :func:`format_worklist`: the worklist as terminal text.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.score import ScoreResult, score_book
    from serving.score_run import load_champions, score_into_store
    from serving.store import RunRecord, WorklistStore, upgrade
    from serving.worklist import format_worklist

_EXPORTS = {
    "ScoreResult": "serving.score",
    "load_champions": "serving.score_run",
    "score_book": "serving.score",
    "score_into_store": "serving.score_run",
    "RunRecord": "serving.store",
    "WorklistStore": "serving.store",
    "upgrade": "serving.store",
    "format_worklist": "serving.worklist",
}
__all__ = [
    "RunRecord",
    "ScoreResult",
    "WorklistStore",
    "format_worklist",
    "load_champions",
    "score_book",
    "score_into_store",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
