"""``features.row_order.arg_sort_rows`` gives polars' multi-key order exactly: ascending,
nulls last, ties in row order, on every dtype validation sorts by (text ids of every length,
dates, datetimes, amounts, categoricals, booleans)."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.row_order import arg_sort_rows

# Text that breaks naive encodings: empty, a trailing NUL (after "a" in byte order), a
# shared 8-byte prefix (the digit boundary), multi-byte UTF-8, ids longer than 16 bytes.
TEXT = ["", "a", "a\x00", "ab", "b", "é", "abcdefgh", "abcdefgh\x00", "abcdefghi",
        "abcdefghabcdefghX", "z" * 17, "I000000001", "I000000010", "I00000001"]
FLOATS = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1.5, -2.0, 1e-300, -1e300]


def polars_order(frame: pl.DataFrame) -> list[int]:
    if frame.height == 0:
        return []
    return frame.select(pl.arg_sort_by(frame.columns, nulls_last=True,
                                       maintain_order=True)).to_series().to_list()


def _maybe(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), values)


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(0, 40))
    cols = {
        "text": pl.Series(draw(st.lists(_maybe(st.sampled_from(TEXT)), min_size=n, max_size=n)),
                          dtype=pl.String),
        "free": pl.Series(draw(st.lists(st.text(max_size=20), min_size=n, max_size=n)),
                          dtype=pl.String),
        "int": pl.Series(draw(st.lists(_maybe(st.integers(-(2**63), 2**63 - 1)), min_size=n,
                                       max_size=n)), dtype=pl.Int64),
        "small": pl.Series(draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)),
                           dtype=pl.Int8),
        "amount": pl.Series(draw(st.lists(_maybe(st.sampled_from(FLOATS)), min_size=n,
                                          max_size=n)), dtype=pl.Float64),
        "day": pl.Series(draw(st.lists(_maybe(st.dates(date(1900, 1, 1), date(9999, 12, 31))),
                                       min_size=n, max_size=n)), dtype=pl.Date),
        "at": pl.Series(draw(st.lists(_maybe(st.datetimes(datetime(1970, 1, 1),
                                                          datetime(2100, 1, 1))),
                                      min_size=n, max_size=n)), dtype=pl.Datetime("ms")),
        "code": pl.Series(draw(st.lists(_maybe(st.sampled_from(TEXT[:6])), min_size=n,
                                        max_size=n)), dtype=pl.Categorical),
        "flag": pl.Series(draw(st.lists(_maybe(st.booleans()), min_size=n, max_size=n)),
                          dtype=pl.Boolean),
    }
    names = draw(st.lists(st.sampled_from(list(cols)), min_size=1, max_size=5, unique=True))
    return pl.DataFrame({name: cols[name] for name in names})


@settings(max_examples=300, deadline=None)
@given(frames())
def test_the_order_is_polars_multi_key_order(frame: pl.DataFrame) -> None:
    assert arg_sort_rows(frame).tolist() == polars_order(frame)


def test_ties_keep_row_order_and_nulls_come_last() -> None:
    frame = pl.DataFrame({"id": ["b", None, "a", "b", "a", None],
                          "amount": [1.0, 2.0, None, 1.0, -0.0, 0.0]})
    # "a" rows: -0.0 equals 0.0 (no tie here: the null amount goes last) -> 4, 2;
    # "b" rows: an exact tie keeps row order -> 0, 3; null ids last by amount -> 5, 1
    assert arg_sort_rows(frame).tolist() == [4, 2, 0, 3, 5, 1] == polars_order(frame)


def test_ids_longer_than_one_digit_are_compared_past_their_shared_prefix() -> None:
    # the first 8 bytes are equal: only the second digit (and then the length) orders them
    ids = ["INV-0000-0002", "INV-0000-0001", "INV-0000-00010", "INV-0000-", "INV-0000"]
    frame = pl.DataFrame({"invoice_id": ids})
    assert [ids[i] for i in arg_sort_rows(frame)] == sorted(ids)


def test_a_long_sorted_table_comes_back_in_place_and_a_shuffled_one_in_order() -> None:
    rng = np.random.default_rng(3)
    n = 50_000
    frame = pl.DataFrame({
        "account_id": [f"A{i // 50:07d}" for i in range(n)],
        "issue_date": pl.date_range(date(2023, 1, 1), date(2024, 12, 31), eager=True)
        .sample(n, with_replacement=True, seed=1).sort(),
        "invoice_id": [f"I{i:09d}" for i in range(n)]})
    frame = frame.sort("account_id", "issue_date", "invoice_id")
    assert (arg_sort_rows(frame) == np.arange(n)).all()
    shuffled = frame[rng.permutation(n)]
    assert arg_sort_rows(shuffled).tolist() == polars_order(shuffled)


def test_an_unsupported_dtype_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="'values'"):
        arg_sort_rows(pl.DataFrame({"values": [[1], [2]]}))
