"""Sign-in, sessions, CSRF, the login rate limit, API tokens and the session key file."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving.store_events import api_tokens, audit, users
from workbench.roles import RIGHTS, Right, Role
from workbench.security import KeyFileError, hash_password, load_session_key, verify_password
from workbench.users import UserError, add_user, update_user, user_of_token

from .conftest import PASSWORD, Bench


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _login(client, username: str, password: str) -> object:
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": _csrf(page.text)}, follow_redirects=False)


def test_roles_match_the_store_check_and_grow() -> None:
    from serving.store_events import ROLES

    assert tuple(r.value for r in Role) == ROLES
    assert RIGHTS[Role.ANALYST] < RIGHTS[Role.MANAGER] < RIGHTS[Role.ADMIN]
    assert Right.ASSIGN not in RIGHTS[Role.ANALYST]
    assert Right.MANAGE_USERS not in RIGHTS[Role.MANAGER]


def test_passwords_are_stored_hashed_and_verified() -> None:
    digest = hash_password(PASSWORD)
    assert PASSWORD not in digest and digest.startswith("scrypt:")
    assert verify_password(digest, PASSWORD) and not verify_password(digest, PASSWORD + "x")
    assert not verify_password(None, PASSWORD)
    with pytest.raises(ValueError, match="at least 10"):
        hash_password("short")


def test_session_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "wb" / "session.key"
    key = load_session_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_session_key(path) == key
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others.*chmod 600"):
        load_session_key(path)


def test_login_sets_a_signed_httponly_samesite_cookie_and_logout_clears_it(
        bench: Bench) -> None:
    client = bench.client()
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    done = _login(client, "analyst", PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and PASSWORD not in cookie
    landing = client.get("/")
    assert landing.status_code == 200 and "analyst" in landing.text
    assert landing.headers["X-Frame-Options"] == "DENY"
    assert client.get("/api/me").json()["username"] == "analyst"
    # A forged cookie is anonymous.
    forged = bench.client()
    forged.cookies.set("delinq_session", client.cookies["delinq_session"][:-2] + "xx")
    assert forged.get("/api/me").status_code == 401
    # Logout needs the form's CSRF token.
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 200
    assert client.get("/api/me").status_code == 200
    client.post("/logout", data={"csrf_token": _csrf(landing.text)})
    assert client.get("/api/me").status_code == 401


def test_login_refuses_a_wrong_password_a_disabled_user_and_a_missing_csrf(bench: Bench) -> None:
    client = bench.client()
    assert _login(client, "analyst", "wrong password!").status_code == 401
    no_csrf = client.post("/login", data={"username": "analyst", "password": PASSWORD})
    assert no_csrf.status_code == 403 and "expired" in no_csrf.text
    update_user(bench.app.state.wb.engine, "analyst", actor="test", now=bench.clock(),
                disabled=True)
    assert _login(client, "analyst", PASSWORD).status_code == 401
    # ... and their token stops working too.
    assert bench.client(Role.ANALYST).get("/api/me").status_code == 401


def test_login_is_rate_limited_per_user_and_client(bench: Bench) -> None:
    client = bench.client()
    for _ in range(bench.config.login_max_failures):
        assert _login(client, "manager", "not the password").status_code == 401
    limited = _login(client, "manager", PASSWORD)  # even the right password waits
    assert limited.status_code == 429 and "Too many" in limited.text
    assert _login(client, "analyst", PASSWORD).status_code == 303  # another user is not
    bench.clock.advance(seconds=bench.config.login_window_s + 1)
    assert _login(client, "manager", PASSWORD).status_code == 303


def test_failed_sign_ins_are_counted_across_server_processes(tmp_path: Path) -> None:
    """`delinq serve --workers N`: each process has its own limiter over one shared file,
    so a guesser gains nothing from landing on another worker."""
    from datetime import UTC, datetime

    from workbench.auth import LoginLimiter

    def clock() -> datetime:
        return datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

    first, second = (LoginLimiter(max_failures=2, window_s=60.0, clock=clock,
                                  path=tmp_path / "failures.json") for _ in range(2))
    key = ("manager", "10.0.0.7")
    first.failed(key)
    assert second.retry_after(key) is None  # one failure: under the limit
    second.failed(key)
    assert first.retry_after(key) == 61 and second.retry_after(key) == 61
    assert first.retry_after(("analyst", "10.0.0.7")) is None
    second.succeeded(key)
    assert first.retry_after(key) is None


def test_session_expires(bench: Bench, tmp_path: Path) -> None:
    from workbench.security import SessionSigner

    client = bench.client()
    _login(client, "analyst", PASSWORD)
    assert client.get("/api/me").status_code == 200
    cookie = client.cookies["delinq_session"]
    key = load_session_key(bench.config.workbench_dir / "session.key")
    assert SessionSigner(key, max_age_s=3600).loads(cookie)["u"] == "analyst"
    assert SessionSigner(key, max_age_s=-1).loads(cookie) is None  # past its lifetime
    assert SessionSigner(b"another key" * 3, max_age_s=3600).loads(cookie) is None


def test_cookie_writes_need_the_csrf_header(bench: Bench) -> None:
    client = bench.client()
    _login(client, "analyst", PASSWORD)
    csrf = _csrf(client.get("/").text)
    body = {"name": "script"}
    assert client.post("/api/me/tokens", json=body).status_code == 403
    assert client.post("/api/me/tokens", json=body,
                       headers={"X-CSRF-Token": "nope"}).status_code == 403
    made = client.post("/api/me/tokens", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201 and made.json()["token"].startswith("dlq_")


def test_tokens_are_stored_as_digests_and_shown_once(bench: Bench) -> None:
    engine = bench.app.state.wb.engine
    token = bench.tokens[Role.ADMIN]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(api_tokens)).all()
        secrets_in_db = " ".join(str(tuple(r)) for r in stored)
        trail = " ".join(str(tuple(r)) for r in conn.execute(sa.select(audit)).all())
        hashes = conn.execute(sa.select(users.c.password_hash)).scalars().all()
    secret = token.split("_", 2)[2]
    assert secret not in secrets_in_db and secret not in trail
    assert all(PASSWORD not in h for h in hashes) and PASSWORD not in trail
    assert user_of_token(engine, token).username == "admin"
    assert user_of_token(engine, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert user_of_token(engine, "dlq_nonsense") is None
    # A second listing never shows the token again.
    listing = bench.client(Role.ADMIN).get("/api/users").text
    assert secret not in listing


def test_user_names_are_checked_and_unique(bench: Bench) -> None:
    engine = bench.app.state.wb.engine
    with pytest.raises(UserError, match="already exists"):
        add_user(engine, username="admin", role=Role.ADMIN, password=PASSWORD, actor="t",
                 now=bench.clock())
    with pytest.raises(UserError, match="username"):
        add_user(engine, username="Bad Name", role=Role.ADMIN, password=PASSWORD, actor="t",
                 now=bench.clock())


def test_every_user_write_is_audited(bench: Bench) -> None:
    admin = bench.client(Role.ADMIN)
    made = admin.post("/api/users", json={"username": "newbie", "role": "analyst"})
    assert made.status_code == 201
    password = made.json()["password"]
    assert password and len(password) >= 10
    changed = admin.patch("/api/users/newbie", json={"role": "manager"})
    assert changed.json()["role"] == "manager"
    trail = admin.get("/api/audit").json()["items"]
    actions = [(r["actor"], r["action"], r["target"]) for r in trail[:2]]
    assert actions == [("admin", "user.update", "user:newbie"),
                       ("admin", "user.add", "user:newbie")]
    assert trail[0]["before"]["role"] == "analyst" and trail[0]["after"]["role"] == "manager"
    assert password not in str(trail)
    assert admin.patch("/api/users/admin", json={"disabled": True}).status_code == 409
