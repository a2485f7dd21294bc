"""Recommended collections action per account, by segment and risk (vectorised).

The rules follow common collections practice (dunning ladders of Dynamics 365 / SAP
Collections Management, written down as plain thresholds):

==========================  ==============================================================
action                      when (first matching rule wins, top to bottom)
==========================  ==============================================================
``resolve dispute first``   any account with an open dispute: chasing a disputed invoice
                            wastes the call and annoys the customer
``legal review``            ``late`` (90+ DPD) and open balance >= ``legal_balance``
``escalate to agency``      ``late`` and persistence probability >= ``high_persistence``
``offer payment plan``      ``delinquent`` (30-89 DPD), persistence probability >=
                            ``high_persistence`` and the customer pays in parts
                            (a partial payer can pay, just not all at once)
``personal follow-up``      any other ``delinquent`` or ``late`` account
``pre-due call``            ``preventive`` or ``early`` with early-warning probability >=
                            ``high_early_warning``: call before it turns 30 DPD
``personal follow-up``      other ``early`` accounts (1-29 DPD, low risk)
``automated reminder``      other ``preventive`` accounts (nothing past due, low risk)
==========================  ==============================================================

Probabilities are the calibrated probabilities of the account's own model (early warning
for preventive/early, persistence for delinquent/late), in [0, 1]; balances are in the
book's currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

AUTOMATED_REMINDER: Final = "automated reminder"
PRE_DUE_CALL: Final = "pre-due call"
PERSONAL_FOLLOW_UP: Final = "personal follow-up"
RESOLVE_DISPUTE: Final = "resolve dispute first"
PAYMENT_PLAN: Final = "offer payment plan"
ESCALATE_AGENCY: Final = "escalate to agency"
LEGAL_REVIEW: Final = "legal review"

#: Every action the rules can produce, in rough order of escalation.
ACTIONS: Final = (
    AUTOMATED_REMINDER,
    PRE_DUE_CALL,
    PERSONAL_FOLLOW_UP,
    RESOLVE_DISPUTE,
    PAYMENT_PLAN,
    ESCALATE_AGENCY,
    LEGAL_REVIEW,
)


@dataclass(frozen=True)
class ActionPolicy:
    """Thresholds of the action rules (see the module docstring for the rule order).

    Attributes:
        high_early_warning: early-warning probability (0-1) from which a preventive or
            early account is "high risk" and gets a pre-due call. Default 0.30, about twice
            the usual share of accounts that go 30+ days late.
        high_persistence: persistence probability (0-1) from which a delinquent or late
            account is "unlikely to cure by itself within 30 days". Default 0.60.
        legal_balance: open balance (book currency) from which a late account goes to
            legal review rather than an agency. Default 50,000.
    """

    high_early_warning: float = 0.30
    high_persistence: float = 0.60
    legal_balance: float = 50_000.0


DEFAULT_POLICY: Final = ActionPolicy()


def recommend_actions(
    *,
    segment: npt.ArrayLike,
    probability: npt.ArrayLike,
    open_balance: npt.ArrayLike,
    has_open_dispute: npt.ArrayLike,
    partial_payer: npt.ArrayLike,
    policy: ActionPolicy = DEFAULT_POLICY,
) -> np.ndarray:
    """Recommended action per account (object array of the strings in :data:`ACTIONS`).

    All inputs are aligned 1-D arrays: ``segment`` (preventive/early/delinquent/late),
    ``probability`` (calibrated, 0-1), ``open_balance`` (currency), ``has_open_dispute``
    and ``partial_payer`` (booleans; missing counts as False).
    """
    seg = np.asarray(pd.Series(segment, dtype="str").to_numpy(dtype=object))
    prob = np.asarray(probability, dtype=np.float64)
    balance = np.asarray(open_balance, dtype=np.float64)
    dispute = _bool(has_open_dispute)
    partial = _bool(partial_payer)

    late = seg == "late"
    delinquent = seg == "delinquent"
    early = seg == "early"
    preventive = seg == "preventive"
    high_persist = prob >= policy.high_persistence
    high_early = prob >= policy.high_early_warning

    # np.select takes the first true condition, exactly the rule order documented above.
    conditions = [
        dispute,
        late & (balance >= policy.legal_balance),
        late & high_persist,
        delinquent & high_persist & partial,
        late | delinquent,
        (preventive | early) & high_early,
        early,
        preventive,
    ]
    choices = [
        RESOLVE_DISPUTE,
        LEGAL_REVIEW,
        ESCALATE_AGENCY,
        PAYMENT_PLAN,
        PERSONAL_FOLLOW_UP,
        PRE_DUE_CALL,
        PERSONAL_FOLLOW_UP,
        AUTOMATED_REMINDER,
    ]
    return np.select(conditions, choices, default=PERSONAL_FOLLOW_UP).astype(object)


def _bool(values: npt.ArrayLike) -> np.ndarray:
    """Booleans with missing (NaN/NA) read as False."""
    series = pd.Series(values)
    return (series.notna() & series.astype(object).fillna(False).astype(bool)).to_numpy()
