"""The collections loop's optional tables (promises, contacts): named rules, quarantine,
canonical values, and a book without them validated exactly as before."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract.book import EVENT_TABLES
from features.contract.io import write_book
from features.contract.validation import validate_folder, validate_tables
from tests.features.test_validation import assert_invariant, clean_raw, with_rows

PRO = {"promise_id": "PR9", "account_id": "A1", "created_date": "2024-02-01",
       "promised_date": "2024-02-10", "amount": "50", "invoice_id": ""}
CON = {"contact_id": "C9", "account_id": "A2", "contact_date": "2024-02-01",
       "channel": "phone", "outcome": "reached"}


def raw_with_events() -> dict[str, pd.DataFrame]:
    raw = clean_raw()
    raw["promises"] = pd.DataFrame({
        "promise_id": ["PR1", "PR2"], "account_id": ["A1", "A2"],
        "created_date": ["2024-02-01", "2024-02-05"],
        "promised_date": ["2024-02-15", "2024-02-05"], "amount": ["100", "80.5"],
        "invoice_id": ["I2", ""]})
    raw["contacts"] = pd.DataFrame({
        "contact_id": ["C1", "C2"], "account_id": ["A1", "A3"],
        "contact_date": ["2024-02-01", "2024-02-03"],
        "channel": [" Phone", "EMAIL"], "outcome": ["promised", "no_answer"]})
    return raw


def test_event_tables_are_kept_with_canonical_values() -> None:
    result = validate_tables(raw_with_events())
    assert result.ok
    assert_invariant(result)
    assert result.book.promises["promise_id"].tolist() == ["PR1", "PR2"]
    assert result.book.promises["amount"].tolist() == [100.0, 80.5]
    assert result.book.promises["recorded_date"].isna().all()
    # enumerations are compared and kept as the spec spells them
    assert result.book.contacts["channel"].tolist() == ["phone", "email"]
    assert set(result.summary["table"]) >= set(EVENT_TABLES)


def test_a_book_without_event_tables_has_no_rows_for_them() -> None:
    result = validate_tables(clean_raw())
    assert not set(EVENT_TABLES) & set(result.summary["table"])
    assert not result.book.has_events and len(result.book.tables()) == 4


@pytest.mark.parametrize(("table", "rule", "row"), [
    ("promises", "missing_value", {**PRO, "promised_date": ""}),
    ("promises", "non_positive_amount", {**PRO, "amount": "0"}),
    ("promises", "promised_before_created", {**PRO, "promised_date": "2024-01-31"}),
    ("promises", "unknown_account", {**PRO, "account_id": "NOPE"}),
    ("promises", "unknown_invoice", {**PRO, "invoice_id": "NOPE"}),
    ("promises", "duplicate_id", {**PRO, "promise_id": "PR1", "account_id": "A1",
                                  "created_date": "2024-02-01", "promised_date": "2024-02-15",
                                  "amount": "100", "invoice_id": "I2"}),
    ("promises", "conflicting_duplicate", {**PRO, "promise_id": "PR2"}),
    ("contacts", "unknown_enumeration", {**CON, "channel": "pigeon"}),
    ("contacts", "unknown_enumeration", {**CON, "outcome": "maybe"}),
    ("contacts", "unknown_account", {**CON, "account_id": "NOPE"}),
    ("contacts", "unparseable_date", {**CON, "contact_date": "soon"}),
])
def test_each_event_rule_quarantines_its_row(table: str, rule: str, row: dict) -> None:
    result = validate_tables(with_rows(raw_with_events(), table, row), max_bad_share=1.0)
    assert_invariant(result)
    assert rule in set(result.quarantine[table]["_rule"])
    assert result.quarantine[table]["_message"].str.len().min() > 10


def test_event_tables_round_trip_through_a_folder(tmp_path) -> None:
    book = validate_tables(raw_with_events()).book
    write_book(book, tmp_path)
    assert {p.stem for p in tmp_path.iterdir()} >= set(EVENT_TABLES)
    again = validate_folder(tmp_path, quarantine_dir=tmp_path / "_q").book
    pd.testing.assert_frame_equal(again.promises, book.promises)
    pd.testing.assert_frame_equal(again.contacts, book.contacts)
