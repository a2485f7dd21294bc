"""Live performance of a published worklist (issue 19, item 1) on hand-made frames: every
expected figure is derived in the comments from the rows below."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.evaluate import expected_calibration_error
from models.live import (
    CAPTURE_K,
    TABLE_COLUMNS,
    headline,
    label_horizon_days,
    live_performance,
    reliability_bins,
    resolves_on,
)
from models.rule import RuleCalibration

CAP = f"capture@{CAPTURE_K}"
RULE_CAP = f"rule_capture@{CAPTURE_K}"

# rank, account, population, scorer, probability, open balance, oldest DPD
WORKLIST = pd.DataFrame(
    [
        (1, "A", "early_warning", "model", 0.9, 1000.0, 0.0),
        (2, "B", "early_warning", "model", 0.6, 2000.0, 10.0),
        (3, "C", "early_warning", "model", 0.4, 500.0, 20.0),
        (4, "D", "early_warning", "model", 0.1, 3000.0, 5.0),
        (5, "E", "persistence", "aging_rule", 0.7, 4000.0, 60.0),
        (6, "F", "persistence", "aging_rule", np.nan, 100.0, 40.0),
        (7, "G", "early_warning", "model", 0.2, 800.0, 0.0),   # label censored
        (8, "H", "early_warning", "model", 0.3, 900.0, 0.0),   # no label row
        (9, "I", "persistence", "model", 0.5, 700.0, 35.0),    # label says early_warning
    ],
    columns=["rank", "account_id", "model", "scorer", "probability", "open_balance",
             "oldest_dpd"],
)
# account, population, y, delinquent dollars
LABELS = pd.DataFrame(
    [
        ("A", "early_warning", 1.0, 1000.0),
        ("B", "early_warning", 0.0, 0.0),
        ("C", "early_warning", 1.0, 500.0),
        ("D", "early_warning", 0.0, 0.0),
        ("E", "persistence", 1.0, 4000.0),
        ("F", "persistence", 0.0, 0.0),
        ("G", "early_warning", np.nan, np.nan),
        ("I", "early_warning", 1.0, 700.0),
    ],
    columns=["account_id", "model", "y", "delinquent_amount"],
)
# The aging rule's key, floor(dpd) + x / (1 + x) with x = balance / 1000:
# A 0.5, B 10.667, C 20.333, D 5.75, E 60.8, F 40.091.


def _row(live, **key) -> dict:
    row = live.row(**key)
    assert row is not None, key
    return row


def test_counts_say_what_was_left_out_and_why() -> None:
    live = live_performance(WORKLIST, LABELS)
    assert live.counts == {"worklist": 9, "resolved": 6, "censored": 1, "unlabelled": 1,
                           "population_mismatch": 1, "contacted": 0}
    assert list(live.table.columns) == list(TABLE_COLUMNS)


def test_model_ranked_early_warning_rows_against_the_rule() -> None:
    row = _row(live_performance(WORKLIST, LABELS), population="early_warning",
               ranked_by="model")
    # rows A B C D; positives A (p .9), C (.4); negatives B (.6), D (.1)
    assert (row["n_rows"], row["n_positive"], row["n_probability"]) == (4, 2, 4)
    assert row["delinquent_amount"] == 1500.0
    # pairs (pos > neg): A>B yes, A>D yes, C>B no, C>D yes: 3 / 4
    assert row["auc"] == pytest.approx(0.75)
    # rule: A .5 < B 10.7 and < D 5.75; C 20.3 > both: 2 / 4
    assert row["rule_auc"] == pytest.approx(0.5)
    # top 10% of 4 rows = ceil(0.4) = 1 row: published rank 1 = A, 1000 of 1500 dollars;
    # the rule's first row is C, 500 of 1500
    assert row[CAP] == pytest.approx(1000 / 1500)
    assert row[RULE_CAP] == pytest.approx(500 / 1500)
    # one row per bin (4 rows, 10 bins): |y - p| = D .1, C .6, B .6, A .1 -> mean .35
    assert row["ece"] == pytest.approx(0.35)
    # squared: .01 + .36 + .36 + .01 = .74 / 4
    assert row["brier"] == pytest.approx(0.185)


# The aging rule as served: smoothed rates per DPD band (A dpd 0 preventive .2; B, C, D
# early .4) -> rule probability A .2, B .4, C .4, D .4; priority x balance: A 200, B 800,
# C 200, D 1200.
BANDS = {"early_warning": RuleCalibration(source="dpd_band", band_rates={
    "preventive": 0.2, "early": 0.4, "delinquent": 0.6, "late": 0.8})}


def test_model_ranked_rows_against_the_rule_as_served() -> None:
    live = live_performance(WORKLIST, LABELS, rule_calibrations=BANDS)
    row = _row(live, population="early_warning", ranked_by="model")
    assert row["rule_basis"] == "served"
    # positives A .2, C .4; negatives B .4, D .4: A loses both, C ties both: 1 / 4
    assert row["rule_auc"] == pytest.approx(0.25)
    # ceil(0.4) = 1 row: the served rule's first is D (1200), 0 of 1500 dollars (the bare
    # key's first, C, held 500)
    assert row[RULE_CAP] == 0.0
    # the model's own figures do not depend on the rule's calibration
    plain = _row(live_performance(WORKLIST, LABELS), population="early_warning",
                 ranked_by="model")
    assert (row["auc"], row[CAP]) == (plain["auc"], plain[CAP])
    assert plain["rule_basis"] == "key"
    # persistence rows the rule ranked are served whatever is given: E .7 first (as published)
    assert _row(live, population="persistence", ranked_by="aging_rule")["rule_basis"] == (
        "served")


def test_a_served_rule_without_a_probability_is_the_keys_figure_in_both_tables() -> None:
    """One decision (``models.slices.rule_auc_score``) and one label for the live table and
    the slices: a served calibration too thin for a probability leaves the key's AUC, so
    ``key``, not ``served``; a NaN outside the rows judged does not count."""
    from models.slices import rule_auc_score, slice_metrics

    thin = {"early_warning": RuleCalibration(source="none", evidence={"rows": 0,
                                                                      "positive_rows": 0})}
    row = _row(live_performance(WORKLIST, LABELS, rule_calibrations=thin),
               population="early_warning", ranked_by="model")
    plain = _row(live_performance(WORKLIST, LABELS), population="early_warning",
                 ranked_by="model")
    assert (row["rule_basis"], row["rule_auc"]) == ("key", plain["rule_auc"])
    rows = WORKLIST.merge(LABELS[["account_id", "y"]], on="account_id")
    rows = rows[rows["y"].notna()].reset_index(drop=True)
    p = np.linspace(0.1, 0.9, len(rows))
    nan = np.full(len(rows), np.nan)
    table = slice_metrics(rows, probability=p, rule_probability=nan, min_rows=1)
    assert set(table["rule_basis"]) == {"key"}
    half = np.where(np.arange(len(rows)) == 0, np.nan, 0.5)
    assert rule_auc_score(rows, half, judged=np.arange(len(rows)) > 0)[1] == "served"
    assert rule_auc_score(rows, half, judged=np.ones(len(rows), bool))[1] == "key"


def test_rule_ranked_rows_are_reported_separately() -> None:
    live = live_performance(WORKLIST, LABELS)
    row = _row(live, population="persistence", ranked_by="aging_rule")
    # rows E, F; only E has a probability: one class, no AUC
    assert (row["n_rows"], row["n_probability"]) == (2, 1)
    assert row["auc"] is None and row["rule_auc"] is None  # NaN reads as None
    frame = live.table.set_index(["slice", "population", "ranked_by"])
    assert math.isnan(frame.loc[("all", "persistence", "aging_rule"), "auc"])
    # ceil(0.2) = 1 row: E (rank 5; rule key 60.8) holds all 4000 dollars, for both
    assert row[CAP] == 1.0 and row[RULE_CAP] == 1.0
    # E: p .7, y 1 -> |1 - .7| = .3
    assert row["ece"] == pytest.approx(0.3)
    # no model-ranked persistence row resolved (I's label is another population's)
    assert live.row(population="persistence", ranked_by="model") is None


def test_overall_pools_both_populations_and_scorers() -> None:
    row = _row(live_performance(WORKLIST, LABELS), population="all", ranked_by="all")
    # rows A..F; AUC over the 5 with a probability: positives A .9, C .4, E .7;
    # negatives B .6, D .1: A 2, C 1, E 2 of 6 pairs
    assert row["auc"] == pytest.approx(5 / 6)
    # rule: A .5 beats neither, C 20.3 and E 60.8 beat both: 4 / 6
    assert row["rule_auc"] == pytest.approx(4 / 6)
    # ceil(0.6) = 1 row: published A (1000 of 5500), rule E (4000 of 5500)
    assert row[CAP] == pytest.approx(1000 / 5500)
    assert row[RULE_CAP] == pytest.approx(4000 / 5500)
    assert row["delinquent_amount"] == 5500.0


def test_untouched_slice_leaves_out_contacted_accounts() -> None:
    live = live_performance(WORKLIST, LABELS, contacted={"A", "ZZ"})
    assert live.counts["contacted"] == 1  # ZZ is not on the worklist
    row = _row(live, slice="untouched", population="early_warning", ranked_by="model")
    # B C D: positive C .4; negatives B .6, D .1: 1 of 2
    assert row["n_rows"] == 3 and row["auc"] == pytest.approx(0.5)
    # ceil(0.3) = 1 row: published B (rank 2) holds 0 of 500; the rule's C holds 500
    assert row[CAP] == 0.0 and row[RULE_CAP] == 1.0
    # the all slice is unchanged by the contacts
    assert _row(live, population="early_warning", ranked_by="model")["auc"] == 0.75


def test_without_recorded_contacts_untouched_equals_all() -> None:
    live = live_performance(WORKLIST, LABELS)
    t = live.table.set_index(["slice", "population", "ranked_by"])
    pd.testing.assert_frame_equal(t.loc["all"], t.loc["untouched"])


def test_reliability_bins_are_the_ece_bins() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(53)
    y = (rng.random(53) < p).astype(float)
    bins = reliability_bins(y, p)
    assert len(bins) == 10 and sum(b["n_rows"] for b in bins) == 53
    assert [b["n_rows"] for b in bins] == [6, 6, 6, 5, 5, 5, 5, 5, 5, 5]  # array_split
    means = [b["mean_probability"] for b in bins]
    assert means == sorted(means)
    ece = sum(b["n_rows"] * abs(b["observed_rate"] - b["mean_probability"]) for b in bins) / 53
    assert ece == pytest.approx(expected_calibration_error(y, p))
    live = live_performance(WORKLIST, LABELS)
    curve = live.reliability[(live.reliability["slice"] == "all")
                             & (live.reliability["population"] == "early_warning")
                             & (live.reliability["ranked_by"] == "model")]
    assert curve["mean_probability"].tolist() == [0.1, 0.4, 0.6, 0.9]
    assert curve["observed_rate"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_inputs_are_not_mutated_and_the_dict_is_json_safe() -> None:
    import json

    wl, lab = WORKLIST.copy(), LABELS.copy()
    live = live_performance(wl, lab, contacted={"A"})
    pd.testing.assert_frame_equal(wl, WORKLIST)
    pd.testing.assert_frame_equal(lab, LABELS)
    stored = json.loads(json.dumps(live.to_dict(), allow_nan=False))
    row = next(r for r in stored["table"] if r["population"] == "persistence")
    assert row["auc"] is None  # NaN stored as null
    assert stored["counts"]["resolved"] == 6


def test_headline_prefers_model_ranked_rows() -> None:
    live = live_performance(WORKLIST, LABELS).to_dict()
    # all populations, model-ranked rows A B C D: .75 vs .50 (no served calibration
    # given: the rule's key stood in, and the figure says so)
    assert headline(live) == "AUC 0.75 vs 0.50 (key)"
    served = live_performance(WORKLIST, LABELS, rule_calibrations=BANDS).to_dict()
    assert headline(served) == "AUC 0.75 vs 0.25"  # the served rule's .25 (test below)
    rule_only = live_performance(WORKLIST[WORKLIST["scorer"] == "aging_rule"],
                                 LABELS).to_dict()
    assert headline(rule_only) == "n/a"  # E, F: one row with a probability
    assert headline(None) == "-" and headline({}) == "-"
    # rows only the rule ranked, with both classes: the figure says so
    rule_rows = WORKLIST[WORKLIST["account_id"].isin(["A", "B", "C", "D"])].assign(
        scorer="aging_rule")
    # the rule ranked them: its published probability *is* the served rule's (.75 each)
    assert headline(live_performance(rule_rows, LABELS).to_dict()) == "AUC 0.75 vs 0.75 (rule)"


def test_a_run_resolves_after_the_label_horizon() -> None:
    assert label_horizon_days(delinquency_dpd=30, persistence_days=30) == 60
    assert str(resolves_on(pd.Timestamp("2024-03-01"), delinquency_dpd=30,
                           persistence_days=45)) == "2024-05-15"


def test_model_age_and_staleness_lines() -> None:
    from models.live import model_age_days, staleness_lines

    # 2024-03-01 - 2024-01-01 = 31 + 29 (leap February) = 60 days
    assert model_age_days(pd.Timestamp("2024-03-01"), "2024-01-01") == 60
    assert model_age_days(pd.Timestamp("2024-03-01"), None) is None
    ends = {"persistence": "2024-01-01", "early_warning": "2023-10-03"}  # 150 days
    lines = staleness_lines(pd.Timestamp("2024-03-01"), ends, max_age_days=60)
    assert len(lines) == 1  # 60 days is not above 60
    assert lines[0].startswith("stale model: early_warning champion trained on data up to "
                               "2023-10-03, 150 days before this run (stale_model_days 60)")
    assert len(staleness_lines(pd.Timestamp("2024-03-01"), ends, max_age_days=59)) == 2
    assert staleness_lines(pd.Timestamp("2024-03-01"), {"early_warning": None},
                           max_age_days=1) == []


def test_contacted_accounts_are_those_treated_between_publication_and_resolution() -> None:
    from models.live import contacted_accounts

    day = pd.Timestamp
    contacts = pd.DataFrame({
        "account_id": ["A", "B", "C", "D"],
        # A before the run, B on its as_of, C the day before resolution, D on it
        "contact_date": [day("2024-02-29"), day("2024-03-01"), day("2024-04-29"),
                         day("2024-04-30")],
    })
    promises = pd.DataFrame({
        "account_id": ["E", "F", "G", "H"],
        # E made before the run and still running at it; F made and due before it;
        # G made on the resolution day; H made during the window
        "created_date": [day("2024-02-20"), day("2024-02-01"), day("2024-04-30"),
                         day("2024-03-10")],
        "promised_date": [day("2024-03-05"), day("2024-02-29"), day("2024-05-10"),
                          day("2024-03-20")],
    })
    got = contacted_accounts(contacts, promises, as_of=day("2024-03-01"),
                             until=day("2024-04-30"))
    assert got == {"B", "C", "E", "H"}
    empty = contacts.iloc[:0]
    assert contacted_accounts(empty, promises.iloc[:0], as_of=day("2024-03-01"),
                              until=day("2024-04-30")) == frozenset()
