"""MLflow plumbing shared by the registry modules (:mod:`models.registry`,
:mod:`models.registry_aliases`): a client of a named store, experiments, quiet logging,
batched params/metrics, versions by alias, and the registry's errors.

Every call names its store explicitly (``MlflowClient(tracking_uri=...)``): nothing here
sets the process-wide tracking URI or environment variables, so two stores can be used
side by side. Only the registry modules import this one (and MLflow).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

# Defined in the light models.errors (caught by the CLI without importing MLflow).
from models.errors import NoChampionError, UngatedChampionError  # noqa: F401 (re-exported)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: MLflow's limits per ``log_batch`` request.
_MAX_PARAMS, _MAX_METRICS = 100, 1000

# Loggers that print schema-migration and environment chatter on a fresh store.
_QUIET_LOGGERS = {
    "alembic": logging.WARNING,
    "alembic.runtime.migration": logging.WARNING,
    "mlflow.store.db.utils": logging.WARNING,
    "mlflow.store.sql_alchemy": logging.WARNING,
    "mlflow.utils.git_utils": logging.ERROR,
    "mlflow.tracking._tracking_service.utils": logging.ERROR,
    "mlflow.pyfunc": logging.ERROR,
    "mlflow.models.model": logging.ERROR,
    "mlflow.utils.environment": logging.ERROR,
    "mlflow.utils.requirements_utils": logging.ERROR,
}


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's informational chatter (schema creation, git, pickling notes) for
    the block; logger levels and warning filters are restored afterwards."""
    saved = {}
    for name, level in _QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow\..*")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def default_tracking_uri(data_dir: str | Path) -> str:
    """The embedded store of a data directory: ``sqlite:///<data_dir>/mlflow.db``."""
    return f"sqlite:///{(Path(data_dir) / 'mlflow.db').resolve()}"


def never_created(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` is an embedded SQLite store whose file does not exist yet:
    nothing was ever registered there. A reader answers "no model" without opening it,
    since MLflow would create the database (and run its migrations: seconds of CPU) only
    to find it empty; a read-only state folder stays untouched too."""
    parsed = urlparse(tracking_uri)
    path = unquote(tracking_uri[len("sqlite:///"):]) if parsed.scheme == "sqlite" else ""
    return bool(path) and path != ":memory:" and not Path(path).exists()


def _artifact_location(tracking_uri: str) -> str | None:
    """For a SQLite store, a folder ``mlartifacts`` next to the database file."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    db = Path(unquote(tracking_uri[len("sqlite:///"):]))
    return (db.parent / "mlartifacts").resolve().as_uri()


def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(client: MlflowClient, tracking_uri: str, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(experiment,
                                    artifact_location=_artifact_location(tracking_uri))


def has_code(exc: MlflowException, *codes: int) -> bool:
    return exc.error_code in {ErrorCode.Name(c) for c in codes}


def log_run_data(client: MlflowClient, run_id: str, params: Mapping[str, Any],
                  metrics: Mapping[str, float]) -> None:
    now = int(time.time() * 1000)
    p = [Param(k, str(v)[:500]) for k, v in params.items()]
    m = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for i in range(0, len(p), _MAX_PARAMS):
        client.log_batch(run_id, params=p[i:i + _MAX_PARAMS])
    for i in range(0, len(m), _MAX_METRICS):
        client.log_batch(run_id, metrics=m[i:i + _MAX_METRICS])


def version_by_alias(client: Any, registered_name: str, alias: str) -> Any | None:
    """The model version under ``alias``, or ``None`` when the registered model or the
    alias does not exist (other MLflow errors propagate)."""
    try:
        return client.get_model_version_by_alias(registered_name, alias)
    except MlflowException as exc:
        if not has_code(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE):
            raise
        return None


@contextlib.contextmanager
def run_artifact(client: MlflowClient, run_id: str, artifact_path: str, *,
                 tracking_uri: str) -> Iterator[Path]:
    """The local path of the artifact ``artifact_path`` of run ``run_id`` while the
    ``with`` block runs: the file itself when the run's artifacts are local files (an
    embedded store: nothing copied, no progress bar), else a download to a temporary folder
    removed afterwards. MLflow's and the file system's errors (``MlflowException``,
    ``OSError``) propagate: each caller says what a missing artifact means."""
    import tempfile

    from mlflow.artifacts import download_artifacts

    root = client.get_run(run_id).info.artifact_uri
    if urlparse(root).scheme in ("", "file"):
        yield Path(unquote(urlparse(root).path)) / artifact_path
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                      dst_path=tmp, tracking_uri=tracking_uri))


def run_artifact_text(client: MlflowClient, run_id: str, artifact_path: str, *,
                      tracking_uri: str) -> str:
    """The text of the artifact ``artifact_path`` of run ``run_id`` (:func:`run_artifact`;
    its errors propagate)."""
    with run_artifact(client, run_id, artifact_path, tracking_uri=tracking_uri) as path:
        return path.read_text()
