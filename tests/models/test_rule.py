"""The aging rule as a scorer (models.rule): one key with the gate's baseline, the
calibration chain validation -> history -> smoothed DPD bands -> none, hand-checked band
rates, the artifact round trip, a history with no look-ahead, and the rule as served (the
priority every worklist row gets, the calibration the gate compares with, sample weights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import rule
from models.evaluate import aging_rule_score


def _rows(n: int, positives: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` labelled rows; the ``positives`` are the oldest (the rule's key ranks them)."""
    rng = np.random.default_rng(seed)
    dpd = np.sort(rng.integers(-30, 120, n)).astype(float)
    y = np.zeros(n)
    y[n - positives:] = 1.0
    return pd.DataFrame({"oldest_dpd": dpd, "open_balance": rng.gamma(2, 1000, n), "y": y})


def test_the_rule_key_is_one_definition() -> None:
    frame = _rows(50, 5)
    np.testing.assert_array_equal(rule.rule_score(frame), aging_rule_score(frame))
    # oldest DPD first, balance only breaks ties
    two = pd.DataFrame({"oldest_dpd": [10.0, 9.0, 10.0], "open_balance": [1.0, 1e9, 5.0]})
    assert list(np.argsort(-rule.rule_score(two))) == [2, 0, 1]


def test_the_chain_takes_the_first_source_the_evidence_supports() -> None:
    rich = _rows(400, 60)
    val = rule.fit_rule_calibration(rich, source="validation")
    assert val is not None and val.source == "validation"
    assert rule.choose_rule_calibration(validation=val, history=_rows(10, 1)) is val
    # no (usable) validation fit: the history's own fit
    hist = rule.choose_rule_calibration(validation=None, history=rich)
    assert hist.source == "history" and hist.evidence == {"rows": 400, "positive_rows": 60}
    p = hist.predict(rich)
    assert np.all(np.diff(p[np.argsort(rule.rule_score(rich))]) >= -1e-12)  # monotone
    # too few positives to fit (MIN_FIT_POSITIVES) but enough for the smoothed bands
    thin = _rows(200, rule.MIN_FIT_POSITIVES - 1)
    assert rule.fit_rule_calibration(thin, source="history") is None
    assert rule.choose_rule_calibration(validation=None, history=thin).source == "dpd_band"
    # below MIN_BAND_POSITIVES: no probability at all
    none = rule.choose_rule_calibration(validation=None,
                                        history=_rows(200, rule.MIN_BAND_POSITIVES - 1))
    assert none.source == "none" and np.isnan(none.predict(thin)).all()
    assert "n/a, thin data" in none.describe()
    empty = rule.choose_rule_calibration(validation=None, history=_rows(0, 0))
    assert empty.source == "none"


def test_band_rates_are_beta_smoothed_towards_the_base_rate() -> None:
    # 100 rows: 50 late (90+ DPD, 8 positive), 50 preventive (-5 DPD, 2 positive).
    frame = pd.DataFrame({"oldest_dpd": [95.0] * 50 + [-5.0] * 50,
                          "open_balance": 100.0,
                          "y": [1.0] * 8 + [0.0] * 42 + [1.0] * 2 + [0.0] * 48})
    cal = rule.band_calibration(frame)
    k, base = rule.BAND_PRIOR_ROWS, 10 / 100
    assert cal.source == "dpd_band"
    assert cal.band_rates["late"] == pytest.approx((8 + k * base) / (50 + k))
    assert cal.band_rates["preventive"] == pytest.approx((2 + k * base) / (50 + k))
    assert cal.band_rates["early"] == pytest.approx(base)  # no rows: the prior mean
    got = cal.predict(pd.DataFrame({"oldest_dpd": [100.0, 10.0], "open_balance": [1.0, 1.0]}))
    assert got == pytest.approx([cal.band_rates["late"], base])


def test_the_served_priority_is_expected_amount_at_risk_else_the_past_due_amount() -> None:
    got = rule.served_priority(np.array([0.5, np.nan, 0.0]),
                               open_balance=np.array([1000.0, 800.0, 50.0]),
                               past_due_amount=np.array([10.0, 300.0, np.nan]))
    np.testing.assert_array_equal(got, [500.0, 300.0, 0.0])
    # the served rule's worklist order: its probability x open balance, not its key
    frame = pd.DataFrame({"oldest_dpd": [95.0, 5.0], "open_balance": [100.0, 10_000.0],
                          "past_due_amount": [100.0, 2_000.0]})
    cal = rule.RuleCalibration(source="dpd_band", band_rates={"late": 0.6, "early": 0.2})
    assert list(rule.rule_score(frame).argsort()[::-1]) == [0, 1]  # the key: 95 DPD first
    np.testing.assert_array_equal(cal.priority(frame), [60.0, 2_000.0])  # served: 2nd first
    none = rule.RuleCalibration(source="none")
    np.testing.assert_array_equal(none.priority(frame), [100.0, 2_000.0])


