"""The dunning step (issue 22): after a published run, render and send the day's letters.

Shared by the nightly flow (``pipelines.flows``, after publishing and retention) and the
CLI (``delinq dunning preview|run``). The library is :mod:`serving.dunning`; here the
``dunning.*`` settings become its arguments, and its inputs are read: the published run's
worklist, the staged book, and what suppresses a letter.

**Where suppression reads from** (:func:`suppression_inputs`, the one seam): open promises
are the collections loop's promise state (``features.pit.promises.promise_state``: the
book's own promises plus those recorded in the workbench, ``serving.loop_events``; a
cancelled, kept or broken promise is not open), snoozes from ``account_state``, the
disputed past-due amount from the book's disputes (``features.open_invoices``'
``disputed``). It returns plain frames for :func:`serving.dunning.suppression_reasons`.

Dunning runs only after a **published** run for ``as_of`` that passed the plausibility
checks (no accepted anomalies): letters quote its numbers. No Prefect, no "now" (the
flows pass ``as_of``; send times come from the library's clock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.progress import progress
from pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from features.contract.book import Book
    from serving.dunning import DunningConfig
    from serving.dunning.delivery import Sender


@dataclass(frozen=True)
class DunningSummary:
    """A dunning run: whether it ran (``message`` says why not), letters sent per level,
    accounts or letters not sent per reason, where the send log and the outbox are."""

    as_of: date
    ran: bool
    message: str
    sent_by_level: dict[str, int] = field(default_factory=dict)
    not_sent_by_reason: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None
    outbox: Path | None = None
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as printed lines (CLI, demo, the nightly's artifact)."""
        if not self.ran:
            return [f"dunning: {self.message}"]
        sent = ", ".join(f"{k} {v}" for k, v in self.sent_by_level.items()) or "none"
        held = ", ".join(f"{k} {v}" for k, v in self.not_sent_by_reason.items()) or "none"
        out = [f"dunning as of {self.as_of.isoformat()}: letters sent per level: {sent} "
               f"({self.seconds:.1f} s)",
               f"  not sent (per reason): {held}"]
        if self.outbox is not None:
            out.append(f"  outbox: {self.outbox / self.as_of.isoformat()}")
        if self.log_path is not None:
            out.append(f"  send log: {self.log_path}")
        return out

    def markdown(self) -> str:
        """The nightly artifact's section: letters sent per level, not sent per reason."""
        if not self.ran:
            return f"\n\n## Dunning\n\n{self.message}\n"
        rows = ["| letter | sent |", "|---|---:|"]
        rows += [f"| {k} | {v} |" for k, v in self.sent_by_level.items()] or ["| none | 0 |"]
        held = ["| reason | accounts or letters |", "|---|---:|"]
        held += [f"| {k} | {v} |" for k, v in self.not_sent_by_reason.items()]
        return (f"\n\n## Dunning as of {self.as_of.isoformat()}\n\n" + "\n".join(rows)
                + "\n\nNot sent, per reason:\n\n" + "\n".join(held) + "\n")


# --------------------------------------------------------------------------- settings maps


def outbox_dir(settings: Settings) -> Path:
    """The outbox folder (``dunning.outbox_dir``, default ``<data_dir>/dunning/outbox``)."""
    return Path(settings.dunning.outbox_dir or Path(settings.data_dir) / "dunning" / "outbox")


def log_dir(settings: Settings) -> Path:
    """Where each run's send log (CSV) goes: ``<data_dir>/dunning/logs``."""
    return Path(settings.data_dir) / "dunning" / "logs"


def dunning_config(settings: Settings) -> DunningConfig:
    """``serving.dunning.DunningConfig`` from the ``dunning`` and ``materiality`` settings."""
    from pipelines.steps import materiality
    from serving.dunning import Company, DunningConfig, DunningPolicy, PlanTerms

    d = settings.dunning
    return DunningConfig(
        company=Company(name=d.company_name, payment_link=d.payment_link, sender=d.sender,
                        currency=d.currency),
        policy=DunningPolicy(min_days_between=d.min_days_between, pre_due_days=d.pre_due_days,
                             materiality=materiality(settings)),
        plan_terms=PlanTerms(installments=d.plan_installments, min_amount=d.plan_min_amount,
                             interval_days=d.plan_interval_days),
        templates_dir=d.templates_dir, max_per_run=d.max_per_run)


