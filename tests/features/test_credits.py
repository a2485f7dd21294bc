"""Credits, overpayments and prepayments in the one openness rule, hand-checked (issue 13).

A tiny book whose balances, DPD and segments are derived by hand in the comments, then one
test per edge of the rule (the day a credit counts, which invoice it goes to, the remainder,
the prepayment's issue day), then validation's side: kept, counted, never quarantined.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.reference_features import reference_features, reference_labels
from features import build_features, build_labels
from features.contract.book import Book
from features.contract.validation import validate_tables
from features.pit.credits import applied_payments, credit_changes
from features.spec import NO_MATERIALITY
from tests.factories import books_and_as_of, make_book, with_credits

AS_OF = date(2024, 7, 1)


def with_refs(book: Book, refs: dict[str, str]) -> Book:
    """``book`` with ``reference_invoice_id`` set on the credit notes named in ``refs``."""
    inv = book.invoices.copy()
    inv["reference_invoice_id"] = inv["invoice_id"].map(refs).astype("str")
    inv.loc[~inv["invoice_id"].isin(list(refs)), "reference_invoice_id"] = None
    return Book.from_frames(inv, book.payments, book.accounts, book.disputes)


# As of 2024-07-01 (dates in 2024); every cent counts (NO_MATERIALITY): the amounts here are
# far below the default materiality threshold, which has its own tests (test_labels.py).
# A (an unnamed credit note):
#   I1 issued 01-01 due 01-31 $100, unpaid
#   I2 issued 03-01 due 03-31 $200, unpaid
#   C1 credit note 04-10 -$150, unnamed  -> oldest due first on 04-10: I1 gets 100 (cleared
#      04-10, 70 days late), I2 gets 50    -> I2 open $150, DPD 07-01 - 03-31 = 92: late
#   (without the credit: I1 152 DPD, balance $300)
# B (an overpayment; the remainder waits for the next invoice):
#   J1 issued 02-01 due 03-02 $100, paid $160 on 03-01 -> cleared 03-01, $60 credit on
#      account (nothing else open)
#   J2 issued 05-01 due 05-31 $100 -> the $60 applied on its issue day -> open $40,
#      DPD 31: delinquent; credit on account 0
# C (prepayments):
#   K1 issued 06-20 due 07-20 $80, paid $80 on 06-10 (before issue) -> applied 06-20:
#      cleared, never open
#   K2 issued 03-01 due 03-31 $50, unpaid -> open $50, DPD 92
#   K3 issued 07-05 (after as_of) $30, paid $30 on 06-25 -> held as credit on account $30
#   -> open_balance = 50 - 30 = $20, credit_on_account $30, oldest DPD 92: late
# D (a credit note naming its invoice):
#   L1 issued 01-01 due 01-31 $100; L2 issued 02-01 due 03-02 $100
#   C2 credit note 05-01 -$100 naming L2 -> L2 cleared 05-01; L1 open $100, DPD 152: late
#   (unnamed, it would have cleared L1 and left L2 at 121 DPD)
# E (credit larger than everything open: net balance never negative):
#   M1 issued 06-01 due 07-01 $40; C3 credit note 06-15 -$100 -> M1 cleared 06-15,
#   $60 credit on account; M2 issued 06-20 due 07-20 $70 -> $60 applied 06-20, open $10
#   -> open_balance $10, not due (DPD -19): preventive
BOOK = with_refs(make_book(
    invoices=[
        ("I1", "A", "2024-01-01", "2024-01-31", 100.0),
        ("I2", "A", "2024-03-01", "2024-03-31", 200.0),
        ("C1", "A", "2024-04-10", "2024-04-10", -150.0),
        ("J1", "B", "2024-02-01", "2024-03-02", 100.0),
        ("J2", "B", "2024-05-01", "2024-05-31", 100.0),
        ("K1", "C", "2024-06-20", "2024-07-20", 80.0),
        ("K2", "C", "2024-03-01", "2024-03-31", 50.0),
        ("K3", "C", "2024-07-05", "2024-08-04", 30.0),
        ("L1", "D", "2024-01-01", "2024-01-31", 100.0),
        ("L2", "D", "2024-02-01", "2024-03-02", 100.0),
        ("C2", "D", "2024-05-01", "2024-05-01", -100.0),
        ("M1", "E", "2024-06-01", "2024-07-01", 40.0),
        ("C3", "E", "2024-06-15", "2024-06-15", -100.0),
        ("M2", "E", "2024-06-20", "2024-07-20", 70.0),
    ],
    payments=[
        ("J1", "2024-03-01", 160.0),
        ("K1", "2024-06-10", 80.0),
        ("K3", "2024-06-25", 30.0),
    ],
), {"C2": "L2"})

EXPECTED = {  # account: (open_balance, oldest_dpd, segment, n_open, credit_on_account)
    "A": (150.0, 92.0, "late", 1.0, 0.0),
    "B": (40.0, 31.0, "delinquent", 1.0, 0.0),
    "C": (20.0, 92.0, "late", 1.0, 30.0),
    "D": (100.0, 152.0, "late", 1.0, 0.0),
    "E": (10.0, -19.0, "preventive", 1.0, 0.0),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    frame = build_features(BOOK, as_of=AS_OF, facts=True, materiality=NO_MATERIALITY)
    return frame.set_index("account_id")


@pytest.mark.parametrize("account", sorted(EXPECTED))
def test_hand_checked_net_balances_dpd_and_segments(frame, account):
    balance, dpd, segment, n_open, credit = EXPECTED[account]
    row = frame.loc[account]
    assert row["open_balance"] == pytest.approx(balance)
    assert row["oldest_dpd"] == dpd
    assert row["segment"] == segment
    assert row["n_open_invoices"] == n_open
    assert row["credit_on_account"] == pytest.approx(credit)


def test_hand_checked_clearing_and_oldest_invoice(frame):
    # A: I1 cleared by the credit note on 04-10, 70 days after its due date
    assert frame.loc["A", "n_cleared_all"] == 1
    assert frame.loc["A", "days_late_max_all"] == 70
    assert frame.loc["A", "oldest_invoice_id"] == "I2"
    assert frame.loc["A", "oldest_invoice_open"] == pytest.approx(150.0)
    # D: the named invoice L2 was credited, L1 stays the oldest open
    assert frame.loc["D", "oldest_invoice_id"] == "L1"
    # C: K1 was paid in advance, never open; its clearing is its issue day (30 days early)
    assert frame.loc["C", "days_late_max_all"] == -30


def test_hand_checked_applications():
    applied = applied_payments(BOOK)
    got = {(r.invoice_id, str(r.payment_date.date()), r.amount)
           for r in applied.itertuples(index=False)}
    assert got == {
        ("I1", "2024-04-10", 100.0), ("I2", "2024-04-10", 50.0),
        ("J1", "2024-03-01", 100.0), ("J2", "2024-05-01", 60.0),
        ("K1", "2024-06-20", 80.0), ("K3", "2024-07-05", 30.0),
        ("L2", "2024-05-01", 100.0),
        ("M1", "2024-06-15", 40.0), ("M2", "2024-06-20", 60.0),
    }
    changes = credit_changes(BOOK)
    assert changes.groupby("account_id")["amount"].sum().round(2).to_dict() == {
        "A": 0.0, "B": 0.0, "C": 0.0, "E": 0.0}  # each was on account, all applied in the end


def test_labels_see_the_credit():
    # A's I2 open $150 at 92 DPD stays unpaid: persistence y = 1 on the net amount
    labels = build_labels(BOOK, as_of=AS_OF, data_end=date(2024, 9, 1),
                          materiality=NO_MATERIALITY).set_index("account_id")
    assert labels.loc["A", "model"] == "persistence"
    assert labels.loc["A", "delinquent_amount"] == pytest.approx(150.0)
    assert "C" in labels.index and labels.loc["C", "delinquent_amount"] == pytest.approx(50.0)


# ---------------------------------------------------------------- one test per rule edge


def _one(invoices, payments=(), as_of=AS_OF, refs=None) -> pd.Series | None:
    book = make_book(invoices, payments)
    if refs:
        book = with_refs(book, refs)
    out = build_features(book, as_of=as_of, facts=True)
    return None if out.empty else out.iloc[0]


INV_OLD = ("I1", "A", "2024-05-01", "2024-05-31", 100.0)


def test_a_credit_dated_on_as_of_is_not_known_yet():
    credit = ("C", "A", "2024-07-01", "2024-07-01", -100.0)
    assert _one([INV_OLD, credit])["open_balance"] == 100.0
    assert _one([INV_OLD, credit], as_of=date(2024, 7, 2)) is None  # the day after: cleared


def test_a_prepayment_is_applied_on_the_issue_day():
    later = ("I2", "A", "2024-06-20", "2024-07-20", 40.0)
    pay = [("I2", "2024-06-01", 40.0)]
    on_issue = _one([INV_OLD, later], pay, as_of=date(2024, 6, 20))
    assert on_issue["n_open_invoices"] == 1  # I2 does not exist yet: its money waits
    assert on_issue["credit_on_account"] == 40.0 and on_issue["open_balance"] == 60.0
    after = _one([INV_OLD, later], pay, as_of=date(2024, 6, 21))
    assert after["n_open_invoices"] == 1 and after["credit_on_account"] == 0.0
    assert after["open_balance"] == 100.0  # I2 cleared on its issue day; I1 untouched


def test_a_prepayment_before_as_of_is_not_look_ahead():
    # paid 06-01 for an invoice issued 06-20: at 06-02 it is credit, not a cleared invoice
    row = _one([INV_OLD, ("I2", "A", "2024-06-20", "2024-07-20", 40.0)],
               [("I2", "2024-06-01", 40.0)], as_of=date(2024, 6, 2))
    assert row["n_open_invoices"] == 1 and row["credit_on_account"] == 40.0


def test_credit_goes_oldest_due_first_ties_by_issue_then_id():
    a = ("IA", "A", "2024-03-01", "2024-04-30", 50.0)
    b = ("IB", "A", "2024-02-01", "2024-04-30", 50.0)  # same due, issued earlier: first
    credit = ("C", "A", "2024-06-01", "2024-06-01", -50.0)
    assert _one([a, b, credit])["oldest_invoice_id"] == "IA"


def test_an_overpayment_excess_goes_to_the_oldest_due_open_invoice():
    newer = ("I2", "A", "2024-06-01", "2024-06-30", 100.0)
    oldest = ("I0", "A", "2024-04-01", "2024-04-30", 30.0)
    row = _one([INV_OLD, newer, oldest], [("I2", "2024-06-10", 150.0)])
    # I2 takes 100; the $50 excess clears I0 ($30) then $20 of I1 -> I1 open $80
    assert row["n_open_invoices"] == 1 and row["oldest_invoice_id"] == "I1"
    assert row["open_balance"] == 80.0


def test_a_named_invoice_of_another_account_is_ignored():
    other = ("X1", "B", "2024-01-01", "2024-01-31", 100.0)
    credit = ("C", "A", "2024-06-01", "2024-06-01", -100.0)
    feats = build_features(with_refs(make_book([INV_OLD, other, credit]), {"C": "X1"}),
                           as_of=AS_OF).set_index("account_id")
    assert feats.index.tolist() == ["B"]  # A's own invoice took the credit; X1 untouched
    assert feats.loc["B", "open_balance"] == 100.0


def test_the_remainder_is_credit_on_account_and_never_makes_a_balance_negative():
    credit = ("C", "A", "2024-06-01", "2024-06-01", -500.0)
    assert _one([INV_OLD, credit]) is None  # nothing open: not scored
    changes = credit_changes(make_book([INV_OLD, credit]))
    assert changes["amount"].sum() == pytest.approx(400.0)  # $400 still on account


def test_a_partial_credit_keeps_the_invoice_open_for_the_rest():
    row = _one([INV_OLD, ("C", "A", "2024-06-01", "2024-06-01", -30.0)])
    assert row["open_balance"] == 70.0 and row["oldest_dpd"] == 31 and row["partial_payer"]


# ---------------------------------------------------------------- validation keeps them

INV_COLS = ["invoice_id", "account_id", "issue_date", "due_date", "amount", "document_type"]


def test_validation_keeps_and_counts_credit_notes_prepayments_and_overpayments():
    invoices = pd.DataFrame([
        ("I1", "A", "2024-01-01", "2024-01-31", "100", "invoice"),
        ("I2", "A", "2024-02-01", "2024-03-02", "200", "invoice"),
        ("C1", "A", "2024-04-01", "2024-04-01", "-50", "invoice"),
        ("C2", "A", "2024-04-02", "2024-04-02", "25", "Credit Note"),
    ], columns=INV_COLS)
    payments = pd.DataFrame([
        ("I1", "2023-12-20", "100"),  # prepayment
        ("I2", "2024-03-01", "230"),  # overpaid by 30
    ], columns=["invoice_id", "payment_date", "amount"])
    result = validate_tables({"invoices": invoices, "payments": payments})
    assert result.ok  # nothing quarantined
    amounts = result.book.invoices.set_index("invoice_id")["amount"]
    assert amounts["C1"] == -50.0 and amounts["C2"] == -25.0  # a credit type is negated
    assert result.credits == {
        "credit_notes": 2, "credit_note_amount": 75.0, "prepayments": 1,
        "prepayment_amount": 100.0, "overpaid_invoices": 1, "overpaid_amount": 30.0}
    assert ("kept as credits: 2 credit notes (75.00), 1 prepayment (100.00), "
            "1 overpaid invoice (excess 30.00)") in result.render()


def test_a_zero_invoice_and_a_negative_payment_are_still_quarantined():
    invoices = pd.DataFrame([("I1", "A", "2024-01-01", "2024-01-31", "0", "invoice")],
                            columns=INV_COLS)
    payments = pd.DataFrame([("I1", "2024-02-01", "-5")],
                            columns=["invoice_id", "payment_date", "amount"])
    result = validate_tables({"invoices": invoices, "payments": payments}, max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["non_positive_amount"]
    assert result.quarantine["payments"]["_rule"].tolist() == ["non_positive_amount"]


# ---------------------------------------------------------------- the oracle and row order


@settings(max_examples=30, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000))
def test_features_and_labels_equal_the_reference_with_credits(case, seed):
    book, as_of = case
    book = with_credits(book, np.random.default_rng(seed), as_of - pd.Timedelta(days=150),
                        200, "K")
    pd.testing.assert_frame_equal(
        build_features(book, as_of=as_of, facts=True),
        reference_features(book, as_of=as_of, facts=True),
        check_exact=False, rtol=1e-9, atol=1e-9)
    pd.testing.assert_frame_equal(build_labels(book, as_of=as_of),
                                  reference_labels(book, as_of=as_of),
                                  check_exact=False, rtol=1e-9, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000))
def test_shuffled_rows_apply_credits_the_same_way(case, seed):
    book, as_of = case
    rng = np.random.default_rng(seed)
    book = with_credits(book, rng, as_of - pd.Timedelta(days=150), 200, "K")

    def shuffle(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)

    shuffled = Book(**{t: shuffle(f) for t, f in book.tables().items()})
    pd.testing.assert_frame_equal(build_features(book, as_of=as_of),
                                  build_features(shuffled, as_of=as_of),
                                  check_exact=False, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n_invoices=st.integers(0, 30), seed=st.integers(0, 2**32 - 1))
def test_payment_credits_sum_exactly_as_a_weighted_bincount(n_invoices: int, seed: int) -> None:
    """The per-invoice sums (added in row order, in place) equal numpy's weighted bincount
    and the former expression bit for bit, on amounts that overpay by fractions of a cent."""
    import polars as pl

    from features.contract.credits import _paid, payment_credits
    from features.contract.parsing import value

    rng = np.random.default_rng(seed)
    n_pay = int(rng.integers(0, 60)) if n_invoices else 0
    parent = rng.integers(0, max(n_invoices, 1), n_pay).astype(np.int64)
    amount = np.round(rng.uniform(0.01, 500, n_pay), 2) + rng.choice([0, 0.004, 0.006], n_pay)
    invoices = np.round(rng.uniform(1, 800, n_invoices), 2)
    paid, has = _paid(parent, amount, n_invoices, np.ones(0, np.bool_))
    expected = np.bincount(parent, weights=amount, minlength=n_invoices)
    assert paid.tobytes() == expected.astype(np.float64).tobytes()
    assert has.tolist() == (np.bincount(parent, minlength=n_invoices) > 0).tolist()
    day = pl.Series([date(2024, 1, 2)] * n_pay, dtype=pl.Date)
    kept = pl.DataFrame({value("payment_date"): day, "__parent_issue": day,
                         "__parent": pl.Series(parent, dtype=pl.Int64),
                         value("amount"): pl.Series(amount, dtype=pl.Float64)})
    got = payment_credits(kept, pl.Series(invoices, dtype=pl.Float64))
    cents = np.round((expected[has] - invoices[has]) * 100)
    excess = cents[cents >= 1]
    assert got["overpaid_invoices"] == len(excess)
    assert got["overpaid_amount"] == round(float(excess.sum()) / 100, 2)
    # Rows not kept (quarantined: no invoice row, any amount, an earlier date) interleaved
    # with the kept ones are read past, never counted: the same figures as the kept alone.
    bad = pl.DataFrame({value("payment_date"): pl.Series([date(2023, 1, 1)] * n_pay,
                                                          dtype=pl.Date),
                        "__parent_issue": day, "__parent": pl.Series([None] * n_pay,
                                                                      dtype=pl.Int64),
                        value("amount"): pl.Series(amount * 7, dtype=pl.Float64)})
    mixed = pl.concat([kept, bad]).with_columns(pl.int_range(2 * n_pay).alias("__i")).sort(
        pl.col("__i") % max(n_pay, 1), "__i").drop("__i").rechunk()
    keep = mixed.get_column(value("payment_date")) == date(2024, 1, 2)
    assert payment_credits(mixed, pl.Series(invoices, dtype=pl.Float64), keep) == got
    assert got["prepayments"] == 0 and payment_credits(
        bad, pl.Series(invoices, dtype=pl.Float64), pl.Series([False] * n_pay))["prepayments"] == 0
