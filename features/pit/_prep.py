"""Encode a Book once into flat numpy arrays grouped by account (the kernels' input).

Independent of ``as_of``, so a training-set grid pays for it once. Layout (CSR):

- accounts: sorted distinct ids (``account_ids``), attributes per account;
- invoices reordered so each account's invoices are contiguous: ``acc_ptr[a]:acc_ptr[a+1]``;
- payments of invoice ``i`` at ``pay_ptr[i]:pay_ptr[i+1]``, sorted by date;
- disputes of invoice ``i`` at ``dis_ptr[i]:dis_ptr[i+1]``;
- credit on account changes of account ``a`` at ``coa_ptr[a]:coa_ptr[a+1]``, by day.

"Payments" here are *applications*: what the one openness rule applies to each invoice
(``features.pit._credits``: payments up to what the invoice owes, prepayments on the issue
date, credit notes and overpayments to the named or the oldest-due open invoices). Credit
notes (invoice rows with a negative amount) are not invoices of the arrays; they only
appear through their applications and the credit on account.

Ids are matched with ``features.keys.match_ids`` (a sequential scan when the book lists
payments in invoice order and invoices grouped by account, as exports do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.book import Book
from features.keys import id_array, is_strictly_sorted, match_ids, sorted_unique
from features.pit._credits import allocate, needs_allocation
from features.spec import CLEAR_TOLERANCE_CENTS, ordered_categories, to_cents

#: Day numbers for "never" (missing resolved date) and "none" (missing date): beyond any
#: real date but within int32, in which day arrays are stored (half the memory of int64).
NEVER = np.int64(2**30)
NONE = np.int64(-(2**30))
_EPOCH = date(1970, 1, 1).toordinal()


def day_number(day: date) -> int:
    """Days since 1970-01-01 of ``day``: the kernels' integer day (the one conversion)."""
    return day.toordinal() - _EPOCH


@dataclass(frozen=True)
class Prepared:
    """A Book as flat arrays (days are int32 days since 1970-01-01, see :func:`day_number`;
    the CSR offsets ``*_ptr`` int32, int64 only past 2**31 rows: :func:`_ptr`).

    ``invoice_ids`` are in the book's order; ``inv_order[k]`` is the book row of the invoice
    at position ``k`` of the arrays (None when the book already lists invoices grouped by
    account, so positions are rows).

    ``pay_invoices``: the row in ``book.invoices`` of each row of ``book.payments``'s
    invoice (its first occurrence, -1 where unknown; int32), as
    ``features.keys.match_ids(payments.invoice_id, invoices.invoice_id)`` gives it: the
    encoding matches every payment to its invoice anyway, and the promises' rule
    (``features.pit.promises.promise_state``) reads that match instead of matching the
    payments' ids again. None when the book has credit notes (the arrays' invoices are
    then not the book's rows).
    """

    account_ids: pa.Array
    invoice_ids: pa.Array
    inv_order: np.ndarray | None
    acc_ptr: np.ndarray
    issue: np.ndarray
    due: np.ndarray
    amount: np.ndarray
    pay_ptr: np.ndarray
    pay_day: np.ndarray
    pay_amt: np.ndarray
    dis_ptr: np.ndarray
    dis_open: np.ndarray
    dis_res: np.ndarray
    coa_ptr: np.ndarray
    coa_day: np.ndarray
    coa_amt: np.ndarray
    credit_limit: np.ndarray
    created: np.ndarray
    segment_codes: np.ndarray
    segment_cats: list[str]
    region_codes: np.ndarray
    region_cats: list[str]
    pay_invoices: np.ndarray | None = None

    def invoice_id_column(self, positions: np.ndarray) -> pd.Series:
        """The ``invoice_id`` (pandas ``str``) of invoices at the given array positions."""
        rows = positions if self.inv_order is None else self.inv_order[positions]
        return pd.Series(self.invoice_ids.take(rows), dtype="str")