def sender_of(settings: Settings) -> Sender:
    """The outbox, or the SMTP server of the settings (its password read here only)."""
    from serving.dunning import Outbox, SmtpSender

    d = settings.dunning
    if d.delivery == "outbox":
        return Outbox(outbox_dir(settings))
    if not d.smtp_host:
        from features.contract.rules import DataContractError

        raise DataContractError("settings", "dunning.smtp_host", "missing_value",
                                "dunning.delivery is smtp but no smtp_host is set")
    password = d.smtp_password.get_secret_value() if d.smtp_password else None
    return SmtpSender(host=d.smtp_host, port=d.smtp_port, tls=d.smtp_tls, user=d.smtp_user,
                      password=password)


# --------------------------------------------------------------------------- inputs


def open_promises(conn: sa.Connection, book: Book, *, as_of: date,
                  grace_days: int) -> pd.DataFrame:
    """``account_id``, ``promised_date`` of the promises open at ``as_of``: the promise
    state (``features.pit.promises.promise_state``, ``grace_days`` after the promised
    date) of the book's promises and the workbench's, recorded strictly before ``as_of``
    (whether one is due is :func:`serving.dunning.suppression_reasons`')."""
    from features.pit.promises import promise_state
    from serving.loop_events import book_with_events, read_loop_events

    full = book_with_events(book, read_loop_events(conn, as_of=as_of))
    states = promise_state(full, as_of=as_of, grace_days=grace_days)
    return states.loc[states["state"] == "open", ["account_id", "promised_date"]]


def snoozes(conn: sa.Connection) -> pd.DataFrame:
    """``account_id``, ``snoozed_until`` of the accounts an analyst snoozed."""
    import pandas as pd
    import sqlalchemy as sa

    from serving.store_events import account_state

    rows = conn.execute(sa.select(account_state.c.account_id, account_state.c.snoozed_until)
                        .where(account_state.c.snoozed_until.is_not(None))).all()
    return pd.DataFrame.from_records([tuple(r) for r in rows],
                                     columns=["account_id", "snoozed_until"])


def disputed_past_due(invoices: pd.DataFrame) -> pd.DataFrame:
    """``account_id``, ``disputed_amount``: past-due open amount under an open dispute
    (rows of ``features.open_invoices``)."""
    rows = invoices[invoices["disputed"].astype(bool) & (invoices["days_past_due"] > 0)]
    out = rows.groupby("account_id", as_index=False)["amount_open"].sum()
    return out.rename(columns={"amount_open": "disputed_amount"})


def suppression_inputs(conn: sa.Connection, invoices: pd.DataFrame, book: Book, *,
                       as_of: date, grace_days: int) -> dict[str, pd.DataFrame]:
    """The frames :func:`serving.dunning.suppression_reasons` takes (module docstring)."""
    return {"open_promises": open_promises(conn, book, as_of=as_of, grace_days=grace_days),
            "snoozes": snoozes(conn),
            "disputes": disputed_past_due(invoices)}


def book_currency(book: Book) -> str | None:
    """The invoices' currency (one per book), or None when they carry none."""
    found = book.invoices["currency"].dropna()
    return str(found.iloc[0]) if len(found) else None


def _published(settings: Settings, as_of: date) -> tuple[Any, str | None]:
    """The published run for ``as_of`` and why dunning may not follow it (None: it may)."""
    from serving.store import WorklistStore

    with WorklistStore(settings.resolved_store_url, upgrade=True) as store:
        run = store.current_run(as_of=as_of)
    if run is None or run.status != "succeeded":
        return None, f"no published run as of {as_of.isoformat()}: nothing sent"
    if (run.meta or {}).get("accepted_anomalies"):
        return run, (f"run {run.run_id} was published despite a failed plausibility check "
                     "(accepted anomaly): nothing sent")
    return run, None


# --------------------------------------------------------------------------- steps


