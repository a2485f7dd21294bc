"""The quality gate (models.gate): each condition at its edge on small hand-made test
periods, the account bootstrap, and what the registry records and refuses."""

from __future__ import annotations

import dataclasses
import time

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.evaluate import Scores, capture_at_k
from models.gate import (
    FAILED,
    PASSED,
    TAG,
    GatePolicy,
    bootstrap_capture_difference,
    judge,
)
from tests.factories import STATE_GATE, TrainedState

N_ACCOUNTS, N_DATES = 200, 5


def period(n_pos_accounts: int, n_pos_rows: int, *, seed: int = 0) -> pd.DataFrame:
    """A test period: ``N_ACCOUNTS`` accounts on each of ``N_DATES`` weekly ``as_of``
    dates; positive rows ``j = 0..n_pos_rows-1`` go to account ``j % n_pos_accounts`` on
    date ``j // n_pos_accounts``, so exactly that many positive accounts and rows."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=N_DATES, freq="7D")
    frame = pd.DataFrame({
        "account_id": np.tile([f"A{i:03d}" for i in range(N_ACCOUNTS)], N_DATES),
        "as_of": np.repeat(dates, N_ACCOUNTS),
        "open_balance": rng.uniform(100, 1000, N_ACCOUNTS * N_DATES),
    })
    y = np.zeros(len(frame))
    for j in range(n_pos_rows):
        y[(j // n_pos_accounts) * N_ACCOUNTS + j % n_pos_accounts] = 1.0
    frame["y"] = y
    frame["delinquent_amount"] = y * frame["open_balance"]
    return frame


def perfect(frame: pd.DataFrame) -> Scores:
    """A model that ranks the delinquent dollars first."""
    key = frame["delinquent_amount"].to_numpy() + 1e-3 * frame["open_balance"].to_numpy()
    return Scores(proba=np.clip(key / key.max(), 0, 1), priority=key, ranking=key)


def blind(frame: pd.DataFrame, seed: int = 1) -> Scores:
    """A rule that knows nothing (random order)."""
    key = np.random.default_rng(seed).random(len(frame))
    return Scores(proba=key, priority=key, ranking=key)


# ------------------------------------------------------------------ (a) evidence


def test_enough_evidence_at_the_edge_passes() -> None:
    frame = period(30, 100)
    out = judge(frame, model=perfect(frame), rule=blind(frame))
    assert out.passed and out.failed is None, out.reason
    assert out.reason.startswith("gate passed: capture@10")
    assert out.numbers["positive_accounts"] == 30 and out.numbers["positive_rows"] == 100
    assert out.tags() == {TAG: PASSED, "gate.reason": out.reason}


@pytest.mark.parametrize(("accounts", "rows"), [(29, 100), (30, 99), (0, 0)])
def test_one_short_of_the_evidence_fails(accounts: int, rows: int) -> None:
    frame = period(max(accounts, 1), rows)
    out = judge(frame, model=perfect(frame), rule=blind(frame))
    assert not out.passed and out.failed == "evidence"
    assert f"holds {accounts} positive accounts and {rows} positive rows" in out.reason
    assert "gate.min_positive_accounts" in out.reason and "\n" not in out.reason
    assert out.tags()[TAG] == FAILED


def test_evidence_thresholds_come_from_the_policy() -> None:
    frame = period(10, 20)
    policy = GatePolicy(min_positive_accounts=10, min_positive_rows=20)
    assert judge(frame, model=perfect(frame), rule=blind(frame), policy=policy).passed
    strict = GatePolicy(min_positive_accounts=11, min_positive_rows=20)
    assert judge(frame, model=perfect(frame), rule=blind(frame), policy=strict).failed == (
        "evidence")


# --------------------------------------------------------------- (b) not constant


def test_a_constant_model_fails() -> None:
    frame = period(30, 100)
    same = np.full(len(frame), 0.438)
    constant = Scores(proba=same, priority=same * frame["open_balance"], ranking=same)
    out = judge(frame, model=constant, rule=blind(frame))
    assert out.failed == "not_constant" and "same score" in out.reason
    assert out.numbers["distinct_scores"] == 1


def test_a_model_without_splits_fails_even_if_its_scores_vary() -> None:
    frame = period(30, 100)
    out = judge(frame, model=perfect(frame), rule=blind(frame), made_splits=False)
    assert out.failed == "not_constant" and "made no split" in out.reason


def test_two_distinct_scores_are_not_constant() -> None:
    frame = period(30, 100)
    y = frame["y"].to_numpy()
    two = Scores(proba=y, priority=y * frame["open_balance"], ranking=y)
    assert judge(frame, model=two, rule=blind(frame)).passed


# ------------------------------------------------------- (c) beats the aging rule


def test_a_model_equal_to_the_rule_does_not_beat_it() -> None:
    """Identical rankings: every bootstrap difference is exactly 0, and 0 is not above 0."""
    frame = period(30, 100)
    rule = blind(frame)
    out = judge(frame, model=rule, rule=rule)
    assert out.failed == "beats_aging_rule"
    assert out.numbers["difference_low"] == 0.0 == out.numbers["difference_high"]
    assert "interval +0.000..+0.000" in out.reason and "lower end must be above 0" in out.reason


def test_a_slightly_better_capture_with_a_wide_interval_fails() -> None:
    """A better point estimate is not enough: the interval's 5th percentile decides."""
    frame = period(30, 100)
    rule = perfect(frame)
    # The model swaps a few top rows for random ones: a little worse or better by chance.
    rng = np.random.default_rng(3)
    noisy = rule.priority + rng.normal(scale=rule.priority.std(), size=len(frame))
    model = Scores(proba=rule.proba, priority=noisy, ranking=rule.ranking)
    out = judge(frame, model=model, rule=rule)
    assert out.failed == "beats_aging_rule" and out.numbers["difference_low"] <= 0


