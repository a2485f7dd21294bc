"""Worklist scorer: which scorer ranked a row and where its probability came from.

Revision ID: 0003
Revises: 0002

Adds the nullable ``worklist.scorer`` (``model`` | ``aging_rule``: a population without a
gated champion model is ranked by the aging rule) and ``worklist.calibration`` (where the
probability came from: ``validation``, ``history``, ``dpd_band`` or ``none``), and makes
``worklist.probability`` nullable: an aging-rule row on data too thin to calibrate has no
probability (``calibration = 'none'``, shown as "n/a (thin data)"). Rows written before this
revision were all ranked by a model: their null ``scorer`` reads as ``model``. The
combinations allowed are checked where rows are written (``store_schema.check_worklist``).
Relaxing a NOT NULL on SQLite copies the table (Alembic batch mode); the copy keeps every
row, the primary key and the column types.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worklist") as batch:
        batch.add_column(sa.Column("scorer", sa.Text))
        batch.add_column(sa.Column("calibration", sa.Text))
        batch.alter_column("probability", existing_type=sa.Double, nullable=True)


def downgrade() -> None:
    # A downgrade cannot restore NOT NULL over rows without a probability: refuse them.
    bind = op.get_bind()
    missing = bind.execute(
        sa.text("SELECT COUNT(*) FROM worklist WHERE probability IS NULL")
    ).scalar()
    if missing:
        raise RuntimeError(
            f"cannot downgrade below 0003: {missing} worklist row(s) have no probability "
            "(ranked by the aging rule on thin data); delete those runs first"
        )
    with op.batch_alter_table("worklist") as batch:
        batch.alter_column("probability", existing_type=sa.Double, nullable=False)
        batch.drop_column("calibration")
        batch.drop_column("scorer")
