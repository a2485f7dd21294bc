"""The reads across runs from ``worklist_history``; a run's rows may be a file of their own.

Revision ID: 0010
Revises: 0009

Creates ``worklist_history`` (``run_id, account_id`` and the columns of the account
page's score history: ``rank, segment, probability, priority, action``; keyed by run
first, ``WITHOUT ROWID`` on SQLite) and fills it from every run's rows in ``worklist``,
and adds ``runs.rows_path``: the SQLite file holding the run's worklist rows
(:mod:`serving.store_rows`, issue 20: a run's rows and indexes built in a file of their
own cost half the CPU of inserting them into the store's indexed table), NULL for every
existing run (their rows stay in ``worklist``). Additive: every run, its rows and files
are kept; the fill reads the worklist once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# A frozen copy at this revision (a later change ships its own revision).
_HISTORY = ("account_id", "rank", "segment", "probability", "priority", "action")


def upgrade() -> None:
    op.create_table(
        "worklist_history",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("probability", sa.Double),
        sa.Column("priority", sa.Double, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "account_id", name="pk_worklist_history"),
        sqlite_with_rowid=False,
    )
    columns = ", ".join(_HISTORY)
    op.execute(f"INSERT INTO worklist_history (run_id, {columns}) "
               f"SELECT run_id, {columns} FROM worklist ORDER BY run_id, account_id")
    # Plain ALTER TABLE (a batch copy of ``runs`` on SQLite would lose the partial index
    # ``ux_runs_current_as_of``'s WHERE).
    op.add_column("runs", sa.Column("rows_path", sa.Text))


def downgrade() -> None:
    # Runs whose rows are in a file of their own get them back in ``worklist`` (where the
    # code before 0010 reads them); the files stay, unread.
    bind = op.get_bind()
    for _run_id, path in bind.exec_driver_sql(
            "SELECT run_id, rows_path FROM runs WHERE rows_path IS NOT NULL").all():
        # the file's name, in the store's ``<db stem>_rows/`` folder (written out here, as
        # ``serving.store_rows.rows_dir`` says today: a revision does not follow later code)
        database = Path(bind.engine.url.database)
        file = database.with_name(f"{database.stem}_rows") / Path(path).name
        source = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = [r[1] for r in source.execute("PRAGMA table_info(worklist)")]
            rows = source.execute(f"SELECT {', '.join(names)} FROM worklist").fetchall()
        finally:
            source.close()
        if rows:
            bind.exec_driver_sql(f"INSERT INTO worklist ({', '.join(names)}) VALUES "
                                 f"({', '.join('?' * len(names))})", rows)
    op.drop_column("runs", "rows_path")  # SQLite >= 3.35 and PostgreSQL
    op.drop_table("worklist_history")
