"""Connections and files of the worklist store: engines for SQLite/PostgreSQL, Parquet I/O.

SQLite connections run in WAL mode (readers never wait for the writer, the writer never
waits for readers) with a busy timeout for a second writer, and transactions are begun by
us: ``BEGIN`` (a snapshot for reads) or ``BEGIN IMMEDIATE`` (writers take the write lock up
front instead of failing to upgrade a read lock later). Writers that begin ``IMMEDIATE``
pass a turnstile first (a ``flock`` on ``<db>-turnstile``), where a waiting writer leaves a
mark that a long writer (a publish) sees between two steps: it commits and lets the
waiting one in (:class:`Waiters`); SQLite itself gives no sign that anyone waits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool, StaticPool

from serving import redact

BUSY_TIMEOUT_MS = 120_000
#: PostgreSQL advisory-lock namespace of the store ("del"): publishes lock (space, as_of
#: ordinal), migrations lock (space, 0).
PG_LOCK_SPACE = 0x64656C
#: SQLite connections an engine keeps open (SQLAlchemy's default keeps 5 and closes any
#: more on return): the workbench serves requests on several threads, and a connection
#: opened per request pays the file open, the PRAGMAs and the schema parse (~a few ms)
#: each time. A connection costs its page cache (2 MB by default) only as it fills.
SQLITE_POOL_SIZE = 16


def normalise_url(url: str) -> sa.URL:
    """The store URL with the psycopg 3 driver for PostgreSQL; only SQLite/PostgreSQL pass."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported store URL {url!r}: use sqlite:/// or postgresql+psycopg://")
    return parsed


def display_url(url: str | sa.URL) -> str:
    """The store URL as shown to people: any password replaced by ``***`` (the one
    masking function, :func:`serving.redact.display_url`)."""
    try:
        parsed: str | sa.URL = sa.make_url(url)
    except sa.exc.ArgumentError:
        parsed = str(url)
    return redact.display_url(parsed)


class StoreError(RuntimeError):
    """The worklist store cannot be used as asked; the message is one line for the user."""


class StoreMissingError(StoreError):
    """A reader asked for a store that does not exist (nothing was created)."""


class StoreDamagedError(StoreError):
    """The store's file or tables are damaged (nothing was changed, never reset)."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or written: read-only folder, permissions, full disk,
    database server down or refusing the login."""


def sqlite_path(url: sa.URL) -> Path | None:
    """The file of a SQLite store URL (None for PostgreSQL or an in-memory SQLite)."""
    if (url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:")
            or url.query.get("mode") == "memory"):
        return None
    return Path(url.database)


def check_sqlite_file(url: sa.URL, *, read_only: bool) -> None:
    """Fail early, in one line, on a SQLite store that cannot be used as asked.

    A reader (``read_only``) never creates anything: no file is :class:`StoreMissingError`.
    A 0-byte file is :class:`StoreDamagedError` for everyone (SQLite would silently take it
    for an empty database and a writer would build a new store over it). A writer needs
    its folder writable (the database, its WAL and the explanation files go there).
    """
    path = sqlite_path(url)
    if path is None:
        return
    if not path.exists():
        if read_only:
            raise StoreMissingError(f"no store at {path}: nothing has been scored there yet "
                                    "(check the folder, or run `delinq score`)")
    elif path.is_file() and path.stat().st_size == 0:
        raise StoreDamagedError(f"the worklist store file {path} is empty (0 bytes), not a "
                                "store; nothing was changed: restore it from a backup or move "
                                "it away to start a new store")
    if not read_only:
        folder = path.parent
        existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise StoreUnavailableError(
                f"cannot write the worklist store in {existing}: the folder (or the file) is "
                "read-only; choose a writable state folder (--state-dir / DELINQ_DATA_DIR)")


