"""The run page's live performance (issue 19): "not resolved yet" with the day the labels
resolve, then, once the run's ``meta["live"]`` is stored (as ``pipelines.steps_live``
stores it), the published ranking beside the aging rule per population, slice of accounts
and customer slice, flagged where the model is below the rule."""

from __future__ import annotations

import re
from datetime import date, timedelta

from features.pit.labels import build_labels
from models.live import live_performance, live_slices
from models.live_verdict import judge_holdout, offline_test_rows, verdict_text
from pipelines.steps_live import account_slices
from serving.store import WorklistStore
from tests.workbench.conftest import Bench
from tests.workbench.test_pages import _signed_in
from workbench.roles import Role

DATA_END = date(2024, 7, 1)  # the day after the shared book's last event


def _cells(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1])]


def test_the_run_page_shows_live_performance_once_resolved(bench: Bench, trained_state) -> None:
    client = _signed_in(bench, Role.MANAGER)
    run = bench.client(Role.MANAGER).get("/api/runs").json()[0]
    as_of = date.fromisoformat(run["as_of"])
    page = client.get(f"/runs/{run['run_id']}").text
    due = as_of + timedelta(days=bench.config.label_horizon_days)
    assert f"Not resolved yet (resolves on {due.isoformat()})" in page
    assert 'id="live-table"' not in page

    with WorklistStore(bench.config.store_url) as store:
        wl = store.read_worklist(as_of=as_of)
        labels = build_labels(trained_state.book, as_of=as_of, data_end=DATA_END)
        top = set(wl.nsmallest(len(wl) // 10, "rank")["account_id"])
        live = live_performance(wl, labels, contacted=top).to_dict()
        slices = live_slices(wl, labels, account_slices(trained_state.book), as_of=as_of,
                             contacted=top)
        # one figure forced below the rule, so a flag must show whatever the data say
        forced = next(r for r in live["table"] if (r["slice"], r["population"],
                      r["ranked_by"]) == ("untouched", "persistence", "model"))
        forced["auc"] = forced["rule_auc"] - 0.05
        slices["early_warning"][0] |= {"auc": 0.4, "rule_auc": 0.6, "below_rule": True}
        # a random holdout of 45 accounts, 10 of them negative: below the evidence rule
        held = {**forced, "slice": "all", "n_rows": 45, "n_positive": 35}
        store.set_run_meta(run["run_id"], "live", {**live, "slices": slices,
                                                   "holdout": {"persistence": {
                                                       "version": "1", "table": [held]}},
                                                   "data_end": DATA_END.isoformat(),
                                                   "contacts": "recorded events: test"})
    page = client.get(f"/runs/{run['run_id']}").text
    assert "Not resolved yet" not in page and "Labels as of 2024-07-01" in page
    rows = _cells(page, "live-table")
    shown = {(r[0], r[1].split(" (")[0]): r for r in rows}
    for pop in ("early_warning", "persistence", "all"):
        for slc, label in (("all", "all accounts"), ("untouched", "untouched")):
            want = next(r for r in live["table"] if (r["slice"], r["population"],
                        r["ranked_by"]) == (slc, pop, "model"))
            cells = shown[(pop, label)]
            assert cells[2] == f"{want['n_rows']:,}" and cells[4] == f"{want['auc']:.3f}"
            assert cells[5] == f"{want['rule_auc']:.3f}"
            assert cells[6] == f"{want['capture@10']:.3f}"
            # flagged exactly where the model's AUC is below the rule's
            assert ("below the rule" in cells[-1]) == (want["auc"] < want["rule_auc"])
    assert "below the rule" in shown[("persistence", "untouched")][-1]
    # the holdout's row says the evidence rule's count; the rule is stated under the table
    assert ("too few to judge live vs offline (35 positive / 10 negative accounts; needs 30 "
            "each)") in shown[("persistence", "random holdout")][1]
    assert 'id="live-evidence-rule"' in page and "at least 30 positive and 30 negative" in page
    # judged by the evaluation (``meta["live"]["agreement"]``): the row says the verdict,
    # live first, pooled over the version's runs and this run alone
    offline = offline_test_rows(trained_state.results["persistence"])
    weeks = {"2024-03-04": offline.head(len(offline) // 2),
             "2024-03-11": offline.tail(len(offline) // 2)}
    judged = {"version": "1", **judge_holdout(weeks, offline)}
    with WorklistStore(bench.config.store_url) as store:
        stored = store.current_run(as_of=as_of).meta["live"]
        store.set_run_meta(run["run_id"], "live", {**stored,
                                                   "agreement": {"persistence": judged}})
    page = client.get(f"/runs/{run['run_id']}").text
    said = {(r[0], r[1].split(" (")[0]): r for r in _cells(page, "live-table")}[
        ("persistence", "random holdout")][1]
    assert verdict_text(judged).startswith("pooled over 2 runs 2024-03-04 .. 2024-03-11 of "
                                           "champion v1: ")
    assert verdict_text(judged) in said and "live AUC " in said and ": agrees (" in said
    # no served calibration recorded for these figures: the rule's key, said so
    assert "(rule's key)" in shown[("persistence", "untouched")][1]
    for pop, table in slices.items():
        cells = _cells(page, f"live-slices-{pop}")
        assert [(c[0], c[1]) for c in cells] == [(r["dimension"], r["value"]) for r in table]
        assert [("below the rule" in c[-1]) for c in cells] == [r["below_rule"] for r in table]
        assert {c[0] for c in cells} == {"segment", "region", "size", "tenure"}
    assert "below the rule" in _cells(page, "live-slices-early_warning")[0][-1]
