"""Every table of the store on its one ``MetaData``: the scoring tables
(:mod:`serving.store_schema`) and the workbench's (:mod:`serving.store_events`, which
defines its tables on the same metadata) and the precomputed worklist totals
(:mod:`serving.store_totals`). What the migrations draft against
(``serving/migrations/env.py``) and what the migration tests compare a migrated store with.

A module of its own so that neither table module imports the other both ways.
"""

from __future__ import annotations

from serving import store_events, store_schema, store_totals
from serving.dunning import tables as dunning_tables

#: All the store's tables (revision :data:`REVISION`).
metadata = store_schema.metadata
REVISION = store_schema.REVISION

__all__ = ["REVISION", "dunning_tables", "metadata", "store_events", "store_schema",
           "store_totals"]
