"""The steps build a sampled training set (issue 11): streamed to Parquet, counted as the
full grid, read back with the spec's dtypes and its weights; once built, the process no
longer holds the staged Book."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from features.pit.sampling import WEIGHT
from features.pit.training_set import as_of_grid, build_training_set
from features.spec import check_feature_frame
from features.synthetic import write_book_folder
from pipelines import steps, steps_ingest
from pipelines.settings import load_settings


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    for var in ("DELINQ_DATA_DIR", "DELINQ_DELINQUENCY_DPD", "DELINQ_SEED"):
        monkeypatch.delenv(var, raising=False)


def test_sampled_training_set_step(tmp_path: Path, no_config: None) -> None:
    src = tmp_path / "src"
    write_book_folder(200, src, seed=4, start="2023-01-01", end="2024-03-31")
    settings = load_settings(data_dir=tmp_path / "state", seed=3,
                             train={"sample_max_rows": 1500,
                                    "sample_holdout_max_rows": 500})
    staged = steps.ingest(settings=settings, source=src).staged
    handed_over = weakref.ref(steps_ingest._last.book)  # the in-memory hand-over's Book
    steps.read_book(staged)  # a read without release (the score path's): still held
    gc.collect()
    assert handed_over() is not None
    summary = steps.build_training_set(settings=settings, book=staged)
    gc.collect()  # built: nothing holds the Book any more (issue 11: memory)
    assert handed_over() is None
    book = steps.read_book(staged)  # from the files now
    full = build_training_set(book, as_of_dates=as_of_grid(book))
    frame = steps.read_training_set(summary.path)
    check_feature_frame(frame)
    assert WEIGHT in frame.columns and summary.kept_rows == len(frame)
    assert len(frame) < 0.5 * len(full)
    # the summary counts the full grid (weights of each stratum sum to its count)
    assert summary.rows == len(full)
    resolved = full[~full["censored"]]
    assert summary.resolved == resolved.groupby("model").size().to_dict()
    assert summary.positives == resolved.groupby("model")["y"].sum().astype(int).to_dict()
    assert "sampled" in summary.describe()
    # the same settings give the same sample
    again = steps.read_training_set(
        steps.build_training_set(settings=settings, book=staged).path)
    assert again.equals(frame)
    assert steps.sampling_params(settings) == {
        "sample_max_rows": 1500, "sample_positive_rate": None,
        "sample_negative_rate": None, "sample_holdout_max_rows": 500, "sample_seed": 3}


def test_sampling_off_by_setting(tmp_path: Path, no_config: None) -> None:
    settings = load_settings(data_dir=tmp_path, train={"sample_max_rows": 0})
    assert steps.train_config(settings).sampling() is None
    assert steps.train_config(load_settings(data_dir=tmp_path)).sampling() is not None
