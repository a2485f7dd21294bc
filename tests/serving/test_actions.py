"""The action policy table (``serving.actions.RULES``): each rule at its edges, a missing
probability, and the README / docstring tables checked against the rules."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from serving import actions as A

NAN = math.nan
P = A.DEFAULT_POLICY


def act(segment: str, probability: float = 0.0, *, past_due: float = 0.0,
        over_90: float = 0.0, disputed: float = 0.0, partial: object = False,
        policy: A.ActionPolicy = P) -> str:
    """The action of one account."""
    return A.recommend_actions(segment=[segment], probability=[probability],
                               past_due_amount=[past_due], amount_90_plus=[over_90],
                               disputed_amount=[disputed], partial_payer=[partial],
                               policy=policy)[0]


# ------------------------------------------------------------------ one test per rule


def test_dispute_first_only_when_a_material_share_of_the_past_due_amount() -> None:
    pd_amt = 1000.0
    for seg in ("early", "delinquent", "late"):
        assert act(seg, 0.9, past_due=pd_amt, over_90=pd_amt,
                   disputed=P.dispute_share * pd_amt) == A.RESOLVE_DISPUTE
        assert act(seg, 0.9, past_due=pd_amt, over_90=pd_amt,
                   disputed=P.dispute_share * pd_amt - 0.01) != A.RESOLVE_DISPUTE
    # a dispute on invoices not yet due, nothing past due: the ordinary rules decide
    assert act("preventive", 0.1, past_due=0.0, disputed=5000.0) == A.MONITOR
    # the case: a tiny dispute beside a large past-due amount is not a reason to wait
    assert act("late", 0.9, past_due=174_738.0, over_90=100_000.0, disputed=300.0) == (
        A.LEGAL_REVIEW)


def test_legal_review_by_the_amount_90_plus_and_the_probability() -> None:
    assert act("late", P.high_persistence, over_90=P.legal_amount) == A.LEGAL_REVIEW
    assert act("late", P.high_persistence, over_90=P.legal_amount - 0.01) == A.ESCALATE_AGENCY
    assert act("late", P.high_persistence - 1e-9, over_90=1e9) == A.PERSONAL_FOLLOW_UP
    # the case: $11k of $1.07M more than 90 days past due at 54% is not legal review
    assert act("late", 0.54, past_due=1.07e6, over_90=11_000.0) == A.PERSONAL_FOLLOW_UP


def test_agency_when_late_and_unlikely_to_cure() -> None:
    assert act("late", P.high_persistence, over_90=600.0) == A.ESCALATE_AGENCY
    assert act("late", P.high_persistence - 1e-9, over_90=600.0) == A.PERSONAL_FOLLOW_UP
    assert act("delinquent", 0.99, past_due=600.0) != A.ESCALATE_AGENCY


def test_missing_probability_decides_by_amounts_only() -> None:
    assert act("late", NAN, over_90=P.legal_amount) == A.ESCALATE_AGENCY
    assert act("late", NAN, over_90=P.legal_amount - 0.01) == A.PERSONAL_FOLLOW_UP
    assert act("late", NAN, over_90=1e9) != A.LEGAL_REVIEW  # never legal without a model
    assert act("delinquent", NAN, past_due=1e6, partial=True) == A.PERSONAL_FOLLOW_UP
    assert act("early", NAN, past_due=1e6) == A.AUTOMATED_REMINDER
    assert act("preventive", NAN) == A.MONITOR
    pd_amt = 1000.0
    assert act("late", NAN, past_due=pd_amt, disputed=pd_amt) == A.RESOLVE_DISPUTE


def test_payment_plan_for_likely_persistent_partial_payers() -> None:
    assert act("delinquent", P.high_persistence, partial=True) == A.PAYMENT_PLAN
    assert act("delinquent", P.high_persistence, partial=False) == A.PERSONAL_FOLLOW_UP
    assert act("delinquent", P.high_persistence, partial=NAN) == A.PERSONAL_FOLLOW_UP
    assert act("delinquent", P.high_persistence - 1e-9, partial=True) == A.PERSONAL_FOLLOW_UP


def test_personal_follow_up_for_other_delinquent_and_late() -> None:
    assert act("delinquent", 0.0) == A.PERSONAL_FOLLOW_UP
    assert act("late", 0.0, over_90=1e6) == A.PERSONAL_FOLLOW_UP


def test_early_accounts_get_a_call_or_a_past_due_notice() -> None:
    assert act("early", P.high_early_warning, past_due=500.0) == A.COLLECTION_CALL
    assert act("early", P.high_early_warning - 1e-9, past_due=500.0) == A.AUTOMATED_REMINDER


def test_pre_due_call_only_for_preventive_accounts() -> None:
    assert act("preventive", P.high_early_warning) == A.PRE_DUE_CALL
    assert act("preventive", P.high_early_warning - 1e-9) == A.MONITOR
    # nothing materially past due gets a pre-due action, whatever the probability
    probs = np.linspace(0, 1, 11)
    for seg in ("early", "delinquent", "late"):
        got = A.recommend_actions(segment=[seg] * 11, probability=probs,
                                  past_due_amount=np.full(11, 1e5),
                                  amount_90_plus=np.full(11, 1e5 if seg == "late" else 0),
                                  disputed_amount=np.zeros(11), partial_payer=[True] * 11)
        assert not {A.PRE_DUE_CALL, A.MONITOR} & set(got), seg


def test_unknown_segment_gets_the_default_action() -> None:
    assert act("unheard-of", 0.9) == A.DEFAULT_ACTION


def test_thresholds_are_parameters() -> None:
    strict = A.ActionPolicy(high_early_warning=0.1, high_persistence=0.5, legal_amount=10.0,
                            dispute_share=0.01)
    assert act("preventive", 0.2) == A.MONITOR
    assert act("preventive", 0.2, policy=strict) == A.PRE_DUE_CALL
    assert act("late", 0.55, over_90=20.0, policy=strict) == A.LEGAL_REVIEW
    assert act("late", 0.9, past_due=1000.0, over_90=1000.0, disputed=10.0,
               policy=strict) == A.RESOLVE_DISPUTE


def test_every_action_is_reachable_and_known() -> None:
    assert {r.action for r in A.RULES} | {A.DEFAULT_ACTION} == set(A.ACTIONS)


# ------------------------------------------------------------------ documentation


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_readme_policy_table_is_the_rules() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert A.policy_table() in readme


def test_docstring_lists_the_rules_in_order() -> None:
    doc = _squash(A.__doc__ or "")
    pos = 0
    for k, row in enumerate(A.policy_table().splitlines()[2:], 1):
        action, when = (c.strip() for c in row.strip("|").split(" | ", 1))
        item = _squash(f"{k}. {action}: {when}")
        found = doc.find(item, pos)
        assert found >= 0, item
        pos = found


def test_policy_table_refuses_an_unfilled_threshold() -> None:
    with pytest.raises(ValueError, match="unfilled"):
        A._fill("at least {no_such:pct}", {})


def test_a_mixed_book_follows_the_rules_in_one_call() -> None:
    segment = ["preventive", "preventive", "early", "early", "delinquent", "delinquent",
               "delinquent", "late", "late", "late", "preventive", "late"]
    prob = [0.05, 0.5, 0.1, 0.5, 0.9, 0.9, 0.2, 0.9, 0.9, 0.1, 0.05, NAN]
    past_due = [0, 0, 100, 100, 100, 100, 100, 100, 1e6, 100, 100, 1e6]
    over_90 = [0, 0, 0, 0, 0, 0, 0, 100, 1e6, 100, 0, 1e6]
    disputed = [0] * 10 + [100, 0]
    partial = [False, False, False, False, True, False, True, False, False, False, False, True]
    got = A.recommend_actions(segment=segment, probability=prob, past_due_amount=past_due,
                              amount_90_plus=over_90, disputed_amount=disputed,
                              partial_payer=partial)
    assert list(got) == [
        A.MONITOR, A.PRE_DUE_CALL, A.AUTOMATED_REMINDER, A.COLLECTION_CALL, A.PAYMENT_PLAN,
        A.PERSONAL_FOLLOW_UP, A.PERSONAL_FOLLOW_UP, A.ESCALATE_AGENCY, A.LEGAL_REVIEW,
        A.PERSONAL_FOLLOW_UP, A.RESOLVE_DISPUTE, A.ESCALATE_AGENCY,
    ]
