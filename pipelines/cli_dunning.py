"""`delinq dunning preview|run`: reminders from the command line (registered on the main app
by :mod:`pipelines.cli`; the steps are :mod:`pipelines.steps_dunning`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli_support import echo_data as _echo
from pipelines.cli_support import fail as _fail
from pipelines.cli_support import guarded as _guarded
from pipelines.cli_support import parse_date as _parse_date
from pipelines.cli_support import settings_for as _settings
from pipelines.cli_support import store_errors as _store_errors

dunning_app = typer.Typer(help="Dunning: preview the letter an account would get, or send "
                          "the day's letters.", no_args_is_help=True)
StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="State folder (default: settings data_dir).")
]


@dunning_app.command("preview")
def preview(
    account: Annotated[str, typer.Argument(help="Account id.")],
    as_of: Annotated[str | None, typer.Option(help="As-of date YYYY-MM-DD (default: the "
                                              "latest published run).")] = None,
    letter: Annotated[str | None, typer.Option(help="Render this letter whatever the ladder "
                                               "says (e.g. payment_plan, dispute_ack).")] = None,
    state_dir: StateDir = None,
) -> None:
    """Print what would be sent to ACCOUNT (nothing is sent or recorded)."""
    from pipelines.steps import staging_dir
    from pipelines.steps_dunning import preview as _preview
    from serving.dunning import LETTERS

    settings = _settings(data_dir=state_dir)
    if letter is not None and letter not in LETTERS:
        _fail(f"--letter must be one of {', '.join(LETTERS)}; got {letter!r}")
    day = _parse_date(as_of) if as_of else None
    with _store_errors(settings):
        try:
            text = _guarded(_preview, settings=settings, book=staging_dir(settings),
                            account_id=account, as_of=day, letter=letter)
        except LookupError as exc:
            _fail(str(exc.args[0]))
            return
    _echo(text)


@dunning_app.command("run")
def run(
    as_of: Annotated[str, typer.Option(help="As-of date YYYY-MM-DD of a published run.")],
    state_dir: StateDir = None,
) -> None:
    """Send the letters of the published run as of AS_OF (needs dunning.enabled)."""
    from pipelines.steps import staging_dir
    from pipelines.steps_dunning import run_dunning

    settings = _settings(data_dir=state_dir)
    with _store_errors(settings):
        summary = _guarded(run_dunning, settings=settings, book=staging_dir(settings),
                           as_of=_parse_date(as_of))
    _echo("\n".join(summary.lines()))
