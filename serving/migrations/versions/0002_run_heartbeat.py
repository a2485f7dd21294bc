"""Run heartbeat: when a running run's process last said it is alive, and which it is.

Revision ID: 0002
Revises: 0001

Adds the nullable ``runs.heartbeat_at`` (UTC) and ``runs.runner`` (``<host>:<pid>``). A
writer sets them when it begins a run and refreshes the heartbeat while the run is in
progress; a ``running`` run whose heartbeat is older than the stale limit belongs to a dead
process and is reaped (marked ``failed``, its files removed) by the next writer or by
``delinq runs``. Runs of earlier revisions have no heartbeat: their ``started_at`` stands in
for it. Additive, so SQLite needs no table copy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    op.add_column("runs", sa.Column("runner", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("runner")
        batch.drop_column("heartbeat_at")
