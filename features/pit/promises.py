"""Promise-to-pay state per promise and per account at ``as_of`` (issue 17, DESIGN section 8).

:func:`promise_state` is the one rule; everything that reads promises (the loop features,
the worklist's hold and "broken promise" action, the dunning letters, the KPIs' promise
kept rate) takes its states from here. Pure: only what is known strictly before ``as_of``
counts, inputs are never mutated, nothing reads the clock.

A promise (a row of the book's ``promises`` table) is *known* at ``as_of`` when its known
day (``recorded_date``, else ``created_date``; see ``features.contract.book``) is before
``as_of``; unknown promises are not in the result. Payments *toward* a promise are the
payments of its invoice when it names one, else of its account, dated from its
``created_date`` to its *last day* ``promised_date + grace_days`` and before ``as_of``.
Its state, first matching rule wins:

=============  ===========================================================================
state          when
=============  ===========================================================================
``cancelled``  its cancellation is known (``cancelled_date`` before ``as_of``) and came
               before it was kept: ``resolved_date`` is the cancellation day
``kept``       payments toward it reach its amount (whole cents, one-cent tolerance, the
               clearing rule of ``features.spec``): ``resolved_date`` is the day they do
``open``       its last day is not past (``as_of <= promised_date + grace_days``): the
               payment may still come; ``resolved_date`` is NaT
``broken``     otherwise: its last day passed without the amount; ``resolved_date`` is
               the day after the last day (the first ``as_of`` that knows it)
=============  ===========================================================================

Amounts are in the book's currency, ``grace_days`` in days (setting
``promise_grace_days``; :data:`DEFAULT_GRACE_DAYS`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Final

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.keys import index_in, is_in, values_at
from features.spec import CLEAR_TOLERANCE_CENTS, as_day, to_cents

#: Days after the promised date in which a payment still keeps the promise (a transfer
#: made on the promised date may take a few banking days to arrive).
DEFAULT_GRACE_DAYS: Final = 3
#: Promise states, in rule order (the first rule a promise matches names its state).
PROMISE_STATES: Final = ("cancelled", "kept", "open", "broken")
#: Columns of :func:`promise_state`.
PROMISE_STATE_COLUMNS: Final = ("promise_id", "account_id", "created_date", "promised_date",
                                "last_day", "amount", "invoice_id", "paid", "state",
                                "resolved_date")
#: Columns of :func:`account_promises` (one row per account with a known promise).
ACCOUNT_PROMISE_COLUMNS: Final = ("account_id", "open_promised_date", "open_promised_amount",
                                  "open_last_day", "last_broken_promise_id",
                                  "last_broken_promised_date", "last_broken_amount",
                                  "last_broken_resolved_date", "last_kept_resolved_date")


def known_promises(book: Book, *, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """The book's promises known at ``as_of`` (a filtered copy)."""
    cut = pd.Timestamp(as_day(as_of))
    p = book.promises
    known = p["recorded_date"].fillna(p["created_date"])
    return p[known < cut].reset_index(drop=True)


def invoice_accounts(book: Book, invoice_ids: pd.Series) -> pd.Series:
    """The account of each invoice id in ``invoice_ids`` (same index; missing where the
    book has no such invoice). Independent of ``as_of``: it hashes every invoice id of the
    book (Arrow's hash lookup, ~0.1 s per million invoices), so callers that need it for
    many dates compute it once (:func:`payment_accounts`, ``features.pit.loop.dispute_owners``)."""
    rows = index_in(invoice_ids, book.invoices["invoice_id"])
    return values_at(book.invoices["account_id"], rows, invoice_ids.index, invoice_ids.name)


def payment_accounts(book: Book) -> pd.Series:
    """The account of each row of ``book.payments`` (same index): its invoice's account
    (a payment's own ``account_id`` is not used: no rule says it matches). A caller
    computing promise states for many dates passes it to :func:`promise_state` once."""
    return invoice_accounts(book, book.payments["invoice_id"])


