"""Arrow tables of the synthetic book, built from the numeric core without Python loops.

Ids and date strings are fixed-width, so they are written digit by digit into one byte
buffer and wrapped as an Arrow string array (no per-row Python objects): this is what lets
``write_book_folder`` produce 50M invoices in well under a minute of string work.

Two schemas per table: *native* (timestamps, float64 amounts; the default Parquet output
and the in-memory Book) and *text* (dates ``YYYY-MM-DD`` and amounts ``1234.50`` as strings,
as raw exports are; used for CSV and whenever bad rows are injected).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.book import columns_of
from features.synthetic import _core as core
from features.synthetic import loop

NATIVE_TYPES: Final = {"str": pa.large_string(), "category": pa.large_string(),  # (files: text)
                       "datetime64[s]": pa.timestamp("s"),
                       "float64": pa.float64(), "Int64": pa.int64()}
#: Columns that hold dates or amounts (text in the raw-export schema).
DATE_COLS: Final = {"issue_date", "due_date", "payment_date", "opened_date", "resolved_date",
                    "created_date", "promised_date", "contact_date", "recorded_date",
                    "cancelled_date"}
AMOUNT_COLS: Final = {"amount", "credit_limit"}


def schema(table: str, *, text: bool) -> pa.Schema:
    """Arrow schema of ``table`` in contract column order (text: dates/amounts as strings)."""
    fields = []
    for col, dtype in columns_of(table).items():
        typ = NATIVE_TYPES[dtype]
        if text and (col in DATE_COLS or col in AMOUNT_COLS):
            typ = pa.large_string()
        fields.append(pa.field(col, typ))
    return pa.schema(fields)


def _fixed(buf: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Wrap an (n, w) uint8 matrix as an Arrow string array of n w-byte strings."""
    n, w = buf.shape
    # large_string (int64 offsets) is what pandas' ``str`` dtype holds: zero-copy later.
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int64)
    bitmap, nulls = None, 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int((~valid).sum())
    buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(buf)]
    return pa.Array.from_buffers(pa.large_string(), n, buffers, nulls)


