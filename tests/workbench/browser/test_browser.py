"""The workbench in a real browser (Debian's Chromium via Playwright): what an analyst does
in a day, end to end, through the pages and their HTMX swaps."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from serving.store_events import account_directory
from tests.workbench.browser.conftest import Served
from tests.workbench.conftest import PASSWORD
from workbench.roles import Role

pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: ``DELINQ_DOC_SCREENSHOTS=docs`` saves the README's screenshots of the three pages there.
DOC_SCREENSHOTS = os.environ.get("DELINQ_DOC_SCREENSHOTS", "")


def doc_screenshot(page: Any, name: str) -> None:
    """The README's screenshot of a page (the top of it), when asked for."""
    if DOC_SCREENSHOTS:
        Path(DOC_SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(DOC_SCREENSHOTS) / f"workbench-{name}.png"),
                        clip={"x": 0, "y": 0, "width": 1280, "height": 720})


def _sign_in(page: Any, served: Served, username: str) -> None:
    page.goto(f"{served.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#worklist tbody tr[data-account]")


def _ids(page: Any) -> list[str]:
    return page.locator("#worklist tbody tr[data-account]").evaluate_all(
        "rows => rows.map(r => r.dataset.account)")


def test_an_analyst_works_the_worklist_and_records_outcomes(page: Any, served: Served) -> None:
    from playwright.sync_api import expect

    api = served.bench.client(Role.ANALYST)
    _sign_in(page, served, "analyst")
    expect(page.locator("#run-line")).to_contain_text("Run ")
    assert page.evaluate("typeof htmx") == "object"  # the vendored HTMX loaded under the CSP
    first = _ids(page)
    assert len(first) == 50
    doc_screenshot(page, "worklist")

    # Filter by segment (the form is boosted: HTMX swaps the page and pushes the URL).
    segment = api.get("/api/worklist", params={"limit": 1}).json()["items"][0]["segment"]
    page.select_option("select[name=segment]", segment)
    page.click("#apply")
    page.wait_for_url(re.compile(rf"segment={segment}"))
    cells = page.locator("#worklist tbody tr[data-account] td:nth-child(3)").all_inner_texts()
    assert cells and set(cells) == {segment}

    # Page forward: the next keyset page, no row repeated.
    shown = _ids(page)
    if page.locator("#next-page").count():
        page.click("#next-page")
        page.wait_for_url(re.compile(r"after="))
        assert not set(_ids(page)) & set(shown)

    # Search an account by id prefix and open it.
    target = first[0]
    page.goto(f"{served.url}/worklist")
    page.fill("input[name=q]", target)
    page.click("#apply")
    page.wait_for_url(re.compile(r"q="))
    assert _ids(page) == [target]
    page.click(f"#worklist a[href^='/accounts/{target}']")
    expect(page.locator("h1")).to_contain_text(target)
    expect(page.locator("svg.waterfall rect").first).to_be_visible()
    assert page.locator("#reasons li").count() >= 1

    # A note, then a promise: first an invalid one (error in place), then a valid one.
    page.fill("#form-note textarea[name=note]", "called, left a message")
    page.click("#form-note button[type=submit]")
    expect(page.locator("#events tr[data-kind=note]")).to_contain_text("left a message")
    page.fill("#form-promise input[name=amount]", "10")
    page.click("#form-promise button[type=submit]")
    expect(page.locator("#form-promise .error")).to_contain_text("promised_date")
    assert page.locator("#form-promise input[name=amount]").input_value() == "10"
    page.fill("#form-promise input[name=promised_date]", "2999-01-01")
    page.click("#form-promise button[type=submit]")
    expect(page.locator("#events tr[data-kind=promise]")).to_contain_text("2999-01-01")
    # Assigning needs a manager: the analyst is refused, in place, and nothing is recorded.
    page.fill("#form-assignment input[name=assignee]", "manager")
    page.click("#form-assignment button[type=submit]")
    expect(page.locator("#form-assignment .error")).to_contain_text("may not")
    kinds = [e["kind"] for e in api.get(f"/api/accounts/{target}/events").json()["items"]]
    assert kinds == ["promise", "note"]
    doc_screenshot(page, "account")
    page.click("nav a[href^='/runs/']")
    expect(page.locator("#drift")).to_be_visible()
    expect(page.locator("#metrics")).to_contain_text("aging_rule")  # model vs baselines
    doc_screenshot(page, "run")

    page.click("#logout")
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(f"{served.url}/worklist")
    page.wait_for_url(re.compile(r"/login$"))


def test_names_render_as_text(page: Any, served: Served) -> None:
    evil = "<script>alert(1)</script>"
    engine = served.bench.app.state.wb.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        target = conn.execute(sa.select(account_directory.c.account_id).limit(1)).scalar_one()
        conn.execute(account_directory.update()
                     .where(account_directory.c.account_id == target).values(name=evil))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(page, served, "manager")
    page.goto(f"{served.url}/worklist?q={target}")
    from playwright.sync_api import expect

    expect(page.locator(f"#worklist tr[data-account='{target}']")).to_contain_text(evil)
    assert dialogs == []