def _arrow(values: pd.Series | pa.Array) -> pa.Array:
    """One Arrow array of a column (zero-copy for Arrow-backed pandas strings)."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _days(values: pd.Series, missing: np.int64) -> np.ndarray:
    """Day numbers (int32) of a midnight datetime64[s] column; ``missing`` where NaT."""
    return _day_numbers(values.to_numpy(dtype="datetime64[s]").view(np.int64),
                        np.int32(missing))


@nb.njit(cache=True, nogil=True)
def _day_numbers(secs, missing):
    """One pass: numpy's integer division and NaT mask took 0.89 s over the six date
    columns of the 1M book (50M invoices and payments), this 0.58 s."""
    out = np.empty(len(secs), np.int32)
    for i in range(len(secs)):
        v = secs[i]
        # floor division (Python's, as numba's): correct before 1970 too
        out[i] = missing if v == np.iinfo(np.int64).min else v // 86400
    return out


@nb.njit(cache=True)
def _is_sorted(x):
    for i in range(len(x) - 1):  # noqa: SIM110 (numba: plain loop)
        if x[i + 1] < x[i]:
            return False
    return True


@nb.njit(cache=True)
def _pairs_sorted(pos, d):
    """Whether rows are already ordered by (pos, d): then no sort and no key array."""
    for i in range(len(pos) - 1):
        if pos[i + 1] < pos[i] or (pos[i + 1] == pos[i] and d[i + 1] < d[i]):
            return False
    return True


def _ptr(group: np.ndarray, n: int) -> np.ndarray:
    """CSR offsets of a sorted group-index array with ``n`` groups: int32 while the rows
    fit (every book here; int64 beyond 2**31 rows). Why not int64 always: the payments'
    and disputes' offsets have one entry per invoice, 2 x 0.4 GB at 1M accounts (50M
    invoices) as int64, half that as int32 (the kernels read either)."""
    ptr = np.zeros(n + 1, np.int32 if len(group) < 2**31 else np.int64)
    _fill_ptr(group, ptr)
    return ptr


@nb.njit(cache=True)
def _fill_ptr(group, ptr):
    """:func:`_ptr` into ``ptr`` (zeros, one more than the groups)."""
    for g in group:
        ptr[g + 1] += 1
    for k in range(len(ptr) - 1):
        ptr[k + 1] += ptr[k]


def _categories(values: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    cats = ordered_categories(values)
    codes = pd.Categorical(values.astype(object).where(values.notna(), None),
                           categories=cats).codes.astype(np.int32)
    out = np.full(len(rows), -1, np.int32)
    ok = rows >= 0
    out[ok] = codes[rows[ok]]
    return out, cats


def _children(pos: np.ndarray, rank: np.ndarray, day: np.ndarray,
              n_inv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, invoice position, ptr) of child rows (payments/disputes) grouped by invoice
    position then day, from each row's invoice row (``pos``: ``match_ids`` against the
    invoices' ids, -1 unknown); rows of unknown invoices are dropped."""
    keep = pos >= 0
    if not keep.all():
        sel = np.flatnonzero(keep)
        pos = pos[sel]
    else:
        sel = None
    pos = rank[pos] if rank is not None else pos
    d = day if sel is None else day[sel]
    if _pairs_sorted(pos, d):
        order = sel
    else:
        dmin = d.min() if len(d) else 0
        span = int(d.max() - dmin) if len(d) else 0
        if span < 2**22:
            o = np.argsort(pos * np.int64(2**22) + (d - dmin), kind="stable")
        else:
            o = np.lexsort((d, pos))
        order = o if sel is None else sel[o]
        pos = pos[o]
    return order, pos, _ptr(pos, n_inv)


