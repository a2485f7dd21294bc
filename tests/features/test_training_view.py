"""The retrain builds its training set from a projection of the book (issue 11: memory):
``training_view`` keeps only ``TRAINING_COLUMNS``, the training set built from it is the
one built from the whole book (a column the build reads but the view drops fails here),
and the view shares its columns with the book, which it never changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.contract.book import ALL_TABLES, Book, columns_of
from features.pit.sampling import Sampling
from features.pit.training_set import TRAINING_COLUMNS, build_training_set, training_view
from features.synthetic import generate_book
from tests.factories import with_credits


@pytest.fixture(scope="module")
def book() -> Book:
    """Every source a training set reads: invoices, payments, disputes, promises, contacts,
    and credit notes (some naming their invoice: ``reference_invoice_id``)."""
    base = generate_book(60, seed=6, start="2023-01-01", end="2023-12-31", loop=True)
    credited = with_credits(base, np.random.default_rng(6), pd.Timestamp("2023-05-01"), 150,
                            "V")
    return dataclasses.replace(credited, promises=base.promises, contacts=base.contacts)


def test_the_view_holds_only_the_training_columns(book: Book) -> None:
    view = training_view(book)
    assert set(TRAINING_COLUMNS) == set(ALL_TABLES)
    for table in ALL_TABLES:
        kept = list(getattr(view, table).columns)
        assert kept == list(TRAINING_COLUMNS[table])
        assert set(kept) <= set(columns_of(table))  # contract names, no typo
        assert len(getattr(view, table)) == len(getattr(book, table))
    assert "payment_id" in book.payments.columns  # the book itself keeps every column
    assert "payment_id" not in view.payments.columns
    # a projection: the kept columns are the book's own arrays, not copies
    assert np.shares_memory(view.payments["amount"].to_numpy(),
                            book.payments["amount"].to_numpy())


@pytest.mark.parametrize("sampling", [None, Sampling(max_rows=100, seed=2)],
                         ids=["full", "sampled"])
def test_the_training_set_of_the_view_is_the_books(book: Book, sampling: Sampling | None
                                                   ) -> None:
    assert book.has_events and (book.invoices["amount"] < 0).any()
    assert book.invoices["reference_invoice_id"].notna().any()
    dates = list(pd.date_range("2023-07-03", "2023-12-25", freq="35D").date)
    whole = build_training_set(book, as_of_dates=dates, sampling=sampling)
    projected = build_training_set(training_view(book), as_of_dates=dates, sampling=sampling)
    assert len(whole) > 0 and whole["n_contacts_30d"].notna().any()
    pd.testing.assert_frame_equal(projected, whole)
