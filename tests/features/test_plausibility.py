"""Plausibility at the boundary: an export that arrived empty or tiny stops the run with one
message (unless anomalies are accepted, which is recorded); placeholder and out-of-window
dates and amounts above the cap are quarantined as such."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.contract.options import Plausibility
from features.contract.rules import ANOMALY_RULES, FILE_RULES, RULES
from features.contract.validation import DataContractError, validate_folder, validate_tables

README = Path(__file__).parents[2] / "README.md"


def book_frames(n_invoices: int, n_payments: int, n_accounts: int) -> dict[str, pd.DataFrame]:
    """Raw string tables: ``n_invoices`` invoices over 50 accounts, the first
    ``n_payments`` invoices paid, ``n_accounts`` accounts rows."""
    ids = [f"I{i:05d}" for i in range(n_invoices)]
    invoices = pd.DataFrame({
        "invoice_id": ids, "account_id": [f"A{i % 50:03d}" for i in range(n_invoices)],
        "issue_date": "2024-01-01", "due_date": "2024-01-31", "amount": "100.00",
    })
    payments = pd.DataFrame({"invoice_id": ids[:n_payments], "payment_date": "2024-01-20",
                             "amount": "100.00"})
    accounts = pd.DataFrame({"account_id": [f"A{i:03d}" for i in range(n_accounts)],
                             "segment": "small"})
    return {"invoices": invoices, "payments": payments, "accounts": accounts}


def write_folder(folder: Path, frames: dict[str, pd.DataFrame]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        frame.to_csv(folder / f"{table}.csv", index=False)


def test_a_header_only_payments_file_stops_the_run(tmp_path: Path) -> None:
    write_folder(tmp_path, book_frames(1500, 0, 50))
    assert (tmp_path / "payments.csv").read_text() == "invoice_id,payment_date,amount\n"
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    err = info.value
    assert (err.file, err.column, err.rule) == ("payments.csv", None, "empty_table")
    assert str(err) == (
        "payments.csv: has a header and no rows while invoices.csv has 1,500 (an export that "
        "arrived empty?); if this is expected, pass accept_anomalies (--accept-anomalies) "
        "(rule empty_table)")
    assert err.result.summary.set_index("table").loc["invoices", "kept"] == 1500
    # Accepted explicitly: the run goes on and the result records what was accepted.
    result = validate_folder(tmp_path, accept_anomalies=True)
    assert [a.rule for a in result.anomalies] == ["empty_table"]
    assert result.book.payments.empty and not result.ok
    assert "accepted anomaly: payments.csv: has a header and no rows" in result.render()


def test_implausibly_small_tables_name_the_numbers(tmp_path: Path) -> None:
    write_folder(tmp_path, book_frames(1000, 40, 3))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    err = info.value
    assert (err.file, err.rule) == ("payments.csv", "implausibly_small")
    assert "has 40 rows for 1,000 invoice rows (4.0% < 10% expected at least)" in str(err)
    # Both anomalies are named in the one message; accepted, both are recorded.
    assert "also: accounts.csv: has 3 rows for 50 accounts invoiced" in str(err)
    result = validate_folder(tmp_path, accept_anomalies=True)
    assert [(a.file, a.rule) for a in result.anomalies] == [
        ("payments.csv", "implausibly_small"), ("accounts.csv", "implausibly_small")]
    # The limits are settings.
    loose = Plausibility(min_ratio=0.01)
    assert validate_folder(tmp_path, plausibility=loose).ok


def test_quarantine_is_written_before_an_anomaly_stops(tmp_path: Path) -> None:
    frames = book_frames(200, 0, 0)
    frames["invoices"].loc[0, "amount"] = "0"
    write_folder(tmp_path, frames)
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path, quarantine_dir=tmp_path / "q")
    assert info.value.rule == "empty_table" and info.value.file == "payments.csv"
    assert len(pd.read_csv(tmp_path / "q" / "invoices.csv")) == 1


def test_small_books_and_absent_tables_are_not_anomalies() -> None:
    # Under min_invoices rows nothing is compared; an absent payments file is allowed
    # (only invoices is required); disputes may always be empty.
    assert validate_tables(book_frames(99, 0, 0)).ok
    frames = book_frames(500, 500, 50)
    del frames["payments"]
    frames["disputes"] = pd.DataFrame({"invoice_id": [], "opened_date": []}, dtype="str")
    assert validate_tables(frames).ok


def test_sentinel_and_out_of_window_dates_are_quarantined_as_such() -> None:
    frames = book_frames(5, 5, 5)
    inv, pay = frames["invoices"], frames["payments"]
    inv.loc[0, "due_date"] = "9999-12-31"
    inv.loc[1, "issue_date"], inv.loc[1, "due_date"] = "1970-01-01", "1970-01-31"
    inv.loc[2, "issue_date"] = "1985-06-01"
    pay.loc[3, "payment_date"] = "2150-01-01"
    frames["accounts"]["created_date"] = ["1985-06-01", "1900-01-01", "2200-01-01", "", ""]
    result = validate_tables(frames, max_bad_share=1.0)
    q = result.quarantine
    # (the invoice of the quarantined payment is held out: no phantom delinquency)
    assert q["invoices"]["_rule"].tolist() == ["sentinel_date", "sentinel_date",
                                               "implausible_date", "payment_quarantined"]
    assert q["invoices"]["_message"].iloc[2] == (
        "column 'issue_date' value '1985-06-01' is outside the plausible dates "
        "1990-01-01..2100-01-01")
    assert q["payments"]["_rule"].tolist() == ["parent_quarantined"] * 3 + ["implausible_date"]
    # An account created in 1985 is plausible (older than its receivables); 1900 is not.
    assert q["accounts"]["_rule"].tolist() == ["sentinel_date", "implausible_date"]
    assert "A000" in set(result.book.accounts.dropna(subset=["created_date"])["account_id"])
    # The window is a setting.
    wide = Plausibility(date_min=date(1980, 1, 1), date_max=date(2200, 1, 2))
    widened = validate_tables(frames, max_bad_share=1.0, plausibility=wide)
    assert "implausible_date" not in set(widened.quarantine["invoices"]["_rule"])


def test_typed_sentinel_dates_from_parquet(tmp_path: Path) -> None:
    frames = book_frames(3, 3, 0)
    frames["payments"]["payment_date"] = pd.to_datetime(["2024-01-20", "9999-12-31",
                                                         "1970-01-01"]).astype("datetime64[s]")
    result = validate_tables(frames, max_bad_share=1.0)
    assert result.quarantine["payments"]["_rule"].tolist() == ["sentinel_date"] * 2
    assert result.book.last_date == pd.Timestamp("2024-01-20")


def test_amounts_above_the_cap_are_quarantined() -> None:
    frames = book_frames(4, 4, 2)
    frames["invoices"].loc[0, "amount"] = "1e300"
    frames["payments"].loc[1, "amount"] = "1000000000.01"
    frames["accounts"]["credit_limit"] = ["5e9", "1000"]
    result = validate_tables(frames, max_bad_share=1.0)
    q = result.quarantine
    assert q["invoices"]["_rule"].tolist() == ["amount_above_cap", "payment_quarantined"]
    assert q["invoices"]["_message"].iloc[0] == (
        "column 'amount' value '1e300' is above the cap 1,000,000,000")
    assert q["payments"]["_rule"].tolist() == ["parent_quarantined", "amount_above_cap"]
    assert q["accounts"]["_rule"].tolist() == ["amount_above_cap"]
    capped = validate_tables(frames, max_bad_share=1.0,
                             plausibility=Plausibility(amount_cap=50.0))
    assert set(capped.quarantine["invoices"]["_rule"]) == {"amount_above_cap"}
    assert len(capped.quarantine["invoices"]) == 4


def test_plausibility_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="date_min"):
        Plausibility(date_min=date(2100, 1, 1), date_max=date(2000, 1, 1))
    with pytest.raises(ValueError, match="amount_cap"):
        Plausibility(amount_cap=0)


def test_readme_lists_exactly_the_rules() -> None:
    """The README's data-contract section names every row rule, in RULES order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Data contract", 1)[1].split("\n## ", 1)[0]
    rule_table = section.split("\n| rule |", 1)[1].split("\n\n", 1)[0]
    table = re.findall(r"^\| `([a-z_]+)` \|", rule_table, flags=re.MULTILINE)
    assert tuple(table) == RULES
    for rule in (*FILE_RULES, *ANOMALY_RULES):  # whole-file rules: named in the prose
        assert f"`{rule}`" in section, rule
