"""The collections loop's features of a training set, date by date, from the event rows of
the accounts asked for only (``features.pit.training_set``).

:func:`features.pit.loop.loop_features` reads whole tables at each ``as_of``: promise
states join every known payment, contacts are sorted, disputes grouped. Over a grid of
~80 weekly dates that is ~80 passes over the book (about 1 s per date at 30k accounts, 10x
the kernel features), whatever the sample keeps. Every loop feature of an account is an
aggregate of that account's own rows (its promises and the payments toward them, its
contacts, the disputes of its invoices), so :class:`LoopRows` matches each event row to
its account once (as_of-independent) and hands ``loop_features`` a book holding only the
rows of the date's accounts: the same rule on the same rows in the same order, so the
same values, at a cost that follows the sampled rows instead of the book.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.keys import match_ids, values_at
from features.pit.loop import recorded_since, with_loop_features
from features.pit.promises import DEFAULT_GRACE_DAYS, toward_any_promise


def _owners(book: Book, invoice_rows: np.ndarray, index: pd.Index) -> pd.Series:
    """The account id of each child row (``invoice_rows``: its invoice's row, -1 when
    unknown), as ``features.pit.promises.invoice_accounts`` gives it (missing when
    unknown)."""
    return values_at(book.invoices["account_id"], invoice_rows, index)


class LoopRows:
    """A book's event rows matched to its accounts once, for :meth:`features` per date.

    ``account_ids``: the sorted account universe of the training set's prepared book
    (``features.pit._prep.Prepared.account_ids``); ``grace_days``: the promises' grace.
    Payments that no promise can be paid by (their invoice is named by no promise and
    their account holds no promise without an invoice) are dropped once: a promise's
    payments are those of its invoice, else of its account (``features.pit.promises``).
    """

    def __init__(self, book: Book, account_ids: object, *,
                 grace_days: int = DEFAULT_GRACE_DAYS) -> None:
        self._book = book
        self._universe = account_ids
        self._grace = grace_days
        self._since = recorded_since(book)
        inv_ids = book.invoices["invoice_id"]
        inv_code = match_ids(book.invoices["account_id"], account_ids,  # type: ignore[arg-type]
                             reference_sorted=True)
        n_inv = len(inv_code)

        def codes(rows: np.ndarray) -> np.ndarray:
            return np.where(rows >= 0, inv_code[np.maximum(rows, 0)], -1)

        prom = book.promises
        self._prom_code = match_ids(prom["account_id"], account_ids,  # type: ignore[arg-type]
                                    reference_sorted=True)
        named = prom["invoice_id"].notna().to_numpy()
        self._prom_inv = np.full(len(prom), -1, np.int64)
        if named.any():
            self._prom_inv[named] = match_ids(prom["invoice_id"][named], inv_ids)
        pay = book.payments
        pay_inv = match_ids(pay["invoice_id"], inv_ids)
        pay_code = codes(pay_inv)

        def of_invoices(ids: pd.Series) -> np.ndarray:
            named_inv = np.zeros(n_inv + 1, dtype=bool)  # the last slot: unknown invoices
            named_inv[self._prom_inv[ids.index]] = True
            return named_inv[pay_inv]

        def of_accounts(ids: pd.Series) -> np.ndarray:
            bare_acc = np.zeros(len(account_ids) + 1, dtype=bool)  # type: ignore[arg-type]
            bare_acc[self._prom_code[ids.index]] = True
            return bare_acc[pay_code]

        # (the matchers read the promises' codes by row: a range index makes labels rows)
        useful = toward_any_promise(prom.reset_index(drop=True), of_invoices=of_invoices,
                                    of_accounts=of_accounts)
        self._pay = pay[useful]
        self._pay_inv, self._pay_code = pay_inv[useful], pay_code[useful]
        self._pay_accounts = _owners(book, self._pay_inv, self._pay.index)
        dis_inv = match_ids(book.disputes["invoice_id"], inv_ids)
        self._dis_code = codes(dis_inv)
        self._owners = _owners(book, dis_inv, book.disputes.index)
        self._con_code = match_ids(book.contacts["account_id"], account_ids,  # type: ignore[arg-type]
                                   reference_sorted=True)
        self._n_inv = n_inv

    def features(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """``chunk`` (one ``as_of`` date's rows) with the loop features of its accounts
        appended: ``features.pit.loop.with_loop_features`` on the book, computed from the
        rows of those accounts only."""
        book = self._book
        rows = match_ids(chunk["account_id"], self._universe,  # type: ignore[arg-type]
                         reference_sorted=True)
        keep = np.zeros(len(self._universe) + 1, dtype=bool)  # type: ignore[arg-type]
        keep[rows[rows >= 0]] = True  # slot -1 (unmatched rows) stays False
        prom = keep[self._prom_code]
        inv_needed = np.zeros(self._n_inv + 1, dtype=bool)
        inv_needed[self._prom_inv[prom & (self._prom_inv >= 0)]] = True
        pay = keep[self._pay_code] | inv_needed[self._pay_inv]
        dis = keep[self._dis_code]
        sub = replace(book, payments=self._pay[pay], disputes=book.disputes[dis],
                      promises=book.promises[prom],
                      contacts=book.contacts[keep[self._con_code]])
        return with_loop_features(chunk, sub, grace_days=self._grace, since=self._since,
                                  owners=self._owners[dis],
                                  pay_accounts=self._pay_accounts[pay])