def test_the_gate_compares_with_the_calibration_serving_would_use() -> None:
    # validation rich enough: the validation fit, as the training saves it for serving
    train, val = _rows(400, 60, seed=1), _rows(300, 40, seed=2)
    for part, day in ((train, "2024-01-01"), (val, "2024-03-01")):
        part["as_of"] = pd.Timestamp(day)
    got = rule.served_rule_calibration(train=train, val=val)
    want = rule.fit_rule_calibration(val, source="validation")
    assert got.source == "validation" and want is not None
    np.testing.assert_array_equal(got.predict(train), want.predict(train))
    # validation too thin: the history known before the test period (train and val rows,
    # the newest HISTORY_DATES dates of them)
    thin = _rows(100, rule.MIN_FIT_POSITIVES - 1, seed=3).assign(as_of=pd.Timestamp("2024-03-01"))
    hist = rule.served_rule_calibration(train=train, val=thin)
    assert hist.source == "history" and hist.evidence["rows"] == 500
    old = train.assign(as_of=pd.Timestamp("2023-01-01"))
    recent = pd.concat([_rows(30, 3, seed=5).assign(as_of=pd.Timestamp("2024-01-01")
                                                    + pd.Timedelta(days=7 * i))
                        for i in range(rule.HISTORY_DATES)], ignore_index=True)
    newest = rule.served_rule_calibration(train=pd.concat([old, recent]), val=thin.iloc[:0])
    assert newest.evidence["rows"] == len(recent)  # the 2023 rows are older than 26 dates


def test_sample_weights_weigh_the_rule_calibration() -> None:
    # a sample keeping every positive and a fifth of the negatives (weight 5) estimates
    # the full set: the band rates are the full set's
    full = _rows(500, 50, seed=6)
    neg = np.flatnonzero(full["y"].to_numpy() == 0)
    kept = np.sort(np.r_[np.flatnonzero(full["y"].to_numpy() == 1), neg[::5]])
    sample = full.iloc[kept].assign(weight=np.where(full["y"].to_numpy()[kept] == 1, 1.0, 5.0))
    full_rates = rule.band_calibration(full.iloc[np.r_[np.flatnonzero(full["y"] == 1),
                                                       np.repeat(neg[::5], 5)]]).band_rates
    assert rule.band_calibration(sample).band_rates == pytest.approx(full_rates)
    fitted = rule.fit_rule_calibration(sample, source="validation")
    unweighted = rule.fit_rule_calibration(sample.drop(columns="weight"), source="validation")
    assert fitted is not None and unweighted is not None
    # the negatives' weight lowers every probability (the sample over-represents positives)
    assert fitted.predict(full).mean() < unweighted.predict(full).mean()


def test_calibrations_round_trip_as_json() -> None:
    for cal in (rule.fit_rule_calibration(_rows(400, 60), source="validation"),
                rule.band_calibration(_rows(100, 9)), rule.band_calibration(_rows(100, 1))):
        assert cal is not None
        back = rule.RuleCalibration.from_dict(cal.to_dict())
        frame = _rows(30, 3, seed=4)
        np.testing.assert_array_equal(back.predict(frame), cal.predict(frame))
        assert back.source == cal.source and back.evidence == cal.evidence


def test_resolved_history_knows_only_what_was_known_before_as_of() -> None:
    from features.synthetic import generate_book

    book = generate_book(120, seed=2, start="2023-01-01", end="2023-12-31")
    as_of = pd.Timestamp("2023-09-01")
    hist = rule.resolved_history(book, as_of=as_of, kind="early_warning")
    assert len(hist) and (hist["model"] == "early_warning").all()
    assert (pd.to_datetime(hist["label_resolved_date"]) < as_of).all()
    assert (pd.to_datetime(hist["as_of"]) < as_of).all()
    # Events on or after as_of change nothing: the book cut at as_of gives the same rows.
    from features.contract.book import Book

    cut = Book.from_frames(
        invoices=book.invoices[book.invoices["issue_date"] < as_of],
        payments=book.payments[book.payments["payment_date"] < as_of],
        accounts=book.accounts,
        disputes=book.disputes[book.disputes["opened_date"] < as_of],
    )
    again = rule.resolved_history(cut, as_of=as_of, kind="early_warning")
    cols = ["account_id", "as_of", "y", "oldest_dpd", "open_balance"]
    pd.testing.assert_frame_equal(hist[cols].reset_index(drop=True),
                                  again[cols].reset_index(drop=True), check_dtype=False)
