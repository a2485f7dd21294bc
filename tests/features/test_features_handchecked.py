"""Hand-checked tiny books: every feature family with its expected value written out."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from features import FEATURE_SET_VERSION, build_features
from features.spec import DEFAULT_MATERIALITY, NO_MATERIALITY
from tests.factories import make_book

AS_OF = date(2024, 7, 1)

# Account A1 at 2024-07-01 (dates in 2024):
#   I1 issued 01-01 due 01-31 $100, paid 02-20 in full          -> cleared, 20 days late
#   I2 issued 04-01 due 05-01 $200, paid 05-01                  -> cleared, 0 days late
#   I3 issued 05-01 due 05-31 $300, paid 100 on 05-20 + 200 06-20 -> cleared 06-20, 20 late
#   I4 issued 05-15 due 06-14 $400, paid 150 on 06-01 (+250 ON as_of, unknown)
#                                                               -> open $250, 17 DPD
#   I5 issued 06-10 due 07-05 $500                              -> open $500, -4 DPD
#   I6 issued 03-01 due 04-15 $50                               -> open $50, 77 DPD
#   I7 issued 07-01 (on as_of)                                  -> does not exist yet
# Disputes: I1 opened 01-15 resolved 02-01; I4 opened 06-05 unresolved; I5 opened 07-01
# (unknown). Account: small / emea, credit limit 1000, created 2020-01-01.
# A2: one open invoice, no history at all, no accounts row. A3: everything paid.
BOOK = make_book(
    invoices=[
        ("I1", "A1", "2024-01-01", "2024-01-31", 100.0),
        ("I2", "A1", "2024-04-01", "2024-05-01", 200.0),
        ("I3", "A1", "2024-05-01", "2024-05-31", 300.0),
        ("I4", "A1", "2024-05-15", "2024-06-14", 400.0),
        ("I5", "A1", "2024-06-10", "2024-07-05", 500.0),
        ("I6", "A1", "2024-03-01", "2024-04-15", 50.0),
        ("I7", "A1", "2024-07-01", "2024-07-31", 999.0),
        ("J1", "A2", "2024-06-20", "2024-07-01", 80.0),
        ("K1", "A3", "2024-02-01", "2024-03-01", 10.0),
    ],
    payments=[
        ("I1", "2024-02-20", 100.0),
        ("I2", "2024-05-01", 200.0),
        ("I3", "2024-05-20", 100.0),
        ("I3", "2024-06-20", 200.0),
        ("I4", "2024-06-01", 150.0),
        ("I4", "2024-07-01", 250.0),
        ("K1", "2024-02-15", 10.0),
    ],
    disputes=[
        ("I1", "2024-01-15", "2024-02-01"),
        ("I4", "2024-06-05", None),
        ("I5", "2024-07-01", None),
    ],
    accounts=[("A1", "small", "emea", 1000.0, "2020-01-01"), ("A3", "mid", "apac")],
)

EXPECTED_A1 = {
    # exposure
    "open_balance": 800.0, "past_due_amount": 300.0, "oldest_dpd": 77.0,
    "n_open_invoices": 3.0, "n_past_due_invoices": 2.0, "amt_not_due": 500.0,
    "amt_dpd_1_30": 250.0, "amt_dpd_31_60": 0.0, "amt_dpd_61_90": 50.0, "amt_dpd_91_plus": 0.0,
    "past_due_share": 0.375, "amt_due_next_7d": 500.0, "amt_due_next_14d": 500.0,
    "amt_due_next_30d": 500.0, "largest_open_amount": 500.0,
    # payment behaviour: 90d holds I2 (0 late, $200) and I3 (20 late, $300)
    "n_cleared_90d": 2.0, "days_late_mean_90d": 10.0, "days_late_max_90d": 20.0,
    "days_late_wmean_90d": 12.0, "share_late_1d_90d": 0.5, "share_late_15d_90d": 0.5,
    "share_late_30d_90d": 0.0,
    # 180d/365d/all add I1 (20 late, $100)
    **{f"{k}_{w}": v for w in ("180d", "365d", "all") for k, v in {
        "n_cleared": 3.0, "days_late_mean": 40 / 3, "days_late_max": 20.0,
        "days_late_wmean": 8000 / 600, "share_late_1d": 2 / 3, "share_late_15d": 2 / 3,
        "share_late_30d": 0.0}.items()},
    "days_late_last": 20.0, "days_late_trend_90d_vs_365d": 10.0 - 20.0,
    "days_since_last_payment": 11.0,
    # first paid in 365d: I1 (cleared that day), I2 (same), I3 (partial), I4 (partial)
    "partial_payment_share_365d": 0.5,
    # activity: I2 issued 91 days before as_of, outside the 90-day window
    "n_invoices_90d": 3.0, "n_invoices_365d": 6.0, "amt_billed_90d": 1200.0,
    "amt_billed_365d": 1550.0, "avg_invoice_amount_365d": 1550 / 6, "tenure_days": 182.0,
    "terms_days_median": 30.0,
    # disputes: I4's open dispute; I1 and I4 disputed within 365 days
    "n_open_disputes": 1.0, "amt_open_disputes": 250.0, "n_disputes_365d": 2.0,
    "dispute_rate_365d": 2 / 6,
    # account attributes
    "credit_utilisation": 0.8, "account_age_days": 1643.0,
    "account_segment": "small", "account_region": "emea",
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return build_features(BOOK, as_of=AS_OF, materiality=NO_MATERIALITY).set_index("account_id")


def test_population_is_accounts_with_open_invoices(frame):
    assert frame.index.tolist() == ["A1", "A2"]
    assert frame.loc["A1", "segment"] == "delinquent"
    assert frame.loc["A2", "segment"] == "preventive"
    assert (frame["as_of"] == pd.Timestamp(AS_OF)).all()


@pytest.mark.parametrize("feature", sorted(EXPECTED_A1))
def test_every_feature_of_a_hand_checked_account(frame, feature):
    got, want = frame.loc["A1", feature], EXPECTED_A1[feature]
    if isinstance(want, str):
        assert got == want
    else:
        assert got == pytest.approx(want, rel=1e-12), feature


def test_account_without_history_has_missing_not_zero(frame):
    a2 = frame.loc["A2"]
    for f in ("days_late_mean_90d", "days_late_max_all", "days_late_wmean_365d",
              "share_late_1d_all", "days_late_last", "days_late_trend_90d_vs_365d",
              "days_since_last_payment", "partial_payment_share_365d",
              "credit_utilisation", "account_age_days"):
        assert math.isnan(a2[f]), f
    assert pd.isna(a2["account_segment"]) and pd.isna(a2["account_region"])
    # counts of nothing are facts (zero), and exposure is fully defined
    assert a2["n_cleared_all"] == 0 and a2["n_disputes_365d"] == 0
    assert a2["open_balance"] == 80 and a2["oldest_dpd"] == 0 and a2["amt_due_next_7d"] == 80
    assert a2["dispute_rate_365d"] == 0 and a2["tenure_days"] == 11


def test_categories_are_the_books_values_for_every_snapshot(frame):
    assert list(frame["account_segment"].cat.categories) == ["mid", "small"]
    assert list(frame["account_region"].cat.categories) == ["apac", "emea"]


@pytest.mark.parametrize(("dpd", "segment"), [
    (-5, "preventive"), (0, "preventive"), (1, "early"), (29, "early"), (30, "delinquent"),
    (89, "delinquent"), (90, "late"), (400, "late")])
def test_segment_boundaries(dpd, segment):
    due = pd.Timestamp(AS_OF) - pd.Timedelta(days=dpd)
    issue = min(due, pd.Timestamp(AS_OF) - pd.Timedelta(days=1))
    book = make_book([("I", "A", issue, due, 10.0), ("J", "A", issue, pd.Timestamp(AS_OF), 5.0)])
    row = build_features(book, as_of=AS_OF, materiality=NO_MATERIALITY).iloc[0]
    assert row["oldest_dpd"] == max(dpd, 0)
    assert row["segment"] == segment


def test_overpayment_and_tolerance():
    book = make_book(
        [("I1", "A", "2024-01-01", "2024-02-01", 100.0), ("I2", "A", "2024-01-01", "2024-02-01",
                                                          100.0),
         ("I3", "A", "2024-06-01", "2024-07-01", 10.0)],
        [("I1", "2024-02-05", 99.99), ("I2", "2024-02-05", 99.98)])
    row = build_features(book, as_of=AS_OF).iloc[0]
    # I1 is within one cent -> cleared; I2 is two cents short -> still open for $0.02
    assert row["n_open_invoices"] == 2
    assert row["open_balance"] == pytest.approx(10.02)
    assert row["n_cleared_all"] == 1


def test_feature_set_version_changes_with_any_definition():
    from features.spec import FEATURE_SPEC, feature_set_version

    assert feature_set_version() == FEATURE_SET_VERSION
    for name in ("open_balance", "dispute_rate_365d"):
        spec = dict(FEATURE_SPEC)
        spec[name] += " (changed)"
        assert feature_set_version(spec) != FEATURE_SET_VERSION
    renamed = {("x" if k == "tenure_days" else k): v for k, v in FEATURE_SPEC.items()}
    assert feature_set_version(renamed) != FEATURE_SET_VERSION


def test_due_soon_and_aging_bucket_edges():
    as_of = pd.Timestamp(AS_OF)
    # one invoice per edge, amount = 2**k so every sum identifies its members
    dpds = [-30, -29, -14, -13, -7, -6, 0, 1, 30, 31, 60, 61, 90, 91]
    invoices = [(f"I{k}", "A", as_of - pd.Timedelta(days=max(d, 0) + 40),
                 as_of - pd.Timedelta(days=d), float(2**k)) for k, d in enumerate(dpds)]
    row = build_features(make_book(invoices), as_of=AS_OF, materiality=NO_MATERIALITY).iloc[0]

    def total(*members):
        return float(sum(2 ** dpds.index(d) for d in members))

    assert row["amt_due_next_7d"] == total(-6, 0)
    assert row["amt_due_next_14d"] == total(-13, -7, -6, 0)
    assert row["amt_due_next_30d"] == total(-29, -14, -13, -7, -6, 0)
    assert row["amt_not_due"] == total(-30, -29, -14, -13, -7, -6, 0)
    assert row["amt_dpd_1_30"] == total(1, 30)
    assert row["amt_dpd_31_60"] == total(31, 60)
    assert row["amt_dpd_61_90"] == total(61, 90)
    assert row["amt_dpd_91_plus"] == total(91)
    assert row["n_past_due_invoices"] == 7 and row["oldest_dpd"] == 91
    assert row["segment"] == "late"


# The one openness rule in whole cents (issue 10): features, facts and labels agree.
# Account A at 2024-07-01:
#   I1 issued 01-01 due 02-01 $100, paid $99.99 on 02-05    -> cleared 02-05 (1 cent short)
#   I2 issued 05-01 due 06-01 $40, unpaid                   -> open $40, 30 DPD
# Account B: the same, but $99.98 paid on I1                -> I1 open for $0.02, 151 DPD
CENT_BOOK = make_book(
    invoices=[
        ("I1", "A", "2024-01-01", "2024-02-01", 100.0),
        ("I2", "A", "2024-05-01", "2024-06-01", 40.0),
        ("J1", "B", "2024-01-01", "2024-02-01", 100.0),
        ("J2", "B", "2024-05-01", "2024-06-01", 40.0),
    ],
    payments=[("I1", "2024-02-05", 99.99), ("J1", "2024-02-05", 99.98)],
)


@pytest.fixture(scope="module")
def cents() -> pd.DataFrame:
    return build_features(CENT_BOOK, as_of=AS_OF, facts=True,
                          materiality=NO_MATERIALITY).set_index("account_id")


def test_one_cent_short_is_cleared_and_only_the_other_invoice_is_open(cents):
    a = cents.loc["A"]
    assert a["n_open_invoices"] == 1 and a["open_balance"] == 40.0
    assert a["oldest_dpd"] == 30 and a["segment"] == "delinquent"
    assert a["oldest_invoice_id"] == "I2" and a["oldest_invoice_open"] == 40.0
    assert not a["partial_payer"]
    # I1 cleared on its first payment day, 4 days late: no instalments
    assert a["partial_payment_share_365d"] == 0.0
    assert a["n_cleared_all"] == 1 and a["days_late_last"] == 4


def test_two_cents_short_stays_open_and_is_a_partial_payment(cents):
    b = cents.loc["B"]
    assert b["n_open_invoices"] == 2
    assert b["open_balance"] == pytest.approx(40.02, rel=1e-12)
    assert b["oldest_dpd"] == 151 and b["segment"] == "late"
    assert b["oldest_invoice_id"] == "J1"
    assert b["oldest_invoice_open"] == pytest.approx(0.02, rel=1e-9)
    assert b["partial_payer"]
    assert b["partial_payment_share_365d"] == 1.0 and b["n_cleared_all"] == 0


def test_labels_use_the_same_openness_rule():
    from features import build_labels

    labels = build_labels(CENT_BOOK, as_of=AS_OF, data_end=date(2024, 8, 1),
                          materiality=NO_MATERIALITY)
    labels = labels.set_index("account_id")
    # A's only open invoice is I2 (30 DPD): persistence, still unpaid at the check day
    assert labels.loc["A", "model"] == "persistence" and labels.loc["A", "y"] == 1.0
    assert labels.loc["A", "delinquent_amount"] == 40.0
    assert labels.loc["B", "delinquent_amount"] == pytest.approx(40.02, rel=1e-12)


def test_as_of_is_a_day_and_strings_are_refused():
    by_timestamp = build_features(CENT_BOOK, as_of=pd.Timestamp("2024-07-01 18:30"))
    pd.testing.assert_frame_equal(by_timestamp, build_features(CENT_BOOK, as_of=AS_OF))
    with pytest.raises(TypeError, match="expected a date"):
        build_features(CENT_BOOK, as_of="2024-07-01")


# ------------------------------------------------------------------ material segments
# Defaults: more than 500 and more than 1% of the open balance (DESIGN section 5).


def _segment_of(*invoices: tuple[int, float]) -> pd.Series:
    """Account A's features for open invoices given as (DPD at AS_OF, amount)."""
    rows = []
    for k, (dpd, amount) in enumerate(invoices):
        due = pd.Timestamp(AS_OF) - pd.Timedelta(days=dpd)
        issue = min(due, pd.Timestamp(AS_OF) - pd.Timedelta(days=1))
        rows.append((f"I{k}", "A", issue, due, amount))
    return build_features(make_book(rows), as_of=AS_OF, facts=True).iloc[0]


