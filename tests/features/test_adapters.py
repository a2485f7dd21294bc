"""Adapters: real export formats become contract tables that pass validation untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.adapters import FORMATS, convert
from features.adapters import taiwan as tw
from features.adapters.highradius import parse_dates
from features.contract.io import write_tables
from features.contract.rules import DataContractError
from features.contract.validation import ValidationResult, validate_folder, validate_tables

FIXTURE = Path(__file__).parents[1] / "fixtures" / "highradius_sample.csv"
DATA = Path(__file__).parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real data folder {DATA} is absent (never committed)"
)


def validated(tables: dict[str, pd.DataFrame]) -> ValidationResult:
    """Validate the contract tables of an adapter's output (side tables left out)."""
    contract = {t: f for t, f in tables.items() if t in ("invoices", "payments", "accounts",
                                                        "disputes")}
    result = validate_tables(contract, max_bad_share=0.0)
    assert result.ok, result.render()
    return result


# ------------------------------------------------------------------ HighRadius


def test_highradius_dates_in_every_export_style() -> None:
    raw = pd.Series(["20190105.0", "20190105", "2019-01-05", "2019-01-05 00:00:00", " ",
                     "2019-02-30", "next week"], dtype="str")
    assert parse_dates(raw).tolist() == [
        "2019-01-05", "2019-01-05", "2019-01-05", "2019-01-05", "", "2019-02-30",
        "next week"]


def test_highradius_fixture_converts_and_validates() -> None:
    tables = convert("highradius", FIXTURE, rates={"CAD": 0.75})
    report = dict(zip(tables["import_report"]["item"], tables["import_report"]["value"],
                      strict=True))
    assert report["rows_read"] == 30 and report["duplicate_rows_removed"] == 3
    inv, pay = tables["invoices"], tables["payments"]
    assert len(inv) == 27 and inv["invoice_id"].is_unique
    # Open invoices (isOpen 1, no clear_date) have no payment; cleared ones exactly one.
    src = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False).drop_duplicates()
    open_ids = set(src.loc[src["isOpen"] == "1", "doc_id"].str.replace(".0", ""))
    assert len(open_ids) == 6 and not open_ids & set(pay["invoice_id"])
    assert len(pay) == 21 and pay["invoice_id"].is_unique
    assert (pay.set_index("invoice_id")["amount"] == inv.set_index("invoice_id").loc[
        pay["invoice_id"], "amount"]).all()
    by_id = inv.set_index("invoice_id")
    assert by_id.loc["1928540170", "account_id"] == "0200418007"  # doc_id fallback
    assert by_id.loc["1928707719", "issue_date"] == "2019-02-02"  # baseline fallback
    assert by_id.loc["1930710233", "due_date"] == "2020-04-10"  # ISO string style
    assert by_id.loc["2960623488", "amount"] == "2474.77"  # 3299.70 CAD x 0.75
    assert set(inv["currency"]) == {"USD"}
    book = validated(tables).book
    assert len(book.accounts) == 9
    assert book.accounts.set_index("account_id").loc["CCU001", "name"] == "KROGER"
    assert pay.set_index("invoice_id").loc["1929835640", "payment_date"] == "2019-10-03"


def test_highradius_mixed_currency_needs_a_rate_or_a_choice() -> None:
    with pytest.raises(DataContractError) as info:
        convert("highradius", FIXTURE)
    err = info.value
    assert (err.file, err.column, err.rule) == (
        "highradius_sample.csv", "invoice_currency", "mixed_currency")
    usd = convert("highradius", FIXTURE, currency="USD")
    report = dict(zip(usd["import_report"]["item"], usd["import_report"]["value"],
                      strict=True))
    assert report["rows_other_currency"] == 4 and len(usd["invoices"]) == 23
    validated(usd)


