"""One-line progress messages of the steps, and where they go.

The steps (:mod:`pipelines.steps`) log concise progress lines to the standard logger
:data:`PROGRESS_LOGGER` and never print: the caller decides where the lines go with
:func:`routed` (the interactive jobs echo them to the terminal, the flows forward them to
the Prefect run log). Heartbeats of long stages go to the child logger
:data:`HEARTBEAT_LOGGER`, so a route can take them (terminal) or leave them (run log).

No Prefect here: the steps import this module.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

#: Logger of the one-line progress messages.
PROGRESS_LOGGER = "delinq.progress"
#: Logger of the "still working" lines of long stages (a child: routes to the terminal
#: see them, routes that filter on the exact name do not).
HEARTBEAT_LOGGER = f"{PROGRESS_LOGGER}.heartbeat"
#: Seconds between heartbeat lines.
HEARTBEAT_S = 30.0

Emit = Callable[[str], object]


def progress(message: str) -> None:
    """Log one concise progress line on :data:`PROGRESS_LOGGER`."""
    logging.getLogger(PROGRESS_LOGGER).info(message)


@contextlib.contextmanager
def ticker(label: str, *, emit: Emit, every: float,
           until: threading.Event | None = None) -> Iterator[None]:
    """While the block runs (and ``until`` is not set), call ``emit("  ... <label>: <n> s")``
    every ``every`` seconds, so a long stage without progress hooks never looks hung."""
    done = threading.Event()
    t0 = time.perf_counter()

    def beat() -> None:
        while not (done.wait(every) or (until is not None and until.is_set())):
            emit(f"  ... {label}: {time.perf_counter() - t0:.0f} s")

    thread = threading.Thread(target=beat, name=f"delinq-ticker-{label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def heartbeat(label: str, *, every: float = HEARTBEAT_S) -> contextlib.AbstractContextManager:
    """:func:`ticker` on :data:`HEARTBEAT_LOGGER`, for long stages."""
    return ticker(label, emit=logging.getLogger(HEARTBEAT_LOGGER).info, every=every)


class _Route(logging.Handler):
    """Calls ``emit(message)`` for each progress record (heartbeats only if asked);
    ``seen`` is set by the first one."""

    def __init__(self, emit: Emit, *, heartbeats: bool) -> None:
        super().__init__(logging.INFO)
        self._emit = emit
        self._heartbeats = heartbeats
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != PROGRESS_LOGGER and not self._heartbeats:
            return
        self.seen.set()
        self._emit(record.getMessage())


@contextlib.contextmanager
def routed(emit: Emit, *, heartbeats: bool = True,
           exclusive: bool = False) -> Iterator[threading.Event]:
    """Within the block, progress lines (and heartbeats if ``heartbeats``) are passed to
    ``emit``; yields an event set by the first line. ``exclusive`` also stops them from
    propagating to the root logger's handlers (the terminal shows them once). The logger's
    level, propagation and handlers are restored on exit."""
    log = logging.getLogger(PROGRESS_LOGGER)
    route = _Route(emit, heartbeats=heartbeats)
    saved = (log.level, log.propagate)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    if exclusive:
        log.propagate = False
    log.addHandler(route)
    try:
        yield route.seen
    finally:
        log.removeHandler(route)
        log.setLevel(saved[0])
        log.propagate = saved[1]
