"""No phantom delinquency: invoices whose payment row was quarantined are held out.

A payment row that breaks a rule (an unreadable date, a wrong amount, a conflicting copy)
is quarantined, but its invoice may well be paid: kept alone, the invoice would look open
for ever and climb the worklist (*phantom delinquency*). So such an invoice is quarantined
too, under ``payment_quarantined`` (a rule derived from the payment's: the payments table
is charged for it in ``too_many_bad_rows``), and its other payments and disputes follow it
as ``parent_quarantined``. Out of the Book it is out of balances, DPD, features and labels;
the quarantine file names it with the payment row that caused it.

Payment rows that say nothing about a kept invoice do not hold one out: exact copies of a
kept row (``duplicate_id``), rows naming no known invoice, or rows already kept out with
their invoice.
"""

from __future__ import annotations

from typing import Final

import pandas as pd
import polars as pl

from features.contract import rules as R
from features.contract.parsing import value

RULE: Final = "payment_quarantined"
#: Payment rules that say nothing about a kept invoice's payments.
_SILENT: Final = ("duplicate_id", "unknown_invoice", "parent_quarantined")


def flag(payments: pl.DataFrame, parents: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame,
                                                                 pl.DataFrame]:
    """Hold out the kept invoices named by quarantined payment rows.

    ``payments``: checked payment rows (after ``rules.child_rules``); ``parents``: the
    invoices' slim view (``rules.parents_of``). Returns the payments with the held-out
    invoices' other rows now ``parent_quarantined``, the parents with those invoices marked
    (so disputes follow), and one row per held-out invoice: its id (``value`` column), the
    ``_payment_row`` and ``_payment_rule`` that caused it.
    """
    inv = value("invoice_id")
    silent = [R.code(r) for r in _SILENT]
    kept_ids = parents.filter(pl.col(R.RULE) == 0).get_column(inv)
    bad = payments.filter((pl.col(R.RULE) > 0) & ~pl.col(R.RULE).is_in(silent)
                          & pl.col(inv).is_not_null())
    if bad.is_empty():
        return payments, parents, pl.DataFrame()
    bad = bad.filter(pl.col(inv).is_in(kept_ids.implode()))
    if bad.is_empty():
        return payments, parents, pl.DataFrame()
    held = bad.sort(R.ROW).group_by(inv, maintain_order=True).agg(
        pl.col(R.ROW).first().alias("_payment_row"), pl.col(R.RULE).first().alias("_code"))
    names = pl.Series([None, *R.RULES], dtype=pl.String)
    held = held.with_columns(
        pl.col("_code").cast(pl.Int64).replace_strict(list(range(len(names))), names)
        .alias("_payment_rule")).drop("_code")
    ids = held.get_column(inv).implode()
    payments = R.assign(payments, [("parent_quarantined", pl.col(inv).is_in(ids),
                                    R.column_code("payments", "invoice_id"))])
    parents = parents.with_columns(
        pl.when((pl.col(R.RULE) == 0) & pl.col(inv).is_in(ids))
        .then(pl.lit(R.code(RULE), dtype=pl.UInt8)).otherwise(pl.col(R.RULE)).alias(R.RULE))
    return payments, parents, held


def hold_out(kept: pd.DataFrame, held: pl.DataFrame, parents: pl.DataFrame,
             quarantine: pd.DataFrame, payments_file: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept invoices without the held-out ones, quarantine with them appended).

    The quarantine rows are the kept values as text under the quarantine's columns, with
    ``_row`` (the invoice's record number), ``_rule`` and a message naming the payment row.
    """
    inv = value("invoice_id")
    record = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)  # parents are in file order
    rows = dict(parents.select(inv, record.alias(R.ROW)).filter(
        pl.col(inv).is_in(held.get_column(inv).implode())).iter_rows())
    detail = {i: (r, rule) for i, r, rule in held.iter_rows()}
    out = kept["invoice_id"].isin(list(detail))
    gone = kept[out]
    extra = pd.DataFrame({
        c: (gone[c].dt.strftime("%Y-%m-%d") if str(gone[c].dtype).startswith("datetime")
            else gone[c].astype("string").fillna("")) if c in gone.columns else ""
        for c in quarantine.columns if not c.startswith("_")
    }, index=gone.index)
    ids = gone["invoice_id"].tolist()
    extra["_row"] = [rows[i] for i in ids]
    extra["_rule"] = RULE
    extra["_message"] = [
        f"payment row {detail[i][0]} of {payments_file} names this invoice and was quarantined "
        f"({detail[i][1]}): whether it is paid is unknown, so it is kept out of balances, "
        "DPD and labels" for i in ids]
    quarantine = pd.concat([quarantine, extra.astype({c: "object" for c in extra.columns
                                                      if c != "_row"})], ignore_index=True)
    return kept[~out].reset_index(drop=True), quarantine
