"""A failed nightly reaches the notification endpoint (a local HTTP server): with the flow,
the as_of and the reason, secrets masked; an unreachable endpoint never hides the failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from pipelines.errors import NotEnoughDiskError
from pipelines.notify import notify_failure
from pipelines.settings import load_settings


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/notify?token=t0ken-z", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    for var in ("DELINQ_STORE_URL", "DELINQ_DATA_DIR", "DELINQ_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_a_failed_nightly_reaches_the_endpoint(env: Path, endpoint, monkeypatch) -> None:
    from pipelines.flows import nightly_score

    url, received = endpoint
    monkeypatch.setenv("DELINQ_NOTIFY_WEBHOOK_URL", url)
    day = date(2024, 3, 1)
    with pytest.raises(NotEnoughDiskError):
        # The disk check fails before any task: the flow's own code, no Prefect server.
        nightly_score.fn(as_of=day, settings={"data_dir": str(env / "state"),
                                              "min_free_disk_mb": 10**9})
    (message,) = received
    assert message["event"] == "run_failed" and message["flow"] == "nightly-score"
    assert message["as_of"] == "2024-03-01"
    assert "not enough free disk" in message["reason"] and "2024-03-01" in message["text"]
    assert "t0ken-z" not in json.dumps(message)
    # The store records the blocked night: the workbench's banner reads it (issue 18).
    from serving.store_io import make_engine, normalise_url
    from workbench.queries import nightly_trouble

    engine = make_engine(normalise_url(load_settings(data_dir=env / "state").resolved_store_url))
    try:
        with engine.connect() as conn:
            trouble = nightly_trouble(conn)
    finally:
        engine.dispose()
    assert trouble is not None and trouble["status"] == "was blocked"
    assert trouble["as_of"] == day and "not enough free disk" in trouble["reason"]


def test_a_failed_weekly_retrain_reaches_the_endpoint(env: Path, endpoint, monkeypatch) -> None:
    from pipelines.flows import weekly_retrain

    url, received = endpoint
    monkeypatch.setenv("DELINQ_NOTIFY_WEBHOOK_URL", url)
    with pytest.raises(NotEnoughDiskError):
        weekly_retrain.fn(settings={"data_dir": str(env / "state"), "min_free_disk_mb": 10**9})
    (message,) = received
    assert message["event"] == "run_failed" and message["flow"] == "weekly-retrain"
    assert message["as_of"] is None and "not enough free disk" in message["reason"]
    assert "t0ken-z" not in json.dumps(message)


def test_an_unreachable_endpoint_is_logged_not_raised(env: Path) -> None:
    settings = load_settings(data_dir=env, notify_webhook_url="http://127.0.0.1:1/x")
    assert notify_failure(settings=settings, flow="nightly-score", as_of=None,
                          reason="boom") is False
    assert notify_failure(settings=load_settings(data_dir=env), flow="nightly-score",
                          as_of=None, reason="boom") is False  # nothing configured


def test_the_reason_is_one_masked_line(env: Path) -> None:
    from pipelines.notify import failure_message

    message = failure_message(flow="nightly-score", as_of=date(2024, 3, 1), settings=load_settings(
        data_dir=env), reason="cannot reach\npostgresql://u:pw-zz@h/d")
    assert message["reason"] == "cannot reach postgresql://u:***@h/d"


def test_warnings_reach_the_endpoint(env: Path, endpoint) -> None:
    """Issue 19: a stale champion, persistent drift and a demotion are posted as one
    ``run_warning``; other flags are not; no warnings, no post."""
    from pipelines.notify import notify_warnings
    from pipelines.steps_live import LiveSummary, warning_lines

    url, received = endpoint
    settings = load_settings(data_dir=env, notify_webhook_url=url)
    live = LiveSummary(data_end=date(2024, 7, 1), evaluated=(), pending=0, seconds=0.0,
                       demotions=({"action": "demote", "reason": "early_warning champion v3 "
                                   "ranked untouched accounts below the aging rule"},))
    flags = ("stale model: early_warning champion trained on data up to 2024-01-01",
             "persistent drift: early_warning dpd_max has a PSI alert in each of the last 3",
             "0 alert, 2 watch of 40 PSI checks")
    lines = warning_lines(flags, live)
    assert lines == [*flags[:2], "demoted: early_warning champion v3 ranked untouched "
                     "accounts below the aging rule"]
    assert notify_warnings(settings=settings, flow="nightly-score", as_of=date(2024, 7, 1),
                           lines=lines)
    (body,) = received
    assert body["event"] == "run_warning" and body["warnings"] == lines
    assert "t0ken-z" not in json.dumps(body)
    assert not notify_warnings(settings=settings, flow="nightly-score", as_of=None, lines=[])
    assert len(received) == 1
