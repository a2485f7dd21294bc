"""The workbench's recorded events as data of the collections loop (issue 17).

What analysts record in the workbench (``serving.store_events``) is read back at a scoring
or training date as the same kind of data an ERP exports: ``promises`` and ``contacts``
(the contract's event tables), extra ``disputes`` rows, and the analysts' snoozes. Point in
time: an event counts only when the store took it strictly before ``as_of`` (midnight
UTC), so every read is cut at ``recorded_before = as_of 00:00 UTC``; each row carries the
UTC day it was recorded (``recorded_date``), which the features compare with ``as_of``
(``features.contract.book``: a day strictly before ``as_of`` is exactly a ``recorded_at``
strictly before it).

- A ``promise_cancelled`` event sets its promise's ``cancelled_date`` (the day it was
  recorded).
- A ``dispute_opened`` event becomes a ``disputes`` row of its invoice *dated the day it
  was recorded* (not its business date): the book's rule "dated strictly before
  ``as_of``" is then the recorded-at rule, so a back-dated dispute never leaks into an
  earlier ``as_of``; ``dispute_resolved`` sets ``resolved_date`` the same way. Rows naming
  an invoice the book does not hold are left out (the book may have changed since).
- A ``snooze`` holds its account until its ``until`` date unless a later ``unsnooze``
  refers to it; the latest snooze of an account wins.

Pure reads: nothing is written, and nothing here reads the clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa

from features.contract.book import DATE_DTYPE, Book, columns_of, conform, empty_table
from features.spec import EventKind, as_day
from serving.store_events import EVENT_ID_PREFIX, read_contacts, read_events, read_promises

#: Columns of :attr:`LoopEvents.snoozes`: the account and the day its snooze ends (the
#: account is held while ``as_of`` is before ``snoozed_until``).
SNOOZE_COLUMNS = ("account_id", "snoozed_until")


@dataclass(frozen=True)
class LoopEvents:
    """Recorded events known at one ``as_of``, in the contract's shapes.

    ``promises``, ``contacts``: contract tables (``features.contract.book``) with
    ``recorded_date``; ``disputes``: extra ``disputes`` rows (see the module docstring);
    ``snoozes``: :data:`SNOOZE_COLUMNS`, one row per snoozed account.
    """

    promises: pd.DataFrame
    contacts: pd.DataFrame
    disputes: pd.DataFrame
    snoozes: pd.DataFrame

    @classmethod
    def empty(cls) -> LoopEvents:
        """No recorded event."""
        return cls(empty_table("promises"), empty_table("contacts"), empty_table("disputes"),
                   _snoozes(pd.DataFrame(columns=["account_id", "snoozed_until"])))

    @property
    def n_events(self) -> int:
        """Rows read (promises, contacts, disputes, snoozes)."""
        return sum(len(f) for f in (self.promises, self.contacts, self.disputes, self.snoozes))


def recorded_before(as_of: date | pd.Timestamp) -> datetime:
    """The instant (UTC) before which an event is known at ``as_of``: its midnight."""
    day = as_day(as_of)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _day(stamps: pd.Series) -> pd.Series:
    """UTC day of timezone-aware instants, as ``datetime64[s]`` at midnight."""
    utc = pd.to_datetime(stamps, utc=True)
    return utc.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize().astype(DATE_DTYPE)


def _ends(events: pd.DataFrame, kind: EventKind) -> pd.Series:
    """Day (UTC) each event was ended by an event of ``kind``, by the ended event's id."""
    rows = events[events["kind"] == kind.value]
    if rows.empty:
        return pd.Series(dtype=DATE_DTYPE)
    days = pd.Series(_day(rows["recorded_at"]).to_numpy(),
                     index=rows["refers_to"].astype("int64").to_numpy())
    return days.groupby(level=0).min()


def _snoozes(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": frame["account_id"].astype("str"),
        "snoozed_until": pd.to_datetime(frame["snoozed_until"]).astype(DATE_DTYPE),
    }).reset_index(drop=True)


def read_loop_events(conn: sa.Connection, *, as_of: date | pd.Timestamp) -> LoopEvents:
    """The events recorded strictly before ``as_of`` (UTC midnight), as :class:`LoopEvents`.

    ``conn``: a connection to the worklist store (any revision with the ``events`` table).
    """
    cut = recorded_before(as_of)
    events = read_events(conn, recorded_before=cut)
    if events.empty:
        return LoopEvents.empty()
    promises = read_promises(conn, recorded_before=cut)
    ids = promises["promise_id"].str.slice(len(EVENT_ID_PREFIX)).astype("int64")
    cancelled = _ends(events, EventKind.PROMISE_CANCELLED)
    promises = promises.assign(
        recorded_date=_day(promises["recorded_at"]),
        cancelled_date=pd.Series(cancelled.reindex(ids.to_numpy()).to_numpy(),
                                 index=promises.index, dtype=DATE_DTYPE))
    contacts = read_contacts(conn, recorded_before=cut)
    contacts = contacts.assign(recorded_date=_day(contacts["recorded_at"]))

    opened = events[events["kind"] == EventKind.DISPUTE_OPENED.value]
    resolved = _ends(events, EventKind.DISPUTE_RESOLVED)
    disputes = pd.DataFrame({
        "invoice_id": opened["invoice_id"].astype("str"),
        "opened_date": _day(opened["recorded_at"]),
        "resolved_date": pd.Series(
            resolved.reindex(opened["event_id"].astype("int64").to_numpy()).to_numpy(),
            index=opened.index, dtype=DATE_DTYPE),
        "reason": opened["reason"].astype("str"),
    })

    snooze = events[events["kind"] == EventKind.SNOOZE.value]
    ended = set(_ends(events, EventKind.UNSNOOZE).index)
    latest = snooze.sort_values("event_id").groupby("account_id").tail(1)
    latest = latest[~latest["event_id"].astype("int64").isin(ended)]
    snoozes = _snoozes(latest.rename(columns={"until": "snoozed_until"}))
    return LoopEvents(
        promises=conform("promises", promises[list(columns_of("promises"))]),
        contacts=conform("contacts", contacts[list(columns_of("contacts"))]),
        disputes=conform("disputes", disputes),
        snoozes=snoozes,
    )


def book_with_events(book: Book, events: LoopEvents) -> Book:
    """``book`` plus the recorded promises, contacts and disputes (never mutates ``book``).

    Recorded rows of accounts or invoices the book does not hold are left out, as
    validation would (``unknown_account``, ``unknown_invoice``).
    """
    if events.n_events == 0:
        return book
    accounts = set(book.invoices["account_id"].unique())  # (codes: no string per row)
    invoices = set(book.invoices["invoice_id"])

    def keep(frame: pd.DataFrame, column: str, known: set[str]) -> pd.DataFrame:
        return frame[frame[column].isin(known)]

    return dataclasses.replace(
        book,
        promises=pd.concat([book.promises, keep(events.promises, "account_id", accounts)],
                           ignore_index=True),
        contacts=pd.concat([book.contacts, keep(events.contacts, "account_id", accounts)],
                           ignore_index=True),
        disputes=pd.concat([book.disputes, keep(events.disputes, "invoice_id", invoices)],
                           ignore_index=True),
    )
