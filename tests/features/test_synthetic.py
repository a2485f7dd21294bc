"""Tests of the synthetic book generator (features.synthetic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract.book import DATE_DTYPE, TABLES, Book, columns_of, conform
from features.spec import is_cleared
from features.synthetic import _core as core
from features.synthetic import generate_book, generate_book_with_truth, write_book_folder

START, END = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31")


@pytest.fixture(scope="module")
def small() -> tuple[Book, pd.DataFrame]:
    return generate_book_with_truth(300, seed=7)


@pytest.fixture(scope="module")
def story() -> tuple[Book, pd.DataFrame, pd.DataFrame]:
    """A book big enough for statistical checks of the archetype story, its truth and
    its invoices' clearing (see ``clear_table``)."""
    book, truth = generate_book_with_truth(1500, seed=11)
    return book, truth, clear_table(book)


def clear_table(book: Book) -> pd.DataFrame:
    """Invoices with paid amount, payment count, clear date (NaT when open) and days late."""
    inv = book.invoices
    pay = book.payments.sort_values(["invoice_id", "payment_date"], kind="stable")
    cum = pay.groupby("invoice_id")["amount"].cumsum()
    amt = pay["invoice_id"].map(inv.set_index("invoice_id")["amount"])
    cleared = pay[is_cleared(cum.to_numpy(), amt.to_numpy())].groupby("invoice_id")[
        "payment_date"].min()
    out = inv.set_index("invoice_id")
    out = out.assign(
        paid=pay.groupby("invoice_id")["amount"].sum(),
        n_payments=pay.groupby("invoice_id").size(),
        clear=cleared,
    ).fillna({"paid": 0.0, "n_payments": 0})
    out["days_late"] = (out["clear"] - out["due_date"]).dt.days
    return out.reset_index()


