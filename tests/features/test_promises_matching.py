"""Promise states on random books against the rule of ``features.pit.promises`` read
literally: each promise's payments found by comparing id strings, one promise at a time.

``promise_state`` matches ids once to integer codes (invoice rows, a sorted account
universe); these books exercise what that must not change: rows in any order, promises
naming an invoice no invoice row has (and payments of it), an invoice of another account,
no invoice at all, accounts missing from the accounts table, several promises per
invoice and account, payments on the window's edges, and the callers' ``pay_accounts``.
Amounts are quarters, so every order of summation gives the same floats.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.contract.book import Book
from features.keys import match_ids
from features.pit.promises import (
    ACCOUNT_PROMISE_COLUMNS,
    _pair_order,
    account_promises,
    known_promises,
    payment_accounts,
    promise_state,
)
from features.spec import CLEAR_TOLERANCE_CENTS, to_cents

BASE = pd.Timestamp("2024-01-01")
D = pd.Timedelta(days=1)
GRACE = 3


def _random_book(seed: int) -> Book:
    rng = random.Random(seed)
    accounts = [f"A{k:02d}" for k in range(rng.randint(1, 6))]
    invoices = [(f"I{k:03d}", rng.choice(accounts), BASE + rng.randint(0, 40) * D)
                for k in range(rng.randint(0, 14))]
    rng.shuffle(invoices)
    inv_ids = [i for i, _, _ in invoices]
    # payments name known invoices and, now and then, one no invoice row has
    ghosts = ["I900", "I901"]
    pay = [(rng.choice(inv_ids + ghosts) if inv_ids and rng.random() < 0.9
            else rng.choice(ghosts), BASE + rng.randint(0, 80) * D, rng.randint(1, 400) / 4)
           for _ in range(rng.randint(0, 40))]
    promises = []
    for k in range(rng.randint(0, 12)):
        created = BASE + rng.randint(0, 70) * D
        kind = rng.random()
        invoice = (None if kind < 0.4 or not inv_ids else rng.choice(ghosts) if kind < 0.5
                   else rng.choice(inv_ids))
        # unnamed promises of accounts with no invoice row (nor accounts row) too
        account = rng.choice([*accounts, "A99"]) if kind < 0.4 else rng.choice(accounts)
        promises.append({
            "promise_id": f"P{rng.randint(0, 99):02d}{k}", "account_id": account,
            "created_date": created, "promised_date": created + rng.randint(0, 12) * D,
            "amount": rng.randint(1, 300) / 4, "invoice_id": invoice,
            "recorded_date": created + rng.randint(0, 3) * D if rng.random() < 0.3 else None,
            "cancelled_date": created + rng.randint(0, 15) * D if rng.random() < 0.2
            else None})
    rng.shuffle(promises)
    inv = pd.DataFrame(
        [(i, a, d, d + 30 * D, 100.0) for i, a, d in invoices],
        columns=["invoice_id", "account_id", "issue_date", "due_date", "amount"])
    payments = pd.DataFrame(pay, columns=["invoice_id", "payment_date", "amount"])
    promise_frame = pd.DataFrame(promises, columns=[
        "promise_id", "account_id", "created_date", "promised_date", "amount", "invoice_id",
        "recorded_date", "cancelled_date"])
    return Book.from_frames(inv, payments, pd.DataFrame({"account_id": accounts[:-1]}),
                            promises=promise_frame)


def _literal_states(book: Book, cut: pd.Timestamp) -> pd.DataFrame:
    """(paid, kept day) of each known promise, by the docstring's rule one by one."""
    account_of = dict(zip(book.invoices["invoice_id"], book.invoices["account_id"],
                          strict=True))
    pay = book.payments.reset_index(drop=True)
    rows = []
    for _, p in known_promises(book, as_of=cut).iterrows():
        last = p["promised_date"] + GRACE * D
        if pd.notna(p["invoice_id"]):
            mine = pay["invoice_id"] == p["invoice_id"]
        else:
            mine = pay["invoice_id"].map(account_of) == p["account_id"]
        toward = pay[mine & (pay["payment_date"] >= p["created_date"])
                     & (pay["payment_date"] <= last) & (pay["payment_date"] < cut)]
        toward = toward.sort_values("payment_date", kind="stable")
        cum = toward["amount"].cumsum()
        reached = toward["payment_date"][to_cents(cum) >= to_cents(p["amount"])
                                         - CLEAR_TOLERANCE_CENTS]
        rows.append((float(toward["amount"].sum()),
                     reached.min() if len(reached) else pd.NaT))
    return pd.DataFrame(rows, columns=["paid", "kept_day"])


