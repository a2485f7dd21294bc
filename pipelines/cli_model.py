"""`delinq model`: the registry's aliases from the command line (issue 19): roll a model
back to its previous champion (registered on the main app by :mod:`pipelines.cli`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli_support import echo_data as _echo
from pipelines.cli_support import fail as _fail
from pipelines.cli_support import guarded as _guarded
from pipelines.cli_support import session as _session
from pipelines.cli_support import settings_for as _settings
from pipelines.cli_support import store_errors as _store_errors

model_app = typer.Typer(help="Registered models: roll a champion back.", no_args_is_help=True)


class ModelKind(StrEnum):
    early_warning = "early_warning"
    persistence = "persistence"


@model_app.command("rollback")
def model_rollback(
    kind: Annotated[ModelKind, typer.Argument(help="The model whose champion to roll back.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in MLflow and the audit).")] = "",
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="State folder (default: settings).")
    ] = None,
) -> None:
    """Restore the previous champion of KIND: the alias moves back, recorded in MLflow
    (tag ``rolled_back`` on the version that loses it, a run in ``alias-changes``) and in
    the store's audit table; the next scoring uses the restored version."""
    from models.registry_aliases import RollbackError
    from pipelines.steps_live import rollback_model

    settings = _settings(data_dir=state_dir)
    with _session(settings), _store_errors(settings):
        try:
            change = _guarded(rollback_model, settings=settings, kind=kind.value,
                              reason=reason, actor="cli")
        except RollbackError as exc:
            _fail(str(exc))
            raise  # unreachable: fail exits
    _echo(f"{kind.value} ({change['registered_name']}): champion "
          f"v{change['from_version'] or '-'} -> v{change['to_version']}; recorded in MLflow "
          f"(run {change['mlflow_run_id']}) and the audit")
