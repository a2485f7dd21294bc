"""Receivables KPIs, hand-checked on tiny books (issue 17): one test per KPI, then the edges
(an empty book, months without sales, credits). Each expected value is derived in place
from the formula in ``features.pit.kpis``'s docstring."""

from __future__ import annotations

import json
from datetime import date

import pytest

from features.pit.kpis import (
    AGING_NAMES,
    Receivables,
    average_days_delinquent,
    best_possible_dso,
    collected_from,
    collection_effectiveness_index,
    compute_kpis,
    countback_days,
    credit_sales,
    dso_countback,
    months_back,
    promise_kept_rate,
    receivables,
)
from tests.factories import make_book

AS_OF = date(2024, 7, 1)

# As of 2024-07-01 (dates in 2024). Months back: m1 = [06-01, 07-01) 30 days,
# m2 = [05-01, 06-01) 31 days, m3 = [04-01, 05-01) 30 days, m4 = [03-01, 04-01) 31 days.
# A: I1 issued 03-01 due 03-31 $300, unpaid             -> open $300, DPD 92 (91+)
#    I2 issued 04-15 due 05-15 $200, $50 paid 05-20     -> open $150, DPD 47 (31-60)
#    I3 issued 05-10 due 06-09 $400, paid 06-05          -> cleared
#    I4 issued 06-01 due 06-16 $100, paid 07-01 (on as_of: unknown) -> open $100, DPD 15
# B: J1 issued 06-10 due 07-10 $600                      -> open $600, DPD -9 (current)
#    J2 issued 04-01 due 04-20 $250; credit note C1 -$100 on 06-20, unnamed: oldest due
#       open invoice first -> J2 open $150, DPD 72 (61-90)
# Total AR = 300 + 150 + 100 + 600 + 150 = 1300.
# Net credit sales: m1 = 100 + 600 - 100 = 600; m2 = 400; m3 = 200 + 250 = 450; m4 = 300.
BOOK = make_book(
    invoices=[
        ("I1", "A", "2024-03-01", "2024-03-31", 300.0),
        ("I2", "A", "2024-04-15", "2024-05-15", 200.0),
        ("I3", "A", "2024-05-10", "2024-06-09", 400.0),
        ("I4", "A", "2024-06-01", "2024-06-16", 100.0),
        ("J1", "B", "2024-06-10", "2024-07-10", 600.0),
        ("J2", "B", "2024-04-01", "2024-04-20", 250.0),
        ("C1", "B", "2024-06-20", "2024-06-20", -100.0),
    ],
    payments=[
        ("I2", "2024-05-20", 50.0),
        ("I3", "2024-06-05", 400.0),
        ("I4", "2024-07-01", 100.0),
    ],
)


def test_months_are_calendar_months_back_from_as_of():
    assert months_back(AS_OF, 1) == date(2024, 6, 1)
    assert months_back(date(2024, 1, 15), 1) == date(2023, 12, 15)
    assert months_back(date(2024, 3, 31), 1) == date(2024, 2, 29)  # clipped to the month end
    assert months_back(date(2024, 3, 31), 13) == date(2023, 2, 28)


def test_total_ar_and_aging_buckets():
    got = receivables(BOOK, as_of=AS_OF)
    assert got == Receivables(
        total_ar=1300.0,
        aging={"current": 600.0, "1-30": 100.0, "31-60": 150.0, "61-90": 150.0, "91+": 300.0},
        unapplied_credit=0.0, current_ar=600.0)
    assert tuple(got.aging) == AGING_NAMES