def promise_state(book: Book, *, as_of: date | pd.Timestamp,
                  grace_days: int = DEFAULT_GRACE_DAYS,
                  pay_accounts: pd.Series | None = None) -> pd.DataFrame:
    """State of every promise known at ``as_of`` (:data:`PROMISE_STATE_COLUMNS`).

    ``last_day`` = ``promised_date + grace_days``; ``paid``: payments toward the promise
    known at ``as_of`` (up to its last day; book currency); ``state`` and
    ``resolved_date`` by the rule table of the module docstring. One row per promise, in
    the order of the book's (canonical) promises table. ``pay_accounts``:
    :func:`payment_accounts` of ``book`` when the caller already has it.
    """
    cut = pd.Timestamp(as_day(as_of))
    p = known_promises(book, as_of=cut)
    last_day = p["promised_date"] + pd.Timedelta(days=grace_days)
    paid, kept_day = _payments_toward(book, p, last_day, cut, pay_accounts)
    cancelled = p["cancelled_date"].notna() & (p["cancelled_date"] < cut) & (
        kept_day.isna() | (p["cancelled_date"] < kept_day))
    kept = ~cancelled & kept_day.notna()
    still_open = ~cancelled & ~kept & (cut <= last_day)
    state = np.select([cancelled, kept, still_open], list(PROMISE_STATES[:3]),
                      default=PROMISE_STATES[3])
    resolved = np.select(
        [cancelled, kept, still_open],
        [p["cancelled_date"].to_numpy(), kept_day.to_numpy(),
         np.full(len(p), np.datetime64("NaT"), dtype="datetime64[s]")],
        default=(last_day + pd.Timedelta(days=1)).to_numpy())
    out = pd.DataFrame({
        "promise_id": p["promise_id"], "account_id": p["account_id"],
        "created_date": p["created_date"], "promised_date": p["promised_date"],
        "last_day": last_day.astype("datetime64[s]"), "amount": p["amount"],
        "invoice_id": p["invoice_id"], "paid": paid,
        "state": pd.Series(state, index=p.index, dtype="str"),
        "resolved_date": pd.Series(resolved, index=p.index).astype("datetime64[s]"),
    })
    return out[list(PROMISE_STATE_COLUMNS)]


def toward_any_promise(promises: pd.DataFrame, *,
                       of_invoices: Callable[[pd.Series], np.ndarray],
                       of_accounts: Callable[[pd.Series], np.ndarray]) -> np.ndarray:
    """Which payments can count toward some promise of ``promises`` (bool per payment): the
    one statement of the module docstring's rule, a payment of the invoice a promise
    names, else of the account of a promise naming no invoice (dates are checked later,
    per promise). ``of_invoices(ids)`` / ``of_accounts(ids)``: whether each payment's
    invoice / account is among ``ids`` (the caller's matcher; ``of_accounts`` is not
    called when every promise names an invoice)."""
    named = promises["invoice_id"].notna().to_numpy()
    wanted = of_invoices(promises["invoice_id"][named])
    if not named.all():
        wanted = wanted | of_accounts(promises["account_id"][~named].drop_duplicates())
    return wanted


