"""Hand-checked promise states (``features.pit.promises``): one test per rule edge."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd

from features.pit.promises import account_promises, promise_state
from tests.factories import make_book

D = pd.Timedelta(days=1)
CREATED, PROMISED = pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-10")
GRACE = 3
LAST = PROMISED + GRACE * D  # 2024-03-13: the last day a payment keeps the promise


def book_with(payments=(), *, amount=100.0, invoice=None, recorded=None, cancelled=None):
    book = make_book([("I1", "A", "2024-01-01", "2024-01-31", 500.0),
                      ("I2", "A", "2024-01-05", "2024-02-04", 500.0)], list(payments))
    promises = pd.DataFrame({
        "promise_id": ["P1"], "account_id": ["A"], "created_date": [CREATED],
        "promised_date": [PROMISED], "amount": [amount], "invoice_id": [invoice],
        "recorded_date": [recorded], "cancelled_date": [cancelled]})
    return type(book).from_frames(book.invoices, book.payments, book.accounts, book.disputes,
                                  promises)


def state(book, as_of) -> pd.Series:
    frame = promise_state(book, as_of=as_of, grace_days=GRACE)
    assert len(frame) == 1
    return frame.iloc[0]


def test_unknown_before_it_is_recorded():
    book = book_with()
    assert promise_state(book, as_of=CREATED, grace_days=GRACE).empty  # created on as_of
    assert len(promise_state(book, as_of=CREATED + D, grace_days=GRACE)) == 1
    late = book_with(recorded=CREATED + 4 * D)  # back-dated in the workbench
    assert promise_state(late, as_of=CREATED + 4 * D, grace_days=GRACE).empty
    assert state(late, CREATED + 5 * D)["state"] == "open"


def test_open_until_the_last_day_then_broken_the_day_after():
    book = book_with()
    assert state(book, LAST)["state"] == "open"  # the last day's payments are not known yet
    row = state(book, LAST + D)
    assert row["state"] == "broken" and row["resolved_date"] == LAST + D
    assert row["paid"] == 0.0


def test_kept_by_payments_reaching_the_amount_on_the_last_day():
    book = book_with([("I1", LAST, 60.0), ("I2", CREATED, 40.0)])
    assert state(book, LAST)["state"] == "open"  # 40 known, 60 not yet
    row = state(book, LAST + D)
    assert row["state"] == "kept" and row["resolved_date"] == LAST and row["paid"] == 100.0


def test_kept_within_one_cent_and_not_one_cent_more():
    assert state(book_with([("I1", PROMISED, 99.99)]), LAST + D)["state"] == "kept"
    assert state(book_with([("I1", PROMISED, 99.98)]), LAST + D)["state"] == "broken"


def test_payments_before_the_promise_or_after_the_last_day_do_not_count():
    book = book_with([("I1", CREATED - D, 100.0), ("I1", LAST + D, 100.0)])
    assert state(book, LAST + 5 * D)["state"] == "broken"


def test_a_named_invoice_counts_only_its_own_payments():
    book = book_with([("I2", PROMISED, 100.0)], invoice="I1")
    assert state(book, LAST + D)["state"] == "broken"
    book = book_with([("I1", PROMISED, 100.0)], invoice="I1")
    assert state(book, LAST + D)["state"] == "kept"


def test_cancelled_from_the_day_after_the_cancellation():
    book = book_with(cancelled=PROMISED)
    assert state(book, PROMISED)["state"] == "open"
    row = state(book, PROMISED + D)
    assert row["state"] == "cancelled" and row["resolved_date"] == PROMISED


def test_a_cancellation_after_it_was_kept_does_not_undo_it():
    book = book_with([("I1", CREATED + D, 100.0)], cancelled=PROMISED)
    assert state(book, LAST + D)["state"] == "kept"


def test_account_summary_names_the_open_and_the_broken_promise():
    book = book_with()
    two = replace(book, promises=pd.concat([book.promises, book.promises.assign(
        promise_id="P2", created_date=pd.Timestamp("2024-02-01"),
        promised_date=pd.Timestamp("2024-02-05"), amount=70.0)], ignore_index=True))
    states = promise_state(two, as_of=date(2024, 3, 5), grace_days=GRACE)
    assert dict(zip(states["promise_id"], states["state"], strict=True)) == {
        "P1": "open", "P2": "broken"}
    row = account_promises(states).iloc[0]
    assert row["open_promised_date"] == PROMISED and row["open_last_day"] == LAST
    assert row["open_promised_amount"] == 100.0
    assert row["last_broken_promise_id"] == "P2" and row["last_broken_amount"] == 70.0
    assert row["last_broken_promised_date"] == pd.Timestamp("2024-02-05")


def test_inputs_are_not_mutated():
    book = book_with([("I1", PROMISED, 100.0)])
    before = book.promises.copy()
    promise_state(book, as_of=LAST + D, grace_days=GRACE)
    pd.testing.assert_frame_equal(book.promises, before)


def test_promise_kept_rate_counts_the_decided_promises_due_in_the_last_month():
    from features.pit.kpis import promise_kept_rate

    book = book_with([("I1", PROMISED, 100.0)])  # P1 due 2024-03-10, kept
    extra = pd.DataFrame({
        "promise_id": ["P2", "P3", "P4", "P5"], "account_id": ["A"] * 4,
        "created_date": [CREATED, CREATED, CREATED, pd.Timestamp("2024-02-01")],
        # P2 broken, P3 still in its grace days, P4 cancelled, P5 due before the month
        "promised_date": pd.to_datetime(["2024-03-05", "2024-03-28", "2024-03-12",
                                         "2024-02-20"]),
        "amount": [900.0, 900.0, 900.0, 900.0], "invoice_id": [None] * 4,
        "recorded_date": [None] * 4,
        "cancelled_date": [None, None, pd.Timestamp("2024-03-11"), None]})
    two = replace(book, promises=pd.concat([book.promises, extra], ignore_index=True))
    # as_of 2024-03-30: the month is [2024-02-29, 2024-03-30); P1 kept, P2 broken
    assert promise_kept_rate(two, as_of=date(2024, 3, 30), grace_days=GRACE) == 50.0
    assert promise_kept_rate(book_with(), as_of=date(2024, 3, 5)) is None  # none decided
