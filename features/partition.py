"""Account partitions of a validated book (issue 20): the split that lets the nightly's
per-account work (features, scoring, explanations) run on several processes or machines.

Every feature and score is a function of one account's history, so a book splits by
account without changing any account's result: an account goes to partition
``crc32(account_id) mod P`` (:func:`partition_of`; zlib's crc32 of the UTF-8 id, stable
across processes, machines and Python versions, unlike ``hash()``), every payment follows
its invoice's account (which validation wrote as the payment's ``account_id``), every
dispute its invoice's partition, and the collections loop's promises and contacts (issue
17) their account. Each distinct account is hashed once, not each row (50M invoices name
1M accounts).

Only a *validated* book is split (the staged book of ``pipelines.steps.ingest``): the
book-wide rules (duplicate ids, payments of unknown invoices, the bad-row share,
plausibility) need the whole book and ran before. :func:`write_partitions` streams the
staged Parquet tables in record batches and writes each partition as a data folder
(``part-00000/invoices.parquet``, ...) under a work location: a local path or an fsspec
URL every worker can reach. Each partition folder is written under a temporary name and
renamed into place, so a re-run (after a worker died) gives the same files and a reader
never sees half a partition. No clock, no Prefect.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.contract.book import ALL_TABLES, Book
from features.contract.io import STAGED_PARQUET

#: Rows per record batch read from the staged tables (bounds the split's memory).
BATCH_ROWS = 1_000_000


def partition_of(account_ids: Iterable[Any] | pa.Array | pa.ChunkedArray,
                 partitions: int) -> np.ndarray:
    """The partition (0 .. ``partitions`` - 1, int32) of each account id:
    ``zlib.crc32(UTF-8 id) mod partitions``. Ids are compared as text, as everywhere in
    the data contract. An Arrow array (a Parquet batch's column, dictionary-encoded or
    not) is hashed once per *distinct* id and the result taken by row
    (:func:`_arrow_partitions`): 1M accounts' 50M invoices hash 1M strings, not 50M."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if isinstance(account_ids, pa.Array | pa.ChunkedArray):
        return _arrow_partitions(account_ids, partitions)
    ids = [str(a) for a in account_ids]
    if partitions == 1:
        return np.zeros(len(ids), dtype=np.int32)
    return _crc32_mod(ids, partitions)


def _crc32_mod(ids: Iterable[str], partitions: int) -> np.ndarray:
    """``crc32(UTF-8 id) mod partitions`` of each string (int32), one call per string."""
    return np.fromiter((zlib.crc32(a.encode("utf-8")) % partitions for a in ids),
                       dtype=np.int32)


class _DictionaryMemo:
    """The partitions of the last dictionary seen: the batches of one Parquet column
    carry the same dictionary (a staged book's account codes: every invoiced account), so
    it is hashed once per column, not once per batch (an equality check is a memcmp)."""

    def __init__(self) -> None:
        self.dictionary: pa.Array | None = None
        self.parts = np.zeros(0, dtype=np.int32)

    def of(self, dictionary: pa.Array, partitions: int) -> np.ndarray:
        if self.dictionary is None or not self.dictionary.equals(dictionary):
            self.dictionary = dictionary
            self.parts = _crc32_mod(dictionary.to_pylist(), partitions)
        return self.parts


def _arrow_partitions(ids: pa.Array | pa.ChunkedArray, partitions: int,
                      memo: _DictionaryMemo | None = None) -> np.ndarray:
    """:func:`partition_of` of an Arrow column: its distinct ids hashed (the dictionary
    of a dictionary column, or the batch's distinct values), then taken by row. A missing
    id is refused (a validated book has none)."""
    if isinstance(ids, pa.ChunkedArray):
        memo = memo or _DictionaryMemo()
        return (np.concatenate([_arrow_partitions(c, partitions, memo) for c in ids.chunks])
                if ids.num_chunks else np.zeros(0, dtype=np.int32))
    if ids.null_count:
        raise ValueError("an account id is missing: only a validated book is partitioned")
    if partitions == 1:
        return np.zeros(len(ids), dtype=np.int32)
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids)
        parts = _crc32_mod(ids.dictionary.cast(pa.large_string()).to_pylist(), partitions)
    else:
        parts = (memo or _DictionaryMemo()).of(ids.dictionary.cast(pa.large_string()), partitions)
    return parts[ids.indices.to_numpy(zero_copy_only=False)]


def partition_name(index: int) -> str:
    """Folder name of partition ``index`` under the work location (``part-00003``)."""
    return f"part-{index:05d}"


def fs_path(location: str | Path) -> tuple[Any, str]:
    """(fsspec filesystem, path) of a local path or an fsspec URL."""
    from fsspec.core import url_to_fs

    return url_to_fs(str(location))


