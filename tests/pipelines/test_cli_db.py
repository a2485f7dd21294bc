"""`delinq db upgrade` and `delinq db current`: the store's schema from the command line, on
SQLite and PostgreSQL, including a store written by the release before migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving import store_schema
from serving.store import WorklistStore, current_revision
from tests.serving.test_store_migrations import (
    HEAD,
    NEXT,
    _assert_same,
    _code_knowing,
    _everything,
    _previous_release_store,
    _with_second_revision,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    """A state folder and the store URL the settings resolve for it."""
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    folder = tmp_path / "state"
    if request.param == "sqlite":
        monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
        return folder, f"sqlite:///{folder.resolve() / 'worklist.db'}"
    url = request.getfixturevalue("pg_schema_url")
    monkeypatch.setenv("DELINQ_STORE_URL", url)
    return folder, url


def _db(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["db", *args])
    return result.exit_code, result.output


def test_upgrade_creates_then_changes_nothing_and_current_says_so(
    state: tuple[Path, str],
) -> None:
    folder, url = state
    head = store_schema.REVISION
    code, out = _db("current", "--state-dir", str(folder))
    assert code == 0 and "no worklist store" in out and not folder.exists()
    code, out = _db("upgrade", "--state-dir", str(folder))
    assert code == 0 and f"schema revision {head} (created)" in out
    code, out = _db("upgrade", "--state-dir", str(folder))
    assert code == 0 and f"schema revision {head} (unchanged)" in out
    code, out = _db("current", "--state-dir", str(folder))
    assert code == 0 and f"schema revision {head}: up to date" in out
    assert current_revision(url) == head


def test_upgrade_keeps_every_run_of_a_previous_release_store(
    state: tuple[Path, str], tmp_path: Path
) -> None:
    folder, url = state
    seen = _previous_release_store(url, tmp_path)
    code, out = _db("upgrade", "--state-dir", str(folder))
    assert code == 0, out
    assert current_revision(url) == store_schema.REVISION
    with WorklistStore(url, explanations_dir=tmp_path / "explanations") as store:
        _assert_same(_everything(store), seen)


def test_an_older_store_is_named_and_upgraded_a_newer_one_refused_in_one_line(
    state: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, url = state
    _db("upgrade", "--state-dir", str(folder))
    with monkeypatch.context() as newer_release:
        _code_knowing(_with_second_revision(tmp_path), newer_release)
        code, out = _db("current", "--state-dir", str(folder))
        assert code == 0 and f"needs {NEXT}: run `delinq db upgrade`" in out
        code, out = _db("upgrade", "--state-dir", str(folder))
        assert code == 0 and f"schema revision {NEXT} (was {HEAD})" in out
    # Back to this release's code: the store is newer than it knows.
    for command in ("current", "upgrade"):
        code, out = _db(command, "--state-dir", str(folder))
        assert NEXT in out and "newer delinq" in out and "Traceback" not in out
        assert code == (0 if command == "current" else 2)
        assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["db"], ["db", "upgrade"], ["db", "current"]])
def test_db_commands_have_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output, result.output
