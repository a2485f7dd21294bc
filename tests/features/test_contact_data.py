"""Contact data of the accounts table: kept as written (an invalid e-mail is never a
quarantine rule), and filled by the synthetic generator."""

from __future__ import annotations

import pandas as pd

from features.contract import RULES, validate_tables
from features.contract.contact import CONTACT_RULES, INVALID_EMAIL, email_rule
from features.synthetic import generate_book


def test_invalid_email_is_kept_not_quarantined() -> None:
    invoices = pd.DataFrame({"invoice_id": ["I1", "I2"], "account_id": ["A", "B"],
                             "issue_date": ["2024-01-01"] * 2, "due_date": ["2024-01-31"] * 2,
                             "amount": ["100.00", "200.00"]})
    accounts = pd.DataFrame({
        "account_id": ["A", "B"], "contact_name": ["Jo <b>Payer</b>", ""],
        "email": ["ap@a.example.com;ar@a.example.com", "not an address"],
        "phone": ["+44 20 7946 0000", "NULL"], "language": ["de-DE", "en"]})
    result = validate_tables({"invoices": invoices, "accounts": accounts})
    acc = result.book.accounts.set_index("account_id")
    assert result.summary.set_index("table").loc["accounts", "quarantined"] == 0
    assert acc.loc["A", "contact_name"] == "Jo <b>Payer</b>"
    assert acc.loc["A", "language"] == "de-DE"
    assert acc.loc["B", "email"] == "not an address"
    assert pd.isna(acc.loc["B", "phone"])  # a missing-value token, as for any code
    assert email_rule(acc.loc["B", "email"]) == ([], INVALID_EMAIL)
    assert not set(CONTACT_RULES) & set(RULES)


def test_generator_fills_contact_data() -> None:
    book = generate_book(500, seed=1, start="2024-01-01", end="2024-03-31")
    acc = book.accounts
    assert acc[["contact_name", "email", "phone", "language"]].notna().all().all()
    assert set(acc["language"]) == {"en", "de"}
    rules = acc["email"].map(lambda e: email_rule(e)[1])
    assert (rules == INVALID_EMAIL).sum() == 2  # accounts 250 and 500
    assert acc["email"].str.contains(";").sum() == 50 - 2  # every 10th but 250 and 500