def run_dunning(*, settings: Settings, book: Path, as_of: date,
                book_frame: Book | None = None) -> DunningSummary:
    """Send the day's letters for the published run as of ``as_of`` (module docstring):
    behind ``dunning.enabled``; the send log goes to the store and to
    ``<data_dir>/dunning/logs/<as_of>_<run>.csv``."""
    import pandas as pd

    from features import open_invoices
    from pipelines.steps import read_book
    from serving import store_io
    from serving.dunning import (
        RateLimit,
        dunning_accounts,
        read_ladder,
        send_planned,
        suppression_reasons,
    )
    from serving.dunning.run import plan_run
    from serving.store import WorklistStore

    t0 = time.perf_counter()
    if not settings.dunning.enabled:
        return DunningSummary(as_of=as_of, ran=False,
                              message="off (set dunning.enabled to send reminders)")
    run, refused = _published(settings, as_of)
    if refused:
        progress(f"dunning: {refused}")
        return DunningSummary(as_of=as_of, ran=False, message=refused)
    progress(f"dunning as of {as_of.isoformat()} (after run {run.run_id})")
    staged = book_frame if book_frame is not None else read_book(book)
    with WorklistStore(settings.resolved_store_url) as store:
        worklist = store.read_worklist(as_of=as_of)
    ids = worklist["account_id"].astype("str").tolist()
    invoices = open_invoices(staged, as_of=as_of, accounts=ids)
    accounts = dunning_accounts(worklist, invoices, staged.accounts, as_of=as_of)
    config = dunning_config(settings)
    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url))
    try:
        with engine.connect() as conn:
            inputs = suppression_inputs(conn, invoices, staged, as_of=as_of,
                                        grace_days=settings.promise_grace_days)
            ladder = read_ladder(conn)
        suppressed = suppression_reasons(accounts, as_of=as_of,
                                         materiality=config.policy.materiality, **inputs)
        plan = plan_run(accounts, ladder, suppressed=suppressed, as_of=as_of,
                        policy=config.policy)
        smtp = settings.dunning.delivery == "smtp"
        result = send_planned(
            engine, accounts, plan, invoices, as_of=as_of, config=config,
            sender=sender_of(settings), run_key=run.run_id, currency=book_currency(staged),
            rate=RateLimit(settings.dunning.rate_per_minute or None) if smtp else None)
    finally:
        engine.dispose()
    path = log_dir(settings) / f"{as_of.isoformat()}_{run.run_id}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(result.log).to_csv(path, index=False)
    summary = DunningSummary(
        as_of=as_of, ran=True, message="sent", sent_by_level=result.sent_by_level,
        not_sent_by_reason=result.not_sent_by_reason, log_path=path,
        outbox=outbox_dir(settings) if settings.dunning.delivery == "outbox" else None,
        seconds=time.perf_counter() - t0)
    for line in summary.lines():
        progress(f"  {line}")
    return summary


def preview(*, settings: Settings, book: Path, account_id: str, as_of: date | None = None,
            letter: str | None = None) -> str:
    """What would be sent to ``account_id`` as of ``as_of`` (default: the latest published
    run): the plan's decision and the rendered letter (``letter`` forces one, e.g.
    ``payment_plan``). Sends and records nothing."""
    from features import open_invoices
    from pipelines.steps import read_book
    from serving import store_io
    from serving.dunning import dunning_accounts, read_ladder, render_for, suppression_reasons
    from serving.dunning.run import plan_run
    from serving.store import WorklistStore

    with WorklistStore(settings.resolved_store_url, read_only=True) as store:
        run = store.current_run(as_of=as_of)
        if run is None:
            raise LookupError("no published run" + (f" as of {as_of}" if as_of else ""))
        worklist = store.read_worklist(as_of=run.as_of)
    day = run.as_of
    row = worklist[worklist["account_id"].astype("str") == account_id]
    if row.empty:
        raise LookupError(f"account {account_id!r} is not in the worklist as of {day}")
    staged = read_book(book)
    invoices = open_invoices(staged, as_of=day, accounts=[account_id])
    accounts = dunning_accounts(row, invoices, staged.accounts, as_of=day)
    config = dunning_config(settings)
    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url),
                                  read_only=True)
    try:
        with engine.connect() as conn:
            inputs = suppression_inputs(conn, invoices, staged, as_of=day,
                                        grace_days=settings.promise_grace_days)
            ladder = read_ladder(conn)
    finally:
        engine.dispose()
    suppressed = suppression_reasons(accounts, as_of=day,
                                     materiality=config.policy.materiality, **inputs)
    plan = plan_run(accounts, ladder, suppressed=suppressed, as_of=day, policy=config.policy)
    decision = plan.iloc[0]
    chosen = letter or decision["letter"]
    head = [f"account {account_id} as of {day.isoformat()}: action {row['action'].iloc[0]!r}, "
            f"level last sent {decision['level'] or 'none'}; "
            + (f"would send {decision['letter']}" if decision["letter"] else
               f"no letter ({decision['reason']})")]
    if not chosen:
        return "\n".join(head)
    rendered = render_for(accounts.iloc[0], invoices, letter=chosen, as_of=day, config=config,
                          currency=book_currency(staged))
    from features.contract.contact import email_rule

    to, rule = email_rule(accounts.iloc[0].get("email"))
    head += [f"To: {', '.join(to) if to else '(' + str(rule) + ')'}",
             f"Subject: {rendered.subject}", f"Template: {rendered.template}", "",
             rendered.text]
    return "\n".join(head)
