"""What every `delinq` command shares: settings with the command's options on top, one-line
user errors (exit code 2, :data:`USER_ERROR_EXIT`), output that quotes data with its control
characters escaped, the store opened for reading, dates parsed once."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import typer

from pipelines.settings import Settings, SettingsError, load_settings

#: Exit code of every error the user can fix (the message says what to do).
USER_ERROR_EXIT = 2


def fail(message: str) -> None:
    from serving.redact import redact
    from serving.worklist import terminal_safe

    # One line, whatever the data held; URL passwords masked (messages may quote a URL).
    line = " ".join(terminal_safe(redact(message)).split())
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=USER_ERROR_EXIT)


def echo_data(text: str) -> None:
    """Print text that quotes data (ids, names, reasons, messages): control characters
    escaped (:func:`serving.worklist.terminal_safe`), line breaks kept."""
    from serving.worklist import terminal_safe

    typer.echo(terminal_safe(text, keep_newlines=True))


def settings_for(**overrides: Any) -> Settings:
    """The settings with the command's options (those given) on top."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        fail(str(exc))
        raise  # unreachable: fail exits


def guarded(fn, *args, **kwargs):
    """Run ``fn``; user-fixable errors become one clear line and exit code 2."""
    from pipelines.errors import user_errors

    errors = user_errors()
    try:
        return fn(*args, **kwargs)
    except errors as exc:  # type: ignore[misc]
        fail(str(exc))
    except PermissionError as exc:
        fail(f"permission denied: {exc.filename or exc}; check that folder's permissions "
              "(state folders must be writable for ingest, train and score)")
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        fail(f"no space left on the disk of {exc.filename or 'the state folder'}; free "
              "space and run again")


@contextlib.contextmanager
def store_errors(settings: Settings) -> Iterator[None]:
    """Database and file failures of the settings' store as one line (exit 2)."""
    from serving.store_io import normalise_url, translated_errors

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(translated_errors(normalise_url(settings.resolved_store_url)))
        except ValueError as exc:  # an unsupported URL
            fail(str(exc))
        yield


def writable(settings: Settings) -> None:
    """A command that writes state: its folder must be writable (one line if not)."""
    from pipelines.runtime import check_writable

    guarded(check_writable, Path(settings.data_dir))


def parse_date(text: str, option: str = "--as-of") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} must be a date YYYY-MM-DD, got {text!r}")
        raise  # unreachable: fail exits


def session(settings: Settings) -> Any:
    """The quiet process of a command whose state lives under the settings' data_dir
    (which must be writable: checked first, one line if not)."""
    from pipelines.runtime import run_session

    writable(settings)
    return run_session(settings.data_dir, secrets=settings.secrets())



def segment(text: str | None) -> str | None:
    """``--segment``, case-insensitive, checked against the store's segments."""
    from serving.store_schema import SEGMENTS

    if text is None:
        return None
    if text.strip().lower() not in SEGMENTS:
        fail(f"--segment must be one of {', '.join(SEGMENTS)}; got {text!r}")
    return text.strip().lower()


def reader(settings: Settings) -> Any:
    """The store of ``settings`` opened read-only (creates nothing; one-line errors)."""
    from pipelines.steps import export_dir
    from serving.store import WorklistStore

    return guarded(WorklistStore, settings.resolved_store_url, read_only=True,
                    export_dir=export_dir(settings))


def display(url: str) -> str:
    from serving.store_io import display_url

    return display_url(url)
