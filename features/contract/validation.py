"""Validation at the boundary: raw tables in, a typed :class:`~features.contract.book.Book` out.

Validation happens once, when data enters (DESIGN section 3). Every row of every table is
either kept in the returned Book or quarantined with the first named rule it broke (see
:mod:`features.contract.rules` for the rules and their order), so ``rows_read == kept +
quarantined`` holds for every table. Whole-file problems (missing file or required column,
empty or unreadable file, bad encoding, mixed currencies, too many bad rows) raise
:class:`DataContractError` with one message naming the file, the column and the rule.
Plausibility anomalies (a table empty or implausibly small next to the others) stop the
same way unless ``accept_anomalies=True``, which records them in the result instead.

Input is raw: CSV tables read as strings (delimiter, decimal separator and date format set
by :class:`~features.contract.options.ReadOptions` or detected, and reported in
:attr:`ValidationResult.read_info`) or typed Parquet tables, whose typed columns skip
string parsing. The work is vectorised in polars; the returned Book holds pandas frames in
canonical dtypes, sorted in a canonical order (so shuffled input gives the same Book).

Memory (issues 11 and 20: validation set the peak of the 1M nightly and retrain). Tables
are validated one at a time (invoices, payments, disputes, the event tables, accounts),
each read when its turn comes; what is held at once is:

- the Book so far (pandas: the tables already converted), and ``parents``, the checked
  invoices' slim view in file order (id, issue date, amount, rule code, account code)
  that the payments, disputes and promises rules look their invoice up in;
- the current table as read (every source column: text as 16-byte polars views, optional
  codes as ``Categorical``, see ``raw_checks.as_categories``), plus the parsed values of
  the columns parsing changes (dates), the record number, the rules' codes and, for
  payments and disputes, their invoice's row, issue date and account code.

Nothing transient is as big as a table: a Parquet table is read column by column, each
joined into one chunk before the next is read (``io.read_source``), the invoice-id lookups
match polars' 16-byte string views where they are (``features.keys``: no Arrow copy of
either side), and the payment credits add up in place (``credits.payment_credits``).

Nothing is held twice: the bad rows are copied out (few), the raw cells dropped, and the
kept rows are never filtered nor sorted as a whole; :func:`~features.contract.canonical.
canonical` gives their canonical order and each column is gathered by it and converted
to pandas one at a time, its polars buffers freed then (``canonical.to_pandas``), and
freed heap pages are handed back after each table (``io.return_freed_memory``). So the
peak is reached while the payments are checked and converted: the Book's invoices +
``parents`` + the payments (at 1M accounts 9.8 GB, ``bench.validation_steps``; 9.4 GB is
still held when validation returns: the Book, ~6.7 GB, and pages polars' allocator frees
over the next seconds; it grows linearly with the book). Optional code columns are read
as ``Categorical`` (``io.read_source(codes=...)``), and a stored date column its parsed
days say exactly is dropped after parsing (``raw_checks.without_typed_dates``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import pandas as pd
import polars as pl

from features.contract import held_out
from features.contract import rules as R
from features.contract.book import (
    ALL_TABLES,
    EVENT_TABLES,
    Book,
    columns_of,
    empty_table,
)
from features.contract.canonical import (
    account_dtype,
    at_order,
    canonical,
    to_pandas,
    with_bare_accounts,
)
from features.contract.credits import credit_notes, describe, payment_credits
from features.contract.io import read_source, return_freed_memory, table_files
from features.contract.options import (
    Plausibility,
    ReadInfo,
    ReadOptions,
    ReadOptionsMap,
    options_for,
)
from features.contract.plausibility import Anomaly, bare_warning, table_anomalies, unknown_warning
from features.contract.raw_checks import (
    as_categories,
    check_columns,
    check_currency,
    check_types,
    code_columns,
    to_polars,
    with_typed_dates,
    without_typed_dates,
)
from features.contract.rules import RULES, DataContractError

__all__ = [
    "RULES",
    "Anomaly",
    "DataContractError",
    "Plausibility",
    "ReadOptions",
    "ValidationResult",
    "validate_folder",
    "validate_tables",
    "write_quarantine",
]

#: A table given lazily: called once, when validation reaches that table; it returns the
#: raw frame, or the frame and what reading it found.
Loader = Callable[[], "pd.DataFrame | pl.DataFrame | tuple[pl.DataFrame, ReadInfo]"]

@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating one source.

    ``book``: the kept rows, typed. ``quarantine``: per table, the bad rows as read (all
    source columns as strings) plus ``_row`` (1-based data record number in the file, the
    header not counted), ``_rule`` and ``_message``. ``summary``: one row per contract
    table with ``table``, ``rows_read``, ``kept``, ``quarantined`` and one count column per
    rule (in :data:`RULES` order). ``read_info``: per table, what reading found (delimiter,
    decimal separator, date formats, renamed columns). ``warnings``: findings that did not
    change the book but may mean the export is off (e.g. ids matching only without leading
    zeros). ``anomalies``: plausibility anomalies accepted with ``accept_anomalies=True``
    (empty when none, or when they stopped the run). ``credits``: what was kept as credit
    (``features.contract.credits.CREDIT_COUNTS``: credit notes, prepayments, overpaid
    invoices, with their amounts).
    """

    book: Book
    quarantine: dict[str, pd.DataFrame]
    summary: pd.DataFrame
    read_info: dict[str, ReadInfo] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    credits: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no row at all was quarantined and no anomaly was accepted (a result
        is only returned within the bad-row threshold; ``ok`` says whether it was also
        perfectly clean)."""
        return int(self.summary["quarantined"].sum()) == 0 and not self.anomalies

    def render(self) -> str:
        """A readable text summary: rows read/kept/quarantined per table, then per rule,
        then what reading found, warnings and accepted anomalies."""
        lines = [f"{'table':<10} {'rows_read':>12} {'kept':>12} {'quarantined':>12}"]
        for row in self.summary.itertuples(index=False):
            lines.append(
                f"{row.table:<10} {row.rows_read:>12,} {row.kept:>12,} {row.quarantined:>12,}"
            )
        broken = [
            (t, rule, int(n))
            for t, rec in zip(self.summary["table"], self.summary.to_dict("records"), strict=True)
            for rule in RULES
            if (n := rec[rule])
        ]
        if broken:
            lines.append("quarantined by rule:")
            lines += [f"  {t:<10} {rule:<24} {n:>10,}" for t, rule, n in broken]
        else:
            lines.append("no row quarantined")
        shown = [i for i in self.read_info.values() if i.kind == "csv" or i.renamed
                 or i.decimal_how or i.date_formats]
        if shown:
            lines.append("read:")
            lines += [f"  {info.describe()}" for info in shown]
        if (credit_line := describe(self.credits)) is not None:
            lines.append(credit_line)
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"accepted anomaly: {a.message}" for a in self.anomalies]
        return "\n".join(lines)


def validate_tables(
    raw: Mapping[str, pd.DataFrame | pl.DataFrame],
    *,
    sources: Mapping[str, str] | None = None,
    max_bad_share: float = 0.05,
    read_options: ReadOptionsMap | None = None,
    plausibility: Plausibility | None = None,
    accept_anomalies: bool = False,
) -> ValidationResult:
    """Validate raw contract tables (by table name) and return the Book plus quarantine.

    Tables are pandas frames (polars frames are accepted too) as read: strings, or typed
    columns (Parquet) that skip parsing.
    ``sources`` maps table names to the file names used in error messages (default: the
    table name). ``max_bad_share`` (0-1) is the largest tolerated share of bad rows per
    table; rows quarantined only because their invoice was (``parent_quarantined``) are
    not counted against the child table. ``read_options``: per table (or ``"*"``) the
    decimal separator, date format and missing-value tokens (delimiter and encoding only
    matter to files, see :func:`validate_folder`). ``plausibility``: the row and table
    plausibility limits (default :class:`Plausibility`). ``accept_anomalies``: record
    plausibility anomalies in the result instead of stopping.

    Raises :class:`DataContractError`; when the error comes after the row checks
    (``too_many_bad_rows``, an anomaly) its ``result`` attribute holds the full result.
    """
    result, error = _validate(
        dict(raw), dict(sources or {}), max_bad_share, read_options,
        plausibility or Plausibility(), accept_anomalies,
    )
    if error is not None:
        error.result = result
        raise error
    return result


def validate_folder(
    path: str | Path,
    *,
    max_bad_share: float = 0.05,
    quarantine_dir: str | Path | None = None,
    read_options: ReadOptionsMap | None = None,
    plausibility: Plausibility | None = None,
    accept_anomalies: bool = False,
) -> ValidationResult:
    """Read a data folder (see :func:`features.contract.io.read_folder`), validate it, and
    write the quarantine CSVs to ``quarantine_dir`` (default ``<path>/_quarantine``).

    ``read_options`` per table (or ``"*"``): delimiter, decimal separator, date format,
    encoding, missing-value tokens (see :class:`ReadOptions`); what is not set is detected
    and reported in ``read_info``. Other arguments as in :func:`validate_tables`.
    Quarantine files are written (and stale ones removed) even when the run then stops
    (``too_many_bad_rows``, an anomaly), so the bad rows can be inspected.
    """
    path = Path(path)
    files = table_files(path)
    sources = {t: file.name for t, file in files.items()}
    # Loaders, not frames: each table is read when its turn comes and freed after.
    raw: dict[str, pd.DataFrame | pl.DataFrame | Loader] = {
        t: partial(read_source, file, options_for(t, read_options), codes=code_columns(t))
        for t, file in files.items()
    }
    qdir = Path(quarantine_dir) if quarantine_dir is not None else path / "_quarantine"
    result, error = _validate(raw, sources, max_bad_share, read_options,
                              plausibility or Plausibility(), accept_anomalies)
    write_quarantine(result.quarantine, qdir)
    if error is not None:
        error.result = result
        raise error
    return result


def write_quarantine(quarantine: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each non-empty quarantine table to ``<out_dir>/<table>.csv``; remove stale ones.

    Returns the paths written.
    """
    out_dir = Path(out_dir)
    written = []
    for table in ALL_TABLES:
        target = out_dir / f"{table}.csv"
        frame = quarantine.get(table)
        if frame is None or frame.empty:
            target.unlink(missing_ok=True)
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        frame.to_csv(target, index=False)
        written.append(target)
    return written


