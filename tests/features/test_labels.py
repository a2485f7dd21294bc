"""Hand-checked label edge cases (DESIGN section 5), horizon 30 DPD / 30 days persistence."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from features import build_labels
from features.spec import DEFAULT_MATERIALITY, NO_MATERIALITY, Materiality
from tests.factories import make_book

AS_OF = date(2024, 3, 1)
DUE = "2024-03-10"  # not yet due at as_of: early-warning population
D = pd.Timedelta(days=1)


def label(book, **kw) -> pd.Series:
    """Account A's label row (account B only keeps the data running). Without a
    ``materiality`` every cent counts (the plain DPD rule the first tests check)."""
    kw.setdefault("materiality", NO_MATERIALITY)
    frame = build_labels(book, as_of=AS_OF, **kw)
    rows = frame[frame["account_id"] == "A"]
    assert len(rows) == 1
    return rows.iloc[0]


def one_invoice(payments, amount=100.0, due=DUE, extra_events=True):
    invoices = [("I", "A", "2024-02-01", due, amount)]
    if extra_events:  # another account keeps the data running to 2024-12-31
        invoices.append(("Z", "B", "2024-02-01", "2024-02-02", 1.0))
        payments = [*payments, ("Z", "2024-12-31", 1.0)]
    return make_book(invoices, payments)


def test_cleared_on_due_plus_29_is_good():
    row = label(one_invoice([("I", pd.Timestamp(DUE) + 29 * D, 100.0)]))
    assert row["model"] == "early_warning"
    assert row["y"] == 0.0 and not row["censored"]
    assert row["label_resolved_date"] == pd.Timestamp(DUE) + 29 * D
    assert row["delinquent_amount"] == 0.0


def test_cleared_on_due_plus_30_is_bad_resolved_at_the_crossing():
    row = label(one_invoice([("I", pd.Timestamp(DUE) + 30 * D, 100.0)]))
    assert row["y"] == 1.0
    assert row["label_resolved_date"] == pd.Timestamp(DUE) + 30 * D
    assert row["delinquent_amount"] == 100.0


def test_partial_payments_completing_late_are_bad():
    # 30 known before as_of, 30 in time, the last 40 at due + 36
    row = label(one_invoice([("I", "2024-02-20", 30.0), ("I", "2024-03-20", 30.0),
                             ("I", pd.Timestamp(DUE) + 36 * D, 40.0)]))
    assert row["y"] == 1.0
    assert row["label_resolved_date"] == pd.Timestamp(DUE) + 30 * D
    assert row["delinquent_amount"] == 70.0  # outstanding at as_of


def test_partial_payments_completing_in_time_are_good():
    row = label(one_invoice([("I", "2024-03-05", 50.0), ("I", "2024-04-01", 50.0)]))
    assert row["y"] == 0.0 and row["label_resolved_date"] == pd.Timestamp("2024-04-01")


def test_payment_dated_on_as_of_counts_for_the_label():
    row = label(one_invoice([("I", AS_OF, 100.0)]))
    assert row["y"] == 0.0 and row["label_resolved_date"] == pd.Timestamp(AS_OF)


def test_first_crossing_decides_with_several_open_invoices():
    book = make_book(
        [("I1", "A", "2024-02-01", "2024-03-10", 100.0),
         ("I2", "A", "2024-02-15", "2024-03-05", 40.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I1", "2024-03-20", 100.0), ("I2", "2024-05-01", 40.0), ("Z", "2024-12-31", 1.0)])
    row = label(book)
    assert row["y"] == 1.0
    assert row["label_resolved_date"] == pd.Timestamp("2024-04-04")  # I2 due + 30
    assert row["delinquent_amount"] == 40.0


def test_open_dispute_does_not_change_the_definition():
    book = make_book(
        [("I", "A", "2024-02-01", DUE, 100.0), ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I", pd.Timestamp(DUE) + 45 * D, 100.0), ("Z", "2024-12-31", 1.0)],
        disputes=[("I", "2024-02-15", None)])
    row = label(book)
    assert row["y"] == 1.0 and row["delinquent_amount"] == 100.0


def test_censored_when_the_data_ends_before_the_outcome():
    # never paid; the book's last event is 2024-03-20 so data_end = 2024-03-21 < due + 30
    book = make_book([("I", "A", "2024-02-01", DUE, 100.0)], [("I", "2024-03-20", 10.0)])
    row = label(book)
    assert row["censored"] and math.isnan(row["y"])
    assert pd.isna(row["label_resolved_date"]) and math.isnan(row["delinquent_amount"])
    # the crossing day decides once it is in the data (all payments before it are known)
    crossing = pd.Timestamp(DUE) + 30 * D
    assert label(book, data_end=crossing)["y"] == 1.0
    assert label(book, data_end=crossing - D)["censored"]


def test_clearing_after_data_end_is_censored():
    book = one_invoice([("I", "2024-03-15", 100.0)], extra_events=False)
    assert label(book)["y"] == 0.0  # data_end = 2024-03-16 (day after the last event)
    assert label(book, data_end=date(2024, 3, 15))["censored"]  # the payment day is not known


PERSIST_DUE = "2024-01-15"  # 46 DPD at as_of: delinquent, persistence model


@pytest.mark.parametrize(("cure_day", "y"), [(29, 0.0), (30, 1.0)])
def test_persistence_cure_on_day_29_vs_30(cure_day, y):
    cure = pd.Timestamp(AS_OF) + cure_day * D
    row = label(one_invoice([("I", cure, 100.0)], due=PERSIST_DUE))
    assert row["model"] == "persistence"
    assert row["y"] == y
    check = pd.Timestamp(AS_OF) + 30 * D
    assert row["label_resolved_date"] == (cure if y == 0 else check)
    assert row["delinquent_amount"] == (0.0 if y == 0 else 100.0)


def test_persistence_young_invoice_left_open_is_not_bad():
    # old invoice cures on day 10; a not-yet-due invoice is still open at the check day
    # but only 16 DPD then, so the account did cure
    book = make_book(
        [("I1", "A", "2023-12-15", PERSIST_DUE, 100.0),
         ("I2", "A", "2024-02-15", "2024-03-15", 60.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I1", "2024-03-11", 100.0), ("Z", "2024-12-31", 1.0)])
    row = label(book)
    assert row["model"] == "persistence" and row["y"] == 0.0
    assert row["label_resolved_date"] == pd.Timestamp("2024-03-31")


def test_persistence_censored_before_the_check_day():
    book = make_book([("I", "A", "2023-12-15", PERSIST_DUE, 100.0)],
                     [("I", "2024-02-01", 10.0)])
    assert label(book, data_end=date(2024, 3, 30))["censored"]
    row = label(book, data_end=date(2024, 3, 31))
    assert row["y"] == 1.0 and row["delinquent_amount"] == 90.0


def test_horizon_is_a_setting():
    # cleared at due + 20: good at 30 DPD, bad at 15 DPD
    book = one_invoice([("I", pd.Timestamp(DUE) + 20 * D, 100.0)])
    assert label(book)["y"] == 0.0
    assert label(book, delinquency_dpd=15)["y"] == 1.0
    # persistence over 10 days: uncleared at as_of + 10 -> bad
    late = one_invoice([("I", "2024-03-20", 100.0)], due=PERSIST_DUE)
    assert label(late, persistence_days=10)["y"] == 1.0
    assert label(late, persistence_days=20)["y"] == 0.0


def test_labels_rows_match_the_scored_population():
    book = make_book([("I", "A", "2024-02-01", DUE, 100.0), ("J", "B", "2024-01-01",
                                                              "2024-01-10", 5.0)],
                     [("J", "2024-01-20", 5.0)])
    frame = build_labels(book, as_of=AS_OF)
    assert frame["account_id"].tolist() == ["A"]
    assert list(frame.columns) == ["account_id", "as_of", "model", "y", "label_resolved_date",
                                   "censored", "delinquent_amount"]


# ------------------------------------------------------------------ materiality
# Defaults (features.spec.DEFAULT_MATERIALITY): more than 500 and more than 1% of the open
# balance at as_of.
M = DEFAULT_MATERIALITY


def test_materiality_defaults_are_the_eba_non_retail_pair():
    assert (M.absolute, M.share) == (500.0, 0.01)


@pytest.mark.parametrize(("amount", "model"), [(500.0, "early_warning"),
                                               (500.01, "persistence")])
def test_persistence_population_needs_a_material_amount_past_30(amount, model):
    row = label(one_invoice([], amount=amount, due=PERSIST_DUE), materiality=M)
    assert row["model"] == model


@pytest.mark.parametrize(("late", "model"), [(600.0, "early_warning"),
                                             (600.01, "persistence")])
def test_persistence_population_needs_a_material_share_of_the_exposure(late, model):
    # 60,000 open: 1% is 600; the absolute threshold (500) is passed either way
    book = make_book(
        [("I1", "A", "2023-12-15", PERSIST_DUE, late),
         ("I2", "A", "2024-02-15", DUE, 60_000.0 - 600.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I2", "2024-03-05", 60_000.0 - 600.0), ("Z", "2024-12-31", 1.0)])
    assert label(book, materiality=M)["model"] == model


@pytest.mark.parametrize(("amount", "y"), [(500.0, 0.0), (500.01, 1.0)])
def test_early_warning_bad_only_when_the_crossed_amount_is_material(amount, y):
    crossing = pd.Timestamp(DUE) + 30 * D
    row = label(one_invoice([("I", crossing + 5 * D, amount)], amount=amount), materiality=M)
    assert row["model"] == "early_warning" and row["y"] == y
    assert row["label_resolved_date"] == crossing  # decided on the crossing day either way
    assert row["delinquent_amount"] == (amount if y else 0.0)


def test_early_warning_amounts_add_up_over_crossing_days():
    # 300 crosses on 04-09 (immaterial alone), 300 more on 04-19: material from then
    book = make_book(
        [("I1", "A", "2024-02-01", "2024-03-10", 300.0),
         ("I2", "A", "2024-02-10", "2024-03-20", 300.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("Z", "2024-12-31", 1.0)])
    row = label(book, materiality=M)
    assert row["y"] == 1.0 and row["label_resolved_date"] == pd.Timestamp("2024-04-19")
    assert row["delinquent_amount"] == 600.0


def test_early_warning_share_of_a_large_exposure_is_immaterial():
    # 1,000 crosses unpaid but the open balance is 200,000 (1% = 2,000); the rest is paid
    # in time on 03-25: decided then... and the crossing on 04-09 is the last resolution
    book = make_book(
        [("I1", "A", "2024-02-01", DUE, 1_000.0),
         ("I2", "A", "2024-02-01", "2024-03-15", 199_000.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I2", "2024-03-25", 199_000.0), ("Z", "2024-12-31", 1.0)])
    row = label(book, materiality=M)
    assert row["model"] == "early_warning" and row["y"] == 0.0
    assert row["label_resolved_date"] == pd.Timestamp(DUE) + 30 * D
    assert row["delinquent_amount"] == 0.0


def test_an_immaterial_residue_counts_once_more_crosses():
    # a 100 residue already 46 days past due (immaterial): early-warning population; the
    # 1,000 invoice crossing unpaid makes 1,100 past 30 days
    book = make_book(
        [("R", "A", "2023-12-15", PERSIST_DUE, 100.0),
         ("I", "A", "2024-02-01", DUE, 1_000.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("Z", "2024-12-31", 1.0)])
    row = label(book, materiality=M)
    assert row["model"] == "early_warning" and row["y"] == 1.0
    assert row["label_resolved_date"] == pd.Timestamp(DUE) + 30 * D
    assert row["delinquent_amount"] == 1_100.0


def test_an_immaterial_residue_alone_is_decided_good():
    # the residue stays unpaid; the other invoice clears in time on 03-20
    book = make_book(
        [("R", "A", "2023-12-15", PERSIST_DUE, 100.0),
         ("I", "A", "2024-02-01", DUE, 1_000.0),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I", "2024-03-20", 1_000.0), ("Z", "2024-12-31", 1.0)])
    row = label(book, materiality=M)
    assert row["y"] == 0.0 and row["label_resolved_date"] == pd.Timestamp("2024-03-20")


@pytest.mark.parametrize(("left", "y"), [(500.0, 0.0), (500.01, 1.0)])
def test_persistence_bad_only_when_the_amount_left_is_material(left, y):
    # two invoices 46 DPD; the 2,000 one cures on day 10, the other is left at the check day
    book = make_book(
        [("I1", "A", "2023-12-15", PERSIST_DUE, 2_000.0),
         ("I2", "A", "2023-12-15", PERSIST_DUE, left),
         ("Z", "B", "2024-02-01", "2024-02-02", 1.0)],
        [("I1", "2024-03-11", 2_000.0), ("Z", "2024-12-31", 1.0)])
    row = label(book, materiality=M)
    assert row["model"] == "persistence" and row["y"] == y
    assert row["label_resolved_date"] == pd.Timestamp(AS_OF) + 30 * D
    assert row["delinquent_amount"] == (left if y else 0.0)


def test_materiality_is_a_parameter():
    book = one_invoice([], amount=100.0, due=PERSIST_DUE)
    assert label(book, materiality=M)["model"] == "early_warning"
    assert label(book, materiality=Materiality(absolute=50.0, share=0.0))["model"] == (
        "persistence")
