"""Who is asking: API tokens, session cookies, CSRF, the login rate limit, role checks.

- API calls authenticate with ``Authorization: Bearer dlq_...`` or the session cookie; a
  cookie-authenticated call that changes something must carry the session's CSRF token in
  the ``X-CSRF-Token`` header (forms carry it as the ``csrf_token`` field). Anonymous API
  calls get 401; pages redirect to the login page.
- Failed sign-ins are counted per (username, client address) in a sliding window; past the
  limit the login answers 429 until the window has passed. The count is shared by every
  server process (``delinq serve --workers N``) through a small file under the state
  folder, locked while read and written (:func:`exclusive_lock`, the workbench's one
  inter-process lock).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request

from workbench.roles import Right, can
from workbench.security import SessionSigner, new_csrf_token, same_secret
from workbench.users import User, enabled_user, user_of_token

SESSION_COOKIE: Final = "delinq_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginLimiter:
    """At most ``max_failures`` failed sign-ins per key within ``window_s`` seconds.

    ``path``: a JSON file holding the recent failures, so that every server process
    counts the same failures (each operation holds :func:`exclusive_lock` on
    ``<path>.lock`` while it reads and rewrites the file: sign-ins are rare, the file
    small, since expired failures are dropped on every write).
    """

    def __init__(self, *, max_failures: int, window_s: float,
                 clock: Callable[[], datetime], path: Path) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._path = path

    @contextlib.contextmanager
    def _state(self, *, write: bool) -> Iterator[dict[str, list[float]]]:
        """The failures by key, expired ones dropped (saved back if ``write``)."""
        now = self._clock().timestamp()
        with exclusive_lock(self._path.with_name(self._path.name + ".lock")):
            failures = {k: [t for t in v if t > now - self.window_s]
                        for k, v in _read_json(self._path).items()}
            failures = {k: v for k, v in failures.items() if v}
            yield failures
            if write:
                _write_json(self._path, failures)

    def retry_after(self, key: tuple[str, str]) -> int | None:
        """Seconds to wait when ``key`` is over the limit, else None."""
        with self._state(write=False) as failures:
            q = failures.get(_key(key), [])
            if len(q) < self.max_failures:
                return None
            return max(1, int(q[0] + self.window_s - self._clock().timestamp()) + 1)

    def failed(self, key: tuple[str, str]) -> None:
        with self._state(write=True) as failures:
            failures.setdefault(_key(key), []).append(self._clock().timestamp())

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._state(write=True) as failures:
            failures.pop(_key(key), None)


def _key(key: tuple[str, str]) -> str:
    return json.dumps(list(key))


@contextlib.contextmanager
def exclusive_lock(lock: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on the file ``lock`` (created if missing), held until the
    block ends; yields whether it is held. Serialises the workbench's server processes
    (and their threads: each call opens its own file description) around a shared file.
    ``wait=False``: when another holds it, yield False at once instead of waiting."""
    import fcntl

    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True  # released when the file closes


def _read_json(path: Path) -> dict[str, list[float]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: no failures known
        return {}
    return {str(k): [float(t) for t in v] for k, v in data.items()
            if isinstance(v, list)} if isinstance(data, dict) else {}


def _write_json(path: Path, failures: dict[str, list[float]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(failures))
    tmp.replace(path)  # readers (under the lock anyway) never see half a file


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the user, and how (``token`` or ``session``)."""

    user: User
    via: str
    csrf: str | None = None


def session_of(request: Request) -> dict[str, Any] | None:
    signer: SessionSigner = request.app.state.wb.signer
    return signer.loads(request.cookies.get(SESSION_COOKIE))


def new_session(user: User | None) -> dict[str, Any]:
    return {"u": None if user is None else user.username, "csrf": new_csrf_token()}


def caller_or_none(request: Request, conn: sa.Connection | None = None) -> Caller | None:
    """The authenticated caller of ``request``, or None (anonymous, bad token, disabled);
    a session's user read on ``conn`` when given (the page's one connection)."""
    wb = request.app.state.wb
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        user = user_of_token(wb.engine, token.strip())
        return None if user is None else Caller(user=user, via="token")
    session = session_of(request)
    if session and isinstance(session.get("u"), str):
        user = enabled_user(wb.engine if conn is None else conn, session["u"])
        if user is not None:
            return Caller(user=user, via="session", csrf=session.get("csrf"))
    return None


def api_caller(request: Request) -> Caller:
    """Dependency of every API route: the caller, 401 if anonymous, 403 on a cookie call
    that changes something without the session's CSRF token."""
    caller = caller_or_none(request)
    if caller is None:
        raise HTTPException(401, "sign in or send an API token (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    if (caller.via == "session" and request.method in _UNSAFE
            and not same_secret(request.headers.get(CSRF_HEADER), caller.csrf)):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return caller


CallerDep = Annotated[Caller, Depends(api_caller)]


def needs(right: Right) -> Callable[[Caller], Caller]:
    """Dependency: the caller, 403 unless their role has ``right``."""

    def check(caller: CallerDep) -> Caller:
        if not can(caller.user.role, right):
            raise HTTPException(403, f"role {caller.user.role.value} may not do this "
                                     f"(needs {right.value})")
        return caller

    return check
