"""The steps layer (pipelines.steps) and the CLI commands that call it.

The steps run for real on small synthetic books with throw-away stores under ``tmp_path``.
The training test is marked ``slow`` (it trains and registers two small models).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import FrozenInstanceError
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.book import STAGED_ONLY
from pipelines import steps
from pipelines.cli import app
from pipelines.settings import load_settings


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings file and no DELINQ_ settings from the caller's environment."""
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    for var in ("DELINQ_DATA_DIR", "DELINQ_DELINQUENCY_DPD", "DELINQ_SEED"):
        monkeypatch.delenv(var, raising=False)


def test_ingest_quarantines_and_stages_the_book(tmp_path: Path, no_config: None) -> None:
    """Bad rows counted and written to the one quarantine location; the staged book exact."""
    from features.contract.validation import DataContractError, validate_folder
    from features.synthetic import write_book_folder

    src = tmp_path / "src"
    write_book_folder(50, src, seed=1, error_rate=0.02, fmt="csv")
    injected = json.loads((src / "_injected_errors.json").read_text())
    # A tiny book: a few injected rows are a large share of its small tables.
    settings = load_settings(data_dir=tmp_path / "state", max_bad_share=0.5)
    out = steps.ingest(settings=settings, source=src)
    assert out.quarantined == sum(n for t in injected.values() for n in t.values())
    staged = steps.read_book(out.staged, reuse=False)  # from the files
    expected = validate_folder(src, max_bad_share=0.5, quarantine_dir=tmp_path / "q").book
    handed = steps.read_book(out.staged)  # this process staged it: from memory
    for table in ("invoices", "payments", "accounts", "disputes", "promises", "contacts"):
        pd.testing.assert_frame_equal(getattr(staged, table), getattr(expected, table))
        only = list(STAGED_ONLY.get(table, ()))  # the files keep them, memory does not
        pd.testing.assert_frame_equal(getattr(handed, table),
                                      getattr(staged, table).drop(columns=only))
    assert staged.payments["payment_id"].notna().any()
    assert "payment_id" not in handed.payments.columns
    handed.invoices.loc[0, "amount"] = -1.0  # a caller writing into it changes no one else's
    assert steps.read_book(out.staged).invoices.loc[0, "amount"] == staged.invoices.loc[0, "amount"]
    assert staged.last_date.date() == out.last_date and isinstance(out.last_date, date)
    assert out.staged == tmp_path / "state" / "staging" / "book"
    assert out.quarantine == tmp_path / "state" / "quarantine" / "src"
    quarantined = sum(len(pd.read_csv(f)) for f in out.quarantine.glob("*.csv"))
    assert quarantined == out.quarantined
    assert not (src / "_quarantine").exists()  # the source folder is never written
    with pytest.raises(FrozenInstanceError):
        out.accounts = 0  # type: ignore[misc]
    # A second ingest replaces the staged folder whole (no leftovers of the first).
    write_book_folder(20, src, seed=2, fmt="csv")
    again = steps.ingest(settings=settings, source=src)
    assert again.accounts == 20 and len(steps.read_book(again.staged).accounts) == 20
    # Staged again by someone else (another process): the files are read, not the memory.
    from features.contract.io import write_book

    shutil.rmtree(again.staged)
    write_book(staged, again.staged)
    assert len(steps.read_book(again.staged).accounts) == len(staged.accounts) != 20

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataContractError, match="missing_file"):
        steps.ingest(settings=settings, source=empty)


def test_validate_command_uses_the_same_quarantine(tmp_path: Path, no_config: None) -> None:
    from features.synthetic import write_book_folder

    src = tmp_path / "book"
    write_book_folder(50, src, seed=1, error_rate=0.02, fmt="csv")
    state = tmp_path / "state"
    result = CliRunner().invoke(app, ["validate", str(src), "--state-dir", str(state),
                                      "--max-bad-share", "0.5"])
    assert result.exit_code == 0, result.output
    settings = load_settings(data_dir=state)
    qdir = steps.quarantine_dir(settings, src)
    assert qdir == state / "quarantine" / "book"
    assert sorted(p.name for p in qdir.glob("*.csv"))
    assert not (src / "_quarantine").exists()


