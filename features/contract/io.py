"""Reading and writing data folders in the contract layout (DESIGN section 3).

A data folder holds ``invoices.{csv,parquet}`` (required) and optionally ``payments``,
``accounts`` and ``disputes`` in either format. Files whose name starts with ``_`` (side
tables such as ``_targets.parquet``, ``_injected_errors.json``) and the ``_quarantine``
folder are never read as data. Readers return *raw* tables: CSV cells as strings exactly as
written (nothing turned into NaN), Parquet columns with their stored types. Typing and
checks are the job of :mod:`features.contract.validation`.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
import polars as pl
import pyarrow as pa

from features.contract.book import ALL_TABLES, STAGED_ONLY, Book
from features.contract.options import ReadInfo, ReadOptions, ReadOptionsMap, options_for
from features.contract.reader import read_csv
from features.contract.rules import DataContractError

_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}

Format = Literal["parquet", "csv"]
Engine = Literal["pandas", "polars"]
Frame = pd.DataFrame | pl.DataFrame


def _table_files(path: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for file in sorted(path.iterdir()):
        if file.name.startswith("_") or not file.is_file():
            continue
        for suffix in _SUFFIXES:
            stem = file.name[: -len(suffix)]
            if file.name.endswith(suffix) and stem in ALL_TABLES:
                found.setdefault(stem, []).append(file)
    return found


def read_table(
    file: str | Path, *, engine: Engine = "pandas", options: ReadOptions | None = None
) -> Frame:
    """Read one CSV (all cells as strings) or Parquet (stored types) table.

    CSV: delimiter and encoding as set in ``options`` or detected (see
    :func:`features.contract.reader.read_csv`); a malformed line is kept as a row flagged
    in the internal column ``__malformed`` (validation quarantines it). A zero-byte CSV
    gives a frame without columns (validation reports ``empty_file``). Raises
    :class:`DataContractError`: ``bad_encoding``, ``duplicate_column``, ``unreadable_file``.
    ``engine="polars"`` returns a polars frame with the same cells.
    """
    file = Path(file)
    if engine == "pandas" and file.name.endswith((".parquet", ".pq")):
        try:  # pandas' own reader: the stored pandas dtypes come back as written
            return pd.read_parquet(file)
        except (OSError, pa.ArrowException) as exc:
            detail = f"is not a readable Parquet file ({_short(exc)})"
            raise DataContractError(file.name, None, "unreadable_file", detail) from exc
    frame, _ = read_source(file, options)
    return frame if engine == "polars" else frame.to_pandas()


def read_source(
    file: str | Path, options: ReadOptions | None = None, *, codes: Sequence[str] = ()
) -> tuple[pl.DataFrame, ReadInfo]:
    """One table as a polars frame, plus what reading it found (delimiter, encoding...).

    ``codes``: columns that a Parquet file stores as text to read as polars
    ``Categorical`` (the same cells; validation's optional code columns,
    ``raw_checks.as_categories``), never one string per row (see :func:`_read_parquet`);
    a CSV is read as text whatever ``codes`` says."""
    file = Path(file)
    kind = next(k for s, k in _SUFFIXES.items() if file.name.endswith(s))
    if kind == "csv":
        return read_csv(file, options)
    try:
        return _read_parquet(file, codes), ReadInfo(file=file.name, kind="parquet")
    except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as exc:
        detail = f"is not a readable Parquet file ({_short(exc)})"
        raise DataContractError(file.name, None, "unreadable_file", detail) from exc


def _read_parquet(file: Path, codes: Sequence[str] = ()) -> pl.DataFrame:
    """A Parquet file as polars reads it, read column by column, each in one chunk.

    Why: read whole, every column comes in one chunk per row group, and validation joins
    them (``raw_checks.contiguous``) once the whole table is read; the freed chunks then
    stay in polars' allocator for seconds, so the table was held ~1.7 times (300k
    accounts' payments: 2.5 GB at the peak for a 0.7 GB table; issues 11 and 20). Column
    by column, each column's chunks are freed before the next column is read, whose chunks
    reuse them (1.5 GB). Same schema and values (a file whose schema polars refuses raises
    the same error).

    Why the join stays (measured at 300k accounts, session 15): it touches fresh pages for
    the joined column alone (a 15M-row numeric column 115 MiB, a text column's 16-byte
    views 229 MiB); the next column's chunks reuse the freed ones (0-22 MiB fresh), so
    reading into one buffer would save little. Keeping the chunks instead (the record
    number cut alike, the code columns sliced alike) was worse: later steps align a
    frame's columns all at once (parent rules, held out), validation's peak 3.3 -> 4.6 GB,
    page faults 1.6M -> 2.7M.

    ``codes`` (text columns only; others are read as stored): read as polars
    ``Categorical``, the type validation casts them to anyway
    (``raw_checks.as_categories``). Why: polars holds a text cell as a 16-byte view, so at
    1M accounts payments' ``account_id`` and ``method`` were 1.6 GB of views read only to
    be cast to 4-byte codes, at the read's peak (issue 20)."""
    schema = pl.read_parquet_schema(file)
    if not schema:
        return pl.read_parquet(file)
    coded = {n for n in codes if schema.get(n) == pl.String}
    return pl.DataFrame([_read_codes(file, name) if name in coded
                         else pl.read_parquet(file, columns=[name]).to_series().rechunk()
                         for name in schema])


def _read_codes(file: Path, name: str) -> pl.Series:
    """Text column ``name`` of ``file`` as a polars ``Categorical``, one chunk (see
    :func:`_read_parquet`): cast as it is read, so the column's strings are never all held
    (payments of 300k accounts: the read's peak 1.53 GB -> 1.11 GB)."""
    return pl.scan_parquet(file).select(pl.col(name).cast(pl.Categorical)).collect(
        ).to_series().rechunk()


