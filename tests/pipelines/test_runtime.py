"""pipelines.runtime.quiet_notebook: a notebook's warnings and MLflow chatter go to the log
file for the rest of the process, and the environment defaults never override the user's."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import runtime
from pipelines.runtime import library_environment, quiet_notebook


@pytest.fixture
def ended() -> Iterator[None]:
    """Close the notebook session a test opened (it would hide other tests' warnings)."""
    yield
    while runtime._NOTEBOOK_SESSION:
        runtime._NOTEBOOK_SESSION.pop().close()


def test_quiet_notebook_routes_warnings_and_sets_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    ended: None,
) -> None:
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")  # the user's choice wins
    log = quiet_notebook(tmp_path / "a")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library warning", UserWarning, stacklevel=1)
    logging.getLogger("mlflow.tracking").warning("mlflow chatter")
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"
    text = log.read_text()
    assert "a library warning" in text and "mlflow chatter" in text
    assert "a library warning" not in capsys.readouterr().err

    # Again, elsewhere: the first session is closed, its log file no longer written.
    second = quiet_notebook(tmp_path / "b")
    warnings.warn("second warning", UserWarning, stacklevel=1)
    assert "second warning" in second.read_text()
    assert "second warning" not in log.read_text()
    assert len(runtime._NOTEBOOK_SESSION) == 1


def test_ending_the_session_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in library_environment():
        monkeypatch.delenv(key, raising=False)
    quiet_notebook(tmp_path)
    assert all(os.environ[k] == v for k, v in library_environment().items())
    runtime._NOTEBOOK_SESSION.pop().close()
    assert not any(k in os.environ for k in library_environment())