def test_train_config_maps_the_settings(monkeypatch: pytest.MonkeyPatch,
                                        no_config: None) -> None:
    from models.train import TrainConfig

    assert steps.train_config(load_settings()) == TrainConfig()  # library defaults kept
    monkeypatch.setenv("DELINQ_TRAIN__VAL_WEEKS", "4")
    config = steps.train_config(load_settings(seed=7, train={"max_depth": 4}))
    assert config == TrainConfig(val_weeks=4, max_depth=4, seed=7)


def test_model_names_and_label_params(no_config: None) -> None:
    settings = load_settings(persistence_model="p", grid="monthly", delinquency_dpd=45)
    assert steps.model_names(settings) == {"early_warning": "delinq-early-warning",
                                           "persistence": "p"}
    assert steps.label_params(settings) == {"grid": "monthly", "delinquency_dpd": 45,
                                            "persistence_days": 30}


def test_score_wants_a_date(tmp_path: Path, no_config: None) -> None:
    with pytest.raises(TypeError, match="datetime.date"):
        steps.score(settings=load_settings(data_dir=tmp_path), book=tmp_path,
                    as_of="2024-01-01")  # type: ignore[arg-type]


def _positives(line: str) -> dict[str, int]:
    return {m: int(n.replace(",", "")) for m, n in re.findall(r"(\w+) ([\d,]+) of", line)}


