"""Dunning: the ladder state per account and the send log (issue 22).

Revision ID: 0007
Revises: 0004

Creates the empty tables of :mod:`serving.dunning.tables`: ``dunning_ladder`` (level last
sent per account) and ``dunning_sends`` (one row per idempotency key account, letter,
as_of). Additive: nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
# Frozen copy of the statuses at this revision.
_STATUSES = "'sending', 'sent', 'failed', 'skipped'"


def upgrade() -> None:
    op.create_table(
        "dunning_ladder",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("level", sa.String(32)),
        sa.Column("sent_as_of", sa.Date),
        sa.Column("sent_at", _TZ),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_table(
        "dunning_sends",
        sa.Column("send_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("letter", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("template", sa.String(64)),
        sa.Column("message_id", sa.String(256)),
        sa.Column("recorded_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.UniqueConstraint("account_id", "letter", "as_of", name="uq_dunning_sends_key"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="ck_dunning_sends_status"),
    )
    op.create_index("ix_dunning_sends_run", "dunning_sends", ["run_key"])


def downgrade() -> None:
    op.drop_index("ix_dunning_sends_run", table_name="dunning_sends")
    op.drop_table("dunning_sends")
    op.drop_table("dunning_ladder")
