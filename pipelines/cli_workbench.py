"""`delinq serve` and `delinq users`: the workbench from the command line (registered on the
main app by :mod:`pipelines.cli`).

The workbench takes a small config built here from the settings
(:func:`workbench_config`); it reads no settings itself. A new credential (a generated
password, an API token) is printed once, to the person who ran the command, and nowhere
else (never logged).
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.cli_support import echo_data as _echo
from pipelines.cli_support import fail as _fail
from pipelines.cli_support import guarded as _guarded
from pipelines.cli_support import settings_for as _settings
from pipelines.cli_support import store_errors as _store_errors
from pipelines.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from workbench.config import WorkbenchConfig

users_app = typer.Typer(help="Workbench users: add, list, disable, and API tokens.",
                        no_args_is_help=True)
StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="State folder (default: settings data_dir).")
]
#: Username of the user `delinq demo` creates.
DEMO_USER = "demo"


def workbench_config(settings: Settings) -> WorkbenchConfig:
    """The workbench's config from the settings (store, state folder, staged book, policy)."""
    from models.live import label_horizon_days
    from pipelines.steps import export_dir, model_names, staging_dir
    from workbench.config import AnalystScope, WorkbenchConfig

    wb = settings.workbench
    return WorkbenchConfig(
        store_url=settings.resolved_store_url, state_dir=Path(settings.data_dir),
        book_dir=staging_dir(settings), export_dir=export_dir(settings),
        analyst_scope=AnalystScope(wb.analyst_scope), session_hours=wb.session_hours,
        login_max_failures=wb.login_max_failures, login_window_s=wb.login_window_s,
        cookie_secure=wb.cookie_secure, tracking_uri=settings.resolved_tracking_uri,
        registered_names=model_names(settings),
        label_horizon_days=label_horizon_days(delinquency_dpd=settings.delinquency_dpd,
                                              persistence_days=settings.persistence_days))


