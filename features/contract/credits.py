"""What validation counts about credits (DESIGN section 3): kept, not quarantined.

Credit notes (invoice rows with a negative amount, or a credit ``document_type``),
prepayments (payments dated before their invoice's issue date) and overpayments (payments
of an invoice beyond its amount) are valid data: the book keeps them and the one openness
rule (``features.pit._credits``) applies them. Validation counts them in its summary so a
user sees what was kept as credit; nothing here changes a row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numba as nb
import numpy as np
import polars as pl

from features.contract.parsing import value

#: Keys of :attr:`ValidationResult.credits`, in display order.
CREDIT_COUNTS = ("credit_notes", "credit_note_amount", "prepayments", "prepayment_amount",
                 "overpaid_invoices", "overpaid_amount")


def credit_notes(invoices: pl.DataFrame) -> dict[str, float]:
    """Count and total (positive, book currency) of the kept credit notes (canonical
    invoices with a negative amount)."""
    amount = invoices.get_column("amount")
    neg = amount.filter(amount < 0)
    return {"credit_notes": len(neg), "credit_note_amount": round(-float(neg.sum()), 2)}


def payment_credits(payments: pl.DataFrame, invoice_amounts: pl.Series,
                    keep: pl.Series | None = None) -> dict[str, float]:
    """Prepayments and overpaid invoices among the kept payments: ``payments`` are the
    checked rows (kept or not, with the invoice's issue date ``__parent_issue`` and row
    ``__parent`` beside each row), ``keep`` the mask of the kept ones (None: every row);
    ``invoice_amounts``: the amounts of the invoices those rows index. An invoice is
    overpaid when its payments exceed its amount by a cent or more; the excess is the
    credit.

    The kept rows are read where they are, never filtered into a copy (at 1M accounts the
    four columns of 50M kept payments, 1.2 GB at validation's peak: issue 20)."""
    early = pl.col(value("payment_date")) < pl.col("__parent_issue")
    if keep is not None:
        early = early & pl.lit(keep)
    n_early, early_amount = payments.select(
        early.sum(), pl.col(value("amount")).filter(early).sum()).row(0)
    # Per invoice by its row number (a kept payment always has one): a weighted count,
    # linear and without hashing the ids.
    kept = np.ones(0, np.bool_) if keep is None else keep.to_numpy()
    paid, has = _paid(_values(payments.get_column("__parent")),
                      _values(payments.get_column(value("amount"))), len(invoice_amounts), kept)
    # In place, over every invoice (those without payments are masked out after): the
    # same float operations as on the paid ones alone, without three temporaries as long
    # as the invoices (at 50M invoices ~1.2 GB at validation's peak).
    cents = paid
    cents -= invoice_amounts.to_numpy()
    cents *= 100
    np.round(cents, out=cents)
    excess = cents[has & (cents >= 1)]
    return {
        "prepayments": int(n_early),
        "prepayment_amount": round(float(early_amount), 2),
        "overpaid_invoices": len(excess),
        "overpaid_amount": round(float(excess.sum()) / 100, 2),
    }


def _values(series: pl.Series) -> np.ndarray:
    """A numeric column's values buffer as numpy, without a copy whatever its nulls (a
    null's slot holds any value: read only at kept rows, which have none)."""
    arrow = series.rechunk().to_arrow()
    if len(arrow) == 0:
        return np.zeros(0, arrow.type.to_pandas_dtype())
    return np.frombuffer(arrow.buffers()[1], dtype=arrow.type.to_pandas_dtype())[
        arrow.offset: arrow.offset + len(arrow)]


@nb.njit(cache=True, nogil=True)
def _paid(parent: np.ndarray, amount: np.ndarray, n: int,
          keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the kept payments' ``amount`` per invoice row ``parent``, whether it has
    any) over ``n`` invoices: ``np.bincount`` with weights (the same sums, added in row
    order), which would first copy both columns (it copies read-only arrays, as polars'
    are). ``keep``: the rows to count (empty: every row)."""
    paid = np.zeros(n, np.float64)
    has = np.zeros(n, np.bool_)
    every = len(keep) == 0
    for i in range(len(parent)):
        if every or keep[i]:
            paid[parent[i]] += amount[i]
            has[parent[i]] = True
    return paid, has


def describe(counts: Mapping[str, float]) -> str | None:
    """One summary line, e.g. ``kept as credits: 2 credit notes (150.00), 1 prepayment
    (40.00), 1 overpaid invoice (excess 10.00)``; None when there is none."""
    parts = []
    for key, noun, amount_key, how in (
        ("credit_notes", "credit note", "credit_note_amount", ""),
        ("prepayments", "prepayment", "prepayment_amount", ""),
        ("overpaid_invoices", "overpaid invoice", "overpaid_amount", "excess "),
    ):
        n = int(counts.get(key, 0))
        if n:
            plural = noun if n == 1 else noun + "s"
            parts.append(f"{n:,} {plural} ({how}{counts.get(amount_key, 0.0):,.2f})")
    if not parts:
        return None
    return ("kept as credits: " + ", ".join(parts)
            + " (applied to the named or oldest-due open invoices)")
