"""Errors the user must fix (bad data or settings, no champion model, a book that cannot be
split for training, no Prefect server, a worklist store that is missing, damaged, read-only
or unreachable).

The CLI reports them in one line without a traceback, the flows never retry them, and the
interactive jobs keep Prefect from echoing them on the console.
Library imports are deferred so the CLI's ``--help`` stays fast.
"""

from __future__ import annotations

from pipelines.settings import SettingsError


class ReadOnlyStateError(RuntimeError):
    """The state folder (``data_dir``) cannot be written: a command that writes state
    stops before it starts, in one line naming the folder."""


class NotEnoughDiskError(RuntimeError):
    """Too little free disk under the state folder for the next run (it does not start)."""


class PrefectServerUnavailable(RuntimeError):
    """No Prefect server to create deployments on (``PREFECT_API_URL`` unset or down)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user as it is."""
    from features.contract.validation import DataContractError
    from models.errors import NoChampionError, SplitError  # not models.registry: light
    from pipelines.steps_ingest import StagingError
    from serving.store import RunInProgressError, StoreError

    return (DataContractError, NoChampionError, FileNotFoundError, PrefectServerUnavailable,
            SettingsError, SplitError, StoreError, RunInProgressError, ReadOnlyStateError,
            NotEnoughDiskError, StagingError)
