"""Bad-row injection for the synthetic book (``write_book_folder(..., error_rate=...)``).

Injected rows are EXTRA rows appended after the clean rows of each table: fresh ids, no
children (no payment or dispute ever references an injected invoice), so the true book is
unchanged and validation must quarantine exactly these rows. Each row breaks exactly one
validation rule and no rule earlier in the contract's order
(``features.contract.rules.RULES``); the rules injected are :data:`RULES`, a subset of it
in the same order. Duplicates copy an earlier clean row, so "first occurrence kept" keeps
the clean one. Credit notes (negative invoices) and prepayments (payments before their
invoice's issue date) are valid data, so they are never injected as errors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Final

import numpy as np
import pyarrow as pa

from features.synthetic import _arrow as sa

#: Rules injected per table, in contract order (parent_quarantined is a cascade, never injected).
RULES: Final[dict[str, tuple[str, ...]]] = {
    "invoices": ("missing_value", "unparseable_date", "unparseable_amount",
                 "non_positive_amount", "due_before_issue", "duplicate_id"),
    "payments": ("missing_value", "unparseable_date", "unparseable_amount",
                 "non_positive_amount", "duplicate_id", "unknown_invoice"),
    "accounts": ("missing_value", "duplicate_id"),
    "disputes": ("missing_value", "unparseable_date", "unknown_invoice",
                 "dispute_before_issue", "resolved_before_opened"),
}
# Values no date or number parser accepts, and none of pandas' default NA tokens.
BAD_DATES: Final = ("2023-02-30", "2024-13-01", "31.12.2023x", "someday")
BAD_AMOUNTS: Final = ("12,5O", "abc", "1.2.3", "$-")


def bad_counts(n_clean: int, rate: float, table: str) -> dict[str, int]:
    """Bad rows per rule so that about ``rate`` of the written rows are bad (>= 1 per rule)."""
    rules = RULES[table]
    total = max(len(rules), round(rate * n_clean / (1.0 - rate)))
    base, extra = divmod(total, len(rules))
    return {r: base + (i < extra) for i, r in enumerate(rules)}


class Samples:
    """Clean rows set aside while chunks stream by: templates and duplicate sources."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        self.rate, self.rng = rate, rng
        self.parts: dict[str, list[pa.Table]] = {"invoices": [], "payments": []}
        self.inv_days: list[np.ndarray] = []

    def add(self, tables: dict[str, pa.Table], issue: np.ndarray, due: np.ndarray) -> None:
        """Keep a random few clean invoice and payment rows of one chunk (text schema)."""
        for name in ("invoices", "payments"):
            n = tables[name].num_rows
            k = min(n, int(np.ceil(self.rate * n)) + 50)
            idx = np.sort(self.rng.choice(n, size=k, replace=False)) if n else np.zeros(0, int)
            self.parts[name].append(tables[name].take(pa.array(idx, type=pa.int64())))
            if name == "invoices":
                self.inv_days.append(np.stack([issue[idx], due[idx]], axis=1))


_ORDINAL_1970: Final = date(1970, 1, 1).toordinal()


def _iso(day: int | np.integer) -> str:
    """``YYYY-MM-DD`` of an epoch day number."""
    return date.fromordinal(_ORDINAL_1970 + int(day)).isoformat()


