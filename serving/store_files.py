"""The worklist store's files: a run's explanation file and Parquet exports (DESIGN section 8).

Explanations (SHAP vector and feature values of every scored account) are a Parquet file
per run beside the store (:func:`write_run_files`, on a thread while the worklist rows go
into the database, :mod:`serving.store`); a reader of a few accounts decodes only their
row groups (:func:`read_parquet_accounts`). The scorer's table is *wide* (one column per
feature value and one ``shap_<feature>`` column per SHAP value); the run's file holds it
in the layout of :data:`EXPLANATIONS_FORMAT` (named in the file's metadata) and every
reader gets the wide table back, whichever layout a run's file was written in (a store
keeps older runs' files). The Parquet export stays wide. Exports are staged under
temporary names and renamed by the store after its commit. Nothing here touches the
database.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: ``format`` of the explanation files this code writes (the ``explanations`` table's
#: ``format`` column and the file's :data:`FORMAT_KEY` metadata): the columns that are not
#: numeric feature values or SHAP values as they are, and two list columns per row,
#: ``feature_values`` and ``shap_values`` (float64, one item per feature of
#: :data:`LISTS_KEY`'s lists). Reading one account decodes ~8 column chunks of one small row
#: group instead of ~125 of a bigger one: 13 -> 2 ms of CPU at 100k accounts x 60 features
#: (README, "Workbench"); the file's size and the write's CPU are about the wide file's.
EXPLANATIONS_FORMAT: Final = "parquet-lists-v2"
#: The layout of files written before :data:`FORMAT_KEY` existed (no key): one column per
#: feature value and per SHAP value, as the scorer's table.
WIDE_FORMAT: Final = "parquet-wide-v1"
#: File metadata: the layout's name (``EXPLANATIONS_FORMAT``).
FORMAT_KEY: Final = b"delinq.explanations_format"
#: File metadata of a lists file: JSON ``{"values": [feature, ...], "shap": [feature, ...]}``
#: (the features in each list column's item order).
LISTS_KEY: Final = b"delinq.explanations_lists"
#: File metadata of a lists file: the wide table's Arrow schema (IPC bytes, base64), so a
#: reader rebuilds its columns in order, with their types and metadata.
WIDE_SCHEMA_KEY: Final = b"delinq.explanations_wide_schema"
VALUES_COLUMN, SHAP_COLUMN = "feature_values", "shap_values"
SHAP_PREFIX: Final = "shap_"  # serving.score.SHAP_PREFIX (score imports this module's layer)

# zstd without dictionary encoding of number columns: dictionary attempts on 120 float
# columns were half the CPU of the write and made the file larger (bench/store.py).
# Row groups of 16k rows: reading a few accounts decodes only their groups.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 16_384}


#: Row groups of a run's explanation file: the account page reads one account's SHAP vector,
#: so it decodes one group. Wide layout, 100k accounts x 60 features (loaded 2-core
#: machine): a 16,384-row group decoded in 76 ms, a 2,048-row one in 14 ms. Lists layout:
#: 2,048 rows 6.3 ms, 512 rows 2.1 ms, for a file of the same size (a group has ~8 column
#: chunks, not ~125, so small groups keep the footer small).
EXPLANATION_ROWS_PER_GROUP = 512
#: Rows turned into the lists layout at a time (memory holds one batch's lists).
_LISTS_BATCH_ROWS: Final = 65_536


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with dictionary encoding only for repetitive text (not ids, not numbers)."""
    _write(table, path, PARQUET_OPTIONS["row_group_size"])


def write_explanations_parquet(table: pa.Table, path: Path) -> None:
    """A run's explanation file from the scorer's wide ``table``: the
    :data:`EXPLANATIONS_FORMAT` layout in :data:`EXPLANATION_ROWS_PER_GROUP`-row groups,
    written a batch of rows at a time; :func:`read_parquet_accounts` gives ``table`` back."""
    layout = _Lists.of(table.schema)
    narrow = layout.schema(table.schema)
    with pq.ParquetWriter(path, narrow, use_dictionary=_repetitive(narrow),
                          compression=PARQUET_OPTIONS["compression"]) as writer:
        for start in range(0, max(table.num_rows, 1), _LISTS_BATCH_ROWS):
            batch = table.slice(start, _LISTS_BATCH_ROWS)
            writer.write_table(layout.narrow(batch, narrow),
                               row_group_size=EXPLANATION_ROWS_PER_GROUP)


