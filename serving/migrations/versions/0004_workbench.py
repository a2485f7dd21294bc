"""Workbench: users, API tokens, append-only events, account state and directory, audit.

Revision ID: 0004
Revises: 0003

Creates the tables of :mod:`serving.store_events` (empty) and the index
``ix_worklist_account`` (``account_id, run_id``) so that one account's rows across runs are
index lookups (the workbench's account page and score history). Additive: every run, its
rows and files are kept; the index build reads the worklist table once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
# Frozen copies of the enumerations at this revision (a later change to the spec ships its
# own revision that rewrites the checks).
_ROLES = "'analyst', 'manager', 'admin'"
_KINDS = ("'contact', 'promise', 'promise_cancelled', 'dispute_opened', 'dispute_resolved', "
          "'note', 'assignment', 'snooze', 'unsnooze'")
_CHANNELS = "'phone', 'email', 'letter', 'portal', 'sms', 'visit'"
_OUTCOMES = "'reached', 'no_answer', 'wrong_contact', 'refused', 'promised', 'disputed'"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.CheckConstraint(f"role IN ({_ROLES})", name="ck_users_role"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("revoked_at", _TZ),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", _TZ, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("event_date", sa.Date, nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("outcome", sa.String(16)),
        sa.Column("promised_date", sa.Date),
        sa.Column("amount", sa.Double),
        sa.Column("invoice_id", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("assignee", sa.String(64)),
        sa.Column("until", sa.Date),
        sa.Column("refers_to", sa.Integer, sa.ForeignKey("events.event_id")),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name="ck_events_kind"),
        sa.CheckConstraint(f"channel IS NULL OR channel IN ({_CHANNELS})",
                           name="ck_events_channel"),
        sa.CheckConstraint(f"outcome IS NULL OR outcome IN ({_OUTCOMES})",
                           name="ck_events_outcome"),
        sa.CheckConstraint("amount IS NULL OR amount > 0", name="ck_events_amount"),
    )
    op.create_index("ix_events_account", "events", ["account_id", "event_id"])
    op.create_index("ix_events_recorded_by", "events", ["recorded_by", "event_id"])
    op.create_table(
        "account_state",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("assignee", sa.String(64)),
        sa.Column("snoozed_until", sa.Date),
        sa.Column("last_event_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_account_state_assignee", "account_state", ["assignee"])
    op.create_table(
        "account_directory",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("region", sa.Text),
    )
    op.create_index("ix_account_directory_region", "account_directory", ["region"])
    op.create_table(
        "audit",
        sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
    )
    op.create_index("ix_audit_actor", "audit", ["actor", "audit_id"])
    op.create_index("ix_worklist_account", "worklist", ["account_id", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_worklist_account", table_name="worklist")
    for table in ("audit", "account_directory", "account_state", "events", "api_tokens",
                  "users"):
        op.drop_table(table)
