"""``delinq serve``'s HTTP protocol turns Nagle's algorithm off on connections accepted from
a listening socket like the one uvicorn's supervisor binds (protocol number 0), on which
asyncio leaves it on."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

from uvicorn.config import Config
from uvicorn.server import ServerState

from workbench.http_protocol import NoDelayH11Protocol


async def _accepted_nodelay(protocol: type[asyncio.Protocol]) -> int:
    listener = socket.socket(family=socket.AF_INET)  # as uvicorn's bind_socket: proto 0
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    config = Config(app=lambda *a: None, log_level="warning")
    config.load()
    made: list[asyncio.Protocol] = []

    def factory() -> asyncio.Protocol:
        p = protocol(config=config, server_state=ServerState(),  # type: ignore[call-arg]
                     app_state={})
        made.append(p)
        return p

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname())
    for _ in range(100):
        if made:
            break
        await asyncio.sleep(0.01)
    sock = made[0].transport.get_extra_info("socket")  # type: ignore[attr-defined]
    value = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    writer.close()
    server.close()
    return value


def _run(protocol: type[asyncio.Protocol]) -> int:
    """:func:`_accepted_nodelay` on a thread of its own: an earlier test on this xdist
    worker (Playwright's sync API) may have left an event loop running in this thread,
    where ``asyncio.run`` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _accepted_nodelay(protocol)).result()


def test_connections_have_nagle_off() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    assert _run(H11Protocol) == 0  # what uvicorn did
    assert _run(NoDelayH11Protocol) != 0