# --------------------------------------------------------------------------- internals


def _quarantine(bad: pl.DataFrame, options: ReadOptions, plausible: Plausibility) -> pd.DataFrame:
    """Quarantined rows (decoded) as read: source columns as strings + _row, _rule, _message."""
    source = [c for c in bad.columns if not c.startswith("__")]
    out = bad.select(
        *[pl.col(c).cast(pl.String).fill_null("") for c in source],
        pl.col(R.ROW).cast(pl.Int64).alias("_row"),
        pl.col(R.RULE).alias("_rule"),
        R.messages(bad, options, plausible).alias("_message"),
    )
    return out.to_pandas()


# Processing order: invoices first (their kept ids and issue dates are the parents of
# payments and disputes, their accounts those of promises and contacts), accounts last
# (they get bare rows for invoiced accounts).
_ORDER = ("invoices", "payments", "disputes", *EVENT_TABLES, "accounts")


def _loaded(
    given: pd.DataFrame | pl.DataFrame | Loader, name: str
) -> tuple[pd.DataFrame | pl.DataFrame, ReadInfo]:
    source = given() if callable(given) else given
    if isinstance(source, tuple):
        return source
    return source, ReadInfo(file=name, kind="frame")


def _validate(
    raw: dict[str, pd.DataFrame | pl.DataFrame | Loader],
    sources: dict[str, str],
    max_bad_share: float,
    read_options: ReadOptionsMap | None,
    plausible: Plausibility,
    accept_anomalies: bool,
) -> tuple[ValidationResult, DataContractError | None]:
    """Validate table by table. ``raw`` values are frames or loaders (called once, when
    the table's turn comes); ``raw`` is emptied as it goes so every table's raw and
    working frames are freed before the next one is read (peak memory ~ one table)."""
    if "invoices" not in raw:
        raise DataContractError(
            sources.get("invoices", "invoices"), None, "missing_file",
            "the invoices table is required but no such file was found",
        )
    options = {t: options_for(t, read_options) for t in ALL_TABLES}
    for table in _ORDER:  # in-memory frames: fail fast on whole-file errors
        given = raw.get(table)
        if given is not None and not callable(given):
            name = sources.get(table, table)
            check_columns(table, [str(c) for c in given.columns], len(given), name, None)

    kept: dict[str, pd.DataFrame] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    read_info: dict[str, ReadInfo] = {}
    # The summary has a row per core table, and per event table only when one is given.
    rows = {t: {"table": t, "rows_read": 0, "kept": 0, "quarantined": 0} for t in ALL_TABLES
            if t not in EVENT_TABLES or t in raw}
    error: DataContractError | None = None
    warnings: list[str] = []
    credits: dict[str, float] = {}
    held = pl.DataFrame()
    parents = pl.DataFrame()
    ids_sorted: bool | None = None
    seen = pl.DataFrame({"account_id": []}, schema={"account_id": pl.String})
    codes: dict[str, pd.CategoricalDtype] = {}
    for table in _ORDER:
        if table not in raw:
            continue
        name = sources.get(table, table)
        given = raw.pop(table)
        source, info = _loaded(given, name)
        frame = to_polars(source, name, owned=callable(given))
        del source
        renames = check_columns(table, frame.columns, frame.height, name, info)
        if renames:
            frame = frame.rename(renames)
        check_types(frame, table, name)
        frame = as_categories(frame, table)
        if table == "invoices":
            check_currency(frame, name, options[table].missing)
        frame, parsed = R.row_local_rules(frame, table, options[table], plausible)
        source_columns = frame.columns
        frame, stored_dates = without_typed_dates(frame, table)
        read_info[table] = replace(
            info, decimal=parsed.decimal, decimal_how=parsed.decimal_how,
            date_formats=parsed.date_formats, renamed=tuple(renames.items()),
        )
        if table == "invoices":
            parents = R.parents_of(frame)
            ids_sorted = R.kept_ids_sorted(parents)  # (once: three tables look them up)
        elif table in ("payments", "disputes"):
            frame = R.child_rules(frame, table, parents, ids_sorted=ids_sorted)
        elif table in EVENT_TABLES:
            frame = R.event_rules(frame, table, parents, seen, ids_sorted=ids_sorted)
        if table == "payments":  # no phantom delinquency: hold their invoices out
            frame, parents, held = held_out.flag(frame, parents)
        is_bad = pl.col(R.RULE) > 0
        bad = R.decoded(with_typed_dates(frame.filter(is_bad), stored_dates, source_columns),
                        table)
        height = frame.height
        # The raw contract cells served the rules and the bad rows' quarantine (taken
        # above); the kept rows need only the parsed values: the raw cells are freed now,
        # never held beside the Book's columns.
        frame = frame.drop([c for c in frame.columns if c in columns_of(table)])
        # The kept rows are never filtered nor sorted as a whole (each would copy the
        # table): canonical() gives their order, and each column is gathered by it as it
        # is converted (to_pandas), its source freed then.
        keep = None if bad.is_empty() else frame.get_column(R.RULE) == 0
        if table == "payments":
            credits.update(payment_credits(frame, parents.get_column(R.value("amount")), keep))
        canon, order = canonical(frame, table, rows=table == "invoices", keep=keep)
        del frame, keep
        if table == "invoices":
            # Canonical invoices are sorted by account_id: distinct accounts are where it
            # changes, and each invoice's account code a running count (linear, no
            # hashing); payments take their invoice's code.
            first = at_order(canon.select(R.ROW, "account_id", "amount"), order)
            canon.drop_in_place(R.ROW)
            parents, accounts = R.with_account_codes(
                parents, first.get_column(R.ROW), first.get_column("account_id"))
            seen = accounts.to_frame()
            codes = {"account_id": account_dtype(accounts)}
            credits.update(credit_notes(first))
            del first
            # The Book's invoices hold their account as that code too (book.py), not one
            # id string per invoice: parents are in file order, as ``canon``'s rows are.
            canon = canon.with_columns(parents.get_column(R.ACCOUNT_CODE).alias("account_id"))
        if table in ("payments", "disputes"):
            warnings += unknown_warning(bad, parents, name, sources.get("invoices", "invoices"))
        if table == "accounts":
            canon, order = at_order(canon, order), None  # (a small table)
            warnings += bare_warning(canon, seen, name, sources.get("invoices", "invoices"))
            canon = with_bare_accounts(canon, seen)
        kept[table] = to_pandas(canon, table,
                                codes if table in ("invoices", "payments") else None, order)
        del canon, order
        quarantine[table] = _quarantine(bad, options[table], plausible)
        counts = dict(bad.get_column(R.RULE).value_counts().iter_rows())
        rows[table].update(
            rows_read=height, kept=height - bad.height, quarantined=bad.height, **counts
        )
        charged = bad.filter(~pl.col(R.RULE).is_in(list(R.DERIVED_RULES)))
        if error is None and charged.height > max_bad_share * height:
            error = _too_many(name, charged, height, max_bad_share, sources)
        del bad, charged
        return_freed_memory()  # (this table's working frames: before the next is read)
    if "accounts" not in kept:
        kept["accounts"] = to_pandas(seen.clone(), "accounts")  # (to_pandas empties it)
    if held.height:
        kept["invoices"], quarantine["invoices"] = held_out.hold_out(
            kept["invoices"], held, parents, quarantine["invoices"],
            sources.get("payments", "payments"))
        inv_rows = rows["invoices"]
        inv_rows.update(kept=inv_rows["kept"] - held.height,
                        quarantined=inv_rows["quarantined"] + held.height,
                        **{held_out.RULE: held.height})

    present = {t: rows[t]["rows_read"] for t in read_info}
    anomalies = table_anomalies(present, sources, seen.height, plausible)
    summary = pd.DataFrame(list(rows.values()),
                           columns=["table", "rows_read", "kept", "quarantined", *RULES])
    summary = summary.fillna(0).astype({c: "int64" for c in summary.columns if c != "table"})
    empty = {t: empty_table(t) for t in ALL_TABLES if t not in kept}
    book = Book(**{**empty, **kept})
    result = ValidationResult(book=book, quarantine=quarantine, summary=summary,
                              read_info=read_info, warnings=tuple(warnings),
                              anomalies=tuple(anomalies), credits=credits)
    if error is None and anomalies and not accept_anomalies:
        error = anomalies[0].error()
        if len(anomalies) > 1:
            others = "; ".join(a.message for a in anomalies[1:])
            error = DataContractError(error.file, error.column, error.rule,
                                      f"{error.detail} (also: {others})")
    return result, error


