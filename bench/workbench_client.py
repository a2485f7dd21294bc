"""The clients of ``bench.workbench``: lean HTTP clients (the load) and an in-process one.

:class:`HttpClient` is one keep-alive ``http.client`` connection: a request is written
and its body read as bytes, never parsed (the bench checks status codes and the
``Server-Timing`` header, not bodies), so the load generator's own CPU per request stays
small beside the server's on a machine where both share the cores. :class:`AsgiClient`
sends the same requests to the app in this process, without a socket: what one request
costs the app alone (``bench.workbench_cpu``). Both answer ``get(path, params=...)`` and
``post(path, json=... | data=...)`` with a :class:`Reply`, and keep the session cookie
the login sets (the pages need a signed-in browser session).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json as jsonlib
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class Reply:
    """A response: status, headers (lower-case names; the last of repeated ones), body."""

    status_code: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _target(path: str, params: dict[str, Any] | None) -> str:
    query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
    return f"{path}?{query}" if query else path


def _body(json: Any, data: dict[str, str] | None) -> tuple[bytes, dict[str, str]]:
    if json is not None:
        return jsonlib.dumps(json).encode(), {"content-type": "application/json"}
    if data is not None:
        return (urlencode(data).encode(),
                {"content-type": "application/x-www-form-urlencoded"})
    return b"", {}


class _Cookies:
    """The cookies a server set (name -> value; a deleted one dropped): enough for the
    workbench's one session cookie, not a general cookie jar."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def update(self, set_cookies: list[str]) -> None:
        for line in set_cookies:
            pair, *attributes = line.split(";")
            name, _, value = pair.strip().partition("=")
            expired = any(a.strip().lower() in ("max-age=0", 'max-age="0"')
                          for a in attributes)
            if expired or not value.strip('"'):
                self.values.pop(name, None)
            else:
                self.values[name] = value

    def header(self) -> dict[str, str]:
        if not self.values:
            return {}
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.values.items())}


class _Verbs:
    """``get`` and ``post`` of both clients, on their own ``request``."""

    def request(self, method: str, target: str, *, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError

    def get(self, path: str, params: dict[str, Any] | None = None) -> Reply:
        return self.request("GET", _target(path, params))

    def post(self, path: str, *, json: Any = None, data: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        body, content = _body(json, data)
        return self.request("POST", path, body=body, headers={**content, **(headers or {})})


class HttpClient(_Verbs):
    """One keep-alive HTTP/1.1 connection to ``base`` (``http://host:port``), reopened
    once if the server closed it; ``headers`` go with every request."""

    def __init__(self, base: str, headers: dict[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._cookies = _Cookies()
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, target: str, *, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Reply:
        sent = {**self._headers, **self._cookies.header(), **(headers or {})}
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
            try:
                self._conn.request(method, target, body=body or None, headers=sent)
                response = self._conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest):
                self.close()
                if attempt:
                    raise
                continue
            pairs = response.getheaders()
            self._cookies.update([v for k, v in pairs if k.lower() == "set-cookie"])
            return Reply(response.status, {k.lower(): v for k, v in pairs}, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AsgiClient(_Verbs):
    """Requests to the ASGI ``app`` in this process, one at a time, without a socket or
    HTTP parsing (the app's cost alone). The app runs on an event loop in a thread of its
    own under one long-lived task, as under a server: anyio's worker threads (where sync
    routes run) are kept between requests, not started per request."""

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self.app = app
        #: A ``cProfile.Profile`` enabled around each request on the loop's thread.
        self.profiler: Any = None
        self._headers = dict(headers or {})
        self._cookies = _Cookies()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._queue: asyncio.Queue[Any] | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._serve(),), daemon=True)
        self._thread.start()
        self._ready.wait()

    async def _serve(self) -> None:
        self._queue = asyncio.Queue()
        self._ready.set()
        while (item := await self._queue.get()) is not None:
            scope, body, future = item
            profiler = self.profiler
            if profiler is not None:
                profiler.enable()
            try:
                future.set_result(await _call(self.app, scope, body))
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)
            finally:
                if profiler is not None:
                    profiler.disable()

    def request(self, method: str, target: str, *, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Reply:
        sent = {**self._headers, **self._cookies.header(), **(headers or {}),
                "host": "bench", "content-length": str(len(body))}
        path, _, query = target.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path,
                 "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "client": ("127.0.0.1", 50000),
                 "server": ("bench", 80), "state": {},
                 "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                             for k, v in sent.items()]}
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        assert self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (scope, body, future))
        status, pairs, data = future.result()
        self._cookies.update([v for k, v in pairs if k == "set-cookie"])
        return Reply(status, dict(pairs), data)

    def close(self) -> None:
        if self._thread.is_alive():
            assert self._queue is not None
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
            self._thread.join()
        self._loop.close()


async def _call(app: Any, scope: dict[str, Any],
                body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    sent_body = False
    status = 0
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers.extend((k.decode("latin-1").lower(), v.decode("latin-1"))
                           for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)