def injected_tables(
    samples: Samples,
    accounts: pa.Table,
    n_clean: dict[str, int],
    *,
    next_invoice: int,
    next_payment: int,
    widths: sa.IdWidths,
) -> tuple[dict[str, pa.Table], dict[str, dict[str, int]]]:
    """Bad rows per table (text schema, shuffled) and their counts per rule."""
    rng, rate = samples.rng, samples.rate
    counts = {t: bad_counts(n_clean[t], rate, t) for t in RULES}
    inv_pool = pa.concat_tables(samples.parts["invoices"]).to_pydict()
    days = np.concatenate(samples.inv_days)
    pay_pool = pa.concat_tables(samples.parts["payments"]).to_pydict()
    n_pool = len(days)
    perm = rng.permutation(n_pool)
    n_dup = counts["invoices"]["duplicate_id"]
    dup_rows, ref_rows = perm[:n_dup], perm[n_dup:]
    fresh_inv = iter(range(next_invoice, next_invoice + 10**12))
    fresh_pay = iter(range(next_payment, next_payment + 10**12))

    def inv_id() -> str:
        return f"I{next(fresh_inv):0{widths.invoice}d}"

    def refs(k: int) -> np.ndarray:
        return rng.choice(ref_rows, size=k, replace=len(ref_rows) < k)

    def copy(pool: dict[str, list], rows: np.ndarray) -> list[dict]:
        return [{c: pool[c][i] for c in pool} for i in rows]

    def invoice_rows(rule: str, k: int) -> list[dict]:
        if rule == "duplicate_id":
            return copy(inv_pool, dup_rows[:k])
        src = refs(k)
        rows = copy(inv_pool, src)
        for j, row in enumerate(rows):
            row["invoice_id"] = inv_id()
            if rule == "missing_value":
                row[("account_id", "issue_date", "due_date", "amount")[j % 4]] = None
            elif rule == "unparseable_date":
                row[("issue_date", "due_date")[j % 2]] = BAD_DATES[j % len(BAD_DATES)]
            elif rule == "unparseable_amount":
                row["amount"] = BAD_AMOUNTS[j % len(BAD_AMOUNTS)]
            elif rule == "non_positive_amount":  # (a negative invoice is a credit note)
                row["amount"] = "0.00" if j % 2 == 0 else "0"
            elif rule == "due_before_issue":
                row["due_date"] = _iso(days[src[j], 0] - 1 - j % 30)
                row["terms_days"] = None
        return rows

    def payment_rows(rule: str, k: int) -> list[dict]:
        if rule == "duplicate_id":
            return copy(pay_pool, rng.choice(len(pay_pool["payment_id"]), size=k, replace=False))
        src = refs(k)
        # A plausible part payment: 0.01 up to half the invoice, in cents.
        half = np.array([round(float(inv_pool["amount"][i]) * 50) for i in src], dtype=np.int64)
        all_cents = rng.integers(1, 1 + np.maximum(half, 1))
        rows = []
        for j, i in enumerate(src):
            issue, cents = days[i, 0], int(all_cents[j])
            rows.append({
                "invoice_id": inv_pool["invoice_id"][i],
                "payment_date": _iso(issue + j % 30),
                "amount": f"{cents // 100}.{cents % 100:02d}",
                "payment_id": f"P{next(fresh_pay):0{widths.payment}d}",
                "account_id": inv_pool["account_id"][i],
                "method": "ach",
            })
            row = rows[-1]
            if rule != "duplicate_id":
                # Broken before its invoice is looked up, a row naming a clean invoice
                # would hold that invoice out (payment_quarantined): name none that exists.
                row["invoice_id"] = unknown_ids.pop()
            if rule == "missing_value":
                row[("invoice_id", "payment_date", "amount")[j % 3]] = None
            elif rule == "unparseable_date":
                row["payment_date"] = BAD_DATES[j % len(BAD_DATES)]
            elif rule == "unparseable_amount":
                row["amount"] = BAD_AMOUNTS[j % len(BAD_AMOUNTS)]
            elif rule == "non_positive_amount":
                row["amount"] = "0.00" if j % 2 == 0 else "-" + row["amount"]
        return rows

    def account_rows(rule: str, k: int) -> list[dict]:
        pool = accounts.take(pa.array(rng.choice(accounts.num_rows, size=k, replace=False)))
        rows = pool.to_pylist()
        if rule == "missing_value":
            for row in rows:
                row["account_id"] = None
        return rows

    def dispute_rows(rule: str, k: int) -> list[dict]:
        rows = []
        for j, i in enumerate(refs(k)):
            issue = days[i, 0]
            row = {"invoice_id": inv_pool["invoice_id"][i],
                   "opened_date": _iso(issue + j % 20),
                   "resolved_date": None, "reason": "pricing"}
            if rule == "missing_value":
                row[("invoice_id", "opened_date")[j % 2]] = None
            elif rule == "unparseable_date":
                row["opened_date"] = BAD_DATES[j % len(BAD_DATES)]
            elif rule == "unknown_invoice":
                row["invoice_id"] = unknown_ids.pop()
            elif rule == "dispute_before_issue":
                row["opened_date"] = _iso(issue - 1 - j % 30)
            elif rule == "resolved_before_opened":
                opened = issue + 20 + j % 10
                row["opened_date"] = _iso(opened)
                row["resolved_date"] = _iso(opened - 1 - j % 15)
            rows.append(row)
        return rows

    n_inv_fresh = sum(counts["invoices"].values())
    n_unknown = (sum(counts["payments"].values()) - counts["payments"]["duplicate_id"]
                 + counts["disputes"]["unknown_invoice"])
    first_unknown = next_invoice + n_inv_fresh
    # Ids never used by any invoice row, clean or injected.
    unknown_ids = [f"I{first_unknown + i:0{widths.invoice}d}" for i in range(n_unknown)][::-1]
    builders: dict[str, Callable[[str, int], list[dict]]] = {
        "invoices": invoice_rows, "payments": payment_rows,
        "accounts": account_rows, "disputes": dispute_rows,
    }
    out = {}
    for table, per_rule in counts.items():
        rows = [r for rule, k in per_rule.items() for r in builders[table](rule, k)]
        order = rng.permutation(len(rows))
        shuffled = [rows[i] for i in order]
        out[table] = pa.Table.from_pylist(shuffled, schema=sa.schema(table, text=True))
    return out, counts