def test_auc_equal_to_the_rules_passes_and_a_hair_below_fails() -> None:
    frame = period(30, 100)
    rule = blind(frame)
    # Capture from a perfect priority; AUC from the rule's own ranking: equal AUC.
    model = Scores(proba=rule.proba, priority=perfect(frame).priority, ranking=rule.ranking)
    out = judge(frame, model=model, rule=rule)
    assert out.passed, out.reason
    assert out.numbers["roc_auc"] == out.numbers["rule_roc_auc"]
    # Swap one positive below one negative it was above: the AUC drops by one pair.
    y = frame["y"].to_numpy()
    ranking = rule.ranking.copy()
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    i = pos[np.argmin(ranking[pos])]  # the lowest positive
    j = neg[np.argmax(np.where(ranking[neg] < ranking[i], ranking[neg], -np.inf))]
    ranking[i], ranking[j] = ranking[j], ranking[i]
    worse = dataclasses.replace(model, ranking=ranking)
    out = judge(frame, model=worse, rule=rule)
    assert out.failed == "beats_aging_rule" and "AUC is below the rule's" in out.reason
    assert out.numbers["roc_auc"] < out.numbers["rule_roc_auc"]
    # ... unless the policy tolerates that much.
    assert judge(frame, model=worse, rule=rule, policy=GatePolicy(auc_tolerance=0.01)).passed


