"""Raw data contract, loaders, synthetic data and point-in-time features and labels.

The feature/label API is re-exported lazily so ``import features.book`` stays light (the
kernels pull in numba).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from features.book import Book
    from features.labels import build_labels
    from features.pit import (
        FEATURE_DESCRIPTIONS,
        FEATURE_SET_VERSION,
        build_features,
        feature_names,
    )
    from features.training_set import as_of_grid, build_training_set

_EXPORTS = {
    "Book": "features.book",
    "build_labels": "features.labels",
    "FEATURE_DESCRIPTIONS": "features.pit",
    "FEATURE_SET_VERSION": "features.pit",
    "build_features": "features.pit",
    "feature_names": "features.pit",
    "as_of_grid": "features.training_set",
    "build_training_set": "features.training_set",
}
__all__ = [
    "FEATURE_DESCRIPTIONS",
    "FEATURE_SET_VERSION",
    "Book",
    "as_of_grid",
    "build_features",
    "build_labels",
    "build_training_set",
    "feature_names",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'features' has no attribute {name!r}")
