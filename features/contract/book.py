"""The receivables *book*: the tables of the data contract, typed and validated.

A :class:`Book` is what every library function takes. It holds pandas DataFrames with the
canonical columns and dtypes below; loaders, adapters and the synthetic generator all
produce one, and validation (``features.contract.validation``) is the only way in from raw files.

Canonical dtypes (the contract every consumer may rely on):

- ids (``invoice_id``, ``account_id``, ``payment_id``): pandas ``str`` (Arrow-backed strings),
  except invoices' and payments' ``account_id`` and invoices' ``reference_invoice_id``
  (see codes below);
- codes (:data:`CODE_DTYPE`, pandas ``category`` with its categories sorted): the
  low-cardinality text of the big tables, ``currency`` and ``document_type`` (invoices),
  ``method`` (payments), ``reason`` (disputes), ``channel`` and ``outcome`` (contacts),
  invoices' ``account_id`` (the sorted distinct invoiced accounts as categories: 1M
  accounts' ids once, and 4 bytes per invoice, where 50M id strings took ~0.55 GB more;
  the point-in-time encoding matches the categories, not the rows,
  ``features.keys.match_ids``), payments' ``account_id`` (always its invoice's account,
  whatever the file says, with the same categories as the invoices', so the two compare;
  no feature reads it), and invoices'
  ``reference_invoice_id`` (missing but on the credit notes that name an invoice: as
  ``str`` it cost 8 bytes of offsets per invoice, ~41 MB at 100k accounts with no credit
  note at all; as codes 1 byte then): a
  handful of distinct values over millions of rows, held as int8/int16/int32 codes
  plus one small dictionary instead of one string per row (at 100k accounts the four codes
  of invoices and payments took ~270 MB as strings, ~35 MB as codes). Values compare, filter
  and print as the strings they stand for; a column built from two sources with different
  categories (``pd.concat``) becomes ``str`` again, which every consumer also accepts;
- dates: ``datetime64[s]`` at midnight, no timezone (dates, not timestamps);
- amounts: ``float64`` in the book's currency (one currency per book); an invoice row with a
  negative amount is a *credit note* (applied by the openness rule, ``features.pit``);
- ``terms_days``: ``Int64`` (nullable), days from issue to due (staged only, below);
- ``channel``, ``outcome`` (contacts): codes whose values are those of
  ``features.spec.ContactChannel`` / ``ContactOutcome``.

The collections loop's tables (:data:`EVENT_TABLES`, issue 17) are optional: ``promises``
(promises to pay) and ``contacts`` (collector contacts), from an ERP export or recorded in
the workbench (``serving.loop_events``). Each row is *known* from its ``recorded_date``
(the UTC day the workbench recorded it) or, when that is missing (an ERP row), from its
business date (``created_date``, ``contact_date``): it counts at ``as_of`` only when that
day is strictly before ``as_of``, which for a workbench event is exactly "recorded_at
strictly before ``as_of``" (midnight UTC). A promise's ``cancelled_date`` is the day its
cancellation was recorded (known by the same rule).

In-memory representation (what a partition of a bigger book keeps too): four columnar
pandas frames, one column per field; numeric and date columns are numpy arrays, ids
Arrow strings and codes pandas categoricals (Arrow dictionaries in a Parquet file), so a
table converts to Arrow without copying values. Ids other than the account codes above
stay plain strings in the Book: the point-in-time encoding (``features.pit``) maps them to
dense integer codes once per call, so a loader given other dictionary-encoded ids (Arrow
dictionary, pandas ``category``) casts them to ``str``. Code columns are compared through
their categories (``features.keys``: ``match_ids``, ``is_in``, ``values_at`` take them as
they are), so a consumer that wants one string per row casts (``astype("str")``) knowing
the cost. Required columns hold no missing values;
``invoice_id`` and ``account_id`` (accounts) are unique. Amounts are meant in whole cents:
openness rounds them to cents before comparing (``features.spec.to_cents``). Row order
carries no meaning (results never depend on it); validation writes the canonical order
(invoices by account, payments by invoice then date), which the encoding reads fastest.

Staged-only columns: :data:`STAGED_ONLY` (payments' ``payment_id``, invoices'
``terms_days``) are in a Book read from files or validated, but not in the Book the ingest
step hands over in memory to the later steps of its process (``pipelines.steps_ingest``):
only the staged files keep them, and no library function reads them. Every other column
is always present.

Time semantics: nothing in a Book is "as of" anything. Cut-offs are applied by the feature
and label functions (``as_of`` keyword), which treat everything dated strictly before
``as_of`` as known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

DATE_DTYPE: Final = "datetime64[s]"
ID_DTYPE: Final = "str"
#: Low-cardinality text (see the module docstring): pandas ``category``, categories sorted.
CODE_DTYPE: Final = "category"

#: The core tables (always present in a Book; ``invoices`` is required).
TABLES: Final = ("invoices", "payments", "accounts", "disputes")
#: The collections loop's optional tables (issue 17): a Book without them is a Book of
#: :data:`TABLES` alone, read, validated and written exactly as before.
EVENT_TABLES: Final = ("promises", "contacts")
#: Every contract table, in processing and file order.
ALL_TABLES: Final = (*TABLES, *EVENT_TABLES)

#: Columns a Book handed over in memory after staging may lack (:func:`without_staged_only`):
#: columns no library function reads, payments' ``payment_id`` (an id that only names a
#: row) and invoices' ``terms_days`` (the features take terms from the due and issue
#: dates). The staged files hold them (the workbench's account history reads
#: ``payment_id`` there); the nightly's scoring, in the process that staged the book,
#: holds no copy (at 1M accounts, 50M payment ids ~0.85 GB, 50M nullable terms ~0.4 GB).
STAGED_ONLY: Final[dict[str, tuple[str, ...]]] = {"invoices": ("terms_days",),
                                                  "payments": ("payment_id",)}

#: Required and optional columns of each table, with their canonical dtype.
REQUIRED: Final[dict[str, dict[str, str]]] = {
    "invoices": {
        "invoice_id": ID_DTYPE,
        "account_id": CODE_DTYPE,
        "issue_date": DATE_DTYPE,
        "due_date": DATE_DTYPE,
        "amount": "float64",
    },
    "payments": {"invoice_id": ID_DTYPE, "payment_date": DATE_DTYPE, "amount": "float64"},
    "accounts": {"account_id": ID_DTYPE},
    "disputes": {"invoice_id": ID_DTYPE, "opened_date": DATE_DTYPE},
    "promises": {"promise_id": ID_DTYPE, "account_id": ID_DTYPE, "created_date": DATE_DTYPE,
                 "promised_date": DATE_DTYPE, "amount": "float64"},
    "contacts": {"contact_id": ID_DTYPE, "account_id": ID_DTYPE, "contact_date": DATE_DTYPE,
                 "channel": CODE_DTYPE, "outcome": CODE_DTYPE},
}
OPTIONAL: Final[dict[str, dict[str, str]]] = {
    "invoices": {"currency": CODE_DTYPE, "terms_days": "Int64", "document_type": CODE_DTYPE,
                 "reference_invoice_id": CODE_DTYPE},
    "payments": {"payment_id": ID_DTYPE, "account_id": CODE_DTYPE, "method": CODE_DTYPE},
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
    "disputes": {"resolved_date": DATE_DTYPE, "reason": CODE_DTYPE},
    "promises": {"invoice_id": ID_DTYPE, "recorded_date": DATE_DTYPE,
                 "cancelled_date": DATE_DTYPE},
    "contacts": {"recorded_date": DATE_DTYPE},
}
#: The business date of each event table's rows (known from it when no ``recorded_date``).
EVENT_DATE: Final = {"promises": "created_date", "contacts": "contact_date"}


#: ``document_type`` values (case and spaces/``-``/``_`` ignored) that make an invoice row a
#: credit note. A credit note is kept with a negative amount (a positive amount in the
#: file is negated); ``reference_invoice_id`` may name the invoice it credits.
CREDIT_DOCUMENT_TYPES: Final = ("credit", "creditnote", "credit note", "cn", "creditmemo",
                                "credit memo", "cm", "gutschrift", "avoir")
_CREDIT_KEYS: Final = frozenset("".join(ch for ch in t if ch.isalnum())
                                for t in CREDIT_DOCUMENT_TYPES)


def is_credit_type(text: str) -> bool:
    """Whether a ``document_type`` value names a credit note (see
    :data:`CREDIT_DOCUMENT_TYPES`): the one rule (validation applies it to the distinct
    values of a file, ``features.contract.canonical.credit_values``)."""
    return "".join(ch for ch in text.lower() if ch.isalnum()) in _CREDIT_KEYS


def columns_of(table: str) -> dict[str, str]:
    """All contract columns of ``table`` (required first) mapped to their canonical dtype."""
    return {**REQUIRED[table], **OPTIONAL[table]}


def empty_table(table: str) -> pd.DataFrame:
    """A zero-row frame of ``table`` with every contract column and canonical dtype."""
    return pd.DataFrame({c: as_codes(pd.Series(dtype=ID_DTYPE)) if d == CODE_DTYPE
                         else pd.Series(dtype=d) for c, d in columns_of(table).items()})


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` with every contract column present and canonically typed.

    Missing optional columns are added as all-missing; extra columns are kept (adapters may
    carry source fields). The caller guarantees values already passed validation, so this
    only casts; it never drops rows. A column already in its canonical dtype (dates: at
    midnight) is not copied: under pandas' copy-on-write the result shares it with
    ``frame`` until either is written, so a staged book costs no second copy.
    """
    out = frame.copy(deep=False)
    for col, dtype in columns_of(table).items():
        if col not in out.columns:
            out[col] = pd.Series(index=out.index, dtype=dtype)
        if dtype == DATE_DTYPE:
            out[col] = _as_dates(out[col])
        elif dtype == CODE_DTYPE:
            out[col] = as_codes(out[col])
        elif str(out[col].dtype) != dtype:
            out[col] = out[col].astype(dtype)
    ordered = list(columns_of(table)) + [c for c in out.columns if c not in columns_of(table)]
    return out[ordered].reset_index(drop=True)