def test_the_gate_compares_with_the_rule_as_served(trained_state: TrainedState) -> None:
    """The rule in the gate is the one serving would rank with after this training: its
    probability from the calibration the training saves (validation), the worklist by
    ``served_priority`` (probability x open balance), the line naming it and the interval;
    the rule's bare key is reported beside it (``aging_rule_key``)."""
    from models.gate import RULE, judge_result
    from models.rule import rule_score, served_priority

    result = trained_state.results["early_warning"]
    test, served = result.test, result.baseline_scores[RULE]
    cal = result.rule_calibration
    assert cal is not None and cal.source == "validation"
    proba = cal.predict(test)  # what serving.rule_scoring.rule_part gives these rows
    np.testing.assert_array_equal(served.proba, proba)
    np.testing.assert_array_equal(served.priority, served_priority(
        proba, open_balance=test["open_balance"].to_numpy(float),
        past_due_amount=test["past_due_amount"].to_numpy(float)))
    np.testing.assert_array_equal(served.ranking, rule_score(test))  # AUC: the rule's key
    key = result.baseline_scores["aging_rule_key"]
    np.testing.assert_array_equal(key.priority, rule_score(test))
    out = judge_result(result)  # the default gate: this quick model does not beat it
    assert out.failed == "beats_aging_rule", out.reason
    assert out.numbers["rule_capture@10"] == result.metrics.loc[RULE, "capture@10"]
    assert ("vs the aging rule as served (probability x open balance, calibrated on the "
            "validation period)") in out.reason
    assert "90% account-bootstrap interval" in out.reason
    assert result.metrics.loc[RULE, "capture@10"] != result.metrics.loc["aging_rule_key",
                                                                        "capture@10"]


# ---------------------------------------------------------------- the bootstrap


def test_bootstrap_is_seeded_and_centred_on_the_point_difference() -> None:
    frame = period(40, 120)
    m, r = perfect(frame), blind(frame)
    args = dict(accounts=frame["account_id"].to_numpy(), groups=frame["as_of"].to_numpy(),
                amount=frame["delinquent_amount"].to_numpy(), priority_a=m.priority,
                priority_b=r.priority, tiebreak=frame["open_balance"].to_numpy())
    a = bootstrap_capture_difference(**args, resamples=400, seed=5)
    b = bootstrap_capture_difference(**args, resamples=400, seed=5)
    np.testing.assert_array_equal(a, b)
    amount, groups = frame["delinquent_amount"].to_numpy(), frame["as_of"].to_numpy()
    tie = frame["open_balance"].to_numpy()
    point = (capture_at_k(m.priority, amount, k=10, groups=groups, tiebreak=tie)
             - capture_at_k(r.priority, amount, k=10, groups=groups, tiebreak=tie))
    assert abs(np.median(a) - point) < 0.05
    assert np.quantile(a, 0.05) < point < np.quantile(a, 0.95)


def test_a_draw_of_every_account_once_is_the_metric_itself(monkeypatch) -> None:
    """With the draw forced to take each account exactly once, the bootstrap's capture@10
    difference equals ``capture_at_k``'s, groups of different sizes and ties included."""
    import models.gate as gate

    rng = np.random.default_rng(2)
    n = 997
    accounts = rng.integers(0, 300, n)
    groups = rng.integers(0, 7, n)
    amount = np.where(rng.random(n) < 0.2, rng.lognormal(5, 1, n), 0.0)
    a, b = rng.integers(0, 20, n).astype(float), rng.random(n)  # ties in a
    tie = rng.integers(0, 3, n).astype(float)
    monkeypatch.setattr(gate, "draw_counts",
                        lambda _rng, draws, n_acc: np.ones((draws, n_acc), np.float32))
    diffs = bootstrap_capture_difference(accounts=accounts, groups=groups, amount=amount,
                                         priority_a=a, priority_b=b, tiebreak=tie,
                                         resamples=3)
    expected = (capture_at_k(a, amount, k=10, groups=groups, tiebreak=tie)
                - capture_at_k(b, amount, k=10, groups=groups, tiebreak=tie))
    np.testing.assert_allclose(diffs, expected, rtol=0, atol=1e-6)


def test_accounts_not_rows_are_resampled() -> None:
    """An account's rows (one per date here) move together: the interval is wider than
    if each row were an independent account."""
    frame = period(30, 100)
    m, r = perfect(frame), blind(frame)
    args = dict(groups=frame["as_of"].to_numpy(), amount=frame["delinquent_amount"].to_numpy(),
                priority_a=m.priority, priority_b=r.priority,
                tiebreak=frame["open_balance"].to_numpy(), resamples=300, seed=0)
    by_account = bootstrap_capture_difference(accounts=frame["account_id"].to_numpy(), **args)
    by_row = bootstrap_capture_difference(accounts=np.arange(len(frame)), **args)
    width = np.subtract(*np.quantile(by_account, [0.95, 0.05]))
    assert width > 1.2 * np.subtract(*np.quantile(by_row, [0.95, 0.05]))


