"""Invoices open at ``as_of``, one row each, by the one openness rule (DESIGN section 3).

The features see an account through aggregates (open balance, oldest DPD, aging buckets);
dunning letters, the workbench account page and the receivables KPIs (``features.pit.kpis``)
need the invoices behind them. They come from the same pass the features make: the same
prepared arrays (``features.pit._prep``: payments replaced by the *applications* of the
credits rule, ``features.pit._credits``) and the same inlined helpers of
``features.pit._kernels`` (:func:`_pay_state` for what was applied and whether the invoice
cleared, :func:`_open_disputes`, :func:`_credit_on_account`). Nothing here re-states a
rule, so an invoice is open here exactly when the features count it open, and
``tests/features/test_open_invoices.py`` holds the two equal on random books.

numba's disk cache watches only this file: after editing the helpers of ``_kernels``,
touch this file too (see that module's docstring).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract.book import Book
from features.keys import match_ids
from features.pit._kernels import (
    _credit_on_account,
    _open_disputes,
    _pay_state,
    account_id_column,
    run_chunked,
)
from features.pit._prep import NONE, Prepared, day_number, prepare
from features.spec import CLEAR_TOLERANCE_CENTS, as_day

#: Columns of :func:`open_invoices`, in order.
OPEN_INVOICE_COLUMNS = ("account_id", "invoice_id", "issue_date", "due_date", "amount",
                        "amount_open", "days_past_due", "disputed")


@nb.njit(cache=True, nogil=True)
def _open_range(start, stop, accounts, as_of, tol, is_open, rest, disputed, coa, acc_ptr,
                issue, amount, pay_ptr, pay_day, pay_amt, dis_ptr, dis_open, dis_res,
                coa_ptr, coa_day, coa_amt):
    """For the accounts ``accounts[start:stop]``: mark each invoice open at ``as_of``
    (``is_open``), what it still owes (``rest``) and whether a dispute is open on it, and
    the account's credit on account (``coa[j]``) - as ``_account_features`` does."""
    for j in range(start, stop):
        a = accounts[j]
        for i in range(acc_ptr[a], acc_ptr[a + 1]):
            if issue[i] >= as_of:
                continue
            paid, clear, _first, _last = _pay_state(i, as_of, tol, amount, pay_ptr,
                                                    pay_day, pay_amt)
            if clear != NONE:
                continue
            is_open[i] = True
            rest[i] = amount[i] - paid
            disputed[i] = _open_disputes(i, as_of, dis_ptr, dis_open, dis_res) > 0
        coa[j] = _credit_on_account(a, as_of, coa_ptr, coa_day, coa_amt)


@dataclass(frozen=True)
class OpenState:
    """Open invoices of a prepared book at one ``as_of`` (array form, for the KPIs).

    ``positions``: open invoices' positions in ``prep``'s invoice arrays, account by
    account; ``amount_open`` (book currency) and ``days_past_due`` (days, ``as_of -
    due``) and ``disputed`` beside them; ``accounts``: the account rows looked at and
    ``credit_on_account`` (book currency, >= 0) of each.
    """

    positions: np.ndarray
    amount_open: np.ndarray
    days_past_due: np.ndarray
    disputed: np.ndarray
    accounts: np.ndarray
    credit_on_account: np.ndarray


