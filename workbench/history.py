"""Per-account history from the staged book, without scanning the book (issue 15, item 6).

The staged book (``<state>/staging/book``: invoices, payments, accounts, disputes as
Parquet) is laid out for the feature pipeline, which reads whole tables. The account page
needs one account's invoices and payments at a time, so the workbench keeps an **index**:
the same rows, each table sorted by ``account_id`` (payments get their invoice's account)
and written with small row groups (:data:`ROWS_PER_GROUP` per table). Parquet keeps the minimum and
maximum ``account_id`` of every row group; they are read once when the index is opened,
so a lookup is a binary search over row groups and the decode of the one or two row groups
that can hold the account: the cost does not grow with the book (measured in the README,
"Workbench").

Why a sorted file and not store tables: 50M invoice rows would make the store (and its
backups, and every publish on SQLite) several times larger for a read-only copy of data
that is already on disk, and a rebuild is a sort (polars, one account range of about
:data:`ROWS_PER_PASS` invoices at a time, so memory holds one range) instead of a bulk
load. The index remembers the staged files' sizes and modification times
(``fingerprint.json``) and is rebuilt when they change (the nightly ingest re-stages).

Time semantics: :func:`account_history` applies the run's ``as_of``: invoices issued,
payments made and disputes opened strictly before it; DPD = ``as_of - due_date``.
"""

from __future__ import annotations

import bisect
import json
import shutil
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.spec import is_cleared

#: Rows per Parquet row group of each table of the index: a lookup decodes about this many
#: rows of the table. Smaller where an account's rows are few and wide (the accounts table
#: has one row per account, of names, emails and phones; payments carry ids): measured on
#: a 100k-account book, decoding the account page's columns of one group took accounts
#: 4.5 ms at 8,192 rows -> 0.8 at 512, payments 2.9 -> 0.8 at 2,048. A smaller group costs
#: footer bytes, parsed once per server process and kept (~0.9 KB per column chunk: at 1M
#: accounts these sizes make ~205k chunks, ~190 MB per process, was ~150k; 2,048-row
#: invoice and payment groups would make ~390k for ~0.3 ms less per page).
ROWS_PER_GROUP: Final = {"invoices": 4096, "payments": 4096, "disputes": 2048,
                         "accounts": 512}
#: Codec of the index's files. LZ4 decodes several times faster than zstd for files ~1.5x
#: as big (100k-account book, load ~10, CPU ms per lookup of one account's page columns:
#: invoices 1.84 zstd at 8,192 rows -> 0.81 LZ4 at 4,096; payments 2.66 -> 1.12;
#: disputes 1.55 -> 0.52 at 2,048; accounts 1.15 -> 0.63; the index 204 -> 296 MB).
COMPRESSION: Final = "lz4"
#: The index's file layout (row-group sizes, codec): an index of another layout is rebuilt.
LAYOUT: Final = 3
#: Invoices per pass of the index build (memory holds one pass's rows of one table).
ROWS_PER_PASS: Final = 4_000_000
TABLES: Final = ("invoices", "payments", "disputes", "accounts")
FINGERPRINT: Final = "fingerprint.json"
_SORT_KEYS: Final = {"invoices": ("account_id", "issue_date", "invoice_id"),
                     "payments": ("account_id", "payment_date", "invoice_id"),
                     "disputes": ("account_id", "opened_date", "invoice_id"),
                     "accounts": ("account_id",)}


def fingerprint(book_dir: Path) -> dict[str, list[int]]:
    """Size and modification time (ns) of each Parquet file of the staged book."""
    out = {}
    for path in sorted(Path(book_dir).glob("*.parquet")):
        st = path.stat()
        out[path.name] = [st.st_size, st.st_mtime_ns]
    return out


def _stamp(book_dir: Path) -> dict[str, list[int]]:
    """What ``fingerprint.json`` holds: the book's :func:`fingerprint` and the
    :data:`LAYOUT` the index was written with."""
    return {**fingerprint(book_dir), "layout": [LAYOUT]}


