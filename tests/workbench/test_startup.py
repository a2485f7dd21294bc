"""What a server process does once when it starts (the app's lifespan): the current run's
explanation locator built, the started heap frozen out of the cyclic collector; and the
locator built once when several requests need it at the same time."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from serving import store_files
from tests.workbench.conftest import Bench


def test_startup_locates_the_current_run_and_freezes_the_heap(bench: Bench) -> None:
    wb = bench.app.state.wb  # type: ignore[attr-defined]
    path = Path(wb.store.current_run().explanations_path)
    store_files._locator.cache_clear()
    gc.unfreeze()
    try:
        with TestClient(bench.app):  # type: ignore[arg-type]
            assert store_files._locator.cache_info().currsize == 1
            before = store_files._locator.cache_info().misses
            store_files.locate(path)
            assert store_files._locator.cache_info().misses == before  # built at start
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_concurrent_first_lookups_build_the_locator_once(bench: Bench) -> None:
    path = Path(bench.app.state.wb.store.current_run().explanations_path)  # type: ignore
    store_files._locator.cache_clear()
    start = threading.Barrier(6)
    found: list[int] = []

    def lookup() -> None:
        start.wait()
        found.append(len(store_files.locate(path)[0]))

    threads = [threading.Thread(target=lookup) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store_files._locator.cache_info().misses == 1
    assert len(set(found)) == 1 and found[0] > 0


def test_a_server_checkpoints_on_a_thread_of_its_own_not_in_its_writes(bench: Bench) -> None:
    # An event's commit must not copy a publish's pages into the file while it holds the
    # turnstile (serving.store_io.Checkpointer): the server's connections do not
    # checkpoint, its thread does while it runs, and stops with it.
    wb = bench.app.state.wb  # type: ignore[attr-defined]
    with wb.engine.connect() as conn:
        assert conn.connection.dbapi_connection.execute(
            "PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    with TestClient(bench.app):  # type: ignore[arg-type]
        assert [t for t in threading.enumerate() if t.name == "store-checkpoint"]
        # busy = 1 is SQLite refusing a second checkpoint while one runs: the thread's own
        # tick (every second) can be copying at this instant on a loaded machine (CI saw
        # it once), so ask again until ours is the one that runs.
        for _ in range(100):
            busy, frames, copied = wb._checkpointer.checkpoint()
            if busy == 0:
                break
            time.sleep(0.05)
        assert busy == 0 and copied == frames
    assert not [t for t in threading.enumerate() if t.name == "store-checkpoint"]
