"""Dunning letters hand-checked against a tiny book: numbers, dates, currency, language,
credits; an account name holding HTML or script is text in the HTML part."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features import open_invoices
from features.contract.book import Book
from features.contract.contact import INVALID_EMAIL, NO_EMAIL, email_rule
from serving.dunning import (
    Company,
    PlanTerms,
    installment_plan,
    letter_context,
    plan_promises,
    render_letter,
)
from serving.dunning.delivery import build_message
from serving.dunning.formats import language_of, long_date, money

AS_OF = date(2024, 3, 11)  # day 70 after 2024-01-01


def _d(days: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=days)


def tiny_book() -> Book:
    """Account A (English): I1 1,000 due Jan 31, 400 paid and 100 credited (credit note
    C1 naming it): 500 open, 40 days past due; I2 500 due Feb 10, 30 days; I3 300 due Feb
    20, disputed; I4 200 due Mar 31, not yet due; I5 80 fully offset by credit note C2.
    Account B (German): J1 1,234.50 due Jan 31."""
    inv = pd.DataFrame([
        ("I1", "A", _d(0), _d(30), 1000.0, None),
        ("I2", "A", _d(10), _d(40), 500.0, None),
        ("I3", "A", _d(20), _d(50), 300.0, None),
        ("I4", "A", _d(60), _d(90), 200.0, None),
        ("I5", "A", _d(5), _d(35), 80.0, None),
        ("C1", "A", _d(55), _d(55), -100.0, "I1"),
        ("C2", "A", _d(36), _d(36), -80.0, "I5"),
        ("J1", "B", _d(0), _d(30), 1234.5, None),
    ], columns=["invoice_id", "account_id", "issue_date", "due_date", "amount",
                "reference_invoice_id"])
    pay = pd.DataFrame([("I1", _d(35), 400.0)], columns=["invoice_id", "payment_date", "amount"])
    dis = pd.DataFrame([("I3", _d(52), None)], columns=["invoice_id", "opened_date",
                                                       "resolved_date"])
    acc = pd.DataFrame([("A", "Acme <b>Trading</b>", "Jo Payer", "ap@acme.example.com", "en"),
                        ("B", "Bäckerei Müller", None, "buchhaltung@mueller.example.de",
                         "de-DE")],
                       columns=["account_id", "name", "contact_name", "email", "language"])
    return Book.from_frames(inv, pay, acc, dis)


def _letter(account_id: str, letter: str = "first_notice", *, credit: float = 0.0,
            company: Company = Company(), **account: object):
    book = tiny_book()
    row = book.accounts.set_index("account_id").loc[account_id].to_dict()
    row |= {"account_id": account_id, **account}
    inv = open_invoices(book, as_of=AS_OF, accounts=[account_id])
    ctx = letter_context(letter=letter, account=row, invoices=inv, credit_on_account=credit,
                         as_of=AS_OF, company=company, plan_terms=PlanTerms(3, 100.0, 30))
    return ctx, render_letter(ctx)


def test_first_notice_lists_the_accounts_own_open_invoices_hand_checked() -> None:
    ctx, letter = _letter("A")
    assert [i["invoice_id"] for i in ctx["invoices"]] == ["I1", "I2", "I4"]  # I3 disputed,
    # I5 fully credited: left out
    i1, i2, i4 = ctx["invoices"]
    assert (i1["amount_open"], i1["due_date"], i1["days_past_due"]) == (
        "$500.00", "January 31, 2024", 40)
    assert (i2["amount_open"], i2["days_past_due"]) == ("$500.00", 30)
    assert (i4["amount_open"], i4["due_date"], i4["past_due"]) == ("$200.00", "March 31, 2024",
                                                                   False)
    assert ctx["past_due_total"] == "$1,000.00"
    assert ctx["total_due"] == "$1,200.00"
    assert ctx["credit_on_account"] is None
    assert letter.subject == "Example Wholesale Ltd: payment reminder, account A"
    assert "Dear Jo Payer," in letter.text
    assert "I1  due January 31, 2024  open $500.00  (40 days past due)" in letter.text
    assert "Total due: $1,200.00" in letter.text
    assert "I3" not in letter.text and "I5" not in letter.text
    assert "https://pay.example.com/A" in letter.text
    assert letter.template == "first_notice@1"


def test_credit_on_account_nets_the_total_and_never_below_zero() -> None:
    ctx, letter = _letter("A", credit=150.0)
    assert ctx["total_due"] == "$1,050.00"
    assert "Credit on your account: -$150.00" in letter.text
    ctx, _ = _letter("A", credit=5000.0)
    assert ctx["total_due"] == "$0.00"


def test_german_account_gets_german_amounts_and_dates_in_the_books_currency() -> None:
    ctx, letter = _letter("B", "second_notice", company=Company(currency="EUR"))
    assert ctx["language"] == "de"
    (j1,) = ctx["invoices"]
    assert (j1["amount_open"], j1["due_date"], j1["days_past_due"]) == (
        "1.234,50 €", "31. Januar 2024", 40)
    assert ctx["as_of"] == "11. März 2024"
    assert "Dear Bäckerei Müller," in letter.text  # no contact name: the account's name
    assert 'lang="de"' in letter.html


def test_formats_table() -> None:
    assert money(-1234567.891, "USD", "en") == "-$1,234,567.89"
    assert money(0.5, "CHF", "en") == "CHF 0.50"
    assert money(1234.5, "USD", "de_AT") == "1.234,50 $"
    assert long_date(date(2024, 12, 5), "xx") == "December 5, 2024"
    assert language_of(None) == language_of("") == language_of("fr") == "en"


def test_html_and_script_in_an_account_name_render_as_text_in_the_html_part() -> None:
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    _, letter = _letter("A", name=evil, contact_name=evil)
    assert "<script>" not in letter.html and "<img" not in letter.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in letter.html
    msg = build_message(letter, sender="ar@example.com", to=["ap@acme.example.com"],
                        key="k", account_id="A")
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    # the stored name holds HTML too: escaped, never markup
    _, plain = _letter("A")
    assert "Acme &lt;b&gt;Trading&lt;/b&gt;" in plain.html


def test_subject_is_one_line_whatever_the_name_holds() -> None:
    _, letter = _letter("A", "final_notice")
    assert "\n" not in letter.subject and letter.subject.endswith("account A")


def test_payment_plan_installments_and_promises() -> None:
    plan = installment_plan(1000.01, first_date=date(2024, 4, 1), terms=PlanTerms(3, 100.0, 30))
    assert plan == [(date(2024, 4, 1), 333.33), (date(2024, 5, 1), 333.33),
                    (date(2024, 5, 31), 333.35)]
    assert len(installment_plan(250.0, first_date=date(2024, 4, 1),
                                terms=PlanTerms(3, 100.0, 30))) == 2  # none below 100
    assert installment_plan(0.0, first_date=date(2024, 4, 1), terms=PlanTerms()) == []
    promises = plan_promises("A", plan, created_date=AS_OF)
    assert list(promises["promise_id"]) == ["plan-A-1", "plan-A-2", "plan-A-3"]
    assert promises["amount"].sum() == pytest.approx(1000.01)
    ctx, letter = _letter("A", "payment_plan")
    assert [p["amount"] for p in ctx["plan"]] == ["$400.00", "$400.00", "$400.00"]
    assert "1. March 26, 2024: $400.00" in letter.text


def test_dispute_acknowledgement_names_the_disputed_invoice() -> None:
    ctx, letter = _letter("A", "dispute_ack")
    assert [i["invoice_id"] for i in ctx["disputed_invoices"]] == ["I3"]
    assert "I3  due February 20, 2024  open $300.00" in letter.text


@pytest.mark.parametrize(("text", "expected"), [
    ("a@b.example.com", (["a@b.example.com"], None)),
    (" a@b.io ; c.d@e.org ", (["a@b.io", "c.d@e.org"], None)),
    ("a@b.io;not-an-address", ([], INVALID_EMAIL)),
    ("a@b.io\r\nBcc: x@y.io", ([], INVALID_EMAIL)),
    ("a..b@c.io", ([], INVALID_EMAIL)),
    ("", ([], NO_EMAIL)),
    (None, ([], NO_EMAIL)),
])
def test_email_rule(text: object, expected: tuple) -> None:
    assert email_rule(text) == expected