def join(location: str | Path, *names: str) -> str:
    """``location`` / ``names`` for a local path or an fsspec URL (``memory://w/part-0``)."""
    return "/".join([str(location).rstrip("/"), *names])


def _batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    fs, p = fs_path(path)
    with fs.open(p, "rb") as fh:
        yield from pq.ParquetFile(fh).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def _table_path(book_dir: str | Path, table: str) -> str | None:
    fs, _ = fs_path(book_dir)
    path = join(book_dir, f"{table}.parquet")
    return path if fs.exists(fs_path(path)[1]) else None


def write_partitions(book_dir: str | Path, work: str | Path, *,
                     partitions: int) -> list[str]:
    """Split the validated book staged at ``book_dir`` (Parquet, one file per table) into
    ``partitions`` data folders under ``work`` (a path or an fsspec URL); returns their
    locations, partition 0 first.

    Invoices, payments, accounts, promises and contacts go by their ``account_id``'s
    partition (:func:`partition_of`; a payment's account is its invoice's: validation
    writes it so, ``features.contract.book``), disputes by their invoice's (found among
    the invoices while those are split: disputes are few, so only their invoices' ids are
    kept). A missing account or a dispute of an invoice not in the book cannot be there
    (validation quarantined it): refused. Every table is written in every partition,
    empty when it has no rows there, with the staged file's schema, so each partition
    reads as a book. Each folder appears whole (temporary name, then rename), replacing
    what a previous run left: a re-run gives the same files."""
    fs, root = fs_path(work)
    fs.makedirs(root, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = [join(work, f".{partition_name(i)}.tmp-{token}") for i in range(partitions)]
    for folder in tmp:
        fs.makedirs(fs_path(folder)[1], exist_ok=True)
    disputed = _disputed_invoices(book_dir)
    # the disputed invoices' (ids, partitions), gathered while the invoices are split
    candidates: list[tuple[pa.Array, np.ndarray]] = []
    found = (pa.array([], type=pa.large_string()), np.zeros(0, np.int32))
    try:
        for table in ALL_TABLES:  # invoices first: the disputes' partitions come from them
            source = _table_path(book_dir, table)
            if source is None:
                continue
            schema = pq.read_schema(fs_path(source)[1], filesystem=fs)
            # Dictionary pages for the code columns only: the unique ids (invoice_id,
            # payment_id) would each fill a dictionary page before falling back to plain.
            codes = [f.name for f in schema if pa.types.is_dictionary(f.type)]
            writers = [pq.ParquetWriter(fs_path(join(t, f"{table}.parquet"))[1], schema,
                                        filesystem=fs, use_dictionary=codes, **_WRITE)
                       for t in tmp]
            memo = _DictionaryMemo()
            try:
                for batch in _batches(source):
                    if table == "disputes":
                        part = _follow_invoices(batch.column("invoice_id"), *found)
                    else:
                        part = _arrow_partitions(batch.column("account_id"), partitions, memo)
                    if table == "invoices" and len(disputed):
                        rows = _maybe_in(batch.column("invoice_id"), disputed)
                        candidates.append((batch.column("invoice_id").take(pa.array(rows))
                                           .cast(pa.large_string()), part[rows]))
                    _write_split(batch, part, writers)
            finally:
                for writer in writers:
                    writer.close()
            if table == "invoices":
                found = (pa.chunked_array([c[0] for c in candidates],
                                          type=pa.large_string()).combine_chunks(),
                         np.concatenate([c[1] for c in candidates] or [np.zeros(0, np.int32)]))
                candidates = []
        done = []
        for i, folder in enumerate(tmp):
            target = join(work, partition_name(i))
            _replace(fs, fs_path(folder)[1], fs_path(target)[1])
            done.append(target)
        return done
    finally:
        for folder in tmp:
            if fs.exists(fs_path(folder)[1]):
                fs.rm(fs_path(folder)[1], recursive=True)


#: Parquet settings of the partition files: a staged book's (read whole once, by the
#: partition's scorer), less its row-group size (each batch's slice is a row group).
_WRITE: dict[str, Any] = {k: v for k, v in STAGED_PARQUET.items() if k != "row_group_size"}


def _disputed_invoices(book_dir: str | Path) -> np.ndarray:
    """The sorted 64-bit hashes (:func:`_hashes`) of the invoice ids the staged disputes
    name."""
    source = _table_path(book_dir, "disputes")
    if source is None:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate(
        [_hashes(b.column(0)) for b in _batches(source, ["invoice_id"])]
        or [np.zeros(0, dtype=np.uint64)]))


