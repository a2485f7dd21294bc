"""The `delinq` command line. Thin: every command parses its arguments (dates once, here),
reads the settings (its options are overrides on top of them) and calls the steps
(:mod:`pipelines.steps`) or a job. Heavy imports happen inside commands so `--help` is fast.

Errors the user can fix (bad data or settings, no champion model, no Prefect server; a
worklist store that is missing, damaged, read-only or unreachable; a read-only state folder,
permissions, a full disk) end with one clear line on stderr and exit code 2, never a
traceback (:data:`USER_ERROR_EXIT`).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli_dunning import dunning_app
from pipelines.cli_model import model_app
from pipelines.cli_store import db_app, runs_app
from pipelines.cli_support import USER_ERROR_EXIT  # noqa: F401 (documented exit code)
from pipelines.cli_support import display as _display
from pipelines.cli_support import echo_data as _echo
from pipelines.cli_support import fail as _fail
from pipelines.cli_support import guarded as _guarded
from pipelines.cli_support import parse_date as _parse_date
from pipelines.cli_support import reader as _reader
from pipelines.cli_support import segment as _segment
from pipelines.cli_support import session as _session
from pipelines.cli_support import settings_for as _settings
from pipelines.cli_support import store_errors as _store_errors
from pipelines.cli_support import writable as _writable
from pipelines.cli_workbench import serve as _serve
from pipelines.cli_workbench import users_app
from pipelines.settings import Grid

app = typer.Typer(
    name="delinq",
    help="Predict which receivables accounts go 30+ days past due; write an explained worklist.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class ImportFormat(StrEnum):
    highradius = "highradius"
    ibm_ar = "ibm_ar"
    taiwan_credit = "taiwan_credit"


app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(model_app, name="model")
app.add_typer(dunning_app, name="dunning")


# --------------------------------------------------------------------------- data


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the book into.")],
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 5000,
    seed: Annotated[
        int | None, typer.Option(help="Random seed, same seed same book (default: settings).")
    ] = None,
    start: Annotated[str, typer.Option(help="First issue date, YYYY-MM-DD.")] = "2023-01-01",
    end: Annotated[str, typer.Option(help="Last event date, YYYY-MM-DD.")] = "2024-12-31",
    error_rate: Annotated[
        float, typer.Option(help="Share of extra bad rows to inject per table (0 = none).")
    ] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    independent_lateness: Annotated[bool, typer.Option(
        help="Each invoice's lateness independent of the account's history (history "
             "predicts nothing; the open invoices still do).")] = False,
    loop: Annotated[bool, typer.Option(
        help="Also write the collections loop's promises and contacts (issue 17).")] = True,
) -> None:
    """Generate a synthetic receivables book (the embedded default data source)."""
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    from pipelines import steps

    settings = _settings(seed=seed)
    done = steps.generate(settings=settings, out=out, accounts=accounts, start=first, end=last,
                          error_rate=error_rate, fmt=fmt,
                          independent_lateness=independent_lateness, loop=loop)
    summary = {"rows": dict(done.rows), "injected": dict(done.injected),
               "seconds": done.seconds, "out": str(done.out)}
    typer.echo(json.dumps(summary, indent=2, default=str))


@app.command()
def validate(
    data_dir: Annotated[Path, typer.Argument(help="Data folder (CSV or Parquet tables).")],
    max_bad_share: Annotated[
        float | None, typer.Option(help="Max share of bad rows per table (default: settings).")
    ] = None,
    quarantine_dir: Annotated[
        Path | None,
        typer.Option(help="Where bad rows go (default: <state dir>/quarantine/<folder name>)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where state lives (default: settings data_dir).")
    ] = None,
) -> None:
    """Validate a data folder: rows read, kept and quarantined per table and rule."""
    from pipelines import steps

    settings = _settings(data_dir=state_dir, max_bad_share=max_bad_share)
    result = _guarded(steps.validate, settings=settings, source=data_dir,
                      quarantine=quarantine_dir)
    _echo(result.report)


@app.command("import")
def import_(
    fmt: Annotated[ImportFormat, typer.Option("--format", help="Source export format.")],
    src: Annotated[Path, typer.Argument(help="Source file (or folder) of the export.")],
    out: Annotated[Path, typer.Option("--out", help="Data folder to write.")],
    rate: Annotated[
        list[str] | None,
        typer.Option(help="HighRadius: exchange rate CUR=RATE into the base currency (repeat)."),
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="HighRadius: keep only invoices in this currency.")
    ] = None,
) -> None:
    """Convert a real export (HighRadius, IBM AR sample, UCI Taiwan) into a data folder."""
    from features.adapters import convert
    from features.contract.io import write_tables

    options: dict[str, object] = {}
    if rate:
        try:
            options["rates"] = {k.strip(): float(v) for k, v in (r.split("=", 1) for r in rate)}
        except ValueError:
            _fail(f"--rate takes CUR=RATE, for example CAD=0.74; got {rate}")
    if currency:
        options["currency"] = currency
    tables = _guarded(convert, fmt.value, src, **options)
    paths = write_tables(tables, out)
    for table, path in paths.items():
        _echo(f"{table:<10} {len(tables[table]):>9,} rows -> {path}")


# --------------------------------------------------------------------------- models


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(help="Data folder to train on.")],
    as_of_grid: Annotated[
        Grid | None, typer.Option(help="Snapshot grid of as_of dates (default: settings).")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where stores live (default: settings data_dir).")
    ] = None,
    val_weeks: Annotated[
        int | None, typer.Option(help="Validation period, weeks (default: settings).")
    ] = None,
    test_weeks: Annotated[
        int | None, typer.Option(help="Test period, weeks (default: settings).")
    ] = None,
    test_end: Annotated[
        str | None, typer.Option(help="Last as_of date of the test period, YYYY-MM-DD "
                                      "(default: the book's last mature date).")
    ] = None,
) -> None:
    """Train both models, compare with baselines, register; promote only past the gate."""
    from pipelines import steps

    split = {"val_weeks": val_weeks, "test_weeks": test_weeks,
             "test_end": None if test_end is None else _parse_date(test_end, "--test-end")}
    split = {k: v for k, v in split.items() if v is not None}
    settings = _settings(data_dir=state_dir, grid=as_of_grid, train=split or None)
    from models.stages import StageBudget

    budget = StageBudget()  # the stage table counts validation too
    with _session(settings):
        with budget, budget.stage("validation"):
            ingested = _guarded(steps.ingest, settings=settings, source=data_dir)
        _echo(ingested.report)
        trained = _guarded(steps.train, settings=settings, book=ingested.staged, budget=budget)
    _echo(trained.training_set.describe())
    _echo(trained.report)


# --------------------------------------------------------------------------- serving


@app.command()
def score(
    data_dir: Annotated[Path, typer.Argument(help="Data folder to score.")],
    as_of: Annotated[str, typer.Option(help="Cut-off date YYYY-MM-DD (strictly before).")],
    state_dir: Annotated[
        Path | None, typer.Option(help="Where stores live (default: settings data_dir).")
    ] = None,
    accept_anomalies: Annotated[bool, typer.Option(
        "--accept-anomalies", help="Publish despite a failed plausibility check (recorded).")
    ] = False,
) -> None:
    """Score every account with open receivables as of a date and write the worklist."""
    day = _parse_date(as_of)
    from pipelines import steps

    settings = _settings(data_dir=state_dir)
    with _session(settings), _store_errors(settings):
        # the staged files are written beside the scoring, which waits for them to publish
        ingested = _guarded(steps.ingest, settings=settings, source=data_dir,
                            accept_anomalies=accept_anomalies, background=True)
        _echo(ingested.report)
        scored = _guarded(steps.score, settings=settings, book=ingested.staged, as_of=day,
                          accept_anomalies=accept_anomalies)
    _echo(f"run {scored.run_id} as of {day}: {scored.status}")
    if scored.message:
        _echo(scored.message)
    typer.echo(f"store: {_display(scored.store_url)}")


@app.command()
def worklist(
    data_dir: Annotated[
        Path | None, typer.Argument(help="State folder (default: settings data_dir).")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows to show (at least 1).")] = 20,
    segment: Annotated[
        str | None, typer.Option(help="preventive, early, delinquent or late.")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="Run date (default: latest).")] = None,
) -> None:
    """Print the current worklist: rank, account, balance, probability, action, reasons.

    Reads only: never creates a folder or a store. Says which run and as_of it shows.
    """
    day = _parse_date(as_of) if as_of else None
    if top < 1:
        _fail(f"--top must be at least 1, got {top}")
    seg = _segment(segment)
    from serving.worklist import describe_run, format_worklist, kpi_line

    settings = _settings(data_dir=data_dir)
    with _store_errors(settings), _reader(settings) as store:
        run = _guarded(store.current_run, as_of=day)
        if run is None:
            when = f"as of {day}" if day else "yet"
            typer.echo(f"no published run {when} in {_display(settings.resolved_store_url)}"
                       " (see `delinq runs`)")
            return
        frame = _guarded(store.read_worklist, as_of=run.as_of, top=top, segment=seg)
        if not frame.empty and str(frame["run_id"].iloc[0]) != run.run_id:
            run = _guarded(store.current_run, as_of=run.as_of)  # republished meanwhile
    typer.echo(describe_run(run))
    if run.meta.get("kpis"):
        typer.echo(kpi_line(run.meta["kpis"]))
    for line in run.meta.get("rule_lines", []):  # who ranked which rows, and why
        _echo(str(line))
    if frame.empty:
        typer.echo(f"no account in segment {seg} in this run" if seg
                   else "the worklist of this run is empty")
        return
    typer.echo(format_worklist(frame, top=top))


# --------------------------------------------------------------------------- orchestration


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo writes.")] = Path("demo_data"),
    accounts: Annotated[int, typer.Option(help="Synthetic accounts.")] = 5000,
    seed: Annotated[
        int | None, typer.Option(help="Random seed of the book and training (default: settings).")
    ] = None,
) -> None:
    """The main job on the embedded default: generate, validate, train, score, send the
    reminders to the outbox, print."""
    from pipelines.cli_workbench import create_demo_user, demo_lines, launcher_path
    from pipelines.jobs import run_main_job

    settings = _settings(data_dir=data_dir, seed=seed)
    # the demo writes its reminders to the outbox under its state folder (issue 22)
    settings = settings.model_copy(update={"dunning": settings.dunning.model_copy(
        update={"enabled": True, "delivery": "outbox"})})
    _writable(settings)
    _guarded(run_main_job, data_dir=data_dir, settings=settings, accounts=accounts)
    password = _guarded(create_demo_user, settings)
    launcher = (launcher_path(sys.argv[0], cwd=Path.cwd())
                if Path(sys.argv[0]).name == "delinq" else "delinq")
    typer.echo(demo_lines(settings, data_dir=data_dir, password=password, launcher=launcher))


@app.command()
def run(
    data_dir: Annotated[Path, typer.Argument(help="Your data folder.")],
    state_dir: Annotated[
        Path | None, typer.Option(help="Where stores live (default: settings data_dir).")
    ] = None,
    accept_anomalies: Annotated[bool, typer.Option(
        "--accept-anomalies", help="Publish despite a failed plausibility check (recorded).")
    ] = False,
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this date YYYY-MM-DD, events strictly "
                                 "before it; a first training sees only them (default: the "
                                 "day after the book's last date).")
    ] = None,
) -> None:
    """The main job on your own data folder: validate, train if needed, score, print."""
    from pipelines.jobs import run_user_folder

    day = _parse_date(as_of) if as_of else None
    settings = _settings(data_dir=state_dir)
    _writable(settings)
    _guarded(run_user_folder, data_dir=data_dir, settings=settings, as_of=day,
             accept_anomalies=accept_anomalies)


@app.command()
def schedule(
    serve: Annotated[bool, typer.Option(help="Also run the process that executes them.")] = False,
    data_source: Annotated[
        str | None, typer.Option(help="Data folder the scheduled runs read.")
    ] = None,
) -> None:
    """Create the nightly-score and weekly-retrain deployments on a running Prefect server."""
    from pipelines.deploy import create_deployments

    settings = _settings()
    with _session(settings):
        names = _guarded(create_deployments, settings, serve=serve, data_source=data_source)
    for name in names or []:
        typer.echo(f"deployment: {name}")


# The workbench (pipelines/cli_workbench.py): `delinq serve`, `delinq users ...`.
app.command("serve")(_serve)


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
