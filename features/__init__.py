"""Raw data contract, adapters, synthetic data, and point-in-time features and labels.

Subpackages, one per part of the domain:

- :mod:`features.spec`: the leaf spec (feature definitions, segments, models, tolerances);
- :mod:`features.contract`: the Book, data folders, validation and quarantine;
- :mod:`features.adapters`: real export formats -> contract tables;
- :mod:`features.synthetic`: the synthetic book;
- :mod:`features.pit`: point-in-time features, labels and training sets.

What a notebook needs is re-exported here, lazily, so ``import features.contract`` stays
light (the point-in-time kernels pull in numba).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from features.contract import Book, read_folder, validate_folder, validate_tables
    from features.pit import (
        as_of_grid,
        build_features,
        build_labels,
        build_training_set,
        open_invoices,
    )
    from features.spec import FEATURE_DESCRIPTIONS, FEATURE_SET_VERSION, feature_names
    from features.synthetic import generate_book, write_book_folder

_EXPORTS = {
    "Book": "features.contract",
    "read_folder": "features.contract",
    "validate_folder": "features.contract",
    "validate_tables": "features.contract",
    "generate_book": "features.synthetic",
    "write_book_folder": "features.synthetic",
    "build_features": "features.pit",
    "build_labels": "features.pit",
    "as_of_grid": "features.pit",
    "build_training_set": "features.pit",
    "open_invoices": "features.pit",
    "FEATURE_DESCRIPTIONS": "features.spec",
    "FEATURE_SET_VERSION": "features.spec",
    "feature_names": "features.spec",
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
    "generate_book",
    "open_invoices",
    "read_folder",
    "validate_folder",
    "validate_tables",
    "write_book_folder",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'features' has no attribute {name!r}")
