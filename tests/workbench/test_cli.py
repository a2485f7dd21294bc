"""`delinq users` and `delinq serve` through the CLI: credentials shown once and only to
the person who ran the command, audited as the CLI user; the server answers with a token,
refuses anonymous calls and redirects pages to the login."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipelines.cli import app
from serving.store_events import audit

from .conftest import Scored, copy_store


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DELINQ_STORE_URL", "DELINQ_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "state"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_users_add_list_disable_token(state: Path) -> None:
    code, out = _cli("users", "add", "jdoe", "--role", "manager", "--state-dir", str(state))
    assert code == 0, out
    password = re.search(r"password \(shown once, store it now\): (\S+)", out).group(1)
    code, out = _cli("users", "list", "--state-dir", str(state))
    assert code == 0 and "jdoe" in out and "manager" in out and "enabled" in out
    assert password not in out
    code, out = _cli("users", "token", "jdoe", "--name", "nightly export", "--state-dir",
                     str(state))
    assert code == 0 and re.search(r"dlq_[0-9a-f]{16}_\S+", out)
    code, out = _cli("users", "disable", "jdoe", "--state-dir", str(state))
    assert code == 0 and "disabled" in out
    assert "disabled" in _cli("users", "list", "--state-dir", str(state))[1]
    engine = sa.create_engine(f"sqlite:///{state / 'worklist.db'}")
    with engine.connect() as conn:
        trail = conn.execute(sa.select(audit.c.actor, audit.c.action)).all()
    engine.dispose()
    assert [a for _, a in trail] == ["user.add", "token.create", "user.update"]
    assert all(actor.startswith("cli") for actor, _ in trail)
    # Nothing of the credentials went to the state folder's logs.
    for log in state.rglob("*.log"):
        assert password not in log.read_text()


def test_users_errors_are_one_line(state: Path) -> None:
    _cli("users", "add", "jdoe", "--state-dir", str(state))
    for args, message in ((("users", "add", "jdoe"), "already exists"),
                          (("users", "add", "Bad Name"), "username"),
                          (("users", "add", "x", "--role", "boss"), "--role must be one of"),
                          (("users", "disable", "nobody"), "no user 'nobody'"),
                          (("users", "token", "nobody"), "no user 'nobody'")):
        code, out = _cli(*args, "--state-dir", str(state))
        assert code == 2 and message in out, (args, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_the_api_with_a_token_and_refuses_anonymous(
        scored: Scored, state: Path) -> None:
    copy_store(scored, state)
    shutil.rmtree(state / "workbench" / "history")  # serve indexes the staged book itself
    shutil.copytree(scored.book_dir, state / "staging" / "book")
    _cli("users", "add", "ana", "--state-dir", str(state))
    token = re.search(r"(dlq_\S+)", _cli("users", "token", "ana", "--state-dir",
                                         str(state))[1]).group(1)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELINQ_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--state-dir", str(state), "--port",
         str(port), "--workers", "1"], env=env, cwd=state.parent, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        auth = {"Authorization": f"Bearer {token}"}
        page = httpx.get(f"{base}/api/worklist?limit=5", headers=auth)
        assert page.status_code == 200 and len(page.json()["items"]) == 5
        account = page.json()["items"][0]["account_id"]
        detail = httpx.get(f"{base}/api/accounts/{account}", headers=auth).json()
        assert detail["history_available"] and detail["open_invoices"]
        assert httpx.get(f"{base}/api/worklist").status_code == 401
        assert httpx.get(f"{base}/openapi.json").status_code == 200
        home = httpx.get(f"{base}/", follow_redirects=False)
        assert home.status_code == 303 and home.headers["location"] == "/login"
        # The app of a worker process (the factory `--workers N` starts N of; one here: a
        # second costs this test ~40 s on 2 loaded cores): a user disabled by another
        # process (the CLI) is refused on the next request.
        _cli("users", "disable", "ana", "--state-dir", str(state))
        assert {httpx.get(f"{base}/api/me", headers=auth).status_code
                for _ in range(8)} == {401}
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert "indexing the staged book" in out and "1 worker process)" in out
    assert token not in out  # the access log never shows a credential


def test_the_demo_user_gets_a_new_password_each_demo(state: Path) -> None:
    from pipelines.cli_workbench import DEMO_USER, create_demo_user
    from pipelines.settings import load_settings
    from workbench.app import open_store_engine
    from workbench.users import authenticate

    settings = load_settings(data_dir=state)
    first = create_demo_user(settings)
    second = create_demo_user(settings)
    engine = open_store_engine(settings.resolved_store_url)
    try:
        assert authenticate(engine, DEMO_USER, first) is None
        user = authenticate(engine, DEMO_USER, second)
        assert user is not None and user.role.value == "manager"
    finally:
        engine.dispose()


def test_the_demo_ends_with_the_command_the_url_and_the_password(tmp_path: Path) -> None:
    from pipelines.cli_workbench import demo_lines, launcher_path
    from pipelines.settings import load_settings

    settings = load_settings(data_dir=tmp_path)
    out = demo_lines(settings, data_dir=Path("demo_data"), password="pw-123",
                     launcher=launcher_path(str(tmp_path / ".venv/bin/delinq"), cwd=tmp_path))
    first, second = out.splitlines()
    assert first == "workbench: .venv/bin/delinq serve --state-dir demo_data"
    port = settings.workbench.port
    assert f"http://{settings.workbench.host}:{port}/" in second and "pw-123" in second
    assert launcher_path("delinq", cwd=tmp_path) == "delinq"
    assert launcher_path("/opt/x/bin/delinq", cwd=tmp_path) == "/opt/x/bin/delinq"