def test_bootstrap_is_fast_on_tens_of_thousands_of_rows() -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    groups = rng.integers(0, 8, n)
    amount = np.where(rng.random(n) < 0.1, rng.lognormal(5, 1, n), 0.0)
    t0 = time.process_time()
    out = bootstrap_capture_difference(
        accounts=rng.integers(0, 5_000, n), groups=groups, amount=amount,
        priority_a=rng.random(n) + amount / 1000, priority_b=rng.random(n),
        tiebreak=rng.random(n), resamples=1000, seed=0)
    cpu = time.process_time() - t0
    assert len(out) == 1000 and np.isfinite(out).all()
    # About 0.5 s of CPU here; generous for a shared machine.
    assert cpu < 3.0, cpu


# ------------------------------------------------------------------ the registry


def test_the_verdict_is_recorded_and_an_ungated_champion_is_not_used(
    trained_state: TrainedState,
) -> None:
    from models.registry import (
        UngatedChampionError,
        load_champion,
        load_model,
        register_result,
    )

    uri = trained_state.tracking_uri
    result = trained_state.results["persistence"]
    first = register_result(result, tracking_uri=uri, registered_name="gate-pe")
    assert first.promoted and first.gate is not None and first.gate.passed
    assert first.reason.startswith("gate passed") and "no champion yet" in first.reason
    client = mlflow.MlflowClient(tracking_uri=uri)
    mv = client.get_model_version("gate-pe", first.version)
    assert mv.tags[TAG] == PASSED and mv.tags["gate.reason"] == first.gate.reason
    assert client.get_run(first.run_id).data.metrics["gate.difference_low"] > 0

    # A champion promoted by the release before the gate has no verdict: not for scoring.
    client.delete_model_version_tag("gate-pe", first.version, TAG)
    with pytest.raises(UngatedChampionError, match="no recorded quality-gate pass"):
        load_champion("gate-pe", tracking_uri=uri)
    assert load_model("gate-pe", tracking_uri=uri).version == first.version  # still there
    # A new version that passes replaces it without a head-to-head comparison.
    second = register_result(result, tracking_uri=uri, registered_name="gate-pe")
    assert second.promoted and "the champion is not compared" in second.reason
    assert load_champion("gate-pe", tracking_uri=uri).version == second.version


def test_a_failing_first_version_is_challenger_with_its_line(
    trained_state: TrainedState,
) -> None:
    from models.registry import NoChampionError, load_champion, load_model, register_result

    uri = trained_state.tracking_uri
    result = trained_state.results["early_warning"]
    strict = GatePolicy(min_positive_accounts=10_000)
    out = register_result(result, tracking_uri=uri, registered_name="gate-ew", gate=strict)
    assert not out.promoted and out.champion_version is None
    assert out.reason.startswith("gate failed (evidence)")
    assert out.reason.endswith("registered as challenger.") and "\n" not in out.reason
    with pytest.raises(NoChampionError):
        load_champion("gate-ew", tracking_uri=uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_model_version("gate-ew", out.version).tags[TAG] == FAILED
    assert load_model("gate-ew", tracking_uri=uri, alias="challenger").version == out.version


def test_a_new_feature_set_is_promoted_on_the_gate_alone(trained_state: TrainedState) -> None:
    from models.gate import judge_result
    from models.promotion import decide

    result = trained_state.results["persistence"]
    verdict = judge_result(result, policy=STATE_GATE)
    assert verdict.passed
    other = dataclasses.replace(trained_state.models["persistence"],
                                feature_names=[*result.model.feature_names, "not_built_now"])
    promoted, reason, cmp = decide(result, other, verdict)
    assert promoted and cmp == {}
    assert "head-to-head comparison on the same test period was impossible" in reason
    assert reason.startswith("gate passed")
    failing = dataclasses.replace(verdict, passed=False, failed="evidence", reason="gate failed")
    assert not decide(result, other, failing)[0]
