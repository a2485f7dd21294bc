"""The worklist and account pages over the session's scored store (no browser: the HTML
the server sends, checked against the API's answers)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import sqlalchemy as sa
from fastapi.testclient import TestClient

from serving import store_files
from serving import store_schema as S
from tests.workbench.conftest import PASSWORD, Bench
from workbench.roles import Role


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _signed_in(bench: Bench, role: Role = Role.ANALYST) -> TestClient:
    client = bench.client()
    form = client.get("/login")
    reply = client.post("/login", data={"username": role.value, "password": PASSWORD,
                                        "csrf_token": _csrf(form.text)})
    assert reply.status_code == 200, reply.text
    return client


def _accounts(html: str) -> list[str]:
    return re.findall(r'<tr data-account="([^"]+)"', html)


def test_worklist_pages_follow_the_api_and_keep_filters(bench: Bench) -> None:
    client = _signed_in(bench)
    api = bench.client(Role.ANALYST)
    page = client.get("/worklist")
    assert page.status_code == 200
    first = api.get("/api/worklist", params={"limit": 50}).json()
    assert _accounts(page.text) == [i["account_id"] for i in first["items"]]
    assert first["run"]["run_id"] in page.text
    nxt = re.search(r'href="([^"]+)" id="next-page"', page.text)
    assert nxt, "a 50-row page of a larger run links the next one"
    page2 = client.get(nxt.group(1).replace("&amp;", "&"))
    second = api.get("/api/worklist", params={"limit": 50,
                                              "after": first["next_cursor"]}).json()
    assert _accounts(page2.text) == [i["account_id"] for i in second["items"]]
    # Filters and sorts agree with the API; the totals count the filtered set.
    seg = first["items"][0]["segment"]
    filtered = client.get("/worklist", params={"segment": seg, "sort": "dpd"})
    want = api.get("/api/worklist", params={"segment": seg, "sort": "dpd", "limit": 50})
    assert _accounts(filtered.text) == [i["account_id"] for i in want.json()["items"]]
    n = len(api.get("/api/worklist", params={"segment": seg, "limit": 500}).json()["items"])
    match = re.search(r"<strong>([\d,]+)</strong> accounts", filtered.text)
    assert match and int(match.group(1).replace(",", "")) == n
    # Prefix search: every row starts with the prefix, and the account is found.
    acct = first["items"][3]["account_id"]
    found = _accounts(client.get("/worklist", params={"q": acct}).text)
    assert found == [acct]
    bad = client.get("/worklist", params={"segment": "nope", "sort": "x"})
    assert bad.status_code == 200 and "segment must be one of" in bad.text


def test_account_page_shows_score_waterfall_and_records_events(bench: Bench) -> None:
    client = _signed_in(bench)
    api = bench.client(Role.ANALYST)
    item = api.get("/api/worklist", params={"limit": 1}).json()["items"][0]
    acct = item["account_id"]
    page = client.get(f"/accounts/{acct}")
    assert page.status_code == 200
    assert 'class="waterfall"' in page.text and "<rect" in page.text
    assert item["action"] in page.text
    csrf = _csrf(page.text)
    # A promise above the open balance is refused in place, the typed values kept.
    too_much = str(item["open_balance"] * 10 + 100)
    bad = client.post(f"/accounts/{acct}/events", data={
        "csrf_token": csrf, "kind": "promise", "promised_date": "2999-01-01",
        "amount": too_much}, follow_redirects=False)
    assert bad.status_code in (409, 422)
    assert 'role="alert"' in bad.text and too_much in bad.text
    missing = client.post(f"/accounts/{acct}/events", data={
        "csrf_token": csrf, "kind": "note", "note": ""}, follow_redirects=False)
    assert missing.status_code == 422 and "note" in missing.text
    ok = client.post(f"/accounts/{acct}/events", data={
        "csrf_token": csrf, "kind": "note", "note": "<b>called</b>"})
    assert ok.status_code == 200 and "&lt;b&gt;called&lt;/b&gt;" in ok.text
    events = api.get(f"/api/accounts/{acct}/events").json()["items"]
    assert [e["kind"] for e in events] == ["note"]
    forged = client.post(f"/accounts/{acct}/events", data={
        "csrf_token": "x", "kind": "note", "note": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert len(api.get(f"/api/accounts/{acct}/events").json()["items"]) == 1


def test_pages_need_a_session(bench: Bench) -> None:
    token = bench.client(Role.ANALYST)
    for url in ("/worklist", "/accounts/x"):
        reply = token.get(url, follow_redirects=False)
        assert reply.status_code == 303 and reply.headers["location"] == "/login"
    assert bench.client().get("/static/htmx-2.0.11.min.js").status_code == 200
    assert bench.client().get("/static/..%2Fapp.py").status_code == 404


def test_run_pages_show_summary_and_drift(bench: Bench) -> None:
    client = _signed_in(bench, Role.MANAGER)
    api = bench.client(Role.MANAGER)
    run = api.get("/api/runs").json()[0]
    listing = client.get("/runs")
    assert listing.status_code == 200 and run["run_id"] in listing.text
    page = client.get(f"/runs/{run['run_id']}")
    assert page.status_code == 200
    drift = api.get(f"/api/runs/{run['run_id']}/drift").json()
    assert drift and drift[0]["feature"] in page.text
    rule, after = 0, None
    while True:  # every row of the run, through the API's keyset pages
        body = api.get("/api/worklist", params={"limit": 500, **(
            {"after": after} if after else {})}).json()
        rule += sum(1 for r in body["items"] if r["scorer"] == "aging_rule")
        if not (after := body["next_cursor"]):
            break
    assert re.search(rf'id="rule-rows">{rule:,} rows', page.text)
    missing = client.get("/runs/nope")
    assert missing.status_code == 404 and "no run" in missing.text


def test_an_analyst_is_refused_an_assignment_in_place(bench: Bench) -> None:
    client = _signed_in(bench, Role.ANALYST)
    acct = bench.client(Role.ANALYST).get("/api/worklist", params={"limit": 1}).json()[
        "items"][0]["account_id"]
    csrf = _csrf(client.get(f"/accounts/{acct}").text)
    reply = client.post(f"/accounts/{acct}/events", data={
        "csrf_token": csrf, "kind": "assignment", "assignee": "manager"})
    assert reply.status_code == 403 and 'role="alert"' in reply.text
    assert bench.client(Role.ANALYST).get(f"/api/accounts/{acct}/events").json()["items"] == []


def test_mine_and_snoozed_filters_follow_the_recorded_events(bench: Bench) -> None:
    manager = bench.client(Role.MANAGER)
    items = manager.get("/api/worklist", params={"limit": 3}).json()["items"]
    mine, snoozed = items[1]["account_id"], items[2]["account_id"]
    assert manager.post(f"/api/accounts/{mine}/events", json={
        "kind": "assignment", "assignee": "analyst"}).status_code == 201
    assert manager.post(f"/api/accounts/{snoozed}/events", json={
        "kind": "snooze", "until": "2999-01-01"}).status_code == 201
    client = _signed_in(bench, Role.ANALYST)
    assert _accounts(client.get("/worklist", params={"mine": "1"}).text) == [mine]
    assert _accounts(client.get("/worklist", params={"snoozed": "yes"}).text) == [snoozed]
    rest = _accounts(client.get("/worklist", params={"snoozed": "no", "sort": "balance"}).text)
    assert snoozed not in rest and len(rest) == 50
    unassigned = client.get("/worklist", params={"assignee": "-", "q": mine})
    assert _accounts(unassigned.text) == []


def test_a_run_written_in_the_wide_layout_shows_the_same_account(bench: Bench,
                                                                 tmp_path: Path) -> None:
    """A store published before the lists layout (its runs' explanation files wide, no
    layout key) serves the same account page and API answer."""
    client, api = _signed_in(bench), bench.client(Role.ANALYST)
    items = api.get("/api/worklist", params={"limit": 3}).json()["items"]
    engine = bench.app.state.wb.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        (path,) = conn.execute(sa.select(S.explanations.c.path)).scalars().all()
    assert pq.read_schema(path).metadata[store_files.FORMAT_KEY] == \
        store_files.EXPLANATIONS_FORMAT.encode()
    before = {a["account_id"]: (api.get(f"/api/accounts/{a['account_id']}").json(),
                                client.get(f"/accounts/{a['account_id']}").text)
              for a in items}
    wide = tmp_path / "wide.parquet"  # as main wrote it before (the store copy's own file)
    store_files._write(store_files.read_parquet_accounts(Path(path), None), wide, 2048)
    with engine.begin() as conn:
        conn.execute(S.explanations.update().values(path=str(wide)))
    for acct, (detail, page) in before.items():
        assert detail["explanation"]["features"]
        assert api.get(f"/api/accounts/{acct}").json() == detail
        assert client.get(f"/accounts/{acct}").text == page


def test_an_account_page_reads_the_store_on_one_connection(bench: Bench) -> None:
    client = _signed_in(bench)
    acct = bench.client(Role.ANALYST).get("/api/worklist", params={"limit": 1}).json()[
        "items"][0]["account_id"]
    engine = bench.app.state.wb.engine  # type: ignore[attr-defined]
    checkouts: list[object] = []

    def count(*args: object) -> None:
        checkouts.append(args)

    sa.event.listen(engine, "checkout", count)
    try:
        page = client.get(f"/accounts/{acct}")
        assert page.status_code == 200 and acct in page.text
        assert len(checkouts) == 1  # caller, run, row, history, events, banner: one
        checkouts.clear()
        missing = client.get("/accounts/no-such-account")
        assert missing.status_code == 404 and len(checkouts) == 1
    finally:
        sa.event.remove(engine, "checkout", count)
