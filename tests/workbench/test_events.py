"""Recorded outcomes: each kind's rules, append-only with corrections as new events, the
projected assignee/snooze, every write audited, and the events read back as DESIGN's
``promises`` and ``contacts`` tables on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from features.spec import ContactChannel, ContactOutcome, EventKind
from serving import store_schema
from serving.actions import ACTIONS
from serving.store import WorklistStore, current_revision, upgrade
from serving.store_events import (
    CONTACT_COLUMNS,
    PROMISE_COLUMNS,
    audit,
    events,
    read_contacts,
    read_events,
    read_promises,
)
from serving.store_migrate import alembic_config
from tests.serving.test_store import DAY, publish
from workbench.app import open_store_engine
from workbench.events import AccountFacts, EventError, record_event
from workbench.roles import Role
from workbench.users import add_user

from .conftest import PASSWORD, Bench

NOW = datetime(2024, 3, 2, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


def _users(engine: sa.Engine) -> dict[Role, object]:
    return {r: add_user(engine, username=r.value, role=r, password=PASSWORD, actor="t", now=NOW)
            for r in Role}


def test_events_round_trip_as_promises_and_contacts(url: str) -> None:
    from workbench.events import ContactIn, NoteIn, PromiseIn

    engine = open_store_engine(url)
    try:
        who = _users(engine)
        facts = AccountFacts("A1", open_balance=500.0, invoice_ids=frozenset({"I1", "I2"}))
        promise = record_event(engine, PromiseIn(kind="promise", promised_date=date(2024, 3, 20),
                                                 amount=250.0, invoice_id="I2"),
                               facts=facts, user=who[Role.ANALYST], now=NOW)
        contact = record_event(engine, ContactIn(kind="contact", channel="phone",
                                                 outcome="promised",
                                                 contact_date=date(2024, 3, 1)),
                               facts=facts, user=who[Role.MANAGER], now=NOW + timedelta(hours=1))
        record_event(engine, NoteIn(kind="note", note="called back <b>twice</b>"), facts=facts,
                     user=who[Role.ANALYST], now=NOW + timedelta(hours=2))
        with engine.connect() as conn:
            promises, contacts = read_promises(conn), read_contacts(conn)
            before = read_promises(conn, recorded_before=NOW)
            everything = read_events(conn)
    finally:
        engine.dispose()
    assert tuple(promises.columns) == PROMISE_COLUMNS
    assert tuple(contacts.columns) == CONTACT_COLUMNS
    row = promises.iloc[0]
    assert row.promise_id == f"wb-{promise.event_id}" and row.account_id == "A1"
    assert row.created_date == pd_day(TODAY) and row.promised_date == pd_day(date(2024, 3, 20))
    assert row.amount == 250.0 and row.invoice_id == "I2" and row.recorded_by == "analyst"
    assert row.recorded_at == NOW
    c = contacts.iloc[0]
    assert (c.contact_id, c.channel, c.outcome, c.recorded_by) == (
        f"wb-{contact.event_id}", ContactChannel.PHONE, ContactOutcome.PROMISED, "manager")
    assert c.contact_date == pd_day(date(2024, 3, 1))
    assert before.empty  # point in time: nothing was recorded strictly before NOW
    assert list(everything["kind"]) == ["promise", "contact", "note"]
    assert everything["note"].iloc[2] == "called back <b>twice</b>"


def pd_day(d: date) -> object:
    import pandas as pd

    return pd.Timestamp(d)


def _post(bench: Bench, role: Role, account: str, body: dict) -> object:
    return bench.client(role).post(f"/api/accounts/{account}/events", json=body)


def _first_account(bench: Bench) -> dict:
    return bench.client(Role.ANALYST).get("/api/worklist?limit=1").json()["items"][0]


def test_promise_rules(bench: Bench) -> None:
    acc = _first_account(bench)
    a, balance = acc["account_id"], acc["open_balance"]
    today = bench.clock().date()
    ok = {"kind": "promise", "promised_date": str(today + timedelta(days=10)), "amount": 100.0}
    assert _post(bench, Role.ANALYST, a, ok).status_code == 201
    for change, status, message in (
            ({"promised_date": str(today - timedelta(days=1))}, 422, "in the past"),
            ({"amount": balance + 1}, 422, "above the open balance"),
            ({"amount": 0}, 422, "greater than 0"),
            ({"amount": -5}, 422, "greater than 0"),
            ({"invoice_id": "NOT-HIS"}, 422, "not one of this account's invoices"),
            ({"colour": "red"}, 422, "Extra inputs")):
        r = _post(bench, Role.ANALYST, a, {**ok, **change})
        assert r.status_code == status and message in r.text, (change, r.text)
    # Today itself is allowed; the whole open balance too.
    assert _post(bench, Role.ANALYST, a, {**ok, "promised_date": str(today),
                                          "amount": balance}).status_code == 201


def test_corrections_are_new_events_and_the_log_is_append_only(bench: Bench) -> None:
    a = _first_account(bench)["account_id"]
    today = bench.clock().date()
    made = _post(bench, Role.ANALYST, a, {"kind": "promise", "amount": 10.0,
                                          "promised_date": str(today + timedelta(days=3))})
    pid = made.json()["event_id"]
    cancel = {"kind": "promise_cancelled", "refers_to": pid, "reason": "typo in the amount"}
    assert _post(bench, Role.ANALYST, a, cancel).status_code == 201
    again = _post(bench, Role.ANALYST, a, cancel)
    assert again.status_code == 409 and "already ended" in again.text
    other = bench.client(Role.ANALYST).get("/api/worklist?limit=2").json()["items"][1]
    assert _post(bench, Role.ANALYST, other["account_id"], cancel).status_code == 404
    listed = bench.client(Role.ANALYST).get(f"/api/accounts/{a}/events").json()["items"]
    assert [e["kind"] for e in listed] == ["promise_cancelled", "promise"]
    assert listed[0]["refers_to"] == pid and listed[1]["amount"] == 10.0
    # The API has no route that changes or deletes an event.
    for method in ("put", "patch", "delete"):
        r = getattr(bench.client(Role.ADMIN), method)(f"/api/accounts/{a}/events")
        assert r.status_code == 405


def test_disputes_contacts_notes_and_their_rules(bench: Bench) -> None:
    a = _first_account(bench)["account_id"]
    detail = bench.client(Role.ANALYST).get(f"/api/accounts/{a}").json()
    invoice = detail["open_invoices"][0]["invoice_id"]
    opened = _post(bench, Role.ANALYST, a, {"kind": "dispute_opened", "invoice_id": invoice,
                                            "reason": "goods damaged"})
    assert opened.status_code == 201
    dup = _post(bench, Role.ANALYST, a, {"kind": "dispute_opened", "invoice_id": invoice,
                                         "reason": "again"})
    assert dup.status_code == 409 and "open dispute" in dup.text
    assert _post(bench, Role.ANALYST, a, {"kind": "dispute_resolved",
                                          "refers_to": opened.json()["event_id"],
                                          "reason": "credit note"}).status_code == 201
    assert _post(bench, Role.ANALYST, a, {"kind": "dispute_opened", "invoice_id": invoice,
                                          "reason": "short delivery"}).status_code == 201
    tomorrow = str(bench.clock().date() + timedelta(days=1))
    for body, status in (({"kind": "contact", "channel": "email", "outcome": "no_answer"}, 201),
                         ({"kind": "contact", "channel": "fax", "outcome": "reached"}, 422),
                         ({"kind": "contact", "channel": "phone", "outcome": "maybe"}, 422),
                         ({"kind": "contact", "channel": "phone", "outcome": "reached",
                           "contact_date": tomorrow}, 422),
                         ({"kind": "note", "note": ""}, 422),
                         ({"kind": "note", "note": "x" * 4001}, 422),
                         ({"kind": "unknown"}, 422)):
        r = _post(bench, Role.ANALYST, a, body)
        assert r.status_code == status, (body, r.text)
    assert set(EventKind) >= {EventKind(e["kind"]) for e in
                              bench.client(Role.ANALYST).get("/api/events").json()["items"]}


def test_assignment_and_snooze_project_into_the_worklist(bench: Bench) -> None:
    a = _first_account(bench)["account_id"]
    today = bench.clock().date()
    assign = {"kind": "assignment", "assignee": "analyst"}
    refused = _post(bench, Role.ANALYST, a, assign)
    assert refused.status_code == 403 and "may not assign" in refused.text
    assert _post(bench, Role.MANAGER, a, {"kind": "assignment",
                                          "assignee": "ghost"}).status_code == 422
    assert _post(bench, Role.MANAGER, a, assign).status_code == 201
    mine = bench.client(Role.ANALYST).get("/api/worklist?assignee=analyst").json()["items"]
    assert [i["account_id"] for i in mine] == [a] and mine[0]["assignee"] == "analyst"
    unassigned = bench.client(Role.ANALYST).get("/api/worklist?assignee=&limit=500").json()
    assert a not in {i["account_id"] for i in unassigned["items"]}
    assert _post(bench, Role.ANALYST, a, {"kind": "snooze",
                                          "until": str(today)}).status_code == 422
    assert _post(bench, Role.ANALYST, a, {"kind": "unsnooze"}).status_code == 409
    until = today + timedelta(days=7)
    assert _post(bench, Role.ANALYST, a, {"kind": "snooze", "until": str(until)}).status_code == 201
    snoozed = bench.client(Role.ANALYST).get("/api/worklist?snoozed=true").json()["items"]
    assert [(i["account_id"], i["snoozed_until"]) for i in snoozed] == [(a, str(until))]
    awake = bench.client(Role.ANALYST).get("/api/worklist?snoozed=false&limit=3").json()
    assert a not in {i["account_id"] for i in awake["items"]}
    bench.clock.advance(days=8)  # the snooze ran out
    assert bench.client(Role.ANALYST).get("/api/worklist?snoozed=true").json()["items"] == []
    bench.clock.advance(days=-8)
    assert _post(bench, Role.ANALYST, a, {"kind": "unsnooze"}).status_code == 201
    assert bench.client(Role.ANALYST).get("/api/worklist?snoozed=true").json()["items"] == []


def test_analysts_record_only_on_assigned_accounts_when_the_policy_says_so(
        scored, tmp_path: Path) -> None:
    from workbench.config import AnalystScope

    from .conftest import make_bench

    bench = make_bench(scored, tmp_path / "s", analyst_scope=AnalystScope.ASSIGNED)
    try:
        a = _first_account(bench)["account_id"]
        note = {"kind": "note", "note": "left a voicemail"}
        refused = _post(bench, Role.ANALYST, a, note)
        assert refused.status_code == 403 and "assigned to them" in refused.text
        assert _post(bench, Role.MANAGER, a, note).status_code == 201
        _post(bench, Role.MANAGER, a, {"kind": "assignment", "assignee": "analyst"})
        assert _post(bench, Role.ANALYST, a, note).status_code == 201
    finally:
        bench.app.state.wb.close()


def test_every_event_is_audited_with_before_and_after(bench: Bench) -> None:
    a = _first_account(bench)["account_id"]
    _post(bench, Role.MANAGER, a, {"kind": "assignment", "assignee": "analyst"})
    made = _post(bench, Role.ANALYST, a, {"kind": "note", "note": "hello"}).json()
    trail = bench.client(Role.MANAGER).get("/api/audit").json()["items"]
    last, first = trail[0], trail[1]
    assert (last["actor"], last["action"], last["target"]) == ("analyst", "event.note",
                                                                f"account:{a}")
    assert last["after"]["event"]["event_id"] == made["event_id"]
    assert last["before"]["assignee"] == "analyst"
    assert first["before"] is None and first["after"]["state"]["assignee"] == "analyst"
    with bench.app.state.wb.engine.connect() as conn:
        n_events = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
        n_audit = conn.execute(sa.select(sa.func.count()).select_from(audit).where(
            audit.c.action.like("event.%"))).scalar()
    assert n_events == n_audit == 2
    # Analysts see only their own activity; managers everyone's; the audit is not theirs.
    assert bench.client(Role.ANALYST).get("/api/audit").status_code == 403
    assert bench.client(Role.ANALYST).get("/api/events?recorded_by=manager").status_code == 403
    mine = bench.client(Role.ANALYST).get("/api/events").json()["items"]
    assert {e["recorded_by"] for e in mine} == {"analyst"}
    everyone = bench.client(Role.MANAGER).get("/api/events").json()["items"]
    assert {e["recorded_by"] for e in everyone} == {"analyst", "manager"}


def test_a_failed_rule_writes_nothing(bench: Bench) -> None:
    engine = bench.app.state.wb.engine
    from workbench.events import PromiseIn
    from workbench.users import get_user

    with engine.connect() as conn:
        user = get_user(conn, "analyst")
    with pytest.raises(EventError):
        record_event(engine, PromiseIn(kind="promise", promised_date=date(2000, 1, 1),
                                       amount=1.0),
                     facts=AccountFacts("A1", 10.0, None), user=user, now=bench.clock())
    # An account whose only row is in a run still being written (not published) does
    # not exist for the workbench: no event on it, no account page.
    store = bench.app.state.wb.store
    running = store.begin_run(as_of=bench.clock().date(), meta={})
    with engine.begin() as conn:
        conn.execute(store_schema.worklist.insert().values(
            run_id=running, rank=1, account_id="GHOST-1", segment="preventive",
            open_balance=50.0, model="early_warning", priority=1.0, action=ACTIONS[0],
            as_of=bench.clock().date()))
    note = {"kind": "note", "note": "hello"}
    assert _post(bench, Role.ANALYST, "GHOST-1", note).status_code == 404
    assert bench.client(Role.ANALYST).get("/api/accounts/GHOST-1").status_code == 404
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(audit).where(
            audit.c.action.like("event.%"))).scalar() == 0
    store.fail_run(running, message="test")


# ------------------------------------------------------------------ the store migration
def test_upgrading_from_the_previous_revision_keeps_every_run_and_adds_the_tables(
        url: str, tmp_path: Path) -> None:
    from alembic import command

    from serving import store_io, store_totals

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_revision("0004").down_revision == "0003"
    explanations = {"explanations_dir": tmp_path / "ex"}
    with WorklistStore(url, upgrade=True, **explanations) as store:
        runs = [publish(store, 6), publish(store, 4, as_of=DAY + timedelta(days=1), seed=3)]
        before = {r.run_id: store.read_worklist(as_of=r.as_of) for r in runs}
        listed = store.list_runs()
    # The store as the release at 0003 left it: runs and rows, none of the later tables.
    engine = store_io.make_engine(store_io.normalise_url(url))
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
    finally:
        engine.dispose()
    assert current_revision(url) == "0003"
    with pytest.raises(Exception, match="delinq db upgrade"):
        WorklistStore(url, **explanations)  # a reader of this code wants the head
    assert upgrade(url) == store_schema.REVISION
    with WorklistStore(url, **explanations) as store:
        import pandas as pd

        pd.testing.assert_frame_equal(store.list_runs(), listed)
        # The hold columns (0006) did not exist at 0003: they come back empty.
        later = ["hold", "hold_date", "hold_ends"]
        for run in runs:
            got = store.read_worklist(as_of=run.as_of)
            assert got[later].isna().all().all()
            pd.testing.assert_frame_equal(got.drop(columns=later),
                                          before[run.run_id].drop(columns=later))
    # 0005 computed the runs' totals from their rows.
    engine = open_store_engine(url)
    try:
        with engine.connect() as conn:
            for run in runs:
                got = store_totals.read(conn, run_id=run.run_id)
                assert got is not None and got["accounts"] == len(before[run.run_id])
                assert got["open_balance"] == pytest.approx(
                    before[run.run_id]["open_balance"].sum())
    finally:
        engine.dispose()
    engine = open_store_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert {"users", "api_tokens", "events", "audit", "account_state",
                "account_directory"} <= names
        with engine.connect() as conn:
            assert read_promises(conn).empty and read_contacts(conn).empty
    finally:
        engine.dispose()
