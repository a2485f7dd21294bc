"""The process around a run: environment, warnings, logs and console verbosity, in one place.

A normal run prints our own progress lines and results, never warning noise or tracebacks
for errors the user must fix (DESIGN section 9). :func:`run_session` arranges that for the
CLI's commands:

- **Environment**: defaults for MLflow, GitPython and (for flow runs) Prefect, set only where
  the user has not set them, and restored on exit. Nothing else in the product writes
  ``os.environ``: the library packages never do.
- **Warnings**: Python warnings (MLflow's, numba's, pandas', ...) and the ``mlflow``
  logger's records go to ``<data_dir>/logs/delinq.log`` instead of the console.
- **Console**: Prefect's console shows warnings and errors only (its INFO logs still reach
  the Prefect API and UI); errors the user must fix (:func:`pipelines.errors.user_errors`)
  are not echoed by Prefect, because the CLI prints them in one line (filtered by exception
  type and logger, never by message text: :class:`HideUserErrors`).
- **Progress**: with ``echo``, the steps' progress lines (:mod:`pipelines.progress`) are
  printed.
- **Secrets**: URL passwords and the settings' secret values (``secrets``) are masked in
  the log file, on Prefect's console and in the progress lines (:class:`RedactSecrets`).

Prefect is imported only when a session asks for it (``prefect=True``), so the CLI's
non-flow commands never pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from pipelines.errors import ReadOnlyStateError
from pipelines.progress import routed, ticker
from serving.redact import redact

Echo = Callable[[str], object]

#: Loggers of Prefect's run engines: their ERROR records without an exception are state
#: summaries ("Finished in state Failed(...)") repeating an exception logged with it.
RUN_ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
#: Seconds between "starting Prefect" lines until a flow run prints its first line.
STARTUP_TICK_S = 15.0


def check_writable(folder: Path) -> None:
    """Raise :class:`ReadOnlyStateError` unless ``folder`` (or, if it does not exist yet,
    its nearest existing parent, where it will be created) is writable."""
    folder = Path(folder).resolve()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ReadOnlyStateError(
            f"the state folder {folder} is not writable ({existing} is read-only or not a "
            "folder): choose a writable one with --state-dir or DELINQ_DATA_DIR")


def log_file(data_dir: Path) -> Path:
    """Where warnings go: ``<data_dir>/logs/delinq.log``."""
    return Path(data_dir) / "logs" / "delinq.log"


def prefect_home(data_dir: Path) -> Path:
    """Prefect's files (and the temporary server's database) for runs under ``data_dir``."""
    return (Path(data_dir) / ".prefect").resolve()


def library_environment() -> dict[str, str]:
    """Environment defaults for quiet, offline MLflow use."""
    return {
        # MLflow probes git for the run's source version; no git here is not a warning.
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # No usage telemetry: the product runs offline and must not phone home.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }


def prefect_environment(data_dir: Path) -> dict[str, str]:
    """Environment defaults for a quiet, self-contained Prefect run under ``data_dir``."""
    return {
        # Temporary server database and Prefect's files under the data dir, not in ~.
        "PREFECT_HOME": str(prefect_home(data_dir)),
        # The telemetry service writes to the server's SQLite database while the schema is
        # being migrated on first start, which logs "database is locked"; it is off here.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # First start on a fresh machine migrates the database: allow a slow 2-core box.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        # Console: warnings and errors only; the run logs still go to the API at INFO.
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def environment_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """Set each of ``values`` unless the user set it; restore the environment on exit."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class HideUserErrors(logging.Filter):
    """Console filter of interactive runs: drops Prefect's echo of errors the CLI reports
    itself in one line.

    Dropped: records carrying an exception of one of ``errors`` (any logger), and ERROR
    records of the run engines (:data:`RUN_ENGINE_LOGGERS`) without an exception: those
    are state summaries of a failure whose exception the flow run logs with its traceback
    (shown unless it is a user error) and which then reaches the CLI anyway.
    """

    def __init__(self, errors: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.errors = errors

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            return not isinstance(record.exc_info[1], self.errors)
        return not (record.levelno >= logging.ERROR and record.name in RUN_ENGINE_LOGGERS)


class RedactSecrets(logging.Filter):
    """Masks URL passwords and the given secret values in a record's message and
    traceback text (:func:`serving.redact.redact`), before any handler formats it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def _all_handlers() -> list[logging.Handler]:
    """Every handler of the root logger and of every named logger: Prefect attaches its
    console and API handlers to its own loggers (``prefect``, ...), not to the root."""
    loggers = [logging.getLogger()] + [
        log for log in logging.Logger.manager.loggerDict.values()
        if isinstance(log, logging.Logger)]
    seen: dict[int, logging.Handler] = {}
    for log in loggers:
        for handler in log.handlers:
            seen.setdefault(id(handler), handler)
    return list(seen.values())


@contextlib.contextmanager
def _redacted_handlers(secrets: Iterable[str]) -> Iterator[None]:
    """Mask secrets in every record the root logger's handlers (Prefect's console and API
    handlers among them) write during the block."""
    masker = RedactSecrets(secrets)
    handlers = _all_handlers()
    for handler in handlers:
        handler.addFilter(masker)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(masker)


@contextlib.contextmanager
def warnings_to_file(path: Path, *, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Python warnings and the ``mlflow`` logger's records go to ``path``, not the console;
    logging is restored on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    loggers = [logging.getLogger("py.warnings"), logging.getLogger("mlflow")]
    saved = [(log.level, log.propagate) for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.propagate = False
    mlflow_log = loggers[1]
    mlflow_log.setLevel(max(mlflow_log.level, logging.WARNING))
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for log, (level, propagate) in zip(loggers, saved, strict=True):
            log.removeHandler(handler)
            log.setLevel(level)
            log.propagate = propagate
        handler.close()


#: The open notebook session of :func:`quiet_notebook` (one per process).
_NOTEBOOK_SESSION: list[contextlib.ExitStack] = []


def quiet_notebook(data_dir: Path) -> Path:
    """The library side of :func:`run_session` for a notebook, for the rest of the process
    (a notebook has no ``with`` block around its cells): the environment defaults of
    :func:`library_environment` (no MLflow progress bars, telemetry or git probe) and
    Python warnings plus the ``mlflow`` logger's records routed to
    ``<data_dir>/logs/delinq.log``. Calling it again replaces the previous session (e.g.
    another ``data_dir``). Returns the log file."""
    while _NOTEBOOK_SESSION:
        _NOTEBOOK_SESSION.pop().close()
    path = log_file(data_dir)
    stack = contextlib.ExitStack()
    stack.enter_context(environment_defaults(library_environment()))
    stack.enter_context(warnings_to_file(path))
    _NOTEBOOK_SESSION.append(stack)
    return path


def _reload_prefect_settings() -> None:
    """Make an already imported Prefect see the current environment (settings and logging);
    on first import Prefect reads it by itself."""
    if "prefect" not in sys.modules:
        import prefect  # noqa: F401  - first import reads the environment

        return
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging(incremental=False)


@contextlib.contextmanager
def _prefect_console_filter() -> Iterator[None]:
    from prefect.logging.handlers import PrefectConsoleHandler

    from pipelines.errors import user_errors

    console_filter = HideUserErrors(user_errors())
    consoles = [h for h in _all_handlers() if isinstance(h, PrefectConsoleHandler)]
    # The engines' own loggers too: a run may set up fresh console handlers after this
    # point, and a filter on the logger holds for every handler (this interactive run only;
    # the CLI prints the user error itself, in one line).
    engines = [logging.getLogger(name) for name in RUN_ENGINE_LOGGERS]
    for target in [*consoles, *engines]:
        target.addFilter(console_filter)
    try:
        yield
    finally:
        for target in [*consoles, *engines]:
            target.removeFilter(console_filter)


@contextlib.contextmanager
def run_session(data_dir: Path, *, echo: Echo | None = None, prefect: bool = False,
                secrets: Iterable[str] = ()) -> Iterator[Path]:
    """The quiet process of one CLI run whose state lives under ``data_dir`` (see the
    module docstring); yields the log file.

    ``prefect``: the run executes flows (Prefect's environment, a quiet console, and, with
    ``echo``, a "starting Prefect" line every 15 s until the flow run's first progress
    line). ``echo``: print the steps' progress lines with it. ``secrets``: values masked
    wherever they would be written (``Settings.secrets()``), besides URL passwords.

    Environment variables the user set win over the defaults. The environment and our
    logging changes are restored on exit; Prefect's own settings are left as they were
    during the run (a temporary server stops at interpreter exit and must stay as quiet as
    the run was).
    """
    path = log_file(data_dir)
    # The state folder exists before Prefect starts: its home directory goes in it.
    path.parent.mkdir(parents=True, exist_ok=True)
    env = library_environment() | (prefect_environment(data_dir) if prefect else {})
    secrets = tuple(secrets)
    with contextlib.ExitStack() as stack:
        stack.enter_context(environment_defaults(env))
        stack.enter_context(warnings_to_file(path, secrets=secrets))
        if prefect:
            _reload_prefect_settings()
            stack.enter_context(_prefect_console_filter())
        stack.enter_context(_redacted_handlers(secrets))
        if echo is not None:
            raw_echo = echo

            def echo(line: str) -> object:
                return raw_echo(redact(line, secrets))

            seen = stack.enter_context(routed(echo, heartbeats=True, exclusive=True))
            if prefect:
                # A fresh machine first starts and migrates Prefect's local server: until
                # the flow prints its first line, say every 15 s that we are waiting.
                stack.enter_context(
                    ticker("starting Prefect", emit=echo, every=STARTUP_TICK_S, until=seen)
                )
        yield path
