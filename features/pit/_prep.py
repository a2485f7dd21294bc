"""Encode a Book once into flat numpy arrays grouped by account (input of ``_pit_kernels``).

Independent of ``as_of``, so a training-set grid pays for it once. Layout (CSR):

- accounts: sorted distinct ids (``account_ids``), attributes per account;
- invoices reordered so each account's invoices are contiguous: ``acc_ptr[a]:acc_ptr[a+1]``;
- payments of invoice ``i`` at ``pay_ptr[i]:pay_ptr[i+1]``, sorted by date;
- disputes of invoice ``i`` at ``dis_ptr[i]:dis_ptr[i+1]``.

Why hand-rolled id matching: on this class of machine a random access into a 50M-row table
costs ~150 ns, so a generic hash join of 50M payment ids against 50M invoice ids takes
minutes. Real exports (and the synthetic book) list payments roughly in invoice order and
invoices grouped by account, so we first try a *hinted* match (is it the same id as the
previous row's match, or the next one?) which is a sequential scan, and fall back to a hash
table only for the rows that miss. Results never depend on input order, only speed does.
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
from features.spec import ordered_categories

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
    """A Book as flat arrays (days are int32 days since 1970-01-01, see :func:`day_number`).

    ``invoice_ids`` are in the book's order; ``inv_order[k]`` is the book row of the invoice
    at position ``k`` of the arrays (None when the book already lists invoices grouped by
    account, so positions are rows).
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
    credit_limit: np.ndarray
    created: np.ndarray
    segment_codes: np.ndarray
    segment_cats: list[str]
    region_codes: np.ndarray
    region_cats: list[str]

    def invoice_id_column(self, positions: np.ndarray) -> pd.Series:
        """The ``invoice_id`` (pandas ``str``) of invoices at the given array positions."""
        rows = positions if self.inv_order is None else self.inv_order[positions]
        return pd.Series(self.invoice_ids.take(rows), dtype="str")


def _arrow(values: pd.Series | pa.Array) -> pa.Array:
    """One Arrow array of a column (zero-copy for Arrow-backed pandas strings)."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _strings(values: pd.Series | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a string column, zero-copy (int32 or int64 offsets)."""
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type):
        width = np.int64
    elif pa.types.is_string(arr.type):
        width = np.int32
    else:
        arr = arr.cast(pa.large_string())
        width = np.int64
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=width)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(
        1, np.uint8)
    return offsets, data


@nb.njit(cache=True)
def _eq(ao, ad, i, bo, bd, j):
    la = ao[i + 1] - ao[i]
    if la != bo[j + 1] - bo[j]:
        return False
    a0, b0 = ao[i], bo[j]
    for k in range(la):  # noqa: SIM110 (a plain loop compiles to the tightest numba code)
        if ad[a0 + k] != bd[b0 + k]:
            return False
    return True


@nb.njit(cache=True)
def _cmp(ao, ad, i, bo, bd, j):
    """Byte-wise comparison of string i of a with string j of b: -1, 0 or 1."""
    la, lb = ao[i + 1] - ao[i], bo[j + 1] - bo[j]
    a0, b0 = ao[i], bo[j]
    for k in range(min(la, lb)):
        x, y = ad[a0 + k], bd[b0 + k]
        if x != y:
            return -1 if x < y else 1
    return -1 if la < lb else (1 if la > lb else 0)


@nb.njit(cache=True)
def _hash(o, d, i):
    """FNV-1a with a murmur3 finaliser (FNV's low bits alone cluster on id-like strings)."""
    h = np.uint64(14695981039346656037)
    for k in range(o[i], o[i + 1]):
        h = (h ^ np.uint64(d[k])) * np.uint64(1099511628211)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


@nb.njit(cache=True)
def _strictly_sorted(o, d):
    for i in range(len(o) - 2):  # noqa: SIM110 (numba: plain loop)
        if _cmp(o, d, i, o, d, i + 1) >= 0:
            return False
    return True


@nb.njit(cache=True)
def _match_hinted(qo, qd, ro, rd, ref_sorted):
    """Index into the reference of each query string, -1 where not found this way.

    Tries the previous match and the next two rows first (ordered exports hit here); when
    the reference ids are strictly sorted, misses are found by galloping from the hint,
    which keeps the scan local and re-synchronises the hint after gaps.
    """
    n, m = len(qo) - 1, len(ro) - 1
    out = np.full(n, -1, np.int64)
    k = 0
    for j in range(n):
        found = -1
        for c in range(k, min(k + 3, m)):
            if _eq(qo, qd, j, ro, rd, c):
                found = c
                break
        if found < 0 and ref_sorted and m > 0:
            # lower bound of query j, searched in a window doubling away from the hint
            if _cmp(ro, rd, k, qo, qd, j) < 0:
                lo, step = k, 1
                while lo + step < m and _cmp(ro, rd, lo + step, qo, qd, j) < 0:
                    lo += step
                    step *= 2
                hi = min(lo + step, m)
            else:
                lo, hi = -1, k
            while hi - lo > 1:  # invariant: ref[lo] < q <= ref[hi] (ends are sentinels)
                mid = (lo + hi) // 2
                if _cmp(ro, rd, mid, qo, qd, j) < 0:
                    lo = mid
                else:
                    hi = mid
            if hi < m and _eq(qo, qd, j, ro, rd, hi):
                found = hi
        if found >= 0:
            out[j] = found
            k = found
    return out