def _digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` zero-padded to ``width`` digits into ``buf[:, col:col+width]``."""
    # uint32 division is ~10x faster than int64 here; ids below 2**32 are the common case.
    small = len(values) == 0 or int(values.max()) < 2**32
    x = values.astype(np.uint32 if small else np.uint64)
    for j in range(col + width - 1, col - 1, -1):
        q = x // 10
        buf[:, j] = x - q * 10 + 48
        x = q


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like ``I000000001``: ``prefix`` then ``numbers`` zero-padded to ``width`` digits."""
    p = np.frombuffer(prefix.encode(), dtype=np.uint8)
    buf = np.empty((len(numbers), len(p) + width), dtype=np.uint8)
    buf[:, : len(p)] = p
    _digits(buf, len(p), numbers, width)
    return _fixed(buf)


def date_strings(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """``YYYY-MM-DD`` strings of epoch day numbers (null where ``valid`` is False)."""
    d = np.where(valid, days, 0) if valid is not None else days
    d = d.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    year = month_start.astype("datetime64[Y]").astype(np.int64) + 1970
    month = month_start.astype(np.int64) % 12 + 1
    day = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    buf = np.empty((len(d), 10), dtype=np.uint8)
    buf[:, 4] = buf[:, 7] = ord("-")
    _digits(buf, 0, year, 4)
    _digits(buf, 5, month, 2)
    _digits(buf, 8, day, 2)
    return _fixed(buf, valid)


def timestamps(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Arrow ``timestamp[s]`` at midnight of epoch day numbers (null where not ``valid``)."""
    secs = np.where(valid, days, 0) if valid is not None else days
    arr = (secs.astype(np.int64) * 86_400).astype("datetime64[s]")
    return pa.array(arr, type=pa.timestamp("s"), mask=None if valid is None else ~valid)


def amount_strings(cents: np.ndarray) -> pa.Array:
    """``1234.50``-style strings of non-negative integer cents."""
    whole = pa.array(cents // 100).cast(pa.large_string())
    buf = np.empty((len(cents), 3), dtype=np.uint8)
    buf[:, 0] = ord(".")
    _digits(buf, 1, cents % 100, 2)
    return pc.binary_join_element_wise(whole, _fixed(buf), pa.scalar("", pa.large_string()))


def labels(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Decode small integer codes into their string labels."""
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(list(names))
    ).dictionary_decode().cast(pa.large_string())


def _dates(days: np.ndarray, text: bool, valid: np.ndarray | None = None) -> pa.Array:
    return date_strings(days, valid) if text else timestamps(days, valid)


def _money(cents: np.ndarray, text: bool) -> pa.Array:
    return amount_strings(cents) if text else pa.array(cents / 100.0)


class IdWidths:
    """Zero-padding widths, fixed up front from the total invoice count (ids sort as text)."""

    def __init__(self, n_accounts: int, n_invoices: int) -> None:
        self.account = max(7, len(str(n_accounts)))
        self.invoice = max(9, len(str(2 * n_invoices + 1000)))
        self.payment = max(9, len(str(3 * n_invoices + 1000)))
        # at most one contact (and promise) per invoice
        self.loop = max(8, len(str(n_invoices)))


def accounts_table(
    p: dict[str, np.ndarray], w: IdWidths, *, text: bool, lo: int = 0, hi: int | None = None
) -> pa.Table:
    """The accounts table of accounts ``[lo, hi)`` (default all, including any that never
    invoiced); a row depends on its account alone, so slices concatenate to the whole."""
    hi = len(p["segment"]) if hi is None else hi
    num = np.arange(lo + 1, hi + 1)
    cols = {
        "account_id": ids("A", num, w.account),
        "name": ids("Customer ", num, w.account),
        "segment": labels(p["segment"][lo:hi], core.SEGMENTS),
        "region": labels(p["region"][lo:hi], core.REGIONS),
        "credit_limit": _money(np.round(p["credit_limit"][lo:hi] * 100).astype(np.int64), text),
        "created_date": _dates(p["created"][lo:hi], text),
        **contact_columns(num, p["region"][lo:hi], w),
    }
    return pa.table(cols, schema=schema("accounts", text=text))


#: Languages of the synthetic contacts (half of the EMEA accounts read German).
LANGUAGES: Final = ("en", "de")


def contact_columns(num: np.ndarray, region: np.ndarray, w: IdWidths) -> dict[str, pa.Array]:
    """Contact data of accounts numbered ``num``: derived from the number and region only
    (no random draw, so every other column of the book is unchanged). Every 10th account
    has two addresses (``;``), every 250th a malformed one (the ``invalid_email`` rule of
    ``features.contract.contact``, which dunning routes to its send log)."""
    def text(s: str) -> pa.Scalar:
        return pa.scalar(s, pa.large_string())

    one = pc.binary_join_element_wise(ids("ap@customer", num, w.account),
                                      text(".example.com"), text(""))
    billing = pc.binary_join_element_wise(
        one, ids(";billing@customer", num, w.account), text(".example.com"), text(""))
    broken = pc.binary_join_element_wise(ids("ap at customer", num, w.account),
                                         text(".example"), text(""))
    email = pc.if_else(pa.array(num % 250 == 0), broken,
                       pc.if_else(pa.array(num % 10 == 0), billing, one))
    german = (region == core.REGIONS.index("emea")) & (num % 2 == 0)
    return {
        "contact_name": ids("AP Contact ", num, w.account),
        "email": email,
        "phone": ids("+1 555 ", num, w.account),
        "language": labels(german.astype(np.int64), LANGUAGES),
    }


def event_tables(
    ev: dict[str, dict[str, np.ndarray]],
    p: dict[str, np.ndarray],
    *,
    inv_offset: int,
    w: IdWidths,
    text: bool,
) -> dict[str, pa.Table]:
    """Invoices, payments and disputes of one chunk as Arrow tables.

    Invoice numbers start at ``inv_offset + 1``. ``payment_id`` is left null: payment
    numbers depend on earlier chunks, so :func:`number_payments` fills them in order.
    """
    inv, pay, dis = ev["invoices"], ev["payments"], ev["disputes"]
    m = len(inv["acc"])
    inv_ids = ids("I", np.arange(inv_offset + 1, inv_offset + m + 1), w.invoice)
    inv_acc = ids("A", inv["acc"] + 1, w.account)  # (account_id of account index i)
    invoices = pa.table(
        {
            "invoice_id": inv_ids,
            "account_id": inv_acc,
            "issue_date": _dates(inv["issue"], text),
            "due_date": _dates(inv["due"], text),
            "amount": _money(inv["amount"], text),
            "currency": labels(np.zeros(m, dtype=np.int32), ("USD",)),
            "terms_days": pa.array(inv["terms"]),
            "document_type": labels(np.zeros(m, dtype=np.int32), ("invoice",)),
            "reference_invoice_id": pa.nulls(m, pa.large_string()),
        },
        schema=schema("invoices", text=text),
    )
    k = len(pay["inv"])
    pay_idx = pa.array(pay["inv"])
    habit = p["method"][inv["acc"][pay["inv"]]]
    method = np.where(pay["write_off"], core.METHODS.index("write_off"), habit)
    payments = pa.table(
        {
            "invoice_id": inv_ids.take(pay_idx),
            "payment_date": _dates(pay["date"], text),
            "amount": _money(pay["amount"], text),
            "payment_id": pa.nulls(k, pa.large_string()),
            "account_id": inv_acc.take(pay_idx),
            "method": labels(method, core.METHODS),
        },
        schema=schema("payments", text=text),
    )
    resolved_ok = dis["resolved"] < core.NEVER
    disputes = pa.table(
        {
            "invoice_id": inv_ids.take(pa.array(dis["inv"])),
            "opened_date": _dates(dis["opened"], text),
            "resolved_date": _dates(dis["resolved"], text, resolved_ok),
            "reason": labels(dis["reason"], core.REASONS),
        },
        schema=schema("disputes", text=text),
    )
    return {"invoices": invoices, "payments": payments, "disputes": disputes}


def number_payments(payments: pa.Table, pay_offset: int, w: IdWidths) -> pa.Table:
    """Fill ``payment_id`` with ``P<pay_offset + 1>``, ``P<pay_offset + 2>``, ..."""
    k = payments.num_rows
    col = payments.schema.get_field_index("payment_id")
    new = ids("P", np.arange(pay_offset + 1, pay_offset + k + 1), w.payment)
    return payments.set_column(col, "payment_id", new)


def loop_tables(
    lp: dict[str, np.ndarray], inv_ids: pa.Array, inv_acc: pa.Array, amount: np.ndarray,
    *, text: bool,
) -> dict[str, pa.Table]:
    """Contacts and promises of one block (``features.synthetic.loop.draw``'s ``lp`` over
    the invoices ``inv_ids`` of accounts ``inv_acc``, ``amount`` in cents) as Arrow
    tables. Their ids are left null: :func:`number_loop` fills them in book order."""
    row = pa.array(lp["row"])
    k = len(lp["row"])
    none = np.zeros(k, dtype=bool)
    contacts = pa.table(
        {
            "contact_id": pa.nulls(k, pa.large_string()),
            "account_id": inv_acc.take(row),
            "contact_date": _dates(lp["contact"], text),
            "channel": labels(lp["channel"], loop.CHANNELS),
            "outcome": labels(lp["outcome"], loop.OUTCOMES),
            "recorded_date": _dates(lp["contact"], text, none),
        },
        schema=schema("contacts", text=text),
    )
    made = np.flatnonzero(lp["promised"])
    rows, j = lp["row"][made], len(made)
    promises = pa.table(
        {
            "promise_id": pa.nulls(j, pa.large_string()),
            "account_id": inv_acc.take(pa.array(rows)),
            "created_date": _dates(lp["contact"][made], text),
            "promised_date": _dates(lp["date"][made], text),
            "amount": _money(amount[rows], text),
            "invoice_id": inv_ids.take(pa.array(rows)),
            "recorded_date": _dates(lp["contact"][made], text, none[:j]),
            "cancelled_date": _dates(lp["contact"][made], text, none[:j]),
        },
        schema=schema("promises", text=text),
    )
    return {"promises": promises, "contacts": contacts}


#: Id column and prefix of each loop table (ids ``CT00000000``, ... in book order).
LOOP_IDS: Final = {"contacts": ("contact_id", "CT"), "promises": ("promise_id", "PR")}


def number_loop(table: str, tbl: pa.Table, offset: int, w: IdWidths) -> pa.Table:
    """Fill the loop table's id column with ``<prefix><offset>``, ``<offset + 1>``, ..."""
    col, prefix = LOOP_IDS[table]
    new = ids(prefix, np.arange(offset, offset + tbl.num_rows), w.loop)
    return tbl.set_column(tbl.schema.get_field_index(col), col, new)
