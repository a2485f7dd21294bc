"""Prefect flows, artifacts and the main job (pipelines.flows, .artifacts, .jobs).

Pure helpers are tested directly. Flows run against Prefect's test harness (a temporary
server and database, one per session) on a small synthetic book with throw-away stores
under ``tmp_path``; the main job is checked at small size: worklist rows in the store, a
champion in MLflow, artifacts on the flow run. Tests that train models are marked ``slow``
(about a minute of CPU on 2 cores); CI runs them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.artifacts import artifact_key, json_safe, summary_markdown, worklist_table
from pipelines.flows import resolve_settings, settings_params, today_in
from pipelines.settings import load_settings

ACCOUNTS = 300
ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- pure helpers


def test_artifact_key_is_lowercase_dashes() -> None:
    assert artifact_key("Nightly Score / 2025_01_01") == "nightly-score-2025-01-01"
    assert artifact_key("---") == "run"


def test_json_safe_scalars() -> None:
    assert json_safe(np.float64(1.23456789)) == 1.2346
    assert json_safe(np.int64(7)) == 7 and isinstance(json_safe(np.int64(7)), int)
    assert json_safe(float("nan")) is None and json_safe(pd.NA) is None
    assert json_safe(pd.Timestamp("2025-01-02")) == "2025-01-02"
    assert json_safe(date(2025, 1, 2)) == "2025-01-02"
    assert json_safe(["a", "b"]) == "['a', 'b']"


def test_worklist_table_top_rows_in_rank_order_and_json_safe() -> None:
    frame = pd.DataFrame(
        {
            "rank": [3, 1, 2],
            "account_id": pd.Series(["c", "a", "b"], dtype="str"),
            "probability": [0.1, 0.9, np.nan],
            "as_of": pd.to_datetime(["2025-01-01"] * 3),
            "unlisted": [1, 2, 3],
        }
    )
    rows = worklist_table(frame, top=2)
    assert [r["account_id"] for r in rows] == ["a", "b"]
    assert rows[1]["probability"] is None
    assert "unlisted" not in rows[0]
    json.dumps(rows)  # a table artifact must be JSON
    assert worklist_table(frame.iloc[:0]) == []


def test_summary_markdown_sections() -> None:
    text = summary_markdown(
        "nightly-score",
        facts={"as_of": "2025-01-01", "accounts": 1234},
        timings={"ingest": 1.0, "score": 2.5},
        validation=[{"table": "invoices", "rows_read": 10, "kept": 9, "quarantined": 1}],
        metrics=[{"model": "early_warning", "roc_auc": 0.81}],
        flags=["PSI alert: early_warning oldest_dpd = 0.300"],
    )
    assert text.startswith("# nightly-score")
    assert "**accounts**: 1,234" in text
    assert "| total | 3.5 |" in text
    assert "| invoices | 10 | 9 | 1 |" in text
    assert "| early_warning | 0.81 |" in text
    assert "- PSI alert" in text
    assert "- none" in summary_markdown("x", facts={}, timings={})


def test_drift_flags_count_then_largest() -> None:
    from pipelines.artifacts import drift_flags

    drift = pd.DataFrame({
        "model": ["early_warning"] * 4,
        "feature": ["a", "b", "c", "__score__"],
        "psi": [0.05, 0.12, 0.4, 0.3],
        "flag": ["ok", "watch", "alert", "alert"],
    })
    lines = drift_flags(drift, top=2)
    assert lines[0] == "2 alert, 1 watch of 4 PSI checks"
    assert lines[1:] == ["PSI alert: early_warning c = 0.400",
                         "PSI alert: early_warning __score__ = 0.300"]


def test_train_rows_are_json_safe() -> None:
    from pipelines.artifacts import train_rows
    from pipelines.summaries import ModelSummary

    summary = [ModelSummary(model="early_warning", registered_name="ew", version="3",
                            promoted=False,
                            metrics={"roc_auc": np.float64(0.81234), "ece": np.nan})]
    rows = train_rows(summary)
    assert rows == [{"model": "early_warning", "version": "3", "promoted": False,
                     "roc_auc": 0.8123, "ece": None}]
    json.dumps(rows)


def test_heartbeat_beats_while_running_and_stops_after() -> None:
    import time

    from pipelines.progress import PROGRESS_LOGGER, heartbeat

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(PROGRESS_LOGGER)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with heartbeat("training", every=0.01):
            deadline = time.monotonic() + 30
            while not lines and time.monotonic() < deadline:
                time.sleep(0.01)
        seen = len(lines)
        time.sleep(0.05)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert seen >= 1 and lines[0].startswith("  ... training: ")
    assert len(lines) == seen  # the thread stopped with the block


def test_today_in_uses_the_timezone() -> None:
    # UTC+14 and UTC-11 are 25 hours apart: their dates always differ by one or two days.
    ahead, behind = today_in("Pacific/Kiritimati"), today_in("Pacific/Pago_Pago")
    assert timedelta(days=1) <= ahead - behind <= timedelta(days=2)


def test_settings_params_round_trip(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "state", timezone="Europe/Paris", grid="monthly")
    params = settings_params(settings)
    json.dumps(params)  # Prefect parameters must be JSON
    assert Path(params["data_dir"]).is_absolute()
    again = resolve_settings(params)
    assert again.timezone == "Europe/Paris" and again.grid == "monthly"
    assert again.resolved_store_url == settings.resolved_store_url


def test_console_filter_hides_only_user_errors() -> None:
    """By exception type and logger, never by message text."""
    from features.contract.validation import DataContractError
    from pipelines.runtime import HideUserErrors

    filt = HideUserErrors((DataContractError,))
    err = DataContractError("invoices.csv", "amount", "missing_column", "is missing")

    def record(msg: str, exc: BaseException | None, name: str = "prefect.flow_runs",
               level: int = logging.ERROR) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord(name, level, "", 0, msg, None, info)

    assert not filt.filter(record("Encountered exception", err))
    assert not filt.filter(record("Task run failed", err, name="prefect.task_runs"))
    # The run engines' state summaries repeat an exception logged with it: hidden.
    assert not filt.filter(record("Finished in state Failed('DataContractError: x')", None,
                                  name="prefect.task_runs"))
    # A bug's exception is shown, whatever its message says.
    assert filt.filter(record("Encountered exception", RuntimeError("bug")))
    assert filt.filter(record("DataContractError", RuntimeError("bug"), name="prefect.task_runs"))
    # Other loggers' errors and the engines' warnings are shown.
    assert filt.filter(record("Finished in state Failed('DataContractError: x')", None,
                              name="prefect.server"))
    assert filt.filter(record("slow", None, level=logging.WARNING))


def test_quiet_run_restores_environment_and_handlers(tmp_path: Path) -> None:
    import warnings

    from pipelines.progress import PROGRESS_LOGGER, progress
    from pipelines.runtime import run_session

    before = os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED")
    telemetry = os.environ.get("MLFLOW_DISABLE_TELEMETRY")
    lines: list[str] = []
    with run_session(tmp_path, echo=lines.append, prefect=True) as log_file:
        assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] in ("false", before)
        assert os.environ["MLFLOW_DISABLE_TELEMETRY"] in ("true", telemetry)
        progress("step one")
        warnings.warn("to the log file, not the console", UserWarning, stacklevel=1)
    progress("not echoed")
    assert lines == ["step one"]
    assert log_file == tmp_path / "logs" / "delinq.log"
    assert "to the log file, not the console" in log_file.read_text()
    assert os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED") == before
    assert os.environ.get("MLFLOW_DISABLE_TELEMETRY") == telemetry
    assert not logging.getLogger(PROGRESS_LOGGER).handlers
    assert not logging.getLogger("py.warnings").handlers


# --------------------------------------------------------------------------- flows


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )


@pytest.mark.slow
def test_main_job_writes_worklist_registers_champion_and_prints(main_job) -> None:
    from models.registry import load_champion
    from serving.store import WorklistStore

    result, lines, settings = main_job
    as_of = result["ingest"].last_date + timedelta(days=1)
    assert result["score"].as_of == as_of
    with WorklistStore(settings.resolved_store_url) as store:
        worklist = store.read_worklist(as_of=as_of)
    assert len(worklist) == result["score"].n_scored > 0
    assert worklist["rank"].tolist() == list(range(1, len(worklist) + 1))
    assert result["score"].export_path.exists()
    # One quarantine location: <data_dir>/quarantine/<source folder name>.
    assert result["ingest"].quarantine == settings.data_dir / "quarantine" / "book"
    for name in (settings.early_warning_model, settings.persistence_model):
        assert load_champion(name, tracking_uri=settings.resolved_tracking_uri)
    text = "\n".join(lines)
    assert f"Worklist as of {as_of.isoformat()}" in text
    assert "why:" in text  # reasons printed under the accounts
    assert "ui --backend-store-uri" in text and "server start" in text
    assert worklist["account_id"].iloc[0] in text
    # the run's KPIs, stored with it and printed by the demo
    from serving.worklist import kpi_line

    with WorklistStore(settings.resolved_store_url) as store:
        stored = store.current_run(as_of=as_of).meta["kpis"]
    assert stored == dict(result["score"].kpis) and stored["total_ar"] > 0
    assert kpi_line(stored) in lines


@pytest.mark.slow
def test_main_job_publishes_artifacts(main_job) -> None:
    result, _, _ = main_job
    assert result["artifacts"] == ["main-job-summary", "main-job-worklist"]
    (summary,) = _artifacts("main-job-summary")
    assert summary.type == "markdown" and "## Stages" in summary.data
    assert "## Receivables KPIs" in summary.data
    (table,) = _artifacts("main-job-worklist")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == min(10, result["score"].n_scored)
    assert rows[0]["rank"] == 1


@pytest.mark.slow
def test_nightly_and_run_folder_reuse_the_champion(main_job) -> None:
    from pipelines.flows import nightly_score, run_folder_flow
    from serving.store import WorklistStore

    result, _, settings = main_job
    params = settings_params(settings)
    day = result["ingest"].last_date - timedelta(days=30)
    # as_of arrives as an ISO string (a deployment's JSON parameter): a date from there on.
    nightly = nightly_score(data_source=str(result["ingest"].source), as_of=day.isoformat(),
                            settings=params)
    assert nightly["score"].as_of == day
    with WorklistStore(settings.resolved_store_url) as store:
        assert len(store.read_worklist(as_of=day)) == nightly["score"].n_scored > 0
    assert nightly["artifacts"] == ["nightly-score-summary", "nightly-score-worklist"]
    again = run_folder_flow(data_source=str(result["ingest"].source), settings=params)
    assert "train" not in again  # the champion exists: no retraining
    assert again["score"].as_of == result["score"].as_of


@pytest.mark.slow
def test_stage_flows_read_the_staged_book(main_job) -> None:
    from pipelines.flows import build_training_set_flow, score_flow

    result, _, settings = main_job
    params = settings_params(settings)
    built = build_training_set_flow(settings=params)
    frame = pd.read_parquet(built.path)
    assert len(frame) == built.rows == result["training_set"].rows > 0
    day = (result["ingest"].last_date - timedelta(days=60)).isoformat()
    scored = score_flow(as_of=day, settings=params)
    assert scored.as_of.isoformat() == day and scored.n_scored > 0
    assert [r["rank"] for r in scored.top] == list(range(1, len(scored.top) + 1))


@pytest.mark.slow
def test_ingest_flow_user_error_fails_once_without_retry(prefect_server, tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from features.contract.validation import DataContractError
    from pipelines.flows import ingest_flow

    empty = tmp_path / "empty"
    empty.mkdir()
    params = settings_params(load_settings(data_dir=tmp_path / "state"))
    name = f"ingest-empty-{tmp_path.name}"
    with pytest.raises(DataContractError, match="missing_file"):
        ingest_flow.with_options(flow_run_name=name)(source=str(empty), settings=params)
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
        (task_run,) = client.read_task_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=[name])))
    assert run.state.is_failed()
    assert task_run.run_count == 1  # a user error is not retried


@pytest.mark.slow
def test_demo_command_prints_worklist_without_tracebacks(tmp_path: Path) -> None:
    """`delinq demo` as a user runs it: exit 0, the worklist, no traceback or warning."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DELINQ_"))}
    proc = subprocess.run(
        # The default seed: a population whose model fails the quality gate is ranked by
        # the aging rule (issue 12), so the demo ends in a worklist whatever the gate says.
        [sys.executable, "-m", "pipelines.cli", "demo", "--data-dir", str(tmp_path / "demo"),
         "--accounts", str(ACCOUNTS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Worklist as of" in proc.stdout
    for noise in ("Traceback", "Warning", "WARNING", "database is locked"):
        assert noise not in output, output
    assert (tmp_path / "demo" / ".prefect").is_dir()  # Prefect's files stay under data_dir
    # Issue 22: the demo's reminders are .eml files in the outbox under its state folder,
    # counted per level in the output; a letter names its account's invoices.
    line = next(x for x in proc.stdout.splitlines() if "letters sent per level:" in x)
    letters = sorted((tmp_path / "demo").rglob("outbox/**/*.eml"))
    sent = sum(int(n) for n in re.findall(r"(?:pre_due|first_notice|second_notice|"
                                          r"final_notice) (\d+)", line))
    assert letters and sent == len(letters), (line, len(letters))
    assert "Subject:" in letters[0].read_text(errors="replace")


@pytest.mark.slow
def test_run_on_a_bad_folder_is_one_line_without_traceback(
        tmp_path: Path, prefect_api_env: dict[str, str]) -> None:
    """`delinq run` through Prefect: a user error (a missing required column) is the CLI's
    one line, exit 2; Prefect's engine loggers do not echo its traceback."""
    source = tmp_path / "book"
    source.mkdir()
    (source / "invoices.csv").write_text("invoice_id,account_id\n1,2\n")
    env = prefect_api_env  # the session's server (the demo test covers a temporary one)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(source),
         "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "column 'issue_date' is required but missing (rule missing_column)" in output
    assert "Traceback" not in output and "Encountered exception" not in output, output


@pytest.mark.slow
def test_run_on_the_imported_ibm_sample_ends_with_a_rule_ranked_run(
        tmp_path: Path, prefect_api_env: dict[str, str]) -> None:
    """`delinq import --format ibm_ar` then `delinq run`: the export holds settled invoices
    only (invoicing stops 2013-12-02, every invoice is settled by 2014-01-09), so nothing
    is open the day after its last date: the run exits 0 and says so in one line naming
    the date and `--as-of`. With `--as-of` inside the book, the sample is too thin to train
    (a one-line SplitError), yet the run exits 0, the aging rule ranks a non-empty
    worklist, and one line per population says why no model ranks it and where the
    probability comes from."""
    sample = Path(__file__).parents[3] / "shared" / "data" / "ibm_ar" / (
        "WA_Fn-UseC_-Accounts-Receivable.csv")
    if not sample.is_file():
        pytest.skip(f"the IBM AR sample is not at {sample}")
    from typer.testing import CliRunner

    from pipelines.cli import app

    env = prefect_api_env  # the session's server, not a temporary one per `delinq run`
    cli = [sys.executable, "-m", "pipelines.cli"]
    subprocess.run([*cli, "import", "--format", "ibm_ar", str(sample), "--out",
                    str(tmp_path / "book")], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=300)
    # In this process (CliRunner, on the session's server): this run is about its message;
    # the process boundary of `delinq run` is the subprocess run below (and the bad-folder
    # test's), and a subprocess costs seconds of imports.
    runner = CliRunner()
    done = runner.invoke(app, ["run", str(tmp_path / "book"), "--state-dir",
                               str(tmp_path / "end")])
    assert done.exit_code == 0, (done.output, done.exception)
    assert "Traceback" not in done.output, done.output
    line = next(x for x in done.stdout.splitlines() if x.startswith("nothing is open as of"))
    assert "2014-01-10" in line and "2014-01-09" in line and "--as-of" in line, line

    proc = subprocess.run([*cli, "run", str(tmp_path / "book"), "--state-dir",
                           str(tmp_path / "state"), "--as-of", "2013-12-01"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert "Worklist as of 2013-12-01: top 10 of " in proc.stdout, proc.stdout
    assert "nothing is open" not in proc.stdout
    for kind in ("early_warning", "persistence"):
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"{kind}: no champion"))
        assert "training stopped" in line and "ranked by the aging rule" in line
        # the calibration source is stated (here: too few positives for any probability)
        assert any(x in line for x in ("calibrated on", "smoothed rate per DPD band",
                                       "no probability (n/a, thin data")), line
    # `delinq worklist` reads the store only: in this process (its subprocess runs are the
    # store-error tests').
    shown = runner.invoke(app, ["worklist", str(tmp_path / "state")])
    assert shown.exit_code == 0 and "ranked by the aging rule" in shown.stdout, shown.output
    assert "aging_rule" in shown.stdout or "aging rule" in shown.stdout


@pytest.mark.slow
def test_nightly_evaluates_the_past_runs_whose_labels_resolved(main_job) -> None:
    from pipelines.flows import nightly_score
    from serving.store import WorklistStore

    result, _, settings = main_job
    # 100 days before the book's end: its labels (60-day horizon) resolved in the book,
    # so the nightly that scores it also evaluates it, at its end (issue 19)
    day = result["ingest"].last_date - timedelta(days=100)
    nightly = nightly_score(data_source=str(result["ingest"].source), as_of=day.isoformat(),
                            settings=settings_params(settings))
    live = nightly["live"]
    assert day in [r["as_of"] for r in live.evaluated]
    with WorklistStore(settings.resolved_store_url) as store:
        stored = store.current_run(as_of=day).meta["live"]
    assert stored["counts"]["resolved"] > 0 and stored["data_end"] == (
        result["ingest"].last_date + timedelta(days=1)).isoformat()
    texts = [a.data for a in _artifacts("nightly-score-summary")]
    assert any("## Live performance of past runs" in t and str(day) in t for t in texts)
