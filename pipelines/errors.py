"""Errors the user must fix (bad data, no champion model, no Prefect server).

The CLI reports them in one line without a traceback, and the flows never retry them.
Imports are deferred so the CLI's ``--help`` stays fast.
"""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user as it is."""
    from features.contract.validation import DataContractError
    from models.registry import NoChampionError
    from pipelines.deploy import PrefectServerUnavailable

    return (DataContractError, NoChampionError, FileNotFoundError, PrefectServerUnavailable)
