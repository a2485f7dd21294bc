"""Id matching (features.keys) and book encoding (features.pit._prep) of the fast features."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from features.keys import match_ids
from features.pit._prep import prepare
from tests.factories import random_book


def _expected(query: list[str], reference: list[str]) -> list[int]:
    first: dict[str, int] = {}
    for i, r in enumerate(reference):
        first.setdefault(r, i)
    return [first.get(q, -1) for q in query]


@settings(max_examples=40, deadline=None)
@given(reference=st.lists(st.sampled_from([f"I{k:03d}" for k in range(40)] + ["", "x"]),
                          max_size=30),
       query=st.lists(st.sampled_from([f"I{k:03d}" for k in range(45)] + ["", "x", "zz"]),
                      max_size=40),
       sort_ref=st.booleans(), sort_query=st.booleans())
# Found by hypothesis: the hint window matched the later copy of a repeated id.
@example(reference=["I001", "I000", "I001"], query=["I000", "I001"], sort_ref=False,
         sort_query=False)
def test_match_ids_equals_a_dictionary_lookup(reference, query, sort_ref, sort_query):
    if sort_ref:
        reference = sorted(set(reference))
    if sort_query:
        query = sorted(query)
    got = match_ids(pa.array(query, pa.string()), pa.array(reference, pa.large_string()))
    assert got.tolist() == _expected(query, reference)


def test_match_ids_on_ordered_ids_with_gaps():
    reference = [f"I{k:06d}" for k in range(5000)]
    query = [r for k, r in enumerate(reference) if k % 7 == 0 or 1000 < k < 1003] * 2
    got = match_ids(pd.Series(query, dtype="str"), pd.Series(reference, dtype="str"))
    assert got.tolist() == _expected(query, reference)


def test_match_ids_on_ids_going_back_in_blocks():
    # a sorted reference and queries that go back a little, block by block (the invoices
    # promises name, account by account), found exactly, absent ones included
    reference = [f"I{k:06d}" for k in range(0, 10000, 2)]
    rng = np.random.default_rng(5)
    query = []
    for start in range(0, 10000, 60):
        block = [f"I{k:06d}" for k in range(start, start + 60)]
        rng.shuffle(block)
        query += block
    query += ["I000000", "I009998", "I", "I009999z", "I005000"]
    for back in (62, 63, 64, 65, 66, 200):  # around how far back the search looks first
        for k in (3000, 3001):  # each from a hint at reference row 1500
            query += ["I003000", f"I{k - 2 * back:06d}", "I003000", f"I{k - 2 * back - 1:06d}"]
    for known in (True, None):
        got = match_ids(pd.Series(query, dtype="str"), pd.Series(reference, dtype="str"),
                        reference_sorted=known)
        assert got.tolist() == _expected(query, reference)


def test_prepare_keeps_the_payments_invoice_rows_of_a_book_without_credit_notes():
    book = random_book(11, n_accounts=4, n_invoices=30)
    book = replace(book, invoices=book.invoices[book.invoices["amount"] > 0],
                   payments=book.payments.sample(frac=1.0, random_state=3))
    rows = prepare(book).pay_invoices
    assert rows is not None and rows.dtype == np.int32
    assert rows.tolist() == _expected(book.payments["invoice_id"].tolist(),
                                      book.invoices["invoice_id"].tolist())
    credit = book.invoices.iloc[:1].assign(invoice_id="C1", amount=-5.0)
    with_credit = replace(book, invoices=pd.concat([book.invoices, credit], ignore_index=True))
    assert prepare(with_credit).pay_invoices is None  # its arrays' invoices: not the book's


def test_match_ids_takes_polars_and_a_known_sorted_reference():
    reference = [f"I{k:03d}" for k in range(0, 100, 3)]
    # forwards, backwards, gaps, repeats, before the first and after the last id
    query = ["I099", "I000", "I001", "I051", "I051", "I003", "I", "zz", "I096", "I002"]
    expected = _expected(query, reference)
    for known in (True, None):
        got = match_ids(pl.Series(query), pl.Series(reference), reference_sorted=known)
        assert got.tolist() == expected


def test_prepare_groups_invoices_by_account_and_payments_by_date():
    book = random_book(11, n_accounts=4, n_invoices=30)
    prep = prepare(book)
    ids = prep.account_ids.to_pylist()
    assert ids == sorted(ids)
    assert prep.acc_ptr[-1] == len(book.invoices)
    assert len(prep.pay_ptr) == len(book.invoices) + 1
    assert prep.pay_ptr[-1] == len(book.payments)
    for i in range(len(book.invoices)):
        days = prep.pay_day[prep.pay_ptr[i]:prep.pay_ptr[i + 1]]
        assert (np.diff(days) >= 0).all()
    assert np.isclose(prep.pay_amt.sum(), book.payments["amount"].sum())


def test_bench_runs_small_and_reports(tmp_path):
    from bench.features import run

    out = tmp_path / "bench.json"
    result = run(accounts=60, json_path=out, reference_max_accounts=30, training_weeks=2)
    saved = json.loads(out.read_text())
    for key in ("accounts", "invoices", "seconds", "peak_rss_mb", "reference_seconds",
                "speedup", "reference_accounts", "training_seconds"):
        assert key in saved
    assert saved["reference_accounts"] == 30 and saved["reference_is_slice"]
    assert result["accounts"] == 60 and result["invoices"] > 0


def test_prepare_offsets_are_int32_and_blocks_decide_allocation_as_the_whole_book():
    from features.pit import _prep
    from features.pit._credits import needs_allocation
    from features.spec import to_cents

    book = random_book(5, n_accounts=6, n_invoices=40)
    book = replace(book, invoices=book.invoices[book.invoices["amount"] > 0])
    prep = prepare(book)
    assert {prep.acc_ptr.dtype, prep.pay_ptr.dtype, prep.dis_ptr.dtype} == {np.dtype(np.int32)}
    args = (prep.issue, prep.amount, prep.pay_ptr, prep.pay_day, prep.pay_amt)
    whole = needs_allocation(prep.issue, to_cents(prep.amount), prep.pay_ptr, prep.pay_day,
                             to_cents(prep.pay_amt))
    late = prep.pay_amt.copy()  # the last invoice's payments (one block boundary away)
    last = len(prep.issue) - 1
    late[prep.pay_ptr[last]:prep.pay_ptr[last + 1]] += prep.amount[last]
    if prep.pay_ptr[last + 1] == prep.pay_ptr[last]:
        late = None
    old_block = _prep._BLOCK
    try:
        for block in (1, 3, 1 << 20):
            _prep._BLOCK = block
            assert _prep._needs_allocation(*args) == whole
            if late is not None:  # an overpaid last invoice: found in its block
                assert _prep._needs_allocation(*args[:4], late)
    finally:
        _prep._BLOCK = old_block
