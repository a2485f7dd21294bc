"""The `delinq` command line. Thin: every command parses arguments, reads settings and calls
one library or pipeline function. Heavy imports happen inside commands so `--help` is fast.

Errors the user can fix (bad data, no champion model, no Prefect server) end with one clear
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipelines.settings import Settings, load_settings

app = typer.Typer(
    name="delinq",
    help="Predict which receivables accounts go 30+ days past due; write an explained worklist.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: print figures and write JSON.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


class ImportFormat(StrEnum):
    highradius = "highradius"
    ibm_ar = "ibm_ar"
    taiwan_credit = "taiwan_credit"


class Grid(StrEnum):
    weekly = "weekly"
    monthly = "monthly"


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _settings(data_dir: Path | None = None) -> Settings:
    return load_settings(data_dir=data_dir) if data_dir is not None else load_settings()


def _guarded(fn, *args, **kwargs):
    """Run ``fn``; user-fixable errors become one clear line and exit code 2."""
    from pipelines.errors import user_errors

    errors = user_errors()
    try:
        return fn(*args, **kwargs)
    except errors as exc:  # type: ignore[misc]
        _fail(str(exc))


# --------------------------------------------------------------------------- data


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the book into.")],
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same book).")] = 0,
    start: Annotated[str, typer.Option(help="First issue date, YYYY-MM-DD.")] = "2023-01-01",
    end: Annotated[str, typer.Option(help="Last event date, YYYY-MM-DD.")] = "2024-12-31",
    error_rate: Annotated[
        float, typer.Option(help="Share of extra bad rows to inject per table (0 = none).")
    ] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Generate a synthetic receivables book (the embedded default data source)."""
    from features.synthetic import write_book_folder

    summary = write_book_folder(
        accounts, out, seed=seed, start=start, end=end, error_rate=error_rate, fmt=fmt
    )
    typer.echo(json.dumps(summary, indent=2, default=str))


@app.command()
def validate(
    data_dir: Annotated[Path, typer.Argument(help="Data folder (CSV or Parquet tables).")],
    max_bad_share: Annotated[
        float | None, typer.Option(help="Max share of bad rows per table (default: settings).")
    ] = None,
    quarantine_dir: Annotated[
        Path | None, typer.Option(help="Where bad rows go (default DATA_DIR/_quarantine).")
    ] = None,
) -> None:
    """Validate a data folder: rows read, kept and quarantined per table and rule."""
    from features.contract.validation import validate_folder

    share = max_bad_share if max_bad_share is not None else _settings().max_bad_share
    result = _guarded(
        validate_folder, data_dir, max_bad_share=share, quarantine_dir=quarantine_dir
    )
    typer.echo(result.render())


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
        typer.echo(f"{table:<10} {len(tables[table]):>9,} rows -> {path}")


# --------------------------------------------------------------------------- models


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(help="Data folder to train on.")],
    as_of_grid: Annotated[Grid, typer.Option(help="Snapshot grid of as_of dates.")] = Grid.weekly,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where stores live (default: settings data_dir).")
    ] = None,
) -> None:
    """Train both models, compare with baselines, register; promote only if better."""
    from features.contract.validation import validate_folder
    from features.pit.training_set import as_of_grid as grid_dates
    from features.pit.training_set import build_training_set
    from models.registry import register
    from models.report import format_report, training_summary
    from models.train import train_models

    settings = _settings(state_dir)
    result = _guarded(validate_folder, data_dir, max_bad_share=settings.max_bad_share)
    typer.echo(result.render())

    def train_and_register() -> dict:
        book = result.book
        dates = grid_dates(book, freq=as_of_grid.value)
        results = train_models(build_training_set(book, as_of_dates=dates))
        return training_summary(results, register(
            results,
            tracking_uri=settings.resolved_tracking_uri,
            names={
                "early_warning": settings.early_warning_model,
                "persistence": settings.persistence_model,
            },
            extra_params={"grid": as_of_grid.value, "delinquency_dpd": 30,
                          "persistence_days": 30},
        ))

    summary = _guarded(train_and_register)
    typer.echo(format_report(summary))


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
    from features.contract.validation import validate_folder
    from serving.score import run_scoring

    settings = _settings(state_dir)
    result = _guarded(validate_folder, data_dir, max_bad_share=settings.max_bad_share)
    typer.echo(result.render())
    record = _guarded(
        run_scoring,
        result.book,
        as_of=day,
        tracking_uri=settings.resolved_tracking_uri,
        store_url=settings.resolved_store_url,
        export_dir=settings.data_dir / "exports",
        model_names={
            "early_warning": settings.early_warning_model,
            "persistence": settings.persistence_model,
        },
        table_budget_mb=settings.shap_table_budget_mb,
    )
    typer.echo(f"run {record.run_id} as of {day}: {record.status}")
    if record.message:
        typer.echo(record.message)
    typer.echo(f"store: {settings.resolved_store_url}")


