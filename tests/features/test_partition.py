"""Account partitions (``features.partition``): the stable crc32 split, payments and
disputes following their invoice's account, promises and contacts their account, whole
folders replaced on a re-run; the KPIs merged from per-partition pieces; and the
drift of a split book from summed bin counts (``models.drift``), equal to the whole
book's."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract.book import ALL_TABLES, Book
from features.contract.io import write_book
from features.partition import (
    book_dates,
    partition_name,
    partition_of,
    read_partition,
    write_partitions,
)
from features.synthetic import generate_book
from models.drift import add_counts, bin_counts, psi_from_counts, psi_table, reference_profile


def test_partition_is_crc32_of_the_utf8_id_mod_p() -> None:
    ids = ["A1", "Ä-7", "0000001", "1"]
    assert partition_of(ids, 7).tolist() == [zlib.crc32(a.encode()) % 7 for a in ids]
    # fixed values: the same in every process, machine and Python version (never hash())
    assert partition_of(["acct-1", "acct-2"], 4).tolist() == [
        zlib.crc32(b"acct-1") % 4, zlib.crc32(b"acct-2") % 4]
    assert partition_of(ids, 1).tolist() == [0, 0, 0, 0]
    assert partition_of([1, "1"], 5)[0] == partition_of([1, "1"], 5)[1]  # ids are text


def test_partitions_hold_the_book_and_follow_the_invoice(tmp_path: Path) -> None:
    book = generate_book(40, seed=1, start="2023-01-01", end="2023-09-30", loop=True)
    assert len(book.promises) and len(book.contacts)
    write_book(book, tmp_path / "staged")
    parts = write_partitions(tmp_path / "staged", tmp_path / "work", partitions=3)
    assert [Path(p).name for p in parts] == [partition_name(i) for i in range(3)]
    books = [read_partition(p) for p in parts]
    for i, part in enumerate(books):
        assert set(partition_of(part.invoices["account_id"], 3)) <= {i}
        for table in ("accounts", "promises", "contacts"):
            assert set(partition_of(getattr(part, table)["account_id"], 3)) <= {i}
        own = set(part.invoices["invoice_id"])
        assert set(part.payments["invoice_id"]) <= own
        assert set(part.disputes["invoice_id"]) <= own
    _assert_same_rows(book, books)
    assert book_dates(tmp_path / "staged") == (book.first_date, book.last_date)

    # a re-run replaces each folder whole: same files, nothing left of the first run
    again = write_partitions(tmp_path / "staged", tmp_path / "work", partitions=3)
    assert again == parts
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [
        partition_name(i) for i in range(3)]
    assert read_partition(again[1]).invoices.equals(books[1].invoices)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Code columns as their strings: each partition's codes have only its own values as
    categories, so two partitions' codes concatenate to ``str`` (the Book's rule)."""
    return frame.astype({c: "str" for c in frame.columns
                         if isinstance(frame[c].dtype, pd.CategoricalDtype)})


def _assert_same_rows(book: Book, parts: list[Book]) -> None:
    """The partitions' rows of every table are the book's (compared sorted)."""
    for table in ALL_TABLES:
        whole = _as_text(getattr(book, table))
        split = _as_text(pd.concat([getattr(b, table) for b in parts], ignore_index=True))
        key = list(whole.columns)
        pd.testing.assert_frame_equal(
            split.sort_values(key, ignore_index=True),
            whole.sort_values(key, ignore_index=True), check_dtype=False)


def test_a_split_read_in_small_batches_is_the_same_and_keeps_only_its_codes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 7 rows: the account dictionary hashed once and reused across batches,
    # disputes finding invoices split in earlier batches, and each slice's dictionary cut
    # to the accounts it holds.
    book = generate_book(30, seed=4, start="2023-01-01", end="2023-09-30", loop=True)
    assert len(book.disputes)
    write_book(book, tmp_path / "staged")
    monkeypatch.setattr("features.partition.BATCH_ROWS", 7)
    parts = [read_partition(p) for p in write_partitions(
        tmp_path / "staged", tmp_path / "work", partitions=3)]
    _assert_same_rows(book, parts)
    for i, part in enumerate(parts):
        accounts = part.invoices["account_id"]
        assert set(partition_of(accounts.cat.categories, 3)) <= {i}  # only its accounts
        assert accounts.cat.categories.is_monotonic_increasing
        own = set(part.invoices["invoice_id"])
        assert set(part.payments["invoice_id"]) <= own
        assert set(part.disputes["invoice_id"]) <= own
    assert sum(len(p.disputes) for p in parts) == len(book.disputes)


def test_a_dispute_of_an_invoice_not_in_the_book_is_refused(tmp_path: Path) -> None:
    book = generate_book(10, seed=5, start="2023-01-01", end="2023-06-30")
    stray = book.disputes.head(1).assign(invoice_id="NOT-AN-INVOICE")
    write_book(type(book).from_frames(book.invoices, book.payments, book.accounts,
                                      pd.concat([book.disputes, stray], ignore_index=True)),
               tmp_path / "staged")
    with pytest.raises(ValueError, match="disputes name invoices that are not in the book"):
        write_partitions(tmp_path / "staged", tmp_path / "work", partitions=2)
    assert not [p for p in (tmp_path / "work").iterdir()]  # no half-written folder left


def test_drift_of_summed_bin_counts_is_the_whole_books() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=2000),
                          "c": pd.Categorical(rng.choice(["a", "b", "c"], size=2000))})
    profile = reference_profile(train, feature_names=["x", "c"], scores=rng.random(2000))
    now = pd.DataFrame({"x": np.append(rng.normal(0.7, size=999), np.nan),
                        "c": pd.Categorical(rng.choice(["a", "b", "d"], size=1000))})
    scores = rng.random(1000) ** 2
    whole = psi_table(profile, now, scores=scores)
    cut = [0, 17, 400, 1000]
    counts = [bin_counts(profile, now.iloc[a:b], scores=scores[a:b])
              for a, b in zip(cut, cut[1:], strict=False)]
    merged = psi_from_counts(profile, add_counts(*counts))
    pd.testing.assert_frame_equal(merged, whole)
    # an average of the parts' PSIs is another number
    averaged = np.mean([psi_from_counts(profile, c).set_index("feature")["psi"]["x"]
                        for c in counts])
    assert abs(averaged - whole.set_index("feature")["psi"]["x"]) > 1e-3


def test_kpis_merged_from_partitions_are_the_whole_books(tmp_path: Path) -> None:
    from datetime import date

    from features.pit.kpis import compute_kpis, kpi_part, merge_kpi_parts

    book = generate_book(60, seed=2, start="2023-01-01", end="2023-12-31", loop=True)
    write_book(book, tmp_path / "staged")
    parts = [read_partition(p) for p in write_partitions(tmp_path / "staged",
                                                         tmp_path / "work", partitions=3)]
    as_of, since = date(2023, 11, 15), date(2023, 10, 15)
    previous = (since, sorted(book.accounts["account_id"].astype(str))[::2])
    first = book.first_date.date()
    merged = merge_kpi_parts(
        [kpi_part(p, as_of=as_of, first_issue=first, previous=previous) for p in parts],
        as_of=as_of, previous_as_of=since)
    assert merged == compute_kpis(book, as_of=as_of, previous=previous)
    assert merged.total_ar > 0 and merged.collected_from_worklist > 0
    assert merged.promise_kept_rate is not None  # kept and decided counts add up