def _literal_accounts(states: pd.DataFrame) -> pd.DataFrame:
    """``account_promises`` read literally: sort by the rule's keys, take each account's
    first open and last broken promise."""
    ids = pd.Index(states["account_id"].unique(), name="account_id")
    out = pd.DataFrame(index=ids)
    open_ = states[states["state"] == "open"].sort_values(["promised_date", "promise_id"])
    out["open_promised_date"] = open_.groupby("account_id").head(1).set_index(
        "account_id")["promised_date"]
    out["open_promised_amount"] = open_.groupby("account_id")["amount"].sum()
    out["open_last_day"] = open_.groupby("account_id")["last_day"].max()
    broken = states[states["state"] == "broken"].sort_values(["resolved_date", "promise_id"])
    last = broken.groupby("account_id").tail(1).set_index("account_id")
    for col in ("promise_id", "promised_date", "amount", "resolved_date"):
        out[f"last_broken_{col}"] = last[col]
    out["last_kept_resolved_date"] = states[states["state"] == "kept"].groupby(
        "account_id")["resolved_date"].max()
    out = out.reset_index()
    for col in ("open_promised_date", "open_last_day", "last_broken_promised_date",
                "last_broken_resolved_date", "last_kept_resolved_date"):
        out[col] = pd.to_datetime(out[col]).astype("datetime64[s]")
    out["last_broken_promise_id"] = out["last_broken_promise_id"].astype("str")
    return out[list(ACCOUNT_PROMISE_COLUMNS)]


@pytest.mark.parametrize("seed", range(60))
def test_promise_states_equal_the_rule_read_literally(seed):
    book = _random_book(seed)
    for cut in (BASE + 20 * D, BASE + 45 * D, BASE + 90 * D):
        states = promise_state(book, as_of=cut, grace_days=GRACE)
        expected = _literal_states(book, cut)
        assert states["paid"].tolist() == expected["paid"].tolist()
        kept = states["state"] == "kept"
        assert (states["resolved_date"][kept] == expected["kept_day"][kept]).all()
        cancelled_first = states["state"] == "cancelled"
        assert (kept | cancelled_first | expected["kept_day"].isna()).all()
        with_accounts = promise_state(book, as_of=cut, grace_days=GRACE,
                                      pay_accounts=payment_accounts(book))
        pd.testing.assert_frame_equal(with_accounts, states)
        pd.testing.assert_frame_equal(account_promises(states), _literal_accounts(states))


@pytest.mark.parametrize("seed", range(60))
def test_the_payments_invoice_rows_give_the_states_of_the_ids(seed):
    """``pay_invoices`` (the nightly's: its encoding's match of the payments): the same
    states, payments of invoices no row has (ids compared then) or not."""
    book = _random_book(seed)
    known = match_ids(book.payments["invoice_id"], book.invoices["invoice_id"]) >= 0
    for payments in (book.payments, book.payments[known]):
        b = replace(book, payments=payments)
        rows = match_ids(b.payments["invoice_id"], b.invoices["invoice_id"]).astype(np.int32)
        for cut in (BASE + 20 * D, BASE + 45 * D, BASE + 90 * D):
            states = promise_state(b, as_of=cut, grace_days=GRACE, pay_invoices=rows)
            expected = _literal_states(b, cut)
            assert states["paid"].tolist() == expected["paid"].tolist()
            pd.testing.assert_frame_equal(states, promise_state(b, as_of=cut, grace_days=GRACE))
    with pytest.raises(ValueError, match="not this book's"):
        promise_state(book, as_of=BASE, pay_invoices=np.zeros(len(book.payments) + 1, np.int32))


def test_a_promise_without_an_invoice_counts_every_invoice_of_its_account():
    inv = pd.DataFrame({"invoice_id": ["X2", "X1", "Y1"], "account_id": ["A", "A", "B"],
                        "issue_date": [BASE] * 3, "due_date": [BASE + 30 * D] * 3,
                        "amount": [100.0] * 3})
    pay = pd.DataFrame({"invoice_id": ["X1", "Y1", "X2"],
                        "payment_date": [BASE + 2 * D, BASE + 2 * D, BASE + 3 * D],
                        "amount": [30.0, 50.0, 20.0]})
    promise = pd.DataFrame({"promise_id": ["P"], "account_id": ["A"],
                            "created_date": [BASE + D], "promised_date": [BASE + 5 * D],
                            "amount": [50.0], "invoice_id": [None]})
    book = Book.from_frames(inv, pay, promises=promise)
    row = promise_state(book, as_of=BASE + 20 * D, grace_days=GRACE).iloc[0]
    assert row["paid"] == 50.0 and row["state"] == "kept"
    assert row["resolved_date"] == BASE + 3 * D  # 30 (X1) + 20 (X2), not B's 50


def test_the_pairs_order_is_the_lexsort_of_rows_dates_and_payments():
    """``_pair_order`` (a counting sort, then each promise's pairs by date): exactly
    ``np.lexsort((pay, day, row))``, ties in their order, promises of many pairs too."""
    rng = np.random.default_rng(0)
    for t in range(200):
        n_rows, n = int(rng.integers(1, 30)), int(rng.integers(0, 400))
        row = rng.integers(0, 1 if t % 3 == 0 else n_rows, n).astype(np.int64)
        pay = rng.integers(0, 50, n).astype(np.int64)
        day = rng.integers(0, 5, n).astype(np.int64) * 86400
        got = _pair_order(row, pay, day, n_rows)
        assert got.tolist() == np.lexsort((pay, day, row)).tolist()
