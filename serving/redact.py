"""One way to show credential-bearing values: passwords and tokens masked as ``***``.

Store URLs, MLflow tracking URIs and any text that may quote them (messages, logs, run
summaries, Prefect parameters and artifacts, MLflow tags) go through :func:`display_url` or
:func:`redact` before they reach a person or a record. Imports nothing of the project, so
every layer may use it (``pipelines`` through this module; ``serving.store_io.display_url``
is this function).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

MASK: Final = "***"

# scheme://user:password@host -> the password; scheme://token@host is left alone (a user
# name without a password is not a secret).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s/]*)@")
# ?password=..., &token=..., ... in query strings and key=value text.
_QUERY = re.compile(
    r"(?P<head>(?:[?&;\s]|^)(?:password|passwd|pwd|pass|token|access_token|api_key|apikey|"
    r"secret|client_secret|sig)=)(?P<secret>[^&;\s]+)",
    re.IGNORECASE,
)


def display_url(url: Any) -> str:
    """``url`` (a string or a SQLAlchemy ``URL``) as shown to people: a password in its
    user part and secret query parameters replaced by ``***``."""
    render = getattr(url, "render_as_string", None)
    text = render(hide_password=True) if render is not None else str(url)
    return redact(text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL password, secret query parameter and each of ``secrets``
    (exact values, e.g. a password read from settings) replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", text)
    return _QUERY.sub(lambda m: m.group("head") + MASK, text)


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of ``url`` (its password, secret query values), to be redacted
    wherever they might be quoted alone."""
    if not url:
        return []
    found = [m.group("secret") for m in _USERINFO.finditer(url)]
    found += [m.group("secret") for m in _QUERY.finditer(url)]
    from urllib.parse import unquote

    return [s for s in {*found, *(unquote(f) for f in found)} if s and s != MASK]
