"""The collections loop on the worklist (issue 17): holds, broken promises, and a promise
recorded in the workbench changing the next run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.pit.promises import DEFAULT_GRACE_DAYS
from features.spec import LOOP_FEATURE_SET_VERSION
from models.train import TrainConfig, train_models
from serving.actions import AWAIT_PROMISE, BROKEN_PROMISE, SNOOZED
from serving.score import score_book
from tests.factories import make_book, make_training_set

D = pd.Timedelta(days=1)


def _with_promise(book, account: str, created, promised, amount: float):
    promise = pd.DataFrame({"promise_id": [f"P-{account}"], "account_id": [account],
                            "created_date": [created], "promised_date": [promised],
                            "amount": [amount], "invoice_id": [None],
                            "recorded_date": [None], "cancelled_date": [None]})
    return type(book).from_frames(book.invoices, book.payments, book.accounts,
                                  book.disputes, pd.concat([book.promises, promise]))


@pytest.fixture(scope="module")
def scored(trained_state):
    """The shared state's highest-ranked account paid nothing in the 5 days before
    ``as_of``, with a promise made then, due 5 days after ``as_of``."""
    as_of = trained_state.as_of
    base = score_book(trained_state.book, as_of=as_of, models=trained_state.models).worklist
    book = trained_state.book
    recent = book.payments[book.payments["payment_date"] >= as_of - 5 * D]["invoice_id"]
    paying = set(book.invoices[book.invoices["invoice_id"].isin(recent)]["account_id"])
    top = next(str(a) for a in base["account_id"] if a not in paying)
    book = _with_promise(trained_state.book, top, as_of - 5 * D, as_of + 5 * D, 500.0)
    return trained_state, base, top, book


def test_an_open_promise_takes_the_account_off_the_main_ranking_until_its_date(scored):
    state, base, top, book = scored
    wl = score_book(book, as_of=state.as_of, models=state.models).worklist
    row = wl[wl["account_id"] == top].iloc[0]
    assert row["hold"] == "promise" and row["action"] == AWAIT_PROMISE
    assert row["hold_date"] == state.as_of + 5 * D
    assert row["hold_ends"] == state.as_of + (6 + DEFAULT_GRACE_DAYS) * D
    assert row["rank"] == len(wl)  # after the whole main ranking
    assert wl["hold"].notna().sum() == 1
    # everyone else keeps the order they had
    rest = base[base["account_id"] != top]["account_id"].tolist()
    assert wl[wl["hold"].isna()]["account_id"].tolist() == rest


def test_a_broken_promise_brings_it_back_with_its_action_and_reason(scored):
    state, _, top, book = scored
    after = state.as_of + (6 + DEFAULT_GRACE_DAYS) * D  # the first day it is broken
    wl = score_book(book, as_of=after, models=state.models).worklist
    row = wl[wl["account_id"] == top].iloc[0]
    assert pd.isna(row["hold"]) and row["action"] == BROKEN_PROMISE
    promised = (state.as_of + 5 * D).date().isoformat()
    assert row["reason_1"] == f"broke a promise to pay $500.00 by {promised}"


def test_a_snooze_holds_until_its_date(scored):
    state, _, top, _ = scored
    snoozes = pd.DataFrame({"account_id": [top], "snoozed_until": [state.as_of + 2 * D]})
    wl = score_book(state.book, as_of=state.as_of, models=state.models,
                    snoozes=snoozes).worklist
    row = wl[wl["account_id"] == top].iloc[0]
    assert row["hold"] == "snooze" and row["action"] == SNOOZED
    assert row["hold_ends"] == state.as_of + 2 * D
    later = score_book(state.book, as_of=state.as_of + 2 * D, models=state.models,
                       snoozes=snoozes).worklist
    assert later["hold"].isna().all()


def test_a_broken_promise_account_outranks_the_same_account_with_a_kept_promise():
    """A model that learned that promise breakers are riskier (a training set where
    broken promises drive the outcome) ranks the breaker above its twin who kept."""
    frame = make_training_set(300, 30, seed=3)
    rng = np.random.default_rng(3)
    broken = rng.integers(0, 3, len(frame)).astype(float)
    frame["n_broken_promises_180d"] = broken
    frame["kept_promise_share_365d"] = np.where(broken > 0, 0.2, 0.9)
    y = frame["y"].to_numpy()
    lift = rng.random(len(frame)) < 0.35 * broken
    frame["y"] = np.where(np.isnan(y), np.nan, np.maximum(y, lift))
    names = ["oldest_dpd", "open_balance", "n_broken_promises_180d", "kept_promise_share_365d"]
    results = train_models(frame, config=TrainConfig(n_estimators=60), feature_names=names)
    models = {k: r.model for k, r in results.items()}
    assert all(m.feature_set_version == LOOP_FEATURE_SET_VERSION for m in models.values())

    twins = [("IB", "BREAKER", "2024-03-01", "2024-03-31", 1000.0),
             ("IK", "KEEPER", "2024-03-01", "2024-03-31", 1000.0),
             ("IB0", "BREAKER", "2024-01-01", "2024-01-31", 300.0),
             ("IK0", "KEEPER", "2024-01-01", "2024-01-31", 300.0)]
    book = make_book(twins, [("IK0", "2024-02-10", 300.0)])
    promises = pd.DataFrame({
        "promise_id": ["PB", "PK"], "account_id": ["BREAKER", "KEEPER"],
        "created_date": pd.to_datetime(["2024-02-01"] * 2),
        "promised_date": pd.to_datetime(["2024-02-10"] * 2), "amount": [300.0, 300.0]})
    book = dataclasses.replace(book, payments=pd.concat(
        [book.payments, book.payments.assign(invoice_id="IB0", amount=1.0)],
        ignore_index=True))
    book = type(book).from_frames(book.invoices, book.payments, book.accounts, book.disputes,
                                  promises)
    wl = score_book(book, as_of=pd.Timestamp("2024-03-10"), models=models).worklist
    rank = dict(zip(wl["account_id"], wl["rank"], strict=True))
    assert rank["BREAKER"] < rank["KEEPER"]
    assert wl.set_index("account_id").loc["BREAKER", "action"] == BROKEN_PROMISE
