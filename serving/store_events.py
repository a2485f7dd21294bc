"""The workbench's tables in the worklist store, and events read back as data (revision 0004).

Beside the scoring tables of :mod:`serving.store_schema` (same metadata, same migrations):

- ``users``: who may sign in to the workbench, with a role and a password *hash* (never the
  password); a disabled user keeps their rows (events and audit name them).
- ``api_tokens``: tokens for scripts, stored as a SHA-256 hash of their secret part (the
  token itself is shown once, to its creator).
- ``events``: what analysts recorded, **append-only**: a correction, a cancellation or a
  resolution is a new event that ``refers_to`` the earlier one; nothing is updated or
  deleted. Each event has ``recorded_at`` (UTC, when the store took it) and
  ``recorded_by`` (a username), and ``event_date``: the business date it is about (the
  contact's date, the day a promise was made or a dispute opened), never after the day it
  was recorded. Kinds, channels and outcomes are the spec's enumerations
  (``features.spec.EventKind``, ``ContactChannel``, ``ContactOutcome``).
- ``account_state``: the current assignee and snooze of each account, a projection of its
  events kept in the same transaction as each append (so the worklist filters by them in
  SQL); the events stay the truth.
- ``account_directory``: name and region of each account of the staged book, so the
  worklist filters by region in SQL (refreshed from the book, not from events).
- ``audit``: every write by anyone (who, when, what, before/after as JSON).

:func:`read_promises` and :func:`read_contacts` give the recorded events in the shape of
DESIGN section 3's ``promises`` and ``contacts`` tables (plus ``recorded_at`` and
``recorded_by``), so the collections loop reads them as the same kind of data; an event
counts from its ``recorded_at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import pandas as pd
import sqlalchemy as sa

from features.spec import ContactChannel, ContactOutcome, EventKind
from serving.store_schema import ID_LENGTH, metadata

#: Roles of workbench users, from least to most rights (``workbench.roles`` says what each
#: may do).
ROLES: Final = ("analyst", "manager", "admin")
#: Prefix of the ids of recorded events when read as promises or contacts: keeps them apart
#: from the ids of an ERP's own ``promises``/``contacts`` tables.
EVENT_ID_PREFIX: Final = "wb-"

_KINDS = ", ".join(f"'{k.value}'" for k in EventKind)
_CHANNELS = ", ".join(f"'{c.value}'" for c in ContactChannel)
_OUTCOMES = ", ".join(f"'{o.value}'" for o in ContactOutcome)
_ROLES = ", ".join(f"'{r}'" for r in ROLES)
_TZ = sa.DateTime(timezone=True)

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", _TZ, nullable=False),
    sa.Column("created_by", sa.String(ID_LENGTH), nullable=False),
    sa.CheckConstraint(f"role IN ({_ROLES})", name="ck_users_role"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    # The token's public part (``dlq_<token_id>_<secret>``): found by id, then the secret's
    # hash is compared in constant time.
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(ID_LENGTH), sa.ForeignKey("users.username"),
              nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", _TZ, nullable=False),
    sa.Column("revoked_at", _TZ),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("recorded_at", _TZ, nullable=False),
    sa.Column("recorded_by", sa.String(ID_LENGTH), nullable=False),
    sa.Column("event_date", sa.Date, nullable=False),
    sa.Column("channel", sa.String(16)),
    sa.Column("outcome", sa.String(16)),
    sa.Column("promised_date", sa.Date),
    sa.Column("amount", sa.Double),
    sa.Column("invoice_id", sa.String(ID_LENGTH)),
    sa.Column("reason", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("assignee", sa.String(ID_LENGTH)),
    sa.Column("until", sa.Date),
    sa.Column("refers_to", sa.Integer, sa.ForeignKey("events.event_id")),
    sa.CheckConstraint(f"kind IN ({_KINDS})", name="ck_events_kind"),
    sa.CheckConstraint(f"channel IS NULL OR channel IN ({_CHANNELS})", name="ck_events_channel"),
    sa.CheckConstraint(f"outcome IS NULL OR outcome IN ({_OUTCOMES})", name="ck_events_outcome"),
    sa.CheckConstraint("amount IS NULL OR amount > 0", name="ck_events_amount"),
)
sa.Index("ix_events_account", events.c.account_id, events.c.event_id)
sa.Index("ix_events_recorded_by", events.c.recorded_by, events.c.event_id)

account_state = sa.Table(
    "account_state",
    metadata,
    sa.Column("account_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("assignee", sa.String(ID_LENGTH)),
    sa.Column("snoozed_until", sa.Date),
    sa.Column("last_event_id", sa.Integer, nullable=False),
)
sa.Index("ix_account_state_assignee", account_state.c.assignee)

account_directory = sa.Table(
    "account_directory",
    metadata,
    sa.Column("account_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("region", sa.Text),
)
sa.Index("ix_account_directory_region", account_directory.c.region)
# Revision 0008: a worklist page filtered by region joins the directory on this index alone.
sa.Index("ix_account_directory_region_of", account_directory.c.account_id,
         account_directory.c.region)
# Revision 0005: the workbench's name-prefix search is a range on the lower-cased name.
sa.Index("ix_account_directory_name", sa.func.lower(account_directory.c.name))

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", _TZ, nullable=False),
    sa.Column("actor", sa.String(ID_LENGTH), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(256), nullable=False),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
)
sa.Index("ix_audit_actor", audit.c.actor, audit.c.audit_id)

#: Columns of :func:`read_promises` (DESIGN section 3's ``promises`` plus who/when).
PROMISE_COLUMNS: Final = ("promise_id", "account_id", "created_date", "promised_date", "amount",
                          "invoice_id", "recorded_at", "recorded_by")
#: Columns of :func:`read_contacts` (DESIGN section 3's ``contacts`` plus who/when).
CONTACT_COLUMNS: Final = ("contact_id", "account_id", "contact_date", "channel", "outcome",
                          "recorded_at", "recorded_by")


def _frame(rows: list[sa.Row], columns: tuple[str, ...], dates: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(columns))
    for col in dates:
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[s]")
    frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True)
    return frame


def _cut(query: sa.Select, recorded_before: datetime | None) -> sa.Select:
    return query if recorded_before is None else query.where(
        events.c.recorded_at < recorded_before)


def read_promises(conn: sa.Connection, *, recorded_before: datetime | None = None
                  ) -> pd.DataFrame:
    """Promises to pay recorded in the workbench, as DESIGN's ``promises`` table.

    One row per ``promise`` event (``promise_id`` = ``wb-<event_id>``, ``created_date`` =
    its ``event_date``), in recording order; a later ``promise_cancelled`` event is read
    with :func:`read_events`. ``recorded_before`` (UTC): only events the store held strictly
    before that instant (point in time). Dates are ``datetime64[s]``.
    """
    e = events
    query = sa.select(
        (sa.literal(EVENT_ID_PREFIX) + sa.cast(e.c.event_id, sa.String)).label("promise_id"),
        e.c.account_id, e.c.event_date, e.c.promised_date, e.c.amount, e.c.invoice_id,
        e.c.recorded_at, e.c.recorded_by,
    ).where(e.c.kind == EventKind.PROMISE.value).order_by(e.c.event_id)
    rows = conn.execute(_cut(query, recorded_before)).all()
    return _frame(rows, PROMISE_COLUMNS, ("created_date", "promised_date"))


def read_contacts(conn: sa.Connection, *, recorded_before: datetime | None = None
                  ) -> pd.DataFrame:
    """Contacts recorded in the workbench, as DESIGN's ``contacts`` table (``contact_id`` =
    ``wb-<event_id>``, ``contact_date`` = its ``event_date``); see :func:`read_promises`."""
    e = events
    query = sa.select(
        (sa.literal(EVENT_ID_PREFIX) + sa.cast(e.c.event_id, sa.String)).label("contact_id"),
        e.c.account_id, e.c.event_date, e.c.channel, e.c.outcome, e.c.recorded_at,
        e.c.recorded_by,
    ).where(e.c.kind == EventKind.CONTACT.value).order_by(e.c.event_id)
    rows = conn.execute(_cut(query, recorded_before)).all()
    return _frame(rows, CONTACT_COLUMNS, ("contact_date",))


def read_events(conn: sa.Connection, *, recorded_before: datetime | None = None
                ) -> pd.DataFrame:
    """Every recorded event (all columns of ``events``), in recording order."""
    query = _cut(sa.select(events).order_by(events.c.event_id), recorded_before)
    result = conn.execute(query)
    return pd.DataFrame.from_records([tuple(r) for r in result.all()],
                                     columns=list(result.keys()))
