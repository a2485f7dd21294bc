"""The receivables *book*: the four tables of the data contract, typed and validated.

A :class:`Book` is what every library function takes. It holds pandas DataFrames with the
canonical columns and dtypes below; loaders, adapters and the synthetic generator all
produce one, and validation (``features.contract.validation``) is the only way in from raw files.

Canonical dtypes (the contract every consumer may rely on):

- ids (``invoice_id``, ``account_id``, ``payment_id``): pandas ``str`` (Arrow-backed strings);
- dates: ``datetime64[s]`` at midnight, no timezone (dates, not timestamps);
- amounts: ``float64`` in the book's currency (one currency per book); an invoice row with a
  negative amount is a *credit note* (applied by the openness rule, ``features.pit``);
- ``terms_days``: ``Int64`` (nullable), days from issue to due.

In-memory representation (what a partition of a bigger book keeps too): four columnar
pandas frames, one column per field; numeric and date columns are numpy arrays and ids
Arrow strings, so a table converts to Arrow without copying values. Ids stay plain strings
in the Book: the point-in-time encoding (``features.pit``) maps them to dense integer codes
once per call, so a loader given dictionary-encoded ids (Arrow dictionary, pandas
``category``) casts them to ``str``. Required columns hold no missing values;
``invoice_id`` and ``account_id`` (accounts) are unique. Amounts are meant in whole cents:
openness rounds them to cents before comparing (``features.spec.to_cents``). Row order
carries no meaning (results never depend on it); validation writes the canonical order
(invoices by account, payments by invoice then date), which the encoding reads fastest.

Time semantics: nothing in a Book is "as of" anything. Cut-offs are applied by the feature
and label functions (``as_of`` keyword), which treat everything dated strictly before
``as_of`` as known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pandas as pd

DATE_DTYPE: Final = "datetime64[s]"
ID_DTYPE: Final = "str"

TABLES: Final = ("invoices", "payments", "accounts", "disputes")

#: Required and optional columns of each table, with their canonical dtype.
REQUIRED: Final[dict[str, dict[str, str]]] = {
    "invoices": {
        "invoice_id": ID_DTYPE,
        "account_id": ID_DTYPE,
        "issue_date": DATE_DTYPE,
        "due_date": DATE_DTYPE,
        "amount": "float64",
    },
    "payments": {"invoice_id": ID_DTYPE, "payment_date": DATE_DTYPE, "amount": "float64"},
    "accounts": {"account_id": ID_DTYPE},
    "disputes": {"invoice_id": ID_DTYPE, "opened_date": DATE_DTYPE},
}
OPTIONAL: Final[dict[str, dict[str, str]]] = {
    "invoices": {"currency": "str", "terms_days": "Int64", "document_type": "str",
                 "reference_invoice_id": ID_DTYPE},
    "payments": {"payment_id": ID_DTYPE, "account_id": ID_DTYPE, "method": "str"},
    "accounts": {
        "name": "str",
        "segment": "str",
        "region": "str",
        "credit_limit": "float64",
        "created_date": DATE_DTYPE,
        # Contact data (DESIGN section 3; dunning letters, the workbench's account page):
        # ``email`` may hold several addresses separated by ``;`` (an invalid one is the
        # ``invalid_email`` rule of ``features.contract.contact``: the account goes to the
        # dunning send log, never to quarantine); ``language`` a tag such as ``en``/``de``.
        "contact_name": "str",
        "email": "str",
        "phone": "str",
        "language": "str",
    },
    "disputes": {"resolved_date": DATE_DTYPE, "reason": "str"},
}


#: ``document_type`` values (case and spaces/``-``/``_`` ignored) that make an invoice row a
#: credit note. A credit note is kept with a negative amount (a positive amount in the
#: file is negated); ``reference_invoice_id`` may name the invoice it credits.
CREDIT_DOCUMENT_TYPES: Final = ("credit", "creditnote", "credit note", "cn", "creditmemo",
                                "credit memo", "cm", "gutschrift", "avoir")


def is_credit_type(text: str) -> bool:
    """Whether a ``document_type`` value names a credit note (see
    :data:`CREDIT_DOCUMENT_TYPES`)."""
    key = "".join(ch for ch in text.lower() if ch.isalnum())
    return key in {"".join(ch for ch in t if ch.isalnum()) for t in CREDIT_DOCUMENT_TYPES}


def columns_of(table: str) -> dict[str, str]:
    """All contract columns of ``table`` (required first) mapped to their canonical dtype."""
    return {**REQUIRED[table], **OPTIONAL[table]}


def empty_table(table: str) -> pd.DataFrame:
    """A zero-row frame of ``table`` with every contract column and canonical dtype."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in columns_of(table).items()})


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` with every contract column present and canonically typed.

    Missing optional columns are added as all-missing; extra columns are kept (adapters may
    carry source fields). The caller guarantees values already passed validation, so this
    only casts; it never drops rows.
    """
    out = frame.copy()
    for col, dtype in columns_of(table).items():
        if col not in out.columns:
            out[col] = pd.Series(index=out.index, dtype=dtype)
        if dtype == DATE_DTYPE:
            out[col] = pd.to_datetime(out[col]).dt.normalize().astype(DATE_DTYPE)
        elif str(out[col].dtype) != dtype:
            out[col] = out[col].astype(dtype)
    ordered = list(columns_of(table)) + [c for c in out.columns if c not in columns_of(table)]
    return out[ordered].reset_index(drop=True)


@dataclass(frozen=True)
class Book:
    """The four contract tables of one receivables book (see module docstring for dtypes).

    ``payments`` and ``disputes`` may be empty; ``accounts`` holds at least every account
    that appears in ``invoices`` (loaders add bare rows for unknown accounts).
    """

    invoices: pd.DataFrame
    payments: pd.DataFrame = field(default_factory=lambda: empty_table("payments"))
    accounts: pd.DataFrame = field(default_factory=lambda: empty_table("accounts"))
    disputes: pd.DataFrame = field(default_factory=lambda: empty_table("disputes"))

    @classmethod
    def from_frames(
        cls,
        invoices: pd.DataFrame,
        payments: pd.DataFrame | None = None,
        accounts: pd.DataFrame | None = None,
        disputes: pd.DataFrame | None = None,
    ) -> Book:
        """Build a Book from already-valid frames, casting to the canonical dtypes.

        Accounts seen in invoices but absent from ``accounts`` get a bare row, so every
        invoice's account exists. Use ``features.contract.validation`` for untrusted input.
        """
        inv = conform("invoices", invoices)
        pay = conform("payments", payments if payments is not None else empty_table("payments"))
        acc = conform("accounts", accounts if accounts is not None else empty_table("accounts"))
        dis = conform("disputes", disputes if disputes is not None else empty_table("disputes"))
        missing = pd.Index(inv["account_id"].unique()).difference(pd.Index(acc["account_id"]))
        if len(missing):
            extra = conform("accounts", pd.DataFrame({"account_id": missing.astype(ID_DTYPE)}))
            acc = pd.concat([acc, extra], ignore_index=True)
        return cls(invoices=inv, payments=pay, accounts=acc, disputes=dis)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The four tables by contract name."""
        return {t: getattr(self, t) for t in TABLES}

    @property
    def first_date(self) -> pd.Timestamp:
        """Earliest issue date in the book."""
        return pd.Timestamp(self.invoices["issue_date"].min())

    @property
    def last_date(self) -> pd.Timestamp:
        """Latest event date in the book (issue, payment or dispute opening/resolution).

        Labels that are not resolved by this date are censored.
        """
        dates = [self.invoices["issue_date"].max(), self.payments["payment_date"].max()]
        dates += [self.disputes["opened_date"].max(), self.disputes["resolved_date"].max()]
        return pd.Timestamp(max(d for d in dates if pd.notna(d)))
