"""The API over a scored store: keyset pages that add up to the run in every order and
filter, the account page consistent with the run (balance, SHAP, history), runs, and the
roles: every route refuses anonymous calls, a role without the right refuses writes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from serving.store import WorklistStore
from workbench.roles import Role

from .conftest import Bench


def _all_pages(client, query: str, limit: int) -> list[dict]:
    items, after, seen = [], None, 0
    while True:
        url = f"/api/worklist?{query}&limit={limit}" + (f"&after={after}" if after else "")
        page = client.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        after = body["next_cursor"]
        seen += 1
        if after is None:
            return items
        assert seen < 1000


@pytest.fixture
def worklist(bench: Bench) -> pd.DataFrame:
    with WorklistStore(bench.config.store_url) as store:
        return store.read_worklist()


@pytest.mark.parametrize(("sort", "key"), [("priority", None), ("probability", "probability"),
                                           ("balance", "open_balance"), ("dpd", "oldest_dpd")])
def test_keyset_pages_cover_the_run_once_in_order(bench: Bench, worklist: pd.DataFrame,
                                                  sort: str, key: str | None) -> None:
    items = _all_pages(bench.client(Role.ANALYST), f"sort={sort}", limit=37)
    ranks = [i["rank"] for i in items]
    assert sorted(ranks) == sorted(worklist["rank"]) and len(set(ranks)) == len(ranks)
    if key is None:
        assert ranks == sorted(ranks)
    else:
        expect = worklist.assign(_k=worklist[key].fillna(-math.inf)).sort_values(
            ["_k", "rank"], ascending=[False, True])
        assert ranks == list(expect["rank"])


def test_filters_select_exactly_the_matching_rows(bench: Bench, worklist: pd.DataFrame) -> None:
    client = bench.client(Role.ANALYST)
    for segment in worklist["segment"].unique():
        got = _all_pages(client, f"segment={segment}", limit=50)
        assert [i["rank"] for i in got] == list(worklist.loc[worklist.segment == segment,
                                                             "rank"])
    action = worklist["action"].iloc[0]
    got = _all_pages(client, f"action={action}&sort=balance", limit=20)
    assert {i["rank"] for i in got} == set(worklist.loc[worklist.action == action, "rank"])
    region = client.get("/api/worklist?limit=1").json()["items"][0]["region"]
    got = _all_pages(client, f"region={region}", limit=50)
    assert got and all(i["region"] == region for i in got)
    assert len(got) < len(worklist)
    nothing = client.get("/api/worklist?segment=late&region=atlantis").json()
    assert nothing["items"] == [] and nothing["next_cursor"] is None


def test_bad_requests_are_documented_errors(bench: Bench) -> None:
    client = bench.client(Role.ANALYST)
    first = client.get("/api/worklist?sort=balance&limit=2").json()["next_cursor"]
    for url, status in ((f"/api/worklist?sort=priority&after={first}", 422),
                        ("/api/worklist?after=garbage", 422),
                        ("/api/worklist?segment=vip", 422),
                        ("/api/worklist?limit=0", 422),
                        ("/api/worklist?as_of=1999-01-01", 404),
                        ("/api/accounts/NOPE", 404),
                        ("/api/runs/NOPE", 404)):
        r = client.get(url)
        assert r.status_code == status, (url, r.text)
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_account_page_agrees_with_the_run(bench: Bench, worklist: pd.DataFrame) -> None:
    client = bench.client(Role.ANALYST)
    row = worklist[worklist.segment == "delinquent"].iloc[0]
    detail = client.get(f"/api/accounts/{row.account_id}").json()
    assert detail["score"]["rank"] == row["rank"]
    assert detail["score"]["open_balance"] == pytest.approx(row.open_balance)
    # Open invoices as of the run's date add up to the run's open balance; DPD agrees.
    invoices = detail["open_invoices"]
    assert sum(i["open_amount"] for i in invoices) == pytest.approx(row.open_balance, abs=0.05)
    assert max(i["dpd"] for i in invoices) == row.oldest_dpd
    assert all(p["payment_date"] < str(detail["run"]["as_of"]) for p in detail["payments"])
    # The SHAP vector is the run's: base value plus contributions is the raw score.
    ex = detail["explanation"]
    assert ex["base_value"] + sum(f["shap"] for f in ex["features"].values()) == \
        pytest.approx(ex["raw_score"], abs=1e-6)
    assert ex["features"]["oldest_dpd"]["value"] == row.oldest_dpd
    assert detail["reasons"] and detail["reasons"][0]["text"] == row.reason_1
    assert [p["run_id"] for p in detail["score_history"]] == [row.run_id]
    assert detail["profile"]["name"]


def test_runs_summary_and_drift(bench: Bench, worklist: pd.DataFrame) -> None:
    client = bench.client(Role.ANALYST)
    runs = client.get("/api/runs").json()
    assert [r["run_id"] for r in runs] == [worklist.run_id.iloc[0]]
    summary = client.get(f"/api/runs/{runs[0]['run_id']}").json()
    assert summary["n_scored"] == len(worklist) and summary["timings"]
    drift = client.get(f"/api/runs/{runs[0]['run_id']}/drift").json()
    assert drift and {"feature", "psi", "flag"} <= set(drift[0])
    assert sum(summary["drift_flags"].values()) == sum(1 for d in drift if d["flag"])


def _routes(bench: Bench) -> list[tuple[str, str]]:
    doc = bench.client().get("/openapi.json").json()
    return [(method.upper(), path) for path, ops in doc["paths"].items() for method in ops]


def _fill(path: str) -> str:
    return (path.replace("{account_id}", "A0000001").replace("{run_id}", "R1")
            .replace("{username}", "analyst"))


def test_every_route_refuses_anonymous_calls(bench: Bench) -> None:
    routes = _routes(bench)
    assert len(routes) >= 14
    anonymous = bench.client()
    for method, path in routes:
        r = anonymous.request(method, _fill(path), json={})
        if path == "/health":
            assert r.status_code == 200
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["WWW-Authenticate"] == "Bearer"
    bad = bench.client()
    bad.headers["Authorization"] = "Bearer dlq_0123456789abcdef_forged"
    assert bad.get("/api/worklist").status_code == 401


def test_a_role_without_the_right_refuses_writes(bench: Bench) -> None:
    a = bench.client(Role.ANALYST).get("/api/worklist?limit=1").json()["items"][0]["account_id"]
    admin_only = [("POST", "/api/users", {"username": "x1", "role": "analyst"}),
                  ("PATCH", "/api/users/analyst", {"role": "admin"}),
                  ("POST", "/api/users/analyst/tokens", {"name": "t"}),
                  ("GET", "/api/users", None)]
    for role in (Role.ANALYST, Role.MANAGER):
        for method, path, body in admin_only:
            r = bench.client(role).request(method, path, json=body)
            assert r.status_code == 403, (role, method, path, r.text)
    assign = {"kind": "assignment", "assignee": "analyst"}
    assert bench.client(Role.ANALYST).post(f"/api/accounts/{a}/events",
                                           json=assign).status_code == 403
    assert bench.client(Role.ANALYST).get("/api/audit").status_code == 403
    # ... and the roles with the right may.
    assert bench.client(Role.MANAGER).post(f"/api/accounts/{a}/events",
                                           json=assign).status_code == 201
    for method, path, body in admin_only:
        assert bench.client(Role.ADMIN).request(method, path, json=body).status_code in (200,
                                                                                         201)


def test_every_response_of_every_route_is_documented(bench: Bench) -> None:
    doc = bench.client().get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if path != "/health":
                assert {"401", "422"} <= codes, (method, path, codes)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, code)


def test_worklist_bodies_are_the_documented_models_serialised(bench: Bench) -> None:
    """The worklist and totals routes serialise their bodies themselves (once): the bytes
    must be those of their response models, as FastAPI would send them."""
    from workbench.schemas import WorklistPage, WorklistTotals

    client = bench.client(Role.ANALYST)
    for url, model in (("/api/worklist?sort=dpd&limit=7", WorklistPage),
                       ("/api/worklist/totals?segment=late", WorklistTotals),
                       ("/api/worklist/totals?snoozed=false", WorklistTotals)):
        r = client.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.content == model.model_validate_json(r.content).model_dump_json().encode()
    run = client.get("/api/worklist?limit=3").json()["run"]  # the current run, as /api/runs
    summary = client.get(f"/api/runs/{run['run_id']}").json()
    assert run["is_current"] and run == {k: summary[k] for k in run}
