"""Reading what real exports contain: delimiters, decimal commas, malformed lines, headers,
integer dates, missing tokens, ids across formats, conflicting duplicates, control bytes.

Every case writes a small file the way a real export would, validates the folder, and
checks either the values a person reading the file would take or one clear refusal.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from features.contract.options import ReadOptions
from features.contract.reader import read_csv, sniff_delimiter
from features.contract.validation import DataContractError, validate_folder, validate_tables

HEADER = "invoice_id,account_id,issue_date,due_date,amount"
PAY_HEADER = "invoice_id,payment_date,amount"
ROWS = [
    "I1,A1,2024-01-01,2024-01-31,100.50",
    "I2,A1,2024-01-15,2024-02-14,250",
    "I3,A2,2024-02-01,2024-03-02,80.25",
]


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def lines(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def amounts(result) -> dict[str, float]:
    return dict(zip(result.book.invoices["invoice_id"], result.book.invoices["amount"],
                    strict=True))


def rules_of(result, table: str = "invoices") -> list[str]:
    return result.quarantine[table]["_rule"].tolist()


# ------------------------------------------------------------------ delimiters, decimals


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_every_delimiter_gives_the_same_book(tmp_path: Path, delimiter: str) -> None:
    write(tmp_path / "comma", "invoices.csv", lines(*ROWS))
    expected = validate_folder(tmp_path / "comma").book.invoices
    text = lines(*ROWS).replace(",", delimiter)
    write(tmp_path / "other", "invoices.csv", text)
    result = validate_folder(tmp_path / "other")
    pd.testing.assert_frame_equal(result.book.invoices, expected)
    info = result.read_info["invoices"]
    assert (info.delimiter, info.delimiter_how) == (delimiter, "detected")
    shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
    assert f"invoices.csv: delimiter {shown} (detected)" in result.render()


def test_european_export_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    text = lines("I1;A1;2024-01-01;2024-01-31;1.234,56", "I2;A1;2024-01-15;2024-02-14;2.500",
                 "I3;A2;2024-02-01;2024-03-02;80,5", header=HEADER.replace(",", ";"))
    write(tmp_path, "invoices.csv", text)
    result = validate_folder(tmp_path)
    # "2.500" is 2500 here: the file's other values show ',' is the decimal separator.
    assert amounts(result) == {"I1": 1234.56, "I2": 2500.0, "I3": 80.5}
    info = result.read_info["invoices"]
    assert (info.delimiter, info.decimal, info.decimal_how) == (";", ",", "detected")
    assert "decimal ',' (detected)" in result.render()


def test_ambiguous_amounts_are_refused_not_guessed(tmp_path: Path) -> None:
    text = lines("I1,A1,2024-01-01,2024-01-31,2.500", 'I2,A1,2024-01-15,2024-02-14,"1,234"',
                 "I3,A2,2024-02-01,2024-03-02,80")
    write(tmp_path, "invoices.csv", text)
    result = validate_folder(tmp_path, max_bad_share=1.0)
    assert rules_of(result) == ["ambiguous_amount", "ambiguous_amount"]
    assert amounts(result) == {"I3": 80.0}
    message = result.quarantine["invoices"]["_message"].iloc[0]
    assert "'2.500'" in message and "decimal" in message
    assert result.read_info["invoices"].decimal_how == "undetermined"
    # Too many of them: the stop says what to set.
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert info.value.rule == "too_many_bad_rows" and "read option decimal" in str(info.value)
    # Set, the same file reads one way or the other.
    dot = validate_folder(tmp_path, read_options={"invoices": {"decimal": "."}})
    assert amounts(dot) == {"I1": 2.5, "I2": 1234.0, "I3": 80.0}
    comma = validate_folder(tmp_path, read_options={"*": ReadOptions(decimal=",")})
    assert amounts(comma) == {"I1": 2500.0, "I2": 1.234, "I3": 80.0}
    assert comma.read_info["invoices"].decimal_how == "set"


def test_a_value_against_the_set_decimal_is_unparseable(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines('I1,A1,2024-01-01,2024-01-31,"12,50"',
                                          "I2,A1,2024-01-15,2024-02-14,12.50"))
    result = validate_folder(tmp_path, read_options={"invoices": {"decimal": ","}},
                             max_bad_share=1.0)
    assert amounts(result) == {"I1": 12.5}
    assert rules_of(result) == ["unparseable_amount"]


def test_delimiter_option_wins_over_detection(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines(*ROWS).replace(",", ";"))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path, read_options={"invoices": {"delimiter": ","}})
    err = info.value
    assert (err.file, err.column, err.rule) == ("invoices.csv", "invoice_id", "missing_column")
    assert "set the read option delimiter" in str(err) and "(read with delimiter ','" in str(err)


def test_sniffing_prefers_the_delimiter_that_names_contract_columns() -> None:
    assert sniff_delimiter("invoice_id;account_id,x\nI1;A1,y\n") == (";", "detected")
    assert sniff_delimiter("account_id\nA1\n") == (",", "default")


def test_bad_read_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="delimiter"):
        ReadOptions(delimiter=":")
    with pytest.raises(ValueError, match="unknown read options"):
        validate_tables({"invoices": pd.DataFrame()}, read_options={"invoices": {"sep": ";"}})


# ------------------------------------------------------------------ malformed lines


def test_malformed_lines_are_quarantined_with_their_line_number(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines(*ROWS, "I4,A3,2024-03-01,2024-03-31,10"))
    accounts = "\n".join([
        "account_id,name,segment",
        'A1,"Smith\nand Sons",small',  # a quoted line break: one record over two lines
        "A2,Acme, Inc,enterprise",  # an unquoted comma: one field too many
        "",  # a blank line: not a record
        "A3,Bolt",  # a field missing
        "A4,Zed,small",
    ]) + "\n"
    write(tmp_path, "accounts.csv", accounts)
    result = validate_folder(tmp_path, max_bad_share=1.0)
    q = result.quarantine["accounts"]
    assert q["_rule"].tolist() == ["malformed_line", "malformed_line"]
    assert q["_row"].tolist() == [2, 3]  # data records, the header not counted
    assert q["_message"].iloc[0].startswith("line 4 has 4 fields where the header has 3")
    assert "Acme, Inc" in q["_message"].iloc[0]
    assert q["_message"].iloc[1].startswith("line 6 has 2 fields")
    acc = result.book.accounts.set_index("account_id")
    assert acc.loc["A1", "name"] == "Smith\nand Sons" and acc.loc["A4", "segment"] == "small"
    # The malformed accounts still exist (their invoices name them), without attributes.
    assert pd.isna(acc.loc["A2", "segment"]) and pd.isna(acc.loc["A3", "name"])
    s = result.summary.set_index("table").loc["accounts"]
    assert (s["rows_read"], s["kept"], s["malformed_line"]) == (4, 2, 2)
    assert result.read_info["accounts"].malformed_lines == 2


def test_one_bad_line_does_not_reject_a_large_file(tmp_path: Path) -> None:
    rows = [f"I{i},A{i % 7},2024-01-01,2024-01-31,{i}.5" for i in range(1, 2001)]
    rows[1234] = rows[1234] + ",extra"
    write(tmp_path, "invoices.csv", lines(*rows))
    result = validate_folder(tmp_path)
    assert rules_of(result) == ["malformed_line"]
    assert result.quarantine["invoices"]["_message"].iloc[0].startswith("line 1236 ")
    assert len(result.book.invoices) == 1999


def test_fast_and_exact_csv_paths_read_the_same_cells(tmp_path: Path) -> None:
    text = lines(*ROWS, 'I4,"A,3",2024-03-01,2024-03-31,""', 'I5,A4,2024-03-01,2024-03-31,')
    fast, _ = read_csv(write(tmp_path, "a.csv", text))
    exact, _ = read_csv(write(tmp_path, "b.csv", text + "\n\n"))  # blank lines: exact path
    assert "__malformed" not in fast.columns
    assert exact.get_column("__malformed").null_count() == exact.height
    assert_frame_equal(exact.drop("__malformed"), fast)


# ------------------------------------------------------------------ headers


def test_header_case_and_space_differences_are_normalised_with_a_note(tmp_path: Path) -> None:
    header = "Invoice_ID,ACCOUNT ID,issue-date,DueDate,Amount"
    write(tmp_path, "invoices.csv", lines(*ROWS, header=header))
    result = validate_folder(tmp_path)
    assert len(result.book.invoices) == 3
    renamed = dict(result.read_info["invoices"].renamed)
    assert renamed == {"Invoice_ID": "invoice_id", "ACCOUNT ID": "account_id",
                       "issue-date": "issue_date", "DueDate": "due_date", "Amount": "amount"}
    assert "renamed 'Invoice_ID' -> invoice_id" in result.render()


@pytest.mark.parametrize(("header", "hint"), [
    ("InvoiceNumber,account_id,issue_date,due_date,amount",
     "found 'InvoiceNumber', a usual name for invoice_id"),
    ("invoce_id,account_id,issue_date,due_date,amount", "did you mean 'invoce_id'?"),
    ("invoice_id,Invoice ID,account_id,issue_date,due_date,amount", None),
])
def test_missing_column_message_suggests_near_matches(
    tmp_path: Path, header: str, hint: str | None
) -> None:
    if hint is None:  # both spellings present: the exact one is used, no rename
        rows = [r.replace(",", ",x,", 1) for r in ROWS]
        write(tmp_path, "invoices.csv", lines(*rows, header=header))
        assert len(validate_folder(tmp_path).book.invoices) == 3
        return
    write(tmp_path, "invoices.csv", lines(*ROWS, header=header))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    err = info.value
    assert (err.file, err.column, err.rule) == ("invoices.csv", "invoice_id", "missing_column")
    assert hint in str(err) and "\n" not in str(err)


def test_two_columns_of_one_name_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines(*[r + ",1" for r in ROWS], header=HEADER + ",amount"))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert (info.value.column, info.value.rule) == ("amount", "duplicate_column")
    frame = pd.DataFrame([r.split(",") + ["1"] for r in ROWS],
                         columns=[*HEADER.split(","), "amount"])
    with pytest.raises(DataContractError) as info:
        validate_tables({"invoices": frame})
    assert (info.value.column, info.value.rule) == ("amount", "duplicate_column")


def test_reserved_names_and_types_that_hold_no_value_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines(*[r + ",x" for r in ROWS], header=HEADER + ",__rule"))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    assert (info.value.column, info.value.rule) == ("__rule", "reserved_column")
    frame = pd.DataFrame([r.split(",") for r in ROWS], columns=HEADER.split(","))
    frame["amount"] = [[1.0], [2.0], [3.0]]
    with pytest.raises(DataContractError) as info:
        validate_tables({"invoices": pl.from_pandas(frame)}, sources={"invoices": "inv.pq"})
    err = info.value
    assert (err.file, err.column, err.rule) == ("inv.pq", "amount", "unsupported_type")
    assert "has the stored type List(Float64), which holds no number" in str(err)


def test_gzipped_csv(tmp_path: Path) -> None:
    import gzip

    write(tmp_path, "invoices.csv.gz", gzip.compress(lines(*ROWS).encode()))
    assert amounts(validate_folder(tmp_path)) == {"I1": 100.5, "I2": 250.0, "I3": 80.25}


# ------------------------------------------------------------------ dates


def _parquet(folder: Path, name: str, frame: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / name, index=False)


def test_integer_yyyymmdd_dates_are_dates_never_days_since_1970(tmp_path: Path) -> None:
    invoices = pd.DataFrame({"invoice_id": ["I1", "I2"], "account_id": ["A1", "A2"],
                             "issue_date": [20230104, 20230210], "due_date": [20230203, 20230312],
                             "amount": [10.0, 20.0]})
    _parquet(tmp_path, "invoices.parquet", invoices)
    write(tmp_path, "payments.csv", lines("I1,20230110,10", header=PAY_HEADER))
    result = validate_folder(tmp_path)
    assert result.ok
    assert result.book.invoices["issue_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-01-04", "2023-02-10"]
    assert result.book.payments["payment_date"].iloc[0] == pd.Timestamp("2023-01-10")
    assert "YYYYMMDD" in result.read_info["invoices"].date_formats
    assert "YYYYMMDD" in result.read_info["payments"].date_formats


def test_integer_days_are_refused_and_the_invoices_file_is_blamed(tmp_path: Path) -> None:
    # Days since 1970 (what a date becomes when written as a plain integer) are no dates.
    invoices = pd.DataFrame({"invoice_id": ["I1", "I2"], "account_id": ["A1", "A2"],
                             "issue_date": [19361, 19362], "due_date": [19391, 19392],
                             "amount": [10.0, 20.0]})
    _parquet(tmp_path, "invoices.parquet", invoices)
    write(tmp_path, "payments.csv", lines("I1,2023-01-10,10", header=PAY_HEADER))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path)
    err = info.value
    assert (err.file, err.column, err.rule) == ("invoices.parquet", "issue_date",
                                                "too_many_bad_rows")
    assert "unparseable_date" in str(err)
    q = err.result.quarantine["invoices"]
    assert q["_message"].iloc[0] == (
        "column 'issue_date' value '19361' is not a YYYY-MM-DD or YYYYMMDD date")
    assert err.result.quarantine["payments"]["_rule"].tolist() == ["parent_quarantined"]


def test_text_yyyymmdd_and_a_set_date_format(tmp_path: Path) -> None:
    write(tmp_path / "digits", "invoices.csv", lines("I1,A1,20240101,20240131,1"))
    book = validate_folder(tmp_path / "digits").book
    assert book.invoices["due_date"].iloc[0] == pd.Timestamp("2024-01-31")
    write(tmp_path / "german", "invoices.csv",
          lines("I1,A1,01.02.2024,02.03.2024,1", "I2,A1,2024-02-01,2024-03-01,1"))
    result = validate_folder(tmp_path / "german", max_bad_share=1.0,
                             read_options={"invoices": {"date_format": "%d.%m.%Y"}})
    assert result.book.invoices["issue_date"].iloc[0] == pd.Timestamp("2024-02-01")
    assert result.quarantine["invoices"]["_message"].iloc[0].endswith(
        "is not a date in the format %d.%m.%Y")


# ------------------------------------------------------------------ missing values and ids


def test_missing_tokens_are_missing_in_ids_and_values(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines(*ROWS, "I4,NULL,2024-01-01,2024-01-31,5",
                                          "I5,A1,2024-01-01,N/A,5", "-,A1,2024-01-01,2024-01-31,5",
                                          "I6,A1,2024-01-01,2024-01-31,null"))
    write(tmp_path, "accounts.csv", "account_id,segment,credit_limit\nA1,NA,NA\nnan,small,1\n")
    result = validate_folder(tmp_path, max_bad_share=1.0)
    q = result.quarantine["invoices"]
    assert q["_rule"].tolist() == ["missing_value"] * 4
    assert [m.split("'")[1] for m in q["_message"]] == ["account_id", "due_date", "invoice_id",
                                                       "amount"]
    assert rules_of(result, "accounts") == ["missing_value"]
    acc = result.book.accounts.set_index("account_id")
    # Descriptive text stays as written ("NA" may be a region); numbers honour the token.
    assert acc.loc["A1", "segment"] == "NA" and pd.isna(acc.loc["A1", "credit_limit"])
    options = {"*": {"missing_values": ("", "?")}}
    custom = validate_folder(tmp_path, max_bad_share=1.0, read_options=options)
    assert "NULL" in set(custom.book.accounts["account_id"])


def test_ids_match_as_text_across_formats(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines("I1,1,2024-01-01,2024-01-31,10",
                                          "I2,2,2024-01-01,2024-01-31,10"))
    accounts = pd.DataFrame({"account_id": [1, 2], "segment": ["small", "enterprise"]})
    _parquet(tmp_path, "accounts.parquet", accounts)
    result = validate_folder(tmp_path)
    acc = result.book.accounts.set_index("account_id")
    assert acc["segment"].to_dict() == {"1": "small", "2": "enterprise"}
    assert not result.warnings
    # Whole floats (an integer column with a gap, as pandas writes it) are the same ids.
    _parquet(tmp_path, "accounts.parquet", accounts.astype({"account_id": "float64"}))
    assert validate_folder(tmp_path).book.accounts["segment"].notna().all()


def test_leading_zeros_stay_text_and_a_mismatch_is_warned(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines("I1,0000001,2024-01-01,2024-01-31,10",
                                          "I2,0000002,2024-01-01,2024-01-31,10"))
    _parquet(tmp_path, "accounts.parquet", pd.DataFrame({"account_id": [1, 2],
                                                         "segment": ["small", "small"]}))
    write(tmp_path, "payments.csv", lines("0001,2024-01-05,10",
                                          header=PAY_HEADER))
    result = validate_folder(tmp_path, max_bad_share=1.0)
    assert sorted(result.book.invoices["account_id"]) == ["0000001", "0000002"]
    assert result.book.accounts.set_index("account_id").loc["0000001"].isna()["segment"]
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert "2 account ids of invoices.csv and accounts.parquet match only without leading " \
           "zeros (e.g. '0000001' and '1')" in warning
    assert f"warning: {warning}" in result.render()


# ------------------------------------------------------------------ duplicates, control bytes


def test_conflicting_duplicates_are_all_quarantined_and_say_what_differs(tmp_path: Path) -> None:
    write(tmp_path, "invoices.csv", lines(*ROWS, "I2,A1,2024-01-15,2024-02-14,205",
                                          "I3,A2,2024-02-01,2024-03-02,80.250"))
    write(tmp_path, "payments.csv", lines("I2,2024-02-01,100", "I1,2024-01-20,100.5",
                                          header=PAY_HEADER))
    result = validate_folder(tmp_path, max_bad_share=1.0)
    q = result.quarantine["invoices"]
    assert q["_rule"].tolist() == ["conflicting_duplicate", "conflicting_duplicate",
                                   "duplicate_id"]
    assert q["_row"].tolist() == [2, 4, 5]
    assert q["_message"].iloc[0] == (
        "invoice_id 'I2' appears 2 times and the copies differ in amount: every copy is "
        "quarantined")
    # The identical copy of I3 (80.250 is 80.25) keeps one; I2's payment goes with I2.
    assert amounts(result) == {"I1": 100.5, "I3": 80.25}
    assert rules_of(result, "payments") == ["parent_quarantined"]


@pytest.mark.parametrize("byte", [b"\x00", b"\x07", b"\x1b"])
def test_control_characters_in_ids_are_quarantined(tmp_path: Path, byte: bytes) -> None:
    text = lines(*ROWS).encode() + b"I4,A" + byte + b"9,2024-01-01,2024-01-31,5\n"
    write(tmp_path, "invoices.csv", text)
    result = validate_folder(tmp_path, max_bad_share=1.0)
    assert rules_of(result) == ["control_character"]
    assert "column 'account_id' holds a control character" in (
        result.quarantine["invoices"]["_message"].iloc[0])
    assert not any(byte.decode() in a for a in result.book.accounts["account_id"])


# ------------------------------------------------------------------ encodings


def test_utf16_and_set_encodings(tmp_path: Path) -> None:
    text = lines(*ROWS).replace(",", "\t").replace("A2", "Zürich")
    write(tmp_path / "excel", "invoices.csv", text.encode("utf-16"))  # Excel "Unicode text"
    result = validate_folder(tmp_path / "excel")
    assert "Zürich" in set(result.book.invoices["account_id"])
    assert result.read_info["invoices"].encoding == "utf-16"
    write(tmp_path / "latin", "invoices.csv", lines(*ROWS).replace("A2", "Zürich").encode(
        "latin-1"))
    with pytest.raises(DataContractError) as info:
        validate_folder(tmp_path / "latin")
    assert info.value.rule == "bad_encoding" and "line 4" in str(info.value)
    latin = validate_folder(tmp_path / "latin", read_options={"*": {"encoding": "latin-1"}})
    assert "Zürich" in set(latin.book.invoices["account_id"])
    assert "encoding iso8859-1" in latin.render()


def test_parquet_is_read_column_by_column_as_a_whole_read_gives_it(tmp_path: Path) -> None:
    """Validation reads Parquet one column at a time, each in one chunk (memory: issue 11):
    the same frame as polars' whole-file read, of a file of several row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.contract.io import read_source

    table = pa.table({"invoice_id": [f"I{i:020d}" for i in range(1000)],
                      "amount": [float(i) if i % 7 else None for i in range(1000)],
                      "note": ["x" * (i % 30) for i in range(1000)]})
    pq.write_table(table, tmp_path / "invoices.parquet", row_group_size=128)
    frame, info = read_source(tmp_path / "invoices.parquet")
    assert info.kind == "parquet" and frame.n_chunks("all") == [1, 1, 1]
    assert_frame_equal(frame, pl.read_parquet(tmp_path / "invoices.parquet"))
    # a file polars refuses is still unreadable_file (two columns of one name)
    twice = pa.table([pa.array([1]), pa.array([2])], names=["amount", "amount"])
    pq.write_table(twice, tmp_path / "payments.parquet")
    with pytest.raises(DataContractError) as info_:
        read_source(tmp_path / "payments.parquet")
    assert info_.value.rule == "unreadable_file"


def test_parquet_code_columns_are_read_as_categoricals_of_the_same_cells(tmp_path: Path) -> None:
    """``read_source(codes=...)`` (validation's optional code columns, issue 20): a text
    column is read as a ``Categorical`` holding the same cells (nulls, case and spaces as
    written), in one chunk; a column named there but stored as a number, or absent, is read
    as stored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.contract.io import read_source

    methods = [None if i % 11 == 0 else (" Wire" if i % 5 else "check") for i in range(1000)]
    table = pa.table({"invoice_id": [f"I{i:05d}" for i in range(1000)],
                      "method": pa.array(methods, pa.large_string()),
                      "amount": [float(i) for i in range(1000)]})
    pq.write_table(table, tmp_path / "payments.parquet", row_group_size=128)
    frame, _ = read_source(tmp_path / "payments.parquet", codes=["method", "amount", "absent"])
    assert frame.dtypes == [pl.String, pl.Categorical, pl.Float64]
    assert frame.n_chunks("all") == [1, 1, 1]
    assert frame.get_column("method").cast(pl.String).to_list() == methods
    assert_frame_equal(frame.with_columns(pl.col("method").cast(pl.String)),
                       pl.read_parquet(tmp_path / "payments.parquet"))
