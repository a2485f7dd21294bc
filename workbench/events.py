"""Recording outcomes: append-only events with their rules, projected state and audit.

An event is appended, never changed: a correction, a cancellation or a resolution is a new
event that ``refers_to`` the one it ends. One transaction per event appends it, updates the
account's projected state (assignee, snooze) and writes the audit row (before: the
account's state; after: the event and the new state).

Rules (each breach is an :class:`EventError` with an HTTP status and one sentence):

- ``promise``: promised date not in the past, amount positive and not above the account's
  open balance, the invoice (optional) one of the account's;
- ``contact``: channel and outcome from the spec's enumerations, contact date not after
  today;
- ``dispute_opened``: one of the account's invoices, not already in an open dispute;
- ``promise_cancelled`` / ``dispute_resolved``: refer to an open promise / dispute of the
  same account;
- ``assignment``: needs the assign right; the assignee an enabled user (or none);
- ``snooze``: until a date after today; ``unsnooze``: the account is snoozed.

"Today" is the UTC date of the caller's ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.dialects import postgresql, sqlite

from features.spec import ContactChannel, ContactOutcome, EventKind
from serving.store_events import account_state, events
from workbench.roles import Right, can
from workbench.users import User, connected, get_user, utc, write_audit

TEXT_MAX = 4000
ID_MAX = 64
#: Cents of slack when comparing a promised amount with the open balance.
AMOUNT_SLACK = 0.005


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactIn(_In):
    kind: Literal[EventKind.CONTACT]
    channel: ContactChannel
    outcome: ContactOutcome
    contact_date: date | None = Field(None, description="Day of the contact (default today).")
    note: str | None = Field(None, max_length=TEXT_MAX)


class PromiseIn(_In):
    kind: Literal[EventKind.PROMISE]
    promised_date: date = Field(description="Day the customer promised to pay by.")
    amount: float = Field(gt=0, description="Promised amount, in the book's currency.")
    invoice_id: str | None = Field(None, min_length=1, max_length=ID_MAX)

    @field_validator("amount")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("amount must be a finite number")
        return v


class PromiseCancelledIn(_In):
    kind: Literal[EventKind.PROMISE_CANCELLED]
    refers_to: int = Field(description="event_id of the promise cancelled.")
    reason: str | None = Field(None, max_length=TEXT_MAX)


class DisputeOpenedIn(_In):
    kind: Literal[EventKind.DISPUTE_OPENED]
    invoice_id: str = Field(min_length=1, max_length=ID_MAX)
    reason: str = Field(min_length=1, max_length=TEXT_MAX)


class DisputeResolvedIn(_In):
    kind: Literal[EventKind.DISPUTE_RESOLVED]
    refers_to: int = Field(description="event_id of the dispute_opened event resolved.")
    reason: str | None = Field(None, max_length=TEXT_MAX)


class NoteIn(_In):
    kind: Literal[EventKind.NOTE]
    note: str = Field(min_length=1, max_length=TEXT_MAX)


class AssignmentIn(_In):
    kind: Literal[EventKind.ASSIGNMENT]
    assignee: str | None = Field(description="Username, or null to unassign.", max_length=ID_MAX)


class SnoozeIn(_In):
    kind: Literal[EventKind.SNOOZE]
    until: date = Field(description="The account leaves the main view until this day.")
    reason: str | None = Field(None, max_length=TEXT_MAX)


class UnsnoozeIn(_In):
    kind: Literal[EventKind.UNSNOOZE]
    reason: str | None = Field(None, max_length=TEXT_MAX)


EventIn = Annotated[
    ContactIn | PromiseIn | PromiseCancelledIn | DisputeOpenedIn | DisputeResolvedIn | NoteIn
    | AssignmentIn | SnoozeIn | UnsnoozeIn,
    Field(discriminator="kind"),
]


class EventOut(BaseModel):
    """A recorded event (fields that do not apply to its kind are null)."""

    event_id: int
    kind: EventKind
    account_id: str
    recorded_at: datetime
    recorded_by: str
    event_date: date
    channel: ContactChannel | None = None
    outcome: ContactOutcome | None = None
    promised_date: date | None = None
    amount: float | None = None
    invoice_id: str | None = None
    reason: str | None = None
    note: str | None = None
    assignee: str | None = None
    until: date | None = None
    refers_to: int | None = None


class EventError(Exception):
    """An event that cannot be recorded: ``status`` (403, 404, 409 or 422) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AccountFacts:
    """What the rules need to know about the account (from the run and the book).

    ``open_balance``: None when the account has no row in the current run (then no promise
    can be checked, and none is accepted). ``invoice_ids``: None when the book is unknown
    (invoice ids are then not checked).
    """

    account_id: str
    open_balance: float | None
    invoice_ids: frozenset[str] | None