def _payments_toward(book: Book, p: pd.DataFrame, last_day: pd.Series, cut: pd.Timestamp,
                     pay_accounts: pd.Series | None = None) -> tuple[np.ndarray, pd.Series]:
    """(paid toward each promise, day the payments reached its amount or NaT)."""
    n = len(p)
    if n == 0:
        return np.zeros(0), pd.Series(dtype="datetime64[s]")
    payments = book.payments
    # The payments no promise can count are left out before the joins (a book holds ~50
    # payments per promise). Filtering keeps the payments' order, so the joins below give
    # the rows they gave on the whole table, in the same order.
    pay_invoice = payments["invoice_id"]
    their_ids = their_accounts = None

    def of_accounts(unnamed: pd.Series) -> np.ndarray:
        nonlocal their_ids, their_accounts
        if pay_accounts is not None:
            return is_in(pay_accounts, unnamed)
        invoices = book.invoices  # a payment's account is its invoice's
        theirs = is_in(invoices["account_id"], unnamed)
        their_ids, their_accounts = invoices["invoice_id"][theirs], invoices["account_id"][theirs]
        return is_in(pay_invoice, their_ids)

    wanted = toward_any_promise(p, of_invoices=partial(is_in, pay_invoice),
                                of_accounts=of_accounts)
    known = wanted & (payments["payment_date"] < cut).to_numpy(dtype=bool)
    pay = payments[known]
    # A payment's account is its invoice's (validation fills it; hand-made books may not).
    # Only the promises naming no invoice join on it, so only the accounts of those
    # promises' invoices are looked up (the others match no such promise either way).
    if pay_accounts is not None:
        accounts = pay_accounts[known]
    elif their_ids is None:
        accounts = pd.Series(np.nan, index=pay.index, dtype=object)
    else:
        accounts = values_at(their_accounts, index_in(pay["invoice_id"], their_ids), pay.index)
    pay = pd.DataFrame({"invoice_id": pay["invoice_id"],
                        "account_id": accounts,
                        "payment_date": pay["payment_date"], "amount": pay["amount"]})
    rows = pd.DataFrame({"_row": np.arange(n), "account_id": p["account_id"],
                         "invoice_id": p["invoice_id"], "created": p["created_date"],
                         "last": last_day, "target": p["amount"]})
    named = rows["invoice_id"].notna()
    joined = pd.concat([
        rows[named].merge(pay.drop(columns="account_id"), on="invoice_id"),
        rows[~named].drop(columns="invoice_id").merge(
            pay.drop(columns="invoice_id"), on="account_id"),
    ], ignore_index=True)
    joined = joined[(joined["payment_date"] >= joined["created"])
                    & (joined["payment_date"] <= joined["last"])]
    joined = joined.sort_values(["_row", "payment_date"], kind="stable")
    joined["_cum"] = joined.groupby("_row")["amount"].cumsum()
    paid = np.zeros(n)
    total = joined.groupby("_row")["amount"].sum()
    paid[total.index.to_numpy()] = total.to_numpy()
    reached = joined[to_cents(joined["_cum"]) >= to_cents(joined["target"])
                     - CLEAR_TOLERANCE_CENTS]
    first = reached.groupby("_row")["payment_date"].min()
    kept_day = pd.Series(pd.NaT, index=p.index, dtype="datetime64[s]")
    kept_day.iloc[first.index.to_numpy()] = first.to_numpy()
    return paid, kept_day


def account_promises(states: pd.DataFrame) -> pd.DataFrame:
    """Per account (:data:`ACCOUNT_PROMISE_COLUMNS`) from :func:`promise_state`'s rows:
    the earliest open promise (its promised date, amount and last day: the worklist holds
    the account until then), the latest broken promise (id, promised date, amount, the day
    it broke) and the day the latest kept promise was kept."""
    ids = pd.Index(states["account_id"].unique(), name="account_id")
    out = pd.DataFrame(index=ids)
    open_ = states[states["state"] == "open"].sort_values(["promised_date", "promise_id"])
    first_open = open_.groupby("account_id").head(1).set_index("account_id")
    out["open_promised_date"] = first_open["promised_date"]
    out["open_promised_amount"] = open_.groupby("account_id")["amount"].sum()
    out["open_last_day"] = open_.groupby("account_id")["last_day"].max()
    broken = states[states["state"] == "broken"].sort_values(["resolved_date", "promise_id"])
    last_broken = broken.groupby("account_id").tail(1).set_index("account_id")
    out["last_broken_promise_id"] = last_broken["promise_id"]
    out["last_broken_promised_date"] = last_broken["promised_date"]
    out["last_broken_amount"] = last_broken["amount"]
    out["last_broken_resolved_date"] = last_broken["resolved_date"]
    out["last_kept_resolved_date"] = states[states["state"] == "kept"].groupby(
        "account_id")["resolved_date"].max()
    out = out.reset_index()
    for col in ("open_promised_date", "open_last_day", "last_broken_promised_date",
                "last_broken_resolved_date", "last_kept_resolved_date"):
        out[col] = pd.to_datetime(out[col]).astype("datetime64[s]")
    out["last_broken_promise_id"] = out["last_broken_promise_id"].astype("str")
    return out[list(ACCOUNT_PROMISE_COLUMNS)]