def test_aging_bucket_edges():
    # invoices due `dpd` days before as_of, amounts powers of two so each sum is unique:
    # current: DPD 0 ($1) and -5 ($256) = 257; 1-30: DPD 1 ($2) + 30 ($4) = 6;
    # 31-60: 31 ($8) + 60 ($16) = 24; 61-90: 61 ($32) + 90 ($64) = 96; 91+: 91 ($128)
    rows = [(0, 1.0), (1, 2.0), (30, 4.0), (31, 8.0), (60, 16.0), (61, 32.0), (90, 64.0),
            (91, 128.0), (-5, 256.0)]
    as_of_day = 182  # 2024-07-01 as days from 2024-01-01
    book = make_book([(f"X{k}", "A", 0, as_of_day - dpd, amt)
                      for k, (dpd, amt) in enumerate(rows)])
    got = receivables(book, as_of=AS_OF)
    assert got.aging == {"current": 257.0, "1-30": 6.0, "31-60": 24.0, "61-90": 96.0,
                         "91+": 128.0}
    assert got.total_ar == 511.0


def test_credit_sales_are_net_of_credit_notes():
    assert credit_sales(BOOK, start=date(2024, 6, 1), end=AS_OF) == 100 + 600 - 100
    assert credit_sales(BOOK, start=date(2024, 5, 1), end=date(2024, 6, 1)) == 400.0


def test_dso_countback():
    # 1300 > m1 600 -> 30 days, 700 left; > m2 400 -> 61 days, 300 left;
    # <= m3 450 -> 61 + 300 / 450 x 30 = 81
    assert dso_countback(BOOK, as_of=AS_OF) == pytest.approx(81.0)


def test_best_possible_dso():
    # current AR 600 <= m1 600 -> 600 / 600 x 30 = 30
    assert best_possible_dso(BOOK, as_of=AS_OF) == pytest.approx(30.0)


def test_average_days_delinquent():
    assert average_days_delinquent(BOOK, as_of=AS_OF) == pytest.approx(81.0 - 30.0)


def test_collection_effectiveness_index():
    # B = AR known at 06-01: I1 300 + I2 150 + I3 400 + J2 250 = 1100 (I4 issued on 06-01
    # is not known yet; C1 comes later); S = m1 sales 600; E = 1300; Ec = 600.
    # CEI = (1100 + 600 - 1300) / (1100 + 600 - 600) x 100 = 400 / 1100 x 100
    assert receivables(BOOK, as_of=date(2024, 6, 1)).total_ar == 1100.0
    assert collection_effectiveness_index(BOOK, as_of=AS_OF) == pytest.approx(
        round(400 / 1100 * 100, 2))


def test_promise_kept_rate_waits_for_promises():
    assert promise_kept_rate(BOOK, as_of=AS_OF) is None


def test_collected_from_the_previous_worklist():
    # since 06-01: A's I3 paid 400 on 06-05; I4's 100 on 07-01 is not known at as_of,
    # I2's 50 on 05-20 was before the previous run. B paid nothing (C1 is a credit).
    assert collected_from(BOOK, account_ids=["A"], since=date(2024, 6, 1), as_of=AS_OF) == 400.0
    assert collected_from(BOOK, account_ids=["B", "nobody"], since=date(2024, 6, 1),
                          as_of=AS_OF) == 0.0
    assert collected_from(BOOK, account_ids=["A", "B"], since=date(2024, 5, 1),
                          as_of=AS_OF) == 450.0
    with pytest.raises(ValueError, match="after as_of"):
        collected_from(BOOK, account_ids=["A"], since=date(2024, 7, 2), as_of=AS_OF)


def test_compute_kpis_stores_every_kpi_as_json():
    kpis = compute_kpis(BOOK, as_of=AS_OF, previous=(date(2024, 6, 1), ["A"]))
    stored = json.loads(json.dumps(kpis.as_dict()))
    assert stored == {
        "as_of": "2024-07-01", "total_ar": 1300.0,
        "aging": {"current": 600.0, "1-30": 100.0, "31-60": 150.0, "61-90": 150.0,
                  "91+": 300.0},
        "unapplied_credit": 0.0, "dso": 81.0, "best_possible_dso": 30.0,
        "average_days_delinquent": 51.0, "cei": round(400 / 1100 * 100, 2),
        "promise_kept_rate": None, "collected_from_worklist": 400.0,
        "previous_as_of": "2024-06-01"}
    assert compute_kpis(BOOK, as_of=AS_OF).collected_from_worklist is None


