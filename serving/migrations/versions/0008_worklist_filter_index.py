"""Sort indexes that also filter: a rare worklist filter sorted by any key reads few rows.

Revision ID: 0008
Revises: 0007

Rebuilds ``ix_worklist_probability``, ``ix_worklist_balance`` and ``ix_worklist_dpd``
(0005: ``run_id``, the sort key descending, ``rank``) with ``segment``, ``action`` and
``account_id`` after ``rank``, and adds ``ix_account_directory_region_of``
(``account_id``, ``region``). A page filtered by segment, action and region walks its sort
index as before, but tests segment and action on the index entry itself and joins the
directory through an index that holds the region, so only the rows that pass are read
from the tables (issue 16: one region, segment and action of a 1M-account run, sorted by
DPD, read ~6,000 worklist rows and as many directory rows per page). Additive in effect:
rows and files are untouched; the index builds read the worklist once each.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen copy of the sort keys at this revision (0005's expressions).
_SORT_KEYS = {
    "probability": "coalesce(probability, -1.0)",
    "balance": "open_balance",
    "dpd": "coalesce(oldest_dpd, -1000000000.0)",
}


def _rebuild(columns_after_rank: list[str]) -> None:
    for name, key in _SORT_KEYS.items():
        op.drop_index(f"ix_worklist_{name}", table_name="worklist")
        op.create_index(f"ix_worklist_{name}", "worklist",
                        ["run_id", sa.text(f"{key} DESC"), "rank", *columns_after_rank])


def upgrade() -> None:
    _rebuild(["segment", "action", "account_id"])
    op.create_index("ix_account_directory_region_of", "account_directory",
                    ["account_id", "region"])


def downgrade() -> None:
    op.drop_index("ix_account_directory_region_of", table_name="account_directory")
    _rebuild([])