def test_highradius_unparseable_values_reach_quarantine(tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace("20200210.0", "2020021O")
    (tmp_path / "hr.csv").write_text(text)
    tables = convert("highradius", tmp_path / "hr.csv", currency="USD")
    result = validate_tables({t: tables[t] for t in ("invoices", "payments", "accounts")},
                             max_bad_share=1.0)
    assert result.quarantine["invoices"]["_rule"].tolist() == ["unparseable_date"]
    assert result.quarantine["invoices"]["due_date"].tolist() == ["2020021O"]
    assert result.quarantine["payments"]["_rule"].tolist() == ["parent_quarantined"]


def test_import_writes_a_folder_that_validates(tmp_path: Path) -> None:
    tables = convert("highradius", FIXTURE, rates={"CAD": 0.75})
    paths = write_tables(tables, tmp_path, fmt="csv")
    assert paths["import_report"].name == "_import_report.csv"
    result = validate_folder(tmp_path, max_bad_share=0.0)
    assert result.ok and len(result.book.invoices) == 27


def test_unknown_format_is_refused() -> None:
    assert set(FORMATS) == {"highradius", "ibm_ar", "taiwan_credit"}
    with pytest.raises(ValueError, match="unknown import format"):
        convert("sap", FIXTURE)


# ------------------------------------------------------------------ Taiwan (tiny, by hand)

HEADER = ("ID,LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,PAY_3,PAY_4,PAY_5,PAY_6,"
          "BILL_AMT1,BILL_AMT2,BILL_AMT3,BILL_AMT4,BILL_AMT5,BILL_AMT6,"
          "PAY_AMT1,PAY_AMT2,PAY_AMT3,PAY_AMT4,PAY_AMT5,PAY_AMT6,default payment next month")
# Client 1: Apr/May/Jul statements revolving (status 0), June's paid in full (-1), August's a
# month late (PAY_0 = 1) with 300 paid in September; 700 paid in August covers July's bill,
# 100 paid in July is part of June's; target 0.
# Client 2: April's statement 2 months behind in May (PAY_5 = 2), caught up in June; July's
# bill 0 (no invoice); target 1.
# Client 3: only a September statement; target 1.
# Client 4: two months behind in September (PAY_0 = 2): July's and August's statements open.
ROWS = (
    "1,50000,2,2,1,30,1,0,-1,0,0,-2,900,800,700,600,500,400,300,700,100,0,0,0,0",
    "2,20000,1,1,2,45,0,-1,0,0,2,0,300,200,0,100,100,100,0,0,0,0,0,0,1",
    "3,10000,2,6,3,22,-2,-2,-2,-2,-2,-2,50,0,0,0,0,-10,0,0,0,0,0,0,1",
    "4,30000,1,3,1,50,2,1,0,-1,-1,-1,400,300,200,100,100,100,0,0,0,100,100,0,1",
)


@pytest.fixture
def tiny_taiwan(tmp_path: Path) -> Path:
    codes = "," + ",".join(f"X{i}" for i in range(1, 24)) + ",Y"
    path = tmp_path / "default_of_credit_card_clients.csv"
    path.write_text("\n".join([codes, HEADER, *ROWS]) + "\n")
    return path


def _payments_by_invoice(tables: dict[str, pd.DataFrame]) -> dict[str, list[tuple[str, str]]]:
    """invoice_id -> [(payment_date, amount), ...] in payment-date order."""
    pay = tables["payments"].sort_values(["payment_date", "payment_id"], kind="stable")
    out: dict[str, list[tuple[str, str]]] = {}
    for inv, day, amt in zip(pay["invoice_id"], pay["payment_date"], pay["amount"],
                             strict=True):
        out.setdefault(inv, []).append((day, amt))
    return out


def test_taiwan_statements_become_invoices_and_statuses_payments(tiny_taiwan: Path) -> None:
    tables = convert("taiwan_credit", tiny_taiwan)
    inv = tables["invoices"].set_index("invoice_id")
    assert len(inv) == 6 + 5 + 1 + 6  # bills <= 0 give no invoice
    assert inv.loc["1-2005-04", ["issue_date", "due_date", "amount"]].tolist() == [
        "2005-04-30", "2005-05-25", "400.00"]
    assert inv.loc["1-2005-09", "due_date"] == "2005-10-25"
    paid = _payments_by_invoice(tables)
    # Status 0 with nothing paid: the balance rolls into the next statement 5 days later.
    assert paid["1-2005-04"] == [("2005-05-30", "400.00")]
    # Status -1 (paid in full): July's 100 is a part, the rest is paid on the due date.
    assert paid["1-2005-06"] == [("2005-07-25", "100.00"), ("2005-07-25", "500.00")]
    # Status 0 and August's 700 covers July's bill: an on-time full payment, no rollover.
    assert paid["1-2005-07"] == [("2005-08-25", "700.00")]
    # August's statement, PAY_0 = 1: still overdue; September's 300 is a partial payment.
    assert paid["1-2005-08"] == [("2005-09-25", "300.00")]
    # Client 2: April's statement 2 months behind in May, settled with June's catch-up.
    assert paid["2-2005-04"] == [("2005-06-25", "100.00")]
    # May's bill (100) carried April's unpaid 100: invoiced net of it, at least 1 NT$.
    assert inv.loc["2-2005-05", "amount"] == "1.00"
    assert paid["2-2005-05"] == [("2005-06-30", "1.00")]
    # Client 4: PAY_0 = 2 leaves July's and August's statements open (2 months behind);
    # May's and June's 100 paid April's and May's bills on time; June's rolled over in July.
    assert "4-2005-07" not in paid and "4-2005-08" not in paid
    assert paid["4-2005-04"] == [("2005-05-25", "100.00")]
    assert paid["4-2005-06"] == [("2005-07-30", "100.00")]
    assert not any(i.endswith("-2005-09") for i in paid)  # September: the unknown future
    assert max(d for v in paid.values() for d, _ in v) < str(tw.CUTOFF)
    acc = tables["accounts"].set_index("account_id")
    # The segment is the credit-line tier; sex, education, marriage and age go nowhere.
    assert list(acc.columns) == ["segment", "credit_limit"]
    assert acc.loc["1", ["segment", "credit_limit"]].tolist() == ["line_30k_60k", "50000.00"]
    assert acc.loc["3", "segment"] == "line_lt_30k"
    assert tables["targets"]["default_next_month"].tolist() == [0, 1, 1, 1]
    validated(tables)


def test_taiwan_delay_months_show_as_days_past_due_at_the_cutoff(tiny_taiwan: Path) -> None:
    from features import build_features

    book = validated(convert("taiwan_credit", tiny_taiwan)).book
    feats = build_features(book, as_of=tw.CUTOFF).set_index("account_id")
    # One month behind: August's statement (due 25 Sep) is 6 days past due; two months:
    # July's (due 25 Aug) is 37 days past due.
    assert feats.loc["1", "oldest_dpd"] == 6 and feats.loc["4", "oldest_dpd"] == 37
    assert feats.loc["2", "oldest_dpd"] < 0  # only September's statement, not yet due
    # Client 1 owes September's bill of 900: the 500 left of August's 800 plus 400 new
    # (September's invoice is net of the arrears it carries, so nothing counts twice).
    assert book.invoices.set_index("invoice_id").loc["1-2005-09", "amount"] == 400.0
    assert feats.loc["1", "open_balance"] == pytest.approx(900.0)
    assert feats.loc["1", "credit_utilisation"] == pytest.approx(900.0 / 50000.0)


def test_taiwan_target_encoding_and_holdout(tiny_taiwan: Path) -> None:
    tables = convert("taiwan_credit", tiny_taiwan, encode_target=True, holdout_ids={3})
    paid = _payments_by_invoice(tables)
    # Target 0: September paid on its due date, the rest of the open August one on the
    # cut-off.
    assert paid["1-2005-09"] == [("2005-10-25", "400.00")]
    assert paid["1-2005-08"][-1] == (str(tw.CUTOFF), "500.00")
    # Target 1: nothing open at the cut-off is ever paid; holdout: no payment after it.
    assert "2-2005-09" not in paid and "3-2005-09" not in paid and "4-2005-08" not in paid
    validated(tables)


_statuses = st.lists(st.integers(-2, 4), min_size=6, max_size=6)
_amounts = st.lists(st.sampled_from([-50, 0, 1, 80, 500, 3000]), min_size=6, max_size=6)


@settings(max_examples=15, deadline=None)
@given(clients=st.lists(st.tuples(_statuses, _amounts, _amounts, st.integers(0, 1)),
                        min_size=1, max_size=4))
def test_taiwan_any_statuses_give_a_valid_book_known_before_the_cutoff(
        tmp_path_factory: pytest.TempPathFactory, clients) -> None:
    # ROWS[0] (client 1) keeps the invoice table non-empty (an empty file is refused).
    rows = [ROWS[0]] + [",".join(map(str, [i + 2, 20000, 1, 2, 1, 40, *pay, *bill, *amt, y]))
                        for i, (pay, bill, amt, y) in enumerate(clients)]
    path = tmp_path_factory.mktemp("tw") / "default_of_credit_card_clients.csv"
    codes = "," + ",".join(f"X{i}" for i in range(1, 24)) + ",Y"
    path.write_text("\n".join([codes, HEADER, *rows]) + "\n")
    tables = convert("taiwan_credit", path)
    book = validated(tables).book
    pay = book.payments
    assert (pay["payment_date"] < pd.Timestamp(tw.CUTOFF)).all()
    amount = book.invoices.set_index("invoice_id")["amount"]
    paid = pay.groupby("invoice_id")["amount"].sum()
    assert (paid <= amount.loc[paid.index] + 0.015).all()  # never overpaid
    # PAY_0 = k >= 1 with a positive August bill: August's statement is open at the cut-off.
    for i, (status, bill, _, _) in enumerate(clients):
        if status[0] >= 1 and bill[1] > 0:
            inv = f"{i + 2}-2005-08"
            assert paid.get(inv, 0.0) < amount[inv] - 0.015


# ------------------------------------------------------------------ real files


@needs_data
def test_ibm_ar_sample_converts_and_validates() -> None:
    tables = convert("ibm_ar", DATA / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv")
    book = validated(tables).book
    assert len(book.invoices) == 2466 and book.invoices["account_id"].nunique() == 100
    assert len(book.payments) == 2466 and len(book.disputes) == 561
    assert len(book.accounts) == 100 and book.accounts["region"].nunique() == 5
    assert (book.invoices["due_date"] - book.invoices["issue_date"]).dt.days.eq(30).all()
    dis = book.disputes
    assert (dis["resolved_date"] >= dis["opened_date"]).all()


HOLDOUT = {str(i) for i in range(1, 30001, 10)}


@pytest.fixture(scope="module")
def taiwan_encoded() -> tuple[dict[str, pd.DataFrame], ValidationResult]:
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent (never committed)")
    tables = convert("taiwan_credit", DATA / "taiwan_credit", encode_target=True,
                     holdout_ids=HOLDOUT)
    return tables, validated(tables)


@needs_data
def test_taiwan_real_file_converts_validates_and_encodes_the_target(taiwan_encoded) -> None:
    tables, result = taiwan_encoded
    book = result.book
    assert len(book.accounts) == 30000
    assert book.accounts["credit_limit"].gt(0).all()
    targets = tables["targets"].set_index("account_id")["default_next_month"]
    assert targets.sum() == 6636
    # Encoding: a client with an invoice open at the cut-off has target 1 exactly when one
    # of those invoices is never paid; holdout clients have no payment after the cut-off.
    cutoff = pd.Timestamp(tw.CUTOFF)
    inv, pay = book.invoices, book.payments
    # Clear date: the day cumulative payments reach the invoice amount.
    pay = pay.sort_values(["invoice_id", "payment_date"], kind="stable")
    cum = pay.groupby("invoice_id")["amount"].cumsum()
    due_amount = pay["invoice_id"].map(inv.set_index("invoice_id")["amount"])
    paid_at = pay[cum >= due_amount - 0.015].groupby("invoice_id")["payment_date"].min()
    assert (pay.groupby("invoice_id")["amount"].sum()
            <= pay.groupby("invoice_id")["invoice_id"].first().map(
                inv.set_index("invoice_id")["amount"]) + 0.015).all()  # never overpaid
    when = inv["invoice_id"].map(paid_at)
    open_at_cutoff = inv[when.isna() | (when >= cutoff)].assign(never=when.isna())
    encoded = open_at_cutoff[~open_at_cutoff["account_id"].isin(HOLDOUT)]
    never = encoded.groupby("account_id")["never"].any()
    assert (never.astype(int) == targets.loc[never.index]).all()
    assert len(never) > 20000
    held = pay["account_id"].isin(HOLDOUT)
    assert (pay.loc[held, "payment_date"] < cutoff).all()


@needs_data
def test_generic_labels_as_of_the_cutoff_equal_the_taiwan_target(taiwan_encoded) -> None:
    from features.pit.labels import build_labels
    from features.spec import NO_MATERIALITY

    tables, result = taiwan_encoded
    # the data set's target counts any amount: the adapter's materiality is none
    assert tw.MATERIALITY == NO_MATERIALITY
    labels = build_labels(result.book, as_of=tw.CUTOFF, data_end=tw.DATA_END,
                          materiality=tw.MATERIALITY)
    labels = labels[~labels["account_id"].isin(HOLDOUT)]
    target = tables["targets"].set_index("account_id")["default_next_month"]
    assert not labels["censored"].any() and len(labels) > 25000
    assert (labels["y"].to_numpy() == target.loc[labels["account_id"]].to_numpy()).all()
    assert set(labels["model"]) == {"early_warning", "persistence"}


@needs_data
def test_taiwan_default_import_knows_nothing_after_the_cutoff() -> None:
    tables = convert("taiwan_credit", DATA / "taiwan_credit")
    book = validated(tables).book
    assert (book.payments["payment_date"] < pd.Timestamp(tw.CUTOFF)).all()
    assert len(book.invoices) > 150000


def test_no_adapter_emits_a_protected_attribute(
    tiny_taiwan: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from features.spec import protected_names

    tables = convert("taiwan_credit", tiny_taiwan)
    assert not [c for t in tables.values() for c in protected_names(t.columns)]
    # An adapter that did would stop at the boundary, naming the table and column.
    real = tw.convert

    def leaky(src: Path, **kw: object) -> dict[str, pd.DataFrame]:
        out = real(src, **kw)
        out["accounts"] = out["accounts"].assign(Marital_Status="single")
        return out

    monkeypatch.setattr(tw, "convert", leaky)
    with pytest.raises(ValueError, match=r"adapter 'taiwan_credit', table 'accounts'.*"
                                         r"Marital_Status"):
        convert("taiwan_credit", tiny_taiwan)
