"""The account index keyed by run first: a publish adds its entries as one range.

Revision ID: 0009
Revises: 0008

Rebuilds ``ix_worklist_account`` (0004: ``account_id, run_id``) as ``run_id,
account_id`` (issue 20). Keyed by account first, each of a run's rows went into the index
beside the same account's rows of every other run kept: a publish into a store of many
runs touched pages all over an index that grows with the runs (``bench.store_indexes
--rows 300000 --prior 29``, 300k rows into a store of 30 runs, 2 loaded cores: 13.3 CPU s
with the old key, 6.7 with this one; into an empty store the same, 6.0-6.8 either way).
Keyed by run first, a run's entries are one range of their own,
written page after page whatever the store holds. The workbench's reads by account find
the run first: one account's row in a run is the pair ``(run_id, account_id)``; its row
in every published run starts from ``ux_runs_current_as_of`` (the published runs, a few
hundred at most) and looks each run's entry up (``workbench.queries``); a search by id
prefix or name is a range or lookups inside the run's range. Additive in effect: rows and
files are untouched; the build reads the worklist once.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _rekey(columns: list[str]) -> None:
    op.drop_index("ix_worklist_account", table_name="worklist")
    op.create_index("ix_worklist_account", "worklist", columns)


def upgrade() -> None:
    _rekey(["run_id", "account_id"])


def downgrade() -> None:
    _rekey(["account_id", "run_id"])