def event_out(row: Any) -> EventOut:
    values = dict(row._mapping)
    values["recorded_at"] = utc(values["recorded_at"])
    return EventOut.model_validate(values)


def _state(conn: sa.Connection, account_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(account_state).where(
        account_state.c.account_id == account_id)).first()
    if row is None:
        return None
    out = dict(row._mapping)
    if out.get("snoozed_until") is not None:
        out["snoozed_until"] = out["snoozed_until"].isoformat()
    return out


def _open_ref(conn: sa.Connection, account_id: str, ref: int, opened: EventKind,
              closing: EventKind) -> None:
    row = conn.execute(sa.select(events.c.kind, events.c.account_id).where(
        events.c.event_id == ref)).first()
    if row is None or row.account_id != account_id or row.kind != opened.value:
        raise EventError(404, f"no {opened.value} event {ref} on this account")
    closed = conn.execute(sa.select(events.c.event_id).where(
        events.c.refers_to == ref, events.c.kind == closing.value)).first()
    if closed is not None:
        raise EventError(409, f"{opened.value} event {ref} was already ended by event "
                              f"{closed.event_id}")


def _check(conn: sa.Connection, body: Any, facts: AccountFacts, today: date,
           state: dict[str, Any] | None) -> dict[str, Any]:
    """The event's columns beyond who/when/what account, or :class:`EventError`."""
    kind = EventKind(body.kind)
    values: dict[str, Any] = {"event_date": today}
    invoice = getattr(body, "invoice_id", None)
    if invoice is not None and facts.invoice_ids is not None and invoice not in facts.invoice_ids:
        raise EventError(422, f"invoice {invoice!r} is not one of this account's invoices")
    if kind is EventKind.CONTACT:
        day = body.contact_date or today
        if day > today:
            raise EventError(422, f"contact_date {day} is after today ({today})")
        values.update(event_date=day, channel=body.channel.value, outcome=body.outcome.value,
                      note=body.note)
    elif kind is EventKind.PROMISE:
        if body.promised_date < today:
            raise EventError(422, f"promised_date {body.promised_date} is in the past "
                                  f"(today is {today})")
        if facts.open_balance is None:
            raise EventError(409, "the account has no open balance in the current run")
        if body.amount > facts.open_balance + AMOUNT_SLACK:
            raise EventError(422, f"amount {body.amount:.2f} is above the open balance "
                                  f"{facts.open_balance:.2f}")
        values.update(promised_date=body.promised_date, amount=body.amount, invoice_id=invoice)
    elif kind in (EventKind.PROMISE_CANCELLED, EventKind.DISPUTE_RESOLVED):
        opened = EventKind.PROMISE if kind is EventKind.PROMISE_CANCELLED else \
            EventKind.DISPUTE_OPENED
        _open_ref(conn, facts.account_id, body.refers_to, opened, kind)
        values.update(refers_to=body.refers_to, reason=body.reason)
    elif kind is EventKind.DISPUTE_OPENED:
        resolved = events.alias("resolved")
        still_open = conn.execute(sa.select(events.c.event_id).where(
            events.c.account_id == facts.account_id, events.c.invoice_id == invoice,
            events.c.kind == EventKind.DISPUTE_OPENED.value,
            ~sa.exists().where(resolved.c.refers_to == events.c.event_id,
                               resolved.c.kind == EventKind.DISPUTE_RESOLVED.value),
        )).first()
        if still_open is not None:
            raise EventError(409, f"invoice {invoice!r} is already in an open dispute "
                                  f"(event {still_open.event_id})")
        values.update(invoice_id=invoice, reason=body.reason)
    elif kind is EventKind.NOTE:
        values.update(note=body.note)
    elif kind is EventKind.ASSIGNMENT:
        if body.assignee is not None:
            user = get_user(conn, body.assignee)
            if user is None or user.disabled:
                raise EventError(422, f"no enabled user {body.assignee!r} to assign")
        values.update(assignee=body.assignee)
    elif kind is EventKind.SNOOZE:
        if body.until <= today:
            raise EventError(422, f"until {body.until} must be after today ({today})")
        values.update(until=body.until, reason=body.reason)
    elif kind is EventKind.UNSNOOZE:
        until = None if state is None else state.get("snoozed_until")
        if until is None or date.fromisoformat(until) <= today:
            raise EventError(409, "the account is not snoozed")
        values.update(reason=body.reason)
    return values