@pytest.mark.slow
def test_train_command_honours_training_settings(tmp_path: Path, no_config: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`delinq train` trains what the settings in the environment say: the delinquency
    threshold (labels), the seed and the LightGBM options (logged with the models)."""
    import mlflow

    from features.synthetic import write_book_folder

    src = tmp_path / "book"
    write_book_folder(300, src, seed=4)
    state = tmp_path / "state"
    monkeypatch.setenv("DELINQ_DELINQUENCY_DPD", "60")
    monkeypatch.setenv("DELINQ_SEED", "7")
    monkeypatch.setenv("DELINQ_TRAIN__N_ESTIMATORS", "40")
    result = CliRunner().invoke(app, ["train", str(src), "--state-dir", str(state)])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("training set:")]
    assert "delinquent at 60 DPD" in line
    # The labels are those of a 60-DPD training set, not the default 30.
    staged = state / "staging" / "book"
    at = {dpd: steps.build_training_set(settings=load_settings(data_dir=tmp_path / f"d{dpd}",
                                                               delinquency_dpd=dpd),
                                        book=staged).positives
          for dpd in (30, 60)}
    assert _positives(line) == at[60] != at[30]
    # The stage table (issue 11 item 3): validation first, MLflow logging, then the live
    # check's period spread (measured on the registered versions, logged to their runs).
    table = [x.split()[0] for x in result.output.splitlines() if " s wall " in x]
    assert table[0] == "validation" and table[-3:] == ["mlflow", "period_spread", "offline_rows"]
    assert {"labels", "features", "early_warning", "persistence", "calibration", "baselines",
            "gate"} <= set(table)
    settings = load_settings(data_dir=state)
    client = mlflow.MlflowClient(tracking_uri=settings.resolved_tracking_uri)
    for name in steps.model_names(settings).values():
        (version,) = client.search_model_versions(f"name='{name}'")
        params = client.get_run(version.run_id).data.params
        assert params["delinquency_dpd"] == "60"
        assert params["random_state"] == "7" and params["n_estimators"] == "40"
        assert params["grid"] == "weekly"


def test_a_settings_typo_is_one_line_exit_2(tmp_path: Path, no_config: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELINQ_DELINQENCY_DPD", "60")
    result = CliRunner().invoke(app, ["worklist", str(tmp_path)])
    assert result.exit_code == 2
    assert "DELINQ_DELINQUENCY_DPD" in result.output and "Traceback" not in result.output


def test_a_staging_write_on_a_thread_is_waited_for_and_its_failure_fails_the_run(
    tmp_path: Path, no_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ingest(background=True)``: the Book is handed over in memory while its files are
    written; the run waits for them before it publishes; a failed write fails the run with
    its own message, keeps the previous staged folder and run, and fails a read of the
    files; without ``background`` the write's error is raised by ingest as it was."""
    import threading
    from datetime import timedelta

    import features.contract.io as fio
    from pipelines.steps_ingest import StagingError
    from serving.store import WorklistStore

    real = fio.write_staged_book
    gate = threading.Event()

    def gated(book: object, out: Path) -> object:
        assert gate.wait(30)
        return real(book, out)

    src = tmp_path / "src"
    settings = load_settings(data_dir=tmp_path / "state")
    steps.generate(settings=settings, out=src, accounts=20, start="2023-01-01",
                   end="2024-06-30")
    monkeypatch.setattr(fio, "write_staged_book", gated)
    first = steps.ingest(settings=settings, source=src, background=True)
    assert not first.staged.exists()  # still being written
    handed = steps.read_book(first.staged)  # the Book in memory meanwhile
    gate.set()
    steps.wait_staged(first.staged)
    staged = steps.read_book(first.staged, reuse=False)
    for table in ("invoices", "payments", "accounts"):
        only = list(STAGED_ONLY.get(table, ()))
        pd.testing.assert_frame_equal(getattr(handed, table),
                                      getattr(staged, table).drop(columns=only))
    day = first.last_date + timedelta(days=1)
    published = steps.score(settings=settings, book=first.staged, as_of=day)
    assert published.status == "succeeded"

    def full(book: object, out: Path) -> object:
        assert gate.wait(30)  # fails while the run is being scored
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "invoices.parquet").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    import pipelines.steps_partitioned as sp

    real_parts = sp.run_parts_in_process

    def scored_then_fail(planned: object) -> object:
        parts = real_parts(planned)
        gate.set()
        return parts

    gate.clear()
    monkeypatch.setattr(fio, "write_staged_book", full)
    monkeypatch.setattr(sp, "run_parts_in_process", scored_then_fail)
    steps.generate(settings=settings, out=src, accounts=12, start="2023-01-01",
                   end="2024-06-30")
    second = steps.ingest(settings=settings, source=src, background=True)
    for _ in range(2):  # found at the publish, then at once by the next run
        with pytest.raises(StagingError, match="staging the validated book .*No space left"):
            steps.score(settings=settings, book=second.staged, as_of=day)
    with WorklistStore(settings.resolved_store_url) as store:
        runs = store.list_runs()
        assert store.current_run(as_of=day).run_id == published.run_id
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 2 and all("No space left on device" in m for m in failed["message"])
    with pytest.raises(StagingError):  # the files are not this Book's: not read as it
        steps.read_book(second.staged)
    # the previous staged folder is intact, no half-written one swapped in
    from features.contract.io import read_folder

    assert len(read_folder(second.staged)["accounts"][1]) == 20
    with pytest.raises(OSError, match="No space left"):  # in the foreground: as raised
        steps.ingest(settings=settings, source=src)
    assert len(steps.read_book(second.staged).accounts) == 20


def test_the_scoring_holds_the_features_not_the_encoded_book(
    tmp_path: Path, no_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 (memory): the nightly's one snapshot serves the scorers, the KPIs and the
    run checks' totals before the book is scored; its prepared arrays (the book encoded,
    ~2 GB at 1M accounts) are gone when the scoring starts, and the run still publishes
    its KPIs and totals."""
    import gc
    from datetime import timedelta

    import pipelines.steps_partitioned as sp
    from features.pit.snapshot import PreparedBook

    real_parts = sp.run_parts_in_process
    alive: list[int] = []

    def counted(planned: object) -> object:
        gc.collect()
        alive.append(sum(isinstance(o, PreparedBook) for o in gc.get_objects()))
        return real_parts(planned)

    monkeypatch.setattr(sp, "run_parts_in_process", counted)
    src = tmp_path / "src"
    settings = load_settings(data_dir=tmp_path / "state")
    steps.generate(settings=settings, out=src, accounts=20, start="2023-01-01",
                   end="2024-06-30")
    ingested = steps.ingest(settings=settings, source=src)
    day = ingested.last_date + timedelta(days=1)
    published = steps.score(settings=settings, book=ingested.staged, as_of=day)
    assert alive == [0]
    assert published.status == "succeeded" and published.n_scored > 0
    assert published.kpis["total_ar"] > 0
