"""Calibration from the evidence (issue 12, item 3): isotonic only with enough positives
and negatives, bounds the validation rows can support, printed per model, and a worklist
that never shows a bare 0% or 100%."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.calibration import (
    MIN_ISOTONIC_CLASS,
    Calibrator,
    choose_calibrator,
    evidence_bounds,
    sigmoid,
)


def _rows(n_pos: int, n_neg: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    s = rng.normal(size=len(y)) + 2.0 * y  # informative: positives score higher
    return s, y


@pytest.mark.parametrize(("n_pos", "isotonic"), [(MIN_ISOTONIC_CLASS - 1, False),
                                                 (MIN_ISOTONIC_CLASS, True)])
def test_isotonic_is_a_candidate_only_with_enough_positives(n_pos: int, isotonic: bool) -> None:
    s, y = _rows(n_pos, 2000)
    choice = choose_calibrator(s, y)
    assert ("isotonic" in choice.brier_by_method) is isotonic
    if not isotonic:
        assert choice.calibrator.method == "platt"


def test_and_enough_negatives() -> None:
    s, y = _rows(2000, MIN_ISOTONIC_CLASS - 1)
    assert choose_calibrator(s, y).calibrator.method == "platt"


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_bounds_come_from_the_number_of_rows(method: str) -> None:
    s, y = _rows(60, 60)
    cal = Calibrator(method=method).fit(s, y)
    low, high = evidence_bounds(120)
    assert cal.bounds == (low, high) and low == pytest.approx(0.5 / 121)
    p = cal.predict(np.array([-1e6, -50.0, 0.0, 50.0, 1e6]))
    assert p.min() >= low and p.max() <= high
    # Separable extremes reach the bounds, not 0 or 1.
    assert p[0] == pytest.approx(low) and p[-1] == pytest.approx(high)
    restored = Calibrator.from_dict(cal.to_dict())
    assert restored.bounds == cal.bounds


def test_more_rows_support_more_extreme_probabilities() -> None:
    assert evidence_bounds(100_000)[0] < evidence_bounds(100)[0] < 0.005


def test_a_calibrator_stored_before_the_bounds_keeps_its_old_bound() -> None:
    old = Calibrator.from_dict({"method": "platt", "params": {"a": 1.0, "b": 0.0}})
    assert old.bounds == (1e-4, 1 - 1e-4)
    np.testing.assert_allclose(old.predict(np.array([0.0])), sigmoid(np.array([0.0])))


def test_the_worklist_never_shows_a_bare_0_or_100_percent() -> None:
    from serving.worklist import format_worklist

    frame = pd.DataFrame({
        "rank": [1, 2, 3], "account_id": ["A", "B", "C"], "segment": ["late"] * 3,
        "open_balance": [100.0] * 3, "probability": [0.9996, 0.42, 0.0004],
        "priority": [99.96, 42.0, 0.04], "action": ["call"] * 3,
        "reason_1": [None] * 3, "reason_2": [None] * 3, "reason_3": [None] * 3,
        "mitigating_reason": [None] * 3,
    })
    text = format_worklist(frame)
    assert ">99%" in text and "42%" in text and "<1%" in text
    assert " 0%" not in text and "100%" not in text


def test_the_training_report_prints_the_bounds(trained_state) -> None:
    from models.report import format_report, training_summary

    summary = training_summary(trained_state.results, trained_state.registrations)
    for kind, info in summary.items():
        cal = info["calibration"]
        assert cal["n_rows"] == trained_state.results[kind].n_rows["val"]
        assert (cal["low"], cal["high"]) == evidence_bounds(cal["n_rows"])
    report = format_report(summary)
    assert report.count("validation rows; probabilities bounded to") == len(summary)
