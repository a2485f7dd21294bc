"""Every ladder and suppression rule at its edge (pure functions of frames)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from features.spec import Materiality
from serving.actions import AUTOMATED_REMINDER, COLLECTION_CALL, MONITOR, PERSONAL_FOLLOW_UP
from serving.dunning import DunningPolicy, plan_letters, suppression_reasons

AS_OF = date(2024, 6, 3)
POLICY = DunningPolicy(min_days_between=7, pre_due_days=5, materiality=Materiality(500, 0.01))


def _accounts(**overrides: object) -> pd.DataFrame:
    row = {"account_id": "A", "action": AUTOMATED_REMINDER, "open_balance": 10_000.0,
           "past_due_amount": 2_000.0, "days_to_next_due": float("nan")} | overrides
    return pd.DataFrame([row])


def _ladder(level: str | None = None, days_ago: int | None = None) -> pd.DataFrame:
    if level is None and days_ago is None:
        return pd.DataFrame(columns=["account_id", "level", "sent_as_of"])
    return pd.DataFrame([{"account_id": "A", "level": level,
                          "sent_as_of": AS_OF - timedelta(days=days_ago or 0)}])


def _plan(accounts: pd.DataFrame, ladder: pd.DataFrame, suppressed: str | None = None
          ) -> tuple[str | None, str, bool]:
    supp = pd.Series([suppressed], index=accounts.index, dtype=object)
    row = plan_letters(accounts, ladder, suppressed=supp, as_of=AS_OF, policy=POLICY).iloc[0]
    return row["letter"], row["reason"], bool(row["clear"])


def test_the_ladder_climbs_one_level_per_letter_and_stops_after_the_final() -> None:
    acc = _accounts()
    assert _plan(acc, _ladder())[:2] == ("first_notice", "send")
    assert _plan(acc, _ladder("pre_due", 7))[:2] == ("first_notice", "send")
    assert _plan(acc, _ladder("first_notice", 7))[:2] == ("second_notice", "send")
    assert _plan(acc, _ladder("second_notice", 7))[:2] == ("final_notice", "send")
    assert _plan(acc, _ladder("final_notice", 70))[:2] == (None, "final_sent")


def test_minimum_days_between_letters_at_its_edge() -> None:
    acc = _accounts()
    assert _plan(acc, _ladder("first_notice", 6))[:2] == (None, "too_soon")
    assert _plan(acc, _ladder("first_notice", 7))[0] == "second_notice"
    # a cleared ladder keeps the date of its last letter: the interval still holds
    assert _plan(acc, _ladder(None, 6))[:2] == (None, "too_soon")
    assert _plan(acc, _ladder(None, 7))[0] == "first_notice"


def test_a_notice_only_while_a_material_amount_is_past_due() -> None:
    # material: above 500 AND above 1% of the open balance
    assert _plan(_accounts(past_due_amount=500.0), _ladder())[:2] == (None, "not_past_due")
    assert _plan(_accounts(past_due_amount=500.01), _ladder())[0] == "first_notice"
    big = {"open_balance": 100_000.0}
    assert _plan(_accounts(past_due_amount=1000.0, **big), _ladder())[0] is None
    assert _plan(_accounts(past_due_amount=1000.01, **big), _ladder())[0] == "first_notice"
    # paid down below materiality: the ladder is cleared, nothing sent
    assert _plan(_accounts(past_due_amount=100.0), _ladder("second_notice", 7)) == (
        None, "not_past_due", True)
    assert _plan(_accounts(past_due_amount=100.0), _ladder("pre_due", 7))[2] is False


def test_pre_due_reminder_window_and_only_for_monitored_accounts() -> None:
    soon = {"action": MONITOR, "past_due_amount": 0.0}
    assert _plan(_accounts(days_to_next_due=5.0, **soon), _ladder())[:2] == ("pre_due", "send")
    assert _plan(_accounts(days_to_next_due=1.0, **soon), _ladder())[0] == "pre_due"
    assert _plan(_accounts(days_to_next_due=6.0, **soon), _ladder())[:2] == (None,
                                                                         "not_past_due")
    assert _plan(_accounts(days_to_next_due=0.0, **soon), _ladder())[0] is None  # due today
    assert _plan(_accounts(days_to_next_due=3.0, **soon), _ladder("pre_due", 6))[:2] == (
        None, "too_soon")
    pre_due_call = soon | {"action": "pre-due call"}
    assert _plan(_accounts(days_to_next_due=3.0, **pre_due_call), _ladder())[:2] == (
        None, "person")


def test_a_suppression_wins_over_the_ladder() -> None:
    assert _plan(_accounts(), _ladder("first_notice", 30), "promise_open")[:2] == (
        None, "promise_open")


def _suppress(accounts: pd.DataFrame, *, promised: date | None = None,
              snoozed_until: date | None = None, disputed: float = 0.0) -> str | None:
    promises = pd.DataFrame({"account_id": ["A"] if promised else [],
                             "promised_date": [pd.Timestamp(promised)] if promised else []})
    snoozes = pd.DataFrame({"account_id": ["A"] if snoozed_until else [],
                            "snoozed_until": [snoozed_until] if snoozed_until else []})
    disputes = pd.DataFrame({"account_id": ["A"], "disputed_amount": [disputed]})
    return suppression_reasons(accounts, open_promises=promises, snoozes=snoozes,
                               disputes=disputes, as_of=AS_OF,
                               materiality=POLICY.materiality).iloc[0]


def test_open_promise_not_yet_due_suppresses_until_its_date_has_passed() -> None:
    acc = _accounts()
    assert _suppress(acc, promised=AS_OF + timedelta(days=10)) == "promise_open"
    assert _suppress(acc, promised=AS_OF) == "promise_open"  # due today: wait for today
    assert _suppress(acc, promised=AS_OF - timedelta(days=1)) is None  # broken: dun


def test_snooze_until_a_later_date() -> None:
    acc = _accounts()
    assert _suppress(acc, snoozed_until=AS_OF + timedelta(days=1)) == "snoozed"
    assert _suppress(acc, snoozed_until=AS_OF) is None


def test_material_dispute_at_its_edge() -> None:
    acc = _accounts()
    assert _suppress(acc, disputed=500.0) is None  # exactly the threshold: not material
    assert _suppress(acc, disputed=500.01) == "disputed"
    share = _accounts(open_balance=100_000.0)
    assert _suppress(share, disputed=1000.0) is None  # 1% of the balance, not above
    assert _suppress(share, disputed=1000.01) == "disputed"


@pytest.mark.parametrize(("action", "expected"), [
    (AUTOMATED_REMINDER, None), (MONITOR, None), (COLLECTION_CALL, "person"),
    (PERSONAL_FOLLOW_UP, "person"), ("resolve dispute first", "person")])
def test_actions_that_belong_to_a_person(action: str, expected: str | None) -> None:
    assert _suppress(_accounts(action=action)) == expected


def test_order_of_suppressions_and_inputs_unchanged() -> None:
    acc = _accounts(action=COLLECTION_CALL)
    before = acc.copy()
    assert _suppress(acc, promised=AS_OF, snoozed_until=AS_OF + timedelta(days=2),
                     disputed=9_000.0) == "snoozed"
    assert _suppress(acc, promised=AS_OF, disputed=9_000.0) == "promise_open"
    assert _suppress(acc, disputed=9_000.0) == "disputed"
    pd.testing.assert_frame_equal(acc, before)


def test_final_notice_hands_an_early_account_to_a_person_in_the_policy_table() -> None:
    from serving.actions import recommend_actions

    got = recommend_actions(segment=["early", "early", "delinquent"], probability=[0.1] * 3,
                            past_due_amount=[900.0] * 3, amount_90_plus=[0.0] * 3,
                            disputed_amount=[0.0] * 3, partial_payer=[False] * 3,
                            final_notice_sent=[True, False, True])
    assert list(got) == [PERSONAL_FOLLOW_UP, AUTOMATED_REMINDER, PERSONAL_FOLLOW_UP]