def open_state(prep: Prepared, as_of: date, *, accounts: np.ndarray | None = None,
               tolerance_cents: int = CLEAR_TOLERANCE_CENTS) -> OpenState:
    """:class:`OpenState` of ``prep`` at ``as_of`` for the account rows ``accounts``
    (int64, all when None)."""
    n_acc = len(prep.acc_ptr) - 1
    rows = (np.arange(n_acc, dtype=np.int64) if accounts is None
            else np.ascontiguousarray(accounts, dtype=np.int64))
    n_inv = len(prep.issue)
    is_open = np.zeros(n_inv, np.bool_)
    rest = np.zeros(n_inv, np.float64)
    disputed = np.zeros(n_inv, np.bool_)
    coa = np.zeros(len(rows), np.float64)
    day = day_number(as_of)
    run_chunked(_open_range, len(rows), rows, day, int(tolerance_cents), is_open, rest,
                disputed, coa, prep.acc_ptr, prep.issue, prep.amount, prep.pay_ptr,
                prep.pay_day, prep.pay_amt, prep.dis_ptr, prep.dis_open, prep.dis_res,
                prep.coa_ptr, prep.coa_day, prep.coa_amt)
    pos = np.flatnonzero(is_open)
    return OpenState(
        positions=pos, amount_open=rest[pos],
        days_past_due=(day - prep.due[pos].astype(np.int64)), disputed=disputed[pos],
        accounts=rows, credit_on_account=coa)


def _dates(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[s]")


def account_rows(prep: Prepared, account_ids: Iterable[str]) -> np.ndarray:
    """Sorted account rows of ``prep`` for the given ids (ids not in the book are left
    out: they have nothing open)."""
    ids = pa.array([str(x) for x in account_ids], type=pa.string())
    rows = match_ids(ids, prep.account_ids.cast(pa.string()))
    return np.unique(rows[rows >= 0]).astype(np.int64)


def open_invoices(book: Book, *, as_of: date | pd.Timestamp,
                  accounts: Iterable[str] | None = None) -> pd.DataFrame:
    """Every invoice open at ``as_of``, one row each, by the features' openness rule.

    Only what is dated strictly before ``as_of`` counts: invoices issued before it, and
    payments, credit notes, overpayments and prepayments applied before it (the one rule of
    ``features.pit._credits``). Columns (:data:`OPEN_INVOICE_COLUMNS`):

    - ``account_id``, ``invoice_id`` (str); ``issue_date``, ``due_date`` (datetime64[s]);
    - ``amount``: the invoice amount, ``amount_open``: what it still owes at ``as_of``, net
      of the payments and credits applied to it (book currency, > 0);
    - ``days_past_due``: ``as_of - due_date`` in days (int64; 0 or less = not yet due);
    - ``disputed``: a dispute on it is open at ``as_of`` (opened before, not resolved
      before).

    Per account, these rows are exactly what :func:`features.pit.build_features` counts:
    their number is ``n_open_invoices``, their largest DPD ``oldest_dpd``, and their sum
    less the account's ``credit_on_account`` (unapplied credit held for invoices not yet
    issued), floored at 0, is ``open_balance``. Credit on account belongs to no invoice, so
    it is not in these rows.

    ``accounts``: ids to list (others are not computed; unknown ids give no rows). Rows
    sorted by ``account_id``, then oldest due first (due date, issue date, invoice id: the
    order credits are applied in). For dunning letters and the workbench account page
    (both to come), and the KPIs.
    """
    day = as_day(as_of)
    prep = prepare(book)
    rows = None if accounts is None else account_rows(prep, accounts)
    state = open_state(prep, day, accounts=rows)
    pos = state.positions
    n_acc = len(prep.acc_ptr) - 1
    acc_of_inv = np.repeat(np.arange(n_acc, dtype=np.int64), np.diff(prep.acc_ptr))
    inv_ids = prep.invoice_id_column(pos)
    frame = pd.DataFrame({
        "account_id": account_id_column(prep, acc_of_inv[pos]),
        "invoice_id": inv_ids,
        "issue_date": _dates(prep.issue[pos]),
        "due_date": _dates(prep.due[pos]),
        "amount": prep.amount[pos],
        "amount_open": state.amount_open,
        "days_past_due": state.days_past_due.astype(np.int64),
        "disputed": state.disputed,
    })
    # account rows are sorted ids already; within an account, oldest due first
    order = np.lexsort((inv_ids.to_numpy(dtype=object), prep.issue[pos], prep.due[pos],
                        acc_of_inv[pos]))
    return frame.take(order).reset_index(drop=True)