def _actor() -> str:
    """Who runs a `delinq users` command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _now() -> datetime:
    return datetime.now(UTC)


def _engine(settings: Settings):  # -> sa.Engine
    from workbench.app import open_store_engine

    return _guarded(open_store_engine, settings.resolved_store_url)


def _user_errors(fn, *args, **kwargs):
    from workbench.users import UserError

    try:
        return _guarded(fn, *args, **kwargs)
    except (UserError, ValueError) as exc:
        _fail(str(exc))


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Lower-case name, e.g. jdoe.")],
    role: Annotated[str, typer.Option(help="analyst, manager or admin.")] = "analyst",
    state_dir: StateDir = None,
) -> None:
    """Add a user; their generated password is printed once."""
    from workbench.roles import Role
    from workbench.security import new_password
    from workbench.users import add_user

    if role not in {r.value for r in Role}:
        _fail(f"--role must be one of {', '.join(r.value for r in Role)}; got {role!r}")
    settings = _settings(data_dir=state_dir)
    password = new_password()
    with _store_errors(settings):
        engine = _engine(settings)
        try:
            user = _user_errors(add_user, engine, username=username, role=role,
                                password=password, actor=_actor(), now=_now())
        finally:
            engine.dispose()
    _echo(f"user {user.username} ({user.role.value}) added")
    typer.echo(f"password (shown once, store it now): {password}")


@users_app.command("list")
def users_list(state_dir: StateDir = None) -> None:
    """List users: name, role, enabled or disabled, created when and by whom."""
    from workbench.users import list_users

    settings = _settings(data_dir=state_dir)
    with _store_errors(settings):
        engine = _engine(settings)
        try:
            users = _guarded(list_users, engine)
        finally:
            engine.dispose()
    if not users:
        typer.echo("no users yet (add one with `delinq users add NAME --role admin`)")
    for u in users:
        state = "disabled" if u.disabled else "enabled"
        _echo(f"{u.username:<24} {u.role.value:<8} {state:<8} created "
              f"{u.created_at:%Y-%m-%d %H:%M} UTC by {u.created_by}")


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument()], state_dir: StateDir = None,
                  enable: Annotated[bool, typer.Option(help="Enable instead.")] = False) -> None:
    """Disable a user (they can no longer sign in; their tokens stop working)."""
    from workbench.users import update_user

    settings = _settings(data_dir=state_dir)
    with _store_errors(settings):
        engine = _engine(settings)
        try:
            _user_errors(update_user, engine, username, actor=_actor(), now=_now(),
                         disabled=not enable)
        finally:
            engine.dispose()
    _echo(f"user {username} {'enabled' if enable else 'disabled'}")


@users_app.command("token")
def users_token(username: Annotated[str, typer.Argument()],
                name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
                state_dir: StateDir = None) -> None:
    """Create an API token for a user; it is printed once (send it as
    `Authorization: Bearer <token>`)."""
    from workbench.users import create_token

    settings = _settings(data_dir=state_dir)
    with _store_errors(settings):
        engine = _engine(settings)
        try:
            token = _user_errors(create_token, engine, username=username, name=name,
                                 actor=_actor(), now=_now())
        finally:
            engine.dispose()
    typer.echo(f"API token for {username} (shown once, store it now): {token}")


def serve(
    host: Annotated[str | None, typer.Option(help="Address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Server processes (default: the number of CPUs).")] = None,
    state_dir: StateDir = None,
) -> None:
    """Serve the workbench (API and pages) over the settings' store with uvicorn:
    ``--workers`` processes answering on one port."""
    from workbench import open_workbench, refresh_history, serve_workers
    from workbench.config import default_workers
    from workbench.history import is_current
    from workbench.security import KeyFileError

    settings = _settings(data_dir=state_dir)
    config = workbench_config(settings)
    with _store_errors(settings):
        try:
            wb = _guarded(open_workbench, config)  # migrations, the session key: once
        except KeyFileError as exc:
            _fail(str(exc))
        try:
            book = config.book_dir
            if book is not None and (book / "invoices.parquet").exists() and \
                    not is_current(book, wb.index_dir):
                typer.echo(f"indexing the staged book {book} for account history ...")
                _guarded(refresh_history, wb)
        finally:
            wb.close()  # each worker process opens its own
    host = host or settings.workbench.host
    port = port or settings.workbench.port
    workers = workers or default_workers()
    typer.echo(f"workbench on http://{host}:{port}/ (API document: /openapi.json; "
               f"{workers} worker process{'es' if workers > 1 else ''}); Ctrl-C stops it")
    # The workers build their app from the same settings: the environment, the settings
    # file, and this command's state folder (passed down as its environment variable).
    os.environ[f"{ENV_PREFIX}DATA_DIR"] = str(Path(settings.data_dir).resolve())
    serve_workers(f"{__name__}:worker_app", host=host, port=port, workers=workers,
                  log_level="info")


def worker_app() -> FastAPI:
    """The app of one `delinq serve` worker process (uvicorn's factory): the workbench
    over the settings' store, opened by this process."""
    from workbench import create_app

    return create_app(workbench_config(_settings()))


def demo_lines(settings: Settings, *, data_dir: Path, password: str, launcher: str) -> str:
    """What `delinq demo` ends with: the one command that opens the workbench on the demo
    state (``launcher``: how this ``delinq`` was invoked, e.g. ``.venv/bin/delinq``, so the
    command works as printed from a fresh clone), where to point the browser, and the demo
    user's one-time password."""
    wb = settings.workbench
    return (f"workbench: {launcher} serve --state-dir {data_dir}\n"
            f"  then open http://{wb.host}:{wb.port}/ and sign in as {DEMO_USER} with the "
            f"one-time password {password} (shown once; the next demo gives a new one)")


def launcher_path(argv0: str, *, cwd: Path) -> str:
    """How to type the running ``delinq`` in ``cwd``: as it was typed when relative
    (``.venv/bin/delinq``, or ``delinq`` from PATH), else relative to ``cwd`` when inside
    it, else the absolute path."""
    path = Path(argv0)
    if not path.is_absolute():
        return argv0
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return argv0


def create_demo_user(settings: Settings) -> str:
    """Create (or reset) the demo user; return its new password, to show once."""
    from workbench.roles import Role
    from workbench.security import new_password
    from workbench.users import UserError, add_user, update_user

    password = new_password()
    engine = _engine(settings)
    try:
        try:
            add_user(engine, username=DEMO_USER, role=Role.MANAGER, password=password,
                     actor="delinq demo", now=_now())
        except UserError:
            update_user(engine, DEMO_USER, actor="delinq demo", now=_now(), password=password,
                        disabled=False)
    finally:
        engine.dispose()
    return password
