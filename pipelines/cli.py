"""The `delinq` command line. Thin: every command parses its arguments (dates once, here),
reads the settings (its options are overrides on top of them) and calls the steps
(:mod:`pipelines.steps`) or a job. Heavy imports happen inside commands so `--help` is fast.

Errors the user can fix (bad data or settings, no champion model, no Prefect server; a
worklist store that is missing, damaged, read-only or unreachable; a read-only state folder,
permissions, a full disk) end with one clear line on stderr and exit code 2, never a
traceback (:data:`USER_ERROR_EXIT`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.settings import Grid, Settings, SettingsError, load_settings

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


#: Exit code of every error the user can fix (the message says what to do).
USER_ERROR_EXIT = 2


def _fail(message: str) -> None:
    from serving.redact import redact
    from serving.worklist import terminal_safe

    # One line, whatever the data held; URL passwords masked (messages may quote a URL).
    line = " ".join(terminal_safe(redact(message)).split())
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=USER_ERROR_EXIT)


def _echo(text: str) -> None:
    """Print text that quotes data (ids, names, reasons, messages): control characters
    escaped (:func:`serving.worklist.terminal_safe`), line breaks kept."""
    from serving.worklist import terminal_safe

    typer.echo(terminal_safe(text, keep_newlines=True))


def _settings(**overrides: Any) -> Settings:
    """The settings with the command's options (those given) on top."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def _guarded(fn, *args, **kwargs):
    """Run ``fn``; user-fixable errors become one clear line and exit code 2."""
    from pipelines.errors import user_errors

    errors = user_errors()
    try:
        return fn(*args, **kwargs)
    except errors as exc:  # type: ignore[misc]
        _fail(str(exc))
    except PermissionError as exc:
        _fail(f"permission denied: {exc.filename or exc}; check that folder's permissions "
              "(state folders must be writable for ingest, train and score)")
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        _fail(f"no space left on the disk of {exc.filename or 'the state folder'}; free "
              "space and run again")


@contextlib.contextmanager
def _store_errors(settings: Settings) -> Iterator[None]:
    """Database and file failures of the settings' store as one line (exit 2)."""
    from serving.store_io import normalise_url, translated_errors

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(translated_errors(normalise_url(settings.resolved_store_url)))
        except ValueError as exc:  # an unsupported URL
            _fail(str(exc))
        yield


def _writable(settings: Settings) -> None:
    """A command that writes state: its folder must be writable (one line if not)."""
    from pipelines.runtime import check_writable

    _guarded(check_writable, Path(settings.data_dir))


def _parse_date(text: str, option: str = "--as-of") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{option} must be a date YYYY-MM-DD, got {text!r}")
        raise  # unreachable: _fail exits


def _session(settings: Settings) -> Any:
    """The quiet process of a command whose state lives under the settings' data_dir
    (which must be writable: checked first, one line if not)."""
    from pipelines.runtime import run_session

    _writable(settings)
    return run_session(settings.data_dir, secrets=settings.secrets())


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
) -> None:
    """Generate a synthetic receivables book (the embedded default data source)."""
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    from pipelines import steps

    settings = _settings(seed=seed)
    done = steps.generate(settings=settings, out=out, accounts=accounts, start=first, end=last,
                          error_rate=error_rate, fmt=fmt)
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
    with _session(settings):
        ingested = _guarded(steps.ingest, settings=settings, source=data_dir)
        _echo(ingested.report)
        trained = _guarded(steps.train, settings=settings, book=ingested.staged)
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
) -> None:
    """Score every account with open receivables as of a date and write the worklist."""
    day = _parse_date(as_of)
    from pipelines import steps

    settings = _settings(data_dir=state_dir)
    with _session(settings), _store_errors(settings):
        ingested = _guarded(steps.ingest, settings=settings, source=data_dir)
        _echo(ingested.report)
        scored = _guarded(steps.score, settings=settings, book=ingested.staged, as_of=day)
    _echo(f"run {scored.run_id} as of {day}: {scored.status}")
    if scored.message:
        _echo(scored.message)
    typer.echo(f"store: {_display(scored.store_url)}")


def _segment(text: str | None) -> str | None:
    """``--segment``, case-insensitive, checked against the store's segments."""
    from serving.store_schema import SEGMENTS

    if text is None:
        return None
    if text.strip().lower() not in SEGMENTS:
        _fail(f"--segment must be one of {', '.join(SEGMENTS)}; got {text!r}")
    return text.strip().lower()


def _reader(settings: Settings) -> Any:
    """The store of ``settings`` opened read-only (creates nothing; one-line errors)."""
    from pipelines.steps import export_dir
    from serving.store import WorklistStore

    return _guarded(WorklistStore, settings.resolved_store_url, read_only=True,
                    export_dir=export_dir(settings))


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
    from serving.worklist import describe_run, format_worklist

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
    if frame.empty:
        typer.echo(f"no account in segment {seg} in this run" if seg
                   else "the worklist of this run is empty")
        return
    typer.echo(format_worklist(frame, top=top))


def _display(url: str) -> str:
    from serving.store_io import display_url

    return display_url(url)


# --------------------------------------------------------------------------- runs
runs_app = typer.Typer(help="Scoring runs: list them (the default) or delete one.",
                       invoke_without_command=True)
app.add_typer(runs_app, name="runs")


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
    typer.echo(format_runs(frame))


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
app.add_typer(db_app, name="db")
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


# --------------------------------------------------------------------------- orchestration


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo writes.")] = Path("demo_data"),
    accounts: Annotated[int, typer.Option(help="Synthetic accounts.")] = 5000,
    seed: Annotated[
        int | None, typer.Option(help="Random seed of the book and training (default: settings).")
    ] = None,
) -> None:
    """The main job on the embedded default: generate, validate, train, score, print."""
    from pipelines.jobs import run_main_job

    settings = _settings(data_dir=data_dir, seed=seed)
    _writable(settings)
    _guarded(run_main_job, data_dir=data_dir, settings=settings, accounts=accounts)


@app.command()
def run(
    data_dir: Annotated[Path, typer.Argument(help="Your data folder.")],
    state_dir: Annotated[
        Path | None, typer.Option(help="Where stores live (default: settings data_dir).")
    ] = None,
) -> None:
    """The main job on your own data folder: validate, train if needed, score, print."""
    from pipelines.jobs import run_user_folder

    settings = _settings(data_dir=state_dir)
    _writable(settings)
    _guarded(run_user_folder, data_dir=data_dir, settings=settings)


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


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