def as_codes(column: pd.Series) -> pd.Series:
    """``column`` as :data:`CODE_DTYPE` with ``str`` categories, sorted (so a Book does not
    depend on the order in which values first appeared); the column itself when it already
    is. A missing value stays missing."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(ID_DTYPE).astype(CODE_DTYPE)  # (categories come sorted)
    cats = column.cat.categories
    if cats.dtype == ID_DTYPE and cats.is_monotonic_increasing and not column.cat.ordered:
        return column
    column = column.cat.as_unordered().cat.rename_categories(cats.astype(ID_DTYPE))
    return column.cat.reorder_categories(column.cat.categories.sort_values())


def with_invoice_accounts(payments: pd.DataFrame,
                           accounts: pd.CategoricalDtype) -> pd.DataFrame:
    """``payments`` with their ``account_id`` codes in the invoices' categories
    (``accounts``), as validation writes them, so the two tables' accounts compare; as
    they are when a payment names an account no invoice has."""
    column = payments["account_id"]
    if column.dtype == accounts or not pd.Index(column.cat.categories).isin(
            accounts.categories).all():
        return payments
    out = payments.copy(deep=False)
    out["account_id"] = column.cat.set_categories(accounts.categories)
    return out


def without_staged_only(book: Book) -> Book:
    """``book`` without its :data:`STAGED_ONLY` columns (shallow frames: nothing copied;
    the columns' memory is freed once no other frame holds them)."""
    tables = {t: getattr(book, t) for t in ALL_TABLES}
    for table, columns in STAGED_ONLY.items():
        frame = tables[table]
        tables[table] = frame.drop(columns=[c for c in columns if c in frame.columns])
    return Book(**tables)


def _as_dates(column: pd.Series) -> pd.Series:
    """``column`` as midnight ``datetime64[s]``. Dates already at midnight in a numpy
    datetime unit (Parquet gives milliseconds) are only re-united (none when already
    seconds: the column itself), checked in one linear pass; anything else is parsed and
    normalised."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "M":
        unit, _ = np.datetime_data(column.dtype)
        per_day = np.timedelta64(1, "D") // np.timedelta64(1, unit)
        ticks = column.to_numpy().view("int64")
        if ((ticks % per_day == 0) | (ticks == np.iinfo(np.int64).min)).all():
            return column if column.dtype == DATE_DTYPE else column.astype(DATE_DTYPE)
    return pd.to_datetime(column).dt.normalize().astype(DATE_DTYPE)


@dataclass(frozen=True)
class Book:
    """The contract tables of one receivables book (see module docstring for dtypes).

    ``payments``, ``disputes``, ``promises`` and ``contacts`` may be empty; ``accounts``
    holds at least every account that appears in ``invoices`` (loaders add bare rows for
    unknown accounts).
    """

    invoices: pd.DataFrame
    payments: pd.DataFrame = field(default_factory=lambda: empty_table("payments"))
    accounts: pd.DataFrame = field(default_factory=lambda: empty_table("accounts"))
    disputes: pd.DataFrame = field(default_factory=lambda: empty_table("disputes"))
    promises: pd.DataFrame = field(default_factory=lambda: empty_table("promises"))
    contacts: pd.DataFrame = field(default_factory=lambda: empty_table("contacts"))

    @classmethod
    def from_frames(
        cls,
        invoices: pd.DataFrame,
        payments: pd.DataFrame | None = None,
        accounts: pd.DataFrame | None = None,
        disputes: pd.DataFrame | None = None,
        promises: pd.DataFrame | None = None,
        contacts: pd.DataFrame | None = None,
    ) -> Book:
        """Build a Book from already-valid frames, casting to the canonical dtypes.

        Accounts seen in invoices but absent from ``accounts`` get a bare row, so every
        invoice's account exists. Use ``features.contract.validation`` for untrusted input.
        """
        inv = conform("invoices", invoices)
        pay = conform("payments", payments if payments is not None else empty_table("payments"))
        acc = conform("accounts", accounts if accounts is not None else empty_table("accounts"))
        dis = conform("disputes", disputes if disputes is not None else empty_table("disputes"))
        pay = with_invoice_accounts(pay, inv["account_id"].dtype)
        missing = pd.Index(inv["account_id"].unique().astype(ID_DTYPE)).difference(
            pd.Index(acc["account_id"]))
        if len(missing):
            extra = conform("accounts", pd.DataFrame({"account_id": missing.astype(ID_DTYPE)}))
            acc = pd.concat([acc, extra], ignore_index=True)
        events = {t: conform(t, f if f is not None else empty_table(t))
                  for t, f in (("promises", promises), ("contacts", contacts))}
        return cls(invoices=inv, payments=pay, accounts=acc, disputes=dis, **events)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by contract name: the four core tables, then each event table that
        holds rows (a book without promises or contacts has exactly the four)."""
        return {t: getattr(self, t) for t in ALL_TABLES
                if t in TABLES or len(getattr(self, t))}

    @property
    def has_events(self) -> bool:
        """Whether the book carries promises or contacts (the collections loop's data)."""
        return any(len(getattr(self, t)) for t in EVENT_TABLES)

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
