"""The interactive jobs behind ``delinq demo`` and ``delinq run DATA_DIR``.

Each job is one Prefect flow run (``main-job`` or ``run-folder`` from
:mod:`pipelines.flows`). With no ``PREFECT_API_URL`` set, Prefect starts a temporary local
server for the run; its database lives in ``<data_dir>/.prefect`` (``PREFECT_HOME``), so
nothing is written to the home directory and the runs can be browsed afterwards with
``PREFECT_HOME=<data_dir>/.prefect prefect server start``.

The terminal shows our own progress lines, the results and where everything is. Prefect's
console shows warnings and errors only (its INFO logs still reach the Prefect UI), Python
warnings go to ``<data_dir>/logs/delinq.log`` instead of the screen, and errors the user
must fix (bad data, no model) are not echoed with a traceback by Prefect: they propagate
to the CLI, which prints one clear line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.settings import Settings

Echo = Callable[[str], Any]

PREFECT_UI = "http://127.0.0.1:4200"


def prefect_environment(data_dir: Path) -> dict[str, str]:
    """Environment defaults for a quiet, self-contained Prefect run under ``data_dir``."""
    return {
        # Temporary server database and Prefect's files under the data dir, not in ~.
        "PREFECT_HOME": str((Path(data_dir) / ".prefect").resolve()),
        # The telemetry service writes to the server's SQLite database while the schema is
        # being migrated on first start, which logs "database is locked"; it is off here.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # First start on a fresh machine migrates the database: allow a slow 2-core box.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        # Console: warnings and errors only; the run logs still go to the API at INFO.
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        "GIT_PYTHON_REFRESH": "quiet",
    }


class _EchoHandler(logging.Handler):
    """Prints progress lines; ``seen`` is set by the first one (the flow run has started)."""

    def __init__(self, echo: Echo) -> None:
        super().__init__(logging.INFO)
        self.echo = echo
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()
        self.echo(record.getMessage())


class _HideUserErrors(logging.Filter):
    """Drop Prefect's console echo of errors the CLI reports itself in one line."""

    def __init__(self, errors: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.errors = errors
        self.names = tuple(e.__name__ for e in errors)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.errors):
            return False
        return not (record.levelno >= logging.ERROR and any(
            n in record.getMessage() for n in self.names))


@contextlib.contextmanager
def quiet_prefect_run(data_dir: Path, echo: Echo) -> Iterator[Path]:
    """Run Prefect quietly under ``data_dir`` (see module docstring); yields the log file.

    Until the flow run's first progress line, a waiting line is printed every 15 s.

    Environment variables the user set win over the defaults. The environment and our
    logging handlers are restored on exit.
    """
    data_dir = Path(data_dir)
    log_file = data_dir / "logs" / "delinq.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    saved_env = {k: os.environ.get(k) for k in prefect_environment(data_dir)}
    for key, value in prefect_environment(data_dir).items():
        os.environ.setdefault(key, value)
    _reload_prefect_settings()
    from pipelines.errors import user_errors
    from pipelines.flows import PROGRESS_LOGGER, ticker

    progress_log = logging.getLogger(PROGRESS_LOGGER)
    warn_log = logging.getLogger("py.warnings")
    mlflow_log = logging.getLogger("mlflow")
    saved = (progress_log.level, progress_log.propagate, warn_log.propagate, mlflow_log.level)
    echo_handler, file_handler = _EchoHandler(echo), logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    console_filter = _HideUserErrors(user_errors())
    consoles = [
        h for h in logging.getLogger().handlers if type(h).__name__ == "PrefectConsoleHandler"
    ]
    progress_log.addHandler(echo_handler)
    progress_log.setLevel(logging.INFO)
    progress_log.propagate = False
    logging.captureWarnings(True)
    warn_log.addHandler(file_handler)
    warn_log.propagate = False
    mlflow_log.setLevel(max(mlflow_log.level, logging.WARNING))
    for handler in consoles:
        handler.addFilter(console_filter)
    try:
        # Until the flow prints its first line (a fresh machine first starts and migrates
        # Prefect's local server), say every 15 s that we are waiting.
        with ticker("starting Prefect", emit=echo, every=15.0, until=echo_handler.seen):
            yield log_file
    finally:
        for handler in consoles:
            handler.removeFilter(console_filter)
        progress_log.removeHandler(echo_handler)
        warn_log.removeHandler(file_handler)
        file_handler.close()
        logging.captureWarnings(False)
        progress_log.setLevel(saved[0])
        progress_log.propagate, warn_log.propagate = saved[1], saved[2]
        mlflow_log.setLevel(saved[3])
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        # Prefect's own settings are left as they were during the run: the temporary server
        # stops at interpreter exit and must stay as quiet as the run was.


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


