"""Options of the validation boundary: how to read a source, and what counts as plausible.

Both are small frozen values a caller builds once (the steps layer maps settings onto
them) and passes to :func:`features.contract.validation.validate_folder` /
:func:`~features.contract.validation.validate_tables`. Defaults detect what they can and
say what they found (see :class:`ReadInfo`); an option that is set always wins over
detection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Final

#: Field delimiters the CSV reader tries, in tie-break order.
DELIMITERS: Final = (",", ";", "\t", "|")
#: Decimal separators of amounts.
DECIMALS: Final = (".", ",")
#: Cell values read as missing (compared case-insensitively, after stripping spaces), in
#: ids and values alike: an id "NULL" is ``missing_value``, never a customer.
#: "nan"/"none" are what a pandas frame of missing values becomes as text.
MISSING_TOKENS: Final = ("", "NULL", "N/A", "NA", "-", "#N/A", "NONE", "NAN")


@dataclass(frozen=True)
class ReadOptions:
    """How to read one source table; ``None`` means detect (or the documented default).

    - ``delimiter``: CSV field delimiter, one of :data:`DELIMITERS`; detected from the
      header and first lines.
    - ``decimal``: decimal separator of numbers, ``"."`` or ``","``; detected per file from
      values that can only be read one way ("12,50", "1.234,56", "0.5"). While it is
      unknown, a value that reads two ways ("2.500", "1,234") is quarantined as
      ``ambiguous_amount``, never guessed.
    - ``date_format``: a ``strftime`` format (e.g. ``"%d.%m.%Y"``) every text date of the
      table must follow; default: ISO ``YYYY-MM-DD``, or ``YYYYMMDD`` digits.
    - ``encoding``: text encoding of a CSV (a Python codec name); default UTF-8, UTF-16
      when the file starts with its byte-order mark.
    - ``missing_values``: cell values read as missing; default :data:`MISSING_TOKENS`.
    """

    delimiter: str | None = None
    decimal: str | None = None
    date_format: str | None = None
    encoding: str | None = None
    missing_values: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            raise ValueError(f"delimiter must be one of {DELIMITERS}, not {self.delimiter!r}")
        if self.decimal is not None and self.decimal not in DECIMALS:
            raise ValueError(f"decimal must be one of {DECIMALS}, not {self.decimal!r}")
        if self.date_format is not None and "%" not in self.date_format:
            raise ValueError(f"date_format must be a strftime format, not {self.date_format!r}")
        if self.encoding is not None:
            import codecs

            codecs.lookup(self.encoding)  # LookupError names an unknown codec

    @property
    def missing(self) -> tuple[str, ...]:
        """The missing-value tokens in effect, upper-cased."""
        tokens = MISSING_TOKENS if self.missing_values is None else self.missing_values
        return tuple(sorted({t.strip().upper() for t in (*tokens, "")}))


#: Read options of a source: per table name, or ``"*"`` for every table (a table's own
#: entry wins field by field).
ReadOptionsMap = Mapping[str, ReadOptions | Mapping[str, object]]


def options_for(table: str, given: ReadOptionsMap | None) -> ReadOptions:
    """The :class:`ReadOptions` of ``table`` from a per-table mapping (``"*"``: all tables).

    Mappings may hold ``ReadOptions`` or plain dicts of its fields (e.g. parsed from a
    settings file); unknown keys raise ``ValueError`` naming them.
    """
    if not given:
        return ReadOptions()
    unknown_tables = set(given) - {"*", "invoices", "payments", "accounts", "disputes",
                                   "promises", "contacts"}
    if unknown_tables:
        raise ValueError(f"read options for unknown tables {sorted(unknown_tables)}")
    merged: dict[str, object] = {}
    names = {f.name for f in fields(ReadOptions)}
    for key in ("*", table):
        entry = given.get(key)
        if entry is None:
            continue
        values = (
            {f: getattr(entry, f) for f in names} if isinstance(entry, ReadOptions)
            else dict(entry)
        )
        if set(values) - names:
            raise ValueError(f"unknown read options {sorted(set(values) - names)} for {key}")
        merged |= {k: v for k, v in values.items() if v is not None}
    if isinstance(merged.get("missing_values"), list):
        merged["missing_values"] = tuple(merged["missing_values"])  # type: ignore[arg-type]
    return ReadOptions(**merged)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Plausibility:
    """What a plausible source looks like; a check that fails is a named rule.

    Row rules (the row is quarantined):

    - ``sentinel_date``: a date equal to one of ``sentinel_dates`` (placeholders such as
      9999-12-31 for "never", 1900-01-01 or 1970-01-01 for "unknown"), in any date column.
    - ``implausible_date``: a date outside ``[date_min, date_max)``. Account
      ``created_date`` is only checked against ``date_max`` (a customer may well be older
      than the receivables).
    - ``amount_above_cap``: an amount (or credit limit) above ``amount_cap``, in the
      book's currency.

    Table rules (an *anomaly*: the run stops unless anomalies are accepted), checked only
    when the invoices file has at least ``min_invoices`` rows:

    - ``empty_table``: a payments or accounts file with a header and no row.
    - ``implausibly_small``: payments rows below ``min_ratio`` x invoice rows, or
      accounts rows below ``min_ratio`` x distinct invoiced accounts.

    Run rules (an anomaly too, checked before a run replaces the last worklist; see
    ``features.contract.plausibility``):

    - ``as_of_beyond_data``: ``as_of`` more than ``max_days_beyond_data`` days after the
      book's last event (every account would look that much later than it is).
    - ``totals_jump``: against the last published run, the open balance or the number of
      accounts scored changed by more than ``max_balance_change`` / ``max_accounts_change``
      (relative, 0-1), or the share of accounts ``late`` by more than
      ``max_late_share_change`` (absolute, 0-1).
    """

    date_min: date = date(1990, 1, 1)
    date_max: date = date(2100, 1, 1)
    sentinel_dates: tuple[date, ...] = (date(1900, 1, 1), date(1970, 1, 1), date(9999, 12, 31))
    amount_cap: float = 1e9
    min_invoices: int = 100
    min_ratio: float = 0.1
    max_days_beyond_data: int = 45
    max_balance_change: float = 0.5
    max_accounts_change: float = 0.5
    max_late_share_change: float = 0.2

    def __post_init__(self) -> None:
        if not self.date_min < self.date_max:
            raise ValueError(f"date_min {self.date_min} must be before date_max {self.date_max}")
        if not self.amount_cap > 0:
            raise ValueError(f"amount_cap must be positive, not {self.amount_cap}")
        if not 0 <= self.min_ratio <= 1:
            raise ValueError(f"min_ratio must be within 0-1, not {self.min_ratio}")
        if self.max_days_beyond_data < 0:
            raise ValueError("max_days_beyond_data must be 0 or more, not "
                             f"{self.max_days_beyond_data}")
        for name in ("max_balance_change", "max_accounts_change", "max_late_share_change"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")


@dataclass(frozen=True)
class ReadInfo:
    """What reading one table found (shown in the validation summary).

    ``delimiter``/``decimal``: the separator used and how it was chosen (``"set"``,
    ``"detected"`` or ``"default"``); ``None`` for typed (Parquet) columns.
    ``date_formats``: the text date formats seen; ``renamed``: header names normalised to
    contract names (case, spaces, ``-``/``_`` only); ``malformed_lines``: lines
    quarantined because their field count differs from the header's.
    """

    file: str
    kind: str = "frame"
    encoding: str | None = None
    delimiter: str | None = None
    delimiter_how: str | None = None
    decimal: str | None = None
    decimal_how: str | None = None
    date_formats: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    malformed_lines: int = 0

    def describe(self) -> str:
        """One line: the file and what was found, e.g. ``invoices.csv: delimiter ';'
        (detected), decimal ',' (detected), dates YYYYMMDD``."""
        parts = []
        if self.encoding and self.encoding != "utf-8":
            parts.append(f"encoding {self.encoding}")
        if self.delimiter is not None:
            parts.append(f"delimiter {_show(self.delimiter)} ({self.delimiter_how})")
        if self.decimal is not None:
            parts.append(f"decimal {_show(self.decimal)} ({self.decimal_how})")
        elif self.decimal_how == "conflicting":
            parts.append("decimal separator conflicting ('.' and ',' both seen)")
        if self.date_formats:
            parts.append("dates " + "/".join(self.date_formats))
        if self.renamed:
            parts.append("renamed " + ", ".join(f"'{a}' -> {b}" for a, b in self.renamed))
        if self.malformed_lines:
            parts.append(f"{self.malformed_lines:,} malformed lines")
        return f"{self.file}: " + (", ".join(parts) if parts else f"{self.kind}, typed columns")


def _show(sep: str) -> str:
    return "tab" if sep == "\t" else repr(sep)
