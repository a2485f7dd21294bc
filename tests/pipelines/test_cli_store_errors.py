"""The store fails loudly, through the real CLI in a subprocess: a read-only state folder
is read (SQLite ``mode=ro``) but not written; a damaged, truncated or empty ``worklist.db``
is named in one line and left untouched; an unreachable database is one line without its
password. Every case: exit code 2 (user-fixable) or 0, one line, no traceback.

Read-only folders are real permissions: when the tests run as root (who ignores them), the
CLI runs as the unprivileged user ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.store import WorklistStore
from tests.serving.test_store import DAY, publish

NOBODY = 65534


@pytest.fixture(scope="module")
def numba_cache() -> Iterator[Path]:
    """One numba cache for the module's CLI runs (compiling per run costs seconds)."""
    where = Path(tempfile.mkdtemp(prefix="delinq-numba-"))
    where.chmod(0o777)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def work(numba_cache: Path) -> Iterator[Path]:
    # Not under pytest's tmp_path (0700, root's): the unprivileged CLI must reach it.
    where = Path(tempfile.mkdtemp(prefix="delinq-ro-"))
    where.chmod(0o755)
    (where / "home").mkdir()
    (where / "home").chmod(0o777)  # the CLI user's own
    (where / ".numba").symlink_to(numba_cache)
    yield where
    for path in [where, *where.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(where, ignore_errors=True)


def _cli(work: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``delinq ARGS`` in a subprocess (as ``nobody`` when we are root); exit code, output."""
    command = [sys.executable, "-m", "pipelines.cli", *args]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   *command]
    environ = {"PATH": os.environ["PATH"], "HOME": str(work / "home"), "LANG": "C.UTF-8",
               # numba's cache beside the installed code is not the unprivileged user's.
               "NUMBA_CACHE_DIR": str(work / ".numba"), **(env or {})}
    done = subprocess.run(command, cwd=work, env=environ, capture_output=True, text=True,
                          timeout=300, check=False)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    return done.returncode, out


def _one_line_error(code: int, out: str) -> str:
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    return lines[0]


def _state_with_a_run(work: Path) -> tuple[Path, str]:
    state = work / "state"
    with WorklistStore(f"sqlite:///{state / 'worklist.db'}",
                       export_dir=state / "exports") as store:
        run = publish(store, 8)
    for path in [state, *state.rglob("*")]:  # the CLI user's (read-only: see below)
        path.chmod(0o777 if path.is_dir() else 0o666)
    return state, run.run_id


def _read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_a_read_only_state_folder_is_read_and_not_written(work: Path) -> None:
    state, run_id = _state_with_a_run(work)
    _read_only(state)
    before = {p: p.stat().st_mtime_ns for p in state.rglob("*")}
    code, out = _cli(work, "worklist", str(state), "--top", "3")
    assert code == 0 and f"run {run_id} as of {DAY}" in out, out
    code, out = _cli(work, "runs", "--state-dir", str(state))
    assert code == 0 and run_id in out, out
    # A writer stops before it starts, naming the folder.
    code, out = _cli(work, "score", str(work / "data"), "--as-of", "2024-03-01",
                     "--state-dir", str(state))
    line = _one_line_error(code, out)
    assert str(state) in line and "not writable" in line
    code, out = _cli(work, "runs", "--state-dir", str(state), "delete", run_id)
    line = _one_line_error(code, out)
    assert str(state) in line and "read-only" in line
    assert {p: p.stat().st_mtime_ns for p in state.rglob("*")} == before
    # (the writers' turnstile files: serving.store_io.make_engine)
    assert sorted(p.name for p in state.iterdir()) == [
        "exports", "worklist.db", "worklist.db-turnstile", "worklist.db-turnstile-waiting",
        "worklist_explanations", "worklist_rows"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_store_is_named_in_one_line_and_left_as_it_is(work: Path,
                                                                 damage: str) -> None:
    state, run_id = _state_with_a_run(work)
    db = state / "worklist.db"
    data = db.read_bytes()
    damaged = {"garbage": b"this is not a database, just text " * 300,
               "truncated": data[: len(data) // 3],
               "empty": b""}[damage]
    db.write_bytes(damaged)
    for args in (["worklist", str(state)],  # a reader
                 ["runs", "--state-dir", str(state), "delete", run_id]):  # a writer
        code, out = _cli(work, *args)
        line = _one_line_error(code, out)
        assert str(db) in line and ("damaged" in line or "0 bytes" in line), line
    assert db.read_bytes() == damaged  # never reset or repaired behind the user's back


def test_an_unreachable_database_is_one_line_without_its_password(work: Path) -> None:
    url = "postgresql+psycopg://delinq:s3cret-pw@127.0.0.1:1/delinq"
    code, out = _cli(work, "worklist", env={"DELINQ_STORE_URL": url})
    line = _one_line_error(code, out)
    assert "cannot use the worklist store" in line and "127.0.0.1" in line
    assert "s3cret-pw" not in out
