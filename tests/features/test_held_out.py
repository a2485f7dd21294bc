"""No phantom delinquency (issue 13): an invoice whose payment row was quarantined is held
out of the book, so it cannot look open for ever and top the worklist."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features import build_features, build_labels
from features.contract.book import Book
from features.contract.validation import validate_tables
from features.spec import NO_MATERIALITY

INV_COLS = ["invoice_id", "account_id", "issue_date", "due_date", "amount"]
PAY_COLS = ["invoice_id", "payment_date", "amount", "payment_id"]


def raw(payments: list[tuple]) -> dict[str, pd.DataFrame]:
    return {
        "invoices": pd.DataFrame([
            ("I1", "A", "2023-01-01", "2023-01-31", "100"),   # paid, but the row is bad
            ("I2", "A", "2024-05-01", "2024-05-31", "50"),    # open, 31 DPD at 07-01
            ("J1", "B", "2024-05-01", "2024-06-10", "70"),    # open, 21 DPD
        ], columns=INV_COLS),
        "payments": pd.DataFrame(payments, columns=PAY_COLS),
        "disputes": pd.DataFrame([("I1", "2023-01-05")], columns=["invoice_id", "opened_date"]),
    }


@pytest.mark.parametrize(("bad", "rule"), [
    (("I1", "2023-02-3O", "100", "P1"), "unparseable_date"),
    (("I1", "9999-12-31", "100", "P1"), "sentinel_date"),
    (("I1", "2023-02-03", "abc", "P1"), "unparseable_amount"),
    (("I1", "2023-02-03", "-100", "P1"), "non_positive_amount"),
])
def test_the_invoice_of_a_quarantined_payment_is_held_out(bad, rule):
    result = validate_tables(raw([bad, ("I1", "2023-01-20", "10", "P2")]), max_bad_share=1.0)
    q = result.quarantine
    assert q["payments"].set_index("payment_id")["_rule"].to_dict() == {
        "P1": rule, "P2": "parent_quarantined"}
    held = q["invoices"].set_index("invoice_id")
    assert held.loc["I1", "_rule"] == "payment_quarantined"
    assert held.loc["I1", "_row"] == 1 and held.loc["I1", "issue_date"] == "2023-01-01"
    assert f"payment row 1 of payments names this invoice and was quarantined ({rule})" in (
        held.loc["I1", "_message"])
    assert q["disputes"]["_rule"].tolist() == ["parent_quarantined"]
    # flagged and counted: rows read = kept + quarantined, the rule counted per table
    s = result.summary.set_index("table")
    assert s.loc["invoices", "payment_quarantined"] == 1
    assert (s["rows_read"] == s["kept"] + s["quarantined"]).all()
    assert "invoices   payment_quarantined" in result.render()
    # excluded from balances, DPD and labels
    book = result.book
    assert "I1" not in set(book.invoices["invoice_id"])
    feats = build_features(book, as_of=date(2024, 7, 1)).set_index("account_id")
    assert feats.loc["A", "open_balance"] == 50.0 and feats.loc["A", "oldest_dpd"] == 31
    # every cent counts here: $50 is below the default materiality threshold
    labels = build_labels(book, as_of=date(2024, 7, 1),
                          materiality=NO_MATERIALITY).set_index("account_id")
    assert labels.loc["A", "model"] == "persistence"  # from I2 alone, 31 DPD
    # the payments table is charged for the bad row, not the invoices table
    with pytest.raises(Exception, match="payments: .*too_many_bad_rows"):
        validate_tables(raw([bad, ("I1", "2023-01-20", "10", "P2")]), max_bad_share=0.4)


def test_payment_rows_that_say_nothing_hold_nothing_out():
    payments = [("I1", "2023-02-03", "100", "P1"), ("I1", "2023-02-03", "100", "P1"),  # copy
                ("NOPE", "2023-02-03", "5", "P3")]
    result = validate_tables(raw(payments), max_bad_share=1.0)
    assert result.quarantine["invoices"].empty
    assert set(result.quarantine["payments"]["_rule"]) == {"duplicate_id", "unknown_invoice"}


def test_a_quarantined_payment_never_puts_an_account_on_top_of_the_worklist(trained_state):
    """The trained models' worklist on a real-sized book: the account whose oldest paid
    invoice lost its payment row to quarantine ranks exactly as if that invoice had never
    existed (whatever the models, the bad row cannot move it), while keeping the invoice
    without its payment would have made it a late account and moved it up."""
    from serving.score import score_book

    book, as_of = trained_state.book, trained_state.as_of
    inv, pay = book.invoices, book.payments
    first_day = pay.groupby("invoice_id")["payment_date"].transform("min")
    paid_once = pay[(pay.groupby("invoice_id")["amount"].transform("size") == 1)
                    & (first_day < as_of - pd.Timedelta(days=400))]
    # a long-paid invoice of an account that is quiet (nothing past due) at as_of
    feats = build_features(book, as_of=as_of).set_index("account_id")
    quiet = feats.index[feats["oldest_dpd"] <= 0]
    cand = inv[inv["invoice_id"].isin(paid_once["invoice_id"]) & inv["account_id"].isin(quiet)]
    victim = cand.sort_values(["amount", "invoice_id"], ascending=[False, True]).iloc[0]
    account, invoice = victim["account_id"], victim["invoice_id"]

    tables = {t: f.copy() for t, f in book.tables().items()}
    bad_pay = tables["payments"]["invoice_id"] == invoice
    tables["payments"]["payment_date"] = tables["payments"]["payment_date"].dt.strftime("%Y-%m-%d")
    tables["payments"].loc[bad_pay, "payment_date"] = "9999-12-31"  # a sentinel: quarantined
    result = validate_tables(tables, max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["payment_quarantined"]

    def rank(b: Book) -> pd.DataFrame:
        wl = score_book(b, as_of=as_of, models=trained_state.models).worklist
        return wl.set_index("account_id")[["rank", "segment", "open_balance", "priority"]]

    held = rank(result.book)
    without = rank(Book.from_frames(inv[inv["invoice_id"] != invoice], pay[~bad_pay],
                                    book.accounts, book.disputes))
    phantom = rank(Book.from_frames(inv, pay[~bad_pay], book.accounts, book.disputes))
    pd.testing.assert_frame_equal(held, without)  # as if the invoice never existed
    assert account in held.index and held.loc[account, "segment"] == "preventive"
    # what keeping the invoice without its payment would have done: late, and higher up
    assert phantom.loc[account, "segment"] == "late"
    assert phantom.loc[account, "open_balance"] > held.loc[account, "open_balance"]
    assert phantom.loc[account, "rank"] < held.loc[account, "rank"]
