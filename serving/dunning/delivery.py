"""Delivering letters: a MIME message per letter, to an outbox folder or over SMTP.

:func:`build_message` makes a ``multipart/alternative`` e-mail (plain text and HTML) with a
``Message-ID`` derived from the idempotency key, so the same letter is recognisable
wherever it lands. A sender has ``send(message) -> str`` (where it went):

- :class:`Outbox` (the default, and what the demo uses) writes ``<folder>/<as_of>/<key>.eml``
  atomically (temporary file, then rename): open it with any mail client;
- :class:`SmtpSender` hands it to an SMTP server (``starttls``, implicit ``ssl`` or
  ``none``; login when a user is set). The password is only ever passed to ``login``;
  error text is redacted (:func:`serving.redact.redact`) before anyone sees it.

:class:`RateLimit` spaces sends to at most ``per_minute`` in any 60 seconds (clock and
sleep injected: library code never reads "now" by itself).
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from typing import Literal, Protocol

from serving.dunning.letters import Letter
from serving.redact import redact


def idempotency_key(account_id: str, letter: str, as_of: date) -> str:
    """The key of a letter: ``<as_of>-<letter>-<sha1 of account id>`` (file- and
    header-safe whatever the id holds)."""
    digest = hashlib.sha1(str(account_id).encode("utf-8")).hexdigest()[:16]
    return f"{as_of.isoformat()}-{letter}-{digest}"


def build_message(letter: Letter, *, sender: str, to: list[str], key: str,
                  account_id: str) -> EmailMessage:
    """The e-mail of ``letter`` from ``sender`` to ``to`` (plain text and HTML parts)."""
    msg = EmailMessage()
    msg["Subject"] = letter.subject
    msg["From"] = formataddr(("Accounts receivable", sender))
    msg["To"] = ", ".join(to)
    msg["Message-ID"] = f"<{key}@delinq>"
    msg["X-Delinq-Key"] = key
    msg["X-Delinq-Template"] = letter.template
    msg["Content-Language"] = letter.language
    msg.set_content(letter.text)
    msg.add_alternative(letter.html, subtype="html")
    return msg


class Sender(Protocol):
    """Where letters go: ``send`` delivers one message and says where it went."""

    def send(self, message: EmailMessage, *, key: str, as_of: date) -> str: ...


@dataclass(frozen=True)
class Outbox:
    """Letters as ``.eml`` files under ``folder/<as_of>/``."""

    folder: Path

    def send(self, message: EmailMessage, *, key: str, as_of: date) -> str:
        day = Path(self.folder) / as_of.isoformat()
        day.mkdir(parents=True, exist_ok=True)
        path = day / f"{key}.eml"
        tmp = day / f".{key}.eml.tmp"
        tmp.write_bytes(message.as_bytes())
        os.replace(tmp, path)
        return str(path)


@dataclass(frozen=True)
class SmtpSender:
    """Letters over SMTP. ``tls``: ``starttls`` (port 587), ``ssl`` (465) or ``none``
    (a relay on loopback); ``user``/``password``: login, when a user is set."""

    host: str
    port: int = 587
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    password: str | None = None
    timeout_s: float = 30.0

    def send(self, message: EmailMessage, *, key: str, as_of: date) -> str:
        context = ssl.create_default_context()
        try:
            if self.tls == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port,
                                                        timeout=self.timeout_s, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.tls == "starttls":
                    client.starttls(context=context)
                if self.user:
                    client.login(self.user, self.password or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(redact(f"{type(exc).__name__}: {exc}",
                                       [self.password or ""])) from None
        return f"smtp://{self.host}:{self.port}"


class DeliveryError(Exception):
    """A message could not be delivered (text already redacted)."""


class RateLimit:
    """At most ``per_minute`` sends in any 60 s window (``None``: unlimited)."""

    def __init__(self, per_minute: int | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.per_minute, self._clock, self._sleep = per_minute, clock, sleep
        self._sent: deque[float] = deque()

    def wait(self) -> None:
        """Block until one more send fits in the window, then count it."""
        if not self.per_minute:
            return
        now = self._clock()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.per_minute:
            self._sleep(60.0 - (now - self._sent[0]))
            now = self._clock()
            self._sent.popleft()
        self._sent.append(now)
