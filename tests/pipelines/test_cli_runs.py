"""`delinq runs` and `delinq worklist` through the CLI: runs listed and deleted, a dead run
reaped by `delinq runs`, the worklist says which run it shows, never creates anything, and
rejects bad options in one line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving import store_schema as S
from serving.store import WorklistStore
from tests.serving.test_store import DAY, publish


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
    monkeypatch.delenv("DELINQ_DATA_DIR", raising=False)
    return tmp_path / "state"


def _store(folder: Path) -> WorklistStore:
    return WorklistStore(f"sqlite:///{(folder / 'worklist.db').resolve()}",
                         export_dir=folder / "exports")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_runs_are_listed_and_a_wrong_run_deleted(state: Path) -> None:
    with _store(state) as store:
        good = publish(store, 6)
        wrong = publish(store, 4, as_of=DAY + timedelta(days=10000), seed=2)
    code, out = _cli("runs", "--state-dir", str(state))
    assert code == 0, out
    assert good.run_id in out and wrong.run_id in out and "succeeded" in out
    assert out.index(wrong.run_id) < out.index(good.run_id)  # newest first
    code, out = _cli("worklist", str(state))
    assert code == 0 and f"run {wrong.run_id} as of {wrong.as_of}" in out
    code, out = _cli("runs", "--state-dir", str(state), "delete", wrong.run_id)
    assert code == 0 and f"deleted run {wrong.run_id}" in out
    code, out = _cli("worklist", str(state))
    assert code == 0 and f"run {good.run_id} as of {DAY}" in out
    code, out = _cli("runs", "--state-dir", str(state), "delete", "nope")
    assert code == 2 and "no run 'nope'" in out and len(out.strip().splitlines()) == 1


def test_delinq_runs_reaps_a_dead_run(state: Path) -> None:
    with _store(state) as store:
        publish(store, 3)
        dead = store.begin_run(as_of=DAY, meta={})
        store._stop_heartbeat(dead)  # as if its process had been killed
        (store.explanations_dir / dead).mkdir(parents=True)  # type: ignore[operator]
        old = store._now() - timedelta(minutes=30)
        with store._engine.begin() as conn:
            conn.execute(S.runs.update().where(S.runs.c.run_id == dead)
                         .values(heartbeat_at=old))
    code, out = _cli("runs", "--state-dir", str(state))
    assert code == 0 and f"run {dead}: its process died" in out
    with _store(state) as store:
        assert store._run(dead).status == "failed"
        assert not (store.explanations_dir / dead).exists()  # type: ignore[operator]


def test_worklist_never_creates_a_store_or_a_folder(state: Path) -> None:
    missing = state.parent / "typo"
    code, out = _cli("worklist", str(missing))
    assert code == 2 and "no store at" in out and len(out.strip().splitlines()) == 1
    assert not missing.exists()
    code, out = _cli("runs", "--state-dir", str(missing))
    assert code == 2 and "no store at" in out and not missing.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--segment", "LATEX"], "--segment must be one of preventive, early, delinquent, late"),
    (["--top", "-1"], "--top must be at least 1"),
    (["--top", "0"], "--top must be at least 1"),
    (["--as-of", "2024-13-01"], "--as-of must be a date"),
])
def test_worklist_options_are_checked_in_one_line(state: Path, args: list[str],
                                                  message: str) -> None:
    with _store(state) as store:
        publish(store, 3)
    code, out = _cli("worklist", str(state), *args)
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1


def test_worklist_segment_is_case_insensitive_and_an_empty_segment_says_so(state: Path) -> None:
    with _store(state) as store:
        run = publish(store, 40)
    code, out = _cli("worklist", str(state), "--segment", "LATE", "--top", "3")
    assert code == 0 and f"run {run.run_id}" in out
    assert " late " in out and " early " not in out
    code, out = _cli("worklist", str(state), "--as-of", "2030-01-01")
    assert code == 0 and "no published run as of 2030-01-01" in out
