"""Whole-file checks of a raw table, and the raw table in polars: the first steps of
validation (:mod:`features.contract.validation`), before any row is parsed.

Each check raises :class:`~features.contract.rules.DataContractError` naming the file, the
column and the rule (``empty_file``, ``missing_column``, ``unsupported_type``,
``mixed_currency``, ``reserved_column``, ``duplicate_column``, ``unreadable_file``).
"""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa

from features.contract import rules as R
from features.contract.book import CODE_DTYPE, DATE_DTYPE, OPTIONAL, REQUIRED, columns_of
from features.contract.headers import normalised_header, suggestion
from features.contract.options import ReadInfo
from features.contract.parsing import missing_token
from features.contract.rules import DataContractError


def check_columns(
    table: str, columns: list[str], height: int, name: str, info: ReadInfo | None
) -> dict[str, str]:
    """Whole-file checks that need no row parsing; return the header renames to apply.

    Raises the first violation: ``empty_file``, ``missing_column`` (with a hint: a near
    match, a known alias, or a delimiter that looks wrong).
    """
    data = [c for c in columns if not c.startswith("__")]
    if not data or (table == "invoices" and height == 0):
        raise DataContractError(name, None, "empty_file", "has no data rows")
    renames = normalised_header(data, table)
    named = [renames.get(c, c) for c in data]
    for col in REQUIRED[table]:
        if col not in named:  # (raised before any type check: the header is wrong)
            hint = suggestion(col, data, table)
            if info is not None and info.delimiter is not None and len(data) == 1:
                hint += f" (read with delimiter {info.delimiter!r}, {info.delimiter_how})"
            raise DataContractError(name, col, "missing_column", "is required but missing" + hint)
    return renames


def check_types(frame: pl.DataFrame, table: str, name: str) -> None:
    """``unsupported_type`` for a contract column whose stored type holds no value (a list,
    a struct, bytes, a time of day): it could only be misread."""
    for col in columns_of(table):
        if col not in frame.columns:
            continue
        dtype = frame.schema[col]
        if dtype in (pl.String, pl.Categorical, pl.Boolean, pl.Null, pl.Date) or isinstance(
                dtype, (pl.Datetime, pl.Enum)) or dtype.is_numeric():
            continue
        wanted = {DATE_DTYPE: "date", "float64": "number", "Int64": "whole number"}.get(
            columns_of(table)[col], "text")
        raise DataContractError(name, col, "unsupported_type",
                                f"has the stored type {dtype}, which holds no {wanted}; store "
                                "it as text or a number")


def check_currency(invoices: pl.DataFrame, name: str, tokens: tuple[str, ...]) -> None:
    """``mixed_currency`` when invoices hold more than one currency (case/space-insensitive;
    missing-value tokens are no currency).

    The common single-currency case costs one linear comparison, no hashing.
    """
    if "currency" not in invoices.columns:
        return
    cur = invoices.get_column("currency")
    if cur.dtype == pl.Categorical:  # (see ``as_categories``: its distinct values say it)
        cur = cur.unique()
    cur = cur.cast(pl.String)
    present = cur.filter(cur.is_not_null() & (cur != ""))
    if present.is_empty() or (present == present[0]).all():
        return
    found = present.str.strip_chars().str.to_uppercase()
    found = found.filter(~found.to_frame("c").select(missing_token(pl.col("c"), tokens))
                         .to_series()).unique().sort()
    if len(found) > 1:
        shown = ", ".join(found.head(5).to_list())
        raise DataContractError(
            name, "currency", "mixed_currency",
            f"has {len(found)} currencies ({shown}) and no exchange rate",
        )


