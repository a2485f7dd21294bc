"""Worklist hold: accounts held off the main ranking by an open promise or a snooze.

Revision ID: 0006
Revises: 0004

Adds three nullable ``worklist`` columns (issue 17, the collections loop): ``hold`` (why
the account is off the main ranking: ``promise``, an open promise to pay whose promised
date plus grace has not passed, or ``snooze``, an analyst's snooze; null: in the main
ranking), ``hold_date`` (the promised date or the snooze's end, as entered) and
``hold_ends`` (the first ``as_of`` at which the account is back in the main ranking). Held
rows are ranked after every row of the main ranking, so the workbench's "promised /
snoozed" view filters on ``hold``. Rows written before this revision were never held.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worklist") as batch:
        batch.add_column(sa.Column("hold", sa.Text))
        batch.add_column(sa.Column("hold_date", sa.Date))
        batch.add_column(sa.Column("hold_ends", sa.Date))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 and PostgreSQL): a batch copy of the
    # table on SQLite would drop the expression indexes of 0005 (DESC sort keys), which
    # Alembic cannot reflect, and 0005's downgrade then fails on them.
    for column in ("hold_ends", "hold_date", "hold"):
        op.drop_column("worklist", column)
