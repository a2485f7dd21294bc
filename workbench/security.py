"""Secrets of the workbench: password hashes, the session key, session cookies, API tokens.

- Passwords are hashed with Werkzeug's ``generate_password_hash`` (scrypt, salted; the
  library MLflow's basic-auth app uses); the store holds only the hash.
- The session key (32 random bytes) is generated once into ``<state>/workbench/session.key``
  with mode 0600 (created with that mode, never readable by others even for an instant);
  a key file readable by group or others is refused with one line saying what to do.
- Sessions are signed, timestamped cookies (``itsdangerous``) holding the username and the
  session's CSRF token; they expire after ``max_age`` seconds.
- API tokens read ``dlq_<id>_<secret>``: the store keeps the id and the SHA-256 of the
  secret (a 256-bit random secret needs no slow hash), compared in constant time.

Nothing here prints or logs a secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

TOKEN_PREFIX: Final = "dlq_"
KEY_BYTES: Final = 32
#: Minimum length of a password set by a person (generated ones are longer).
MIN_PASSWORD_LENGTH: Final = 10
_SESSION_SALT: Final = "delinq-workbench-session"
# A hash verified when the username is unknown, so both cases take the same time.
_DUMMY_HASH: Final = generate_password_hash("not a password of anyone")


class KeyFileError(RuntimeError):
    """The session key file cannot be used safely (message says what to do)."""


def hash_password(password: str) -> str:
    """The salted scrypt hash of ``password`` (Werkzeug's format)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return generate_password_hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (None: an unknown user; same cost)."""
    if password_hash is None:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(password_hash, password)


def new_password() -> str:
    """A random password to show once (about 96 bits)."""
    return secrets.token_urlsafe(12)


def load_session_key(path: Path) -> bytes:
    """The session key at ``path``, generated (mode 0600) if the file does not exist.

    A new key is written to a private temporary file and linked into place, so a second
    server starting at the same time reads the complete key of the first, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return _existing_key(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic; the loser of a race uses the winner's key
    finally:
        tmp.unlink(missing_ok=True)
    return _existing_key(path)


def _existing_key(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"the workbench session key {path} is readable by others (mode {mode:o}): "
            "run `chmod 600` on it, or delete it to sign everyone out and make a new one")
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise KeyFileError(f"the workbench session key {path} is damaged (too short): "
                           "delete it to make a new one (everyone signs in again)")
    return key


class SessionSigner:
    """Signs and reads session cookies (``{"u": username or None, "csrf": token}``)."""

    def __init__(self, key: bytes, *, max_age_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SESSION_SALT)
        self.max_age_s = max_age_s

    def dumps(self, data: dict[str, Any]) -> str:
        return self._serializer.dumps(data)

    def loads(self, cookie: str | None) -> dict[str, Any] | None:
        """The session in ``cookie``, or None if absent, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is one
            return None
        return data if isinstance(data, dict) else None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets; False when either is missing."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_token() -> tuple[str, str, str]:
    """A new API token: ``(token, token_id, secret_sha256)``; show ``token`` once."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{token_id}_{secret}", token_id, secret_digest(secret)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_token(token: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX):].partition("_")
    if not sep or len(token_id) != 16 or not secret:
        return None
    return token_id, secret
