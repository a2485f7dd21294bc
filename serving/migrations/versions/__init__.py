"""Revisions of the worklist store's schema, oldest first (see ``serving.migrations``)."""
