"""Adapter for IBM's accounts-receivable sample (``WA_Fn-UseC_-Accounts-Receivable.csv``).

Source columns: countryCode, customerID, PaperlessDate, invoiceNumber, InvoiceDate,
DueDate, InvoiceAmount, Disputed, SettledDate, PaperlessBill, DaysToSettle, DaysLate
(dates US ``M/D/YYYY``; one row per invoice; every invoice is settled).

Mapping:

- invoices: ``invoiceNumber`` -> invoice_id, ``customerID`` -> account_id, InvoiceDate ->
  issue_date, DueDate -> due_date, InvoiceAmount -> amount, terms_days = due - issue
  (always 30 here). The currency is not stated, so none is set.
- payments: one payment of the full amount on ``SettledDate`` per invoice
  (payment_id ``<invoice>-settle``).
- accounts: one row per customer, ``countryCode`` -> region (the numeric code as text).
- disputes (assumption, the sample has only a Yes/No flag): an invoice with
  ``Disputed == Yes`` gets one dispute opened on InvoiceDate + 1 day (or on SettledDate if
  that is earlier) and resolved on SettledDate, reason ``unspecified``.

Not used: DaysToSettle and DaysLate (derived from the dates), PaperlessDate and
PaperlessBill (PaperlessDate is a per-customer attribute that often lies *after* the
invoice, so using it as of an earlier date would leak the future).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.adapters import iso_dates
from features.contract.rules import DataContractError

COLUMNS = (
    "countryCode", "customerID", "invoiceNumber", "InvoiceDate", "DueDate", "InvoiceAmount",
    "Disputed", "SettledDate",
)


def _us_dates(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text.str.strip(), format="%m/%d/%Y", errors="coerce")


def _or_raw(parsed: pd.Series, raw: pd.Series) -> pd.Series:
    """ISO text where the date parsed; the raw text otherwise (validation quarantines it)."""
    return iso_dates(parsed).where(parsed.notna(), raw.str.strip()).astype("str")


def convert(src: Path, *, dispute_delay_days: int = 1) -> dict[str, pd.DataFrame]:
    """Contract tables of the IBM sample CSV at ``src`` (a file, or a folder holding it).

    ``dispute_delay_days``: days after the invoice date a dispute is taken to open.
    """
    src = Path(src)
    if src.is_dir():
        src = src / "WA_Fn-UseC_-Accounts-Receivable.csv"
    raw = pd.read_csv(src, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for col in COLUMNS:
        if col not in raw.columns:
            raise DataContractError(src.name, col, "missing_column", "is required but missing")
    issue, due = _us_dates(raw["InvoiceDate"]), _us_dates(raw["DueDate"])
    settled = _us_dates(raw["SettledDate"])
    invoice_id = raw["invoiceNumber"].str.strip()
    account_id = raw["customerID"].str.strip()
    terms = (due - issue).dt.days
    invoices = pd.DataFrame({
        "invoice_id": invoice_id,
        "account_id": account_id,
        "issue_date": _or_raw(issue, raw["InvoiceDate"]),
        "due_date": _or_raw(due, raw["DueDate"]),
        "amount": raw["InvoiceAmount"].str.strip(),
        "terms_days": terms.map(lambda d: f"{d:.0f}", na_action="ignore").fillna(""),
    }).astype("str")
    has_settle = raw["SettledDate"].str.strip() != ""
    payments = pd.DataFrame({
        "invoice_id": invoice_id,
        "payment_date": _or_raw(settled, raw["SettledDate"]),
        "amount": raw["InvoiceAmount"].str.strip(),
        "payment_id": invoice_id + "-settle",
        "account_id": account_id,
    })[has_settle].astype("str").reset_index(drop=True)
    accounts = (
        pd.DataFrame({"account_id": account_id, "region": raw["countryCode"].str.strip()})
        .drop_duplicates("account_id")
        .sort_values("account_id")
        .reset_index(drop=True)
        .astype("str")
    )
    disputed = raw["Disputed"].str.strip().str.lower() == "yes"
    opened = issue + pd.Timedelta(days=dispute_delay_days)
    opened = opened.where(~(settled < opened), settled)
    disputes = pd.DataFrame({
        "invoice_id": invoice_id,
        "opened_date": iso_dates(opened),
        "resolved_date": iso_dates(settled),
        "reason": "unspecified",
    })[disputed].astype("str").reset_index(drop=True)
    return {"invoices": invoices, "payments": payments, "accounts": accounts,
            "disputes": disputes}