def _hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit hash of each id (Polars' vectorised string hash): equal ids, equal hashes
    within this process (not stable across versions: never stored)."""
    return pl.Series(ids.cast(pa.large_string())).hash().to_numpy()


def _maybe_in(ids: pa.Array, hashes: np.ndarray) -> np.ndarray:
    """The rows of ``ids`` whose hash is in the sorted ``hashes``: every row whose id is
    among the hashed ids, and perhaps a few others (a collision; harmless here: the
    disputes' exact match, :func:`_follow_invoices`, never finds those).

    Why so: a set lookup per batch (``pyarrow.compute.is_in``) builds its set anew each
    call (5M accounts: 5.7M disputed ids hashed again for each of 250 batches), and a
    binary search of a batch's hashes in their order misses the cache at every step (1.1 s
    a batch of 1M in 5.7M; ``perf``: two thirds of a 5M split). Sorted first, each search
    starts where the last ended (0.14 s)."""
    h = _hashes(ids)
    order = np.argsort(h)
    at = np.minimum(np.searchsorted(hashes, h[order]), len(hashes) - 1)
    return np.sort(order[hashes[at] == h[order]])


def _follow_invoices(invoice_ids: pa.Array, ids: pa.Array, parts: np.ndarray) -> np.ndarray:
    """The partition of each row's invoice: ``parts`` of its id among ``ids`` (the disputed
    invoices, found while the invoices were split)."""
    at = pc.index_in(invoice_ids.cast(pa.large_string()), value_set=ids)
    if at.null_count:
        raise ValueError("disputes name invoices that are not in the book: only a "
                         "validated book is partitioned")
    return parts[at.to_numpy(zero_copy_only=False)]


def _write_split(batch: pa.RecordBatch, part: np.ndarray,
                 writers: list[pq.ParquetWriter]) -> None:
    """Each partition's rows of ``batch`` to its writer, in the batch's order: one
    stable sort by partition and one take, then a slice per partition."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(len(writers) + 1))
    grouped = batch.take(pa.array(order))
    for i, writer in enumerate(writers):
        if bounds[i + 1] > bounds[i]:
            writer.write_batch(_compact(grouped.slice(bounds[i], bounds[i + 1] - bounds[i])))


def _compact(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with each dictionary column's dictionary cut to the values its rows use,
    in the dictionary's order (a staged book's dictionaries are sorted, so they stay
    sorted: ``features.contract.book.as_codes`` keeps them as they are). Why: a slice
    keeps the whole dictionary, and Parquet writes it once per row group: a partition's
    batch of invoices wrote every account of the book's ids beside its own (300k accounts,
    8 partitions: 14.8 of the split's 20.5 CPU s)."""
    columns = []
    for column in batch.columns:
        if pa.types.is_dictionary(column.type) and len(column.dictionary) > len(column):
            used = pa.array(np.sort(pc.drop_null(pc.unique(column.indices)).to_numpy()))
            codes = pc.index_in(column.indices, value_set=used).cast(column.type.index_type)
            column = pa.DictionaryArray.from_arrays(codes, column.dictionary.take(used))
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def _replace(fs: Any, tmp: str, target: str) -> None:
    """Move the folder ``tmp`` to ``target``, replacing it (an old copy is moved aside
    first, so a crash leaves the old or the new folder, never a mix)."""
    old = f"{target}.old"
    if fs.exists(old):
        fs.rm(old, recursive=True)
    if fs.exists(target):
        fs.mv(target, old, recursive=True)
    fs.mv(tmp, target, recursive=True)
    if fs.exists(old):
        fs.rm(old, recursive=True)


def read_partition(location: str | Path) -> Book:
    """The book in the data folder ``location`` (a partition written by
    :func:`write_partitions`, or a staged book; a path or an fsspec URL), already
    validated: typed by ``Book.from_frames``, not re-checked."""

    fs, _ = fs_path(location)
    tables = {}
    for table in ALL_TABLES:
        path = _table_path(location, table)
        if path is not None:
            with fs.open(fs_path(path)[1], "rb") as fh:
                tables[table] = pd.read_parquet(fh)
    return Book.from_frames(**tables)


def book_dates(book_dir: str | Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(first_date, last_date)`` of the staged book at ``book_dir``, as ``Book``'s
    properties define them, read column by column (never the whole book)."""
    import pyarrow.compute as pc

    fs, _ = fs_path(book_dir)
    columns = {"invoices": ["issue_date"], "payments": ["payment_date"],
               "disputes": ["opened_date", "resolved_date"]}
    first, last = None, []
    for table, names in columns.items():
        path = _table_path(book_dir, table)
        if path is None:
            continue
        data = pq.read_table(fs_path(path)[1], columns=names, filesystem=fs)
        for name in names:
            lo_hi = pc.min_max(data.column(name))
            if lo_hi["max"].is_valid:
                last.append(pd.Timestamp(lo_hi["max"].as_py()))
            if name == "issue_date" and lo_hi["min"].is_valid:
                first = pd.Timestamp(lo_hi["min"].as_py())
    if first is None or not last:
        raise ValueError(f"{book_dir} holds no invoices")
    return first, max(last)