@contextlib.contextmanager
def translated_errors(url: sa.URL) -> Iterator[None]:
    """Turn database and file-system failures of the store at ``url`` into one-line
    :class:`StoreError` messages naming the file or the server (password masked)."""
    where = display_url(url)
    path = sqlite_path(url)
    try:
        yield
    except sa.exc.DBAPIError as exc:
        text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(
            getattr(exc, "orig", exc)).strip() else type(exc).__name__
        low = text.lower()
        if path is not None and ("not a database" in low or "malformed" in low
                                 or "corrupt" in low):
            raise StoreDamagedError(
                f"the worklist store file {path} is damaged ({text}); nothing was changed: "
                "restore it from a backup or move it away to start a new store") from None
        if "disk is full" in low or "no space" in low:
            raise StoreUnavailableError(f"the disk of the worklist store {where} is full "
                                        f"({text}); free space and run again") from None
        if path is not None and ("readonly" in low or "read-only" in low
                                 or "unable to open" in low):
            raise StoreUnavailableError(
                f"cannot use the worklist store {path}: {text} (check the folder "
                f"{path.parent} is readable, and writable for scoring)") from None
        raise StoreUnavailableError(
            f"cannot use the worklist store {where}: {_mask(text, url)}") from None
    except PermissionError as exc:
        raise StoreUnavailableError(
            f"permission denied on {exc.filename or where}: the worklist store needs that "
            "folder writable for scoring") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreUnavailableError(
                f"no space left on the disk of {exc.filename or where}; free space and run "
                "again") from None
        raise


def _mask(text: str, url: sa.URL) -> str:
    """``text`` with the URL's password (if any) replaced by ``***``."""
    return redact.redact(text, [str(url.password)] if url.password else [])


def _sqlite_reader(path: Path) -> Any:
    """A connect function opening ``path`` read-only (``mode=ro``). In a read-only folder
    without the WAL's side files SQLite cannot open a WAL database even read-only, and
    nobody can write there either: the file is opened ``immutable`` then."""
    side = path.with_name(path.name + "-shm")
    writable = os.access(path.parent, os.W_OK) or side.exists()
    flags = "mode=ro" if writable else "mode=ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?{flags}"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return connect


def make_engine(url: sa.URL, *, read_only: bool = False,
                checkpoint_in_commit: bool = True) -> sa.Engine:
    """An engine for ``url`` (SQLite: WAL, busy timeout, explicit BEGIN; see module doc).

    ``read_only``: SQLite opens the file with ``mode=ro`` and nothing is created (no
    folder, no file); PostgreSQL sessions are ``READ ONLY``.
    ``checkpoint_in_commit=False`` (SQLite): the connections' commits never checkpoint the
    WAL (``wal_autocheckpoint = 0``); the process runs a :class:`Checkpointer` instead.
    For a server whose short writes must not wait for a copy of someone else's pages:
    SQLite checkpoints inside the first COMMIT that finds the WAL over its threshold, and
    during a publish (whose WAL stays over it) that was *every* analyst's event, each
    copying the publisher's latest pages into the database file and syncing it while it
    held the turnstile. Measured (``bench.workbench`` at 1M accounts, quiet): an event
    write during the publish p50 144 / p95 210 ms, the workers' threads in ``fdatasync``
    and ``pwrite`` most of the time (``perf``); with a :class:`Checkpointer`: 28 / 133.
    """
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, pool_pre_ping=True)
        if read_only:
            @event.listens_for(engine, "connect")
            def _read_only(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cursor:
                    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                dbapi_conn.commit()
        return engine
    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    elif read_only:
        # A pool of file connections (the bare "sqlite://" URL would pick the in-memory
        # database's one-connection-per-thread pool).
        engine = sa.create_engine("sqlite://", creator=_sqlite_reader(Path(url.database)),
                                  poolclass=QueuePool, pool_size=SQLITE_POOL_SIZE,
                                  max_overflow=SQLITE_POOL_SIZE)
    else:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False},
                                  pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_SIZE)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below), so reads get snapshot transactions and writers
        # take the write lock up front (BEGIN IMMEDIATE) instead of failing to upgrade.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not memory and not read_only:
            cursor.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: never corrupt; a power cut may lose the last commit, not more.
            cursor.execute("PRAGMA synchronous = NORMAL")
            # A 1M-row run leaves a ~400 MB WAL; truncate it after checkpoints.
            cursor.execute("PRAGMA journal_size_limit = 67108864")
            if not checkpoint_in_commit:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    if not memory:
        # A reader's attached run rows files (:mod:`serving.store_rows`): all but its
        # latest few go when its connection returns to the pool, its transaction over.
        event.listen(engine, "checkin", release_rows)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE" and turnstile is not None:
            conn.info["turnstile"] = _enter_turnstile(turnstile)
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            fd = conn.info.pop("turnstile", None)
            if fd is not None:
                os.close(fd)
            raise

    turnstile = None if read_only else turnstile_path(url)
    if turnstile is not None:
        @event.listens_for(engine, "commit")
        def _on_commit(conn: sa.Connection) -> None:
            fd = conn.info.pop("turnstile", None)
            if fd is None:
                return
            # SQLAlchemy fires this event before it commits. Commit first, then open the
            # turnstile: opened before, the next writer finds SQLite's write lock still
            # held and sleeps in SQLite's busy handler (retries after 1, 2, 5, 10, 15 ..
            # ms), overshooting the commit. SQLAlchemy's own commit then has nothing left
            # to do; if ours fails, it fails again there and the rollback releases.
            try:
                conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]
            except Exception:
                conn.info["turnstile"] = fd
                return
            os.close(fd)  # closing the file releases its lock

        @event.listens_for(engine, "rollback")
        def _on_rollback(conn: sa.Connection) -> None:
            fd = conn.info.pop("turnstile", None)
            if fd is not None:
                os.close(fd)

    return engine


