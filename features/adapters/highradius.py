"""Adapter for HighRadius-style invoice exports (one row per invoice, clear date inline).

Header: ``business_code, cust_number, name_customer, clear_date, buisness_year, doc_id,
posting_date, document_create_date, document_create_date.1, due_in_date,
invoice_currency, document type, posting_id, area_business, total_open_amount,
baseline_create_date, cust_payment_terms, invoice_id, isOpen``.

Mapping:

- exact duplicate rows are dropped first; their number is logged and reported in the
  ``import_report`` side table (``duplicate_rows_removed``). Rows that repeat an invoice id
  with different content are kept: validation quarantines all but the first
  (``duplicate_id``), so nothing disappears silently.
- invoice_id: ``invoice_id``, falling back to ``doc_id`` when empty (ids exported as
  floats, ``1930438491.0``, lose the ``.0``); account_id: ``cust_number``.
- issue_date: ``document_create_date.1`` or, when empty, ``baseline_create_date``;
  due_date: ``due_in_date``. Dates come as ``20190105.0`` / ``20190105`` numbers,
  ``2019-01-05`` strings or ``2019-01-05 00:00:00`` timestamps; anything else is passed
  through as read and quarantined by validation (``unparseable_date``).
- amount: ``total_open_amount`` (the invoice amount in these exports); currency:
  ``invoice_currency``; document_type: ``document type``.
- a cleared invoice (non-empty ``clear_date``) becomes ONE payment of the full amount on
  ``clear_date`` (payment_id ``<invoice_id>-clear``); open invoices (no clear date) none.
- accounts: one row per customer with ``name_customer`` (first seen) as name.
- currency: these exports mix USD and CAD. Pass ``rates`` (units of ``base_currency`` per
  unit of each other currency, e.g. ``{"CAD": 0.74}``) to convert amounts into
  ``base_currency``; without a rate for a currency present, :class:`DataContractError`
  ``mixed_currency`` is raised, since summing dollars of two currencies is meaningless.
  ``currency="USD"`` instead keeps only that currency's invoices (the others are counted
  in ``import_report`` as ``rows_other_currency``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from features.adapters import iso_dates, money
from features.contract.rules import DataContractError

log = logging.getLogger(__name__)

REQUIRED = (
    "cust_number", "clear_date", "doc_id", "document_create_date.1", "due_in_date",
    "invoice_currency", "total_open_amount", "baseline_create_date", "invoice_id",
)


def parse_dates(text: pd.Series) -> pd.Series:
    """ISO ``YYYY-MM-DD`` strings from the export's date styles; unparseable values as read.

    Accepted: ``20190105``, ``20190105.0``, ``2019-01-05``, ``2019-01-05 00:00:00``; empty
    stays empty.
    """
    s = text.astype("str").str.strip()
    compact = s.str.fullmatch(r"\d{8}(\.0*)?")
    iso = s.str.fullmatch(r"\d{4}-\d{2}-\d{2}( 00:00(:00)?)?")
    parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[s]")
    parsed[compact] = pd.to_datetime(s[compact].str[:8], format="%Y%m%d", errors="coerce")
    parsed[iso] = pd.to_datetime(s[iso].str[:10], format="%Y-%m-%d", errors="coerce")
    return iso_dates(parsed).where(parsed.notna(), s).astype("str")


def _ids(text: pd.Series) -> pd.Series:
    """Ids as text: ``1930438491.0`` -> ``1930438491`` (float exports), stripped."""
    s = text.astype("str").str.strip()
    return s.str.replace(r"^(\d+)\.0*$", r"\1", regex=True)


def convert(
    src: Path,
    *,
    rates: Mapping[str, float] | None = None,
    base_currency: str = "USD",
    currency: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Contract tables (+ ``import_report``) of the HighRadius export CSV at ``src``.

    ``rates``/``base_currency``/``currency``: see the module docstring.
    """
    src = Path(src)
    raw = pd.read_csv(src, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for col in REQUIRED:
        if col not in raw.columns:
            raise DataContractError(src.name, col, "missing_column", "is required but missing")
    n_read = len(raw)
    raw = raw.drop_duplicates().reset_index(drop=True)
    n_dup = n_read - len(raw)
    if n_dup:
        log.info("%s: %d exact duplicate rows removed", src.name, n_dup)

    cur = raw["invoice_currency"].str.strip().str.upper()
    n_other = 0
    if currency is not None:
        keep = cur == currency.upper()
        n_other = int((~keep).sum())
        raw, cur = raw[keep].reset_index(drop=True), cur[keep].reset_index(drop=True)
    amount = pd.to_numeric(raw["total_open_amount"].str.strip(), errors="coerce")
    amount_text = raw["total_open_amount"].str.strip()
    present = sorted(set(cur[cur != ""]))
    if len(present) > 1 or (rates and present and present != [base_currency.upper()]):
        rates_up = {k.upper(): float(v) for k, v in (rates or {}).items()}
        rates_up[base_currency.upper()] = 1.0
        missing = [c for c in present if c not in rates_up]
        if missing:
            raise DataContractError(
                src.name, "invoice_currency", "mixed_currency",
                f"has {', '.join(present)} and no rate for {', '.join(missing)} "
                f"(pass rates={{'{missing[0]}': ...}} or currency='{base_currency.upper()}')",
            )
        factor = cur.map(rates_up).fillna(1.0).to_numpy(dtype=np.float64)
        converted = money(amount * factor)
        # Unparseable amounts stay as read so validation quarantines them.
        amount_text = converted.where(amount.notna(), amount_text)
        cur = pd.Series(base_currency.upper(), index=cur.index)

    invoice_id = _ids(raw["invoice_id"])
    invoice_id = invoice_id.where(invoice_id != "", _ids(raw["doc_id"]))
    account_id = raw["cust_number"].str.strip()
    issue = parse_dates(raw["document_create_date.1"])
    issue = issue.where(issue != "", parse_dates(raw["baseline_create_date"]))
    clear = parse_dates(raw["clear_date"])
    doc_type = raw["document type"].str.strip() if "document type" in raw.columns else ""
    invoices = pd.DataFrame({
        "invoice_id": invoice_id,
        "account_id": account_id,
        "issue_date": issue,
        "due_date": parse_dates(raw["due_in_date"]),
        "amount": amount_text,
        "currency": cur,
        "document_type": doc_type,
    }).astype("str")
    cleared = clear != ""
    payments = pd.DataFrame({
        "invoice_id": invoice_id,
        "payment_date": clear,
        "amount": amount_text,
        "payment_id": invoice_id + "-clear",
        "account_id": account_id,
    })[cleared].reset_index(drop=True).astype("str")
    names = raw["name_customer"].str.strip() if "name_customer" in raw.columns else ""
    accounts = (
        pd.DataFrame({"account_id": account_id, "name": names})
        .drop_duplicates("account_id")
        .query("account_id != ''")
        .sort_values("account_id")
        .reset_index(drop=True)
        .astype("str")
    )
    report = pd.DataFrame({
        "item": ["rows_read", "duplicate_rows_removed", "rows_other_currency", "invoices",
                 "cleared_invoices"],
        "value": [n_read, n_dup, n_other, len(invoices), int(cleared.sum())],
    })
    return {"invoices": invoices, "payments": payments, "accounts": accounts,
            "import_report": report}
