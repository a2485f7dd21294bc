"""One dunning run: plan the letters of a published worklist, render, deliver, record.

:func:`dunning_accounts` joins a run's worklist with the book (open invoices by the
features' openness rule, contact data); :func:`plan_run` decides per account
(:mod:`serving.dunning.ladder`); :func:`send_planned` renders and delivers each planned
letter with the store's send log as the idempotency record:

1. the key ``(account, letter, as_of)`` is inserted ``sending`` (or ``skipped`` with the
   ``invalid_email`` / ``no_email`` rule) in its own transaction *before* anything
   leaves; a key that already has a row is not sent again (``already``), whatever its
   status: no rerun of an ``as_of`` sends twice, and nothing is retried automatically;
2. the message leaves (outbox file or SMTP);
3. the row becomes ``sent`` and the account's ladder level moves, with an ``audit`` row,
   in one transaction; a delivery error makes it ``failed`` (redacted text).

At most ``max_per_run`` letters leave per run (the rest: ``deferred``, planned again by
the next run). Times come from ``clock`` (UTC now by default): when things were recorded,
not what the data is as of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import sqlalchemy as sa

from features.contract.contact import email_rule
from serving.dunning import tables as T
from serving.dunning.delivery import (
    DeliveryError,
    RateLimit,
    Sender,
    build_message,
    idempotency_key,
)
from serving.dunning.ladder import DunningPolicy, plan_letters
from serving.dunning.letters import (
    FINAL_NOTICE,
    Company,
    PlanTerms,
    letter_context,
    render_letter,
)
from serving.store_events import audit, events

#: The actor of dunning's audit rows.
ACTOR = "dunning"
#: Columns of a run's send log (:attr:`DunningResult.log`).
LOG_COLUMNS = ("account_id", "letter", "address", "status", "reason", "template", "where")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DunningConfig:
    """What a run needs besides its inputs (the steps map the ``dunning.*`` settings)."""

    company: Company = field(default_factory=Company)
    policy: DunningPolicy = field(default_factory=DunningPolicy)
    plan_terms: PlanTerms = field(default_factory=PlanTerms)
    templates_dir: Path | None = None
    max_per_run: int | None = None


@dataclass(frozen=True)
class DunningResult:
    """A run's outcome: the send log (:data:`LOG_COLUMNS`, one row per planned letter),
    the plan (one row per worklist account: letter or why none) and counts."""

    as_of: date
    run_key: str
    log: pd.DataFrame
    plan: pd.DataFrame

    @property
    def sent_by_level(self) -> dict[str, int]:
        sent = self.log[self.log["status"] == "sent"]
        return {str(k): int(v) for k, v in sent["letter"].value_counts().sort_index().items()}

    @property
    def not_sent_by_reason(self) -> dict[str, int]:
        """Accounts without a letter by reason (suppressions, too soon, ...) plus letters
        that did not leave, by status/reason."""
        none = self.plan[self.plan["letter"].isna()]["reason"].value_counts()
        left = self.log[self.log["status"] != "sent"]
        held = (left["reason"].fillna(left["status"])).value_counts()
        return {str(k): int(v) for k, v in pd.concat([none, held]).groupby(level=0).sum()
                .sort_index().items()}


# ----------------------------------------------------------------------- inputs


def dunning_accounts(worklist: pd.DataFrame, invoices: pd.DataFrame, accounts: pd.DataFrame,
                     *, as_of: date) -> pd.DataFrame:
    """The worklist's accounts with what the ladder and the letters read.

    ``worklist``: a run's rows (``account_id``, ``action``, ``open_balance``,
    ``past_due_amount``, ``rank``); ``invoices``: ``features.open_invoices`` at ``as_of``;
    ``accounts``: the book's accounts table. Adds ``days_to_next_due`` (earliest open
    invoice not yet due, days after ``as_of``), ``credit_on_account`` (open invoices less
    the open balance: the unapplied credit, >= 0) and the contact columns.
    """
    wl = worklist[["account_id", "rank", "action", "open_balance", "past_due_amount"]].copy()
    wl["account_id"] = wl["account_id"].astype("str")
    wl["past_due_amount"] = wl["past_due_amount"].fillna(0.0)
    inv = invoices.assign(account_id=invoices["account_id"].astype("str"))
    upcoming = inv[inv["days_past_due"] <= 0].groupby("account_id")["days_past_due"].max()
    wl["days_to_next_due"] = wl["account_id"].map(-upcoming).astype(float)
    open_sum = wl["account_id"].map(inv.groupby("account_id")["amount_open"].sum()).fillna(0.0)
    wl["credit_on_account"] = (open_sum - wl["open_balance"]).clip(lower=0.0).round(2)
    keep = [c for c in ("account_id", "name", "contact_name", "email", "language")
            if c in accounts.columns]
    acc = accounts[keep].assign(account_id=accounts["account_id"].astype("str"))
    return wl.merge(acc, on="account_id", how="left").sort_values("rank").reset_index(drop=True)


def read_ladder(conn: sa.Connection) -> pd.DataFrame:
    """The stored ladder: ``account_id``, ``level``, ``sent_as_of``, ``sent_at``."""
    t = T.dunning_ladder
    rows = conn.execute(sa.select(t.c.account_id, t.c.level, t.c.sent_as_of,
                                  t.c.sent_at)).all()
    return pd.DataFrame.from_records([tuple(r) for r in rows],
                                     columns=["account_id", "level", "sent_as_of", "sent_at"])


def read_sends(conn: sa.Connection, *, as_of: date | None = None) -> pd.DataFrame:
    """The send log (all of it, or one ``as_of``'s), in recording order."""
    t = T.dunning_sends
    query = sa.select(t).order_by(t.c.send_id)
    if as_of is not None:
        query = query.where(t.c.as_of == as_of)
    result = conn.execute(query)
    return pd.DataFrame.from_records([tuple(r) for r in result.all()],
                                     columns=list(result.keys()))


def final_notice_accounts(conn: sa.Connection) -> list[str]:
    """Ids of the accounts whose last letter is the final notice (the scorer hands them to
    a person through the policy table, ``serving.actions.RULES``); ``[]`` without any.
    ``conn``: a connection to the worklist store (``WorklistStore.read_final_notices``)."""
    t = T.dunning_ladder
    return [str(x) for x in conn.execute(
        sa.select(t.c.account_id).where(t.c.level == FINAL_NOTICE)).scalars()]


# ----------------------------------------------------------------------- the run


def plan_run(accounts: pd.DataFrame, ladder: pd.DataFrame, *, suppressed: pd.Series,
             as_of: date, policy: DunningPolicy) -> pd.DataFrame:
    """:func:`serving.dunning.ladder.plan_letters` of :func:`dunning_accounts`' rows."""
    return plan_letters(accounts, ladder, suppressed=suppressed, as_of=as_of, policy=policy)


def render_for(account: pd.Series | dict[str, Any], invoices: pd.DataFrame, *, letter: str,
               as_of: date, config: DunningConfig, currency: str | None = None) -> Any:
    """The rendered :class:`~serving.dunning.letters.Letter` ``letter`` of one account
    (``account``: a row of :func:`dunning_accounts`; ``invoices``: its open invoices)."""
    row = dict(account)
    context = letter_context(letter=letter, account=row, invoices=invoices,
                             credit_on_account=float(row.get("credit_on_account") or 0.0),
                             as_of=as_of, company=config.company, currency=currency,
                             plan_terms=config.plan_terms)
    return render_letter(context, templates_dir=config.templates_dir)


def send_planned(
    engine: sa.Engine,
    accounts: pd.DataFrame,
    plan: pd.DataFrame,
    invoices: pd.DataFrame,
    *,
    as_of: date,
    config: DunningConfig,
    sender: Sender,
    run_key: str,
    currency: str | None = None,
    rate: RateLimit | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> DunningResult:
    """Render and deliver every planned letter of ``plan`` (module docstring), record the
    sends and the ladder; the ladders of accounts marked ``clear`` are cleared."""
    by_account = invoices.assign(account_id=invoices["account_id"].astype("str")).groupby(
        "account_id")
    rows: list[dict[str, Any]] = []
    todo = plan[plan["letter"].notna()]
    acc = accounts.set_index("account_id")
    _clear_ladders(engine, plan.loc[plan["clear"], "account_id"].tolist(), as_of=as_of,
                   clock=clock)
    sent = 0
    for item in todo.itertuples(index=False):
        account = acc.loc[item.account_id]
        log = {"account_id": item.account_id, "letter": item.letter, "address": None,
               "status": None, "reason": None, "template": None, "where": None}
        rows.append(log)
        if config.max_per_run is not None and sent >= config.max_per_run:
            log.update(status="deferred", reason="rate_limit")
            continue
        addresses, rule = email_rule(account.get("email"))
        log["address"] = "; ".join(addresses) or account.get("email")
        key = idempotency_key(item.account_id, item.letter, as_of)
        status = "skipped" if rule else "sending"
        if not _claim(engine, item.account_id, item.letter, as_of, run_key=run_key,
                      status=status, address=log["address"], reason=rule, clock=clock):
            log.update(status="already", reason="sent or tried before for this as_of")
            continue
        if rule:
            log.update(status="skipped", reason=rule)
            continue
        try:
            inv = by_account.get_group(item.account_id) if item.account_id in \
                by_account.groups else invoices.iloc[0:0]
            letter = render_for(account.to_dict() | {"account_id": item.account_id}, inv,
                                letter=item.letter, as_of=as_of, config=config,
                                currency=currency)
            log["template"] = letter.template
            message = build_message(letter, sender=config.company.sender, to=addresses,
                                    key=key, account_id=item.account_id)
            if rate is not None:
                rate.wait()
            where = sender.send(message, key=key, as_of=as_of)
        except (DeliveryError, OSError, ValueError, jinja2.TemplateError) as exc:
            _finish(engine, item.account_id, item.letter, as_of, status="failed",
                    reason=str(exc)[:2000], template=log["template"], message_id=None,
                    clock=clock)
            log.update(status="failed", reason=str(exc)[:200])
            continue
        _finish(engine, item.account_id, item.letter, as_of, status="sent", reason=None,
                template=letter.template, message_id=str(message["Message-ID"]), clock=clock)
        log.update(status="sent", where=where)
        sent += 1
    log_frame = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    return DunningResult(as_of=as_of, run_key=run_key, log=log_frame, plan=plan)


def _claim(engine: sa.Engine, account_id: str, letter: str, as_of: date, *, run_key: str,
           status: str, address: str | None, reason: str | None,
           clock: Callable[[], datetime]) -> bool:
    """Insert the key's send-log row; False when the key already has one."""
    now = clock().astimezone(UTC)
    t = T.dunning_sends
    try:
        with engine.begin() as conn:
            conn.execute(t.insert().values(
                account_id=account_id, letter=letter, as_of=as_of, run_key=run_key,
                status=status, address=address, reason=reason, recorded_at=now,
                updated_at=now))
    except sa.exc.IntegrityError:
        return False
    return True


def _finish(engine: sa.Engine, account_id: str, letter: str, as_of: date, *, status: str,
            reason: str | None, template: str | None, message_id: str | None,
            clock: Callable[[], datetime]) -> None:
    """Record the send's outcome; a sent letter moves the ladder (audited), in one
    transaction."""
    now = clock().astimezone(UTC)
    t = T.dunning_sends
    key = (t.c.account_id == account_id) & (t.c.letter == letter) & (t.c.as_of == as_of)
    with engine.begin() as conn:
        conn.execute(t.update().where(key).values(status=status, reason=reason,
                                                  template=template, message_id=message_id,
                                                  updated_at=now))
        if status != "sent":
            return
        before = _ladder_row(conn, account_id)
        after = {"level": letter, "sent_as_of": as_of.isoformat()}
        _upsert_ladder(conn, account_id, level=letter, sent_as_of=as_of, sent_at=now,
                       exists=before is not None, now=now)
        conn.execute(audit.insert().values(at=now, actor=ACTOR, action="dunning_sent",
                                           target=f"account:{account_id}"[:256],
                                           before=before, after=after))


def _ladder_row(conn: sa.Connection, account_id: str) -> dict[str, Any] | None:
    lad = T.dunning_ladder
    row = conn.execute(sa.select(lad.c.level, lad.c.sent_as_of).where(
        lad.c.account_id == account_id)).first()
    if row is None:
        return None
    return {"level": row.level,
            "sent_as_of": row.sent_as_of.isoformat() if row.sent_as_of else None}


def _upsert_ladder(conn: sa.Connection, account_id: str, *, level: str | None,
                   sent_as_of: date | None, sent_at: datetime | None, exists: bool,
                   now: datetime) -> None:
    lad = T.dunning_ladder
    values = {"level": level, "updated_at": now}
    if sent_as_of is not None:
        values |= {"sent_as_of": sent_as_of, "sent_at": sent_at}
    if exists:
        conn.execute(lad.update().where(lad.c.account_id == account_id).values(**values))
    else:
        conn.execute(lad.insert().values(account_id=account_id, **values))


def _clear_ladders(engine: sa.Engine, account_ids: list[str], *, as_of: date,
                   clock: Callable[[], datetime]) -> None:
    """Nothing materially past due any more: the level is cleared (the date of the last
    letter stays, so the minimum interval still holds), audited."""
    if not account_ids:
        return
    now = clock().astimezone(UTC)
    with engine.begin() as conn:
        for account_id in account_ids:
            before = _ladder_row(conn, account_id)
            if before is None or before["level"] is None:
                continue
            _upsert_ladder(conn, account_id, level=None, sent_as_of=None, sent_at=None,
                           exists=True, now=now)
            conn.execute(audit.insert().values(
                at=now, actor=ACTOR, action="dunning_cleared",
                target=f"account:{account_id}"[:256], before=before,
                after={"level": None, "as_of": as_of.isoformat()}))


def record_plan(engine: sa.Engine, promises: pd.DataFrame, *, recorded_by: str,
                clock: Callable[[], datetime] = _utc_now) -> list[int]:
    """Record an accepted payment plan (:func:`serving.dunning.letters.plan_promises`) as
    ``promise`` events of the workbench's append-only log, one per installment, with an
    ``audit`` row each, in one transaction; returns the event ids (read back by
    ``serving.store_events.read_promises`` as ``wb-<id>``). ``created_date`` is the
    event's business date."""
    now = clock().astimezone(UTC)
    ids: list[int] = []
    with engine.begin() as conn:
        for p in promises.itertuples(index=False):
            values = {"kind": "promise", "account_id": str(p.account_id), "recorded_at": now,
                      "recorded_by": recorded_by,
                      "event_date": pd.Timestamp(p.created_date).date(),
                      "promised_date": pd.Timestamp(p.promised_date).date(),
                      "amount": float(p.amount), "note": f"payment plan {p.promise_id}"}
            event_id = conn.execute(events.insert().values(**values)).inserted_primary_key[0]
            ids.append(int(event_id))
            conn.execute(audit.insert().values(
                at=now, actor=recorded_by, action="event.promise",
                target=f"account:{p.account_id}"[:256], before=None,
                after={"event_id": int(event_id), "promised_date": values[
                    "promised_date"].isoformat(), "amount": values["amount"]}))
    return ids
