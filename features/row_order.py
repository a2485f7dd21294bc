"""Sorting rows by several columns as a few packed 64-bit integer keys (numpy, exact).

:func:`arg_sort_rows` gives the positions that sort a frame's rows ascending by its columns
in turn, nulls last, ties in row order: the order of polars' ``arg_sort_by(columns,
nulls_last=True, maintain_order=True)``, which validation uses to put a book's tables in
canonical order (``features.contract.canonical``). Polars encodes the rows of a multi-key
sort as variable-length byte rows and compares them, slow on unsorted text ids. Here every
column becomes unsigned integer *digits* (most significant first) whose lexicographic
order is the column's order:

- a null flag (0 = a value, 1 = null: nulls last) when the column has nulls;
- integers, dates, datetimes, durations, booleans: the value, shifted to unsigned;
- floats: their IEEE bits mapped to an order-preserving unsigned integer, after making
  ``-0.0`` equal to ``0.0`` and every NaN one NaN above ``+inf`` (polars' order);
- text: its UTF-8 bytes, 8 per digit (big-endian, zero-padded), then its length in bytes
  (so ``"a"`` comes before ``"a\\x00"``: byte order, as polars compares strings);
- categoricals: the rank of their text among the distinct values (lexical, as polars
  sorts them).

Each digit is reduced to its useful bits (minus its minimum, shifted right by the low bits
every value shares: dates in milliseconds are whole days), and consecutive digits are
packed greedily into 64-bit words; ``np.lexsort`` (stable) over the few words gives the
order. Memory: the words (8 bytes per row each) and one digit at a time. Measured by
``python -m bench.row_order BOOK --shuffle`` (a 300k-account book, rows shuffled, quiet):
15.0M invoices by (account_id, issue_date, invoice_id) 22.2 -> 9.3 CPU s; 15.0M payments
by their six columns 26.0 -> 19.3 CPU s; the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

_SIGN = np.uint64(1 << 63)
_WORD = 64


def arg_sort_rows(frame: pl.DataFrame) -> np.ndarray:
    """Positions (int64) sorting ``frame``'s rows ascending by every column in turn (the
    first most significant), nulls last, equal rows in their order: the same order as
    ``frame.select(pl.arg_sort_by(frame.columns, nulls_last=True, maintain_order=True))``.

    Columns may be integers, floats, booleans, dates, datetimes, durations, strings and
    categoricals; another dtype raises ``TypeError``."""
    words = _pack(_digits(frame), frame.height)
    if not words:
        return np.arange(frame.height, dtype=np.int64)
    if len(words) == 1:
        return np.argsort(words[0], kind="stable").astype(np.int64, copy=False)
    return np.lexsort(words[::-1]).astype(np.int64, copy=False)


def _digits(frame: pl.DataFrame) -> Iterator[np.ndarray]:
    """Every column's digits (uint64, one per row), most significant first."""
    for name in frame.columns:
        yield from _column_digits(frame.get_column(name))


def _column_digits(series: pl.Series) -> Iterator[np.ndarray]:
    nulls = series.null_count()
    if nulls:
        yield series.is_null().to_numpy().astype(np.uint64)
    dtype = series.dtype
    if dtype == pl.Categorical:
        codes, _ = lexical_codes(series)  # (a null's -1: the null flag orders it)
        yield np.maximum(codes, 0).astype(np.uint64)
    elif dtype in (pl.String, pl.Utf8):
        yield from _text_digits(series)
    elif dtype.is_float():
        yield _float_key(series.cast(pl.Float64).fill_null(0.0).to_numpy())
    elif dtype == pl.Boolean:
        yield series.fill_null(False).to_numpy().astype(np.uint64)
    elif dtype.is_integer() or dtype.is_temporal():
        values = series.to_physical()
        if nulls:
            values = values.fill_null(0)
        if values.dtype == pl.UInt64:
            yield values.to_numpy().astype(np.uint64, copy=False)
        else:  # signed (or narrower unsigned): order-preserving flip of the sign bit
            yield values.cast(pl.Int64).to_numpy().view(np.uint64) ^ _SIGN
    else:
        raise TypeError(f"arg_sort_rows: cannot sort a {dtype} column ({series.name!r})")


