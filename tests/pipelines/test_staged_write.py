"""The background write of a staged book (``pipelines.steps_ingest._StagingWrite``) frees
each table once written, the tables holding staged-only columns first (issue 20, memory:
at 1M accounts the payment ids alone are ~0.85 GB the nightly's scoring must not carry)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pandas as pd
import pytest

import features.contract.io as fio
from features.contract.book import STAGED_ONLY, Book
from features.synthetic import generate_book
from pipelines.steps_ingest import _StagingWrite, read_book


def test_written_tables_are_freed_while_the_rest_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = generate_book(30, seed=5, start="2023-01-01", end="2024-06-30")
    expected = {t: f.copy() for t, f in book.tables().items()}
    alive = {t: weakref.ref(f) for t, f in book.tables().items()}
    order: list[str] = []
    freed_before: dict[str, set[str]] = {}
    real = fio.write_tables
    gate = threading.Event()

    def watched(tables: dict[str, pd.DataFrame], out: Path, **kw: object) -> object:
        assert gate.wait(30)
        (table,) = tables  # one table a call
        gc.collect()
        freed_before[table] = {t for t, ref in alive.items() if ref() is None}
        order.append(table)
        return real(tables, out, **kw)

    monkeypatch.setattr(fio, "write_tables", watched)
    write = _StagingWrite(book, tmp_path / "staged")
    del book  # the caller keeps no reference (the nightly keeps one without STAGED_ONLY)
    gate.set()
    assert write.join() is None
    assert set(order[:len(STAGED_ONLY)]) == set(STAGED_ONLY)  # those first
    for i, table in enumerate(order):  # every table written before is freed already
        assert freed_before[table] == set(order[:i])
    gc.collect()
    assert all(ref() is None for ref in alive.values())
    back = read_book(tmp_path / "staged", reuse=False).tables()
    assert set(back) == set(expected)
    for table, frame in expected.items():  # and the files hold the book as it was
        pd.testing.assert_frame_equal(back[table], frame)


def test_a_book_is_written_whole_and_kept(tmp_path: Path) -> None:
    """Given a Book (not its tables), nothing of it is emptied."""
    book = generate_book(10, seed=2, start="2023-01-01", end="2023-12-31")
    fio.write_staged_book(book, tmp_path / "out")
    assert isinstance(book, Book) and len(book.payments) and "payment_id" in book.payments
    assert len(fio.read_folder(tmp_path / "out")["payments"][1]) == len(book.payments)


def test_tables_with_staged_only_columns_go_first_in_any_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = generate_book(10, seed=2, start="2023-01-01", end="2023-12-31")
    tables = dict(reversed(book.tables().items()))  # staged-only tables last as given
    order: list[str] = []
    real = fio.write_tables

    def watched(tables: dict[str, pd.DataFrame], out: Path, **kw: object) -> object:
        order.extend(tables)
        return real(tables, out, **kw)

    monkeypatch.setattr(fio, "write_tables", watched)
    written = fio.write_staged_book(tables, tmp_path / "out")
    assert tables == {} and set(written) == set(book.tables())
    assert set(order[:len(STAGED_ONLY)]) == set(STAGED_ONLY)
