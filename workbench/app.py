"""The workbench application: :func:`create_app` builds the FastAPI app over one store.

Anonymous access: only ``/login`` and ``/health``. The API (``/api/...``, JSON, OpenAPI at
``/openapi.json``) answers 401 to anonymous calls; pages redirect to the login page.
Every error is ``{"detail": "...", "errors": [...]}`` and documented on each route.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates

from serving import store_files, store_io
from serving.store import WorklistStore
from serving.store_rows import RunRowsMissingError
from workbench import history, prewarm
from workbench.auth import LoginLimiter, exclusive_lock
from workbench.config import WorkbenchConfig
from workbench.security import SessionSigner, load_session_key

TEMPLATES = Path(__file__).with_name("templates")
#: Seconds between checks that the history index still matches the staged book.
INDEX_CHECK_EVERY_S = 10.0
#: File (under ``<state>/workbench``) of the recent failed sign-ins, shared by every
#: server process (:class:`workbench.auth.LoginLimiter`).
LOGIN_FAILURES = "login_failures.json"
#: Lock file (under ``<state>/workbench``) held while the history index is rebuilt, so
#: that of several server processes seeing a re-staged book one rebuilds it.
INDEX_LOCK = "history.lock"
#: Lock file held by the one server process reading the store's file into the page cache.
PREWARM_LOCK = "prewarm.lock"
#: Bytes of a SQLite store that each of the workbench's connections maps into memory
#: (``PRAGMA mmap_size``): its reads of a large store's indexes then come from the shared
#: page cache without a system call and a copy per page (a rare worklist filter of a
#: 1M-account run read ~6,000 index pages at random: 6.2 -> 3.8 ms CPU). Address space,
#: not memory: the pages are the operating system's file cache (counted in a process's
#: RSS once touched, shared by every process reading the file).
SQLITE_MMAP_BYTES: Final = 4 * 2**30
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


@dataclass
class Workbench:
    """What the routes share (``app.state.wb``): one per server process."""

    config: WorkbenchConfig
    store: WorklistStore
    engine: sa.Engine
    signer: SessionSigner
    limiter: LoginLimiter
    templates: Jinja2Templates
    _index: history.HistoryIndex | None = None
    _index_lock: threading.Lock = field(default_factory=threading.Lock)
    _building: bool = False
    _checked_at: float = -1e18
    _metrics: dict[tuple[str, str], dict[str, dict[str, float]]] = field(default_factory=dict)
    _checkpointer: store_io.Checkpointer | None = None

    @property
    def index_dir(self) -> Path:
        return self.config.workbench_dir / "history"

    def history_index(self) -> history.HistoryIndex | None:
        """The account-history index of the staged book, None when there is none yet.

        A stale index (the book was re-staged) keeps answering while a thread rebuilds it.
        """
        book = self.config.book_dir
        now = time.monotonic()
        if now - self._checked_at >= INDEX_CHECK_EVERY_S:  # a few stat calls, not per request
            self._checked_at = now
            if book is None or not (Path(book) / "invoices.parquet").exists():
                return None
            if not history.is_current(book, self.index_dir):
                self._rebuild_in_background()
        if book is None:
            return None
        with self._index_lock:
            if self._index is None and (self.index_dir / history.FINGERPRINT).exists():
                self._index = history.HistoryIndex(self.index_dir)
            return self._index

    def _rebuild_in_background(self) -> None:
        with self._index_lock:
            if self._building:
                return
            self._building = True

        def run() -> None:
            try:
                refresh_history(self, only_if_stale=True)
            finally:
                with self._index_lock:
                    self._building = False

        threading.Thread(target=run, name="workbench-history", daemon=True).start()

    def model_metrics(self, model: str, version: str) -> dict[str, dict[str, float]]:
        """Test-period metrics of ``version`` of ``model`` beside the baselines (scorer ->
        metric -> value, :func:`models.registry.version_metrics`), read once per version
        (a version's metrics never change); empty without a registry."""
        name = self.config.registered_names.get(model)
        if self.config.tracking_uri is None or name is None:
            return {}
        key = (name, version)
        if key not in self._metrics:
            from models.registry import version_metrics  # MLflow: imported on first use

            self._metrics[key] = version_metrics(name, version,
                                                 tracking_uri=self.config.tracking_uri)
        return self._metrics[key]

    def warm(self) -> None:
        """Open what the first requests would otherwise open: the history index and the
        current run's explanation locator (:func:`serving.store_files.locate`, ~0.6 s of
        CPU for a 1M-account run). A run published later is located by its first account
        request (one thread builds, the others wait). Also starts reading the SQLite store's
        file into the kernel's page cache, in the background (:mod:`workbench.prewarm`), and
        the store's checkpoints (:class:`serving.store_io.Checkpointer`)."""
        if self._checkpointer is None:
            self._checkpointer = store_io.Checkpointer(self.engine)
            self._checkpointer.start()
        run = self.store.current_run()
        store = prewarm.store_file(self.engine.url)
        if store is not None:
            prewarm.start([store], self.config.workbench_dir / PREWARM_LOCK)
        self.history_index()
        if run is not None and run.explanations_path is not None:
            with contextlib.suppress(FileNotFoundError):  # replaced meanwhile: read later
                store_files.locate(Path(run.explanations_path))

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.store.close()
        self.engine.dispose()


def refresh_history(wb: Workbench, *, only_if_stale: bool = False) -> dict[str, int] | None:
    """Build the history index from the staged book and refresh the account directory
    (name, region) in the store; rows per table, None when there is no staged book (or,
    ``only_if_stale``, when the index is already current: another server process rebuilt
    it). One process at a time builds (a lock file under ``<state>/workbench``)."""
    book = wb.config.book_dir
    if book is None or not (Path(book) / "invoices.parquet").exists():
        return None
    with exclusive_lock(wb.config.workbench_dir / INDEX_LOCK):
        # Another server process may have rebuilt it while this one waited for the lock.
        if only_if_stale and history.is_current(Path(book), wb.index_dir):
            rows = None
        else:
            rows = history.build_index(Path(book), wb.index_dir)
            sync_directory(wb.engine, wb.index_dir / "accounts.parquet")
    with wb._index_lock:
        wb._index = history.HistoryIndex(wb.index_dir)
    return rows


def sync_directory(engine: sa.Engine, accounts: Path) -> int:
    """Replace ``account_directory`` with the accounts file's ids, names and regions, and
    recompute every run's precomputed totals (their regions come from the directory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from serving import store_bulk, store_totals
    from serving.store_events import account_directory

    if not accounts.exists():
        return 0
    names = pq.read_schema(accounts).names
    table = pq.read_table(accounts, columns=[c for c in ("account_id", "name", "region")
                                             if c in names])
    for col in ("name", "region"):
        if col not in table.column_names:
            table = table.append_column(col, pa.nulls(table.num_rows, pa.string()))
    table = table.select(["account_id", "name", "region"]).cast(
        pa.schema([("account_id", pa.string()), ("name", pa.string()), ("region", pa.string())]))
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            conn.execute(account_directory.delete())
            store_bulk.bulk_insert(conn, account_directory, table, constants={})
            # Totals by region follow the directory (same transaction: never out of step).
            store_totals.compute(conn, store_totals.runs_with_rows(conn))
    return table.num_rows


def open_store_engine(store_url: str) -> sa.Engine:
    """An engine on the store at ``store_url``, its schema brought to this code's revision
    first (pending migrations applied, as a writer does): for ``delinq users``."""
    WorklistStore(store_url, upgrade=True).close()
    return store_io.make_engine(store_io.normalise_url(store_url))


def _map_pages(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
    cursor.close()


def open_workbench(config: WorkbenchConfig) -> Workbench:
    """Open the store (applying pending migrations: the workbench writes events) and the
    session key; raises the store's one-line errors."""
    store = WorklistStore(config.store_url, upgrade=True, export_dir=config.export_dir)
    try:
        url = store_io.normalise_url(config.store_url)
        # Events never checkpoint in their commits (they would copy a publish's pages
        # while holding the turnstile): the process's Checkpointer does (:meth:`warm`).
        engine = store_io.make_engine(url, checkpoint_in_commit=False)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _map_pages)
        key = load_session_key(config.workbench_dir / "session.key")
    except BaseException:
        store.close()
        raise
    return Workbench(
        config=config, store=store, engine=engine,
        signer=SessionSigner(key, max_age_s=config.session_hours * 3600.0),
        limiter=LoginLimiter(max_failures=config.login_max_failures,
                             window_s=config.login_window_s, clock=config.clock,
                             path=config.workbench_dir / LOGIN_FAILURES),
        templates=Jinja2Templates(directory=str(TEMPLATES)),
    )


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` and ``Cache-Control: no-store`` on every
    response that does not set them itself. Plain ASGI (it only edits the start message),
    not Starlette's ``BaseHTTPMiddleware``, which streams every response through a task
    group and cost more than some routes' own work."""

    _DEFAULTS: Final = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in {**SECURITY_HEADERS, "Cache-Control": "no-store"}.items()]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._DEFAULTS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _error(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(config: WorkbenchConfig, *, workbench: Workbench | None = None) -> FastAPI:
    """The workbench app over ``config``'s store (``workbench``: an already opened one)."""
    from workbench import api, pages

    wb = workbench or open_workbench(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        wb.warm()
        # What the process holds once started (modules, routes, compiled templates and
        # statements: ~250k objects) is moved out of the cyclic collector's generations:
        # a full collection walked them all, a ~130 ms pause of every request in the
        # process (measured at 1M accounts, load ~4), now it walks what requests leave.
        # Objects are still freed by their reference counts.
        gc.collect()
        gc.freeze()
        yield
        wb.close()

    app = FastAPI(
        title="delinq workbench",
        version="1",
        description="The analysts' workbench: worklist, accounts, recorded outcomes, runs. "
        "Authenticate with `Authorization: Bearer <token>` (`delinq users token`) or the "
        "session cookie of a signed-in browser (then writes need `X-CSRF-Token`).",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # no third-party JS: the document is /openapi.json
    )
    app.state.wb = wb

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RunRowsMissingError)
    async def rows_missing(request: Request, exc: RunRowsMissingError) -> JSONResponse:
        # A run's rows file gone from disk: say which, not a traceback (serving.store_rows).
        return _error(503, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return _error(422, f"invalid request: {where}: {first['msg']}", errors)

    app.add_middleware(SecurityHeaders)

    app.include_router(api.router)
    app.include_router(pages.router)
    return app


def serve_workers(factory: str, *, host: str, port: int, workers: int,
                  log_level: str = "info") -> None:
    """Serve the app that ``factory`` (``"module:function"``, no arguments) builds with
    uvicorn in ``workers`` processes sharing one listening socket (uvicorn's supervisor
    restarts a worker that dies); blocks until stopped (Ctrl-C, SIGTERM).

    Each process calls ``factory`` and opens its own workbench (engine, history index),
    so the routes use one process's Python and several serve in parallel. What a process
    keeps in memory stays correct when another process writes: runs, users and tokens
    are read from the store on every request, the explanation locator is keyed by the
    file's size and modification time, the history index is checked against the staged
    book every :data:`INDEX_CHECK_EVERY_S` seconds (one process rebuilds it, under a
    lock), and failed sign-ins are counted in a shared file (:data:`LOGIN_FAILURES`).
    """
    import uvicorn

    from workbench.http_protocol import NoDelayH11Protocol

    # Nagle's algorithm off on every connection (TCP_NODELAY): with several workers
    # uvicorn's own socket left it on, ~40 ms per response (workbench.http_protocol).
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers,
                log_level=log_level, http=NoDelayH11Protocol)
