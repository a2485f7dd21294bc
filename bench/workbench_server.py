"""The server of ``bench.workbench``: started as ``delinq serve`` starts it (migrations
once, then ``workbench.serve_workers`` processes), each app wrapped to add a
``Server-Timing`` header; the server's processes, their CPU seconds and peak RSS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


class ServerTiming:
    """ASGI wrapper adding ``Server-Timing: app;dur=<ms>`` (request in to response start:
    the route's whole work, since JSON and HTML bodies are rendered before they start)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000.0
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"server-timing", f"app;dur={ms:.3f}".encode())]}
            await send(message)

        await self.app(scope, receive, timed_send)


#: Environment of the bench server's worker processes: the build folder and store URL.
WORK_ENV, URL_ENV = "BENCH_WORKBENCH_WORK", "BENCH_WORKBENCH_STORE_URL"


def _config(work: Path, url: str) -> Any:
    from workbench import WorkbenchConfig

    return WorkbenchConfig(store_url=url, state_dir=work, book_dir=work / "staging" / "book",
                           export_dir=work / "explanations")


def timed_app() -> Any:
    """The app of one server worker process (uvicorn's factory, as ``delinq serve``'s
    ``worker_app``): the workbench over the build, with the ``Server-Timing`` header."""
    from workbench import create_app

    return ServerTiming(create_app(_config(Path(os.environ[WORK_ENV]), os.environ[URL_ENV])))


def serve(work: Path, url: str, port: int, workers: int) -> None:
    """Run the workbench on ``port`` as ``delinq serve`` does: migrations applied once,
    then ``workers`` uvicorn processes (``workbench.serve_workers``)."""
    from workbench import open_workbench, serve_workers

    open_workbench(_config(work, url)).close()
    os.environ[WORK_ENV], os.environ[URL_ENV] = str(work), url
    serve_workers(f"{__name__}:timed_app", host="127.0.0.1", port=port, workers=workers,
                  log_level="warning")


def server_processes(pid: int, workers: int, timeout_s: float = 120.0) -> list[Any]:
    """The server's processes: the supervisor (or single process) and its ``workers``
    worker processes (waited for: the first may answer before the others are up)."""
    import psutil

    top = psutil.Process(pid)
    deadline = time.monotonic() + timeout_s
    while True:
        children = [c for c in top.children(recursive=True) if not _prewarm_child(c)]
        if workers <= 1 or len(children) >= workers or time.monotonic() > deadline:
            return [top, *children]
        time.sleep(0.2)


def _prewarm_child(process: Any) -> bool:
    """Whether ``process`` is a worker's short-lived page-cache reader
    (``workbench.prewarm.read_in_child``): not a server process; its CPU counts in its
    worker's (:func:`cpu_s`) once it ends."""
    import psutil

    try:
        return "workbench.prewarm" in process.cmdline()
    except psutil.Error:
        return True  # gone already


def cpu_s(procs: list[Any]) -> float:
    """CPU seconds (user + system) used so far by ``procs`` and their ended children
    (a worker's prewarm reader; 0 for a process gone)."""
    import psutil

    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def status_mb(procs: list[Any], field: str) -> dict[str, float]:
    """A memory figure of each server process from ``/proc/<pid>/status``, MB by pid:
    ``VmHWM`` (peak resident, counting the file pages it has mapped: SQLite's
    ``mmap_size``, the history index's Arrow memory map, shared page cache) or
    ``RssAnon`` (its own memory now: heap, arrays, caches)."""
    out = {}
    for p in procs:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    out[str(p.pid)] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            continue
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the server did not start")
