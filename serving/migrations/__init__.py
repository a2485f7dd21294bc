"""Alembic migrations of the worklist store (applied by :func:`serving.store.upgrade`).

``env.py`` runs the revisions in ``versions/`` on the connection that
:mod:`serving.store_migrate` hands over; there is no ``alembic.ini``: the configuration is
built in code (:func:`serving.store_migrate.alembic_config`) with the package-resource
location ``serving:migrations``, so an installed wheel migrates as the checkout does.

Every change to the store's tables ships a revision, in the same commit as the change to
:mod:`serving.store_schema`:

1. Edit the tables in ``serving/store_schema.py``. New tables (users, events, audit, run
   heartbeats, live performance, ...) may live in their own module but register on
   ``store_schema.metadata`` and are imported by ``serving/store_tables.py``: that one
   ``MetaData`` (``store_tables.metadata``) is what ``env.py`` drafts against and what the
   tests compare the migrated database with.
2. Write ``versions/NNNN_<what>.py`` (copy ``script.py.mako`` or let Alembic draft it::

       from alembic import command
       from serving.store_migrate import alembic_config
       command.revision(alembic_config(), "add users", rev_id="0002")

   then check every line). Revision ids are a four-digit sequence; ``down_revision`` is the
   previous one. Revisions are frozen: never edit one that has been released.
3. Set ``store_schema.REVISION`` to the new id. ``tests/serving/test_store_migrations.py``
   fails until the migrated tables equal ``store_schema``'s on SQLite and PostgreSQL.

SQLite alters tables only additively (add a table, an index, a nullable column); anything
else goes through ``op.batch_alter_table`` (a table copy). Foreign keys are on in the
store's SQLite connections, so a rebuild of ``runs`` (referenced by ``explanations`` and
``drift``) must rebuild its referrers in the same revision.
"""
