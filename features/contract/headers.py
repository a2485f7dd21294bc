"""Header names of real exports matched to the contract's column names.

Contract names match case-, space-, ``-``- and ``_``-insensitively (``Invoice ID`` is
``invoice_id``: renamed, with a note in the read summary); known aliases
(``InvoiceNumber``) and near-misses are only *suggested* in the missing-column message,
since "InvoiceNumber" may not be the id the book means.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

from features.contract.book import columns_of

#: Names real exports use for contract columns (compared by :func:`header_key`). Only
#: suggested, never renamed: "InvoiceNumber" may not be the id the book means.
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "invoice_id": ("invoicenumber", "invoiceno", "invoicenum", "invoice", "docid",
                   "documentnumber", "documentid", "docnumber", "billid", "billnumber"),
    "account_id": ("customerid", "customernumber", "customerno", "custnumber", "custid",
                   "customer", "accountnumber", "accountno", "account", "clientid"),
    "issue_date": ("invoicedate", "documentdate", "docdate", "postingdate", "billdate",
                   "baselinedate", "createdate"),
    "due_date": ("netduedate", "dueindate", "paymentduedate", "duedt"),
    "amount": ("invoiceamount", "totalamount", "totalopenamount", "amountdue", "amt",
               "paymentamount", "paidamount", "value"),
    "payment_date": ("paiddate", "paydate", "cleardate", "settleddate", "receiptdate"),
    "payment_id": ("paymentnumber", "paymentno", "receiptid", "receiptnumber"),
    "opened_date": ("disputedate", "opendate", "raiseddate", "disputeopened"),
    "resolved_date": ("closeddate", "resolutiondate", "closedate"),
    "currency": ("currencycode", "invoicecurrency", "curr"),
    "terms_days": ("paymentterms", "terms", "termdays"),
}


def header_key(name: str) -> str:
    """Header name compared without case, spaces, ``-`` and ``_`` ("Invoice ID" ->
    "invoiceid")."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def normalised_header(columns: list[str], table: str) -> dict[str, str]:
    """Renames of source columns whose name differs from a contract column of ``table``
    only in case, spaces, ``-`` or ``_`` (``{"Invoice ID": "invoice_id"}``).

    A contract name already present exactly, or claimed by two source columns, is left
    alone (the missing-column message then lists the candidates).
    """
    contract = columns_of(table)
    by_key: dict[str, list[str]] = {}
    for col in columns:
        if col not in contract:
            by_key.setdefault(header_key(col), []).append(col)
    renames = {}
    for name in contract:
        found = by_key.get(header_key(name), [])
        if name not in columns and len(found) == 1:
            renames[found[0]] = name
    return renames


def suggestion(column: str, columns: list[str], table: str) -> str:
    """Hint for a missing contract ``column`` from the header ``columns`` ('' if none)."""
    contract = set(columns_of(table))
    free = [c for c in columns if c not in contract and not c.startswith("__")]
    key = header_key(column)
    same = [c for c in free if header_key(c) == key]
    if len(same) > 1:
        names = ", ".join(f"'{c}'" for c in same)
        return f"; {names} all match it: keep one"
    alias = [c for c in free if header_key(c) in ALIASES.get(column, ())]
    if alias:
        return (f"; found '{alias[0]}', a usual name for {column}: rename that column to "
                f"{column} if it holds the same thing")
    keys = {header_key(c): c for c in free}
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75)
    if close:
        return f"; did you mean '{keys[close[0]]}'?"
    if len(columns) == 1 and any(d in columns[0] for d in ";\t|,"):
        return (f"; the header is one column ('{columns[0][:60]}'): set the read option "
                "delimiter")
    shown = ", ".join(f"'{c}'" for c in free[:8])
    return f"; the header has {shown}" if shown else ""
