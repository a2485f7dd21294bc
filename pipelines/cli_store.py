"""`delinq runs` and `delinq db`: the worklist store's runs and its schema, from the command
line (registered on the main app by :mod:`pipelines.cli`)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli_support import display as _display
from pipelines.cli_support import echo_data as _echo
from pipelines.cli_support import fail as _fail
from pipelines.cli_support import guarded as _guarded
from pipelines.cli_support import parse_date as _parse_date
from pipelines.cli_support import reader as _reader
from pipelines.cli_support import session as _session
from pipelines.cli_support import settings_for as _settings
from pipelines.cli_support import store_errors as _store_errors
from pipelines.cli_support import writable as _writable
from pipelines.settings import Settings

# --------------------------------------------------------------------------- runs
runs_app = typer.Typer(help="Scoring runs: list them (the default), evaluate, prune or "
                       "delete.",
                       invoke_without_command=True)


@runs_app.callback()
def runs(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="State folder (default: settings).")
    ] = None,
) -> None:
    """List scoring runs, newest first (as_of, status, model versions, counts, who, when,
    message); runs whose process died are marked failed first."""
    ctx.obj = state_dir
    if ctx.invoked_subcommand is not None:
        return
    from serving.worklist import format_runs

    settings = _settings(data_dir=state_dir)
    reaped: list[str] = []
    with _store_errors(settings), _reader(settings) as reader:
        frame = _guarded(reader.list_runs)
        if (frame["status"] == "running").any():
            reaped = _reap(settings)
            if reaped:
                frame = _guarded(reader.list_runs)
    for run_id in reaped:
        _echo(f"run {run_id}: its process died; marked failed and its files removed")
    typer.echo(format_runs(frame, stale_model_days=settings.stale_model_days))


def _reap(settings: Settings) -> list[str]:
    """Reap stale runs with a writable store; a read-only one is left as it is."""

    from pipelines.steps import export_dir
    from serving.store import StoreError, WorklistStore

    try:
        with WorklistStore(settings.resolved_store_url, export_dir=export_dir(settings),
                           stale_after=timedelta(minutes=settings.run_stale_after_min)) as w:
            return w.reap_stale()
    except StoreError as exc:
        typer.echo(f"note: stale runs not reaped: {exc}", err=True)
        return []


@runs_app.command("prune")
def runs_prune(
    ctx: typer.Context,
    today: Annotated[
        str | None, typer.Option(help="Date the retention counts back from (default today).")
    ] = None,
) -> None:
    """Apply the retention settings: old explanation files, runs and exports removed."""
    day = _parse_date(today, "--today") if today else date.today()
    from pipelines import steps

    settings = _settings(data_dir=ctx.obj)
    _writable(settings)
    with _store_errors(settings):
        gone = _guarded(steps.prune, settings=settings, today=day)
    _echo(f"removed {len(gone['explanations'])} explanation files, {len(gone['runs'])} runs "
          f"(as_of before {day - timedelta(days=settings.resolved_retain_scores_days)}), "
          f"{len(gone['exports'])} export folders")


@runs_app.command("evaluate")
def runs_evaluate(
    ctx: typer.Context,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Re-evaluate every resolved run, not only the new.")
    ] = False,
    data_source: Annotated[
        Path | None, typer.Option(help="Data folder to validate and judge against "
                                  "(default: the book the last run staged).")
    ] = None,
) -> None:
    """Live performance of past runs whose labels resolved: realized AUC, capture@10 and
    calibration beside the aging rule (stored with the run, logged to MLflow)."""
    from pipelines import steps
    from pipelines.steps_live import evaluate_live

    settings = _settings(data_dir=ctx.obj)
    with _session(settings), _store_errors(settings):
        if data_source is not None:
            book = _guarded(steps.ingest, settings=settings, source=data_source).staged
        else:
            book = steps.staging_dir(settings)
            if not book.is_dir():
                _fail(f"no staged book at {book}: pass --data-source DIR (or score first)")
        done = _guarded(evaluate_live, settings=settings, book=book, redo=all_runs)
    for row in done.evaluated:
        _echo(f"run {row['run_id']} (as of {row['as_of']}): {row['headline']}; "
              f"{row['resolved']:,} resolved, {row['censored']:,} undecided")
    for line in done.lines:
        _echo(line)
    typer.echo(f"{len(done.evaluated)} run(s) evaluated against the book up to "
               f"{done.data_end}; {done.pending} published run(s) still wait for labels")


@runs_app.command("delete")
def runs_delete(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to delete (see `delinq runs`).")],
) -> None:
    """Delete a run: its worklist rows, explanations and, if published, its export."""

    from pipelines.steps import export_dir
    from serving.store import WorklistStore
    from serving.worklist import describe_run

    settings = _settings(data_dir=ctx.obj)
    with _store_errors(settings):
            store = _guarded(WorklistStore, settings.resolved_store_url,
                         export_dir=export_dir(settings),
                         stale_after=timedelta(minutes=settings.run_stale_after_min))
    with _store_errors(settings), store:
        try:
            gone = _guarded(store.delete_run, run_id)
        except KeyError:
            _fail(f"no run {run_id!r} in {_display(settings.resolved_store_url)} "
                  "(see `delinq runs`)")
            raise  # unreachable: _fail exits
    typer.echo(f"deleted {describe_run(gone)}")


# --------------------------------------------------------------------------- store schema
db_app = typer.Typer(help="The worklist store's schema (Alembic migrations).",
                     no_args_is_help=True)
_StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="State folder (default: settings data_dir).")
]


@db_app.command("upgrade")
def db_upgrade(state_dir: _StateDir = None) -> None:
    """Apply the store's pending schema migrations (keeps every run; safe to repeat)."""
    from serving.store import StoreVersionError, current_revision, upgrade
    from serving.store_io import display_url

    url = _settings(data_dir=state_dir).resolved_store_url
    try:
        before = current_revision(url)
        after = upgrade(url)
    except StoreVersionError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits
    change = "created" if before is None else "unchanged" if before == after else f"was {before}"
    typer.echo(f"the worklist store {display_url(url)} is at schema revision {after} ({change})")


@db_app.command("current")
def db_current(state_dir: _StateDir = None) -> None:
    """Print the store's schema revision and whether it needs `delinq db upgrade`."""
    from serving.store import StoreVersionError, revision_status

    try:
        typer.echo(revision_status(_settings(data_dir=state_dir).resolved_store_url))
    except StoreVersionError as exc:
        _fail(str(exc))
