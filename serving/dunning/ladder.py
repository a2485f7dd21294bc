"""The dunning ladder per account and when it is suppressed: pure functions of frames.

:func:`suppression_reasons` is the one place that decides whether an account may get an
automated letter at all; :func:`plan_letters` walks the ladder for the rest. Both take
plain frames and ``as_of`` (keyword-only) and never read "now", a store or settings.

Suppression (first that holds, in :data:`SUPPRESSIONS` order):

- ``snoozed``: an analyst snoozed the account until a date after ``as_of``;
- ``promise_open``: a promise to pay is open and not yet due (its promised date is on or
  after ``as_of``): the customer said when, wait for it;
- ``disputed``: the disputed open amount is material (``features.spec.Materiality``, the
  pair that decides past-due segments: above the absolute threshold and the share of the
  open balance): chasing it annoys the customer and wastes the letter;
- ``person``: the account's recommended action (``serving.actions.RULES``) belongs to a
  person (anything but ``automated reminder``, or ``monitor`` for the pre-due reminder);
  after the final notice the policy table hands the account to a person this way.

The ladder (:data:`~serving.dunning.letters.LADDER`): an account with a material past-due
amount gets the next notice after the level last sent (none or the pre-due reminder: the
first notice), at least ``min_days_between`` days after the last letter; after the final
notice nothing more (``final_sent``). An account with nothing materially past due gets no
notice (``not_past_due``) and its ladder is cleared (the next past-due episode starts at
the first notice); it gets the pre-due reminder when an invoice comes due within
``pre_due_days`` days and no letter went out within ``min_days_between`` days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from features.spec import DEFAULT_MATERIALITY, Materiality
from serving.actions import AUTOMATED_REMINDER, MONITOR
from serving.dunning.letters import FINAL_NOTICE, FIRST_NOTICE, LADDER, NOTICES, PRE_DUE

SNOOZED: Final = "snoozed"
PROMISE_OPEN: Final = "promise_open"
DISPUTED: Final = "disputed"
PERSON: Final = "person"
#: Suppression reasons, in the order they are tested.
SUPPRESSIONS: Final = (SNOOZED, PROMISE_OPEN, DISPUTED, PERSON)
#: Why a candidate gets no letter although not suppressed.
TOO_SOON: Final = "too_soon"
FINAL_SENT: Final = "final_sent"
NOT_PAST_DUE: Final = "not_past_due"
#: Actions whose accounts get automated letters (past-due notices / pre-due reminder).
AUTOMATED_ACTIONS: Final = frozenset({AUTOMATED_REMINDER, MONITOR})


@dataclass(frozen=True)
class DunningPolicy:
    """The ladder's rules (settings ``dunning.*``; the steps map them, serving reads none).

    ``min_days_between``: least days between two letters to an account;
    ``pre_due_days``: an invoice due within this many days (1..N after ``as_of``) gets the
    pre-due reminder; ``materiality``: when a past-due or disputed amount counts.
    """

    min_days_between: int = 7
    pre_due_days: int = 5
    materiality: Materiality = field(default=DEFAULT_MATERIALITY)


DEFAULT_POLICY: Final = DunningPolicy()


def suppression_reasons(
    accounts: pd.DataFrame,
    *,
    open_promises: pd.DataFrame,
    snoozes: pd.DataFrame,
    disputes: pd.DataFrame,
    as_of: date,
    materiality: Materiality = DEFAULT_MATERIALITY,
) -> pd.Series:
    """Why each account of ``accounts`` gets no automated letter (a reason of
    :data:`SUPPRESSIONS`), or ``None``; indexed like ``accounts``.

    ``accounts``: ``account_id``, ``action``, ``open_balance`` (book currency).
    ``open_promises``: ``account_id``, ``promised_date`` of promises neither cancelled nor
    kept. ``snoozes``: ``account_id``, ``snoozed_until``. ``disputes``: ``account_id``,
    ``disputed_amount`` (open amount under an unresolved dispute, book currency). Dates
    compare with ``as_of`` by calendar day. Inputs are not changed.
    """
    day = pd.Timestamp(as_of)
    ids = accounts["account_id"].astype("str")

    def having(frame: pd.DataFrame, mask: pd.Series) -> np.ndarray:
        return ids.isin(set(frame.loc[mask, "account_id"].astype("str"))).to_numpy()

    snoozed = having(snoozes, pd.to_datetime(snoozes["snoozed_until"]) > day)
    promised = having(open_promises, pd.to_datetime(open_promises["promised_date"]) >= day)
    disputed_amount = ids.map(
        disputes.assign(account_id=disputes["account_id"].astype("str"))
        .groupby("account_id")["disputed_amount"].sum()).fillna(0.0).to_numpy(float)
    disputed = np.asarray(materiality.material(
        disputed_amount, accounts["open_balance"].to_numpy(float)), dtype=bool)
    person = ~accounts["action"].isin(AUTOMATED_ACTIONS).to_numpy()
    reason = np.select([snoozed, promised, disputed, person], list(SUPPRESSIONS), default="")
    return pd.Series(np.where(reason == "", None, reason), index=accounts.index, dtype=object)


def plan_letters(
    accounts: pd.DataFrame,
    ladder: pd.DataFrame,
    *,
    suppressed: pd.Series,
    as_of: date,
    policy: DunningPolicy = DEFAULT_POLICY,
) -> pd.DataFrame:
    """The letter each account gets at ``as_of``, or why none.

    ``accounts``: ``account_id``, ``action``, ``open_balance``, ``past_due_amount`` (book
    currency) and ``days_to_next_due`` (days from ``as_of`` to the earliest open invoice
    not yet due; NaN when none). ``ladder``: ``account_id``, ``level`` (a
    :data:`~serving.dunning.letters.LADDER` level or None), ``sent_as_of`` (date of the last
    letter). ``suppressed``: :func:`suppression_reasons` of ``accounts``.

    Returns one row per account: ``account_id``, ``letter`` (the level to send or None),
    ``reason`` (``send``, a suppression reason, ``too_soon``, ``final_sent``,
    ``not_past_due``: nothing materially past due and
    nothing coming due soon), ``level`` (the level last sent) and ``clear``
    (True: nothing is materially past due any more, the ladder restarts).
    """
    day = pd.Timestamp(as_of)
    state = ladder.assign(account_id=ladder["account_id"].astype("str")).set_index("account_id")
    ids = accounts["account_id"].astype("str")
    level = np.array([x if isinstance(x, str) else None
                      for x in ids.map(state["level"]).astype(object)], dtype=object)
    last = pd.to_datetime(ids.map(state["sent_as_of"]))
    days_since = ((day - last).dt.days).to_numpy(float)  # NaN: never written to
    material = np.asarray(policy.materiality.material(
        accounts["past_due_amount"].to_numpy(float),
        accounts["open_balance"].to_numpy(float)), dtype=bool)
    soon = np.asarray(accounts["days_to_next_due"], dtype=float)
    due_soon = (soon >= 1) & (soon <= policy.pre_due_days)
    rested = ~(days_since < policy.min_days_between)  # NaN (never) counts as rested
    supp = suppressed.reindex(accounts.index).to_numpy(object)
    in_notices = np.isin(level.astype(str), NOTICES)

    letters: list[str | None] = []
    reasons: list[str] = []
    for i in range(len(ids)):
        if material[i]:
            if supp[i] is not None:
                letter, reason = None, supp[i]
            elif level[i] == FINAL_NOTICE:
                letter, reason = None, FINAL_SENT
            elif not rested[i]:
                letter, reason = None, TOO_SOON
            else:
                letter = FIRST_NOTICE if level[i] in (None, PRE_DUE) else LADDER[
                    LADDER.index(level[i]) + 1]
                reason = "send"
        elif not due_soon[i]:
            letter, reason = None, NOT_PAST_DUE
        elif supp[i] is not None or accounts["action"].iloc[i] != MONITOR:
            letter, reason = None, supp[i] or PERSON
        elif not rested[i]:
            letter, reason = None, TOO_SOON
        else:
            letter, reason = PRE_DUE, "send"
        letters.append(letter)
        reasons.append(reason)
    return pd.DataFrame({
        "account_id": ids.to_numpy(object),
        "letter": pd.Series(letters, dtype=object).to_numpy(),
        "reason": reasons,
        "level": level,
        "clear": ~material & in_notices,
    }, index=accounts.index)
