"""A model version's offline test rows on its MLflow run (issue 19: what the live check
compares a run's random holdout with, ``models.live_verdict``), written at training time
beside its period spread (``models.registry_aliases.PERIOD_ARTIFACT``) so the nightly
never rebuilds the training set to judge live vs offline.

The artifact :data:`OFFLINE_ARTIFACT` is a Parquet file of
``models.live_verdict.OFFLINE_COLUMNS`` (``account_id``, ``y``, ``probability``,
``weight``): one row per resolved test-period row of the model's population, about 25
bytes a row compressed (the test period of a 1M-account book holds a few hundred
thousand rows per population: a few MB per version). This module knows MLflow only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import pandas as pd
from mlflow.exceptions import MlflowException

from models.mlflow_store import client, never_created, quiet_mlflow, run_artifact

#: The training run's artifact holding the version's offline test rows.
OFFLINE_ARTIFACT: Final = "offline_test.parquet"


def log_offline_test(*, tracking_uri: str, run_id: str, rows: pd.DataFrame) -> None:
    """Store ``rows`` (``models.live_verdict.offline_test_rows``) on the training run
    ``run_id`` as :data:`OFFLINE_ARTIFACT`."""
    with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
        path = Path(tmp) / OFFLINE_ARTIFACT
        rows.to_parquet(path, index=False)
        client(tracking_uri).log_artifact(run_id, str(path))


def offline_test_of(registered_name: str, version: str, *,
                    tracking_uri: str) -> pd.DataFrame | None:
    """The offline test rows stored when ``version`` of ``registered_name`` was trained
    (:func:`log_offline_test`), or None (trained before they were recorded, or unknown)."""
    if never_created(tracking_uri):
        return None
    with quiet_mlflow():
        try:
            c = client(tracking_uri)
            run_id = c.get_model_version(registered_name, str(version)).run_id
            with run_artifact(c, run_id, OFFLINE_ARTIFACT, tracking_uri=tracking_uri) as local:
                return pd.read_parquet(local)
        except (MlflowException, OSError, ValueError):
            return None
