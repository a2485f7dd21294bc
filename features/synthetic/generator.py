"""Synthetic receivables book: the embedded default data for the demo, tests and benchmarks.

The story
---------
A wholesaler sells on credit to ``n_accounts`` business customers between ``start`` and
``end``. Each account gets, once:

- a ``segment`` (enterprise 10%, mid-market 30%, small 60%) that sets invoice frequency
  (one invoice every ~6 / 10 / 17 days, times a per-account lognormal factor: about 50
  invoices per account over two years), lognormal invoice amounts (medians 15,000 /
  3,500 / 800 dollars, per-account level x per-invoice sd 0.6 in log space), its payment
  terms mix (net 15/30/45/60; enterprises get longer terms) and payment method;
- a ``region`` (north_america, emea, apac, latam; no effect on risk);
- a ``created_date``: 70% predate the window, 30% are new customers opened during it;
- a latent financial fragility ``z ~ N(0, 1)`` (truth column ``latent_risk``). It shifts
  the usual days late (+2 days per unit, clipped), raises dispute and partial-payment
  rates, tightens the credit limit (so utilisation carries risk) and tilts the archetype
  draw towards the risky ones;
- a ``credit_limit``: about (terms + one month) of expected billing, x exp(0.6 - 0.35 z);
- one payer archetype (shares before the fragility tilt):
  - ``prompt`` (42%): pays around the due date (mean -2 days, sd 1.5-4);
  - ``habitual_late`` (25%): typically 4-18 days late, noisy (sd 4-9);
  - ``seasonal`` (12%): on time except 2-3 calendar months a year (by due month), when it
    pays 18-40 days late (cash-tight season);
  - ``deteriorating`` (13%): a distress episode starts at ``distress_start``; over a ramp of
    60-180 days the days late grow by up to 25-70, partial payments (up to +40%),
    disputes (+5%) and never-paid balances (up to 15% of invoices) rise. 55% recover
    (the distress decays over 90 days after a 30-120 day plateau); 45% fail: from
    ``stop_paying`` on nothing more is paid and billing stops 30-75 days later;
  - ``sudden_default`` (8%): pays normally until ``stop_paying`` (which may fall after
    ``end``: the book cannot tell), then never again; 30% show a mild precursor (5-15
    extra days late over the last 60 days). Billing stops 20-60 days after default.

Per invoice: days late = account habit + noise + season + distress + precursor, plus a
2-3% chance of an unforeseeable 20-60 day "admin hold" (the irreducible noise). A
disputed invoice (2% x exp(z/2), opened 3 days to terms+10 days after issue, resolved
after a lognormal ~21 days, some still open at ``end``) is paid only 1-10 days after its
resolution. Some invoices (4% x exp(z/2) + distress) are paid in 2-3 instalments, the last
on the scheduled date and earlier ones 7-30 days apart. A few balances are never paid
(0.2% at random, more in distress, everything owed by failed or defaulted accounts); 40%
of those got one partial payment first, and 120-270 days after due the seller writes the
rest off: a final clearing row in ``payments`` with ``method == "write_off"`` (as ERPs
clear such invoices with a credit document), so dead accounts leave the open book.
Payments dated after ``end`` have not happened yet, so those invoices are open at ``end``.

The drivers of risk are therefore known (see :func:`generate_book_with_truth`): recent
lateness history (habit, season, distress trend), disputes, partial payments,
credit-limit utilisation and the latent fragility behind them; the admin holds, the
unforeseeable defaults and the noise keep it learnable but far from trivial.

Performance: everything is vectorised numpy (``features.synthetic._core``) turned into
Arrow without per-row Python (``features.synthetic._arrow``). Randomness is drawn per
fixed *block* of accounts (``_core.CHUNK_ACCOUNTS``, 50,000: the per-account parameters
from the stream ``(seed, 0)``, each block's events from its own stream, the collections
loop's from another), and :func:`write_book_folder` streams the book chunk by chunk
(accounts, invoices, payments, disputes, promises, contacts appended to the files), so
memory is bounded by the chunk plus the per-account parameters (~220 bytes an account),
and the rows never depend on how the book is chunked.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.contract.book import (
    ALL_TABLES,
    CODE_DTYPE,
    DATE_DTYPE,
    EVENT_DATE,
    EVENT_TABLES,
    TABLES,
    Book,
    as_codes,
    columns_of,
    conform,
    with_invoice_accounts,
)
from features.contract.io import return_freed_memory
from features.synthetic import _arrow as sa
from features.synthetic import _core as core
from features.synthetic import _errors as se
from features.synthetic import loop as lp

__all__ = ["generate_book", "generate_book_with_truth", "write_book_folder"]

_EPOCH = np.datetime64("1970-01-01", "D")


def _day(d: date | str) -> int:
    """Epoch day number of a date or ISO string."""
    return int((np.datetime64(pd.Timestamp(d).date(), "D") - _EPOCH).astype(np.int64))


def _check(n_accounts: int, start: int, end: int) -> None:
    if n_accounts < 1:
        raise ValueError(f"n_accounts must be >= 1, got {n_accounts}")
    if end < start:
        raise ValueError("end must not be before start")


def _chunks(
    n_accounts: int, seed: int, start: int, end: int, *, text: bool, workers: int = 2,
    independent_lateness: bool = False, behaviour_change: int | None = None,
    loop: bool = False, loop_text: bool = False, chunk_accounts: int | None = None,
) -> Iterator[tuple[dict[str, pa.Table], dict]]:
    """Yield ({}, info) with the book's parameters, then (tables, info) for each chunk of
    accounts in order.

    The book is a function of ``seed`` and the account *blocks* (``core.CHUNK_ACCOUNTS``
    accounts, each with its own random streams), never of the chunks: a chunk is
    ``chunk_accounts`` rounded up to whole blocks (default one), and its tables
    (accounts, invoices, payments, disputes; promises and contacts with ``loop``,
    ``loop_text`` their schema) are its blocks' concatenated, with ids numbered in book
    order. ``info``: ``blocks`` (each block's tables and ``core.chunk_events``) and
    ``last_day`` (the chunk's latest event day). The loop's contacts are cut at ``end``: see
    :func:`_trim_loop` for a book whose last event falls earlier.

    Chunks are built by ``workers`` threads (numpy and Arrow release the GIL), at most
    ``workers`` ahead of the consumer, so memory is bounded by the chunk, not the book.
    """
    _check(n_accounts, start, end)
    p = core.account_params(n_accounts, seed, start, end)
    if independent_lateness:
        p[core.INDEPENDENT] = np.ones(1, dtype=bool)
    if behaviour_change is not None:
        p[core.CHANGE_DAY] = np.array([behaviour_change], dtype=np.int64)
        p[core.MIRROR] = core.mirror_accounts(p["base_delay"])
    widths = sa.IdWidths(n_accounts, int(p["n_invoices"].sum()))
    yield {}, {"params": p, "widths": widths}
    block = core.CHUNK_ACCOUNTS
    per_chunk = max(1, -(-(chunk_accounts or block) // block))
    bounds = list(range(0, n_accounts, block)) + [n_accounts]
    n_blocks = len(bounds) - 1
    inv_offsets = np.concatenate([[0], np.cumsum(p["n_invoices"])])[bounds]

    def build_block(b: int) -> tuple[dict[str, pa.Table], dict]:
        ev = core.chunk_events(p, bounds[b], bounds[b + 1], seed=seed, chunk=b, end=end)
        tables = {"accounts": sa.accounts_table(p, widths, text=text, lo=bounds[b],
                                                hi=bounds[b + 1])}
        tables |= sa.event_tables(ev, p, inv_offset=int(inv_offsets[b]), w=widths, text=text)
        if loop:
            tables |= _loop_block(ev, tables["invoices"], seed=seed, block=b, end=end,
                                  text=loop_text)
        return tables, ev

    def build(c: int) -> list[tuple[dict[str, pa.Table], dict]]:
        return [build_block(b) for b in range(c * per_chunk, min((c + 1) * per_chunk, n_blocks))]

    offsets = dict.fromkeys(("payments", *EVENT_TABLES), 0)
    n_chunks = -(-n_blocks // per_chunk)
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        pending: deque[Future] = deque()
        for c in range(n_chunks):
            pending.append(pool.submit(build, c))
            while pending and (len(pending) > workers or c == n_chunks - 1):
                blocks = pending.popleft().result()
                for tables, _ev in blocks:
                    for name in offsets.keys() & tables.keys():
                        tbl = tables[name]
                        tables[name] = (sa.number_payments(tbl, offsets[name], widths)
                                        if name == "payments"
                                        else sa.number_loop(name, tbl, offsets[name], widths))
                        offsets[name] += tbl.num_rows
                merged = {name: pa.concat_tables([t[name] for t, _ in blocks])
                          for name in blocks[0][0]}
                last = max(_last_day(ev) for _, ev in blocks)
                yield merged, {"blocks": blocks, "last_day": last}
                del blocks, merged
                # Freed chunks back to the OS (300k accounts with the loop: RSS after the
                # last chunk 2.3 GB without, 1.4 GB with; the peak stays ~2.6-2.9 GB).
                return_freed_memory()


def _loop_block(ev: dict[str, dict[str, np.ndarray]], invoices: pa.Table, *, seed: int,
                block: int, end: int, text: bool) -> dict[str, pa.Table]:
    """Promises and contacts of one block (``features.synthetic.loop``), cut at ``end``."""
    inv, pay = ev["invoices"], ev["payments"]
    real = ~pay["write_off"]
    clear = lp.clear_days(len(inv["acc"]), pay["inv"][real], pay["date"][real],
                          pay["amount"][real], inv["amount"])
    draws = lp.draw(inv["due"], clear, cutoff=end, rng=lp.block_rng(seed, block))
    return sa.loop_tables(draws, invoices.column("invoice_id").combine_chunks(),
                          invoices.column("account_id").combine_chunks(), inv["amount"],
                          text=text)


def _last_day(ev: dict[str, dict[str, np.ndarray]]) -> int:
    """The latest event day of a block (``Book.last_date``'s events; -1 when none)."""
    resolved = ev["disputes"]["resolved"]
    days = (ev["invoices"]["issue"], ev["payments"]["date"], ev["disputes"]["opened"],
            resolved[resolved < core.NEVER])
    return max((int(d.max()) for d in days if len(d)), default=-1)


def _trim_loop(name: str, tbl: pa.Table, last_day: int, widths: sa.IdWidths) -> pa.Table:
    """``tbl`` (promises or contacts, cut at the window's end) cut at the book's last
    event day instead (contacts only before it, ``features.synthetic.loop``), renumbered.
    Only a tiny book ends its events before the window does."""
    col = tbl.column(EVENT_DATE[name])
    if pa.types.is_timestamp(col.type):
        cut = pa.scalar(last_day * 86_400, pa.timestamp("s"))
    else:  # YYYY-MM-DD text sorts as the dates do
        cut = pa.scalar(sa.date_strings(np.array([last_day]))[0].as_py(), col.type)
    return sa.number_loop(name, tbl.filter(pc.less(col, cut)), 0, widths)


def _to_pandas(table: str, tbl: pa.Table) -> pd.DataFrame:
    # Strings are large_string already, so they pass to pandas' ``str`` without a copy.
    df = tbl.to_pandas(split_blocks=True, self_destruct=True)
    if table == "invoices":
        df["terms_days"] = df["terms_days"].astype("Int64")
    for col in df.columns:
        if col in sa.DATE_COLS:
            df[col] = df[col].astype(DATE_DTYPE)
        elif columns_of(table).get(col) == CODE_DTYPE:
            df[col] = as_codes(df[col])
    return df


def generate_book_with_truth(
    n_accounts: int,
    *,
    seed: int = 0,
    start: date | str = "2023-01-01",
    end: date | str = "2024-12-31",
    independent_lateness: bool = False,
    behaviour_change: date | str | None = None,
) -> tuple[Book, pd.DataFrame]:
    """A synthetic Book and its per-account truth (the story in the module docstring).

    Truth columns: ``account_id``, ``archetype``, ``latent_risk`` (fragility z, unitless),
    ``segment``, ``region``, ``terms_days``, ``credit_limit`` (dollars), ``base_days_late``
    (habitual days late before noise), ``noise_sd_days``, ``dispute_rate``,
    ``partial_rate`` (per invoice), ``season_start_month``/``season_months`` (seasonal
    only, else 0), ``distress_start``, ``recover_start``, ``stop_paying``, ``billing_stop``
    (dates, NaT when not applicable; they may lie after ``end``), ``n_invoices``.
    Deterministic per ``seed``; all events are dated within [start, end].
    ``independent_lateness``: each invoice's days late is drawn independently of its
    account's history (the chunk's lateness shuffled over its invoices; no distress, no
    one stops paying): a book where an account's payment history predicts nothing.
    Its present exposure still does (measured, 1,000 accounts: the count and size of the
    open invoices and the past-due amount carry a model past the two-key aging rule on
    capture@10; the history baseline's AUC is ~0.54), but the aging rule as served
    (calibrated probability x open balance) uses that exposure too, so the models do not
    beat it and fail the quality gate (500 accounts: early warning capture@10 0.682 vs
    0.682, persistence 0.444 vs 0.493).
    ``behaviour_change``: from that day on, every invoice issued is paid with the habit of
    the account's mirror (the opposite rank of usual days late), stretched: 2 x its usual
    days late + 10, plus its noise (no season, distress or default). The most prompt pay
    20-45 days late, the habitually late pay on time: the payment history ranks the
    accounts the wrong way round, so a model trained before the change falls below the
    aging rule live (the rule sees the new days past due). Accounts and invoices are the
    unchanged book's.
    """
    return _generate(n_accounts, seed=seed, start=start, end=end,
                     independent_lateness=independent_lateness,
                     behaviour_change=behaviour_change, loop=False)


def _generate(
    n_accounts: int, *, seed: int, start: date | str, end: date | str,
    independent_lateness: bool, behaviour_change: date | str | None, loop: bool,
) -> tuple[Book, pd.DataFrame]:
    """The book (with the loop's tables when ``loop``) and its truth, held in memory."""
    s, e = _day(start), _day(end)
    names = (*TABLES, *EVENT_TABLES) if loop else TABLES
    parts: dict[str, list[pa.Table]] = {t: [] for t in names}
    p: dict[str, np.ndarray] = {}
    widths, last = None, -1
    change = None if behaviour_change is None else _day(behaviour_change)
    for tables, info in _chunks(n_accounts, seed, s, e, text=False,
                                independent_lateness=independent_lateness,
                                behaviour_change=change, loop=loop):
        p, widths = info.get("params", p), info.get("widths", widths)
        last = max(last, info.get("last_day", -1))
        for name, tbl in tables.items():
            parts[name].append(tbl)
    frames = {}
    for t in names:
        table = pa.concat_tables(parts.pop(t))
        if t in EVENT_TABLES and last < e:
            table = _trim_loop(t, table, last, widths)
        frames[t] = _to_pandas(t, table)
        del table
    for t in EVENT_TABLES:
        if t in frames:
            frames[t] = conform(t, frames[t])
    frames["payments"] = with_invoice_accounts(frames["payments"],
                                               frames["invoices"]["account_id"].dtype)
    book = Book(**frames)
    return book, _truth(p, frames["accounts"]["account_id"])


def _dates_or_nat(days: np.ndarray) -> np.ndarray:
    out = (np.where(days < core.NEVER, days, 0) * 86_400).astype("datetime64[s]")
    out[days >= core.NEVER] = np.datetime64("NaT")
    return out


def _truth(p: dict[str, np.ndarray], account_id: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": account_id.to_numpy(),
        "archetype": pd.Categorical.from_codes(p["archetype"], core.ARCHETYPES),
        "latent_risk": p["latent_risk"],
        "segment": pd.Categorical.from_codes(p["segment"], core.SEGMENTS),
        "region": pd.Categorical.from_codes(p["region"], core.REGIONS),
        "terms_days": p["terms"].astype(np.int64),
        "credit_limit": p["credit_limit"],
        "base_days_late": p["base_delay"],
        "noise_sd_days": p["noise_sd"],
        "dispute_rate": p["dispute_rate"],
        "partial_rate": p["partial_rate"],
        "season_start_month": p["season_start"].astype(np.int64),
        "season_months": p["season_len"].astype(np.int64),
        "distress_start": _dates_or_nat(p["distress_start"]),
        "recover_start": _dates_or_nat(p["recover_start"]),
        "stop_paying": _dates_or_nat(p["stop_paying"]),
        "billing_stop": _dates_or_nat(p["billing_stop"]),
        "n_invoices": p["n_invoices"].astype(np.int64),
    })


def generate_book(
    n_accounts: int,
    *,
    seed: int = 0,
    start: date | str = "2023-01-01",
    end: date | str = "2024-12-31",
    independent_lateness: bool = False,
    behaviour_change: date | str | None = None,
    loop: bool = False,
) -> Book:
    """A valid synthetic Book of ``n_accounts`` accounts (~50 invoices each per two years).

    Deterministic per ``seed``. Invoices, payments and disputes are dated within
    [start, end]; payments that would fall after ``end`` have not happened yet (those
    invoices are open at the end). See the module docstring for the story;
    ``independent_lateness`` and ``behaviour_change``: :func:`generate_book_with_truth`.
    ``loop``: with the collections loop's promises and contacts
    (``features.synthetic.loop``; off by default, so test books stay as they were).
    """
    return _generate(n_accounts, seed=seed, start=start, end=end,
                     independent_lateness=independent_lateness,
                     behaviour_change=behaviour_change, loop=loop)[0]


_LOW_CARDINALITY = {"account_id", "currency", "document_type", "terms_days", "method",
                    "segment", "region", "reason"}


class _Sink:
    """One open Parquet or CSV writer per table (row groups appended chunk by chunk)."""

    def __init__(self, out: Path, fmt: str, text: bool, loop_text: bool) -> None:
        self.out, self.fmt = out, fmt
        self.text = {t: loop_text if t in EVENT_TABLES else text for t in ALL_TABLES}
        self.writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter] = {}
        self.rows: dict[str, int] = dict.fromkeys(TABLES, 0)

    def path(self, table: str) -> Path:
        return self.out / f"{table}.{self.fmt}"

    def write(self, table: str, tbl: pa.Table) -> None:
        if table not in self.writers:
            self.writers[table] = self._open(table)
            self.rows[table] = 0
        self.writers[table].write_table(tbl)
        self.rows[table] += tbl.num_rows

    def _open(self, table: str) -> pq.ParquetWriter | pacsv.CSVWriter:
        path, schema = self.path(table), sa.schema(table, text=self.text[table])
        if self.fmt == "parquet":
            # Dictionary-encode only low-cardinality columns and keep statistics only
            # for the ordered id columns: halves the encoding CPU (measured) and keeps
            # row groups prunable by account and invoice.
            cols = set(schema.names)
            return pq.ParquetWriter(
                path, schema, compression="snappy",
                use_dictionary=sorted(cols & _LOW_CARDINALITY),
                write_statistics=sorted(cols & {"account_id", "invoice_id"}),
            )
        opts = pacsv.WriteOptions(quoting_style="needed")
        return pacsv.CSVWriter(path, schema, write_options=opts)

    def read(self, table: str) -> pa.Table:
        """A closed table's file back (CSV: every column as the text it was written as)."""
        if self.fmt == "parquet":  # (Parquet keeps seconds as milliseconds)
            return pq.read_table(self.path(table)).cast(sa.schema(table, text=self.text[table]))
        schema = sa.schema(table, text=True)
        opts = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True)
        return pacsv.read_csv(self.path(table), convert_options=opts)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers = {}