#: How often a writer waiting at the turnstile tries it again (seconds).
TURNSTILE_POLL_S = 0.001


def turnstile_path(url: sa.URL) -> Path | None:
    """The write turnstile's side file of a SQLite store (None: PostgreSQL, in memory);
    ``<it>-waiting`` is where waiting writers make themselves known (:class:`Waiters`)."""
    path = sqlite_path(url)
    return None if path is None else Path(f"{path}-turnstile")


def _enter_turnstile(path: Path) -> int | None:
    """Take the write turnstile of a SQLite store (an exclusive ``flock`` on a side file);
    return its descriptor (closed when the transaction ends), or None after
    :data:`BUSY_TIMEOUT_MS` (SQLite's own busy timeout then applies).

    Why: SQLite's busy handler retries a waiting writer only every 100 ms after a while,
    and gives no sign that anyone waits. Every writer that begins ``IMMEDIATE`` on this
    store's engines goes through the turnstile first; one that finds it taken holds a
    shared lock on ``<turnstile>-waiting`` while it tries again every millisecond, so a
    long writer (a publish, :class:`Waiters`) sees it and commits after its current step.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None  # a folder we cannot write into: no turnstile, plain busy waits
    if _try_lock(fd, fcntl.LOCK_EX):
        return fd
    try:
        waiting = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        waiting = None
    try:
        if waiting is not None:
            fcntl.flock(waiting, fcntl.LOCK_SH)  # a long writer only tests it (instant)
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(TURNSTILE_POLL_S)
        return fd
    finally:
        if waiting is not None:
            os.close(waiting)


def _try_lock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Waiters:
    """Whether another writer waits at a SQLite store's turnstile (never, on PostgreSQL,
    where writers of different rows do not wait for each other). A long writer asks
    between two steps of its transaction and commits when someone waits."""

    def __init__(self, url: sa.URL) -> None:
        path = turnstile_path(url)
        self._fd: int | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                self._fd = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)

    def any(self) -> bool:
        """True if a writer holds the waiting mark (it cannot be locked exclusively)."""
        if self._fd is None or not _try_lock(self._fd, fcntl.LOCK_EX):
            return self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def let_in(self, *, timeout: float = 0.5) -> None:
        """After committing for them: wait until no writer waits (each got the lock in
        turn) or ``timeout`` seconds, so that this writer does not take the turnstile
        back first."""
        deadline = time.monotonic() + timeout
        while self.any() and time.monotonic() < deadline:
            time.sleep(TURNSTILE_POLL_S)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Waiters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: SQLite's default automatic checkpoint threshold (WAL pages).
SQLITE_AUTOCHECKPOINT_PAGES = 1000
#: Seconds between two checkpoints of a writer that does not checkpoint in its commits (a
#: long writer's steps, :func:`stepped_writes`; a server's :class:`Checkpointer`). Each
#: checkpoint syncs the database file (~40 ms on this project's test machine): after
#: every commit of a publish that lets analysts' events in (~20 commits a second) that
#: was most of the publish's time; the WAL holds at most about this long's pages.
CHECKPOINT_EVERY_S: Final = 1.0


@contextlib.contextmanager
def stepped_writes(conn: sa.Connection, *,
                   every_s: float = CHECKPOINT_EVERY_S) -> Iterator[Callable[[], None]]:
    """For a long writer committing in steps on ``conn`` (SQLite; a no-op elsewhere): its
    automatic WAL checkpoints are off while it writes, and it calls the yielded function
    after each commit, once the writers it let in are in (:meth:`Waiters.let_in`); that
    checkpoints at most once per ``every_s`` seconds (the first call always does).

    Why: SQLite runs an automatic checkpoint inside the COMMIT that crosses the WAL's
    threshold (every commit of a publish, whose WAL stays above it), copying the frames
    to the database file and syncing it; the turnstile opens only after the commit
    (:func:`make_engine`), so an analyst's event would wait for that copy too. Run after
    the waiting writers are in, the checkpoint (``PASSIVE``: it takes no write lock) runs
    beside their transactions instead. Measured (2 loaded cores, load ~14, an event every
    10 ms during a 20k-account publish, twice each): the event's wait at the turnstile
    went from p50 41-59 / p95 200-270 ms to 23-25 / 100-106 ms.
    """
    if conn.dialect.name != "sqlite":
        yield lambda: None
        return
    driver = conn.connection.dbapi_connection
    before = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]  # type: ignore[union-attr]
    driver.execute("PRAGMA wal_autocheckpoint = 0")  # type: ignore[union-attr]
    last = -float("inf")

    def checkpoint() -> None:
        nonlocal last
        if time.monotonic() - last >= every_s:
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
            last = time.monotonic()

    try:
        yield checkpoint
    finally:  # the connection's own setting back before it returns to the pool
        driver.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")  # type: ignore[union-attr]


class Checkpointer:
    """Checkpoints a SQLite store's WAL (``PASSIVE``: it waits for no reader or writer)
    every ``every_s`` seconds on a daemon thread: for a process whose engine does not
    checkpoint in its commits (``make_engine(checkpoint_in_commit=False)``), so that no
    request of it waits for a checkpoint. A no-op on PostgreSQL and in-memory SQLite.
    Several processes' checkpointers on one store do not queue: SQLite runs one
    checkpoint at a time and the others return at once. A tick with nothing to copy
    reads the WAL index only (no sync).

    Measured (``python -m bench.workbench --accounts 1000000``, quiet, 8 clients each
    writing an event every 50 ms during a 1M-account publish): an event's server time p50
    144 / p95 211 ms with checkpoints in the events' commits, 28 / 133 with this.
    """

    def __init__(self, engine: sa.Engine, *, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self._engine, self._every_s = engine, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def checkpoint(self) -> tuple[int, int, int]:
        """One ``PASSIVE`` checkpoint now: (busy, WAL frames, frames copied)."""
        raw = self._engine.raw_connection()
        try:
            row = raw.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            raw.close()
        return int(row[0]), int(row[1]), int(row[2])

    def start(self) -> None:
        if self._thread is not None or sqlite_path(self._engine.url) is None:
            return
        self._thread = threading.Thread(target=self._run, name="store-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            # A failed checkpoint (the file went away, a disk error) leaves the WAL to
            # the next tick: it is never worth a server's request.
            with contextlib.suppress(sqlite3.Error, sa.exc.SQLAlchemyError):
                self.checkpoint()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


@contextlib.contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction that takes SQLite's write lock up front (``BEGIN IMMEDIATE``).

    A transaction that reads and then writes must begin so: begun ``DEFERRED`` it holds a
    snapshot, and if another writer (an analyst's event) commits before its first write,
    SQLite refuses the upgrade at once ("database is locked", no busy wait).
    """
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def explanations_dir(url: sa.URL, given: Path | None, export_dir: Path | None) -> Path | None:
    """Where run explanation files go: ``given``, beside a SQLite file, or under exports."""
    if given is not None:
        return Path(given)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(url.database)
        return db.parent / f"{db.stem}_explanations"
    if export_dir is not None:
        return export_dir / "_explanations"
    return None


