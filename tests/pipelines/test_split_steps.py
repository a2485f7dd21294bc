"""The split is the user's: validation and test lengths and the test period's end come
from settings and `delinq train` options; a book that cannot be split or fitted stops
with one line naming the setting to change, never a traceback (through `steps.train`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.train import SplitError
from pipelines import steps
from pipelines.cli import app
from pipelines.settings import load_settings
from tests.factories import make_book, make_training_set, spec_complete


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings file and no DELINQ_ settings from the caller's environment."""
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    for var in ("DELINQ_DATA_DIR", "DELINQ_DELINQUENCY_DPD", "DELINQ_SEED"):
        monkeypatch.delenv(var, raising=False)


def _staged(book, folder: Path) -> Path:
    from features.contract.io import write_book

    write_book(book, folder)
    return folder


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_twenty_accounts_train_and_promote_nothing(tmp_path: Path, no_config: None) -> None:
    from features.synthetic import generate_book

    book = _staged(generate_book(20, seed=3, start="2023-01-01", end="2024-12-31"),
                   tmp_path / "book")
    out = steps.train(settings=load_settings(data_dir=tmp_path / "state"), book=book)
    assert out.promoted == []
    for m in out.models:
        # Each model: trained and gated with one line, or not trained with one line.
        line = m.error if m.error is not None else m.reason
        assert line and "\n" not in line, m
        if m.error is None:
            assert m.reason.startswith("gate failed")
    assert "positives per period: train " in out.report


def test_a_book_without_late_payments_is_one_line(tmp_path: Path, no_config: None) -> None:
    invoices, payments = [], []
    for a in range(30):
        for m in range(24):
            issue = pd.Timestamp("2023-01-01") + pd.DateOffset(months=m)
            due = issue + pd.Timedelta(days=30)
            invoices.append((f"I{a}_{m}", f"A{a}", issue, due, 100.0 + a))
            payments.append((f"I{a}_{m}", due, 100.0 + a))  # every invoice paid on its day
    book = _staged(make_book(invoices, payments), tmp_path / "book")
    with pytest.raises(SplitError) as exc:
        steps.train(settings=load_settings(data_dir=tmp_path / "state"), book=book)
    text = _one_line(exc)
    assert text.startswith("no model could be trained")
    assert "no positive label at all" in text and "delinquency_dpd" in text


def test_a_short_book_is_one_line_through_the_cli(tmp_path: Path, no_config: None) -> None:
    from features.synthetic import generate_book, write_book_folder

    book = _staged(generate_book(100, seed=3, start="2024-01-01", end="2024-03-31"),
                   tmp_path / "book")
    with pytest.raises(SplitError) as exc:
        steps.train(settings=load_settings(data_dir=tmp_path / "state"), book=book)
    assert "too short" in _one_line(exc)
    # The command: exit 2, one error line on stderr, no traceback.
    src = tmp_path / "src"
    write_book_folder(100, src, seed=3, start="2024-01-01", end="2024-03-31")
    result = CliRunner().invoke(app, ["train", str(src), "--state-dir", str(tmp_path / "s2"),
                                      "--val-weeks", "2", "--test-weeks", "2"])
    assert result.exit_code == 2, result.output
    errors = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "too short" in errors[0] or "train." in errors[0]


def test_a_too_long_split_names_the_settings(tmp_path: Path, no_config: None) -> None:
    path = tmp_path / "ts.parquet"
    spec_complete(make_training_set(n_accounts=60, n_weeks=12, seed=1)).to_parquet(
        path, index=False)
    settings = load_settings(data_dir=tmp_path / "state", train={"val_weeks": 8,
                                                                  "test_weeks": 8})
    with pytest.raises(SplitError) as exc:
        steps.train(settings=settings, training_set=path)
    text = _one_line(exc)
    assert "the train period is empty" in text and "train.val_weeks" in text


def test_split_options_reach_the_trainer(tmp_path: Path, no_config: None) -> None:
    """--val-weeks / --test-weeks / --test-end become settings; the trainer honours them."""
    from models.train import split_bounds

    frame = spec_complete(make_training_set(n_accounts=300, n_weeks=30, seed=0))
    path = tmp_path / "ts.parquet"
    frame.to_parquet(path, index=False)
    settings = load_settings(data_dir=tmp_path / "state", gate={"min_positive_accounts": 0},
                             train={"val_weeks": 5, "test_weeks": 4, "test_end": "2024-05-27",
                                    "n_estimators": 30, "n_jobs": 1})
    config = steps.train_config(settings)
    b = split_bounds(frame, config=config)
    assert b.test_end == pd.Timestamp("2024-05-27")
    assert b.test_start == pd.Timestamp("2024-05-27") - pd.Timedelta(days=27)
    assert b.val_start == b.test_start - pd.Timedelta(weeks=5)
    out = steps.train(settings=settings, training_set=path)
    # The stage budget (issue 11 item 3): every stage timed, in order, and logged per run.
    assert list(out.stages) == ["read", "split", "early_warning", "calibration", "baselines",
                                "persistence", "gate", "mlflow", "period_spread",
                                "offline_rows"]
    assert all(s["seconds"] > 0 and s["rss_peak_mb"] > 0 for s in out.stages.values())
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.resolved_tracking_uri)
    for m in out.models:
        logged = client.get_run(m.run_id).data.metrics
        assert logged["stage.gate.seconds"] == out.stages["gate"]["seconds"]
        assert "stage.mlflow.rss_peak_mb" in logged
    for m in out.models:
        assert m.data_window["test_end"] <= "2024-05-27"
        assert m.data_window["test_start"] >= str(b.test_start.date())
        assert m.data_window["val_start"] >= str(b.val_start.date())
    # The CLI options map onto the same settings (parsed once, at the boundary).
    result = CliRunner().invoke(app, ["train", str(tmp_path / "missing"), "--test-end",
                                      "27/05/2024"])
    assert result.exit_code == 2 and "--test-end must be a date YYYY-MM-DD" in result.output
