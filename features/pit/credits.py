"""Credits as the one openness rule applies them: inspectable tables (DESIGN section 3).

The rule itself (credit notes, overpayments and prepayments applied to the named invoice or
to the account's open invoices oldest-due first, on the credit's date) is in
``features.pit._credits`` and runs inside :func:`features.pit._prep.prepare`, so features,
facts and labels all see the same applications. These two functions show them as frames:
for notebooks, the tests and the plain pandas oracle (``bench/reference_features.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit._kernels import account_id_column
from features.pit._prep import prepare


def _dates(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[s]")


def applied_payments(book: Book) -> pd.DataFrame:
    """What is applied to each invoice and when: ``invoice_id``, ``payment_date``,
    ``amount`` (book currency), sorted by invoice then date.

    Payments are applied up to what their invoice still owes (the excess is a credit),
    prepayments on their invoice's issue date, credits to the named or the oldest-due open
    invoices. A book without credit notes, prepayments or overpayments gets its payments
    back (of known invoices). An invoice is open at ``as_of`` while the applications dated
    before ``as_of`` have not cleared it (``features.spec.is_cleared``).
    """
    prep = prepare(book)
    n_inv = len(prep.pay_ptr) - 1
    pos = np.repeat(np.arange(n_inv), np.diff(prep.pay_ptr))
    return pd.DataFrame({
        "invoice_id": prep.invoice_id_column(pos),
        "payment_date": _dates(prep.pay_day),
        "amount": np.asarray(prep.pay_amt, dtype=np.float64),
    })


def credit_changes(book: Book) -> pd.DataFrame:
    """Changes of each account's credit on account: ``account_id``, ``date``, ``amount``
    (positive when a credit arises, negative when it is applied). The credit on account
    at ``as_of`` is the sum of the changes dated before ``as_of``.
    """
    prep = prepare(book)
    n_acc = len(prep.coa_ptr) - 1
    acc = np.repeat(np.arange(n_acc), np.diff(prep.coa_ptr))
    return pd.DataFrame({
        "account_id": account_id_column(prep, acc),
        "date": _dates(prep.coa_day),
        "amount": np.asarray(prep.coa_amt, dtype=np.float64),
    })
