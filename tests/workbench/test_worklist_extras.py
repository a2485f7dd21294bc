"""Worklist totals (precomputed at publish time, equal to the rows' sums), the name-prefix
search, one index per sort key, the audit page, the banner of a failed latest run and the
run page's model-vs-baselines metrics, over the session's scored store."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from serving import store_rows
from serving.store_events import account_directory
from tests.factories import TrainedState
from tests.workbench.conftest import Bench, Scored, make_bench
from tests.workbench.test_pages import _accounts, _signed_in
from workbench import queries
from workbench.roles import Role
from workbench.schemas import Sort


def _rows(bench: Bench) -> pd.DataFrame:
    wb = bench.app.state.wb  # type: ignore[attr-defined]
    rows = wb.store.read_worklist()
    with wb.engine.connect() as conn:
        names = pd.DataFrame(conn.execute(sa.select(account_directory)).all(),
                             columns=["account_id", "name", "region"])
    return rows.merge(names, on="account_id", how="left")


def test_totals_are_the_sums_of_the_filtered_rows(bench: Bench) -> None:
    api = bench.client(Role.ANALYST)
    rows = _rows(bench)
    seg, region = rows["segment"].iloc[0], rows["region"].dropna().iloc[0]
    cases = [({}, rows), ({"segment": seg}, rows[rows["segment"] == seg]),
             ({"segment": seg, "region": region},
              rows[(rows["segment"] == seg) & (rows["region"] == region)]),
             ({"action": "no such action"}, rows.iloc[:0])]
    for params, want in cases:
        got = api.get("/api/worklist/totals", params=params).json()
        assert got["accounts"] == len(want), params
        assert got["open_balance"] == pytest.approx(want["open_balance"].sum())
        assert got["at_risk"] == pytest.approx(want["priority"].sum())
        dpd = want["oldest_dpd"]
        assert got["aging"] == {"1-30": int(dpd.between(1, 30).sum()),
                                "31-60": int(dpd.between(31, 60).sum()),
                                "61-90": int(dpd.between(61, 90).sum()),
                                "91+": int((dpd >= 91).sum())}
        assert got["aging_balance"]["91+"] == pytest.approx(
            want.loc[dpd >= 91, "open_balance"].sum())
    # A live filter (snoozed) sums the rows: same figures when nothing is snoozed.
    live = api.get("/api/worklist/totals", params={"segment": seg, "snoozed": False}).json()
    assert live["accounts"] == len(cases[1][1])


def test_search_by_name_prefix_in_any_case_or_by_id_prefix(bench: Bench) -> None:
    api = bench.client(Role.ANALYST)
    rows = _rows(bench).dropna(subset=["name"])
    name = rows["name"].iloc[5]
    prefix = name[:-1].upper()
    want = set(rows.loc[rows["name"].str.lower().str.startswith(prefix.lower()), "account_id"])
    got = api.get("/api/worklist", params={"q": prefix, "limit": 500}).json()["items"]
    assert {i["account_id"] for i in got} == want and rows["account_id"].iloc[5] in want
    account = rows["account_id"].iloc[7]
    got = api.get("/api/worklist", params={"q": account}).json()["items"]
    assert [i["account_id"] for i in got] == [account]
    # Wildcards are text, not patterns: nothing starts with them.
    assert api.get("/api/worklist", params={"q": "%"}).json()["items"] == []
    page = _signed_in(bench).get("/worklist", params={"q": name.lower()})
    assert rows["account_id"].iloc[5] in _accounts(page.text)


def test_every_sort_reads_its_own_index(bench: Bench) -> None:
    wb = bench.app.state.wb  # type: ignore[attr-defined]
    run = wb.store.current_run()
    rare = queries.Filters(segment="late", action="personal follow-up", region="emea")
    for sort, filters in [(s, f) for s in (Sort.PROBABILITY, Sort.BALANCE, Sort.DPD)
                          for f in (queries.Filters(), rare)]:
        # A rare filter too (0008): its sort index, its filters tested on the index entry.
        query = queries.page_query(run_id=run.run_id, filters=filters, sort=sort,
                                   after=queries.encode_cursor(sort, 0.5, 3), limit=50,
                                   today=run.as_of)
        plan = _plan(wb.engine, query, run_id=run.run_id)
        # Read from the run's rows file (a SQLite file store since 0010), attached.
        assert plan.startswith("SEARCH run_rows_"), plan
        assert f"ix_worklist_{sort.value}" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # read in the index's order, never sorted
        # The page after a cursor starts at the cursor's key (a seek bounded by it), not
        # at the run's first entry (a page at depth d would walk d entries). Planned with
        # the values bound, as the workbench runs it: SQLite derives that bound from
        # literal values by itself, not from parameters.
        plan = _plan(wb.engine, query, bound=True, run_id=run.run_id)
        # (The file's indexes lead with run_id as the store's do, so this plan is the same.)
        assert re.search(rf"ix_worklist_{sort.value} \(run_id=\? AND \S+<\?\)", plan), plan
    # Rank's order (by priority, and the top rows) is the range of the run's primary key
    # (in a run's file, the index of that key): read in order, never sorted.
    for filters in (queries.Filters(), rare):
        for after in (None, queries.encode_cursor(Sort.PRIORITY, None, 3)):
            query = queries.page_query(run_id=run.run_id, filters=filters, sort=Sort.PRIORITY,
                                       after=after, limit=50, today=run.as_of)
            plan = _plan(wb.engine, query, bound=True, run_id=run.run_id)
            assert plan.startswith("SEARCH run_rows_"), plan
            assert "TEMP B-TREE" not in plan, plan
    # A narrow search reads its few accounts through the account index (run_id,
    # account_id), each looked up or one range of it, never the whole run: a search by id
    # or name (its OR), by name, by id.
    some_id = wb.store.read_worklist(as_of=run.as_of, top=1)["account_id"].iloc[0]
    for search in (queries.Filters(search="customer 00"),
                   queries.Filters(name_prefix="customer 00"),
                   queries.Filters(account_prefix=some_id[:-1])):
        with wb.engine.connect() as conn:
            assert queries.narrow_search(conn, run_id=run.run_id, filters=search)
        query = queries.page_query(run_id=run.run_id, filters=search, sort=Sort.DPD,
                                   after=None, limit=50, today=run.as_of, narrow=True)
        plan = _plan(wb.engine, query, run_id=run.run_id)
        assert re.search(r"worklist USING (COVERING )?INDEX ix_worklist_account "
                         r"\(run_id=\? AND account_id", plan), plan
        assert "SCAN worklist" not in plan and "ix_worklist_dpd" not in plan, plan
    # An account's rows across runs: the published runs from their partial index, then
    # each run's entry of the history's key (0010; keyed by run first as the account
    # index since 0009).
    history = queries._SCORE_HISTORY.params(account_id=some_id, limit=400)
    plan = _plan(wb.engine, history)
    assert "SCAN runs USING INDEX ux_runs_current_as_of" in plan, plan
    assert ("SEARCH worklist_history USING PRIMARY KEY (run_id=? AND account_id=?)"
            in plan), plan
    assert "SCAN worklist" not in plan, plan


def _plan(engine: sa.Engine, query: sa.Select, *, bound: bool = False,
          run_id: str | None = None) -> str:
    """SQLite's query plan of ``query`` (its values inlined, or ``bound`` as parameters),
    steps joined by " | "; a statement on one run's rows planned where ``run_id``'s rows
    are, as the workbench runs it (:func:`serving.store_rows.run_rows`)."""
    with engine.connect() as conn:
        if run_id is not None:
            conn = store_rows.run_rows(conn, run_id)
        translate = conn.get_execution_options().get("schema_translate_map")
        kw: dict = {"schema_translate_map": translate,
                    "render_schema_translate": translate is not None}
        if bound:
            compiled = query.compile(engine, **kw)
            sql = str(compiled)
            params = tuple(compiled.params[name] for name in compiled.positiontup or [])
        else:
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}, **kw))
            params = ()
        return " | ".join(str(r[-1]) for r in
                          conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all())


def test_audit_page_for_managers_only(bench: Bench) -> None:
    api = bench.client(Role.MANAGER)
    account = api.get("/api/worklist").json()["items"][0]["account_id"]
    api.post(f"/api/accounts/{account}/events",
             json={"kind": "note", "note": "<script>alert(1)</script>"})
    page = _signed_in(bench, Role.MANAGER).get("/audit")
    assert page.status_code == 200 and "event.note" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert 'href="/audit"' in page.text
    refused = _signed_in(bench, Role.ANALYST).get("/audit")
    assert refused.status_code == 403 and 'href="/audit"' not in refused.text


def test_a_failed_latest_run_shows_a_banner_with_its_reason_and_as_of(bench: Bench) -> None:
    wb = bench.app.state.wb  # type: ignore[attr-defined]
    client = _signed_in(bench)
    assert 'id="nightly-banner"' not in client.get("/worklist").text
    day = wb.store.current_run().as_of + timedelta(days=1)
    run_id = wb.store.begin_run(as_of=day, meta={})
    wb.store.fail_run(run_id, message="NotEnoughDiskError: <b>12 MB</b> free")
    page = client.get("/worklist").text
    banner = re.search(r'<p class="banner"[^>]*id="nightly-banner">(.*?)</p>', page, re.S)
    assert banner, page
    assert str(day) in banner.group(1) and "failed" in banner.group(1)
    assert "&lt;b&gt;12 MB&lt;/b&gt; free" in banner.group(1)
    assert 'id="nightly-banner"' in client.get("/runs").text
    # A nightly stopped before it started says so.
    wb.store.record_blocked(as_of=day + timedelta(days=1), reason="12 MB free, needs 1,024")
    page = client.get("/worklist").text
    assert "was blocked: 12 MB free, needs 1,024" in page and str(day + timedelta(days=1)) in page


def test_run_page_shows_the_model_beside_the_baselines(
        scored: Scored, trained_state: TrainedState, tmp_path: Path) -> None:
    bench = make_bench(scored, tmp_path / "state", tracking_uri=trained_state.tracking_uri,
                       registered_names=trained_state.names)
    try:
        wb = bench.app.state.wb  # type: ignore[attr-defined]
        run = wb.store.current_run()
        page = _signed_in(bench).get(f"/runs/{run.run_id}").text
        section = re.search(r'<section id="metrics">(.*?)</section>', page, re.S)
        assert section, "no metrics section"
        results = trained_state.results
        for model, result in results.items():
            version = getattr(run, f"{model}_version")
            if version in (None, "aging_rule"):
                continue
            assert f"{model} version {version}" in section.group(1)
            for scorer in result.metrics.index:
                assert f"<th>{scorer}</th>" in section.group(1)
            auc = result.metrics.iloc[0].iloc[0]
            assert f"{auc:.4g}" in section.group(1)
    finally:
        wb.close()
