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
from typing import Final

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract.book import Book
from features.keys import (
    id_array,
    index_in,
    is_strictly_sorted,
    match_ids,
    sorted_unique,
    values_at,
)
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
#: The columns of ``book.payments`` the rule reads (a caller handing :func:`promise_state`
#: a subset of the payments may take only these).
PAYMENT_COLUMNS: Final = ("invoice_id", "payment_date", "amount")
#: Columns of :func:`account_promises` (one row per account with a known promise).
ACCOUNT_PROMISE_COLUMNS: Final = ("account_id", "open_promised_date", "open_promised_amount",
                                  "open_last_day", "last_broken_promise_id",
                                  "last_broken_promised_date", "last_broken_amount",
                                  "last_broken_resolved_date", "last_kept_resolved_date")


def known_promises(book: Book, *, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """The book's promises known at ``as_of`` (a filtered copy)."""
    cut = pd.Timestamp(as_day(as_of))
    p = book.promises
    known = (p["recorded_date"].fillna(p["created_date"]) < cut).to_numpy(dtype=bool)
    # every promise known (the nightly's): no copy of the id strings
    return (p if known.all() else p[known]).reset_index(drop=True)


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
                  pay_accounts: pd.Series | None = None,
                  pay_invoices: np.ndarray | None = None) -> pd.DataFrame:
    """State of every promise known at ``as_of`` (:data:`PROMISE_STATE_COLUMNS`).

    ``last_day`` = ``promised_date + grace_days``; ``paid``: payments toward the promise
    known at ``as_of`` (up to its last day; book currency); ``state`` and
    ``resolved_date`` by the rule table of the module docstring. One row per promise, in
    the order of the book's (canonical) promises table. ``pay_accounts``:
    :func:`payment_accounts` of ``book`` when the caller already has it; ``pay_invoices``:
    the row in ``book.invoices`` of each payment's invoice (first occurrence, -1 unknown:
    ``features.keys.match_ids(payments.invoice_id, invoices.invoice_id)``, which the
    nightly's encoding made: ``features.pit._prep.Prepared.pay_invoices``) when the
    caller has it.
    """
    cut = pd.Timestamp(as_day(as_of))
    if pay_invoices is not None and len(pay_invoices) != len(book.payments):
        raise ValueError(f"pay_invoices has {len(pay_invoices):,} rows, the book's payments "
                         f"{len(book.payments):,}: not this book's")
    p = known_promises(book, as_of=cut)
    last_day = p["promised_date"] + pd.Timedelta(days=grace_days)
    paid, kept_day = _payments_toward(book, p, last_day, cut, pay_accounts, pay_invoices)
    cancelled = p["cancelled_date"].notna() & (p["cancelled_date"] < cut) & (
        kept_day.isna() | (p["cancelled_date"] < kept_day))
    kept = ~cancelled & kept_day.notna()
    still_open = ~cancelled & ~kept & (cut <= last_day)
    resolved = np.select(
        [cancelled, kept, still_open],
        [p["cancelled_date"].to_numpy(), kept_day.to_numpy(),
         np.full(len(p), np.datetime64("NaT"), dtype="datetime64[s]")],
        default=(last_day + pd.Timedelta(days=1)).to_numpy())
    # the state strings taken from their codes (converting a numpy string array cost
    # ~0.13 s per million promises)
    code = np.select([cancelled, kept, still_open], [0, 1, 2], default=3)
    state = pd.array(pa.array(PROMISE_STATES).take(pa.array(code)), dtype="str")
    out = pd.DataFrame({
        "promise_id": p["promise_id"], "account_id": p["account_id"],
        "created_date": p["created_date"], "promised_date": p["promised_date"],
        "last_day": last_day.astype("datetime64[s]"), "amount": p["amount"],
        "invoice_id": p["invoice_id"], "paid": paid,
        "state": pd.Series(state, index=p.index),
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
                     pay_accounts: pd.Series | None = None,
                     pay_invoices: np.ndarray | None = None) -> tuple[np.ndarray, pd.Series]:
    """(paid toward each promise, day the payments reached its amount or NaT)."""
    n = len(p)
    if n == 0:
        return np.zeros(0), pd.Series(dtype="datetime64[s]")
    row, pay = _toward_pairs(book, p, last_day, cut, pay_accounts, pay_invoices)
    payments = book.payments
    # In the order of the rule (per promise, by payment date, ties in the book's order):
    # the running sums below are then those of the payments as they arrived.
    joined = pd.DataFrame({
        "_row": row, "payment_date": payments["payment_date"].to_numpy()[pay],
        "amount": payments["amount"].to_numpy(np.float64)[pay],
        "target": p["amount"].to_numpy(np.float64)[row]})
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


def _seconds(values: pd.Series) -> np.ndarray:
    """A datetime64[s] column as int64 seconds (NaT the int64 minimum: before any day)."""
    return values.to_numpy(dtype="datetime64[s]").view(np.int64)


def _toward_pairs(book: Book, p: pd.DataFrame, last_day: pd.Series, cut: pd.Timestamp,
                  pay_accounts: pd.Series | None,
                  pay_invoices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(promise row, payment row) of every payment toward a promise of ``p`` (the module
    docstring's rule: its invoice's or account's payments dated from its creation to its
    last day and before ``cut``), ordered by promise row, payment date, then payment row.

    Ids are matched once to integer codes (``features.keys.match_ids`` against sorted
    distinct ids: a merge when the payments come in invoice order, as a canonical book
    lists them) and every further step is on integers. Hashing the payments' ids and
    joining id strings in pandas made the 1M nightly's "loop facts" stage 15 s (issue 20).
    Given ``pay_invoices`` (see :func:`promise_state`) with every payment's invoice known,
    the named promises are matched to the invoices' rows instead (a promise and a payment
    name the same id exactly when they name the same first row), and the payments' ids
    are not read at all: their match was a third of the 1M nightly's "loop facts".
    """
    payments, invoices = book.payments, book.invoices
    named = p["invoice_id"].notna().to_numpy()
    rows_named, code_named = np.flatnonzero(named), np.zeros(0, np.int64)
    pay_named, via_named = np.zeros(0, np.int64), None
    if len(rows_named) and pay_invoices is not None and bool((pay_invoices >= 0).all()):
        # codes: a dense one per invoice row a promise names, each payment's through its
        # invoice's row (a promise naming no invoice of the book: no payment names it)
        inv_row = match_ids(p["invoice_id"][named], invoices["invoice_id"])
        rows_named = rows_named[inv_row >= 0]
        distinct, code_named = np.unique(inv_row[inv_row >= 0], return_inverse=True)
        code_named = code_named.astype(np.int64)
        via_named = np.full(len(invoices), -1, np.int32)  # (int32: 200 MB less at 1M)
        via_named[distinct] = np.arange(len(distinct), dtype=np.int32)
        pay_named = pay_invoices
    elif len(rows_named):
        # codes: positions among the distinct invoice ids promises name (sorted), which
        # the payments (listed by invoice in a canonical book) meet as a merge
        wanted = p["invoice_id"][named]
        universe = sorted_unique(id_array(wanted))
        code_named = match_ids(wanted, universe, reference_sorted=True)
        pay_named = match_ids(payments["invoice_id"], universe, reference_sorted=True)
    rows_unnamed, code_unnamed = np.flatnonzero(~named), np.zeros(0, np.int64)
    pay_unnamed, via = np.zeros(0, np.int64), None  # the unnamed promises' payment codes
    if len(rows_unnamed):
        wanted = p["account_id"][~named]
        if pay_accounts is not None:
            universe = sorted_unique(id_array(wanted))
            pay_unnamed = index_in(pay_accounts, universe)
        else:
            # a payment's account is its invoice's: the invoice row of each payment, then
            # the account of each such row among a universe holding every account a
            # promise names (an invoice's account outside it is no promise's: -1)
            inv_ids = invoices["invoice_id"]
            pay_unnamed = pay_invoices if pay_invoices is not None else match_ids(
                payments["invoice_id"], inv_ids, reference_sorted=is_strictly_sorted(inv_ids))
            universe = sorted_unique(pa.concat_arrays([
                id_array(book.accounts["account_id"]), id_array(wanted)]))
            via = _invoice_account_codes(invoices["account_id"], pay_unnamed, universe)
        code_unnamed = match_ids(wanted, universe, reference_sorted=True)
    pay_s = _seconds(payments["payment_date"])
    cut_s = np.int64(cut.to_datetime64().astype("datetime64[s]").astype(np.int64))
    created_s, last_s = _seconds(p["created_date"]), _seconds(last_day)
    parts = [_code_pairs(code, rows, codes, through, pay_s, cut_s, created_s, last_s)
             for code, rows, codes, through in ((code_named, rows_named, pay_named, via_named),
                                                (code_unnamed, rows_unnamed, pay_unnamed, via))
             if len(rows)]
    row = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, np.int64)
    pay = np.concatenate([q for _, q in parts]) if parts else np.zeros(0, np.int64)
    order = _pair_order(row, pay, pay_s[pay], len(p))
    return row[order], pay[order]


@nb.njit(cache=True, nogil=True)
def _pair_order(row, pay, day, n_rows):
    """``np.lexsort((pay, day, row))``: the pairs by promise row, then payment date, then
    payment row. A counting sort on the rows (``n_rows`` of them), then each promise's few
    pairs sorted by (date, payment row) in place: the lexsort of 1.1M pairs took 0.12 s at
    300k accounts. A promise with many pairs (an account's promise, over a long window)
    takes two stable sorts instead of the insertion sort."""
    n = len(row)
    ptr = np.zeros(n_rows + 1, np.int64)
    for k in range(n):
        ptr[row[k] + 1] += 1
    for r in range(n_rows):
        ptr[r + 1] += ptr[r]
    fill = ptr[:-1].copy()
    order = np.empty(n, np.int64)
    for k in range(n):  # stable: each row's pairs in their order here
        order[fill[row[k]]] = k
        fill[row[k]] += 1
    for r in range(n_rows):
        lo, hi = ptr[r], ptr[r + 1]
        if hi - lo <= 64:
            for i in range(lo + 1, hi):  # insertion sort on (date, payment row)
                k = order[i]
                j = i - 1
                while j >= lo and (day[order[j]] > day[k] or (
                        day[order[j]] == day[k] and pay[order[j]] > pay[k])):
                    order[j + 1] = order[j]
                    j -= 1
                order[j + 1] = k
        else:
            block = order[lo:hi]
            block = block[np.argsort(pay[block], kind="mergesort")]
            order[lo:hi] = block[np.argsort(day[block], kind="mergesort")]
    return order


def _invoice_account_codes(accounts: pd.Series, pay_inv: np.ndarray,
                           universe: pa.Array) -> np.ndarray:
    """The position in ``universe`` (sorted) of each invoice row's account (-1: not in
    it): every row's, or only the rows payments name (``pay_inv``) when those are few
    next to the invoices (the KPIs' month of payments)."""
    n = len(accounts)
    if 4 * len(pay_inv) >= n:
        return match_ids(accounts, universe, reference_sorted=True)
    rows = np.unique(pay_inv[(pay_inv >= 0) & (pay_inv < n)])
    codes = np.full(n, -1, np.int64)
    codes[rows] = match_ids(accounts.iloc[rows], universe, reference_sorted=True)
    return codes


def _code_pairs(code: np.ndarray, rows: np.ndarray, pay_code: np.ndarray,
                via: np.ndarray | None, pay_s: np.ndarray, cut_s: np.int64,
                created_s: np.ndarray, last_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(promise row, payment row), payments in the book's order, of the promises ``rows``
    (codes ``code``, >= 0) and the payments whose code is theirs (``pay_code``, or
    ``via[pay_code]`` when ``via`` is given; -1: none) dated before ``cut_s`` and in
    the promise's window (seconds)."""
    order = np.argsort(code, kind="stable")  # promise rows ascending within a code
    sorted_code, sorted_rows = code[order], rows[order]
    distinct, start = np.unique(sorted_code, return_index=True)
    ptr = np.append(start, len(sorted_code)).astype(np.int64)
    slot = np.full(int(distinct[-1]) + 1, -1, dtype=np.int64)  # code -> its promises' block
    slot[distinct] = np.arange(len(distinct))
    args = (pay_code, np.zeros(0, np.int64) if via is None else via, via is not None, pay_s,
            cut_s, slot, ptr, sorted_rows, created_s, last_s)
    n = _pair_kernel(*args, np.zeros(0, np.int64), np.zeros(0, np.int64))
    out_row, out_pay = np.empty(n, np.int64), np.empty(n, np.int64)
    _pair_kernel(*args, out_row, out_pay)
    return out_row, out_pay


@nb.njit(cache=True, nogil=True)
def _pair_kernel(pay_code, via, through, pay_s, cut_s, slot, ptr, rows,
                 created_s, last_s, out_row, out_pay):
    """:func:`_code_pairs`' pairs written to ``out_row``/``out_pay`` when they are not
    empty; returns their number. One pass over the payments; ``slot[code]``: the block
    of ``rows`` (``ptr``) of the promises with that code, -1 for none."""
    fill = len(out_row) > 0
    n = 0
    for j in range(len(pay_code)):
        c = pay_code[j]
        if through:
            c = via[c] if 0 <= c < len(via) else -1
        if c < 0 or c >= len(slot) or slot[c] < 0:
            continue
        d = pay_s[j]
        if d >= cut_s:
            continue
        b = slot[c]
        for k in range(ptr[b], ptr[b + 1]):
            r = rows[k]
            if created_s[r] <= d and d <= last_s[r]:
                if fill:
                    out_row[n] = r
                    out_pay[n] = j
                n += 1
    return n


def account_promises(states: pd.DataFrame) -> pd.DataFrame:
    """Per account (:data:`ACCOUNT_PROMISE_COLUMNS`) from :func:`promise_state`'s rows:
    the earliest open promise (its promised date, amount and last day: the worklist holds
    the account until then), the latest broken promise (id, promised date, amount, the day
    it broke) and the day the latest kept promise was kept. Accounts in the order they
    first appear in ``states``.

    Grouped on integer codes of the accounts (hashed once), and the promise ids compared
    only where the latest broken promises of an account share their day: at 1M accounts
    (4M promises) grouping and sorting the id strings took seconds of the nightly."""
    codes, distinct = pd.factorize(states["account_id"])
    ids = pd.Index(distinct, name="account_id")
    n = len(ids)
    state = states["state"]
    out: dict[str, object] = {"account_id": ids}

    def subset(name: str, columns: list[str]) -> pd.DataFrame:
        # the columns first: the rows of the id columns not read are never taken
        rows = np.flatnonzero((state == name).to_numpy(dtype=bool))
        return states[columns].iloc[rows].assign(_code=codes[rows])

    def per_account(values: pd.Series) -> np.ndarray:  # indexed by code -> one per account
        return values.reindex(np.arange(n)).to_numpy()

    # the amounts add up in the order (promised date, promise id): the same floats
    open_ = subset("open", ["promised_date", "promise_id", "amount", "last_day"]).sort_values(
        ["promised_date", "promise_id"])
    by_open = open_.groupby("_code")
    out["open_promised_date"] = per_account(by_open["promised_date"].min())
    out["open_promised_amount"] = per_account(by_open["amount"].sum())
    out["open_last_day"] = per_account(by_open["last_day"].max())
    # the latest broken promise: latest day broken, then the greatest promise id (only
    # the accounts with several promises broken that day compare ids), ties in row order
    broken = subset("broken", ["resolved_date", "promise_id", "promised_date", "amount"])
    latest = broken[broken["resolved_date"]
                    == broken.groupby("_code")["resolved_date"].transform("max")]
    tied = latest["_code"].duplicated(keep=False).to_numpy()
    last = pd.concat([latest[~tied], latest[tied].sort_values(
        ["resolved_date", "promise_id"]).groupby("_code").tail(1)]).set_index("_code")
    out["last_broken_promise_id"] = per_account(last["promise_id"])
    out["last_broken_promised_date"] = per_account(last["promised_date"])
    out["last_broken_amount"] = per_account(last["amount"]).astype(np.float64)
    out["last_broken_resolved_date"] = per_account(last["resolved_date"])
    kept = subset("kept", ["resolved_date"])
    out["last_kept_resolved_date"] = per_account(kept.groupby("_code")["resolved_date"].max())
    frame = pd.DataFrame(out)
    for col in ("open_promised_date", "open_last_day", "last_broken_promised_date",
                "last_broken_resolved_date", "last_kept_resolved_date"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[s]")
    frame["last_broken_promise_id"] = pd.Series(
        frame["last_broken_promise_id"].to_numpy(dtype=object)).astype("str")
    return frame[list(ACCOUNT_PROMISE_COLUMNS)]