@app.command()
def worklist(
    data_dir: Annotated[
        Path | None, typer.Argument(help="State folder (default: settings data_dir).")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    segment: Annotated[
        str | None, typer.Option(help="preventive, early, delinquent or late.")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="Run date (default: latest).")] = None,
) -> None:
    """Print the current worklist: rank, account, balance, probability, action, reasons."""
    from serving.store import WorklistStore
    from serving.worklist import format_worklist

    settings = _settings(data_dir)
    store = WorklistStore(settings.resolved_store_url, export_dir=settings.data_dir / "exports")
    day = _parse_date(as_of) if as_of else None
    frame = store.read_worklist(as_of=day, top=top, segment=segment)
    if frame.empty:
        typer.echo("The worklist is empty (no run yet, or no account in that segment).")
        return
    typer.echo(format_worklist(frame, top=top))


# --------------------------------------------------------------------------- orchestration


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo writes.")] = Path("demo_data"),
    accounts: Annotated[int, typer.Option(help="Synthetic accounts.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """The main job on the embedded default: generate, validate, train, score, print."""
    from pipelines.jobs import run_main_job

    settings = _settings(data_dir)
    _guarded(run_main_job, data_dir=data_dir, settings=settings, accounts=accounts, seed=seed)


@app.command()
def run(
    data_dir: Annotated[Path, typer.Argument(help="Your data folder.")],
    state_dir: Annotated[
        Path | None, typer.Option(help="Where stores live (default: settings data_dir).")
    ] = None,
) -> None:
    """The main job on your own data folder: validate, train if needed, score, print."""
    from pipelines.jobs import run_user_folder

    settings = _settings(state_dir)
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

    names = _guarded(create_deployments, _settings(), serve=serve, data_source=data_source)
    for name in names or []:
        typer.echo(f"deployment: {name}")


# --------------------------------------------------------------------------- benchmarks


def _bench_done(result: dict) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@bench_app.command("features")
def bench_features(
    accounts: Annotated[int, typer.Option(help="Accounts in the generated book.")] = 100_000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")] = None,
    reference_max_accounts: Annotated[
        int, typer.Option(help="Accounts for the pandas reference (a slice above that).")
    ] = 100_000,
    training_weeks: Annotated[
        int, typer.Option(help="Also time a weekly training set of this many snapshots.")
    ] = 0,
) -> None:
    """Point-in-time features for one as_of vs the pandas reference."""
    from bench.features import run as run_bench

    _bench_done(
        run_bench(
            accounts=accounts,
            json_path=json_path,
            reference_max_accounts=reference_max_accounts,
            training_weeks=training_weeks,
        )
    )


@bench_app.command("explain")
def bench_explain(
    rows: Annotated[int, typer.Option(help="Rows to explain.")] = 20_000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")] = None,
) -> None:
    """Exact TreeSHAP vs LightGBM pred_contrib and shap.TreeExplainer."""
    from bench.explain import run as run_bench

    _bench_done(run_bench(rows=rows, json_path=json_path))


@bench_app.command("score")
def bench_score(
    accounts: Annotated[int, typer.Option(help="Accounts in the generated book.")] = 100_000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")] = None,
) -> None:
    """Nightly scoring end to end: features, scores, explanations, store."""
    from bench.score import run as run_bench

    _bench_done(run_bench(accounts=accounts, json_path=json_path))


@bench_app.command("quality")
def bench_quality(
    json_path: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")] = None,
) -> None:
    """Model quality on UCI Taiwan, IBM AR and the synthetic book vs baselines."""
    from bench.quality import run as run_bench

    _bench_done(run_bench(json_path=json_path))


@bench_app.command("generate")
def bench_generate(
    accounts: Annotated[int, typer.Option(help="Accounts to generate.")] = 1_000_000,
    out: Annotated[Path | None, typer.Option(help="Folder (default: a temp folder).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")] = None,
) -> None:
    """Synthetic book generation time and peak memory."""
    from bench.generate import run as run_bench

    _bench_done(run_bench(accounts=accounts, out=out, json_path=json_path))


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"--as-of must be a date YYYY-MM-DD, got {text!r}")
        raise  # unreachable: _fail exits


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

    url = _settings(state_dir).resolved_store_url
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
        typer.echo(revision_status(_settings(state_dir).resolved_store_url))
    except StoreVersionError as exc:
        _fail(str(exc))


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
