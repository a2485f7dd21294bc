"""The account-history index: the same rows as the staged book, found by reading only the
row groups that can hold the account, rebuilt when the book is re-staged; the account's
open invoices as of a date follow the clearing rule (hand-checked book)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from features.contract.io import write_book
from features.synthetic import generate_book
from tests.factories import make_book
from workbench import history


def test_index_lookups_read_few_row_groups_and_match_the_book(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(history, "ROWS_PER_GROUP", dict.fromkeys(history.TABLES, 256))
    book = generate_book(300, seed=3, start="2023-01-01", end="2023-12-31")
    write_book(book, tmp_path / "book")
    rows = history.build_index(tmp_path / "book", tmp_path / "index")
    assert rows["invoices"] == len(book.invoices) and rows["accounts"] == len(book.accounts)
    index = history.HistoryIndex(tmp_path / "index")
    groups = pq.ParquetFile(tmp_path / "index" / "invoices.parquet").num_row_groups
    assert groups > 20
    owner = book.invoices.set_index("invoice_id")["account_id"]
    for account in book.accounts["account_id"].sample(25, random_state=0):
        got = index.table("invoices", account).to_pandas()
        want = book.invoices[book.invoices.account_id == account]
        assert sorted(got["invoice_id"]) == sorted(want["invoice_id"])
        assert index.groups_read("invoices", account) <= 2
        pays = index.table("payments", account).to_pandas()
        expect = book.payments[book.payments.invoice_id.map(owner) == account]
        assert len(pays) == len(expect)
    assert index.table("invoices", "NOBODY").num_rows == 0
    assert index.groups_read("invoices", "NOBODY") == 0


def test_an_index_built_in_many_account_ranges_equals_one_built_in_one(
        tmp_path: Path, monkeypatch) -> None:
    book = generate_book(200, seed=5, start="2023-01-01", end="2023-12-31")
    write_book(book, tmp_path / "book")
    history.build_index(tmp_path / "book", tmp_path / "one")
    monkeypatch.setattr(history, "ROWS_PER_PASS", 700)  # ranges of ~700 invoices
    assert len(history._account_cuts(_owner(tmp_path / "book"))) >= 5
    history.build_index(tmp_path / "book", tmp_path / "many")
    for table in history.TABLES:
        one = pq.read_table(tmp_path / "one" / f"{table}.parquet")
        many = pq.read_table(tmp_path / "many" / f"{table}.parquet")
        assert many.schema == one.schema
        # Same rows, account by account in the same order (ties within an account's sort
        # key may come in either order).
        assert many.column("account_id").to_pylist() == one.column("account_id").to_pylist()
        assert many.sort_by([(c, "ascending") for c in one.column_names]).equals(
            one.sort_by([(c, "ascending") for c in one.column_names]))


def _owner(book_dir: Path):
    import polars as pl

    return pl.scan_parquet(book_dir / "invoices.parquet").select("invoice_id", "account_id")


def test_open_invoices_payments_and_disputes_as_of_a_date(tmp_path: Path) -> None:
    book = make_book(
        invoices=[("I1", "A1", "2024-01-01", "2024-01-31", 100.0),
                  ("I2", "A1", "2024-01-10", "2024-02-09", 50.0),
                  ("I3", "A1", "2024-03-05", "2024-04-04", 70.0),   # issued after as_of
                  ("I4", "A2", "2024-01-01", "2024-01-31", 10.0)],
        payments=[("I1", "2024-02-05", 99.99),                     # clears I1 (one cent)
                  ("I2", "2024-02-01", 20.0),
                  ("I2", "2024-03-02", 30.0)],                     # after as_of: unknown
        disputes=[("I2", "2024-02-10", None)],
        accounts=[("A1", "small", "emea", 500.0, "2020-01-01")],
    )
    write_book(book, tmp_path / "book")
    history.build_index(tmp_path / "book", tmp_path / "index")
    index = history.HistoryIndex(tmp_path / "index")
    past = history.account_history(index, "A1", as_of=date(2024, 3, 1))
    assert [(i["invoice_id"], i["open_amount"], i["dpd"], i["in_dispute"])
            for i in past.open_invoices] == [("I2", 30.0, 21, True)]
    # Newest first, each with its days late (payment date - due date).
    assert [(p["invoice_id"], p["days_late"]) for p in past.payments] == [("I1", 5),
                                                                        ("I2", -8)]
    assert past.invoice_ids == {"I1", "I2"}
    assert past.profile["region"] == "emea"
    later = history.account_history(index, "A1", as_of=date(2024, 3, 3))
    assert [i["invoice_id"] for i in later.open_invoices] == []  # I2 paid on 03-02


def test_the_index_is_rebuilt_when_the_book_is_restaged(tmp_path: Path) -> None:
    book = make_book(invoices=[("I1", "A1", "2024-01-01", "2024-01-31", 100.0)])
    write_book(book, tmp_path / "book")
    history.build_index(tmp_path / "book", tmp_path / "index")
    assert history.is_current(tmp_path / "book", tmp_path / "index")
    bigger = make_book(invoices=[("I1", "A1", "2024-01-01", "2024-01-31", 100.0),
                                 ("I2", "A1", "2024-01-02", "2024-02-01", 5.0)])
    write_book(bigger, tmp_path / "book")
    path = tmp_path / "book" / "invoices.parquet"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert not history.is_current(tmp_path / "book", tmp_path / "index")
    history.build_index(tmp_path / "book", tmp_path / "index")
    index = history.HistoryIndex(tmp_path / "index")
    assert index.table("invoices", "A1").num_rows == 2
    assert not (tmp_path / "index.tmp").exists() and not (tmp_path / "index.old").exists()


def test_profile_carries_the_contact_data(tmp_path: Path) -> None:
    book = generate_book(12, seed=1, start="2024-01-01", end="2024-02-28")
    write_book(book, tmp_path / "book")
    history.build_index(tmp_path / "book", tmp_path / "index")
    index = history.HistoryIndex(tmp_path / "index")
    profile = history.account_history(index, "A0000010", as_of=date(2024, 3, 1)).profile
    assert profile["contact_name"] == "AP Contact 0000010"
    assert profile["email"] == ("ap@customer0000010.example.com;"
                                "billing@customer0000010.example.com")
    assert profile["phone"] == "+1 555 0000010" and profile["language"] in ("en", "de")


def test_an_index_written_in_another_layout_is_not_current(tmp_path: Path) -> None:
    """Row-group sizes changed (:data:`workbench.history.LAYOUT`): the server rebuilds the
    index it finds instead of reading one in the old layout forever."""
    import json

    book = make_book(invoices=[("I1", "A1", "2024-01-01", "2024-01-31", 100.0)])
    write_book(book, tmp_path / "book")
    history.build_index(tmp_path / "book", tmp_path / "index")
    assert history.is_current(tmp_path / "book", tmp_path / "index")
    stamp = tmp_path / "index" / history.FINGERPRINT
    older = {k: v for k, v in json.loads(stamp.read_text()).items() if k != "layout"}
    stamp.write_text(json.dumps(older))  # what an index of the first layout holds
    assert not history.is_current(tmp_path / "book", tmp_path / "index")
