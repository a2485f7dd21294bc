"""Account partitions of a validated book (issue 20): the split that lets the nightly's
per-account work (features, scoring, explanations) run on several processes or machines.

Every feature and score is a function of one account's history, so a book splits by
account without changing any account's result: an account goes to partition
``crc32(account_id) mod P`` (:func:`partition_of`; zlib's crc32 of the UTF-8 id, stable
across processes, machines and Python versions, unlike ``hash()``), every payment and
dispute follows its invoice's account through an invoice-to-partition map, and the
collections loop's promises and contacts (issue 17) follow their account.

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
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract.book import ALL_TABLES, Book

#: Tables split by their own ``account_id``; the others (payments, disputes) follow their
#: invoice's account.
_BY_ACCOUNT = frozenset({"invoices", "accounts", "promises", "contacts"})
#: Rows per record batch read from the staged tables (bounds the split's memory).
BATCH_ROWS = 1_000_000


def partition_of(account_ids: Iterable[Any], partitions: int) -> np.ndarray:
    """The partition (0 .. ``partitions`` - 1, int32) of each account id:
    ``zlib.crc32(UTF-8 id) mod partitions``. Ids are compared as text, as everywhere in
    the data contract."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    ids = [str(a) for a in account_ids]
    if partitions == 1:
        return np.zeros(len(ids), dtype=np.int32)
    return np.fromiter((zlib.crc32(a.encode("utf-8")) % partitions for a in ids),
                       dtype=np.int32, count=len(ids))


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


def invoice_partitions(book_dir: str | Path, partitions: int) -> tuple[pd.Index, np.ndarray]:
    """The invoice-to-partition map of a staged book: the invoice ids (a hash index, built
    once) and the partition of each, streamed from ``invoices.parquet`` (two columns)."""
    ids: list[pa.Array] = []
    parts: list[np.ndarray] = []
    for batch in _batches(join(book_dir, "invoices.parquet"), ["invoice_id", "account_id"]):
        ids.append(batch.column(0).cast(pa.string()))
        parts.append(partition_of(batch.column(1).to_pylist(), partitions))
    index = pd.Index(pa.chunked_array(ids, type=pa.string()).to_pandas() if ids else [],
                     dtype=object)
    return index, (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))


def write_partitions(book_dir: str | Path, work: str | Path, *,
                     partitions: int) -> list[str]:
    """Split the validated book staged at ``book_dir`` (Parquet, one file per table) into
    ``partitions`` data folders under ``work`` (a path or an fsspec URL); returns their
    locations, partition 0 first.

    Invoices, accounts, promises and contacts go by their account's partition
    (:func:`partition_of`),
    payments and disputes by their invoice's (a row whose invoice is not in the book
    cannot be there: validation quarantined it). Every table is written in every
    partition, empty when it has no rows there, with the staged file's schema, so each
    partition reads as a book. Each folder appears whole (temporary name, then rename),
    replacing what a previous run left."""
    fs, root = fs_path(work)
    fs.makedirs(root, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = [join(work, f".{partition_name(i)}.tmp-{token}") for i in range(partitions)]
    for folder in tmp:
        fs.makedirs(fs_path(folder)[1], exist_ok=True)
    invoice_index, invoice_part = invoice_partitions(book_dir, partitions)
    try:
        for table in ALL_TABLES:
            source = _table_path(book_dir, table)
            if source is None:
                continue
            schema = pq.read_schema(fs_path(source)[1], filesystem=fs)
            writers = [pq.ParquetWriter(fs_path(join(t, f"{table}.parquet"))[1], schema,
                                        filesystem=fs) for t in tmp]
            try:
                done = 0  # invoices: rows already split (read in the map's order)
                for batch in _batches(source):
                    if table == "invoices":  # hashed once, by invoice_partitions
                        part = invoice_part[done:done + batch.num_rows]
                        done += batch.num_rows
                    elif table in _BY_ACCOUNT:
                        part = partition_of(batch.column("account_id").to_pylist(),
                                            partitions)
                    else:
                        at = invoice_index.get_indexer(
                            batch.column("invoice_id").to_pandas().astype(object))
                        if (at < 0).any():
                            raise ValueError(f"{table} names invoices that are not in the "
                                             "book: only a validated book is partitioned")
                        part = invoice_part[at]
                    for i, writer in enumerate(writers):
                        rows = np.flatnonzero(part == i)
                        if len(rows):
                            writer.write_batch(batch.take(pa.array(rows)))
            finally:
                for writer in writers:
                    writer.close()
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