def as_categories(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """``frame`` with its optional code columns (contract dtype ``CODE_DTYPE``, e.g.
    ``method``, ``currency``, payments' ``account_id``) read as text turned into polars
    ``Categorical``, one column at a time.

    Why: polars holds a text cell as a 16-byte view whatever its length, so a code column
    of 50M rows costs 800 MB as read; as a ``Categorical`` it is 4-byte codes plus the few
    distinct values (200 MB), and the rules, the quarantine and the Book's codes read it as
    the same text (:mod:`features.contract.parsing` parses its distinct values only). The
    cells are not changed (no strip, no case): optional codes are kept as written."""
    coded = [c for c in code_columns(table)
             if c in frame.columns and frame.schema[c] == pl.String]
    for name in coded:
        frame = frame.with_columns(frame.get_column(name).cast(pl.Categorical))
    return frame


def code_columns(table: str) -> list[str]:
    """The optional code columns of ``table`` (contract dtype ``CODE_DTYPE``) that
    validation holds as polars ``Categorical`` (:func:`as_categories`; a Parquet file's
    are read so directly, ``io.read_source(codes=...)``)."""
    return [c for c, d in OPTIONAL[table].items() if d == CODE_DTYPE]


def to_polars(frame: pd.DataFrame | pl.DataFrame, name: str, *,
               owned: bool = False) -> pl.DataFrame:
    """The raw frame in polars (zero-copy for Arrow-backed and numeric columns), with the
    1-based record number. ``owned``: the frame was read here and nobody else holds it, so
    its columns may be rechunked in place (see :func:`contiguous`)."""
    names = [str(c) for c in frame.columns]
    reserved = [c for c in names if c.startswith("__") and c != R.MALFORMED]
    if reserved:
        raise DataContractError(name, reserved[0], "reserved_column",
                                "starts with '__', which is reserved for validation's own columns")
    if isinstance(frame, pl.DataFrame):
        return contiguous(frame, owned).with_columns(pl.int_range(
            1, pl.len() + 1, dtype=R.index_dtype(frame.height)).alias(R.ROW))
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataContractError(name, twice[0], "duplicate_column", "appears twice in the header")
    fixed = {
        c: frame[c].astype("str")
        for c in frame.columns
        if frame[c].dtype == object or isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    if fixed:
        frame = frame.assign(**fixed)
    frame = frame.set_axis(names, axis=1)
    try:
        out = pl.from_pandas(frame.reset_index(drop=True))
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError) as exc:
        raise DataContractError(name, None, "unreadable_file",
                                f"has columns polars cannot read ({exc})") from exc
    return out.with_columns(pl.int_range(1, pl.len() + 1, dtype=R.index_dtype(out.height))
                           .alias(R.ROW))


def contiguous(frame: pl.DataFrame, owned: bool) -> pl.DataFrame:
    """``frame`` with every column in one chunk (a Parquet file read gives one chunk per
    row group), rechunked one column at a time: polars aligns the chunks of a frame whose
    columns differ (the record number is one chunk) by copying every column at once,
    which at the first ``with_columns`` would hold the table twice. ``owned``: rechunk
    ``frame`` itself (its old chunks are freed column by column; the values are the same)
    rather than a shallow copy (a caller's frame keeps its chunks alive meanwhile)."""
    if max(frame.n_chunks("all"), default=1) <= 1:
        return frame
    if not owned:
        frame = frame.clone()
    for i, name in enumerate(frame.columns):
        frame.replace_column(i, frame.get_column(name).rechunk())
    return frame



#: A day in each time unit of a polars ``Datetime``.
_DAY = {"ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def without_typed_dates(frame: pl.DataFrame,
                        table: str) -> tuple[pl.DataFrame, dict[str, pl.DataType]]:
    """``frame`` without the stored date columns its parsed dates say exactly, and their
    stored types (for :func:`with_typed_dates`).

    A Parquet date column (a datetime, no time zone) whose every cell is its parsed day
    (``parsing.value``) at midnight, or missing where that is, holds nothing the parsed
    column does not: its cells are rebuilt for the quarantined rows alone. Why: at 1M
    accounts payments' stored ``payment_date`` (8 bytes a row, 0.4 GB) was held beside
    its parsed copy through the rules, at validation's peak (issue 20)."""
    schema = frame.schema
    dates = [c for c, d in columns_of(table).items()
             if d == DATE_DTYPE and c in schema and R.value(c) in schema
             and isinstance(schema[c], pl.Datetime) and schema[c].time_zone is None]
    if not dates:
        return frame, {}
    # The parsed day of a stored datetime is its cast (``parsing.typed_date``): null where
    # it is, else the same instant exactly when that is a midnight, which one modulo of
    # its integer says (not a cast and a comparison of two columns: ~4x cheaper).
    same = frame.select(
        *[(pl.col(c).to_physical() % _DAY[schema[c].time_unit] == 0).all().alias(c)
          for c in dates]).row(0, named=True)
    gone = {c: schema[c] for c in dates if same[c]}
    return (frame.drop(list(gone)) if gone else frame), gone


def with_typed_dates(rows: pl.DataFrame, gone: dict[str, pl.DataType],
                     columns: list[str]) -> pl.DataFrame:
    """``rows`` (some rows of a frame of :func:`without_typed_dates`) with the stored date
    columns ``gone`` rebuilt from their parsed days, in the source column order
    (``columns``: the frame's columns before)."""
    if not gone:
        return rows
    rows = rows.with_columns(pl.col(R.value(c)).cast(t).alias(c) for c, t in gone.items())
    return rows.select([c for c in columns if c in rows.columns]
                       + [c for c in rows.columns if c not in columns])
