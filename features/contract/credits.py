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


def credit_columns() -> tuple[str, ...]:
    """The columns of checked payments that :func:`payment_credits` reads."""
    return (value("payment_date"), "__parent_issue", "__parent", value("amount"))


def payment_credits(kept: pl.DataFrame, invoice_amounts: pl.Series) -> dict[str, float]:
    """Prepayments and overpaid invoices among kept payments (checked frames, with the
    invoice's issue date ``__parent_issue`` and row ``__parent`` beside each row;
    ``invoice_amounts``: the amounts of the invoices those rows index). An invoice is
    overpaid when its payments exceed its amount by a cent or more; the excess is the
    credit."""
    early = kept.filter(pl.col(value("payment_date")) < pl.col("__parent_issue"))
    # Per invoice by its row number (a kept payment always has one): a weighted count,
    # linear and without hashing the ids.
    paid, has = _paid(kept.get_column("__parent").to_numpy(),
                      kept.get_column(value("amount")).to_numpy(), len(invoice_amounts))
    # In place, over every invoice (those without payments are masked out after): the
    # same float operations as on the paid ones alone, without three temporaries as long
    # as the invoices (at 50M invoices ~1.2 GB at validation's peak).
    cents = paid
    cents -= invoice_amounts.to_numpy()
    cents *= 100
    np.round(cents, out=cents)
    excess = cents[has & (cents >= 1)]
    return {
        "prepayments": early.height,
        "prepayment_amount": round(float(early.get_column(value("amount")).sum()), 2),
        "overpaid_invoices": len(excess),
        "overpaid_amount": round(float(excess.sum()) / 100, 2),
    }


@nb.njit(cache=True, nogil=True)
def _paid(parent: np.ndarray, amount: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the payments' ``amount`` per invoice row ``parent``, whether it has any) over
    ``n`` invoices: ``np.bincount`` with weights (the same sums, added in row order), which
    would first copy both columns (it copies read-only arrays, as polars' are)."""
    paid = np.zeros(n, np.float64)
    has = np.zeros(n, np.bool_)
    for i in range(len(parent)):
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