#: Hints for the worst rule of ``too_many_bad_rows``, where the cause may lie elsewhere.
_HINTS = {
    "ambiguous_amount": "; set the read option decimal ('.' or ',')",
    "unparseable_date": "; set the read option date_format if the dates have another format",
    "malformed_line": "; is the delimiter right, and are fields with a delimiter quoted?",
}


def _too_many(
    name: str, charged: pl.DataFrame, height: int, max_bad_share: float,
    sources: Mapping[str, str],
) -> DataContractError:
    """The ``too_many_bad_rows`` error, naming the worst rule and its commonest column.

    When the worst rule compares with the invoices (unknown invoice, dated before issue),
    the invoices file may be the one to blame: the message names it too.
    """
    by_rule = charged.group_by(R.RULE).len().sort(["len", R.RULE], descending=[True, False])
    rule, n = by_rule.row(0)
    columns = charged.filter(pl.col(R.RULE) == rule).get_column(R.COLUMN).drop_nulls()
    column = columns.mode().sort().first() if len(columns) else None
    share = charged.height / height
    detail = (
        f"{charged.height:,} of {height:,} rows are bad ({share:.1%} > {max_bad_share:.1%} "
        f"allowed); worst rule {rule} ({n:,} rows)"
    )
    invoices = sources.get("invoices", "invoices")
    if rule == "unknown_invoice":
        detail += f"; their invoice_id is not among the invoices of {invoices}: check its ids"
    elif rule == "dispute_before_issue":
        detail += f"; compared with the issue_date of {invoices}: check its dates"
    detail += _HINTS.get(rule, "")
    return DataContractError(name, column, "too_many_bad_rows", detail)
