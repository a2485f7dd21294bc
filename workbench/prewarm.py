"""The SQLite store's file read once into the kernel's page cache when a server starts.

A name search touches the worklist, directory and state rows of every account whose name
has the prefix (~100 accounts for a name less its last two characters at 1M accounts):
~300 rows in random places of the SQLite file. Read from the disk, each is a wait, not
work: on the 1M-account bench store (2.1 GB), 200 searches one after another took p50
10.3 / p95 19.4 ms with the file out of the cache and 1.5 / 1.7 ms with it in (``python -m
bench.search_cache --work DIR``); under 8 concurrent clients the waits queued into a p95
of 142 ms at 4.2 ms of CPU per search (``python -m bench.workbench``). The
pages of a run published while the server runs are in the cache already (just written);
the ones a long-running server has not touched since it started are not.

So a starting server process reads the file once, sequentially (the 1M bench store's
2.0 GB in ~3.4 s, mostly kernel copies), on a background thread while requests are
served; the bytes are thrown away: what stays is the kernel's cache, which gives the
memory back to anyone who needs it more. One process of a multi-worker server does it (a
non-blocking ``flock``: the others skip). ``posix_fadvise(WILLNEED)`` was tried first: it
returns at once but the kernel read less than half of the file. A PostgreSQL store has its
own buffer cache: its server is left alone.

The reading runs in a **child process**, never in the server's own: closing a descriptor
of a file drops every POSIX lock the closing process holds on it, including the ones its
SQLite connections hold on the store (SQLite's "How To Corrupt" page, section 2.2). With
the server's shared lock on the database file gone, another process's connection closing
believed itself the last one and checkpointed and deleted the WAL under the server's
readers: their next read failed (``SQLITE_IOERR_SHORT_READ``, a 500) on a small store,
where the read ends at once (``tests/workbench/test_prewarm.py`` reproduces it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

from serving import store_io
from workbench.auth import exclusive_lock

#: Bytes read per call (one reused buffer: the process's memory does not grow).
CHUNK = 1 << 20


def store_file(url: sa.URL | str) -> Path | None:
    """The file of a SQLite store at ``url``; None for another database, an in-memory one
    or a file that does not exist."""
    path = store_io.sqlite_path(sa.make_url(url))
    return path if path is not None and path.is_file() else None


def read_into_cache(paths: list[Path], lock: Path) -> int | None:
    """Read each file of ``paths`` from start to end into one reused buffer; bytes read
    (a file gone meanwhile, or not a file, counts nothing), or None when another process
    holds ``lock`` (it is reading the same files).

    Only in a process with no SQLite connection on ``paths`` (see the module docstring):
    a server calls :func:`read_in_child`."""
    with exclusive_lock(lock, wait=False) as held:
        if not held:
            return None
        buffer = bytearray(CHUNK)
        total = 0
        for path in paths:
            with contextlib.suppress(OSError), open(path, "rb", buffering=0) as f:
                # No readahead: cached in single pages, as the servers' own random reads
                # would cache them (the file is read whole anyway)
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
                while read := f.readinto(buffer):
                    total += read
        return total


def read_in_child(paths: list[Path], lock: Path) -> int | None:
    """:func:`read_into_cache` in a child process (this module run as a script), waited
    for: what it returns, or None when the child failed."""
    done = subprocess.run([sys.executable, "-m", "workbench.prewarm", str(lock),
                           *map(str, paths)], capture_output=True, text=True, check=False)
    text = done.stdout.strip()
    return int(text) if done.returncode == 0 and text.isdigit() else None


def start(paths: list[Path], lock: Path) -> threading.Thread | None:
    """:func:`read_in_child` of ``paths`` waited for on a daemon thread (started and
    returned), or None when there is nothing to read."""
    if not paths:
        return None

    def run() -> None:
        with contextlib.suppress(OSError):  # an optimisation must never fail a server
            read_in_child(paths, lock)

    thread = threading.Thread(target=run, name="delinq-prewarm", daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":  # read_in_child's child: LOCK PATH...; prints the bytes read
    _read = read_into_cache([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]))
    print("" if _read is None else _read)