def write_book_folder(
    n_accounts: int,
    out: Path | str,
    *,
    seed: int = 0,
    start: date | str = "2023-01-01",
    end: date | str = "2024-12-31",
    error_rate: float = 0.0,
    fmt: str = "parquet",
    independent_lateness: bool = False,
    loop: bool = False,
    chunk_accounts: int | None = None,
) -> dict:
    """Generate the book and write ``<out>/{invoices,payments,accounts,disputes}.<fmt>``.

    The clean rows are exactly :func:`generate_book` with the same arguments
    (``independent_lateness`` and ``loop`` included). With
    ``error_rate > 0`` about that share of each table's rows are EXTRA bad rows, appended
    after the clean ones, spread over every applicable validation rule (see
    ``features._synthetic_errors``); their counts go to ``<out>/_injected_errors.json``
    as ``{table: {rule: n}}``, and date/amount columns are written as text (as raw exports
    are) so that unparseable values can exist. CSV is always text.

    ``loop``: also write ``promises`` and ``contacts`` (``features.synthetic.loop``; no bad
    rows are injected into them), streamed with the other tables.

    Streaming: the tables are generated and appended to the files ``chunk_accounts``
    accounts at a time (rounded up to whole random blocks, ``core.CHUNK_ACCOUNTS``; the
    default is one block), so peak memory is bounded by the chunk (plus the accounts
    table), not by ``n_accounts``; the files' rows never depend on ``chunk_accounts``.

    Returns ``{"rows": {table: rows written}, "injected": {...}, "seconds": float,
    "out": str}``.
    """
    t0 = time.perf_counter()
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    if not 0.0 <= error_rate < 0.5:
        raise ValueError(f"error_rate must be in [0, 0.5), got {error_rate}")
    s, e = _day(start), _day(end)
    _check(n_accounts, s, e)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = fmt == "csv" or error_rate > 0
    sink = _Sink(out, fmt, text, loop_text=fmt == "csv")
    samples = se.Samples(error_rate, np.random.default_rng([seed, 2])) if error_rate else None
    account_parts: list[pa.Table] = []
    widths, last = None, -1
    injected: dict[str, dict[str, int]] = {}
    try:
        for tables, info in _chunks(n_accounts, seed, s, e, text=text, loop=loop,
                                    loop_text=fmt == "csv", chunk_accounts=chunk_accounts,
                                    independent_lateness=independent_lateness):
            if "params" in info:
                widths = info["widths"]
            else:
                if samples is not None:  # (duplicates of any account are injected)
                    account_parts.append(tables["accounts"])
                last = max(last, info["last_day"])
                for block, ev in info["blocks"] if samples is not None else ():
                    samples.add(block, ev["invoices"]["issue"], ev["invoices"]["due"])
            for name, tbl in tables.items():
                sink.write(name, tbl)
            del tables, info
        # An empty chunk list still leaves every file with its header/schema.
        for name in (*TABLES, *EVENT_TABLES) if loop else TABLES:
            if name not in sink.writers:
                sink.write(name, sa.schema(name, text=sink.text[name]).empty_table())
        if samples is not None:
            clean = dict(sink.rows)
            bad, injected = se.injected_tables(
                samples, pa.concat_tables(account_parts), clean, next_invoice=clean["invoices"] + 1,
                next_payment=clean["payments"] + 1, widths=widths,
            )
            for name, tbl in bad.items():
                sink.write(name, tbl)
            (out / "_injected_errors.json").write_text(json.dumps(injected, indent=2) + "\n")
    finally:
        sink.close()
    if loop and last < e:
        for name in EVENT_TABLES:
            trimmed = _trim_loop(name, sink.read(name), last, widths)
            sink.write(name, trimmed)
            sink.rows[name] = trimmed.num_rows
        sink.close()
    return {
        "rows": dict(sink.rows),
        "injected": injected,
        "seconds": round(time.perf_counter() - t0, 3),
        "out": str(out),
    }
