"""Roles and what each may do (issue 15): one table, read by every route.

- analyst: read everything; record outcomes (contacts, promises, disputes, notes, snoozes)
  on any account or, when the policy says so, only on accounts assigned to them;
- manager: also assign accounts and see everyone's activity;
- admin: also manage users.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    """A workbench user's role: the values of the store's ``users.role`` check
    (``serving.store_events.ROLES``, same order; a test holds them equal)."""

    ANALYST = "analyst"
    MANAGER = "manager"
    ADMIN = "admin"



class Right(StrEnum):
    """Something a route needs."""

    READ = "read"
    RECORD = "record"
    ASSIGN = "assign"
    SEE_ALL_ACTIVITY = "see_all_activity"
    MANAGE_USERS = "manage_users"


RIGHTS: Final[dict[Role, frozenset[Right]]] = {
    Role.ANALYST: frozenset({Right.READ, Right.RECORD}),
    Role.MANAGER: frozenset({Right.READ, Right.RECORD, Right.ASSIGN, Right.SEE_ALL_ACTIVITY}),
    Role.ADMIN: frozenset(Right),
}


def can(role: Role | str, right: Right) -> bool:
    """Whether ``role`` has ``right``."""
    return right in RIGHTS[Role(role)]