# ---------------------------------------------------------------- edges


def test_empty_book():
    book = make_book([])
    kpis = compute_kpis(book, as_of=AS_OF, previous=(date(2024, 6, 1), ["A"]))
    assert kpis.total_ar == 0.0 and set(kpis.aging.values()) == {0.0}
    assert kpis.dso is None and kpis.best_possible_dso is None
    assert kpis.average_days_delinquent is None and kpis.cei is None
    assert kpis.collected_from_worklist == 0.0


# X1 issued 03-15 due 04-14 $500, $200 paid 05-10; X2 issued 06-10 due 07-10 $100.
# Sales: m1 (June) 100, m2 (May) 0, m3 (April) 0, m4 (March) 500.
NO_SALES = make_book(
    [("X1", "A", "2024-03-15", "2024-04-14", 500.0),
     ("X2", "A", "2024-06-10", "2024-07-10", 100.0)],
    [("X1", "2024-05-10", 200.0)])


def test_months_without_sales_add_their_days():
    # AR 300 + 100 = 400: > m1 100 -> 30 days, 300 left; m2 and m3 absorb nothing ->
    # 30 + 31 + 30 = 91; <= m4 500 -> 91 + 300 / 500 x 31 = 109.6.
    # Current AR 100 (X2) <= m1 100 -> 30.
    kpis = compute_kpis(NO_SALES, as_of=AS_OF)
    assert kpis.dso == pytest.approx(91 + 300 / 500 * 31)
    assert kpis.best_possible_dso == pytest.approx(30.0)
    assert kpis.average_days_delinquent == pytest.approx(91 + 300 / 500 * 31 - 30)
    # the walk stops at the book's first invoice: what is left then adds nothing
    assert countback_days(1000.0, [(100.0, 30), (0.0, 31)]) == 61.0
    assert countback_days(0.0, [(100.0, 30)]) == 0.0


def test_cei_of_a_month_without_sales():
    # as of 06-01: m1 = May, no sales. B = AR at 05-01 = X1 500; E = 300 (the $200 paid
    # 05-10); Ec = 0 (X1 is past due). CEI = (500 + 0 - 300) / (500 + 0 - 0) x 100 = 40
    assert collection_effectiveness_index(NO_SALES, as_of=date(2024, 6, 1)) == 40.0
    # nothing owed and nothing sold: no CEI
    assert collection_effectiveness_index(NO_SALES, as_of=date(2024, 3, 1)) is None


def test_credits_net_the_ar_and_count_as_negative_sales():
    # K1 issued 03-01 due 03-31 $50, open (DPD 92); K2 issued 07-05 (after as_of) prepaid
    # $30 on 06-25 -> credit on account $30: AR = 50 - 30 = 20, aging 91+ = 50, unapplied
    # credit 30, current AR = min(0, 20) = 0.
    # L1 issued 06-01 due 07-01 $80; credit note C2 -$80 on 06-15, unnamed: D's oldest due
    # open invoice is L1 -> cleared.
    # m1 net sales = 80 - 80 = 0 (K2 is issued after as_of); m2 0; m3 0; m4 = 50.
    book = make_book(
        [("K1", "C", "2024-03-01", "2024-03-31", 50.0),
         ("K2", "C", "2024-07-05", "2024-08-04", 30.0),
         ("L1", "D", "2024-06-01", "2024-07-01", 80.0),
         ("C2", "D", "2024-06-15", "2024-06-15", -80.0)],
        [("K2", "2024-06-25", 30.0)])
    got = receivables(book, as_of=AS_OF)
    assert got == Receivables(
        total_ar=20.0, aging={"current": 0.0, "1-30": 0.0, "31-60": 0.0, "61-90": 0.0,
                              "91+": 50.0},
        unapplied_credit=30.0, current_ar=0.0)
    assert sum(got.aging.values()) - got.unapplied_credit == got.total_ar
    # countback of 20: m1 0, m2 0, m3 0 -> 30 + 31 + 30 = 91; m4 50 -> 91 + 20 / 50 x 31
    kpis = compute_kpis(book, as_of=AS_OF)
    assert kpis.dso == pytest.approx(91 + 20 / 50 * 31)
    assert kpis.best_possible_dso == 0.0
    # CEI: B = AR at 06-01 = K1 50; S = 0; E = 20; Ec = 0 -> (50 - 20) / 50 x 100 = 60
    assert kpis.cei == 60.0


