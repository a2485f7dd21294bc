"""Recommended collections action per account: the action policy table (vectorised).

:data:`RULES` is the one policy table: rules as data, tried top to bottom, the first that
matches wins. Each rule names its action, says when it applies (the text below and in the
README, rendered by :func:`policy_table` with the thresholds of an :class:`ActionPolicy`)
and holds the test that decides it. Later issues (collections loop, dunning) add rows here,
nowhere else. The rules follow common collections practice (dunning ladders of Dynamics 365
/ SAP Collections Management, written down as plain thresholds); with the default policy:

1. `await promise`: an open promise to pay whose promised date plus the grace days has not
   passed: off the main ranking until then, listed in the "promised / snoozed" view
2. `snoozed`: snoozed by an analyst until a later date: off the main ranking until then,
   listed in the "promised / snoozed" view
3. `resolve dispute first`: the disputed amount is at least 25% of the past-due amount (and
   something is past due): chasing a disputed invoice wastes the call and annoys the
   customer
4. `broken promise: follow up`: a promise to pay broke in the last 30 days and no promise
   is open: back in the main ranking, the reason names the promise (date, amount)
5. `legal review`: `late` (material amount 90+ days past due), at least 50,000 is 90+ days
   past due and the persistence probability is at least 60%
6. `escalate to agency`: `late` and the persistence probability is at least 60%
7. `escalate to agency`: `late`, no probability (thin data: decided by amounts only) and at
   least 50,000 is 90+ days past due; never legal review without a probability
8. `offer payment plan`: `delinquent` (material amount 30+ days past due), persistence
   probability at least 60% and the customer pays in parts (a partial payer can pay, just
   not all at once)
9. `personal follow-up`: any other `delinquent` or `late` account (a missing probability
   included)
10. `personal follow-up`: `early` and the final dunning notice was sent (the dunning
    ladder is done: a person takes over)
11. `collection call`: `early` (material amount past due, under 30 days) and the
    early-warning probability is at least 30%: call before it turns 30 days past due
12. `automated reminder`: any other `early` account (a missing probability included): a
    past-due notice
13. `pre-due call`: `preventive` (nothing materially past due) and the early-warning
    probability is at least 30%
14. `monitor`: any other `preventive` account: nothing to do yet

(``tests/serving/test_actions.py`` checks this list and the README's table against
:func:`policy_table`.) Segments are the material segments of ``features.spec``: an
account late only by an immaterial residue is ``preventive``, so no account materially past
due gets a pre-due action. Probabilities are the calibrated probabilities of the account's
own model (early warning for preventive/early, persistence for delinquent/late), in [0, 1],
or NaN when no model scored the account (thin data); amounts are in the book's currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

MONITOR: Final = "monitor"
AUTOMATED_REMINDER: Final = "automated reminder"
PRE_DUE_CALL: Final = "pre-due call"
COLLECTION_CALL: Final = "collection call"
PERSONAL_FOLLOW_UP: Final = "personal follow-up"
RESOLVE_DISPUTE: Final = "resolve dispute first"
PAYMENT_PLAN: Final = "offer payment plan"
ESCALATE_AGENCY: Final = "escalate to agency"
LEGAL_REVIEW: Final = "legal review"
AWAIT_PROMISE: Final = "await promise"
SNOOZED: Final = "snoozed"
BROKEN_PROMISE: Final = "broken promise: follow up"

#: Every action the rules can produce, in rough order of escalation.
ACTIONS: Final = (
    MONITOR,
    PRE_DUE_CALL,
    AUTOMATED_REMINDER,
    COLLECTION_CALL,
    PERSONAL_FOLLOW_UP,
    RESOLVE_DISPUTE,
    PAYMENT_PLAN,
    ESCALATE_AGENCY,
    LEGAL_REVIEW,
    AWAIT_PROMISE,
    SNOOZED,
    BROKEN_PROMISE,
)
#: The hold of a worklist row (``serving.store_schema.HOLDS``) -> the action it gets.
HOLD_ACTIONS: Final = {"promise": AWAIT_PROMISE, "snooze": SNOOZED}
#: What an account of an unknown segment gets (no rule matches).
DEFAULT_ACTION: Final = PERSONAL_FOLLOW_UP


@dataclass(frozen=True)
class ActionPolicy:
    """Thresholds of the action rules (:data:`RULES`); the steps map the ``actions.*``
    settings onto it, serving never reads settings.

    Attributes:
        high_early_warning: early-warning probability (0-1) from which a preventive or
            early account is "high risk" and gets a call. Default 0.30, about twice the
            usual share of accounts that go 30+ days late.
        high_persistence: persistence probability (0-1) from which a delinquent or late
            account is "unlikely to cure by itself within 30 days". Default 0.60.
        legal_amount: amount 90+ days past due (book currency) from which a late account
            goes to legal review rather than an agency. Default 50,000.
        dispute_share: disputed amount as a share (0-1) of the past-due amount from which
            the dispute is resolved before anything else. Default 0.25.
        broken_promise_days: days after a promise to pay broke during which the account
            is followed up on it (a broken promise is the strongest sign a collector has;
            after a month it is history, which the model's features keep). Default 30.
    """

    high_early_warning: float = 0.30
    high_persistence: float = 0.60
    legal_amount: float = 50_000.0
    dispute_share: float = 0.25
    broken_promise_days: int = 30


DEFAULT_POLICY: Final = ActionPolicy()


@dataclass(frozen=True)
class AccountFacts:
    """Aligned 1-D arrays the rules read (see :func:`recommend_actions`)."""

    segment: np.ndarray
    probability: np.ndarray
    past_due_amount: np.ndarray
    amount_90_plus: np.ndarray
    disputed_amount: np.ndarray
    partial_payer: np.ndarray
    #: ``promise`` / ``snooze`` where the account is held off the main ranking, else "".
    hold: np.ndarray
    #: Days since the account's latest promise broke (NaN: none, or a promise is open).
    days_since_broken_promise: np.ndarray
    final_notice_sent: np.ndarray | None = None

    def seg(self, *names: str) -> np.ndarray:
        return np.isin(self.segment, names)

    def at_least(self, threshold: float) -> np.ndarray:
        """Probability >= threshold (False where the probability is missing)."""
        with np.errstate(invalid="ignore"):
            return self.probability >= threshold

    @property
    def no_probability(self) -> np.ndarray:
        return np.isnan(self.probability)


Test = Callable[[AccountFacts, ActionPolicy], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """One row of the policy table: ``action`` when ``test`` holds. ``when`` is the
    human text, with ``{field}`` placeholders for :class:`ActionPolicy` thresholds
    (``{high_persistence:pct}``, ``{legal_amount:money}``)."""

    action: str
    when: str
    test: Test


def _disputed(f: AccountFacts, p: ActionPolicy) -> np.ndarray:
    return (f.past_due_amount > 0) & (f.disputed_amount > 0) & (
        f.disputed_amount >= p.dispute_share * f.past_due_amount)


def _broken(f: AccountFacts, p: ActionPolicy) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return f.days_since_broken_promise <= p.broken_promise_days


#: The policy table, in order (first match wins).
RULES: Final[tuple[Rule, ...]] = (
    Rule(AWAIT_PROMISE,
         "an open promise to pay whose promised date plus the grace days has not passed: "
         "off the main ranking until then, listed in the \"promised / snoozed\" view",
         lambda f, p: f.hold == "promise"),
    Rule(SNOOZED,
         "snoozed by an analyst until a later date: off the main ranking until then, "
         "listed in the \"promised / snoozed\" view",
         lambda f, p: f.hold == "snooze"),
    Rule(RESOLVE_DISPUTE,
         "the disputed amount is at least {dispute_share:pct} of the past-due amount (and "
         "something is past due): chasing a disputed invoice wastes the call and annoys the "
         "customer",
         _disputed),
    Rule(BROKEN_PROMISE,
         "a promise to pay broke in the last {broken_promise_days:days} and no promise is "
         "open: back in the main ranking, the reason names the promise (date, amount)",
         _broken),
    Rule(LEGAL_REVIEW,
         "`late` (material amount 90+ days past due), at least {legal_amount:money} is 90+ "
         "days past due and the persistence probability is at least {high_persistence:pct}",
         lambda f, p: f.seg("late") & (f.amount_90_plus >= p.legal_amount)
         & f.at_least(p.high_persistence)),
    Rule(ESCALATE_AGENCY,
         "`late` and the persistence probability is at least {high_persistence:pct}",
         lambda f, p: f.seg("late") & f.at_least(p.high_persistence)),
    Rule(ESCALATE_AGENCY,
         "`late`, no probability (thin data: decided by amounts only) and at least "
         "{legal_amount:money} is 90+ days past due; never legal review without a "
         "probability",
         lambda f, p: f.seg("late") & f.no_probability & (f.amount_90_plus >= p.legal_amount)),
    Rule(PAYMENT_PLAN,
         "`delinquent` (material amount 30+ days past due), persistence probability at least "
         "{high_persistence:pct} and the customer pays in parts (a partial payer can pay, "
         "just not all at once)",
         lambda f, p: f.seg("delinquent") & f.at_least(p.high_persistence) & f.partial_payer),
    Rule(PERSONAL_FOLLOW_UP,
         "any other `delinquent` or `late` account (a missing probability included)",
         lambda f, p: f.seg("delinquent", "late")),
    Rule(PERSONAL_FOLLOW_UP,
         "`early` and the final dunning notice was sent (the dunning ladder is done: a "
         "person takes over)",
         lambda f, p: f.seg("early") & (False if f.final_notice_sent is None
                                        else f.final_notice_sent)),
    Rule(COLLECTION_CALL,
         "`early` (material amount past due, under 30 days) and the early-warning "
         "probability is at least {high_early_warning:pct}: call before it turns 30 days "
         "past due",
         lambda f, p: f.seg("early") & f.at_least(p.high_early_warning)),
    Rule(AUTOMATED_REMINDER,
         "any other `early` account (a missing probability included): a past-due notice",
         lambda f, p: f.seg("early")),
    Rule(PRE_DUE_CALL,
         "`preventive` (nothing materially past due) and the early-warning probability is "
         "at least {high_early_warning:pct}",
         lambda f, p: f.seg("preventive") & f.at_least(p.high_early_warning)),
    Rule(MONITOR,
         "any other `preventive` account: nothing to do yet",
         lambda f, p: f.seg("preventive")),
)


def recommend_actions(
    *,
    segment: npt.ArrayLike,
    probability: npt.ArrayLike,
    past_due_amount: npt.ArrayLike,
    amount_90_plus: npt.ArrayLike,
    disputed_amount: npt.ArrayLike,
    partial_payer: npt.ArrayLike,
    policy: ActionPolicy = DEFAULT_POLICY,
    hold: npt.ArrayLike | None = None,
    days_since_broken_promise: npt.ArrayLike | None = None,
    final_notice_sent: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Recommended action per account (object array of the strings in :data:`ACTIONS`).

    All inputs are aligned 1-D arrays: ``segment`` (preventive/early/delinquent/late, the
    material segment), ``probability`` (calibrated, 0-1; NaN = no probability),
    ``past_due_amount``, ``amount_90_plus`` (amount 90+ days past due) and
    ``disputed_amount`` (open amount under an unresolved dispute), all in the book's
    currency (missing = 0), ``partial_payer`` (boolean; missing counts as False);
    ``hold`` (``promise`` / ``snooze`` / missing: not held) and
    ``days_since_broken_promise`` (NaN: no recent broken promise) from the collections
    loop (``serving.loop_worklist``; default: none); ``final_notice_sent`` (boolean:
    dunning sent the account its final notice and has not cleared its ladder since;
    None: no account).
    """
    segment_arr = np.asarray(pd.Series(segment, dtype="str").to_numpy(dtype=object))
    facts = AccountFacts(
        segment=segment_arr,
        probability=np.asarray(probability, dtype=np.float64),
        past_due_amount=_amount(past_due_amount),
        amount_90_plus=_amount(amount_90_plus),
        disputed_amount=_amount(disputed_amount),
        partial_payer=_bool(partial_payer),
        hold=np.asarray(pd.Series(hold if hold is not None else [""] * len(segment_arr),
                                  dtype=object).fillna("").to_numpy(dtype=object)),
        days_since_broken_promise=(
            np.full(len(segment_arr), np.nan) if days_since_broken_promise is None
            else np.asarray(days_since_broken_promise, dtype=np.float64)),
        final_notice_sent=None if final_notice_sent is None else _bool(final_notice_sent),
    )
    n = len(facts.segment)
    conditions = [np.broadcast_to(r.test(facts, policy), (n,)) for r in RULES]
    choices = [r.action for r in RULES]
    return np.select(conditions, choices, default=DEFAULT_ACTION).astype(object)


def policy_table(policy: ActionPolicy = DEFAULT_POLICY) -> str:
    """The policy table as Markdown (``| action | when |``), thresholds filled in from
    ``policy``: what the README and the module docstring show."""
    values = {f.name: getattr(policy, f.name) for f in fields(policy)}
    lines = ["| action | when (first matching rule wins, top to bottom) |", "|---|---|"]
    for rule in RULES:
        lines.append(f"| `{rule.action}` | {_fill(rule.when, values)} |")
    return "\n".join(lines)


def _fill(text: str, values: dict[str, float]) -> str:
    out = text
    for name, value in values.items():
        out = out.replace(f"{{{name}:pct}}", f"{100 * value:g}%")
        out = out.replace(f"{{{name}:money}}", f"{value:,.0f}")
        out = out.replace(f"{{{name}:days}}", f"{value:g} days")
    if "{" in out:
        raise ValueError(f"unfilled placeholder in rule text: {out!r}")
    return out


def _amount(values: npt.ArrayLike) -> np.ndarray:
    """Amounts as float64 with missing read as 0."""
    return np.nan_to_num(np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"),
                                    dtype=np.float64), nan=0.0)


def _bool(values: npt.ArrayLike) -> np.ndarray:
    """Booleans with missing (NaN/NA) read as False."""
    series = pd.Series(values)
    return (series.notna() & series.astype(object).fillna(False).astype(bool)).to_numpy()
