"""Reading and writing data folders in the contract layout (DESIGN section 3).

A data folder holds ``invoices.{csv,parquet}`` (required) and optionally ``payments``,
``accounts`` and ``disputes`` in either format. Files whose name starts with ``_`` (side
tables such as ``_targets.parquet``, ``_injected_errors.json``) and the ``_quarantine``
folder are never read as data. Readers return *raw* tables: CSV cells as strings exactly as
written (nothing turned into NaN), Parquet columns with their stored types. Typing and
checks are the job of :mod:`features.contract.validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd
import polars as pl
import pyarrow as pa

from features.contract.book import TABLES, Book
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
            if file.name.endswith(suffix) and stem in TABLES:
                found.setdefault(stem, []).append(file)
    return found


def read_table(file: str | Path, *, engine: Engine = "pandas") -> Frame:
    """Read one CSV (all cells as strings, UTF-8) or Parquet (stored types) table.

    A zero-byte CSV gives a frame without columns (validation reports ``empty_file``).
    Raises :class:`DataContractError` ``bad_encoding`` for a CSV that is not UTF-8.
    ``engine="polars"`` returns a polars frame with the same cells (validation uses it:
    several times faster on large folders, no pandas copy of the raw strings).
    """
    file = Path(file)
    kind = next(k for s, k in _SUFFIXES.items() if file.name.endswith(s))
    if engine == "polars":
        return _read_polars(file, kind)
    if kind == "parquet":
        try:
            return pd.read_parquet(file)
        except (OSError, pa.ArrowException) as exc:
            detail = f"is unreadable ({exc})"
            raise DataContractError(file.name, None, "empty_file", detail) from exc
    try:
        # C engine: every cell as str, empty cells stay "" (keep_default_na=False), a BOM is
        # dropped (utf-8-sig); it decodes strictly, so non-UTF-8 bytes raise.
        return pd.read_csv(
            file, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig"
        )
    except UnicodeDecodeError as exc:
        detail = f"is not valid UTF-8 (byte {exc.start}: {exc.reason}); re-save it as UTF-8"
        raise DataContractError(file.name, None, "bad_encoding", detail) from exc
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _read_polars(file: Path, kind: str) -> pl.DataFrame:
    try:
        if kind == "parquet":
            return pl.read_parquet(file)
        # Strings only, empty cells stay "" (never null), like the pandas reader.
        return pl.read_csv(file, infer_schema=False, empty_string_is_null=False)
    except pl.exceptions.NoDataError:
        return pl.DataFrame()
    except pl.exceptions.ComputeError as exc:
        if kind == "csv" and "utf-8" in str(exc).lower():
            detail = "is not valid UTF-8; re-save it as UTF-8"
            raise DataContractError(file.name, None, "bad_encoding", detail) from exc
        raise DataContractError(file.name, None, "empty_file", f"is unreadable ({exc})") from exc
    except (OSError, pa.ArrowException) as exc:
        raise DataContractError(file.name, None, "empty_file", f"is unreadable ({exc})") from exc


def read_folder(
    path: str | Path, *, engine: Engine = "pandas"
) -> dict[str, tuple[Path, Frame]]:
    """Raw tables of a data folder by contract name: ``{table: (file, frame)}``.

    Only tables present are returned (a missing invoices file is reported by validation).
    Raises :class:`DataContractError`: ``missing_file`` if ``path`` is not a folder,
    ``ambiguous_file`` if a table exists in two formats, ``bad_encoding`` for non-UTF-8 CSV.
    """
    return {t: (f, read_table(f, engine=engine)) for t, f in table_files(path).items()}


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
    return f"{table}.{ext}" if table in TABLES else f"_{table.lstrip('_')}.{ext}"


def write_tables(
    tables: Mapping[str, pd.DataFrame], out_dir: str | Path, *, fmt: Format = "parquet"
) -> dict[str, Path]:
    """Write tables to ``out_dir`` (created) and return ``{table: path}``.

    Contract tables are written as ``<table>.<fmt>``; any other key (e.g. ``targets``) as
    ``_<key>.<fmt>``, a side table never read as data. CSV dates are written ``YYYY-MM-DD``
    and missing values as empty cells, so a CSV round trip through validation is lossless.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table, frame in tables.items():
        target = out_dir / file_name(table, fmt)
        if fmt == "parquet":
            frame.to_parquet(target, index=False)
        else:
            _csv_ready(frame).to_csv(target, index=False)
        written[table] = target
    return written


def write_book(book: Book, out_dir: str | Path, *, fmt: Format = "parquet") -> dict[str, Path]:
    """Write the four tables of ``book`` as a data folder; returns ``{table: path}``."""
    return write_tables(book.tables(), out_dir, fmt=fmt)


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ``YYYY-MM-DD`` strings (times are dropped: the contract holds dates)."""
    dates = {
        c: frame[c].dt.strftime("%Y-%m-%d")
        for c in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)
    }
    return frame.assign(**dates) if dates else frame

