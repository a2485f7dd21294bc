"""``open_invoices``: the invoices behind the features, by the one openness rule (issue 17).

A hand-checked book (payments, a credit note, an overpayment, a prepayment held as credit
on account, disputes), then the property that ties it to the features: on random books with
credits, per account the rows' count is ``n_open_invoices``, their largest DPD
``oldest_dpd``, their sum netted by ``credit_on_account`` is ``open_balance``, and the open
disputed amount is ``amt_open_disputes``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features
from features import build_features, open_invoices
from features.pit.open_invoices import OPEN_INVOICE_COLUMNS
from tests.factories import books_and_as_of, make_book, with_credits

AS_OF = date(2024, 7, 1)

# As of 2024-07-01 (dates in 2024):
# A: I1 issued 01-01 due 01-31 $100, paid $40 on 02-10 -> owes $60
#    C1 credit note -$50 on 04-10, unnamed: oldest due first -> I1 gets 50 -> I1 open $10,
#       DPD 07-01 - 01-31 = 152
#    I2 issued 03-01 due 03-31 $200, untouched -> open $200, DPD 92; dispute opened 05-01,
#       unresolved -> disputed
#    I3 issued 06-01 due 07-01 $70, paid $70 on 06-30 -> cleared, no row
#    I4 issued 06-15 due 07-15 $30, dispute 06-20 resolved 06-25 -> open $30, DPD -14,
#       not disputed
#    I5 issued 07-01 (on as_of) -> not known yet, no row
# B: J1 issued 02-01 due 03-02 $100, paid $160 on 03-01 -> cleared, $60 credit on account
#    J2 issued 05-01 due 05-31 $100 -> the $60 applied on 05-01 -> open $40, DPD 31
#    J3 issued 06-20 due 07-20 $50, prepaid $20 on 06-10 -> applied on 06-20 -> open $30,
#       DPD -19
# C: K1 issued 03-01 due 03-31 $50 -> open $50, DPD 92
#    K2 issued 07-05 (after as_of), prepaid $30 on 06-25 -> held as credit on account $30:
#       no row; the features' open_balance of C is 50 - 30 = $20
BOOK = make_book(
    invoices=[
        ("I1", "A", "2024-01-01", "2024-01-31", 100.0),
        ("I2", "A", "2024-03-01", "2024-03-31", 200.0),
        ("C1", "A", "2024-04-10", "2024-04-10", -50.0),
        ("I3", "A", "2024-06-01", "2024-07-01", 70.0),
        ("I4", "A", "2024-06-15", "2024-07-15", 30.0),
        ("I5", "A", "2024-07-01", "2024-07-31", 999.0),
        ("J1", "B", "2024-02-01", "2024-03-02", 100.0),
        ("J2", "B", "2024-05-01", "2024-05-31", 100.0),
        ("J3", "B", "2024-06-20", "2024-07-20", 50.0),
        ("K1", "C", "2024-03-01", "2024-03-31", 50.0),
        ("K2", "C", "2024-07-05", "2024-08-04", 30.0),
    ],
    payments=[
        ("I1", "2024-02-10", 40.0),
        ("I3", "2024-06-30", 70.0),
        ("J1", "2024-03-01", 160.0),
        ("J3", "2024-06-10", 20.0),
        ("K2", "2024-06-25", 30.0),
    ],
    disputes=[("I2", "2024-05-01", None), ("I4", "2024-06-20", "2024-06-25")],
)

EXPECTED = [
    # account, invoice, issue, due, amount, open, DPD, disputed
    ("A", "I1", "2024-01-01", "2024-01-31", 100.0, 10.0, 152, False),
    ("A", "I2", "2024-03-01", "2024-03-31", 200.0, 200.0, 92, True),
    ("A", "I4", "2024-06-15", "2024-07-15", 30.0, 30.0, -14, False),
    ("B", "J2", "2024-05-01", "2024-05-31", 100.0, 40.0, 31, False),
    ("B", "J3", "2024-06-20", "2024-07-20", 50.0, 30.0, -19, False),
    ("C", "K1", "2024-03-01", "2024-03-31", 50.0, 50.0, 92, False),
]


def test_handchecked_open_invoices():
    got = open_invoices(BOOK, as_of=AS_OF)
    expected = pd.DataFrame(EXPECTED, columns=list(OPEN_INVOICE_COLUMNS))
    for col in ("issue_date", "due_date"):
        expected[col] = pd.to_datetime(expected[col]).astype("datetime64[s]")
    assert list(got.columns) == list(OPEN_INVOICE_COLUMNS)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["days_past_due"].dtype == np.int64
    assert got["disputed"].dtype == bool


def test_the_features_agree_on_the_handchecked_book():
    feats = build_features(BOOK, as_of=AS_OF, facts=True).set_index("account_id")
    # A: 10 + 200 + 30; B: 40 + 30; C: 50 less the $30 held for K2
    assert feats["open_balance"].to_dict() == pytest.approx({"A": 240.0, "B": 70.0, "C": 20.0})
    assert feats.loc["C", "credit_on_account"] == pytest.approx(30.0)


def test_accounts_filter_and_unknown_ids():
    got = open_invoices(BOOK, as_of=AS_OF, accounts=["C", "B", "nobody"])
    assert got["invoice_id"].tolist() == ["J2", "J3", "K1"]
    assert open_invoices(BOOK, as_of=AS_OF, accounts=[]).empty


def test_nothing_is_known_before_the_first_issue_and_the_input_is_untouched():
    before = {t: f.copy() for t, f in BOOK.tables().items()}
    got = open_invoices(BOOK, as_of=date(2024, 1, 1))
    assert got.empty and list(got.columns) == list(OPEN_INVOICE_COLUMNS)
    for t, f in BOOK.tables().items():
        pd.testing.assert_frame_equal(f, before[t])


def test_exported_from_the_faces():
    assert features.open_invoices is open_invoices


@settings(max_examples=40, deadline=None)
@given(case=books_and_as_of(), seed=st.integers(0, 10_000), credits=st.booleans())
def test_open_invoices_add_up_to_the_features(case, seed, credits):
    book, as_of = case
    if credits:
        book = with_credits(book, np.random.default_rng(seed),
                            as_of - pd.Timedelta(days=150), 200, "K")
    rows = open_invoices(book, as_of=as_of)
    feats = build_features(book, as_of=as_of, facts=True).set_index("account_id")
    assert (rows["amount_open"] > 0).all()
    assert (rows["issue_date"] < as_of).all()
    per = rows.groupby("account_id").agg(
        total=("amount_open", "sum"), n=("invoice_id", "size"), oldest=("days_past_due", "max"),
        disputed=("amount_open", lambda s: s[rows.loc[s.index, "disputed"]].sum()))
    assert sorted(per.index) == sorted(feats.index)
    f = feats.loc[per.index]
    net = np.maximum(per["total"] - f["credit_on_account"], 0.0)
    np.testing.assert_allclose(net, f["open_balance"], rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(per["n"], f["n_open_invoices"])
    np.testing.assert_array_equal(per["oldest"], f["oldest_dpd"])
    np.testing.assert_allclose(per["disputed"], f["amt_open_disputes"], rtol=1e-9, atol=1e-6)