def _float_key(values: np.ndarray) -> np.ndarray:
    """IEEE doubles as unsigned integers in the same order (polars': -0.0 equals 0.0,
    every NaN equal and above +inf)."""
    values = np.where(np.isnan(values), np.nan, values + 0.0)  # one NaN; -0.0 + 0.0 = 0.0
    bits = values.view(np.uint64)
    negative = (bits & _SIGN) != 0
    return np.where(negative, ~bits, bits | _SIGN)


def lexical_codes(series: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """A polars ``Categorical`` as codes into its distinct values sorted as text:
    ``(codes, values)``, ``codes`` int32 with -1 for a null. Its physical codes are
    renumbered through a table as long as its dictionary: no string per row, and no
    hashing either (two linear passes over the physical codes: the first row of each,
    then the table; polars' ``unique`` and numpy's gather took ~5 times as long)."""
    physical = series.to_physical().cast(pl.UInt32)  # (an Enum's may be 8 bits)
    top = physical.max()
    size = 0 if top is None else int(top) + 1  # (slot ``size``: the nulls)
    raw = (physical.fill_null(size) if physical.null_count() else physical).to_numpy()
    first = np.full(size + 1, -1, dtype=np.int64)
    _first_rows(raw, first)
    present = np.flatnonzero(first[:size] >= 0)
    names = series.gather(first[present]).cast(pl.String)
    order = names.arg_sort().to_numpy()
    table = np.full(size + 1, -1, dtype=np.int32)
    table[present[order]] = np.arange(len(order), dtype=np.int32)
    codes = np.empty(len(raw), dtype=np.int32)
    _renumber(raw, table, codes)
    return codes, names.gather(order)


@nb.njit(cache=True, nogil=True)
def _first_rows(raw, first):  # pragma: no cover - compiled
    """``first[c]``: the first row whose physical code is ``c`` (-1 where none)."""
    for i in range(len(raw)):
        if first[raw[i]] < 0:
            first[raw[i]] = i


@nb.njit(cache=True, nogil=True)
def _renumber(raw, table, out):  # pragma: no cover - compiled
    """``out[i] = table[raw[i]]``."""
    for i in range(len(raw)):
        out[i] = table[raw[i]]


def _text_digits(series: pl.Series) -> Iterator[np.ndarray]:
    """UTF-8 bytes 8 at a time (big-endian, zero-padded), then the length in bytes."""
    arrow = series.to_frame().to_arrow().column(0).combine_chunks()
    if arrow.null_count:
        arrow = arrow.fill_null("")  # (the null flag digit already orders them)
    arrow = arrow.cast(pa.large_string())
    buffers = arrow.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[arrow.offset:arrow.offset + len(arrow) + 1]
    data = (np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None
            else np.zeros(1, np.uint8))
    longest = int((offsets[1:] - offsets[:-1]).max(initial=0))
    for first in range(0, longest, 8):
        digit = np.empty(len(arrow), dtype=np.uint64)
        _text_digit(offsets, data, first, digit)
        yield digit
    yield np.diff(offsets).astype(np.uint64)


@nb.njit(cache=True, nogil=True)
def _text_digit(offsets, data, first, out):  # pragma: no cover - compiled
    """``out[i]``: bytes ``first..first+7`` of string ``i``, big-endian, zero-padded."""
    for i in range(len(out)):
        at, end = offsets[i] + first, offsets[i + 1]
        value = np.uint64(0)
        for j in range(8):
            value = value << np.uint64(8)
            if at + j < end:
                value = value | np.uint64(data[at + j])
        out[i] = value


def _pack(digits: Iterator[np.ndarray], n: int) -> list[np.ndarray]:
    """Digits packed greedily into as few uint64 words as their useful bits allow (the
    words' lexicographic order is the digits')."""
    words: list[np.ndarray] = []
    word: np.ndarray | None = None
    used = 0
    for digit in digits:
        if n == 0:
            continue
        low = digit.min()
        digit = digit - low
        common = int(np.bitwise_or.reduce(digit))
        if common == 0:
            continue  # one value throughout: orders nothing
        shift = (common & -common).bit_length() - 1  # low bits every value shares
        if shift:
            digit >>= np.uint64(shift)
        bits = int(digit.max()).bit_length()
        if word is None or used + bits > _WORD:
            if word is not None:
                words.append(word)
            word, used = digit, bits
        else:
            word = (word << np.uint64(bits)) | digit
            used += bits
    if word is not None:
        words.append(word)
    return words
