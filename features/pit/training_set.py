"""Training sets: point-in-time features joined with labels over a grid of ``as_of`` dates.

The rows for each date are exactly what :func:`features.build_features` and
:func:`features.build_labels` return for that date (the same kernels; the book is only
encoded once for the whole grid), stacked in grid order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit import _kernels, _prep
from features.pit.labels import default_data_end, label_columns, labels_frame
from features.spec import (
    DEFAULT_MATERIALITY,
    DELINQUENT_DPD,
    PERSISTENCE_DAYS,
    Materiality,
    as_day,
)


def as_of_grid(book: Book, *, freq: Literal["weekly", "monthly"] = "weekly",
               start: date | pd.Timestamp | None = None,
               end: date | pd.Timestamp | None = None) -> list[date]:
    """Snapshot dates from ``start`` to ``end`` inclusive, every 7 days from ``start``
    (weekly) or on the first of each month (monthly).

    Defaults: ``start`` = the book's first issue date + 182 days (some history to learn
    from), ``end`` = the day after the book's last event.
    """
    lo = as_day(start) if start is not None else as_day(book.first_date) + timedelta(days=182)
    hi = as_day(end) if end is not None else default_data_end(book)
    if freq == "weekly":
        days = pd.date_range(lo, hi, freq="7D")
    elif freq == "monthly":
        days = pd.date_range(lo, hi, freq="MS")
    else:
        raise ValueError(f"freq must be 'weekly' or 'monthly', got {freq!r}")
    return [d.date() for d in days]


def build_training_set(book: Book, *, as_of_dates: Iterable[date | pd.Timestamp],
                       delinquency_dpd: int = DELINQUENT_DPD,
                       persistence_days: int = PERSISTENCE_DAYS,
                       data_end: date | pd.Timestamp | None = None,
                       materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
    """Stacked ``build_features`` rows joined with ``build_labels`` on (account_id, as_of).

    One row per account with an open invoice at each date; columns are the feature frame's
    followed by ``model``, ``y``, ``label_resolved_date``, ``censored`` and
    ``delinquent_amount``. Censored rows are kept (filter on ``censored`` to train).
    """
    end = default_data_end(book) if data_end is None else as_day(data_end)
    label_kw = dict(delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
                    data_end=end, materiality=materiality)
    prep = _prep.prepare(book)
    rows_all, parts = [], []
    for d in as_of_dates:
        as_of = as_day(d)
        rows, feats = _kernels.feature_columns(prep, as_of, materiality=materiality)
        label_rows, labels = label_columns(prep, as_of, **label_kw)
        # both populations are "accounts with an open invoice at as_of", in account order,
        # so the join on (account_id, as_of) is positional
        if not np.array_equal(rows, label_rows):
            raise AssertionError("features and labels disagree on the population")
        rows_all.append(rows)
        parts.append(pd.DataFrame({**feats, **labels}, copy=False))
    if not parts:
        frame = _kernels.features_frame(prep, end, materiality=materiality).iloc[:0]
        return frame.merge(labels_frame(prep, end, **label_kw).iloc[:0],
                           on=["account_id", "as_of"])
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "account_id", _kernels.account_id_column(prep, np.concatenate(rows_all)))
    return out
