"""The interactive jobs behind ``delinq demo`` and ``delinq run DATA_DIR``.

Each job is one Prefect flow run (``main-job`` or ``run-folder`` from
:mod:`pipelines.flows`). With no ``PREFECT_API_URL`` set, Prefect starts a temporary local
server for the run; its database lives in ``<data_dir>/.prefect`` (``PREFECT_HOME``), so
nothing is written to the home directory and the runs can be browsed afterwards with
``PREFECT_HOME=<data_dir>/.prefect prefect server start``.

The terminal shows our own progress lines, the results and where everything is; the quiet
console, the warnings log and the environment are arranged by
:func:`pipelines.runtime.run_session`. Errors the user must fix (bad data, no model)
propagate to the CLI, which prints one clear line.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pipelines import runtime
from pipelines.settings import Settings
from serving.redact import display_url

Echo = Callable[[str], Any]

PREFECT_UI = "http://127.0.0.1:4200"
#: Worklist rows printed at the end of a job.
TOP = 10


def _bin(name: str) -> str:
    """Path of a console script of this environment, relative to the cwd when shorter."""
    path = Path(sys.executable).parent / name
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def where_everything_is(settings: Settings, result: Mapping[str, Any], log_file: Path) -> str:
    """The closing block: data, stores, exports and how to open the MLflow and Prefect UIs."""
    data_dir = Path(settings.data_dir)
    ingest = result.get("ingest")
    score = result.get("score")
    export = score.export_path if score else data_dir / "exports"
    home = os.environ.get("PREFECT_HOME") or str(runtime.prefect_home(data_dir))
    lines = [
        "Where everything is:",
        f"  data folder      {ingest.source if ingest else ''}",
        f"  quarantine       {ingest.quarantine if ingest else ''} (bad rows, if any, with "
        "their rule)",
        f"  worklist store   {display_url(settings.resolved_store_url)}",
        f"  Parquet export   {export}",
        f"  MLflow runs      {_bin('mlflow')} ui --backend-store-uri "
        f"{shlex.quote(display_url(settings.resolved_tracking_uri))}   (then "
        "http://127.0.0.1:5000)",
        f"  Prefect runs     PREFECT_HOME={shlex.quote(home)} {_bin('prefect')} "
        f"server start   (then {PREFECT_UI})",
        f"  warnings log     {log_file}",
        f"  worklist again   {_bin('delinq')} worklist {shlex.quote(str(data_dir))}",
    ]
    return "\n".join(lines)


def _print_results(settings: Settings, result: Mapping[str, Any], log_file: Path, echo: Echo,
                   t0: float) -> None:
    from serving.store import WorklistStore
    from serving.worklist import format_worklist, kpi_line

    echo("")
    echo("Validation")
    echo(result["ingest"].report)
    if "train" in result:
        echo("")
        echo(result["train"].report)
    score = result["score"]
    with WorklistStore(settings.resolved_store_url) as store:
        frame = store.read_worklist(as_of=score.as_of, top=TOP)
    n = score.n_scored
    echo("")
    echo(f"Worklist as of {score.as_of.isoformat()}: top {TOP}"
         + (f" of {n:,} accounts" if n else ""))
    for line in score.rule_lines:  # which populations the aging rule ranked, and why
        echo(line)
    if score.kpis:
        echo(kpi_line(score.kpis))
    ingest = result["ingest"]
    if not n and score.as_of > ingest.last_date:
        # e.g. an export of settled invoices only: everything is cleared by its last date
        echo(f"nothing is open as of {score.as_of.isoformat()} (every invoice is cleared by "
             f"the book's last date, {ingest.last_date.isoformat()}): score a date inside "
             f"the book ({ingest.first_date.isoformat()} to {ingest.last_date.isoformat()}) "
             "with `delinq run --as-of YYYY-MM-DD`")
    echo(format_worklist(frame, top=TOP))
    echo("")
    dunning = result.get("dunning")
    if dunning is not None:  # letters per level (issue 22), or why none
        for line in dunning.lines() if hasattr(dunning, "lines") else [str(dunning)]:
            echo(line)
        echo("")
    echo(where_everything_is(settings, result, log_file))
    echo(f"Done in {time.perf_counter() - t0:.0f} s.")


def run_main_job(
    *, data_dir: Path, settings: Settings, accounts: int = 5000, echo: Echo = print,
) -> dict[str, Any]:
    """The README's main command (``delinq demo``), as one Prefect flow run: generate a
    synthetic book (``accounts`` accounts, two years, seeded by ``settings.seed``) into
    ``<data_dir>/book``, validate, build the training set, train and register a champion,
    score as of the day after the book's last date, then print the top 10 of the worklist
    and where everything is.

    Stores follow ``settings`` with ``data_dir`` forced to ``data_dir``. Returns the stage
    summaries of the flow run.
    """
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    settings = settings.model_copy(update={"data_dir": data_dir})
    echo(f"delinq demo: a synthetic book of {accounts:,} accounts over two years in {data_dir}")
    with runtime.run_session(data_dir, echo=echo, prefect=True,
                             secrets=settings.secrets()) as log_file:
        from pipelines.flows import main_job_flow, settings_params

        echo("starting the Prefect flow run 'main-job' (a temporary local Prefect server "
             "starts first unless PREFECT_API_URL is set)")
        result = main_job_flow(settings=settings_params(settings), accounts=accounts)
        _print_results(settings, result, log_file, echo, t0)
    return result


def run_user_folder(*, data_dir: Path, settings: Settings, echo: Echo = print,
                    as_of: date | None = None,
                    accept_anomalies: bool = False) -> dict[str, Any]:
    """The main job on the user's data folder ``data_dir`` (``delinq run DATA_DIR``), as one
    Prefect flow run: validate, train and register if there is no champion yet (on what was
    known before ``as_of`` when given), score as of ``as_of`` (default: the day after the
    book's last date), print the worklist's top 10 and where everything is.

    Stores and logs live under ``settings.data_dir``. Returns the stage summaries.
    """
    t0 = time.perf_counter()
    state_dir = Path(settings.data_dir)
    echo(f"delinq run: {data_dir} (state in {state_dir})")
    with runtime.run_session(state_dir, echo=echo, prefect=True,
                             secrets=settings.secrets()) as log_file:
        from pipelines.flows import run_folder_flow, settings_params

        result = run_folder_flow(data_source=str(Path(data_dir).resolve()),
                                 settings=settings_params(settings), as_of=as_of,
                                 accept_anomalies=accept_anomalies)
        _print_results(settings, result, log_file, echo, t0)
    return result
