"""Live performance through the steps layer and the CLI (issue 19, item 1): the shared
trained state scores an old ``as_of`` and a recent one; once the old run's labels resolved
in the book, ``delinq runs evaluate`` judges its stored worklist against the labels training
uses, stores the figures in the run's meta, logs them to MLflow and `delinq runs` shows
them; the recent run waits; a second evaluation does nothing unless ``--all``."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.live_agreement import holdout_lines, judge_agreement
from models.live_verdict import NOT_RECORDED, offline_test_rows
from models.registry_offline import offline_test_of
from pipelines import steps
from pipelines.artifacts import live_markdown
from pipelines.cli import app
from pipelines.settings import load_settings
from pipelines.steps_live import (
    NO_CONTACTS,
    evaluate_live,
    holdout_rows_path,
    served_rules,
)
from pipelines.steps_train import record_offline_tests
from serving.shadow import shadow_worklist
from serving.store import WorklistStore

OLD = date(2024, 3, 1)      # + 60 days of label horizon < the book's end (2024-07-01)
RECENT = date(2024, 6, 15)  # + 60 days > the book's end: its labels wait


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_state) -> dict:
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    for var in ("DELINQ_DATA_DIR", "DELINQ_STORE_URL", "DELINQ_DELINQUENCY_DPD"):
        monkeypatch.delenv(var, raising=False)
    # The shared state's champions score; live figures go to a store of this test's own,
    # so the shared registry stays as every other test expects it.
    live_uri = f"sqlite:///{tmp_path / 'live-mlflow.db'}"
    monkeypatch.setenv("DELINQ_EARLY_WARNING_MODEL", trained_state.names["early_warning"])
    monkeypatch.setenv("DELINQ_PERSISTENCE_MODEL", trained_state.names["persistence"])
    return {"state": tmp_path / "state", "book": tmp_path / "book", "live_uri": live_uri}


def test_a_resolved_run_is_evaluated_stored_logged_and_listed(
    env: dict, trained_state, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from features.contract.io import write_book
    from features.pit.labels import build_labels
    from models.live import headline, live_performance

    write_book(trained_state.book, env["book"])
    # staleness: a limit between the champions' ages at the old run and at the recent one
    ends = {k: date.fromisoformat(m.data_window["test_end"])
            for k, m in trained_state.models.items()}
    limit = max((OLD - e).days for e in ends.values()) + 30
    assert all((RECENT - e).days > limit for e in ends.values())
    scoring = load_settings(data_dir=env["state"], mlflow_tracking_uri=trained_state.tracking_uri,
                            stale_model_days=limit)
    ingested = steps.ingest(settings=scoring, source=env["book"])
    # the old run with a random holdout of 20%: ranked by the rule, scored by the champion
    # beside the run (shadow file, role holdout)
    old = steps.score(settings=scoring.model_copy(update={"live_holdout_share": 0.2}),
                      book=ingested.staged, as_of=OLD)
    recent = steps.score(settings=scoring, book=ingested.staged, as_of=RECENT)
    assert not [f for f in old.flags if f.startswith("stale model")]
    stale = [f for f in recent.flags if f.startswith("stale model")]
    assert stale == list(recent.flags[:2]) and all(f"stale_model_days {limit}" in f for f in stale)
    assert f"trained on data up to {ends['early_warning']}" in stale[0]
    monkeypatch.setenv("DELINQ_STALE_MODEL_DAYS", str(limit))

    monkeypatch.setenv("DELINQ_MLFLOW_TRACKING_URI", env["live_uri"])
    result = CliRunner().invoke(app, ["runs", "--state-dir", str(env["state"]), "evaluate"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"run {old.run_id} (as of {OLD})" in result.output
    assert recent.run_id not in result.output
    assert ("1 run(s) evaluated against the book up to 2024-07-01; 1 published run(s) "
            "still wait for labels") in result.output

    settings = load_settings(data_dir=env["state"])
    with WorklistStore(settings.resolved_store_url) as store:
        run = store.current_run(as_of=OLD)
        worklist = store.read_worklist(as_of=OLD)
        assert "live" not in store.current_run(as_of=RECENT).meta
    stored = run.meta["live"]
    # exactly the figures of the stored worklist against the label training uses, beside
    # the aging rule as served that night (its calibrations recorded by the scoring)
    labels = build_labels(trained_state.book, as_of=OLD, data_end=date(2024, 7, 1))
    rules = served_rules(run.meta)
    assert set(rules) == {"early_warning", "persistence"}  # the holdout resolved both
    expected = live_performance(worklist, labels, rule_calibrations=rules).to_dict()
    assert {r["rule_basis"] for r in stored["table"]} == {"served"}
    assert stored["table"] == expected["table"]
    assert stored["reliability"] == expected["reliability"]
    assert stored["counts"] == expected["counts"]
    assert stored["counts"]["resolved"] > 0.8 * stored["counts"]["worklist"]
    assert stored["counts"]["unlabelled"] == stored["counts"]["population_mismatch"] == 0
    assert (stored["as_of"], stored["data_end"], stored["label_horizon_days"]) == (
        "2024-03-01", "2024-07-01", 60)
    assert stored["contacts"] == NO_CONTACTS
    # the holdout: the champion's figures on the accounts the rule ranked for it
    shadow = pd.read_parquet(run.meta["shadow"]["path"])
    assert set(shadow["role"]) == {"holdout"} and run.meta["shadow"]["holdout_share"] == 0.2
    for kind in ("early_warning", "persistence"):
        rows = shadow_worklist(worklist, shadow, kind=kind, role="holdout")
        on_list = worklist[(worklist["model"] == kind) & (worklist["scorer"] == "aging_rule")]
        assert len(rows) == len(on_list) == run.meta["holdout"][kind] > 0
        assert stored["holdout"][kind]["table"] == live_performance(
            rows, labels, rule_calibrations=rules).to_dict()["table"]
        # the evidence rule's count of the holdout's accounts (a run judged before the
        # live check existed); this one's champion recorded no offline test rows in the
        # store the evaluation reads: its line says so instead of a verdict
        (line,) = [ln for ln in holdout_lines(stored) if ln.startswith(f"{kind} holdout: ")]
        assert "positive /" in line
        assert stored["agreement"][kind] == {"version": "1", "line": NOT_RECORDED}
        assert f"{kind} holdout: {NOT_RECORDED}" in result.output
    overall = next(r for r in stored["table"] if (r["slice"], r["population"],
                                                  r["ranked_by"]) == ("all", "all", "model"))
    # the published models rank the realized outcome (the offline test AUCs are ~0.85)
    assert overall["auc"] > 0.7 and 0 < overall["capture@10"] <= 1
    assert 0 <= overall["ece"] < 0.5

    # MLflow: one run in the live experiment, tagged with the scoring run and versions
    client = mlflow.MlflowClient(tracking_uri=env["live_uri"])
    exp = client.get_experiment_by_name("live-performance")
    (logged,) = client.search_runs([exp.experiment_id])
    assert logged.info.run_id == stored["mlflow_run_id"]
    assert logged.data.tags["delinq.run_id"] == old.run_id
    assert logged.data.tags["delinq.early_warning_version"] == "1"
    assert logged.data.metrics["all.all.model.auc"] == pytest.approx(overall["auc"])
    assert logged.data.metrics["all.all.model.capture_at_10"] == pytest.approx(
        overall["capture@10"])

    # `delinq runs` shows the figure; the recent run shows none yet
    listed = CliRunner().invoke(app, ["runs", "--state-dir", str(env["state"])])
    assert listed.exit_code == 0, listed.output
    line = next(ln for ln in listed.output.splitlines() if old.run_id in ln)
    assert headline(stored) in line and headline(stored).startswith("AUC 0.")
    recent_line = next(ln for ln in listed.output.splitlines() if recent.run_id in ln)
    assert recent_line.endswith("-")  # not evaluated yet
    ages = [f"{(RECENT - ends[k]).days}d!" for k in ("early_warning", "persistence")]
    assert "/".join(ages) in recent_line  # both stale
    assert f"{(OLD - ends['early_warning']).days}d/" in line and "!" not in line

    # evaluated once: the next call skips it; --all (redo) evaluates it again, here with
    # the champions' offline test rows recorded as training records them (the shared
    # registry: read-only for every other test, an added artifact changes none of theirs)
    again = evaluate_live(settings=settings, book=ingested.staged)
    assert again.evaluated == () and again.pending == 1
    recorded_rows = record_offline_tests(
        results=trained_state.results, tracking_uri=trained_state.tracking_uri,
        runs={k: r.run_id for k, r in trained_state.registrations.items()})
    redo = evaluate_live(settings=settings, book=ingested.staged, redo=True,
                         models_uri=trained_state.tracking_uri)
    assert [r["run_id"] for r in redo.evaluated] == [old.run_id]
    assert len(client.search_runs([exp.experiment_id])) == 2
    with WorklistStore(settings.resolved_store_url) as store:
        judged = store.current_run(as_of=OLD).meta["live"]["agreement"]
    kept = pd.read_parquet(holdout_rows_path(settings, old.run_id))
    for kind, result in trained_state.results.items():
        offline = offline_test_of(trained_state.names[kind], "1",
                                  tracking_uri=trained_state.tracking_uri)
        pd.testing.assert_frame_equal(offline, offline_test_rows(result))
        assert recorded_rows[kind] == len(offline)
        # the holdout's resolved rows, kept with the version for later runs to pool
        rows = kept[(kept["model"] == kind) & (kept["version"] == "1")]
        held = live_performance(shadow_worklist(worklist, shadow, kind=kind, role="holdout"),
                                labels, rule_calibrations=rules).to_dict()["table"]
        assert len(rows) == next(r["n_rows"] for r in held if r["population"] == kind)
        # judged by the evidence rule against that test period: on this book's holdout
        # (~40 accounts a population) too few, with the counts in the sentence
        want = judge_agreement(rows, offline, period=None, live_dates=(OLD, OLD))
        assert judged[kind]["version"] == "1" and judged[kind]["pooled"]["runs"] == 1
        assert judged[kind]["pooled"]["verdict"] == want.verdict == "too few"
        assert judged[kind]["pooled"]["line"] == (
            f"too few accounts to judge live vs offline ({want.live.positive} positive / "
            f"{want.live.negative} negative over 1 run; needs 30 each)")
        assert f"{kind} holdout: this run, champion v1: {judged[kind]['pooled']['line']}" in (
            redo.evaluated[0]["headline"])
    # the contacts seam: contacted accounts leave the untouched slice
    top = set(worklist.head(20)["account_id"])
    seamed = evaluate_live(settings=settings, book=ingested.staged, redo=True,
                           contacts=lambda run_id: top)
    assert seamed.evaluated[0]["run_id"] == old.run_id
    with WorklistStore(settings.resolved_store_url) as store:
        live = store.current_run(as_of=OLD).meta["live"]
    assert live["counts"]["contacted"] == 20 and live["contacts"] == "recorded"
    untouched = next(r for r in live["table"] if (r["slice"], r["population"],
                                                  r["ranked_by"]) == ("untouched", "all", "all"))
    everyone = next(r for r in live["table"] if (r["slice"], r["population"],
                                                 r["ranked_by"]) == ("all", "all", "all"))
    # the 20 leave it, less any of them whose label is still undecided
    assert everyone["n_rows"] - 20 <= untouched["n_rows"] < everyone["n_rows"]

    # contacts recorded in the workbench are read from the store's events by default:
    # one contact in the run's window, one before it (not counted), one promise made in it
    ids = worklist["account_id"].astype(str).tolist()
    _record(settings, ids[0], contact=OLD + timedelta(days=5))
    _record(settings, ids[1], contact=OLD - timedelta(days=3))
    _record(settings, ids[2], promise_made=OLD + timedelta(days=10))
    recorded = evaluate_live(settings=settings, book=ingested.staged, redo=True)
    assert [r["run_id"] for r in recorded.evaluated] == [old.run_id]
    with WorklistStore(settings.resolved_store_url) as store:
        live = store.current_run(as_of=OLD).meta["live"]
    assert live["counts"]["contacted"] == 2
    assert live["contacts"] == "recorded events: 2 contacts, 1 promises"

    # retention: a run's shadow file goes with its scores (`delinq runs prune`), and a
    # file whose run is gone from the store goes too; the recent run's (a copy) stays
    folder = env["state"] / "shadow"
    assert [p.stem for p in folder.glob("*.parquet")] == [old.run_id]
    shadow.head(1).to_parquet(folder / "deleted-run.parquet")
    shadow.head(1).to_parquet(folder / f"{recent.run_id}.parquet")
    kept.to_parquet(folder / "resolved" / "deleted-run.parquet")
    today = OLD + timedelta(days=settings.resolved_retain_scores_days + 1)
    assert today <= RECENT + timedelta(days=settings.resolved_retain_scores_days)
    pruned = CliRunner().invoke(app, ["runs", "--state-dir", str(env["state"]), "prune",
                                      "--today", today.isoformat()])
    assert pruned.exit_code == 0, pruned.output
    assert [p.stem for p in folder.glob("*.parquet")] == [recent.run_id]
    # a run's resolved holdout rows stay while the run does (later runs pool them)
    assert [p.stem for p in (folder / "resolved").glob("*.parquet")] == [old.run_id]


def _record(settings, account_id: str, *, contact: date | None = None,
            promise_made: date | None = None) -> None:
    """Record a contact or a promise dated ``contact`` / ``promise_made`` through the
    workbench's event API (the way analysts record them), as recorded two days later."""
    from datetime import datetime

    from serving import store_io
    from workbench.events import AccountFacts, ContactIn, PromiseIn, record_event
    from workbench.users import add_user, get_user

    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url))
    day = contact or promise_made
    assert day is not None
    now = datetime.combine(day + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    try:
        with engine.connect() as conn:
            user = get_user(conn, "ann")
        if user is None:
            user = add_user(engine, username="ann", role="analyst", password="a-long-password",
                            actor="test", now=now)
        body = (ContactIn(kind="contact", channel="phone", outcome="reached",
                          contact_date=contact) if contact else
                PromiseIn(kind="promise", promised_date=day + timedelta(days=14), amount=10.0))
        record_event(engine, body, facts=AccountFacts(account_id=account_id,
                                                      open_balance=1e9, invoice_ids=None),
                     user=user, now=now)
    finally:
        engine.dispose()


def test_the_nightly_section_lists_the_runs_evaluated() -> None:
    text = live_markdown([{"run_id": "r1", "as_of": date(2024, 3, 1),
                           "headline": "AUC 0.81 vs 0.74", "resolved": 1200, "censored": 3}],
                         data_end=date(2024, 7, 1), pending=2)
    assert "## Live performance of past runs" in text
    assert "| r1 | 2024-03-01 | AUC 0.81 vs 0.74 | 1,200 | 3 |" in text
    assert "1 run(s) newly evaluated against the book up to 2024-07-01; 2 published" in text
    empty = live_markdown([], data_end=date(2024, 7, 1), pending=0)
    assert "| run |" not in empty and "0 run(s) newly evaluated" in empty


def test_a_holdout_is_pooled_with_the_earlier_runs_of_its_champion_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import numpy as np

    from models.live_agreement import pool_runs
    from pipelines.steps_live import judge_holdouts

    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    settings = load_settings(data_dir=tmp_path / "state")
    rng = np.random.default_rng(5)

    def rows(n: int) -> pd.DataFrame:  # resolved rows of accounts a0 .. a<n-1>
        risk = rng.normal(size=n)
        return pd.DataFrame({"account_id": [f"a{i}" for i in range(n)],
                             "y": (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(float),
                             "probability": 1 / (1 + np.exp(-risk - rng.normal(size=n)))})

    offline = rows(600)
    recorded = {"1": (offline, None), "2": (None, None)}  # v2 trained before the rows were
    runs = [SimpleNamespace(run_id=f"r{k}", as_of=date(2024, 9, 2) + timedelta(days=7 * k))
            for k in range(3)]
    held = [rows(50), rows(50), rows(50)]
    earlier = [(r.run_id, r.as_of) for r in runs]
    out = [judge_holdouts(settings=settings, run=run, held={"persistence": h},
                          versions={"persistence": v}, earlier=earlier,
                          reference=lambda kind, version: recorded[version])
           for run, h, v in zip(runs, held, ("1", "2", "1"), strict=True)]
    assert out[1]["persistence"] == {"version": "2", "line": NOT_RECORDED}
    # the third run pools with the first (same version), not with the second's
    pooled = out[2]["persistence"]["pooled"]
    assert (pooled["runs"], pooled["first"], pooled["last"]) == (2, "2024-09-02", "2024-09-16")
    want = judge_agreement(pool_runs({"2024-09-02": held[0], "2024-09-16": held[2]}), offline,
                           runs=2)
    assert pooled["verdict"] == want.verdict and pooled["positive"] == want.live.positive
    assert out[2]["persistence"]["run"]["runs"] == 1
    kept = pd.read_parquet(holdout_rows_path(settings, "r1"))
    assert set(kept["version"]) == {"2"} and len(kept) == 50


def test_demotion_moves_the_champion_audits_it_and_the_rule_says_why(
    tmp_path: Path, trained_state, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``apply_demotions`` on stored run records: two runs below the rule on untouched
    accounts (``live_fallback_runs`` 2) demote the champion; the store's audit has it and
    the next scoring's aging-rule line gives the reason; `delinq model rollback` restores it."""
    import mlflow
    import pandas as pd
    import sqlalchemy as sa

    from models.registry import NoChampionError, load_champion
    from models.registry_aliases import HISTORY_TAG, record_champion
    from pipelines.steps_live import apply_demotions
    from serving.rule_scoring import resolve_scorers
    from serving.store_events import audit

    uri, name = trained_state.tracking_uri, "demote-ew"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    src = client.get_model_version(trained_state.names["early_warning"], "1")
    client.create_registered_model(name, tags={HISTORY_TAG: ""})
    client.create_model_version(name, source=src.source, run_id=src.run_id, tags=dict(src.tags))
    client.set_registered_model_alias(name, "champion", "1")
    record_champion(client, name, "1")
    settings = load_settings(data_dir=tmp_path, mlflow_tracking_uri=uri,
                             early_warning_model=name, persistence_model="never-registered",
                             live_fallback_runs=2)

    def run(k: int, auc: float) -> dict:
        table = [{"slice": "untouched", "population": "early_warning", "ranked_by": "model",
                  "auc": auc, "rule_auc": 0.75}]
        return {"run_id": f"r{k}", "as_of": date(2024, 3, 4) + timedelta(days=7 * k),
                "status": "succeeded", "is_current": True,
                "meta": {"model_versions": {"early_warning": "1"}, "live": {"table": table}}}

    runs = pd.DataFrame([run(0, 0.7), run(1, 0.8), run(2, 0.7)])
    assert apply_demotions(settings=settings, runs=runs) == []  # one run below: not yet
    runs = pd.DataFrame([run(0, 0.7), run(1, 0.8), run(2, 0.7), run(3, 0.6)])
    (change,) = apply_demotions(settings=settings, runs=runs)
    assert (change["kind"], change["from_version"], change["runs"]) == (
        "early_warning", "1", ["r3", "r2"])
    with pytest.raises(NoChampionError):
        load_champion(name, tracking_uri=uri)
    with WorklistStore(settings.resolved_store_url) as store:
        engine = sa.create_engine(settings.resolved_store_url)
        with engine.connect() as conn:
            (row,) = conn.execute(sa.select(audit).where(audit.c.action == "model.demote")).all()
        engine.dispose()
        assert store.list_runs().empty
    assert row.actor == "delinq" and row.target == f"model:{name}"
    assert row.after["reason"] == change["reason"]
    _, rules = resolve_scorers(trained_state.book, as_of=date(2024, 3, 4), tracking_uri=uri,
                               model_names={"early_warning": name})
    assert rules["early_warning"].line.startswith(
        "early_warning: no champion (early_warning champion v1 ranked untouched accounts "
        "below the aging rule in 2 consecutive resolved runs")

    # `delinq model rollback`: the demoted champion comes back, audited as the CLI's
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("DELINQ_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DELINQ_EARLY_WARNING_MODEL", name)
    monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
    result = CliRunner().invoke(app, ["model", "rollback", "early_warning", "--state-dir",
                                      str(tmp_path), "--reason", "the data issue is fixed"])
    assert result.exit_code == 0, result.output
    assert f"early_warning ({name}): champion v- -> v1" in result.output
    assert load_champion(name, tracking_uri=uri).version == "1"
    engine = sa.create_engine(settings.resolved_store_url)
    with engine.connect() as conn:
        (row,) = conn.execute(sa.select(audit).where(audit.c.action == "model.rollback")).all()
    engine.dispose()
    assert row.actor == "cli" and row.after["reason"] == "the data issue is fixed"
    again = CliRunner().invoke(app, ["model", "rollback", "early_warning", "--state-dir",
                                     str(tmp_path)])
    assert again.exit_code == 2 and "no previous champion" in again.output
