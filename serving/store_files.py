"""The worklist store's files: a run's explanation file and Parquet exports (DESIGN section 8).

Explanations (SHAP vector and feature values of every scored account) are a wide Parquet
file per run beside the store (:func:`write_run_files`, on a thread while the worklist rows
go into the database, :mod:`serving.store`); a reader of a few accounts decodes only their
row groups (:func:`read_parquet_accounts`). Exports are staged under temporary names and
renamed by the store after its commit. Nothing here touches the database.
"""

from __future__ import annotations

import functools
import os
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: ``format`` of a run's explanation file in the ``explanations`` table.
EXPLANATIONS_FORMAT = "parquet-wide-v1"

# zstd without dictionary encoding of number columns: dictionary attempts on 120 float
# columns were half the CPU of the write and made the file larger (bench/store.py).
# Row groups of 16k rows: reading a few accounts decodes only their groups.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 16_384}


#: Row groups of a run's explanation file: the account page reads one account's SHAP vector,
#: so it decodes one group of ~120 columns. Measured on 100k accounts x 60 features (loaded
#: 2-core machine): a 16,384-row group decoded in 76 ms, a 2,048-row one in 14 ms, for a
#: file 3% larger and a write 20% slower.
EXPLANATION_ROWS_PER_GROUP = 2_048


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with dictionary encoding only for repetitive text (not ids, not numbers)."""
    _write(table, path, PARQUET_OPTIONS["row_group_size"])


def write_explanations_parquet(table: pa.Table, path: Path) -> None:
    """A run's explanation file: :func:`write_parquet` with
    :data:`EXPLANATION_ROWS_PER_GROUP`-row groups."""
    _write(table, path, EXPLANATION_ROWS_PER_GROUP)


def _write(table: pa.Table, path: Path, row_group_size: int) -> None:
    repetitive = [
        f.name for f in table.schema
        if f.name != "account_id"
        and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
             or pa.types.is_dictionary(f.type))
    ]
    options = {**PARQUET_OPTIONS, "row_group_size": row_group_size}
    pq.write_table(table, path, use_dictionary=repetitive, **options)


def read_parquet_accounts(path: Path, account_ids: list[str] | None) -> pa.Table:
    """The whole file, or only the rows of ``account_ids`` (reading just their row groups).

    Which row groups hold which accounts comes from :func:`_locator`: the file's
    ``account_id`` column is read once per file (and kept for a few files), so looking up
    one account of a 1M-account run decodes one row group instead of 1M ids each time;
    the file's footer is parsed then too and kept (a 1M-account explanation file has ~500
    row groups of ~120 column chunks each: parsing that footer on every lookup cost more
    than decoding the one row group).
    """
    if account_ids is None:
        return pq.read_table(path)
    wanted = sorted({str(a) for a in account_ids})
    st = Path(path).stat()
    ids, positions, bounds, meta = _locator(str(path), st.st_size, st.st_mtime_ns)
    rows = [int(positions[i]) for a in wanted for i in _positions(ids, a)]
    groups = sorted(set(np.searchsorted(bounds, rows, side="right") - 1))
    with pq.ParquetFile(path, metadata=meta) as f:
        if not groups:
            return f.schema_arrow.empty_table()
        part = f.read_row_groups(groups)
    keep = pc.is_in(part.column("account_id"), value_set=pa.array(wanted, pa.string()))
    return part.filter(keep)


@functools.lru_cache(maxsize=4)
def _locator(path: str, size: int, mtime_ns: int
             ) -> tuple[pa.Array, np.ndarray, np.ndarray, pq.FileMetaData]:
    """``(ids sorted, their row numbers, row-group start rows, footer)`` of a Parquet file
    with an ``account_id`` column; keyed by size and modification time, so a rewritten
    file is read again. About 20 bytes per account (20 MB for a 1M-account run), and the
    parsed footer."""
    with pq.ParquetFile(path) as f:
        ids = f.read(columns=["account_id"]).column("account_id").combine_chunks()
        bounds = np.cumsum([0] + [f.metadata.row_group(i).num_rows
                                  for i in range(f.num_row_groups)])
        meta = f.metadata
    order = pc.sort_indices(ids)
    return ids.take(order), order.to_numpy(), bounds, meta


def _positions(ids: pa.Array, account_id: str) -> range:
    """Indices of ``account_id`` in the sorted ``ids`` (binary search; empty if absent)."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if ids[mid].as_py() < account_id:
            lo = mid + 1
        else:
            hi = mid
    end = lo
    while end < len(ids) and ids[end].as_py() == account_id:
        end += 1
    return range(lo, end)


def parquet_columns(path: Path) -> list[str]:
    """Column names of a Parquet file (from its footer only)."""
    return pq.read_schema(path).names


def write_run_files(
    run_dir: Path, export_dir: Path | None, run_id: str, as_of: date, wl: pa.Table,
    ex: pa.Table, staged: list[Path]
) -> tuple[Path | None, int]:
    """Write run ``run_id``'s explanation file ``ex`` in ``run_dir`` (under a temporary
    name, renamed when whole) and, with an ``export_dir``, stage its exports under
    ``<export_dir>/<as_of>/`` (temporary names, appended to ``staged``: the store renames
    them after its commit). Returns the explanation file's path (None without
    explanation columns) and size in bytes."""
    path: Path | None = None
    size = 0
    meta = {b"delinq.run_id": run_id.encode(), b"delinq.as_of": as_of.isoformat().encode()}
    if ex.num_columns:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "explanations.parquet"
        tmp = run_dir / ".explanations.parquet.tmp"
        tagged = ex.replace_schema_metadata({**(ex.schema.metadata or {}), **meta})
        write_explanations_parquet(tagged, tmp)
        os.replace(tmp, path)
        size = path.stat().st_size
    if export_dir is not None:
        out = export_dir / as_of.isoformat()
        out.mkdir(parents=True, exist_ok=True)
        # Staged under the run's id, so a reaper finds the files of a dead run.
        tag = run_id
        tmp = out / f".{tag}.worklist.parquet"
        staged.append(tmp)
        table = wl.add_column(0, "run_id", pa.repeat(pa.scalar(run_id), wl.num_rows))
        write_parquet(table.replace_schema_metadata(meta), tmp)
        if path is not None:
            tmp = out / f".{tag}.explanations.parquet"
            staged.append(tmp)
            try:
                os.link(path, tmp)  # same bytes, no second encode
            except OSError:
                shutil.copyfile(path, tmp)
    return path, size