def is_current(book_dir: Path, index_dir: Path) -> bool:
    """Whether ``index_dir`` holds an index of ``book_dir`` as it is now, in this code's
    :data:`LAYOUT`."""
    try:
        stored = json.loads((Path(index_dir) / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return False
    stamp = _stamp(book_dir)
    return stored == stamp and len(stamp) > 1


def build_index(book_dir: Path, index_dir: Path) -> dict[str, int]:
    """(Re)build the index of the staged book ``book_dir`` in ``index_dir``; rows per table.

    Written beside the old index and swapped in by renames, so a reader sees the old or
    the new index, never half of one.
    """
    import polars as pl

    book_dir, index_dir = Path(book_dir), Path(index_dir)
    stamp = _stamp(book_dir)
    if "invoices.parquet" not in stamp:
        raise FileNotFoundError(f"no staged book at {book_dir} (invoices.parquet missing)")
    tmp = index_dir.with_name(index_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    invoices = pl.scan_parquet(book_dir / "invoices.parquet")
    owner = invoices.select("invoice_id", "account_id")
    frames: dict[str, pl.LazyFrame] = {"invoices": invoices}
    for table in ("payments", "disputes", "accounts"):
        path = book_dir / f"{table}.parquet"
        if not path.exists():
            continue
        frame = pl.scan_parquet(path)
        if table != "accounts":
            frame = frame.drop("account_id", strict=False).join(owner, on="invoice_id",
                                                                  how="inner")
        frames[table] = frame
    # The book's codes (dictionary columns: currency, method, ...) as plain text: the index
    # keeps the schema it always had.
    frames = {t: f.with_columns(pl.col(pl.Categorical).cast(pl.String))
              for t, f in frames.items()}
    cuts = _account_cuts(owner)
    rows = {}
    for table, frame in frames.items():
        keys = [k for k in _SORT_KEYS[table] if k in frame.collect_schema().names()]
        rows[table] = _write_sorted(frame, keys, cuts, tmp / f"{table}.parquet",
                                    rows_per_group=ROWS_PER_GROUP[table])
    (tmp / FINGERPRINT).write_text(json.dumps(stamp))
    old = index_dir.with_name(index_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if index_dir.exists():
        index_dir.rename(old)
    tmp.rename(index_dir)
    shutil.rmtree(old, ignore_errors=True)
    return rows


def _account_cuts(owner: Any) -> list[str]:
    """Account ids that cut ``owner`` (invoice_id, account_id; lazy) into ranges of about
    :data:`ROWS_PER_PASS` invoices.

    The index is written one account range at a time (each range filtered, sorted and
    appended in order), so memory holds one range, not a whole table: one collect of the
    50M-invoice table of a 1M-account book held ~15 GB.
    """
    counts = (owner.group_by("account_id").len().sort("account_id")
              .collect())
    total = int(counts["len"].sum())
    passes = -(-total // ROWS_PER_PASS)
    if passes <= 1:
        return []
    cumulative = counts["len"].cum_sum().to_numpy()
    ids = counts["account_id"]
    targets = [total * k / passes for k in range(1, passes)]
    positions = np.searchsorted(cumulative, targets, side="left")
    # every target is below the total (cumulative[-1]), so each position is a valid row
    return sorted({str(ids[int(i)]) for i in positions})


def _write_sorted(frame: Any, keys: list[str], cuts: list[str], path: Path, *,
                  rows_per_group: int) -> int:
    """Write ``frame`` sorted by ``keys`` (``account_id`` first) to ``path`` range by range
    (ranges ``[cut_k, cut_k+1)`` of :func:`_account_cuts`, in order) in row groups of
    ``rows_per_group`` rows; rows written."""
    import polars as pl

    bounds = [None, *cuts, None]
    written = 0
    writer = schema = None
    try:
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            part = frame
            if lo is not None:
                part = part.filter(pl.col("account_id") >= lo)
            if hi is not None:
                part = part.filter(pl.col("account_id") < hi)
            data = part.sort(keys).collect().to_arrow()
            if writer is None:
                schema = data.schema
                writer = pq.ParquetWriter(path, schema, compression=COMPRESSION,
                                          write_statistics=["account_id"])
            writer.write_table(data.cast(schema), row_group_size=rows_per_group)
            written += data.num_rows
            del data  # freed before the next range is collected
    finally:
        if writer is not None:
            writer.close()
    return written


class _SortedTable:
    """One table of the index: row-group bounds of ``account_id`` kept in memory."""

    def __init__(self, path: Path) -> None:
        # Memory-mapped: a lookup's few pages are read from the page cache without a copy
        # through a file buffer (invoices 1.10 -> 0.73 ms of CPU per lookup at 100k).
        self.file = pq.ParquetFile(path, memory_map=True)
        self.names = frozenset(self.file.schema_arrow.names)  # built once, read per lookup
        self._lock = threading.Lock()  # a ParquetFile is not safe for concurrent reads
        meta = self.file.metadata
        col = self.file.schema_arrow.get_field_index("account_id")
        self.mins: list[str] = []
        self.maxs: list[str] = []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            if stats is None or not stats.has_min_max:  # cannot prune: the group always reads
                self.mins.append("")
                self.maxs.append("\U0010ffff")
            else:
                self.mins.append(stats.min)
                self.maxs.append(stats.max)

    def groups(self, account_id: str) -> range:
        """Row groups that may hold ``account_id`` (contiguous: the file is sorted)."""
        return range(bisect.bisect_left(self.maxs, account_id),
                     bisect.bisect_right(self.mins, account_id))

    def rows(self, account_id: str, columns: tuple[str, ...] | None = None) -> pa.Table:
        """The rows of ``account_id``: all columns, or ``account_id`` and those of
        ``columns`` the table has (only they are decoded)."""
        names = None
        if columns is not None:
            names = ["account_id",
                     *(c for c in columns if c in self.names and c != "account_id")]
        groups = list(self.groups(account_id))
        if not groups:
            empty = self.file.schema_arrow.empty_table()
            return empty if names is None else empty.select(names)
        with self._lock:
            # One thread: a row group of one table is small, and the server's other
            # requests (or worker processes) use the other cores.
            part = self.file.read_row_groups(groups, columns=names, use_threads=False)
        return part.filter(pc.equal(part.column("account_id"), account_id))


class HistoryIndex:
    """Read side of the index in ``index_dir`` (see the module docstring)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self._tables = {t: _SortedTable(self.index_dir / f"{t}.parquet") for t in TABLES
                        if (self.index_dir / f"{t}.parquet").exists()}

    def table(self, table: str, account_id: str,
              columns: tuple[str, ...] | None = None) -> pa.Table:
        """The rows of ``table`` for ``account_id`` (empty if none or no such table):
        every column, or ``account_id`` and those of ``columns`` the table has."""
        if table not in self._tables:
            return pa.table({"account_id": pa.array([], pa.string())})
        return self._tables[table].rows(account_id, columns)

    def groups_read(self, table: str, account_id: str) -> int:
        """How many row groups a lookup decodes (for tests and measurements)."""
        return len(self._tables[table].groups(account_id)) if table in self._tables else 0


@dataclass(frozen=True)
class AccountHistory:
    """One account's book as of a day: open invoices, payments, disputes, directory."""

    profile: dict[str, Any]
    open_invoices: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    disputes: list[dict[str, Any]]
    invoice_ids: frozenset[str]


def _day(value: Any) -> date | None:
    if value is None:
        return None
    return value.date() if isinstance(value, datetime) else value


def _rows(table: pa.Table, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """The table's rows as dicts of plain values (dates as ``date``), missing columns None."""
    present = [c for c in columns if c in table.column_names]
    rows = table.select(present).to_pylist()
    for row in rows:
        for col in columns:
            value = row.get(col)
            row[col] = _day(value) if isinstance(value, datetime | date) else value
    return rows


def _read(index: HistoryIndex, table: str, account_id: str,
          columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """:func:`_rows` of the account's rows of ``table``, decoding only ``columns``."""
    return _rows(index.table(table, account_id, columns), columns)


def account_history(index: HistoryIndex, account_id: str, *, as_of: date,
                    max_payments: int = 200) -> AccountHistory:
    """The account's invoices, payments and disputes known strictly before ``as_of``.

    Open invoices (the clearing rule of ``features.spec``): amount, paid, open amount, due
    date and DPD, dispute state. Payments newest first (ties: invoice id, then payment id,
    descending; at most ``max_payments``), each with its days late (payment date - due
    date). An account has tens of rows, so this is plain Python over the few rows its row
    groups hold.
    """
    invoices = _read(index, "invoices", account_id,
                     ("invoice_id", "issue_date", "due_date", "amount"))
    payments = _read(index, "payments", account_id,
                     ("payment_id", "invoice_id", "payment_date", "amount", "method"))
    disputes = _read(index, "disputes", account_id,
                     ("invoice_id", "opened_date", "resolved_date", "reason"))
    accounts = _read(index, "accounts", account_id,
                     ("name", "segment", "region", "credit_limit", "created_date",
                      "contact_name", "email", "phone", "language"))
    profile = {k: v for k, v in accounts[0].items() if v is not None} if accounts else {}
    invoices = [i for i in invoices if i["issue_date"] < as_of]
    due = {i["invoice_id"]: i["due_date"] for i in invoices}
    payments = [p for p in payments if p["payment_date"] < as_of]
    paid: dict[str, float] = {}
    for p in payments:
        paid[p["invoice_id"]] = paid.get(p["invoice_id"], 0.0) + float(p["amount"])
    live = {d["invoice_id"] for d in disputes if d["opened_date"] < as_of
            and (d["resolved_date"] is None or d["resolved_date"] >= as_of)}
    amounts = np.array([float(i["amount"]) for i in invoices])
    paid_of = np.array([paid.get(i["invoice_id"], 0.0) for i in invoices])
    cleared = is_cleared(paid_of, amounts) if len(invoices) else np.zeros(0, dtype=bool)
    open_invoices = []
    for inv, p, done in zip(invoices, paid_of, cleared, strict=True):
        if done:
            continue
        open_invoices.append({**inv, "paid": round(float(p), 2),
                              "open_amount": round(float(inv["amount"]) - float(p), 2),
                              "dpd": (as_of - inv["due_date"]).days,
                              "in_dispute": inv["invoice_id"] in live})
    open_invoices.sort(key=lambda i: (i["due_date"], i["invoice_id"]))
    for p in payments:
        d = due.get(p["invoice_id"])
        p["days_late"] = None if d is None else (p["payment_date"] - d).days
    # The payment id breaks ties (two payments of one invoice on one day): the index's
    # sort leaves them in any order, and a rebuilt index must show the same page.
    payments.sort(key=lambda p: (p["payment_date"], p["invoice_id"], p["payment_id"] or ""),
                  reverse=True)
    return AccountHistory(profile=profile, open_invoices=open_invoices,
                          payments=payments[:max_payments],
                          disputes=[d for d in disputes if d["opened_date"] < as_of],
                          invoice_ids=frozenset(due))