def _bin(name: str) -> str:
    """Path of a console script of this environment, relative to the cwd when shorter."""
    path = Path(sys.executable).parent / name
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def where_everything_is(settings: Settings, result: dict[str, Any], log_file: Path) -> str:
    """The closing block: data, stores, exports and how to open the MLflow and Prefect UIs."""
    data_dir = Path(settings.data_dir)
    ingest = result.get("ingest", {})
    record = result.get("score", {}).get("record", {})
    export = record.get("export_path") or str(data_dir / "exports")
    prefect_home = os.environ.get("PREFECT_HOME") or str((data_dir / ".prefect").resolve())
    lines = [
        "Where everything is:",
        f"  data folder      {ingest.get('source', '')}",
        f"  quarantine       {ingest.get('quarantine', '')} (bad rows, if any, with their rule)",
        f"  worklist store   {settings.resolved_store_url}",
        f"  Parquet export   {export}",
        f"  MLflow runs      {_bin('mlflow')} ui --backend-store-uri "
        f"{shlex.quote(settings.resolved_tracking_uri)}   (then http://127.0.0.1:5000)",
        f"  Prefect runs     PREFECT_HOME={shlex.quote(prefect_home)} {_bin('prefect')} "
        f"server start   (then {PREFECT_UI})",
        f"  warnings log     {log_file}",
        f"  worklist again   {_bin('delinq')} worklist {shlex.quote(str(data_dir))}",
    ]
    return "\n".join(lines)


def _print_results(settings: Settings, result: dict[str, Any], log_file: Path, echo: Echo,
                   t0: float) -> None:
    from serving.store import WorklistStore
    from serving.worklist import format_worklist

    echo("")
    echo("Validation")
    echo(result["ingest"]["report"])
    if "train" in result:
        echo("")
        echo(result["train"]["report"])
    as_of = result["score"]["as_of"]
    store = WorklistStore(settings.resolved_store_url)
    frame = store.read_worklist(as_of=date.fromisoformat(as_of), top=10)
    n = result["score"]["record"].get("n_scored")
    echo("")
    echo(f"Worklist as of {as_of}: top 10" + (f" of {n:,} accounts" if n else ""))
    echo(format_worklist(frame, top=10))
    echo("")
    echo(where_everything_is(settings, result, log_file))
    echo(f"Done in {time.perf_counter() - t0:.0f} s.")


def run_main_job(
    *, data_dir: Path, settings: Settings, accounts: int = 5000, seed: int = 0,
    echo: Echo = print,
) -> dict[str, Any]:
    """The README's main command (``delinq demo``), as one Prefect flow run: generate a
    synthetic book (``accounts`` accounts, two years) into ``<data_dir>/book``, validate,
    build the training set, train and register a champion, score as of the day after the
    book's last date, then print the top 10 of the worklist and where everything is.

    Stores follow ``settings`` with ``data_dir`` forced to ``data_dir``. Returns the stage
    summaries of the flow run.
    """
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    settings = settings.model_copy(update={"data_dir": data_dir})
    echo(f"delinq demo: a synthetic book of {accounts:,} accounts over two years in {data_dir}")
    with quiet_prefect_run(data_dir, echo) as log_file:
        from pipelines.flows import main_job_flow, settings_params

        echo("starting the Prefect flow run 'main-job' (a temporary local Prefect server "
             "starts first unless PREFECT_API_URL is set)")
        result = main_job_flow(settings=settings_params(settings), accounts=accounts, seed=seed)
        _print_results(settings, result, log_file, echo, t0)
    return result


def run_user_folder(*, data_dir: Path, settings: Settings, echo: Echo = print) -> dict[str, Any]:
    """The main job on the user's data folder ``data_dir`` (``delinq run DATA_DIR``), as one
    Prefect flow run: validate, train and register if there is no champion yet, score as of
    the day after the book's last date, print the worklist's top 10 and where everything is.

    Stores and logs live under ``settings.data_dir``. Returns the stage summaries.
    """
    t0 = time.perf_counter()
    state_dir = Path(settings.data_dir)
    echo(f"delinq run: {data_dir} (state in {state_dir})")
    with quiet_prefect_run(state_dir, echo) as log_file:
        from pipelines.flows import run_folder_flow, settings_params

        result = run_folder_flow(data_source=str(Path(data_dir).resolve()),
                                 settings=settings_params(settings))
        _print_results(settings, result, log_file, echo, t0)
    return result
