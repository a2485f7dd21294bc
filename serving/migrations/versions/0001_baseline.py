"""Baseline: the store as the release before migrations created it.

Revision ID: 0001
Revises:

Frozen copy of the tables ``serving/store_schema.py`` defined when the store had no
version (``metadata.create_all``): runs, worklist, explanations, drift. A store created by
that release has exactly these tables and columns; :mod:`serving.store_migrate` recognises
it and stamps it ``0001`` instead of running this revision. Never edit this file: later
changes are later revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = 64  # store_schema.ID_LENGTH at the baseline


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(_ID), primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("early_warning_version", sa.String(_ID)),
        sa.Column("persistence_version", sa.String(_ID)),
        sa.Column("feature_set_version", sa.String(_ID)),
        sa.Column("n_scored", sa.Integer),
        sa.Column("n_by_segment", sa.JSON),
        sa.Column("timings", sa.JSON),
        sa.Column("meta", sa.JSON),
        sa.Column("message", sa.Text),
        sa.Column("is_current", sa.Boolean, nullable=False),
        sa.Column("replaced_by", sa.String(_ID)),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_runs_status"),
    )
    op.create_index(
        "ux_runs_current_as_of", "runs", ["as_of"], unique=True,
        sqlite_where=sa.text("is_current"), postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "worklist",
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("open_balance", sa.Double, nullable=False),
        sa.Column("past_due_amount", sa.Double),
        sa.Column("oldest_dpd", sa.Double),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("probability", sa.Double, nullable=False),
        sa.Column("priority", sa.Double, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("reason_1", sa.Text),
        sa.Column("reason_2", sa.Text),
        sa.Column("reason_3", sa.Text),
        sa.Column("mitigating_reason", sa.Text),
        sa.Column("reasons_json", sa.Text),
        sa.Column("model_version", sa.Text),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "rank", name="pk_worklist"),
    )
    op.create_table(
        "explanations",
        sa.Column("run_id", sa.String(_ID), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "drift",
        sa.Column("run_id", sa.String(_ID), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("psi", sa.Double),
        sa.Column("flag", sa.Text),
        sa.PrimaryKeyConstraint("run_id", "position", name="pk_drift"),
    )


def downgrade() -> None:
    # Going below the baseline would drop every run; the store never does that.
    raise NotImplementedError("the baseline revision is not downgraded (it would drop every run)")
