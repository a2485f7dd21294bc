"""Data contract validation: every rule quarantines its row, nothing is lost, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract.book import TABLES, Book, columns_of
from features.contract.io import read_folder, write_book, write_tables
from features.contract.rules import RULES
from features.contract.validation import (
    DataContractError,
    ValidationResult,
    validate_folder,
    validate_tables,
)
from features.keys import first_occurrence, lookup


def clean_raw() -> dict[str, pd.DataFrame]:
    """A tiny valid source as read from CSV (all strings)."""
    invoices = pd.DataFrame({
        "invoice_id": ["I1", "I2", "I3", "I4", "I5"],
        "account_id": ["A1", "A1", "A2", "A3", "A4"],
        "issue_date": ["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-10", "2024-03-01"],
        "due_date": ["2024-01-31", "2024-02-14", "2024-03-02", "2024-03-11", "2024-03-31"],
        "amount": ["100.00", "250.50", "80", "1200.25", "42.10"],
        "currency": ["USD", "USD", "", "USD", "USD"],
        "terms_days": ["30", "30", "30", "", "30"],
    })
    payments = pd.DataFrame({
        "invoice_id": ["I1", "I2", "I2", "I3"],
        "payment_date": ["2024-01-30", "2024-02-01", "2024-02-20", "2024-03-10"],
        "amount": ["100.00", "150.50", "100", "80"],
        "payment_id": ["P1", "P2", "P3", ""],
        "account_id": ["A1", "A1", "", "A2"],
    })
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3"],
        "segment": ["small", "enterprise", ""],
        "credit_limit": ["5000", "", "100000.5"],
        "created_date": ["2020-05-01", "", "2019-01-01"],
    })
    disputes = pd.DataFrame({
        "invoice_id": ["I4", "I2"],
        "opened_date": ["2024-02-20", "2024-01-20"],
        "resolved_date": ["", "2024-01-25"],
        "reason": ["pricing", "quantity"],
    })
    frames = {"invoices": invoices, "payments": payments, "accounts": accounts,
              "disputes": disputes}
    return {t: f.astype("str") for t, f in frames.items()}


def with_rows(raw: dict[str, pd.DataFrame], table: str, *rows: dict) -> dict:
    """A copy of ``raw`` with ``rows`` appended to ``table`` (missing cells empty)."""
    out = {t: f.copy() for t, f in raw.items()}
    cols = out[table].columns
    extra = pd.DataFrame([{c: row.get(c, "") for c in cols} for row in rows], columns=cols)
    out[table] = pd.concat([out[table], extra.astype("str")], ignore_index=True)
    return out


def assert_invariant(result: ValidationResult) -> None:
    s = result.summary.set_index("table")
    assert (s["rows_read"] == s["kept"] + s["quarantined"]).all()
    assert (s[list(RULES)].sum(axis=1) == s["quarantined"]).all()
    for table in TABLES:
        assert len(result.book.tables()[table]) >= s.loc[table, "kept"]
        assert len(result.quarantine.get(table, [])) == s.loc[table, "quarantined"]


def assert_books_equal(a: Book, b: Book) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(a.tables()[table], b.tables()[table])


INV = {"invoice_id": "IX", "account_id": "A1", "issue_date": "2024-04-01",
       "due_date": "2024-05-01", "amount": "10"}
PAY = {"invoice_id": "I1", "payment_date": "2024-01-20", "amount": "5", "payment_id": "PX"}
DIS = {"invoice_id": "I1", "opened_date": "2024-01-10", "resolved_date": "2024-01-12"}

# (table, rule, bad row): each row breaks exactly ``rule`` and no earlier rule.
BAD_ROWS = [
    ("invoices", "missing_value", {**INV, "account_id": " "}),
    ("invoices", "missing_value", {**INV, "due_date": ""}),
    ("invoices", "unparseable_date", {**INV, "issue_date": "2024-02-30"}),
    ("invoices", "unparseable_date", {**INV, "due_date": "05/01/2024"}),
    ("invoices", "unparseable_amount", {**INV, "amount": "12,5O"}),
    ("invoices", "unparseable_amount", {**INV, "terms_days": "thirty"}),
    ("invoices", "non_positive_amount", {**INV, "amount": "0.00"}),
    ("invoices", "non_positive_amount", {**INV, "amount": "-0.00"}),
    ("invoices", "due_before_issue", {**INV, "due_date": "2024-03-31"}),
    # An exact copy of I2 (a copy that differs is conflicting_duplicate, tested apart).
    ("invoices", "duplicate_id", {"invoice_id": "I2", "account_id": "A1",
                                  "issue_date": "2024-01-15", "due_date": "2024-02-14",
                                  "amount": "250.5", "currency": "USD", "terms_days": "30"}),
    ("invoices", "missing_value", {**INV, "account_id": "NULL"}),
    ("invoices", "missing_value", {**INV, "amount": " n/a "}),
    ("invoices", "control_character", {**INV, "invoice_id": "I\x00X"}),
    ("invoices", "unparseable_date", {**INV, "issue_date": "20240230"}),
    ("invoices", "sentinel_date", {**INV, "due_date": "9999-12-31"}),
    ("invoices", "implausible_date", {**INV, "issue_date": "1989-12-31",
                                      "due_date": "1990-01-30"}),
    ("invoices", "amount_above_cap", {**INV, "amount": "1e300"}),
    ("payments", "missing_value", {**PAY, "invoice_id": ""}),
    ("payments", "unparseable_date", {**PAY, "payment_date": "someday"}),
    ("payments", "unparseable_amount", {**PAY, "amount": "1.2.3"}),
    ("payments", "non_positive_amount", {**PAY, "amount": "0"}),
    ("payments", "duplicate_id", {"invoice_id": "I2", "payment_date": "2024-02-01",
                                  "amount": "150.50", "payment_id": "P2", "account_id": "A1"}),
    ("payments", "missing_value", {**PAY, "invoice_id": "N/A"}),
    ("payments", "sentinel_date", {**PAY, "payment_date": "1970-01-01"}),
    ("payments", "amount_above_cap", {**PAY, "amount": "2000000000"}),
    ("payments", "unknown_invoice", {**PAY, "invoice_id": "NOPE"}),
    ("payments", "non_positive_amount", {**PAY, "amount": "-5"}),
    ("accounts", "missing_value", {"account_id": ""}),
    ("accounts", "unparseable_date", {"account_id": "A9", "created_date": "yesterday"}),
    ("accounts", "unparseable_amount", {"account_id": "A9", "credit_limit": "lots"}),
    ("accounts", "duplicate_id", {"account_id": "A2", "segment": "enterprise"}),
    ("accounts", "missing_value", {"account_id": "NA"}),
    ("accounts", "control_character", {"account_id": "A\tB"}),
    ("accounts", "control_character", {"account_id": "A9", "segment": "sm\x00all"}),
    ("accounts", "sentinel_date", {"account_id": "A9", "created_date": "1900-01-01"}),
    ("accounts", "amount_above_cap", {"account_id": "A9", "credit_limit": "1e10"}),
    ("disputes", "missing_value", {**DIS, "opened_date": ""}),
    ("disputes", "unparseable_date", {**DIS, "resolved_date": "2024-13-01"}),
    ("disputes", "unknown_invoice", {**DIS, "invoice_id": "NOPE"}),
    ("disputes", "sentinel_date", {**DIS, "resolved_date": "9999-12-31"}),
    ("disputes", "dispute_before_issue", {**DIS, "opened_date": "2023-12-01",
                                          "resolved_date": ""}),
    ("disputes", "resolved_before_opened", {**DIS, "resolved_date": "2024-01-09"}),
]


def test_clean_source_keeps_every_row_with_canonical_dtypes() -> None:
    result = validate_tables(clean_raw())
    assert result.ok
    assert_invariant(result)
    book = result.book
    assert_books_equal(book, Book.from_frames(*book.tables().values()))
    assert book.invoices["amount"].tolist() == [100.0, 250.5, 80.0, 1200.25, 42.1]
    for table, frame in book.tables().items():  # the contract's dtypes, codes included
        assert {c: str(frame[c].dtype) for c in columns_of(table)} == columns_of(table)
    # A code: one small integer per row and its sorted values (a missing one stays missing).
    assert book.invoices["currency"].cat.categories.tolist() == ["USD"]
    assert book.invoices["currency"].isna().sum() == 1
    assert book.invoices["terms_days"].isna().sum() == 1
    # A4 has invoices but no accounts row: it gets a bare one.
    assert sorted(book.accounts["account_id"]) == ["A1", "A2", "A3", "A4"]
    # Payments carry their invoice's account when the source left it empty.
    assert book.payments["account_id"].tolist() == ["A1", "A1", "A1", "A2"]
    # Invoices' accounts are codes too, against the same sorted invoiced accounts.
    invoiced = sorted(set(book.invoices["account_id"]))
    assert book.invoices["account_id"].cat.categories.tolist() == invoiced
    assert book.invoices["account_id"].dtype == book.payments["account_id"].dtype
    assert book.accounts.set_index("account_id").loc["A3", "credit_limit"] == 100000.5


def alone(table: str, rule: str, row: dict) -> dict:
    """``row`` naming an invoice no file has when it is a payment broken before the invoice
    is looked up: a bad payment row of a kept invoice also holds that invoice out (rule
    payment_quarantined, tested in test_held_out.py), which is not what these tests count."""
    if table == "payments" and rule not in ("duplicate_id", "unknown_invoice") and (
            row.get("invoice_id") == PAY["invoice_id"]):
        return {**row, "invoice_id": "I_ELSEWHERE"}
    return row


@pytest.mark.parametrize(("table", "rule", "row"), BAD_ROWS,
                         ids=[f"{t}-{r}-{i}" for i, (t, r, _) in enumerate(BAD_ROWS)])
def test_every_rule_quarantines_its_bad_row(table: str, rule: str, row: dict) -> None:
    row = alone(table, rule, row)
    clean = validate_tables(clean_raw())
    result = validate_tables(with_rows(clean_raw(), table, row), max_bad_share=1.0)
    assert_invariant(result)
    summary = result.summary.set_index("table")
    assert summary.loc[table, "quarantined"] == 1
    assert summary.loc[table, rule] == 1
    assert summary["quarantined"].sum() == 1
    bad = result.quarantine[table]
    assert bad["_rule"].tolist() == [rule]
    assert bad["_row"].tolist() == [len(clean_raw()[table]) + 1]
    assert bad["_row"].dtype == "int64"  # (validation numbers rows as UInt32 internally)
    assert isinstance(bad["_message"].iloc[0], str) and bad["_message"].iloc[0]
    for col, val in row.items():  # the row as read, strings
        assert bad[col].iloc[0] == val
    assert not result.ok
    assert_books_equal(result.book, clean.book)


@pytest.mark.parametrize("child", ["payments", "disputes"])
def test_children_of_a_quarantined_invoice_are_kept_out_with_it(child: str) -> None:
    raw = with_rows(clean_raw(), "invoices", {**INV, "amount": "0"})
    row = {**PAY, "invoice_id": "IX", "payment_date": "2024-04-10"} if child == "payments" else {
        **DIS, "invoice_id": "IX", "opened_date": "2024-04-02", "resolved_date": ""}
    result = validate_tables(with_rows(raw, child, row), max_bad_share=1.0)
    assert_invariant(result)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["non_positive_amount"]
    assert result.quarantine[child]["_rule"].tolist() == ["parent_quarantined"]
    assert "IX" not in set(result.book.tables()[child]["invoice_id"])


def test_a_row_gets_the_first_rule_it_breaks() -> None:
    row = {**INV, "issue_date": "bad", "amount": "-5", "invoice_id": "I1"}
    result = validate_tables(with_rows(clean_raw(), "invoices", row), max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["unparseable_date"]
    row = {**INV, "account_id": "", "issue_date": "bad"}
    result = validate_tables(with_rows(clean_raw(), "invoices", row), max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["missing_value"]
    assert "account_id" in result.quarantine["invoices"]["_message"].iloc[0]


def test_first_valid_occurrence_of_an_id_is_kept() -> None:
    # The earlier I9 is broken, so the later, valid I9 is the first occurrence that counts.
    raw = with_rows(clean_raw(), "invoices", {**INV, "invoice_id": "I9", "amount": "x"},
                    {**INV, "invoice_id": "I9"}, {**INV, "invoice_id": "I9", "amount": "10.0"})
    result = validate_tables(raw, max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == [
        "unparseable_amount", "duplicate_id"]
    kept = result.book.invoices.set_index("invoice_id")
    assert kept.loc["I9", "amount"] == 10.0


@st.composite
def bad_mixes(draw: st.DrawFn) -> list[int]:
    return draw(st.lists(st.integers(0, len(BAD_ROWS) - 1), max_size=12))


@settings(max_examples=15, deadline=None)
@given(picks=bad_mixes(), seed=st.integers(0, 2**16))
def test_no_row_is_lost_and_counts_match_injected(picks: list[int], seed: int) -> None:
    raw = clean_raw()
    expected: dict[tuple[str, str], int] = {}
    for n, i in enumerate(picks):
        table, rule, row = BAD_ROWS[i]
        row = alone(table, rule, dict(row))
        # Fresh ids so injected rows do not interact (duplicate rows keep theirs, and a
        # missing-value token stays one).
        key = "invoice_id" if table == "invoices" else "account_id"
        if rule not in ("duplicate_id", "missing_value") and table in (
                "invoices", "accounts") and row.get(key):
            row[key] = f"{row[key]}_{n}"
        if table == "payments" and rule != "duplicate_id":
            row["payment_id"] = f"PX_{n}"
        raw = with_rows(raw, table, row)
        expected[(table, rule)] = expected.get((table, rule), 0) + 1
    rng = np.random.default_rng(seed)
    raw = {t: f.iloc[rng.permutation(len(f))].reset_index(drop=True) for t, f in raw.items()}
    result = validate_tables(raw, max_bad_share=1.0)
    assert_invariant(result)
    summary = result.summary.set_index("table")
    got = {(t, r): int(summary.loc[t, r]) for t in TABLES for r in RULES if summary.loc[t, r]}
    assert got == expected


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_shuffled_input_gives_the_same_book(seed: int) -> None:
    raw = with_rows(clean_raw(), "invoices", {**INV, "amount": "0"})
    raw = with_rows(raw, "payments", {**PAY, "invoice_id": "I4", "payment_date": "2024-03-01",
                                      "payment_id": ""})
    expected = validate_tables(raw, max_bad_share=1.0)
    rng = np.random.default_rng(seed)
    shuffled = {t: f.iloc[rng.permutation(len(f))].reset_index(drop=True)
                for t, f in raw.items()}
    result = validate_tables(shuffled, max_bad_share=1.0)
    assert_books_equal(result.book, expected.book)
    pd.testing.assert_frame_equal(result.summary, expected.summary)


# ------------------------------------------------------------------ whole-file errors


def _error(raw: dict, **kwargs) -> DataContractError:
    with pytest.raises(DataContractError) as info:
        validate_tables(raw, **kwargs)
    return info.value


def assert_names(err: DataContractError, file: str, column: str | None, rule: str) -> None:
    assert (err.file, err.column, err.rule) == (file, column, rule)
    message = str(err)
    assert message.startswith(f"{file}: ") and f"(rule {rule})" in message
    if column:
        assert f"column '{column}'" in message
    assert "\n" not in message


def test_missing_invoices_file() -> None:
    raw = clean_raw()
    del raw["invoices"]
    assert_names(_error(raw), "invoices", None, "missing_file")


def test_missing_required_column() -> None:
    raw = clean_raw()
    raw["invoices"] = raw["invoices"].drop(columns="due_date")
    err = _error(raw, sources={"invoices": "invoices.csv"})
    assert_names(err, "invoices.csv", "due_date", "missing_column")
    assert str(err) == (
        "invoices.csv: column 'due_date' is required but missing (rule missing_column)")
    raw = clean_raw()
    raw["payments"] = raw["payments"].drop(columns="payment_date")
    assert_names(_error(raw), "payments", "payment_date", "missing_column")


def test_empty_invoices_file() -> None:
    raw = clean_raw()
    raw["invoices"] = raw["invoices"].iloc[:0]
    assert_names(_error(raw), "invoices", None, "empty_file")
    raw["invoices"] = pd.DataFrame()
    assert_names(_error(raw), "invoices", None, "empty_file")


def test_header_only_optional_table_is_fine() -> None:
    raw = clean_raw()
    raw["disputes"] = raw["disputes"].iloc[:0]
    result = validate_tables(raw)
    assert result.book.disputes.empty and result.ok


def test_mixed_currency() -> None:
    raw = clean_raw()
    raw["invoices"].loc[1, "currency"] = "CAD"
    err = _error(raw, sources={"invoices": "inv.parquet"})
    assert_names(err, "inv.parquet", "currency", "mixed_currency")
    assert "CAD" in str(err) and "USD" in str(err)
    raw["invoices"].loc[1, "currency"] = " usd"  # same currency, other spelling
    assert validate_tables(raw).ok


def test_too_many_bad_rows_names_the_worst_rule_and_column() -> None:
    raw = with_rows(clean_raw(), "invoices", {**INV, "due_date": "2024-99-01"},
                    {**INV, "invoice_id": "IY", "due_date": "x"}, {**INV, "amount": "0"})
    err = _error(raw, max_bad_share=0.2)
    assert_names(err, "invoices", "due_date", "too_many_bad_rows")
    assert "unparseable_date" in str(err) and "3 of 8 rows" in str(err)
    assert isinstance(err.result, ValidationResult)
    assert_invariant(err.result)
    # Within the threshold it passes, with the rows quarantined.
    assert validate_tables(raw, max_bad_share=0.5).summary["quarantined"].sum() == 3


def test_parent_quarantined_rows_do_not_count_against_the_child_table() -> None:
    raw = with_rows(clean_raw(), "invoices", {**INV, "amount": "0"})
    raw = with_rows(raw, "payments", *[{**PAY, "invoice_id": "IX", "payment_id": f"Q{i}",
                                         "payment_date": "2024-04-05"} for i in range(4)])
    # invoices: 1 bad of 6 (<= 0.2); payments: 4 of 8 only parent_quarantined.
    result = validate_tables(raw, max_bad_share=0.2)
    assert result.summary.set_index("table").loc["payments", "parent_quarantined"] == 4


# ------------------------------------------------------------------ folders and formats


def _write_raw(raw: dict[str, pd.DataFrame], folder, fmt: str = "csv") -> None:
    write_tables(raw, folder, fmt=fmt)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_folder_round_trip_gives_the_same_book(tmp_path, fmt: str) -> None:
    expected = validate_tables(clean_raw()).book
    # Typed (a written Book) and raw-string folders both load to the same Book.
    write_book(expected, tmp_path / "typed", fmt=fmt)
    _write_raw(clean_raw(), tmp_path / "raw", fmt=fmt)
    for name in ("typed", "raw"):
        result = validate_folder(tmp_path / name)
        assert result.ok
        assert_books_equal(result.book, expected)
        # The public pandas reader gives the same cells as validate_folder's polars reader.
        raw = {t: frame for t, (_, frame) in read_folder(tmp_path / name).items()}
        assert_books_equal(validate_tables(raw).book, expected)


def test_csv_cells_are_read_as_strings_without_na_conversion(tmp_path) -> None:
    raw = with_rows(clean_raw(), "invoices", {**INV, "invoice_id": "NA", "account_id": "0012"},
                    {**INV, "invoice_id": "0013", "account_id": "0012"})
    _write_raw(raw, tmp_path)
    found = read_folder(tmp_path)
    assert set(found) == set(TABLES)
    inv = found["invoices"][1]
    assert inv["invoice_id"].iloc[-2] == "NA" and inv["account_id"].iloc[-2] == "0012"
    assert (inv["terms_days"] == "").sum() == 3
    # The reader keeps every cell as written; validation reads "NA" as a missing id.
    result = validate_folder(tmp_path, max_bad_share=0.5)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["missing_value"]
    assert {"0013", "I1"} <= set(result.book.invoices["invoice_id"])
    assert "0012" in set(result.book.accounts["account_id"])


def test_quarantine_files_hold_rows_as_read(tmp_path) -> None:
    raw = with_rows(clean_raw(), "invoices", {**INV, "amount": "12,5O"})
    raw = with_rows(raw, "disputes", {**DIS, "invoice_id": "NOPE"})
    _write_raw(raw, tmp_path)
    (tmp_path / "_targets.csv").write_text("garbage\n\x00\n")
    (tmp_path / "notes.txt").write_text("not a table")
    result = validate_folder(tmp_path, max_bad_share=0.5)
    qinv = pd.read_csv(tmp_path / "_quarantine" / "invoices.csv", dtype=str,
                       keep_default_na=False)
    assert qinv.columns.tolist()[-3:] == ["_row", "_rule", "_message"]
    assert qinv["amount"].tolist() == ["12,5O"] and qinv["_rule"].tolist() == [
        "unparseable_amount"]
    # _row is the 1-based data row of the file: line _row + 1 (after the header).
    lines = (tmp_path / "invoices.csv").read_text().splitlines()
    assert lines[int(qinv["_row"].iloc[0])].startswith("IX,")
    assert (tmp_path / "_quarantine" / "disputes.csv").exists()
    assert not (tmp_path / "_quarantine" / "payments.csv").exists()
    # The quarantine folder is never read back as data, and a clean rerun clears it.
    again = validate_folder(tmp_path, max_bad_share=0.5)
    pd.testing.assert_frame_equal(again.summary, result.summary)
    _write_raw(clean_raw(), tmp_path)
    assert validate_folder(tmp_path).ok
    assert not (tmp_path / "_quarantine" / "invoices.csv").exists()


def test_quarantine_is_written_before_too_many_bad_rows_stops(tmp_path) -> None:
    raw = with_rows(clean_raw(), "accounts", {"account_id": ""}, {"account_id": ""})
    _write_raw(raw, tmp_path)
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path, quarantine_dir=tmp_path / "q")
    assert_names(info.value, "accounts.csv", "account_id", "too_many_bad_rows")
    assert len(pd.read_csv(tmp_path / "q" / "accounts.csv")) == 2


def test_bad_encoding_names_the_file(tmp_path) -> None:
    _write_raw(clean_raw(), tmp_path)
    text = (tmp_path / "accounts.csv").read_text().replace("small", "Zürich")
    (tmp_path / "accounts.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert_names(info.value, "accounts.csv", None, "bad_encoding")


def test_zero_byte_and_missing_files_in_a_folder(tmp_path) -> None:
    _write_raw(clean_raw(), tmp_path)
    (tmp_path / "payments.csv").write_bytes(b"")
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert_names(info.value, "payments.csv", None, "empty_file")
    (tmp_path / "payments.csv").unlink()
    (tmp_path / "invoices.csv").unlink()
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert_names(info.value, "invoices", None, "missing_file")


def test_a_table_given_in_two_formats_is_ambiguous(tmp_path) -> None:
    _write_raw(clean_raw(), tmp_path, fmt="csv")
    write_tables({"payments": clean_raw()["payments"]}, tmp_path, fmt="parquet")
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert info.value.rule == "ambiguous_file"


def test_typed_parquet_columns_skip_parsing(tmp_path) -> None:
    book = validate_tables(clean_raw()).book
    typed = {t: f.copy() for t, f in book.tables().items()}
    # Timestamps with a time of day are truncated to the date; numeric ids become text.
    typed["invoices"]["issue_date"] = typed["invoices"]["issue_date"] + pd.Timedelta(hours=5)
    typed["invoices"].loc[0, "amount"] = np.nan
    result = validate_tables(typed, max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["missing_value"]
    assert (result.book.invoices["issue_date"].dt.hour == 0).all()


def test_render_lists_tables_and_rules() -> None:
    raw = with_rows(clean_raw(), "payments", {**PAY, "invoice_id": "NOPE"})
    text = validate_tables(raw, max_bad_share=1.0).render()
    for word in ("invoices", "payments", "rows_read", "quarantined", "unknown_invoice"):
        assert word in text


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_synthetic_errors_are_quarantined_exactly(tmp_path, fmt: str) -> None:
    import features.synthetic as synthetic
    synthetic.write_book_folder(60, tmp_path, seed=3, error_rate=0.03, fmt=fmt)
    injected = json.loads((tmp_path / "_injected_errors.json").read_text())
    # A tiny book gets at least one bad row per rule, so its bad share can exceed 5%.
    result = validate_folder(tmp_path, max_bad_share=0.5)
    assert_invariant(result)
    summary = result.summary.set_index("table")
    for table, per_rule in injected.items():
        for rule in RULES:
            assert summary.loc[table, rule] == per_rule.get(rule, 0), (table, rule)
    # Injected rows are extra rows: what is kept is exactly the true book.
    assert_books_equal(result.book, synthetic.generate_book(60, seed=3))


# ------------------------------------------------------------------ fast key helpers


@settings(max_examples=30, deadline=None)
@given(keys=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "ab", ""])),
                     max_size=30),
       sort=st.booleans())
def test_first_occurrence_matches_polars(keys: list[str | None], sort: bool) -> None:
    series = pl.Series(sorted(keys, key=lambda k: (k is None, k or "")) if sort else keys,
                       dtype=pl.String)
    got = first_occurrence(series)
    expected = series.is_first_distinct() | series.is_null()
    assert got.to_list() == expected.to_list()


@settings(max_examples=30, deadline=None)
@given(table=st.lists(st.text("abc", max_size=3), unique=True, max_size=12),
       keys=st.lists(st.one_of(st.none(), st.text("abc", max_size=3)), max_size=20))
def test_lookup_matches_a_join(table: list[str], keys: list[str | None]) -> None:
    got = lookup(pl.Series(keys, dtype=pl.String), pl.Series(table, dtype=pl.String))
    expected = [table.index(k) if k in table else None for k in keys]
    assert got.to_list() == expected


def test_lookup_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force every string to the same hash: results must still be exact.
    monkeypatch.setattr(pl.Series, "hash", lambda self, seed=0: pl.Series(
        np.zeros(len(self), dtype=np.uint64)))
    table = pl.Series(["x", "y", "z"])
    assert lookup(pl.Series(["z", "q", None, "x"]), table).to_list() == [2, None, None, 0]
    big = pl.Series(["h", "b", "g", "a", "f", "c", "e", "d"])  # unsorted, few keys
    assert lookup(pl.Series(["c", "zz"]), big).to_list() == [5, None]
    assert first_occurrence(pl.Series(["b", "a", "b", "c", "a"])).to_list() == [
        True, True, False, True, False]


@settings(max_examples=30, deadline=None)
@given(table=st.lists(st.text("abcd", max_size=4), unique=True, min_size=4, max_size=40),
       keys=st.lists(st.one_of(st.none(), st.text("abcd", max_size=4)), max_size=10))
def test_lookup_few_keys_in_a_big_table(table: list[str], keys: list[str | None]) -> None:
    got = lookup(pl.Series(keys, dtype=pl.String), pl.Series(table, dtype=pl.String))
    assert got.to_list() == [table.index(k) if k in table else None for k in keys]


def test_ids_are_stripped_so_padded_references_match() -> None:
    raw = with_rows(clean_raw(), "payments", {**PAY, "invoice_id": " I1\t", "payment_id": "PZ"})
    result = validate_tables(raw)
    assert result.ok
    assert "PZ" in set(result.book.payments.loc[
        result.book.payments["invoice_id"] == "I1", "payment_id"])


def test_kept_ids_sorted_asks_about_the_kept_invoices_only() -> None:
    """``rules.kept_ids_sorted`` (asked once per book, then passed to every lookup of the
    invoices): a quarantined invoice out of order does not make the kept ids unsorted, a
    kept one does; the lookups it feeds find the same rows either way."""
    import polars as pl

    from features.contract import rules as R
    from features.contract.parsing import value
    from features.keys import lookup

    ids = pl.Series(value("invoice_id"), ["I1", "I3", "I2", "I4"])
    dead = pl.DataFrame([ids, pl.Series(R.RULE, [0, 0, 1, 0], dtype=pl.UInt8)])
    alive = dead.with_columns(pl.lit(0, dtype=pl.UInt8).alias(R.RULE))
    assert R.kept_ids_sorted(dead) and not R.kept_ids_sorted(alive)
    keys = pl.Series(["I4", None, "I1", "I9", "I3"])
    kept = ids.filter(dead.get_column(R.RULE) == 0)
    expected = [2, None, 0, None, 1]
    assert lookup(keys, kept).to_list() == expected
    assert lookup(keys, kept, table_sorted=True).to_list() == expected
    assert lookup(keys, kept, table_sorted=False).to_list() == expected


def test_quarantine_shows_stored_dates_as_stored(tmp_path) -> None:
    """Parquet dates stored as datetimes: validation drops a stored date column its parsed
    days say exactly (memory, issue 20) and rebuilds the quarantined rows' cells from
    them; a column with a time of day is kept as stored. Either way the quarantine shows
    each cell as polars writes the stored value, in the file's column order."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 400
    issue = [dt.datetime(2023, 1 + i % 12, 1 + i % 28) for i in range(n)]
    due = [d + dt.timedelta(days=30) for d in issue]
    due[5] = dt.datetime(2022, 1, 1)  # due before issue
    due[11] = dt.datetime(2023, 12, 3, 13, 30)  # a time of day, on a bad row
    amount = [100.0 + i for i in range(n)]
    amount[11] = 0.0
    table = pa.table({"invoice_id": [f"I{i:05d}" for i in range(n)],
                      "issue_date": pa.array(issue, pa.timestamp("ms")),
                      "account_id": [f"A{i // 20:04d}" for i in range(n)],
                      "due_date": pa.array(due, pa.timestamp("us")), "amount": amount})
    pq.write_table(table, tmp_path / "invoices.parquet", row_group_size=64)
    result = validate_folder(tmp_path, quarantine_dir=tmp_path / "q", max_bad_share=1.0,
                             accept_anomalies=True)
    bad = result.quarantine["invoices"]
    assert list(bad.columns)[:5] == ["invoice_id", "issue_date", "account_id", "due_date",
                                     "amount"]
    assert bad["_row"].tolist() == [6, 12]
    stored = pl.read_parquet(tmp_path / "invoices.parquet")[[5, 11]]
    for col in ("issue_date", "due_date"):
        assert bad[col].tolist() == stored.get_column(col).cast(pl.String).to_list()
    assert bad["due_date"].iloc[1].startswith("2023-12-03 13:30")
