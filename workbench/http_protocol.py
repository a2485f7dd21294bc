"""The HTTP/1.1 protocol of ``delinq serve``'s uvicorn workers: uvicorn's h11 protocol with
``TCP_NODELAY`` set on each connection.

With ``--workers`` > 1, uvicorn's supervisor binds the listening socket itself
(``socket.socket(family=...)``, protocol number 0) and asyncio sets ``TCP_NODELAY`` only on
connections accepted from a socket whose protocol is ``IPPROTO_TCP``: every response was
then held by Nagle's algorithm until the client's delayed ACK, ~40 ms per request on
Linux (measured: ``GET /api/worklist`` round trip 2.1 ms with one worker, 44 ms with two,
server time ~2.5 ms in both). A single worker's sockets come from asyncio and had it already.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    """:class:`H11Protocol` that turns Nagle's algorithm off on its TCP connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
