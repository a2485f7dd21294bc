"""Kept rows as Book tables: parsed values under contract names, canonical order and dtypes.

The last step of validation (:mod:`features.contract.validation`): rows that broke no rule
become the pandas tables of a :class:`~features.contract.book.Book`, sorted in a canonical
order so that shuffled input gives the same Book.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from features.contract import rules as R
from features.contract.book import (
    CODE_DTYPE,
    DATE_DTYPE,
    ID_DTYPE,
    as_codes,
    columns_of,
    is_credit_type,
)
from features.row_order import arg_sort_rows, lexical_codes

# Canonical row order of each Book table (invoice and account ids are unique once
# validated; payments and disputes break ties on every other contract column).
SORT_KEYS = {
    "invoices": ["account_id", "issue_date", "invoice_id"],
    "payments": ["invoice_id", "payment_date", "payment_id", "amount"],
    "accounts": ["account_id"],
    "disputes": ["invoice_id", "opened_date", "resolved_date", "reason"],
    "promises": ["account_id", "created_date", "promise_id"],
    "contacts": ["account_id", "contact_date", "contact_id"],
}


def is_sorted(frame: pl.DataFrame, keys: list[str]) -> bool:
    """Whether rows are already in ascending lexicographic order of ``keys`` (nulls last).

    One linear pass; it lets sources written in canonical order skip a costly sort.
    """
    if frame.height < 2:
        return True
    ok_so_far = pl.lit(False)  # "strictly less on an earlier key" accumulates backwards
    for key in reversed(keys):
        cur, nxt = pl.col(key), pl.col(key).shift(-1)
        less = (cur < nxt) | (cur.is_not_null() & nxt.is_null())
        same = (cur == nxt) | (cur.is_null() & nxt.is_null())
        ok_so_far = less.fill_null(False) | (same.fill_null(False) & ok_so_far)
    in_order = ok_so_far | pl.int_range(pl.len()).eq(pl.len() - 1)
    return bool(frame.select(in_order.all()).item())


def canonical(frame: pl.DataFrame, table: str, *, rows: bool = False,
              keep: pl.Series | None = None) -> tuple[pl.DataFrame, pl.Series | None]:
    """Parsed values under contract names, in canonical column order, and the canonical
    row order of the kept rows: ``(values, order)``.

    ``values`` has every row of ``frame`` (kept or not) in file order and shares its
    buffers (no copy but for the columns a rule rewrites); ``order`` holds the positions
    of the kept rows (``keep``: a boolean mask, None = every row) in canonical order, or
    None when that is every row as it stands (a clean file written in canonical order).
    The rows are never filtered or sorted as a whole: each column is gathered by
    ``order`` when it is converted (:func:`to_pandas`), so the table is never held twice.
    Payments' ``account_id`` is their invoice's account code (``rules.ACCOUNT_CODE``, set
    by ``rules.child_rules``), not text. ``rows``: keep the record number (``rules.ROW``)
    as the last column.
    """
    contract = [c for c in columns_of(table) if R.value(c) in frame.columns]
    extras = [c for c in frame.columns if not c.startswith("__") and c not in columns_of(table)]
    values = {c: pl.col(R.value(c)) for c in contract}
    if table == "payments" and R.ACCOUNT_CODE in frame.columns:
        values["account_id"] = pl.col(R.ACCOUNT_CODE)
    for col in R.ENUMERATIONS.get(table, {}):
        values[col] = R.enumeration(values[col])
    if table == "invoices" and "document_type" in values:
        is_credit = credit_values(frame.get_column(R.value("document_type")))
        values["amount"] = pl.when(values["document_type"].is_in(is_credit.implode())).then(
            -values["amount"].abs()).otherwise(values["amount"])
    ordered = [c for c in columns_of(table) if c in values]
    out = frame.select(*[values[c].alias(c) for c in ordered],
                       *[pl.col(c).cast(pl.String) for c in extras],
                       *([pl.col(R.ROW)] if rows else []))
    keys = [k for k in SORT_KEYS[table] if k in out.columns]
    if table in ("payments", "disputes"):  # no unique id: every column breaks ties
        keys += [c for c in ordered if c not in keys]
    return out, _order(out.select(keys), keep)


def _order(keys: pl.DataFrame, keep: pl.Series | None) -> pl.Series | None:
    """Positions of the kept rows sorted by ``keys`` (ascending, nulls last, ties in file
    order), or None when that is every row in place. Only the key columns of the kept
    rows are copied, and only for as long as the sort takes."""
    kept = keys if keep is None else keys.filter(keep)
    if is_sorted(kept, list(keys.columns)):
        return None if keep is None else keep.arg_true()
    # (polars' own multi-key sort encodes text ids row by row: ~3x slower on shuffled ids)
    by = pl.Series(arg_sort_rows(kept).astype(np.uint32 if kept.height < 2**32 else np.int64))
    del kept
    return by if keep is None else keep.arg_true().gather(by)


def at_order(frame: pl.DataFrame, order: pl.Series | None) -> pl.DataFrame:
    """``frame``'s rows at ``order`` (see :func:`canonical`): the kept rows in canonical
    order, for the few columns a caller reads before the table is converted."""
    return frame if order is None else frame.gather(order)


def credit_values(document_types: pl.Series) -> pl.Series:
    """The distinct ``document_type`` values that name a credit note (the one rule,
    ``book.is_credit_type``).

    A document type has a handful of values over millions of invoices: the rule runs on
    the distinct values only, then rows are matched by equality."""
    distinct = document_types.unique().drop_nulls().cast(pl.String)
    return distinct.filter(pl.Series([is_credit_type(t) for t in distinct], dtype=pl.Boolean))


def to_pandas(frame: pl.DataFrame, table: str,
              codes: Mapping[str, pd.CategoricalDtype] | None = None,
              order: pl.Series | None = None) -> pd.DataFrame:
    """A canonical polars table as a pandas frame with every contract column and dtype.

    ``order``: the rows to take, in this order (:func:`canonical`'s), gathered column by
    column (None: every row as it stands). Converts column by column and *empties*
    ``frame`` as it goes (``drop_in_place``): a
    column's polars buffers are freed as soon as its pandas copy exists (unless another
    frame shares them), so the table is held about once, not twice (polars strings are
    views; pandas' are Arrow ``large_string``, so ids are copied once, here). The pandas
    columns are not consolidated into 2-D blocks (no further copy). ``codes``: columns that
    already hold integer codes (no nulls) into the categories of the given dtype (sorted
    ``str``): they become that ``category`` directly, without any text.
    """
    types = columns_of(table)
    names = list(types) + [c for c in frame.columns if c not in types]
    height = frame.height if order is None else len(order)

    def take(name: str) -> pl.Series:
        series = frame.drop_in_place(name)
        return series if order is None else series.gather(order)

    kinds = {DATE_DTYPE: pa.timestamp("s"), "float64": pa.float64(), "Int64": pa.int64()}
    columns: dict[str, pd.Series] = {}
    for name in names:
        if name in frame.columns and codes and name in codes:
            values = take(name).cast(pl.Int32).to_numpy()
            columns[name] = pd.Series(pd.Categorical.from_codes(
                values, dtype=codes[name], validate=False), name=name, copy=False)
            continue
        if name in frame.columns and frame.schema[name] == pl.Categorical and (
                types.get(name) == CODE_DTYPE):
            columns[name] = _codes_of(take(name))
            continue
        if name in frame.columns and frame.schema[name] == pl.Date and (
                types.get(name) == DATE_DTYPE):
            columns[name] = _dates(take(name))
            continue
        if name in frame.columns:
            series = take(name)
            if types.get(name) == CODE_DTYPE:
                text = series.cast(pl.String)
                series = text.cast(pl.Enum(text.drop_nulls().unique().sort().to_list()))
                del text
            # (through a one-column frame: its chunks are kept as they are, not merged)
            arrow = series.to_frame().to_arrow().column(0)
            del series
        else:
            arrow = pa.nulls(height, kinds.get(types.get(name, "str"), pa.large_string()))
        if types.get(name) == DATE_DTYPE:
            arrow = arrow.cast(pa.timestamp("s"))
        elif pa.types.is_string_view(arrow.type) or pa.types.is_string(arrow.type):
            arrow = arrow.cast(pa.large_string())
        column = pa.table({name: arrow}).to_pandas(
            types_mapper={pa.int64(): pd.Int64Dtype()}.get, self_destruct=True)[name]
        del arrow
        dtype = types.get(name)
        if dtype == CODE_DTYPE:
            columns[name] = as_codes(column)
            continue
        # All-null string columns come back as object/float: give them the canonical dtype.
        columns[name] = column.astype(dtype) if dtype and str(column.dtype) != dtype else column
    return pd.DataFrame(columns, copy=False)


def _dates(series: pl.Series) -> pd.Series:
    """A polars ``Date`` column as the Book's :data:`DATE_DTYPE` (midnight, seconds; a null
    is NaT): its int32 days times 86,400 in one numpy pass. Why not through Arrow: its
    cast to ``timestamp[s]`` and the conversion to pandas copied each column twice (at 1M
    accounts the three 50M-row date columns took ~2 s of CPU, this ~0.3 s)."""
    days = series.to_physical()
    missing = days.is_null().to_numpy() if days.null_count() else None
    seconds = (days.fill_null(0) if missing is not None else days).to_numpy().astype(np.int64)
    seconds *= 86_400
    if missing is not None:
        seconds[missing] = np.iinfo(np.int64).min  # (NaT)
    return pd.Series(seconds.view(DATE_DTYPE), name=series.name, copy=False)


def _codes_of(series: pl.Series) -> pd.Series:
    """A polars ``Categorical`` as the Book's codes (:data:`CODE_DTYPE`: the distinct
    values present, sorted, as ``str`` categories), without one string per row
    (:func:`features.row_order.lexical_codes`)."""
    codes, names = lexical_codes(series)
    categories = pd.Index(names.to_list(), dtype=ID_DTYPE)
    return pd.Series(pd.Categorical.from_codes(
        codes, dtype=pd.CategoricalDtype(categories), validate=False),
        name=series.name, copy=False)


def account_dtype(accounts: pl.Series) -> pd.CategoricalDtype:
    """The code dtype of sorted distinct account ids (``str`` categories), against which
    payments' ``account_id`` holds its invoice's account (``rules.ACCOUNT_CODE``)."""
    arrow = accounts.to_frame().to_arrow().column(0).cast(pa.large_string())
    ids = pa.table({"c": arrow}).to_pandas()["c"].array
    return pd.CategoricalDtype(pd.Index(ids, dtype="str"))


def with_bare_accounts(accounts: pl.DataFrame | None, seen: pl.DataFrame) -> pl.DataFrame:
    """Accounts plus a bare row for every invoiced account the accounts table lacks."""
    if accounts is None:
        return seen
    missing = bare_accounts(accounts, seen)
    if missing.is_empty():
        return accounts
    out = pl.concat([accounts, missing], how="diagonal_relaxed")
    return out.sort("account_id", maintain_order=True)


def bare_accounts(accounts: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
    """Invoiced accounts (``seen``) absent from ``accounts``."""
    return seen.join(accounts.select("account_id"), on="account_id", how="anti")