def _repetitive(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: text other than ids (not numbers: dictionary
    attempts on float columns cost CPU and size, see :data:`PARQUET_OPTIONS`)."""
    return [f.name for f in schema if f.name != "account_id"
            and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                 or pa.types.is_dictionary(f.type))]


def _write(table: pa.Table, path: Path, row_group_size: int) -> None:
    options = {**PARQUET_OPTIONS, "row_group_size": row_group_size}
    pq.write_table(table, path, use_dictionary=_repetitive(table.schema), **options)


def _listable(t: pa.DataType) -> bool:
    """A feature value type that float64 holds exactly (as the scorer's features are: bool,
    integer counts and days, floats); other values (text, dates) keep their own column."""
    return (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
            or pa.types.is_null(t))


@dataclass(frozen=True)
class _Lists:
    """The lists layout of one wide schema: which features go in each list column."""

    values: tuple[str, ...]  # feature value columns in ``feature_values``, item order
    shap: tuple[str, ...]  # features whose ``shap_<feature>`` is in ``shap_values``
    wide: pa.Schema

    @classmethod
    def of(cls, wide: pa.Schema) -> _Lists:
        names = set(wide.names)
        shap = tuple(n[len(SHAP_PREFIX):] for n in wide.names if n.startswith(SHAP_PREFIX)
                     and _listable(wide.field(n).type))
        values = tuple(f for f in shap if f in names and _listable(wide.field(f).type))
        return cls(values=values, shap=shap, wide=wide)

    @classmethod
    def from_metadata(cls, meta: dict[bytes, bytes]) -> _Lists:
        lists = json.loads(meta[LISTS_KEY])
        wide = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta[WIDE_SCHEMA_KEY])))
        return cls(values=tuple(lists["values"]), shap=tuple(lists["shap"]), wide=wide)

    def _lists(self) -> list[tuple[str, tuple[str, ...]]]:
        """The list columns with at least one item (a run ranked by the rule has no SHAP
        value: Arrow has no fixed-size list of size 0, so the file has no such column)."""
        return [(name, items) for name, items in ((VALUES_COLUMN, self.values),
                                                  (SHAP_COLUMN, self.shap)) if items]

    def _listed(self) -> set[str]:
        return {*self.values, *(SHAP_PREFIX + f for f in self.shap)}

    def schema(self, wide: pa.Schema) -> pa.Schema:
        """The file's schema: the other columns, the two list columns, and the metadata
        that names the layout and keeps the wide schema (the wide table's own keys, e.g.
        run id and as_of, stay on the file as well)."""
        listed = self._listed()
        fields = [f for f in wide if f.name not in listed]
        fields += [pa.field(name, pa.list_(pa.float64(), len(items)))
                   for name, items in self._lists()]
        # The wide table's pandas metadata describes columns this file does not have: it
        # stays in the wide schema only (a reader of the file alone sees plain columns).
        own = {k: v for k, v in (wide.metadata or {}).items() if k != b"pandas"}
        meta = {**own, FORMAT_KEY: EXPLANATIONS_FORMAT.encode(),
                LISTS_KEY: json.dumps({"values": self.values, "shap": self.shap}).encode(),
                WIDE_SCHEMA_KEY: base64.b64encode(wide.serialize().to_pybytes())}
        return pa.schema(fields, metadata=meta)

    def narrow(self, wide: pa.Table, schema: pa.Schema) -> pa.Table:
        """Rows of the wide table in the lists layout ``schema`` (nulls stay nulls, NaNs
        stay NaNs: items are Arrow values, not numpy's)."""
        n = wide.num_rows
        arrays = [wide.column(f.name) for f in schema
                  if f.name not in (VALUES_COLUMN, SHAP_COLUMN)]
        if self.values:
            arrays.append(_to_list([wide.column(c) for c in self.values], n))
        if self.shap:
            arrays.append(_to_list([wide.column(SHAP_PREFIX + f) for f in self.shap], n))
        return pa.Table.from_arrays(arrays, schema=schema)

    @functools.cached_property
    def _plan(self) -> list[tuple[str, int, pa.DataType | None]]:
        """Per wide column: (the file's column, item index in it or -1, the type to cast
        the float64 items back to or None)."""
        items = {**{f: (VALUES_COLUMN, j) for j, f in enumerate(self.values)},
                 **{SHAP_PREFIX + f: (SHAP_COLUMN, j) for j, f in enumerate(self.shap)}}
        plan = []
        for field in self.wide:
            source, j = items.get(field.name, (field.name, -1))
            cast = None if j < 0 or field.type == pa.float64() else field.type
            plan.append((source, j, cast))
        return plan

    def row(self, narrow: dict[str, Any]) -> dict[str, Any]:
        """One stored row (``to_pylist``'s dict) as the wide table's ``to_pylist`` row."""
        out = {}
        for (source, j, cast), field in zip(self._plan, self.wide, strict=True):
            if j < 0:
                out[field.name] = narrow[source]
                continue
            items = narrow[source]
            value = None if items is None else items[j]
            out[field.name] = value if cast is None or value is None else _plain(value, cast)
        return out

    def widen(self, narrow: pa.Table) -> pa.Table:
        """The wide table of rows read in the lists layout (columns, types and metadata as
        the scorer's table)."""
        n = narrow.num_rows
        lists = {name: _from_list(narrow.column(name), len(items), n)
                 for name, items in self._lists()}
        arrays = []
        for (source, j, cast), field in zip(self._plan, self.wide, strict=True):
            if j >= 0:
                arrays.append(lists[source][j] if cast is None else lists[source][j].cast(cast))
                continue
            own = narrow.column(source)
            arrays.append(own if own.type == field.type else own.cast(field.type))
        return pa.Table.from_arrays(arrays, schema=self.wide)


def _plain(value: float, t: pa.DataType) -> Any:
    """A float64 list item as the Python value of its wide column's type ``t`` (a
    :func:`_listable` type other than float64)."""
    if pa.types.is_integer(t):
        return int(value)
    if pa.types.is_boolean(t):
        return bool(value)
    return value  # float32 or float16: the float64 item is that value exactly


def _to_list(columns: list[pa.ChunkedArray], n: int) -> pa.Array:
    """``columns`` (n rows each) as one fixed-size list per row (float64 items)."""
    k = len(columns)
    if k == 0:
        return pa.FixedSizeListArray.from_arrays(pa.array([], pa.float64()), 0).take(
            pa.array(np.zeros(n, dtype=np.int64)))
    flat = pa.concat_arrays([c.combine_chunks().cast(pa.float64()) for c in columns])
    # Column-major -> row-major: item j of row i is flat[j * n + i].
    order = (np.arange(k, dtype=np.int64)[None, :] * n
             + np.arange(n, dtype=np.int64)[:, None]).ravel()
    return pa.FixedSizeListArray.from_arrays(flat.take(pa.array(order)), k)


def _from_list(column: pa.ChunkedArray, k: int, n: int) -> list[pa.Array]:
    """The ``k`` float64 columns of a fixed-size list column of ``n`` rows."""
    if k == 0:
        return []
    items = column.combine_chunks().flatten()  # n * k items, row-major
    if items.null_count == 0:
        # Column j is row j of the transposed grid (contiguous: no copy per column).
        grid = np.ascontiguousarray(items.to_numpy(zero_copy_only=False).reshape(n, k).T)
        return [pa.array(column) for column in grid]
    rows = np.arange(n, dtype=np.int64) * k
    return [items.take(pa.array(rows + j)) for j in range(k)]


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
        table = pq.read_table(path)
        lists = _layout(table.schema.metadata or {})
        return table if lists is None else lists.widen(table)
    part, lists = _stored_rows(path, account_ids)
    return part if lists is None else lists.widen(part)


def read_explanation_rows(path: Path, account_ids: list[str]) -> list[dict[str, Any]]:
    """``read_parquet_accounts(path, account_ids).to_pylist()`` (file order; plain Python
    values keyed by the wide table's columns, NaN and None as stored) without building
    the wide table: the account page reads one row, and ~120 one-value columns cost more
    to build than to read."""
    part, lists = _stored_rows(path, account_ids)
    rows = part.to_pylist()
    return rows if lists is None else [lists.row(r) for r in rows]


def _stored_rows(path: Path, account_ids: list[str]) -> tuple[pa.Table, _Lists | None]:
    """The file's rows of ``account_ids`` as stored (decoding only their row groups) and
    the file's lists layout (None: a wide file)."""
    wanted = sorted({str(a) for a in account_ids})
    ids, positions, bounds, meta, lists = locate(path)
    rows = [int(positions[i]) for a in wanted for i in _positions(ids, a)]
    groups = sorted(set(np.searchsorted(bounds, rows, side="right") - 1))
    with pq.ParquetFile(path, metadata=meta, memory_map=True) as f:
        if not groups:
            return f.schema_arrow.empty_table(), lists
        # One thread: a few small groups; decode threads cost more CPU than they save.
        part = f.read_row_groups(groups, use_threads=False)
    keep = pc.is_in(part.column("account_id"), value_set=pa.array(wanted, pa.string()))
    return part.filter(keep), lists


def _layout(meta: dict[bytes, bytes]) -> _Lists | None:
    """The lists layout of a file with this schema metadata; None for a wide file (written
    before :data:`FORMAT_KEY`, or the wide layout by name). Unknown layouts raise."""
    name = meta.get(FORMAT_KEY, WIDE_FORMAT.encode()).decode()
    if name == WIDE_FORMAT:
        return None
    if name != EXPLANATIONS_FORMAT:
        raise ValueError(f"explanation file layout {name!r} is not known to this code "
                         f"(it reads {WIDE_FORMAT!r} and {EXPLANATIONS_FORMAT!r})")
    return _Lists.from_metadata(meta)


#: Held while :func:`locate` looks up or builds a locator: the server's first requests for
#: a new run's file arrive together (8 clients: each of a process's threads built the
#: same 1M-account locator at once, ~1 s of CPU each, and every request of the process
#: waited 3-5 s); they now wait for one build.
_LOCATING = threading.Lock()


def locate(path: Path) -> tuple[pa.Array, np.ndarray, np.ndarray, pq.FileMetaData,
                                _Lists | None]:
    """:func:`_locator` of the file at ``path`` as it is now (built once per file
    version and process, by one thread at a time). The workbench calls it when a server
    process starts, so that the first account page of the current run does not wait for
    it."""
    st = Path(path).stat()
    with _LOCATING:
        return _locator(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _locator(path: str, size: int, mtime_ns: int
             ) -> tuple[pa.Array, np.ndarray, np.ndarray, pq.FileMetaData, _Lists | None]:
    """``(ids sorted, their row numbers, row-group start rows, footer, lists layout or
    None)`` of a Parquet file with an ``account_id`` column; keyed by size and
    modification time, so a rewritten file is read again. About 20 bytes per account (20
    MB for a 1M-account run), and the parsed footer."""
    with pq.ParquetFile(path) as f:
        ids = f.read(columns=["account_id"]).column("account_id").combine_chunks()
        bounds = np.cumsum([0] + [f.metadata.row_group(i).num_rows
                                  for i in range(f.num_row_groups)])
        meta = f.metadata
        lists = _layout(f.schema_arrow.metadata or {})
    order = pc.sort_indices(ids)
    return ids.take(order), order.to_numpy(), bounds, meta, lists


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
    """Column names of a Parquet file (from its footer only); of an explanation file, the
    wide table's (whatever its layout)."""
    schema = pq.read_schema(path)
    lists = _layout(schema.metadata or {})
    return schema.names if lists is None else lists.wide.names


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
    tagged = ex.replace_schema_metadata({**(ex.schema.metadata or {}), **meta})
    if ex.num_columns:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "explanations.parquet"
        tmp = run_dir / ".explanations.parquet.tmp"
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
            # The export stays the scorer's wide table (what its readers know); the run's
            # file is laid out for the account page's reads of one row.
            tmp = out / f".{tag}.explanations.parquet"
            staged.append(tmp)
            write_parquet(tagged, tmp)
    return path, size
