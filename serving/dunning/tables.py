"""The dunning tables of the worklist store (revision 0007, ``serving/migrations``).

- ``dunning_ladder``: per account, the ladder level last sent (``level``, one of
  :data:`serving.dunning.letters.LADDER`) and the ``as_of`` of the run that sent it
  (``sent_as_of``) with the instant (``sent_at``, UTC). A level is cleared (``level``
  NULL) when the account has nothing materially past due any more: its next letter starts
  the ladder again. Every change is also an ``audit`` row (actor ``dunning``).
- ``dunning_sends``: the send log, one row per **idempotency key** ``(account_id, letter,
  as_of)`` (unique): written ``sending`` *before* a message leaves, ``sent`` after,
  ``failed`` with the error, ``skipped`` with the rule that kept it from leaving (an
  invalid address). A key that has a row is never sent again, whatever its status, so a
  rerun of the same ``as_of`` sends nothing twice and nothing is retried automatically
  (a ``sending`` row left by a crash may or may not have left: a person decides).
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from serving.store_schema import ID_LENGTH, metadata

#: Statuses of a send-log row.
SEND_STATUSES: Final = ("sending", "sent", "failed", "skipped")
_TZ = sa.DateTime(timezone=True)
_STATUSES = ", ".join(f"'{s}'" for s in SEND_STATUSES)

dunning_ladder = sa.Table(
    "dunning_ladder",
    metadata,
    sa.Column("account_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("level", sa.String(32)),
    sa.Column("sent_as_of", sa.Date),
    sa.Column("sent_at", _TZ),
    sa.Column("updated_at", _TZ, nullable=False),
)

dunning_sends = sa.Table(
    "dunning_sends",
    metadata,
    sa.Column("send_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(ID_LENGTH), nullable=False),
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
sa.Index("ix_dunning_sends_run", dunning_sends.c.run_key)