def check_contract(book: Book, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Every invariant the Book contract and the generator's docstring promise."""
    for table in TABLES:
        frame = book.tables()[table]
        assert list(frame.columns) == list(columns_of(table)), table
        for col, dtype in columns_of(table).items():
            assert str(frame[col].dtype) == dtype, (table, col, frame[col].dtype)
        pd.testing.assert_frame_equal(conform(table, frame), frame)
    inv, pay, acc, dis = book.invoices, book.payments, book.accounts, book.disputes
    assert inv["invoice_id"].is_unique and acc["account_id"].is_unique
    assert pay["payment_id"].is_unique
    assert inv["invoice_id"].str.fullmatch(r"I\d{9,}").all()
    assert acc["account_id"].str.fullmatch(r"A\d{7,}").all()
    assert inv["account_id"].isin(acc["account_id"]).all()
    # every column is filled but the credit-note reference (the generator writes none)
    filled = [c for c in columns_of("invoices") if c != "reference_invoice_id"]
    assert inv[filled].notna().all().all()
    assert inv["issue_date"].between(start, end).all()
    assert (inv["due_date"] - inv["issue_date"]).dt.days.eq(inv["terms_days"]).all()
    assert inv["terms_days"].isin([15, 30, 45, 60]).all()
    assert (inv["amount"] > 0).all() and (pay["amount"] > 0).all()
    assert pay["invoice_id"].isin(inv["invoice_id"]).all()
    assert dis["invoice_id"].isin(inv["invoice_id"]).all()
    parent = inv[["invoice_id", "account_id", "issue_date", "amount"]]
    pp = pay.merge(parent, on="invoice_id", suffixes=("", "_inv"))
    assert (pp["account_id"] == pp["account_id_inv"]).all()
    assert (pp["payment_date"] >= pp["issue_date"]).all()
    assert pay["payment_date"].between(start, end).all()
    paid = pp.groupby("invoice_id").agg(paid=("amount", "sum"), due=("amount_inv", "first"))
    assert (paid["paid"] <= paid["due"] + 0.01).all()
    dp = dis.merge(parent, on="invoice_id")
    assert (dp["opened_date"] >= dp["issue_date"]).all()
    assert dis["opened_date"].between(start, end).all()
    resolved = dis.dropna(subset=["resolved_date"])
    assert (resolved["resolved_date"] >= resolved["opened_date"]).all()
    assert (resolved["resolved_date"] <= end).all()
    for frame in (inv, pay, dis):
        for col in frame.columns:
            if frame[col].dtype == DATE_DTYPE:
                assert (frame[col].dropna() == frame[col].dropna().dt.normalize()).all()


def test_contract_holds(small: tuple[Book, pd.DataFrame]) -> None:
    check_contract(small[0], START, END)


def test_deterministic_per_seed() -> None:
    a, b, c = generate_book(120, seed=3), generate_book(120, seed=3), generate_book(120, seed=4)
    for table in TABLES:
        pd.testing.assert_frame_equal(a.tables()[table], b.tables()[table])
    assert not a.invoices["amount"].equals(c.invoices["amount"])
    assert not a.payments["payment_date"].equals(c.payments["payment_date"])


def test_chunks_are_seamless(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Many small random blocks give one consistent book (ids continue, references stay
    right), and the files written chunk by chunk are that book, row for row, whatever the
    chunk size, the collections loop included."""
    monkeypatch.setattr(core, "CHUNK_ACCOUNTS", 40)
    book = generate_book(100, seed=5, loop=True)
    check_contract(book, START, END)
    for table, col, first in (("invoices", "invoice_id", 1), ("payments", "payment_id", 1),
                              ("contacts", "contact_id", 0), ("promises", "promise_id", 0)):
        nums = getattr(book, table)[col].str.lstrip("IPCTR").astype(int).to_numpy()
        assert (nums == np.arange(first, first + len(nums))).all(), table
    # every block has its loop (not the first block's alone)
    assert book.contacts["account_id"].str[1:].astype(int).gt(80).any()
    for chunk in (40, 100):  # three chunks of one block; one chunk of three
        summary = write_book_folder(100, tmp_path / str(chunk), seed=5, loop=True,
                                    chunk_accounts=chunk)
        frames = read_clean(tmp_path / str(chunk), "parquet", summary["rows"])
        assert frames.keys() == book.tables().keys()
        for table, frame in frames.items():
            pd.testing.assert_frame_equal(frame, book.tables()[table], check_dtype=True)


@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 2**31),
    start=st.dates(pd.Timestamp("2015-01-01").date(), pd.Timestamp("2030-01-01").date()),
    days=st.integers(0, 500),
)
def test_contract_for_any_window(n: int, seed: int, start, days: int) -> None:
    end = pd.Timestamp(start) + pd.Timedelta(days=days)
    book = generate_book(n, seed=seed, start=start, end=end)
    assert len(book.accounts) == n
    check_contract(book, pd.Timestamp(start), end)


def test_volume_and_story_features(story: tuple[Book, pd.DataFrame, pd.DataFrame]) -> None:
    book, truth, ct = story
    n = len(book.accounts)
    assert 40 <= len(book.invoices) / n <= 60  # ~50 invoices per account over two years
    assert set(book.accounts["segment"]) == {"enterprise", "mid-market", "small"}
    assert book.accounts["region"].nunique() == 4
    assert (book.accounts["credit_limit"] >= 1000).all()
    assert 0.02 < (ct["n_payments"] >= 2).mean() < 0.2  # partial payments exist
    # Some balances are never paid by the customer: written off 120-270 days after due.
    pay = book.payments
    written_off = ct["invoice_id"].isin(pay.loc[pay["method"] == "write_off", "invoice_id"])
    old = ct["due_date"] < END - pd.Timedelta(days=365)
    assert 0.002 < written_off[old].mean() < 0.1
    assert ct.loc[old, "clear"].notna().all()  # ... so nothing that old is still open
    wo = pay[pay["method"] == "write_off"].merge(ct, on="invoice_id", suffixes=("", "_inv"))
    assert (wo["payment_date"] - wo["due_date"]).dt.days.between(120, 270).all()
    assert (wo["payment_date"] == wo["clear"]).all()
    assert (wo["paid"] - wo["amount_inv"]).abs().max() < 0.01
    assert book.disputes["resolved_date"].isna().any()  # disputes still open at the end
    assert 0.01 < len(book.disputes) / len(book.invoices) < 0.08
    assert set(truth["archetype"]) == set(core.ARCHETYPES)
    assert truth["account_id"].equals(book.accounts["account_id"].astype(object)) or (
        truth["account_id"].tolist() == book.accounts["account_id"].tolist()
    )
    per_acc = ct.groupby("account_id").size()
    assert (truth.set_index("account_id")["n_invoices"].reindex(per_acc.index) == per_acc).all()


def test_archetypes_behave_as_told(story: tuple[Book, pd.DataFrame, pd.DataFrame]) -> None:
    book, truth, ct = story
    ct = ct.merge(truth, on="account_id", suffixes=("", "_t"))
    # 30+ days late, counting never-paid invoices due long enough ago as late.
    settled = ct["due_date"] < END - pd.Timedelta(days=60)
    ct = ct[settled].assign(bad=lambda d: d["days_late"].fillna(999) >= 30)
    late_2024 = ct[ct["due_date"] >= "2024-01-01"].groupby("archetype", observed=True)["bad"]
    rate = late_2024.mean()
    assert rate["prompt"] < 0.06
    assert rate["deteriorating"] > 2 * rate["prompt"]
    assert rate["sudden_default"] > 2 * rate["prompt"]
    assert rate["habitual_late"] > rate["prompt"]
    # Deteriorating accounts get later once their distress episode has started.
    det = ct[ct["archetype"] == "deteriorating"]
    during = det["issue_date"] >= det["distress_start"]
    assert det.loc[during, "bad"].mean() > det.loc[~during, "bad"].mean() + 0.1
    # Seasonal accounts are late in their season, not outside it.
    sea = ct[(ct["archetype"] == "seasonal") & ct["days_late"].notna()]
    month = sea["due_date"].dt.month
    in_season = (month - sea["season_start_month"]) % 12 < sea["season_months"]
    assert sea.loc[in_season, "days_late"].mean() > sea.loc[~in_season, "days_late"].mean() + 10
    # Defaulted accounts pay nothing after they stop paying.
    paid = book.payments[book.payments["method"] != "write_off"].merge(truth, on="account_id")
    assert (paid["stop_paying"].isna() | (paid["payment_date"] < paid["stop_paying"])).all()
    # Latent fragility goes with lateness; disputed invoices are paid later.
    acc_late = ct.groupby("account_id")["days_late"].mean()
    z = truth.set_index("account_id")["latent_risk"].reindex(acc_late.index)
    assert acc_late.corr(z, method="spearman") > 0.2
    disputed = ct["invoice_id"].isin(book.disputes["invoice_id"])
    assert ct.loc[disputed, "days_late"].mean() > ct.loc[~disputed, "days_late"].mean() + 5


def test_utilisation_carries_risk(story: tuple[Book, pd.DataFrame, pd.DataFrame]) -> None:
    """Fragile accounts get tighter credit limits relative to their billing."""
    book, truth, _ = story
    billed = book.invoices.groupby("account_id")["amount"].sum()
    t = truth.set_index("account_id")
    ratio = (billed / t["credit_limit"]).dropna()
    assert ratio.corr(t["latent_risk"].reindex(ratio.index), method="spearman") > 0.15


def read_clean(out: Path, fmt: str, n_rows: dict[str, int]) -> dict[str, pd.DataFrame]:
    """The first (clean) rows of each table written (``n_rows``' keys), typed like the
    Book."""
    frames = {}
    for table in n_rows:
        path = out / f"{table}.{fmt}"
        if fmt == "parquet":
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        raw = raw.iloc[: n_rows[table]].replace("", None)
        for col, dtype in columns_of(table).items():
            if dtype == DATE_DTYPE:
                raw[col] = pd.to_datetime(raw[col], format="%Y-%m-%d")
            elif dtype in ("float64", "Int64"):
                raw[col] = pd.to_numeric(raw[col])
        frames[table] = conform(table, raw)
    return frames


@pytest.mark.parametrize("fmt", ["csv"])  # Parquet: test_chunks_are_seamless
def test_written_folder_equals_book(tmp_path: Path, fmt: str) -> None:
    book = generate_book(150, seed=2)
    summary = write_book_folder(150, tmp_path, seed=2, fmt=fmt)
    assert summary["injected"] == {} and not (tmp_path / "_injected_errors.json").exists()
    assert summary["rows"] == {t: len(f) for t, f in book.tables().items()}
    frames = read_clean(tmp_path, fmt, summary["rows"])
    for table in TABLES:
        pd.testing.assert_frame_equal(frames[table], book.tables()[table], check_dtype=True)


@pytest.fixture(scope="module", params=["parquet", "csv"])
def injected(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(f"bad_{request.param}")
    summary = write_book_folder(400, out, seed=9, error_rate=0.03, fmt=request.param)
    return out, request.param, summary


def test_injected_counts_and_clean_part(injected) -> None:
    out, fmt, summary = injected
    counts = json.loads((out / "_injected_errors.json").read_text())
    assert counts == summary["injected"]
    expected_rules = {
        "invoices": {"missing_value", "unparseable_date", "unparseable_amount",
                     "non_positive_amount", "due_before_issue", "duplicate_id"},
        "payments": {"missing_value", "unparseable_date", "unparseable_amount",
                     "non_positive_amount", "duplicate_id", "unknown_invoice"},
        "accounts": {"missing_value", "duplicate_id"},
        "disputes": {"missing_value", "unparseable_date", "unknown_invoice",
                     "dispute_before_issue", "resolved_before_opened"},
    }
    book = generate_book(400, seed=9)
    clean = {t: len(f) for t, f in book.tables().items()}
    for table, rules in expected_rules.items():
        assert set(counts[table]) == rules and min(counts[table].values()) >= 1
        bad = sum(counts[table].values())
        assert summary["rows"][table] == clean[table] + bad
        share = bad / summary["rows"][table]
        assert share == pytest.approx(0.03, abs=0.005) or bad == len(rules)
    frames = read_clean(out, fmt, clean)
    for table in TABLES:
        pd.testing.assert_frame_equal(frames[table], book.tables()[table])


def test_validation_quarantines_exactly_the_injected_rows(injected) -> None:
    import features.contract.validation as validation
    out, _, summary = injected
    result = validation.validate_folder(out, quarantine_dir=out.parent / f"q_{out.name}")
    counts = json.loads((out / "_injected_errors.json").read_text())
    s = result.summary.set_index("table")
    for table in TABLES:
        row = s.loc[table]
        assert row["rows_read"] == summary["rows"][table]
        assert row["rows_read"] == row["kept"] + row["quarantined"]
        assert row["quarantined"] == sum(counts[table].values())
        for rule in validation.RULES:
            assert row[rule] == counts[table].get(rule, 0), (table, rule)
    book = generate_book(400, seed=9)
    for table in TABLES:
        kept, truth = result.book.tables()[table], book.tables()[table]
        key = list(truth.columns)
        pd.testing.assert_frame_equal(
            kept.sort_values(key).reset_index(drop=True)[key],
            truth.sort_values(key).reset_index(drop=True),
        )


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_book(0)
    with pytest.raises(ValueError):
        generate_book(5, start="2024-01-01", end="2023-01-01")
    with pytest.raises(ValueError):
        write_book_folder(0, tmp_path / "none")
    assert not (tmp_path / "none").exists()
    with pytest.raises(ValueError):
        write_book_folder(5, tmp_path, fmt="xlsx")
    with pytest.raises(ValueError):
        write_book_folder(5, tmp_path, error_rate=0.7)


def simple_training_rows(
    book: Book, ct: pd.DataFrame, as_of_dates: list[str]
) -> pd.DataFrame:
    """A few point-in-time features and the early-warning label, for a learnability check.

    Accounts with an open invoice and nothing 30+ days past due at as_of; y = 1 when an
    invoice open at as_of is not cleared before due + 30 days (censored rows dropped).
    """
    limit = book.accounts.set_index("account_id")["credit_limit"]
    dis = book.disputes.merge(ct[["invoice_id", "account_id"]], on="invoice_id")
    rows = []
    for day in as_of_dates:
        t = pd.Timestamp(day)
        known = ct[ct["issue_date"] < t]
        done = known[known["clear"] < t]
        open_ = known[~(known["clear"] < t)]
        g = open_.groupby("account_id")
        f = pd.DataFrame({
            "open_balance": g["amount"].sum(),
            "n_open": g.size(),
            "oldest_dpd": (t - g["due_date"].min()).dt.days,
        })
        for w in (90, 180, 365):
            recent = done[done["clear"] >= t - pd.Timedelta(days=w)]
            f[f"late_mean_{w}d"] = recent.groupby("account_id")["days_late"].mean()
            late15 = (recent["days_late"] >= 15).groupby(recent["account_id"]).mean()
            f[f"share_15_late_{w}d"] = late15
        f["trend"] = f["late_mean_90d"] - f["late_mean_365d"]
        live = dis[(dis["opened_date"] < t) & ~(dis["resolved_date"] < t)]
        f["open_disputes"] = live.groupby("account_id").size().reindex(f.index).fillna(0)
        f["utilisation"] = f["open_balance"] / limit.reindex(f.index)
        deadline = open_["due_date"] + pd.Timedelta(days=30)
        bad = ~(open_["clear"] < deadline)
        censored = bad & (deadline > END)
        y = (bad & ~censored).groupby(open_["account_id"]).any()
        c = censored.groupby(open_["account_id"]).any()
        f["y"] = y.astype(float).where(y | ~c)
        rows.append(f[f["oldest_dpd"] < 30].assign(as_of=t).dropna(subset=["y"]))
    return pd.concat(rows)


def test_risk_is_learnable_but_noisy(story: tuple[Book, pd.DataFrame, pd.DataFrame]) -> None:
    """LightGBM on simple point-in-time features beats chance clearly but is far from
    perfect (the generator's target is ROC-AUC ~0.75-0.88 on good features)."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    book, _, ct = story
    train = simple_training_rows(book, ct, ["2023-09-01", "2023-11-01", "2024-01-01",
                                            "2024-03-01"])
    test = simple_training_rows(book, ct, ["2024-06-01", "2024-08-01"])
    x = [c for c in train.columns if c not in ("y", "as_of")]
    model = lgb.LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15,
                               min_child_samples=40, verbose=-1, n_jobs=1, random_state=0)
    model.fit(train[x], train["y"])
    auc = roc_auc_score(test["y"], model.predict_proba(test[x])[:, 1])
    assert 0.72 < auc < 0.93, auc
    assert 0.08 < test["y"].mean() < 0.4


def test_bench_run_reports_rows_time_and_memory(tmp_path: Path) -> None:
    from bench.generate import run

    result = run(200, str(tmp_path / "book"), str(tmp_path / "gen.json"), baseline_accounts=50)
    assert json.loads((tmp_path / "gen.json").read_text()) == result
    assert result["rows"]["accounts"] == 200 and result["rows"]["invoices"] > 0
    assert result["peak_rss_mb"] > 0 and result["seconds"] > 0
    assert result["baseline"]["accounts"] == 50 and result["speedup_vs_baseline"] > 0
    assert (tmp_path / "book" / "invoices.parquet").exists()