@nb.njit(cache=True)
def _match_hashed(qo, qd, ro, rd, out):
    """Fill the -1 entries of ``out``: a hash table over those query strings, then one
    sequential scan of the reference (first occurrence wins). Ids not found stay -1."""
    miss = np.flatnonzero(out < 0)
    size = 1
    while size < 2 * len(miss) + 2:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int64)  # slot -> first missing query with that string
    nxt = np.full(len(miss), -1, np.int64)  # chain of further queries with the same string
    for t in range(len(miss)):
        j = miss[t]
        s = _hash(qo, qd, j) & mask
        while table[s] >= 0 and not _eq(qo, qd, miss[table[s]], qo, qd, j):
            s = (s + np.uint64(1)) & mask
        if table[s] >= 0:
            nxt[t] = nxt[table[s]]
            nxt[table[s]] = t
        else:
            table[s] = t
    for r in range(len(ro) - 1):
        s = _hash(ro, rd, r) & mask
        while table[s] >= 0:
            t = table[s]
            if _eq(qo, qd, miss[t], ro, rd, r):
                while t >= 0:
                    if out[miss[t]] < 0:
                        out[miss[t]] = r
                    t = nxt[t]
                break
            s = (s + np.uint64(1)) & mask
    return out


def match_ids(query: pd.Series | pa.Array, reference: pd.Series | pa.Array) -> np.ndarray:
    """Row index in ``reference`` of each ``query`` id (first occurrence), -1 if absent."""
    qo, qd = _strings(query)
    ro, rd = _strings(reference)
    out = _match_hinted(qo, qd, ro, rd, _strictly_sorted(ro, rd))
    if (out < 0).any():
        out = _match_hashed(qo, qd, ro, rd, out)
    return out


def _days(values: pd.Series, missing: np.int64) -> np.ndarray:
    """Day numbers (int32) of a midnight datetime64[s] column; ``missing`` where NaT."""
    secs = values.to_numpy(dtype="datetime64[s]").view(np.int64)
    days = (secs // 86400).astype(np.int32)  # floor division: correct before 1970 too
    nat = secs == np.iinfo(np.int64).min
    if nat.any():
        days[nat] = missing
    return days


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


@nb.njit(cache=True)
def _ptr(group, n):
    """CSR offsets of a sorted group-index array with ``n`` groups."""
    ptr = np.zeros(n + 1, np.int64)
    for g in group:
        ptr[g + 1] += 1
    for k in range(n):
        ptr[k + 1] += ptr[k]
    return ptr


def _categories(values: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    cats = ordered_categories(values)
    codes = pd.Categorical(values.astype(object).where(values.notna(), None),
                           categories=cats).codes.astype(np.int32)
    out = np.full(len(rows), -1, np.int32)
    ok = rows >= 0
    out[ok] = codes[rows[ok]]
    return out, cats


def _children(ids: pd.Series, inv_ids: pd.Series, rank: np.ndarray, day: np.ndarray,
              n_inv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, invoice position, ptr) of child rows (payments/disputes) grouped by invoice
    position then day; rows of unknown invoices are dropped."""
    pos = match_ids(ids, inv_ids)
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


def prepare(book: Book) -> Prepared:
    """Flatten ``book`` into the arrays the kernels read (see module docstring)."""
    inv, acc = book.invoices, book.accounts
    acc_ids = pa.array(acc["account_id"])
    universe = pc.unique(acc_ids)
    universe = universe.take(pc.sort_indices(universe))
    inv_acc = match_ids(inv["account_id"], universe)
    if (inv_acc < 0).any():  # accounts missing from the accounts table (bare Book)
        extra = pc.unique(pa.array(inv["account_id"]).filter(pa.array(inv_acc < 0)))
        universe = pa.concat_arrays([universe, extra.cast(universe.type)])
        universe = universe.take(pc.sort_indices(universe))
        inv_acc = match_ids(inv["account_id"], universe)
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
    p_order, _, pay_ptr = _children(pay["invoice_id"], inv["invoice_id"], rank, pay_day_raw,
                                    n_inv)
    pay_day = _take(pay_day_raw, p_order)
    pay_amt = _take(pay["amount"].to_numpy(np.float64), p_order)

    dis = book.disputes
    dis_open_raw = _days(dis["opened_date"], NONE)
    d_order, _, dis_ptr = _children(dis["invoice_id"], inv["invoice_id"], rank, dis_open_raw,
                                    n_inv)
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
        dis_open=dis_open, dis_res=dis_res, credit_limit=credit, created=created,
        segment_codes=seg_codes, segment_cats=seg_cats, region_codes=reg_codes,
        region_cats=reg_cats,
    )