#: Where a pooled connection remembers the run rows files it attached (``{path: alias}``,
#: the most recently read last): written by ``serving.store_rows.attach``.
ATTACHED_ROWS: Final = "delinq_rows_attached"
#: Files a pooled connection keeps attached when it goes back to the pool (the most
#: recently read): the next request for the current run then pays no ``ATTACH`` (opening
#: the file and reading its schema).
KEEP_ATTACHED: Final = 3


def release_rows(dbapi_conn: Any, record: Any) -> None:
    """Detach, from a pooled connection going back to the pool (a pool ``checkin``
    listener: its transaction has ended, so SQLite lets them go), the run rows files
    beyond the :data:`KEEP_ATTACHED` most recently read and every file unlinked since (a
    retired run's: its disk space comes back once no connection holds it). Here, with
    the engines, not in :mod:`serving.store_rows` (which imports this module)."""
    attached = record.info.get(ATTACHED_ROWS) if record is not None else None
    if not attached:
        return
    items = list(attached.items())
    for n, (path, alias) in enumerate(items):
        if n >= len(items) - KEEP_ATTACHED and Path(path).exists():
            continue
        try:
            dbapi_conn.execute(f"DETACH DATABASE {alias}")
        except sqlite3.Error:
            continue  # still in a transaction: the alias stays known, reused next time
        del attached[path]
