"""Browser fixtures: Debian's Chromium driven by Playwright (PyPI), never a downloaded build.

``chromium_path``: the installed ``chromium`` (``bash .ci/chromium.sh`` installs it). In CI
(``CI=true``) a missing browser fails the test; elsewhere the test is skipped with that
command. ``served``: the workbench over a fresh copy of the session's scored store, served by
uvicorn in a thread on a free loopback port. ``page``: a new browser page; on a failed test
its screenshot is saved under the test's temporary directory (the path is printed).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.factories import TrainedState
from tests.workbench.conftest import Bench, Scored, make_bench

INSTALL = "bash .ci/chromium.sh"
#: Headless, sandbox-less (root in CI) and silent: no update, sync or network of its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    message = f"Debian's Chromium is not installed: `{INSTALL}` installs it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs Chromium for the browser tests. {message}", pytrace=False)
    pytest.skip(f"no browser for this test ({message})")


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Served:
    bench: Bench
    url: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(scored: Scored, trained_state: TrainedState,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import uvicorn

    # with the registry: the run page shows the models beside the baselines
    bench = make_bench(scored, tmp_path_factory.mktemp("browser") / "state",
                       tracking_uri=trained_state.tracking_uri,
                       registered_names=trained_state.names)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(bench.app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="workbench-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield Served(bench=bench, url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        bench.app.state.wb.close()  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        if request.node.stash.get(_FAILED, False):
            shot = tmp_path / f"{request.node.name}.png"
            tab.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failed test: {shot}")
        context.close()