def _short(exc: BaseException) -> str:
    """The first line of an exception's message (library messages run over many lines)."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def read_folder(
    path: str | Path, *, engine: Engine = "pandas", read_options: ReadOptionsMap | None = None
) -> dict[str, tuple[Path, Frame]]:
    """Raw tables of a data folder by contract name: ``{table: (file, frame)}``.

    Only tables present are returned (a missing invoices file is reported by validation).
    ``read_options``: per table (or ``"*"``), see :class:`ReadOptions`. Raises
    :class:`DataContractError`: ``missing_file`` if ``path`` is not a folder,
    ``ambiguous_file`` if a table exists in two formats, and the errors of
    :func:`read_table`.
    """
    return {
        t: (f, read_table(f, engine=engine, options=options_for(t, read_options)))
        for t, f in table_files(path).items()
    }


def table_files(path: str | Path) -> dict[str, Path]:
    """The file of each contract table present in data folder ``path`` (not read).

    Raises :class:`DataContractError`: ``missing_file`` if ``path`` is not a folder,
    ``ambiguous_file`` if a table exists in two formats.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataContractError(str(path), None, "missing_file", "is not a data folder")
    out: dict[str, Path] = {}
    for table, files in _table_files(path).items():
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise DataContractError(
                files[0].name, None, "ambiguous_file", f"table {table} is given twice ({names})"
            )
        out[table] = files[0]
    return out


def file_name(table: str, fmt: Format = "parquet") -> str:
    """File name of ``table``: contract tables by name, side tables prefixed with ``_``."""
    ext = "parquet" if fmt == "parquet" else "csv"
    return f"{table}.{ext}" if table in ALL_TABLES else f"_{table.lstrip('_')}.{ext}"


def write_tables(
    tables: Mapping[str, pd.DataFrame], out_dir: str | Path, *, fmt: Format = "parquet",
    parquet: Mapping[str, object] | None = None,
) -> dict[str, Path]:
    """Write tables to ``out_dir`` (created) and return ``{table: path}``.

    Contract tables are written as ``<table>.<fmt>``; any other key (e.g. ``targets``) as
    ``_<key>.<fmt>``, a side table never read as data. CSV dates are written ``YYYY-MM-DD``
    and missing values as empty cells, so a CSV round trip through validation is lossless.
    Parquet keeps the pandas metadata (the dtypes, codes included, come back as written);
    ``parquet``: options of ``pyarrow.parquet.write_table`` (default: pandas' own, snappy),
    e.g. :data:`STAGED_PARQUET`.
    """
    import pyarrow.parquet as pq

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table, frame in tables.items():
        target = out_dir / file_name(table, fmt)
        if fmt == "parquet":
            data = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(data, target, **{"compression": "snappy", **(parquet or {})})
            del data
        else:
            _csv_ready(frame).to_csv(target, index=False)
        written[table] = target
    return written


def write_book(book: Book, out_dir: str | Path, *, fmt: Format = "parquet") -> dict[str, Path]:
    """Write the tables of ``book`` as a data folder; returns ``{table: path}``."""
    return write_tables(book.tables(), out_dir, fmt=fmt)


#: Parquet settings of a staged book (``pipelines.steps_ingest.ingest``), the hand-off
#: between the nightly's steps, not an archive: written once, read whole (the features
#: read every row; the workbench sorts its own per-account index from it,
#: ``workbench.history``), so no column statistics (no reader prunes by them), one row
#: group per ~4M rows, and LZ4 (several times cheaper to write than snappy with
#: dictionaries, decoded as fast).
STAGED_PARQUET: dict[str, object] = {"compression": "lz4", "write_statistics": False,
                                     "row_group_size": 4 * 2**20}


def write_staged_book(book: Book | MutableMapping[str, pd.DataFrame],
                      out_dir: str | Path) -> dict[str, Path]:
    """Write ``book`` as Parquet for the later steps (:func:`write_tables` with
    :data:`STAGED_PARQUET`); it reads back (:func:`read_folder`) with the same dtypes as
    :func:`write_book`'s files.

    Tables are written one at a time, the tables holding :data:`STAGED_ONLY` columns
    first, each dropped from the mapping once written. ``book`` may be its tables
    (``Book.tables()``): that mapping is then emptied, so a writer holding the only other
    reference to them frees each table once written (the nightly's background write: at
    1M accounts the payment ids, ~0.85 GB, go after the first table instead of the last);
    a Book keeps its tables."""
    tables = book.tables() if isinstance(book, Book) else book
    written: dict[str, Path] = {}
    for table in sorted(tables, key=lambda t: t not in STAGED_ONLY):  # stable: else as given
        written |= write_tables({table: tables.pop(table)}, out_dir, parquet=STAGED_PARQUET)
    return written


def return_freed_memory() -> None:
    """Hand the heap pages freed by a finished table back to the OS.

    glibc's ``malloc`` and Arrow's pool keep freed pages for reuse, so without this a
    process's RSS holds on to the working frames of the last big table while the next one
    is built (validation of a 100k-account book: peak ~90 MB lower with it). Costs a walk
    of the heap (milliseconds); a no-op where there is no glibc."""
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ``YYYY-MM-DD`` strings (times are dropped: the contract holds dates)."""
    dates = {
        c: frame[c].dt.strftime("%Y-%m-%d")
        for c in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)
    }
    return frame.assign(**dates) if dates else frame

