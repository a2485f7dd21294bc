"""Users, API tokens and the audit trail in the store (tables of ``serving.store_events``).

Every write here is audited in the same transaction: ``audit`` gets who (``actor``), when,
what (``action``, ``target``) and the row before and after, never a secret (password
hashes and token digests are left out). Times come from the caller (``now``, UTC).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from serving.store_events import api_tokens, audit, users
from workbench.roles import Role
from workbench.security import (
    hash_password,
    new_api_token,
    parse_api_token,
    same_secret,
    secret_digest,
    verify_password,
)

#: Usernames: lower-case letters, digits, ``.``, ``_``, ``-``; 1-64 characters.
USERNAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)


class UserError(ValueError):
    """A user operation that cannot be done (unknown or existing user, bad name)."""


@dataclass(frozen=True)
class User:
    """A workbench user as stored (without the password hash)."""

    username: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str


def utc(stamp: datetime) -> datetime:
    """A stored time as UTC (SQLite hands back naive times; they were written in UTC)."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _user(row: Any) -> User:
    return User(username=row.username, role=Role(row.role), disabled=bool(row.disabled),
                created_at=utc(row.created_at), created_by=row.created_by)


def _public(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    out = asdict(user)
    out["role"] = user.role.value
    out["created_at"] = user.created_at.isoformat()
    return out


def write_audit(conn: sa.Connection, *, actor: str, action: str, target: str, now: datetime,
                before: Any = None, after: Any = None) -> None:
    """Append one audit row (inside the caller's transaction)."""
    conn.execute(audit.insert().values(at=now, actor=actor, action=action, target=target[:256],
                                       before=before, after=after))


def check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise UserError(f"a username is 1-64 characters of a-z, 0-9, '.', '_', '-' "
                        f"(starting with a letter or digit); got {username!r}")
    return username


def get_user(conn: sa.Connection, username: str) -> User | None:
    row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    return None if row is None else _user(row)


def list_users(engine: sa.Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.username)).all()
    return [_user(r) for r in rows]


def add_user(engine: sa.Engine, *, username: str, role: Role | str, password: str,
             actor: str, now: datetime) -> User:
    """Create a user with ``password`` (hashed here). ``UserError`` if the name is taken."""
    check_username(username)
    role = Role(role)
    digest = hash_password(password)
    with engine.begin() as conn:
        if get_user(conn, username) is not None:
            raise UserError(f"user {username!r} already exists")
        conn.execute(users.insert().values(username=username, role=role.value,
                                           password_hash=digest, disabled=False,
                                           created_at=now, created_by=actor))
        user = get_user(conn, username)
        write_audit(conn, actor=actor, action="user.add", target=f"user:{username}", now=now,
                    after=_public(user))
    assert user is not None
    return user


def update_user(engine: sa.Engine, username: str, *, actor: str, now: datetime,
                role: Role | str | None = None, disabled: bool | None = None,
                password: str | None = None) -> User:
    """Change a user's role, disabled flag or password (audited; the password never)."""
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = Role(role).value
    if disabled is not None:
        values["disabled"] = bool(disabled)
    if password is not None:
        values["password_hash"] = hash_password(password)
    with engine.begin() as conn:
        before = get_user(conn, username)
        if before is None:
            raise UserError(f"no user {username!r}")
        if values:
            conn.execute(users.update().where(users.c.username == username).values(**values))
        after = get_user(conn, username)
        write_audit(conn, actor=actor, action="user.update", target=f"user:{username}",
                    now=now, before=_public(before),
                    after={**(_public(after) or {}),
                           **({"password": "changed"} if password is not None else {})}
                    if values else _public(after))
    assert after is not None
    return after


def authenticate(engine: sa.Engine, username: str, password: str) -> User | None:
    """The enabled user with this username and password, else None (same cost either way)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    ok = verify_password(None if row is None else row.password_hash, password)
    if row is None or not ok or row.disabled:
        return None
    return _user(row)


def create_token(engine: sa.Engine, *, username: str, name: str, actor: str,
                 now: datetime) -> str:
    """A new API token for ``username``; returned once, stored only as a digest."""
    token, token_id, digest = new_api_token()
    with engine.begin() as conn:
        user = get_user(conn, username)
        if user is None:
            raise UserError(f"no user {username!r}")
        conn.execute(api_tokens.insert().values(token_id=token_id, username=username,
                                                name=name[:128], secret_sha256=digest,
                                                created_at=now))
        write_audit(conn, actor=actor, action="token.create", target=f"user:{username}",
                    now=now, after={"token_id": token_id, "name": name[:128]})
    return token


#: A token's digest and revocation with its user (built once: it runs on every API call,
#: and building and keying a statement cost more than running it).
_TOKEN_USER: Final = (
    sa.select(api_tokens.c.secret_sha256, api_tokens.c.revoked_at, users)
    .join(users, users.c.username == api_tokens.c.username)
    .where(api_tokens.c.token_id == sa.bindparam("token_id", type_=sa.String)))


def user_of_token(engine: sa.Engine, token: str) -> User | None:
    """The enabled user of a valid, unrevoked API token, else None."""
    parsed = parse_api_token(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    with engine.connect() as conn:
        row = conn.execute(_TOKEN_USER, {"token_id": token_id}).first()
    if row is None or row.revoked_at is not None or row.disabled:
        return None
    if not same_secret(row.secret_sha256, secret_digest(secret)):
        return None
    return _user(row)


@contextlib.contextmanager
def connected(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    """``bind`` itself when it is a connection (a page's one connection for all its reads:
    each checkout from the pool cost ~0.3-1 ms of CPU), else one of the engine's for the
    block."""
    if isinstance(bind, sa.Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


def enabled_user(bind: sa.Engine | sa.Connection, username: str) -> User | None:
    """The user named in a session, if it still exists and is enabled (``bind``: an engine
    or the request's connection, :func:`connected`)."""
    with connected(bind) as conn:
        user = get_user(conn, username)
    return None if user is None or user.disabled else user