def _may(user: User, kind: EventKind, state: dict[str, Any] | None, assigned_only: bool) -> None:
    if kind is EventKind.ASSIGNMENT:
        if not can(user.role, Right.ASSIGN):
            raise EventError(403, f"role {user.role.value} may not assign accounts")
        return
    if not can(user.role, Right.RECORD):
        raise EventError(403, f"role {user.role.value} may not record events")
    mine = state is not None and state.get("assignee") == user.username
    if assigned_only and not can(user.role, Right.ASSIGN) and not mine:
        raise EventError(403, "analysts record outcomes only on accounts assigned to them")


def _project(conn: sa.Connection, account_id: str, kind: EventKind, values: dict[str, Any],
             event_id: int, state: dict[str, Any] | None) -> None:
    """Update the account's projected assignee and snooze (an upsert)."""
    row = {"account_id": account_id, "last_event_id": event_id,
           "assignee": None if state is None else state.get("assignee"),
           "snoozed_until": None if state is None or state.get("snoozed_until") is None
           else date.fromisoformat(state["snoozed_until"])}
    if kind is EventKind.ASSIGNMENT:
        row["assignee"] = values["assignee"]
    elif kind is EventKind.SNOOZE:
        row["snoozed_until"] = values["until"]
    elif kind is EventKind.UNSNOOZE:
        row["snoozed_until"] = None
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(account_state).values(**row)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[account_state.c.account_id],
        set_={k: stmt.excluded[k] for k in ("assignee", "snoozed_until", "last_event_id")}))


def record_event(engine: sa.Engine, body: Any, *, facts: AccountFacts, user: User,
                 now: datetime, assigned_only: bool = False) -> EventOut:
    """Append ``body`` (one of the ``*In`` models) on ``facts.account_id`` as ``user``.

    One transaction: the rules (:class:`EventError` if broken), the event, the account's
    projected state, the audit row. ``now`` (UTC) is the event's ``recorded_at``.
    """
    kind = EventKind(body.kind)
    today = now.date()
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")  # the write lock before the checks
        with conn.begin():
            state = _state(conn, facts.account_id)
            _may(user, kind, state, assigned_only)
            values = _check(conn, body, facts, today, state)
            event_id = conn.execute(events.insert().values(
                kind=kind.value, account_id=facts.account_id, recorded_at=now,
                recorded_by=user.username, **values).returning(events.c.event_id)).scalar_one()
            _project(conn, facts.account_id, kind, values, event_id, state)
            row = conn.execute(sa.select(events).where(events.c.event_id == event_id)).one()
            out = event_out(row)
            write_audit(conn, actor=user.username, action=f"event.{kind.value}",
                        target=f"account:{facts.account_id}", now=now, before=state,
                        after={"event": out.model_dump(mode="json"),
                               "state": _state(conn, facts.account_id)})
    return out


def list_events(bind: sa.Engine | sa.Connection, *, account_id: str | None = None,
                recorded_by: str | None = None, kind: EventKind | None = None,
                before: int | None = None, limit: int = 50) -> list[EventOut]:
    """Events newest first, filtered; ``before``: only event ids below it (keyset);
    ``bind``: an engine or the request's connection (:func:`workbench.users.connected`)."""
    query = sa.select(events).order_by(events.c.event_id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(events.c.account_id == account_id)
    if recorded_by is not None:
        query = query.where(events.c.recorded_by == recorded_by)
    if kind is not None:
        query = query.where(events.c.kind == EventKind(kind).value)
    if before is not None:
        query = query.where(events.c.event_id < before)
    with connected(bind) as conn:
        return [event_out(r) for r in conn.execute(query).all()]


def account_state_of(engine: sa.Engine, account_id: str) -> dict[str, Any] | None:
    """The account's projected state (assignee, snoozed_until as ISO text), or None."""
    with engine.connect() as conn:
        return _state(conn, account_id)
