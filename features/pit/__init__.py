"""Point-in-time features, labels and training sets (DESIGN sections 4-6).

``build_features(book, as_of=...)`` is what nightly scoring calls with one date;
``open_invoices(book, as_of=...)`` lists the invoices behind them by the same rule;
``build_training_set`` stacks the same computation with the labels over a grid of dates.
Everything uses only what is dated strictly before ``as_of``.
"""

from features.pit.features import build_features
from features.pit.labels import build_labels
from features.pit.open_invoices import open_invoices
from features.pit.sampling import Sampling
from features.pit.training_set import as_of_grid, build_training_set, write_training_set

__all__ = ["Sampling", "as_of_grid", "build_features", "build_labels", "build_training_set",
           "open_invoices", "write_training_set"]
