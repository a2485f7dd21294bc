"""Leakage and order properties: future events and row order change no feature."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features import build_features, build_labels
from features.contract.book import Book
from tests.factories import books_and_as_of, make_book, with_credits


def _future_events(book: Book, as_of: pd.Timestamp, seed: int) -> Book:
    """``book`` plus random invoices, payments and disputes dated on or after ``as_of``
    (on existing and new invoices and accounts)."""
    rng = np.random.default_rng(seed)
    later = [int(x) for x in rng.integers(0, 60, 6)]
    inv = book.invoices
    old_ids = inv["invoice_id"].tolist()
    accounts = inv["account_id"].unique().tolist() + ["NEW"]
    new_inv = [(f"F{k}", str(rng.choice(accounts)), as_of + pd.Timedelta(days=later[k]),
                as_of + pd.Timedelta(days=later[k] + 30), 75.0) for k in range(3)]
    targets = old_ids + [t[0] for t in new_inv]
    new_pay = [(str(rng.choice(targets)), as_of + pd.Timedelta(days=d), float(a))
               for d, a in zip(later, rng.choice([1.0, 50.0, 1e6], 6), strict=True)]
    new_dis = [(str(rng.choice(targets)), as_of + pd.Timedelta(days=d), None) for d in later[:2]]
    # payments/disputes must not predate their invoice: keep those dated after issue
    issue = dict(zip(inv["invoice_id"], inv["issue_date"], strict=True))
    issue.update({t[0]: t[2] for t in new_inv})
    new_pay = [p for p in new_pay if p[1] >= issue[p[0]]]
    new_dis = [d for d in new_dis if d[1] >= issue[d[0]]]
    more = make_book(new_inv, new_pay, new_dis)
    return Book.from_frames(
        pd.concat([inv, more.invoices], ignore_index=True),
        pd.concat([book.payments, more.payments], ignore_index=True),
        book.accounts,
        pd.concat([book.disputes, more.disputes], ignore_index=True),
    )


@settings(max_examples=25, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000))
def test_events_on_or_after_as_of_change_no_feature(case, seed):
    book, as_of = case
    before = build_features(book, as_of=as_of)
    after = build_features(_future_events(book, as_of, seed), as_of=as_of)
    pd.testing.assert_frame_equal(before, after)


@settings(max_examples=25, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000))
def test_credits_on_or_after_as_of_change_no_feature_or_label_row(case, seed):
    """Credit notes, overpayments and prepayments dated on or after as_of are not known:
    the book with credits before as_of gives the same features with more credits after."""
    book, as_of = case
    rng = np.random.default_rng(seed)
    known = with_credits(book, rng, as_of - pd.Timedelta(days=200), 200, "K")
    later = with_credits(known, rng, as_of, 60, "F")
    later = _future_events(later, as_of, seed)
    before = build_features(known, as_of=as_of, facts=True)
    pd.testing.assert_frame_equal(before, build_features(later, as_of=as_of, facts=True))
    rows = build_labels(known, as_of=as_of)[["account_id", "model"]]
    pd.testing.assert_frame_equal(rows, build_labels(later, as_of=as_of)[["account_id", "model"]])


@settings(max_examples=20, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000))
def test_shuffling_rows_changes_nothing(case, seed):
    book, as_of = case
    rng = np.random.default_rng(seed)

    def shuffle(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)

    shuffled = Book(**{t: shuffle(f) for t, f in book.tables().items()})
    for build in (build_features, build_labels):
        pd.testing.assert_frame_equal(build(book, as_of=as_of), build(shuffled, as_of=as_of),
                                      check_exact=False, rtol=1e-12)


def test_payment_dated_on_as_of_is_not_known():
    book = make_book([("I1", "A1", "2024-01-01", "2024-01-31", 100.0)],
                     [("I1", "2024-02-10", 100.0)])
    on_day = build_features(book, as_of=date(2024, 2, 10))
    assert on_day["open_balance"].tolist() == [100.0]
    assert build_features(book, as_of=date(2024, 2, 11)).empty


def _loop_rows(book: Book, as_of: pd.Timestamp, rng: np.random.Generator, n: int,
               *, future: bool, tag: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` promises and contacts of the book's accounts: known before ``as_of``, or
    (``future``) recorded on or after it, half of them back-dated before it."""
    accounts = book.invoices["account_id"].unique()
    offset = rng.integers(-120, 0, n) if not future else rng.integers(0, 40, n)
    known = as_of + pd.to_timedelta(offset, unit="D")
    business = known - pd.to_timedelta(rng.integers(0, 60, n) * future, unit="D")
    recorded = pd.Series(known).where(pd.Series(future | (rng.random(n) < 0.5)).to_numpy())
    promises = pd.DataFrame({
        "promise_id": [f"{tag}P{k}" for k in range(n)],
        "account_id": rng.choice(accounts, n), "created_date": business,
        "promised_date": business + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
        "amount": rng.choice([1.0, 50.0, 500.0], n), "invoice_id": None,
        "recorded_date": recorded,
        "cancelled_date": (known + pd.Timedelta(days=5)).where(rng.random(n) < 0.3)})
    contacts = pd.DataFrame({
        "contact_id": [f"{tag}C{k}" for k in range(n)],
        "account_id": rng.choice(accounts, n), "contact_date": business,
        "channel": "phone", "outcome": rng.choice(["reached", "promised", "no_answer"], n),
        "recorded_date": recorded})
    return promises, contacts


@settings(max_examples=5, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000))
def test_loop_events_recorded_on_or_after_as_of_change_no_loop_feature(case, seed):
    """Issue 17: promises and contacts count from the day they are recorded (strictly
    before as_of), even when their business date is earlier; cancellations likewise."""
    from features.pit.loop import loop_features
    from features.pit.promises import promise_state

    book, as_of = case
    rng = np.random.default_rng(seed)
    p0, c0 = _loop_rows(book, as_of, rng, 6, future=False, tag="K")
    p1, c1 = _loop_rows(book, as_of, rng, 6, future=True, tag="F")
    known = Book.from_frames(book.invoices, book.payments, book.accounts, book.disputes,
                             p0, c0)
    later = _future_events(known, as_of, seed)
    later = Book.from_frames(later.invoices, later.payments, later.accounts, later.disputes,
                             pd.concat([p0, p1]), pd.concat([c0, c1]))
    accounts = sorted(book.invoices["account_id"].unique())
    since = {"promises": pd.Timestamp(as_of) - pd.Timedelta(days=400), "contacts": None,
             "disputes": pd.Timestamp(as_of) - pd.Timedelta(days=400)}
    for kw in ({}, {"since": since}):
        pd.testing.assert_frame_equal(loop_features(known, as_of=as_of, accounts=accounts, **kw),
                                      loop_features(later, as_of=as_of, accounts=accounts, **kw))
    pd.testing.assert_frame_equal(promise_state(known, as_of=as_of),
                                  promise_state(later, as_of=as_of))
