"""Sending: idempotent reruns, nothing retried, invalid addresses to the send log, the rate
limit, the audit trail; end to end against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from features import open_invoices
from serving.actions import AUTOMATED_REMINDER
from serving.dunning import (
    DunningConfig,
    Outbox,
    RateLimit,
    SmtpSender,
    dunning_accounts,
    read_ladder,
    read_sends,
    send_planned,
)
from serving.dunning.delivery import DeliveryError
from serving.dunning.run import final_notice_accounts, plan_run
from serving.store_events import audit
from tests.serving.dunning.test_letters import AS_OF, tiny_book

CONFIG = DunningConfig()


def _inputs(email_a: str = "ap@acme.example.com", email_b: str = "b@mueller.example.de"):
    book = tiny_book()
    acc = book.accounts.copy()
    acc["email"] = [email_a, email_b]
    inv = open_invoices(book, as_of=AS_OF)
    worklist = pd.DataFrame({"account_id": ["A", "B"], "rank": [1, 2],
                             "action": [AUTOMATED_REMINDER] * 2,
                             "open_balance": [1500.0, 1234.5],
                             "past_due_amount": [1300.0, 1234.5]})
    accounts = dunning_accounts(worklist, inv, acc, as_of=AS_OF)
    return accounts, inv


def _run(engine: sa.Engine, sender, *, as_of: date = AS_OF, config: DunningConfig = CONFIG,
         run_key: str = "run-1", stale_ladder: bool = False, **kw):
    """One send; ``stale_ladder``: plan as if nothing had been sent yet (a second run that
    read the ladder before the first recorded its letters): only the send log stops it."""
    accounts, inv = _inputs(**kw)
    with engine.connect() as conn:
        ladder = read_ladder(conn).iloc[0:0] if stale_ladder else read_ladder(conn)
    supp = pd.Series([None] * len(accounts), index=accounts.index, dtype=object)
    plan = plan_run(accounts, ladder, suppressed=supp, as_of=as_of, policy=config.policy)
    return send_planned(engine, accounts, plan, inv, as_of=as_of, config=config,
                        sender=sender, run_key=run_key)


def test_accounts_carry_credit_on_account_and_the_next_due_date() -> None:
    accounts, _ = _inputs()
    a = accounts.set_index("account_id").loc["A"]
    assert a["credit_on_account"] == 0.0 and a["days_to_next_due"] == 20.0
    book = tiny_book()
    inv = open_invoices(book, as_of=AS_OF)
    worklist = pd.DataFrame({"account_id": ["A"], "rank": [1], "action": [AUTOMATED_REMINDER],
                             "open_balance": [1350.0], "past_due_amount": [1300.0]})
    got = dunning_accounts(worklist, inv, book.accounts, as_of=AS_OF)
    assert got["credit_on_account"].iloc[0] == 150.0  # open invoices 1,500 - balance 1,350


def test_rerun_of_the_same_as_of_sends_nothing_twice(engine: sa.Engine, tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    first = _run(engine, box)
    assert first.sent_by_level == {"first_notice": 2}
    files = sorted((tmp_path / "outbox" / AS_OF.isoformat()).glob("*.eml"))
    assert len(files) == 2
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["X-Delinq-Key"].startswith(f"{AS_OF.isoformat()}-first_notice-")
    again = _run(engine, box, run_key="run-2")  # the ladder says: sent today
    assert again.sent_by_level == {} and again.log.empty
    assert set(again.plan["reason"]) == {"too_soon"}
    again = _run(engine, box, run_key="run-3", stale_ladder=True)  # the key says: sent
    assert again.sent_by_level == {}
    assert set(again.log["status"]) == {"already"}
    assert sorted((tmp_path / "outbox" / AS_OF.isoformat()).glob("*.eml")) == files
    with engine.connect() as conn:
        sends = read_sends(conn)
        ladder = read_ladder(conn)
        trail = conn.execute(sa.select(audit.c.actor, audit.c.action, audit.c.target)).all()
    assert list(sends["status"]) == ["sent", "sent"] and set(sends["run_key"]) == {"run-1"}
    assert set(ladder["level"]) == {"first_notice"}
    assert sorted(trail) == [("dunning", "dunning_sent", "account:A"),
                             ("dunning", "dunning_sent", "account:B")]


class _Broken:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: EmailMessage, *, key: str, as_of: date) -> str:
        self.calls += 1
        raise DeliveryError("SMTPServerDisconnected: Connection unexpectedly closed")


def test_a_failed_send_is_logged_and_never_retried_automatically(engine: sa.Engine,
                                                                 tmp_path: Path) -> None:
    broken = _Broken()
    result = _run(engine, broken)
    assert list(result.log["status"]) == ["failed", "failed"] and broken.calls == 2
    retry = _run(engine, Outbox(tmp_path / "outbox"), stale_ladder=True)
    assert list(retry.log["status"]) == ["already", "already"]
    with engine.connect() as conn:
        assert read_ladder(conn).empty  # nothing sent: the ladder did not move


def test_a_send_interrupted_after_sending_is_not_sent_again(engine: sa.Engine,
                                                            tmp_path: Path) -> None:
    # a crash between the 'sending' row and the 'sent' update leaves 'sending': a person
    # decides whether it left; no rerun sends it again
    from serving.dunning import tables as T

    _run(engine, Outbox(tmp_path / "a"))
    with engine.begin() as conn:
        conn.execute(T.dunning_sends.update().values(status="sending"))
    rerun = _run(engine, Outbox(tmp_path / "b"), stale_ladder=True)
    assert set(rerun.log["status"]) == {"already"} and not (tmp_path / "b").exists()


def test_invalid_email_goes_to_the_send_log_not_the_outbox(engine: sa.Engine,
                                                           tmp_path: Path) -> None:
    result = _run(engine, Outbox(tmp_path / "outbox"), email_a="ap@acme.example.com;oops")
    log = result.log.set_index("account_id")
    assert (log.loc["A", "status"], log.loc["A", "reason"]) == ("skipped", "invalid_email")
    assert log.loc["B", "status"] == "sent"
    assert result.not_sent_by_reason == {"invalid_email": 1}
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1


def test_at_most_max_per_run_letters_leave(engine: sa.Engine, tmp_path: Path) -> None:
    result = _run(engine, Outbox(tmp_path / "o"), config=DunningConfig(max_per_run=1))
    assert list(result.log["status"]) == ["sent", "deferred"]
    # the deferred letter has no send-log row: the next run plans it again
    later = _run(engine, Outbox(tmp_path / "o"), config=DunningConfig(max_per_run=1))
    assert list(later.log["status"]) == ["sent"]  # A: too soon for another letter


def test_rate_limit_spaces_sends_within_a_minute() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    rate = RateLimit(2, clock=lambda: now[0], sleep=sleep)
    for t in (0.0, 10.0, 20.0):
        now[0] = max(now[0], t)
        rate.wait()
    assert slept == [40.0]  # the third waits until the first is 60 s old


def test_final_notice_accounts_read_from_the_ladder(engine: sa.Engine) -> None:
    from datetime import UTC, datetime

    from serving.dunning import tables as T

    with engine.begin() as conn:
        conn.execute(T.dunning_ladder.insert(), [
            {"account_id": "A", "level": "final_notice", "updated_at": datetime.now(UTC)},
            {"account_id": "B", "level": "second_notice", "updated_at": datetime.now(UTC)}])
    with engine.connect() as conn:
        assert final_notice_accounts(conn) == ["A"]


# --------------------------------------------------------------------------- SMTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            received.append((envelope.rcpt_tos, msg))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login, auth_data.password) == (b"dunning", b"s3cret-pw")
        return AuthResult(success=ok)

    port = _free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port,
                                     authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def test_end_to_end_over_smtp_on_loopback(engine: sa.Engine, smtp_server) -> None:
    port, received = smtp_server
    sender = SmtpSender(host="127.0.0.1", port=port, tls="none", user="dunning",
                        password="s3cret-pw", timeout_s=10)
    result = _run(engine, sender)
    assert result.sent_by_level == {"first_notice": 2}
    assert len(received) == 2
    by_to = {tuple(rcpt): msg for rcpt, msg in received}
    msg = by_to[("ap@acme.example.com",)]
    assert msg["Subject"] == "Example Wholesale Ltd: payment reminder, account A"
    text = msg.get_body(("plain",)).get_content()
    assert "I1  due January 31, 2024  open $500.00  (40 days past due)" in text
    assert "Total due: $1,200.00" in text
    html = msg.get_body(("html",)).get_content()
    assert "Acme &lt;b&gt;Trading&lt;/b&gt;" in html and "<b>Trading" not in html
    german = by_to[("b@mueller.example.de",)].get_body(("plain",)).get_content()
    assert "1.234,50 $" in german  # German format, the book's currency (USD here)
    # a rerun sends nothing more
    assert _run(engine, sender, stale_ladder=True).sent_by_level == {}
    assert len(received) == 2


def test_an_accepted_plan_is_recorded_as_a_series_of_promises(engine: sa.Engine) -> None:
    from serving.dunning import PlanTerms, installment_plan, plan_promises, record_plan
    from serving.store_events import read_promises

    plan = installment_plan(1200.0, first_date=date(2024, 3, 26), terms=PlanTerms(3, 100.0, 30))
    ids = record_plan(engine, plan_promises("A", plan, created_date=AS_OF),
                      recorded_by="ana")
    with engine.connect() as conn:
        got = read_promises(conn)
        trail = conn.execute(sa.select(audit.c.action).where(audit.c.actor == "ana")).all()
    assert list(got["promise_id"]) == [f"wb-{i}" for i in ids]
    assert list(got["promised_date"].dt.date) == [date(2024, 3, 26), date(2024, 4, 25),
                                                  date(2024, 5, 25)]
    assert got["amount"].tolist() == [400.0, 400.0, 400.0]
    assert set(got["recorded_by"]) == {"ana"} and len(trail) == 3