def _take(x: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return x if order is None else x[order]


@nb.njit(cache=True)
def _segment_order(owner, day, owner_ptr):
    """:func:`_by_owner_then_day` when ``owner`` comes in account blocks (see there); an
    empty array when it does not."""
    n = len(owner)
    out = np.empty(n, np.int64)
    a = 0
    j = 0
    while j < n:
        while a + 1 < len(owner_ptr) and owner_ptr[a + 1] <= owner[j]:
            a += 1
        if owner[j] < owner_ptr[a]:  # an earlier account's owner again: not blocks
            return np.zeros(0, np.int64)
        k = j
        while k < n and owner_ptr[a] <= owner[k] < owner_ptr[a + 1]:
            k += 1
        key = (owner[j:k] - owner_ptr[a]) * np.int64(2**32) + (day[j:k] + np.int64(2**31))
        out[j:k] = j + np.argsort(key, kind="mergesort")
        j = k
        a += 1
    return out


def _by_owner_then_day(owner: np.ndarray, day: np.ndarray, owner_ptr: np.ndarray) -> np.ndarray:
    """``np.lexsort((day, owner))`` (stable): rows by owner (an invoice position or an
    account), then day. ``allocate`` writes its rows account by account, each account's
    owners within its range of ``owner_ptr`` (invoice positions ``acc_ptr``, or accounts),
    so each account's block is sorted on its own: 15M applications of 300k accounts took
    2.3 s by one lexsort, 0.4 s by blocks (only books with credit notes, prepayments or
    overpayments have applications to sort). Rows not in such blocks (never written so)
    take the lexsort."""
    if len(owner) and owner.min() >= 0 and owner.max() < owner_ptr[-1]:
        order = _segment_order(owner, day, owner_ptr)
        if len(order) == len(owner):
            return order
    return np.lexsort((day, owner))


#: Invoices per block of :func:`_needs_allocation` (its cents arrays: ~16 MB a block).
_BLOCK = 1 << 20


def _needs_allocation(issue: np.ndarray, amount: np.ndarray, pay_ptr: np.ndarray,
                      pay_day: np.ndarray, pay_amt: np.ndarray) -> bool:
    """``features.pit._credits.needs_allocation`` on amounts in currency units, a block of
    invoices at a time: the same cents (``to_cents``) without the whole book's cents
    arrays (at 1M accounts two int64 arrays of 50M, 0.8 GB at prepare's peak, for a book
    that needs no allocation: the common case)."""
    for lo in range(0, len(issue), _BLOCK):
        hi = min(lo + _BLOCK, len(issue))
        p_lo, p_hi = int(pay_ptr[lo]), int(pay_ptr[hi])
        if needs_allocation(issue[lo:hi], to_cents(amount[lo:hi]), pay_ptr[lo:hi + 1] - p_lo,
                            pay_day[p_lo:p_hi], to_cents(pay_amt[p_lo:p_hi])):
            return True
    return False


def _applications(
    inv: pd.DataFrame, credits: pd.DataFrame | None, universe: pa.Array,
    order: np.ndarray | None, acc_ptr: np.ndarray, issue: np.ndarray, due: np.ndarray,
    amount: np.ndarray, pay_ptr: np.ndarray, pay_day: np.ndarray, pay_amt: np.ndarray,
    *, ids_sorted: bool,
) -> tuple[np.ndarray, ...]:
    """(pay_ptr, pay_day, pay_amt, coa_ptr, coa_day, coa_amt): the applications of the
    one openness rule (see ``features.pit._credits``) in place of the raw payments. A book
    without credit notes, prepayments or overpayments keeps its payments as they are.
    ``ids_sorted``: whether ``inv``'s invoice ids are strictly ascending."""
    n_acc, n_inv = len(acc_ptr) - 1, len(issue)
    if credits is None and not _needs_allocation(issue, amount, pay_ptr, pay_day, pay_amt):
        empty = np.zeros(0, np.int32)
        return (pay_ptr, pay_day, pay_amt, np.zeros(n_acc + 1, pay_ptr.dtype), empty,
                np.zeros(0, np.float64))
    amount_c = to_cents(amount)
    pay_c = to_cents(pay_amt)
    ids = pa.array(inv["invoice_id"])
    if order is not None:
        ids = ids.take(pa.array(order))
    if order is None and ids_sorted:  # positions are the ids' ranks (a canonical book)
        inv_rank = np.arange(n_inv, dtype=np.int64)
    else:  # rank of each position's id: the pool's last tie (a sort of every id)
        inv_rank = np.empty(n_inv, np.int64)
        inv_rank[pc.sort_indices(ids).to_numpy()] = np.arange(n_inv)
    if credits is None:
        credits = inv.iloc[:0]
    cr_acc = match_ids(credits["account_id"], universe).astype(np.int64)
    cr_day = _days(credits["issue_date"], NONE)
    cr_c = -to_cents(credits["amount"].to_numpy(np.float64))
    cr_ref = np.full(len(credits), -1, np.int64)
    if "reference_invoice_id" in credits.columns and len(credits):
        named = credits["reference_invoice_id"].notna().to_numpy()
        if named.any():
            pos = match_ids(credits["reference_invoice_id"].astype("str"), ids)
            inv_acc = np.repeat(np.arange(n_acc), np.diff(acc_ptr))
            ok = named & (pos >= 0)
            ok[ok] = inv_acc[pos[ok]] == cr_acc[ok]  # only an invoice of the same account
            cr_ref[ok] = pos[ok]
    o = np.lexsort((cr_day, cr_acc))
    app_inv, app_day, app_c, coa_acc, coa_day, coa_c = allocate(
        np.int64(CLEAR_TOLERANCE_CENTS), acc_ptr, issue, due, amount_c, inv_rank, pay_ptr,
        pay_day, pay_c, _ptr(cr_acc[o], n_acc), cr_day[o], cr_c[o], cr_ref[o])
    o = _by_owner_then_day(app_inv, app_day, acc_ptr)
    c = _by_owner_then_day(coa_acc, coa_day, np.arange(n_acc + 1, dtype=np.int64))
    return (_ptr(app_inv[o], n_inv), app_day[o].astype(np.int32), app_c[o] / 100.0,
            _ptr(coa_acc[c], n_acc), coa_day[c].astype(np.int32), coa_c[c] / 100.0)


def prepare(book: Book) -> Prepared:
    """Flatten ``book`` into the arrays the kernels read (see module docstring)."""
    inv, acc = book.invoices, book.accounts
    acc_ids = pa.array(acc["account_id"])
    universe = sorted_unique(acc_ids)
    # the universe is sorted and distinct here: no check of it (one pass) per match
    inv_acc = match_ids(inv["account_id"], universe, reference_sorted=True)
    if (inv_acc < 0).any():  # accounts missing from the accounts table (bare Book)
        extra = id_array(inv["account_id"][inv_acc < 0])
        universe = sorted_unique(pa.concat_arrays([universe, extra.cast(universe.type)]))
        inv_acc = match_ids(inv["account_id"], universe, reference_sorted=True)
    credits = None
    is_credit = inv["amount"].to_numpy(np.float64) < 0
    if is_credit.any():  # credit notes: credits of their account, not invoices
        credits = inv[is_credit]
        inv = inv[~is_credit].reset_index(drop=True)
        inv_acc = inv_acc[~is_credit]
    inv_acc = inv_acc.astype(np.int32)
    n_acc, n_inv = len(universe), len(inv)

    rank = None
    order = None
    if not _is_sorted(inv_acc):
        order = np.argsort(inv_acc, kind="stable")
        rank = np.empty(n_inv, np.int64)
        rank[order] = np.arange(n_inv)
        inv_acc = inv_acc[order]
    acc_ptr = _ptr(inv_acc, n_acc)
    del inv_acc
    issue = _take(_days(inv["issue_date"], NONE), order)
    due = _take(_days(inv["due_date"], NONE), order)
    amount = _take(inv["amount"].to_numpy(np.float64), order)

    pay = book.payments
    pay_day_raw = _days(pay["payment_date"], NONE)
    # one sortedness pass over the invoice ids for both children (a canonical book's are)
    ids_sorted = is_strictly_sorted(inv["invoice_id"])
    # int32 at once (the matcher's int64 rows, 0.4 GB at 1M accounts, not kept beside)
    pay_rows = match_ids(pay["invoice_id"], inv["invoice_id"],
                         reference_sorted=ids_sorted).astype(np.int32)
    p_order, _, pay_ptr = _children(pay_rows, rank, pay_day_raw, n_inv)
    # without credit notes the arrays' invoices are the book's rows (see Prepared)
    pay_invoices = pay_rows if credits is None else None
    del pay_rows
    pay_day = _take(pay_day_raw, p_order)
    pay_amt = _take(pay["amount"].to_numpy(np.float64), p_order)
    pay_ptr, pay_day, pay_amt, coa_ptr, coa_day, coa_amt = _applications(
        inv, credits, universe, order, acc_ptr, issue, due, amount, pay_ptr, pay_day, pay_amt,
        ids_sorted=ids_sorted)

    dis = book.disputes
    dis_open_raw = _days(dis["opened_date"], NONE)
    d_order, _, dis_ptr = _children(
        match_ids(dis["invoice_id"], inv["invoice_id"], reference_sorted=ids_sorted), rank,
        dis_open_raw, n_inv)
    dis_open = _take(dis_open_raw, d_order)
    dis_res = _take(_days(dis["resolved_date"], NEVER), d_order)

    acc_row = match_ids(universe, acc_ids)
    ok = acc_row >= 0
    credit = np.full(n_acc, np.nan)
    credit[ok] = acc["credit_limit"].to_numpy(np.float64, na_value=np.nan)[acc_row[ok]]
    created = np.full(n_acc, NONE, np.int32)
    created[ok] = _days(acc["created_date"], NONE)[acc_row[ok]]
    seg_codes, seg_cats = _categories(acc["segment"], acc_row)
    reg_codes, reg_cats = _categories(acc["region"], acc_row)
    return Prepared(
        account_ids=universe, invoice_ids=_arrow(inv["invoice_id"]), inv_order=order,
        acc_ptr=acc_ptr, issue=issue, due=due, amount=amount,
        pay_ptr=pay_ptr, pay_day=pay_day, pay_amt=pay_amt, dis_ptr=dis_ptr,
        dis_open=dis_open, dis_res=dis_res, coa_ptr=coa_ptr, coa_day=coa_day,
        coa_amt=coa_amt, credit_limit=credit, created=created,
        segment_codes=seg_codes, segment_cats=seg_cats, region_codes=reg_codes,
        region_cats=reg_cats, pay_invoices=pay_invoices,
    )
