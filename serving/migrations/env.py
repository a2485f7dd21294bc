"""Alembic environment of the worklist store (see ``serving/migrations/__init__.py``).

Runs the migrations on the connection in ``config.attributes["connection"]``, inside the
transaction (and lock) :mod:`serving.store_migrate` already holds: all pending revisions
commit together or not at all. Offline (``--sql``) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from serving import store_tables
from serving.store_migrate import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the store's migrations run on a connection: use serving.store.upgrade(url) "
        "or `delinq db upgrade`"
    )
context.configure(
    connection=connection,
    target_metadata=store_tables.metadata,
    version_table=VERSION_TABLE,
    compare_type=True,
    # SQLite cannot ALTER most things; drafted revisions use table copies there.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
