"""The synthetic collections loop (``features.synthetic.loop``): valid, deterministic, and
with its documented effect (promise breakers are riskier, keepers less so)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import Book, build_labels, generate_book
from features.contract.validation import validate_folder, validate_tables
from features.pit.loop import loop_features
from features.synthetic import write_book_folder
from features.synthetic.loop import loop_events


@pytest.fixture(scope="module")
def book() -> Book:
    return generate_book(250, seed=4, start="2023-01-01", end="2024-03-31", loop=True)


def test_loop_events_are_valid_deterministic_and_carry_their_effect(book: Book) -> None:
    assert len(book.promises) > 100 and len(book.contacts) > len(book.promises)
    # the generator's streamed loop (one block here) is the rule applied to the whole Book
    # (loop_events reads only its invoices and payments)
    again = loop_events(book, seed=4)
    pd.testing.assert_frame_equal(again[0], book.promises)
    pd.testing.assert_frame_equal(again[1], book.contacts)
    # the tables pass the contract's own rules
    raw = {t: f for t, f in book.tables().items()}
    assert validate_tables(raw, max_bad_share=0.0).ok

    # At as_of dates through the book, accounts that broke a promise in the last 180
    # days go delinquent more often than those that kept every promise.
    rates = {"broken": [], "kept": []}
    for as_of in pd.date_range("2023-07-01", "2023-12-01", freq="MS"):
        labels = build_labels(book, as_of=as_of)
        labels = labels[~labels["censored"]]
        feats = loop_features(book, as_of=as_of, accounts=labels["account_id"].tolist())
        y = labels["y"].to_numpy()
        broke = feats["n_broken_promises_180d"].to_numpy() > 0
        kept = ~broke & (feats["kept_promise_share_365d"].to_numpy() == 1.0)
        rates["broken"] += list(y[broke])
        rates["kept"] += list(y[kept])
    broken, kept = (sum(v) / len(v) for v in (rates["broken"], rates["kept"]))
    assert len(rates["broken"]) > 30 and len(rates["kept"]) > 30
    assert broken > kept + 0.1, (broken, kept)


def test_a_book_ending_before_its_window_has_no_contact_after_its_last_event(
        tmp_path: Path) -> None:
    # Generated a block at a time, the contacts are first cut at the window's end, then at
    # the book's last event (a tiny book's comes earlier): as loop_events cuts them.
    kw = {"seed": 36, "end": "2023-12-31"}
    tiny = generate_book(2, loop=True, **kw)
    # the case: 23 contacts before the window's end, 21 before the last event (measured)
    assert tiny.last_date < pd.Timestamp("2023-12-31")
    promises, contacts = loop_events(tiny, seed=36)
    pd.testing.assert_frame_equal(tiny.contacts, contacts)
    pd.testing.assert_frame_equal(tiny.promises, promises)
    assert tiny.contacts["contact_date"].lt(tiny.last_date).all()
    write_book_folder(2, tmp_path, fmt="csv", loop=True, **kw)
    written = validate_folder(tmp_path).book
    for table, key in (("promises", "promise_id"), ("contacts", "contact_id")):
        pd.testing.assert_frame_equal(  # (validation orders the rows its own way)
            getattr(written, table).sort_values(key, ignore_index=True), getattr(tiny, table))


def test_the_training_sets_loop_rows_change_no_loop_feature(book: Book) -> None:
    # A training set matches each event row to its account once for all its dates and
    # computes a date's loop features from the rows of that date's accounts only
    # (features.pit._loop_rows): the features must be those of the whole book from scratch,
    # also for promises without an invoice (paid by their account's payments) and one
    # naming another account's invoice.
    from dataclasses import replace

    import numpy as np

    from features.pit._loop_rows import LoopRows
    from features.pit._prep import prepare
    from features.pit.loop import with_loop_features

    promises = book.promises.copy()
    promises.loc[promises.index[::3], "invoice_id"] = None
    owner = book.invoices.set_index("invoice_id")["account_id"]
    first = promises.index[promises["invoice_id"].notna()][0]
    promises.loc[first, "invoice_id"] = owner[owner != promises.loc[first, "account_id"]].index[0]
    book = replace(book, promises=promises)
    loop = LoopRows(book, prepare(book).account_ids)
    accounts = pd.Series(sorted(book.accounts["account_id"]), dtype="str")
    some = np.sort(np.random.default_rng(0).choice(len(accounts), 50, replace=False))
    for as_of in pd.to_datetime(["2023-06-05", "2023-11-13", "2024-03-04"]):
        chunk = pd.DataFrame({"account_id": accounts, "as_of": as_of.as_unit("s")})
        scratch = with_loop_features(chunk, book)
        assert scratch["n_disputes_opened_90d"].sum() > 0
        assert scratch["n_broken_promises_180d"].sum() > 0
        pd.testing.assert_frame_equal(loop.features(chunk), scratch)
        pd.testing.assert_frame_equal(loop.features(chunk.iloc[some].reset_index(drop=True)),
                                      scratch.iloc[some].reset_index(drop=True))