def test_kpis_from_the_snapshots_prepared_arrays_equal_the_books():
    # the nightly hands the scoring's encoding to the KPIs (one prepare a run): same
    # figures, credits and prepayments included
    from features.pit.snapshot import prepare_book

    credits = make_book(  # a prepayment (credit on account) and a credit note
        [("K1", "C", "2024-03-01", "2024-03-31", 50.0),
         ("K2", "C", "2024-07-05", "2024-08-04", 30.0),
         ("L1", "D", "2024-06-01", "2024-07-01", 80.0),
         ("C2", "D", "2024-06-15", "2024-06-15", -80.0)],
        [("K2", "2024-06-25", 30.0)])
    for book in (BOOK, NO_SALES, credits):
        for as_of in (AS_OF, date(2024, 6, 1)):
            want = compute_kpis(book, as_of=as_of, previous=(date(2024, 6, 1), ["A", "C"]))
            got = compute_kpis(book, as_of=as_of, previous=(date(2024, 6, 1), ["A", "C"]),
                               prepared=prepare_book(book))
            assert got.as_dict() == want.as_dict()



def test_promise_kept_rate_counts_payments_made_before_the_month():
    """The kept rate reads only the month's promises and the payments from their creation
    on (``_promise_counts``): a promise made long before its due month is kept by payments
    made before the month too, and agrees with the states of the whole book."""
    import pandas as pd

    from features.pit.promises import promise_state

    book = make_book(
        invoices=[("I1", "A", "2024-01-01", "2024-01-31", 500.0),
                  ("I2", "A", "2024-02-01", "2024-03-02", 500.0),
                  ("K1", "B", "2024-01-01", "2024-01-31", 500.0)],
        payments=[("I1", "2024-02-10", 150.0),   # before the month: counts toward P1
                  ("I1", "2024-06-10", 50.0),    # in the month: P1 reaches 200 here
                  ("I2", "2024-01-20", 300.0),   # before P2 was made: does not count
                  ("K1", "2024-06-05", 100.0)])  # B's P3 (no invoice named) kept
    promises = pd.DataFrame({
        "promise_id": ["P1", "P2", "P3", "P4"], "account_id": ["A", "A", "B", "B"],
        "created_date": pd.to_datetime(["2024-02-01", "2024-02-15", "2024-05-20",
                                        "2024-01-10"]),
        "promised_date": pd.to_datetime(["2024-06-12", "2024-06-15", "2024-06-08",
                                         "2024-02-01"]),  # P4: due before the month
        "amount": [200.0, 300.0, 100.0, 50.0], "invoice_id": ["I1", "I2", None, None],
        "recorded_date": [None] * 4, "cancelled_date": [None] * 4})
    book = type(book).from_frames(book.invoices, book.payments, book.accounts,
                                  book.disputes, promises)
    # P1 kept (150 before the month + 50 in it), P2 broken, P3 kept; P4 is not in the month
    assert promise_kept_rate(book, as_of=AS_OF) == pytest.approx(2 / 3 * 100.0)
    states = promise_state(book, as_of=AS_OF).set_index("promise_id")["state"]
    assert states.to_dict() == {"P1": "kept", "P2": "broken", "P3": "kept", "P4": "broken"}
