"""Done-when of issue 22: three nightly runs spaced by the minimum interval on a synthetic
book; some account reaches the second past-due notice and none with an open promise or a
material dispute gets a notice.

The worklist of each night is the policy table on the night's features (no probability:
actions decided by amounts, as for thin data), with the accounts dunning sent a final
notice handed to a person, exactly as scoring does; then the dunning run of each night."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features import build_features, open_invoices
from features.spec import DEFAULT_MATERIALITY
from features.synthetic import generate_book
from serving.actions import AUTOMATED_REMINDER, recommend_actions
from serving.dunning import (
    DunningConfig,
    DunningPolicy,
    Outbox,
    dunning_accounts,
    read_ladder,
    send_planned,
    suppression_reasons,
)
from serving.dunning.run import final_notice_accounts, plan_run

FIRST = date(2023, 11, 6)


def _worklist(book, as_of: date, final: list[str]) -> pd.DataFrame:
    f = build_features(book, as_of=as_of, facts=True)
    f = f[f["open_balance"] > 0].reset_index(drop=True)
    action = recommend_actions(
        segment=f["segment"], probability=np.full(len(f), np.nan),
        past_due_amount=f["past_due_amount"], amount_90_plus=f["past_due_90_plus"],
        disputed_amount=f["amt_open_disputes"], partial_payer=f["partial_payer"],
        final_notice_sent=f["account_id"].isin(final))
    return pd.DataFrame({"account_id": f["account_id"], "rank": np.arange(1, len(f) + 1),
                         "action": action, "open_balance": f["open_balance"],
                         "past_due_amount": f["past_due_amount"]})


def test_three_nights_climb_the_ladder_and_respect_promises_and_disputes(
        engine: sa.Engine, tmp_path: Path) -> None:
    book = generate_book(200, seed=3, start="2023-01-01", end="2023-12-31")
    # pre-due reminders off: this test is about the past-due ladder (test_ladder has them)
    config = DunningConfig(policy=DunningPolicy(pre_due_days=0))
    days = [FIRST + timedelta(days=k * config.policy.min_days_between) for k in range(3)]
    promised: set[str] = set()
    got: dict[str, list[str]] = {}
    for night, as_of in enumerate(days):
        with engine.connect() as conn:
            final = final_notice_accounts(conn)
        worklist = _worklist(book, as_of, final)
        inv = open_invoices(book, as_of=as_of)
        accounts = dunning_accounts(worklist, inv, book.accounts, as_of=as_of)
        if night == 0:  # promises to pay, still open on the last night
            early = accounts.loc[accounts["action"] == AUTOMATED_REMINDER, "account_id"]
            promised = set(early.iloc[::3])
        promises = pd.DataFrame({"account_id": sorted(promised),
                                 "promised_date": pd.Timestamp(days[-1])})
        disputed = inv[inv["disputed"] & (inv["days_past_due"] > 0)].groupby(
            "account_id", as_index=False)["amount_open"].sum().rename(
            columns={"amount_open": "disputed_amount"})
        with engine.connect() as conn:
            ladder = read_ladder(conn)
        supp = suppression_reasons(
            accounts, open_promises=promises, disputes=disputed, as_of=as_of,
            snoozes=pd.DataFrame({"account_id": [], "snoozed_until": []}))
        plan = plan_run(accounts, ladder, suppressed=supp, as_of=as_of, policy=config.policy)
        result = send_planned(engine, accounts, plan, inv, as_of=as_of, config=config,
                              sender=Outbox(tmp_path / "outbox"), run_key=f"night-{night}")
        sent = result.log[result.log["status"] == "sent"]
        for row in sent.itertuples():
            got.setdefault(row.account_id, []).append(row.letter)
        notices = set(sent.loc[sent["letter"] != "pre_due", "account_id"])
        assert not notices & promised
        balance = accounts.set_index("account_id")["open_balance"]
        material = disputed[DEFAULT_MATERIALITY.material(
            disputed["disputed_amount"].to_numpy(),
            balance.reindex(disputed["account_id"]).fillna(0.0).to_numpy())]
        assert len(material) > 0 and not notices & set(material["account_id"])
        assert (result.plan["reason"] == "promise_open").any()
    ladders = {tuple(v) for v in got.values()}
    assert ("first_notice", "second_notice") in ladders or (
        "first_notice", "second_notice", "final_notice") in ladders
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == sum(map(len, got.values()))
