"""``workbench.prewarm``: a starting server reads its SQLite store's file into the kernel's
page cache (one process of several), and leaves other databases alone."""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import mmap
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.workbench.conftest import Bench
from workbench import prewarm


def resident_share(path: Path) -> float:
    """Share of ``path``'s pages in the kernel's page cache (``mincore`` on a read-only
    mapping, which itself reads nothing)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as handle:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, handle.fileno(), 0)
        if address in (None, ctypes.c_void_p(-1).value):
            pytest.skip(f"mmap failed: errno {ctypes.get_errno()}")
        try:
            if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vec) != 0:
                pytest.skip(f"mincore failed: errno {ctypes.get_errno()}")
        finally:
            libc.munmap(ctypes.c_void_p(address), ctypes.c_size_t(size))
    return sum(v & 1 for v in vec) / pages


def test_store_file_is_the_sqlite_file_only(tmp_path: Path) -> None:
    db = tmp_path / "worklist.db"
    db.write_bytes(b"x" * 10)
    assert prewarm.store_file(f"sqlite:///{db}") == db
    assert prewarm.store_file(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert prewarm.store_file("sqlite://") is None
    assert prewarm.store_file("sqlite:///:memory:") is None
    assert prewarm.store_file("postgresql+psycopg://u:p@localhost/delinq") is None


def test_the_file_is_read_whole_and_lands_in_the_page_cache(tmp_path: Path) -> None:
    db = tmp_path / "worklist.db"
    db.write_bytes(os.urandom(3 * prewarm.CHUNK + 12_345))  # not a whole number of chunks
    with open(db, "rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if resident_share(db) > 0.5:
        pytest.skip("this filesystem keeps the file cached (tmpfs?): nothing to measure")
    files = [db, tmp_path / "gone.db", tmp_path]  # a file removed meanwhile, a folder: skipped
    assert prewarm.read_into_cache(files, tmp_path / "prewarm.lock") == db.stat().st_size
    assert resident_share(db) > 0.99


def test_one_process_reads_the_others_skip(tmp_path: Path) -> None:
    db = tmp_path / "worklist.db"
    db.write_bytes(b"x" * 100)
    lock = tmp_path / "prewarm.lock"
    with open(lock, "a") as held:  # another server process reading the file now
        fcntl.flock(held, fcntl.LOCK_EX)
        assert prewarm.read_into_cache([db], lock) is None
    assert prewarm.read_into_cache([db], lock) == 100


def test_reading_runs_on_a_background_thread(tmp_path: Path) -> None:
    db = tmp_path / "worklist.db"
    db.write_bytes(b"y" * 5000)
    thread = prewarm.start([db], tmp_path / "wb" / "prewarm.lock")
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive() and (tmp_path / "wb" / "prewarm.lock").exists()
    assert prewarm.start([], tmp_path / "prewarm.lock") is None


def test_the_read_leaves_the_servers_sqlite_locks_alone(tmp_path: Path) -> None:
    """A server's connection holds a shared lock on the database file while it is open
    (WAL mode); a connection of another process that closes checks for that lock before
    checkpointing and deleting the WAL (as the last connection does). Were the file read
    in the server's process, closing that descriptor would drop the server's lock: the
    other process deletes the WAL under the server's readers (SQLITE_IOERR_SHORT_READ)."""
    db = tmp_path / "worklist.db"
    server = sqlite3.connect(db)
    server.execute("PRAGMA journal_mode=WAL")
    server.execute("CREATE TABLE t (x INTEGER)")
    server.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    server.commit()
    wal = tmp_path / "worklist.db-wal"
    try:
        assert server.execute("SELECT count(*) FROM t").fetchone() == (1000,) and wal.exists()
        thread = prewarm.start([db], tmp_path / "prewarm.lock")
        assert thread is not None
        thread.join(30)
        other = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                 "c.execute('SELECT count(*) FROM t').fetchall(); c.close()")
        subprocess.run([sys.executable, "-c", other, str(db)], check=True, timeout=30)
        assert wal.exists(), "another process's close deleted the WAL under the server"
        assert server.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    finally:
        server.close()


def test_a_server_start_reads_its_store(bench: Bench,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    wb = bench.app.state.wb  # type: ignore[attr-defined]
    seen: list[list[Path]] = []
    real = prewarm.start

    def recording(paths: list[Path], lock: Path) -> object:
        seen.append(paths)
        return real(paths, lock)

    monkeypatch.setattr(prewarm, "start", recording)  # records, then reads as always
    with TestClient(bench.app):  # type: ignore[arg-type]
        pass
    assert seen == [[prewarm.store_file(wb.engine.url)]]
    assert seen[0][0] is not None and seen[0][0].is_file()
