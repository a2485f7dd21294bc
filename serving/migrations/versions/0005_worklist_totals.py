"""Worklist totals per (run, segment, action, region), an index per sort key, name search.

Revision ID: 0005
Revises: 0004

Creates ``worklist_totals`` (:mod:`serving.store_totals`: accounts, open balance, amount at
risk and the aging buckets of each run's rows per segment, action, region and scorer,
computed at publish time) and fills it for every run that has rows; adds
``ix_worklist_probability``, ``ix_worklist_balance`` and ``ix_worklist_dpd`` (``run_id``,
the sort key descending, ``rank``) so every keyset page of every order is an index range, and
``ix_account_directory_name`` on ``lower(name)`` for the name-prefix search. Additive:
every run, its rows and files are kept; the index builds read the worklist once each.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen copies at this revision (a later change ships its own revision).
_BUCKETS = ((1, 30), (31, 60), (61, 90), (91, None))
_SORT_KEYS = {
    "probability": "coalesce(probability, -1.0)",
    "balance": "open_balance",
    "dpd": "coalesce(oldest_dpd, -1000000000.0)",
}


def _suffix(lo: int, hi: int | None) -> str:
    return f"{lo}_{hi}" if hi is not None else f"{lo}_plus"


def _inside(lo: int, hi: int | None) -> str:
    dpd = "w.oldest_dpd"
    return f"{dpd} >= {lo}" if hi is None else f"{dpd} >= {lo} AND {dpd} <= {hi}"


def upgrade() -> None:
    counts = [f"n_dpd_{_suffix(lo, hi)}" for lo, hi in _BUCKETS]
    balances = [f"bal_dpd_{_suffix(lo, hi)}" for lo, hi in _BUCKETS]
    op.create_table(
        "worklist_totals",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("region", sa.Text),
        sa.Column("scorer", sa.Text, nullable=False),
        sa.Column("accounts", sa.Integer, nullable=False),
        sa.Column("open_balance", sa.Double, nullable=False),
        sa.Column("at_risk", sa.Double, nullable=False),
        *(sa.Column(n, sa.Integer, nullable=False) for n in counts),
        *(sa.Column(n, sa.Double, nullable=False) for n in balances),
    )
    op.create_index("ix_worklist_totals_run", "worklist_totals", ["run_id"])
    n_sql = [f"COALESCE(SUM(CASE WHEN {_inside(lo, hi)} THEN 1 ELSE 0 END), 0)"
             for lo, hi in _BUCKETS]
    b_sql = [f"COALESCE(SUM(CASE WHEN {_inside(lo, hi)} THEN w.open_balance ELSE 0.0 END), "
             "0.0)" for lo, hi in _BUCKETS]
    columns = ["run_id", "segment", "action", "region", "scorer", "accounts", "open_balance",
               "at_risk", *counts, *balances]
    op.execute(
        f"INSERT INTO worklist_totals ({', '.join(columns)}) "
        "SELECT w.run_id, w.segment, w.action, d.region, COALESCE(w.scorer, 'model'), "
        "COUNT(*), "
        "COALESCE(SUM(w.open_balance), 0.0), COALESCE(SUM(w.priority), 0.0), "
        f"{', '.join(n_sql + b_sql)} "
        "FROM worklist w LEFT OUTER JOIN account_directory d ON d.account_id = w.account_id "
        "GROUP BY w.run_id, w.segment, w.action, d.region, COALESCE(w.scorer, 'model')"
    )
    for name, key in _SORT_KEYS.items():
        op.create_index(f"ix_worklist_{name}", "worklist",
                        ["run_id", sa.text(f"{key} DESC"), "rank"])
    op.create_index("ix_account_directory_name", "account_directory", [sa.text("lower(name)")])


def downgrade() -> None:
    op.drop_index("ix_account_directory_name", table_name="account_directory")
    for name in _SORT_KEYS:
        op.drop_index(f"ix_worklist_{name}", table_name="worklist")
    op.drop_table("worklist_totals")
