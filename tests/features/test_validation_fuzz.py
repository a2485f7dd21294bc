"""Fuzzing the validation boundary with files as they arrive.

Random bytes, random delimiters, quoting and decimal conventions, truncated files, mixed
encodings, dates and amounts around the plausibility limits: validation either returns a
result whose counts add up (rows in = kept + quarantined) or raises one
:class:`DataContractError` whose message is one line naming the file, never a traceback.
For well-formed generated rows, what is kept is exactly what was written (as a person
reading the file would take it), and what is quarantined carries the rule the row breaks.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract.options import Plausibility
from features.contract.rules import RULES
from features.contract.validation import (
    DataContractError,
    ValidationResult,
    validate_folder,
)

LIMITS = Plausibility()
FUZZ = settings(max_examples=35, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
HEADER = ["invoice_id", "account_id", "issue_date", "due_date", "amount"]

# Dates on and around every limit, plus ordinary ones.
EDGE_DAYS = [LIMITS.date_min - timedelta(days=1), LIMITS.date_min, LIMITS.date_max,
             LIMITS.date_max - timedelta(days=1), *LIMITS.sentinel_dates, date(2024, 2, 29),
             date(2023, 12, 31)]
days = st.one_of(st.sampled_from(EDGE_DAYS),
                 st.dates(min_value=date(1985, 1, 1), max_value=date(2105, 1, 1)))
# Amounts in cents, around zero and the cap.
cap_cents = round(LIMITS.amount_cap * 100)
cents = st.one_of(st.integers(-200, 10**9), st.integers(cap_cents - 2, cap_cents + 2))
ids = st.text("AZ09az-_./ é", min_size=1, max_size=8).filter(
    lambda s: s.strip() and s.strip().upper() not in {"NULL", "N/A", "NA", "-", "#N/A",
                                                      "NONE", "NAN"})


def _check(folder: Path, run) -> ValidationResult | None:
    """Run ``run``; a DataContractError must be one line naming a file of the folder."""
    try:
        result = run()
    except DataContractError as err:
        message = str(err)
        assert "\n" not in message and "\r" not in message, message
        names = {p.name for p in folder.iterdir()} | {"invoices", "payments", "accounts",
                                                      "disputes"}
        assert message.split(": ", 1)[0] in names, message
        assert err.rule in message
        return None
    s = result.summary.set_index("table")
    assert (s["rows_read"] == s["kept"] + s["quarantined"]).all()
    assert (s[list(RULES)].sum(axis=1) == s["quarantined"]).all()
    for table, frame in result.quarantine.items():
        assert len(frame) == s.loc[table, "quarantined"]
        assert frame["_row"].between(1, max(1, s.loc[table, "rows_read"])).all()
    return result


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="delinq-fuzz-"))


@FUZZ
@given(body=st.one_of(
    st.binary(max_size=400),
    st.text(st.sampled_from(list('abc019,;\t|"\n\r -.\x00é')), max_size=300).map(
        lambda t: t.encode("utf-8")),
), with_header=st.booleans(), other=st.binary(max_size=60))
def test_random_bytes_never_crash(body: bytes, with_header: bool, other: bytes) -> None:
    folder = _folder()
    try:
        head = (",".join(HEADER) + "\n").encode() if with_header else b""
        (folder / "invoices.csv").write_bytes(head + body)
        (folder / "payments.csv").write_bytes(b"invoice_id,payment_date,amount\n" + other)
        _check(folder, lambda: validate_folder(folder, max_bad_share=1.0))
        _check(folder, lambda: validate_folder(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _expected_rule(issue: date, due: date, amount_cents: int) -> str | None:
    """The rule a generated row breaks (ids are valid and unique), in RULES order."""
    for day in (issue, due):
        if day in LIMITS.sentinel_dates:
            return "sentinel_date"
    for day in (issue, due):
        if not LIMITS.date_min <= day < LIMITS.date_max:
            return "implausible_date"
    if amount_cents == 0:  # a negative invoice is a credit note, kept
        return "non_positive_amount"
    if amount_cents / 100 > LIMITS.amount_cap:
        return "amount_above_cap"
    if due < issue:
        return "due_before_issue"
    return None


def _amount_text(c: int, decimal: str, grouped: bool) -> str:
    sign, c = ("-", -c) if c < 0 else ("", c)
    whole, frac = divmod(c, 100)
    thousands = "." if decimal == "," else ","
    digits = f"{whole:,}".replace(",", thousands) if grouped else str(whole)
    return f"{sign}{digits}{decimal}{frac:02d}"


@st.composite
def exports(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 12))
    rows = draw(st.lists(st.tuples(days, days, cents), min_size=n, max_size=n))
    invoice_ids = draw(st.lists(ids, min_size=n, max_size=n, unique_by=str.strip))
    accounts = draw(st.lists(ids, min_size=n, max_size=n))
    return {
        "rows": rows, "invoice_ids": invoice_ids, "accounts": accounts,
        "delimiter": draw(st.sampled_from([",", ";", "\t", "|"])),
        "decimal": draw(st.sampled_from([".", ","])),
        "grouped": draw(st.booleans()),
        "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
        "date_style": draw(st.sampled_from(["iso", "digits"])),
        "encoding": draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])),
        "line_end": draw(st.sampled_from(["\n", "\r\n"])),
        "pad": draw(st.booleans()),
    }


def _write_export(folder: Path, e: dict) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=e["delimiter"], quoting=e["quoting"],
                        lineterminator=e["line_end"])
    writer.writerow(HEADER)
    fmt = "%Y-%m-%d" if e["date_style"] == "iso" else "%Y%m%d"
    for inv, acc, (issue, due, c) in zip(e["invoice_ids"], e["accounts"], e["rows"], strict=True):
        amount = _amount_text(c, e["decimal"], e["grouped"])
        pad = " " if e["pad"] else ""
        writer.writerow([inv, acc, issue.strftime(fmt), due.strftime(fmt), pad + amount + pad])
    (folder / "invoices.csv").write_bytes(buf.getvalue().encode(e["encoding"]))


@FUZZ
@given(e=exports())
def test_well_formed_rows_are_kept_exactly_or_quarantined_by_their_rule(e: dict) -> None:
    folder = _folder()
    try:
        _write_export(folder, e)
        # The decimal is set: with few rows, none may tell it (then "2.500" is ambiguous,
        # which the reading tests cover); everything else is detected.
        options = {"invoices": {"decimal": e["decimal"]}}
        result = _check(folder, lambda: validate_folder(folder, max_bad_share=1.0,
                                                        read_options=options))
        assert result is not None
        expected, quarantined = {}, {}
        for inv, acc, (issue, due, c) in zip(e["invoice_ids"], e["accounts"], e["rows"],
                                             strict=True):
            rule = _expected_rule(issue, due, c)
            if rule is None:
                expected[inv.strip()] = (acc.strip(), pd.Timestamp(issue), pd.Timestamp(due),
                                         c / 100)
            else:
                quarantined[inv] = rule
        book = result.book.invoices
        got = {r.invoice_id: (r.account_id, r.issue_date, r.due_date, r.amount)
               for r in book.itertuples(index=False)}
        assert got == expected
        q = result.quarantine["invoices"]
        assert dict(zip(q["invoice_id"], q["_rule"], strict=True)) == quarantined
        info = result.read_info["invoices"]
        assert info.delimiter == e["delimiter"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@FUZZ
@given(e=exports(), cut=st.floats(0.0, 1.0), latin=st.booleans())
def test_truncated_and_mixed_encoding_files(e: dict, cut: float, latin: bool) -> None:
    folder = _folder()
    try:
        e = {**e, "encoding": "utf-8", "line_end": "\n"}
        _write_export(folder, e)
        path = folder / "invoices.csv"
        data = path.read_bytes()
        if latin:  # one row re-encoded by another system
            data += "Zz9,Zürich,2024-01-01,2024-01-31,5\n".replace(
                ",", e["delimiter"]).encode("latin-1")
        data = data[: int(len(data) * cut)]
        path.write_bytes(data)
        result = _check(folder, lambda: validate_folder(
            folder, max_bad_share=1.0, read_options={"*": {"decimal": e["decimal"]}}))
        if result is None:
            return
        # Every line that survived whole is read exactly as written.
        whole = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="ignore")
        complete = [r for r in csv.reader(io.StringIO(whole), delimiter=e["delimiter"])][1:]
        book = result.book.invoices.set_index("invoice_id")
        for row in complete:
            written = dict(zip(e["invoice_ids"], e["rows"], strict=True)).get(row[0])
            if written is None or _expected_rule(*written) or row[0].strip() not in book.index:
                continue
            kept = book.loc[row[0].strip()]
            assert kept["amount"] == written[2] / 100
            assert kept["issue_date"] == pd.Timestamp(written[0])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


typed_values = st.one_of(
    st.none(), st.integers(-2**40, 2**40), st.sampled_from([20240229, 19900101, 99991231,
                                                            19361, 0]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
)


@FUZZ
@given(columns=st.lists(st.lists(typed_values, min_size=4, max_size=4), min_size=5,
                        max_size=5))
def test_typed_parquet_columns_of_any_kind_never_crash(columns: list[list]) -> None:
    folder = _folder()
    try:
        frame = pd.DataFrame(dict(zip(HEADER, columns, strict=True)))
        for col in frame.columns:  # one type per column, as Parquet stores it
            try:
                frame[col] = pd.to_numeric(frame[col])
            except (ValueError, TypeError):
                frame[col] = frame[col].astype("str")
        frame.to_parquet(folder / "invoices.parquet", index=False)
        _check(folder, lambda: validate_folder(folder, max_bad_share=1.0))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