@pytest.mark.parametrize(("amount", "segment"), [(500.0, "preventive"), (500.01, "early")])
def test_early_needs_a_material_past_due_amount(amount, segment):
    assert _segment_of((10, amount))["segment"] == segment


@pytest.mark.parametrize(("amount", "segment"), [(500.0, "early"), (500.01, "delinquent")])
def test_delinquent_needs_a_material_amount_30_plus(amount, segment):
    assert _segment_of((30, amount), (10, 1_000.0))["segment"] == segment


@pytest.mark.parametrize(("amount", "segment"), [(500.0, "delinquent"), (500.01, "late")])
def test_late_needs_a_material_amount_90_plus(amount, segment):
    row = _segment_of((90, amount), (45, 1_000.0))
    assert row["segment"] == segment
    assert row["past_due_90_plus"] == amount and row["past_due_30_plus"] == amount + 1_000.0


@pytest.mark.parametrize(("late", "segment"), [(1_000.0, "preventive"), (1_000.01, "late")])
def test_the_share_of_the_open_balance_must_be_material_too(late, segment):
    # open balance 100,000: 1% is 1,000
    assert _segment_of((120, late), (-5, 100_000.0 - late))["segment"] == segment


def test_an_immaterial_residue_leaves_the_account_preventive():
    # the issue's case: $32 38 days late beside a large not-yet-due balance
    row = _segment_of((38, 32.0), (-10, 49_000.0))
    assert row["segment"] == "preventive"
    assert row["oldest_dpd"] == 38 and row["past_due_amount"] == 32.0
    assert row["past_due_30_plus"] == 32.0  # the residue stays a fact


def test_default_materiality_is_the_default_of_build_features():
    book = make_book([("I", "A", "2024-01-01", "2024-02-01", 300.0)])
    assert build_features(book, as_of=AS_OF)["segment"].tolist() == ["preventive"]
    assert build_features(book, as_of=AS_OF, materiality=DEFAULT_MATERIALITY).equals(
        build_features(book, as_of=AS_OF))
