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


def test_a_run_session_sends_a_training_warning_to_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A library warning raised while a run trains (in a worker thread, as Prefect runs
    tasks; here matplotlib's empty-legend warning) lands in the run's log, not on the
    console (issue 12, item 6)."""
    from concurrent.futures import ThreadPoolExecutor

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def empty_legend() -> None:
        fig = Figure()
        FigureCanvasAgg(fig)
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # pytest's own filters would otherwise decide
            fig.add_subplot().legend()

    with runtime.run_session(tmp_path, secrets=()) as log, \
            ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(empty_legend).result()
    captured = capsys.readouterr()
    assert "No artists with labels" in log.read_text()
    assert "No artists with labels" not in captured.err + captured.out
