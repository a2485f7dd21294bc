"""The id matchers of ``features.keys``: Arrow hash lookups against a value set, reading
another column at the rows found (``index_in``, ``is_in``, ``values_at``), and the merge on
polars' string views in place (ids inline in their view or not, sliced, in several data
buffers, empty)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from features.keys import (
    _is_sorted,
    index_in,
    is_in,
    is_strictly_sorted,
    lookup,
    match_ids,
    plainly_printable,
    values_at,
)


def test_index_in_and_is_in_agree_with_match_ids_on_ids_of_every_form() -> None:
    reference = pd.Series(["I3", "I1", "I2", "I1"], dtype="str")  # a repeat: first wins
    query = pd.Series(["I1", "I9", "I2", "I3"], dtype="category")  # codes are decoded
    assert index_in(query, reference).tolist() == [1, -1, 2, 0]
    assert index_in(query, reference).tolist() == match_ids(query, reference).tolist()
    assert is_in(query, reference).tolist() == [True, False, True, True]
    # A missing query id is found nowhere.
    assert index_in(pd.Series(["I2", None], dtype="str"), reference).tolist() == [2, -1]
    assert is_in(pd.Series([None, "I3"], dtype="str"), reference).tolist() == [False, True]


def test_values_at_reads_the_rows_found_and_leaves_the_others_missing() -> None:
    accounts = pd.Series(["A1", "A2", "A3"], dtype="str")
    out = values_at(accounts, np.array([2, -1, 0]), pd.Index([10, 11, 12]), "account_id")
    assert out.dtype == "str" and out.name == "account_id"
    assert out.index.tolist() == [10, 11, 12]
    assert out.tolist()[0] == "A3" and pd.isna(out[11]) and out[12] == "A1"


def test_a_code_column_is_matched_through_its_categories_as_its_strings_are() -> None:
    # A Book's code column (invoices' account_id): categories not all used, not in row
    # order, a missing row; every matcher answers as it does for the same strings.
    text = pd.Series(["A3", "A1", None, "A3", "A0"], dtype="str")
    codes = text.astype(pd.CategoricalDtype(pd.Index(["A0", "A1", "A3", "A9"], dtype="str")))
    reference = pd.Series(["A1", "A9", "A3", "A2"], dtype="str")
    present = text.notna().to_numpy()
    want = np.array([2, 0, -1, 2, -1])
    assert match_ids(codes[present], reference).tolist() == want[present].tolist()
    assert match_ids(codes[present], reference).tolist() == match_ids(
        text[present], reference).tolist()
    assert index_in(codes, reference).tolist() == want.tolist()
    assert is_in(codes, reference).tolist() == (want >= 0).tolist()
    rows = np.array([4, -1, 2, 0, 3])
    got, expect = values_at(codes, rows), values_at(text, rows)
    assert got.dtype == "str" and got.tolist()[0] == "A0" and got.tolist()[3:] == ["A3", "A3"]
    assert got.isna().tolist() == expect.isna().tolist() == [False, True, True, False, False]


# ------------------------------------------- polars' string views, matched in place
# Ids of every layout: inline in their 16-byte view (at most 12 bytes, the synthetic
# book's), out of line (13 bytes and more, in a data buffer), sharing the 4-byte prefix a
# view also holds, empty, multi-byte UTF-8.
IDS = ["", "I1", "I000000001", "I00000000001", "I000000000001", "I0000000000001",
       "I000000000000000000002", "I0000", "I0001", "Ä", "Äx" * 9, "ab", "ab\x00", "abc"]


def _expected(query: list[str], reference: list[str]) -> list[int]:
    first: dict[str, int] = {}
    for i, r in enumerate(reference):
        first.setdefault(r, i)
    return [first.get(q, -1) for q in query]


@settings(max_examples=60, deadline=None)
@given(reference=st.lists(st.sampled_from(IDS), max_size=25),
       query=st.lists(st.sampled_from([*IDS, "I000000000003", "zz"]), max_size=30),
       sort_ref=st.booleans(), sort_query=st.booleans(), cut=st.integers(0, 3))
def test_match_ids_on_views_equals_offsets_and_a_dictionary(
        reference: list[str], query: list[str], sort_ref: bool, sort_query: bool,
        cut: int) -> None:
    if sort_ref:  # (byte order: Python's order of these str is the UTF-8 bytes' order)
        reference = sorted(set(reference))
    if sort_query:
        query = sorted(query)
    # A slice of a longer column: its views start past the buffer's first (polars keeps
    # the parent's buffers), the layout a filtered or sliced column has.
    ref_views = pl.Series(["pad"] * cut + reference, dtype=pl.String)[cut:]
    expected = _expected(query, reference)
    for known in (None, sort_ref or None):
        got = match_ids(pl.Series(query, dtype=pl.String), ref_views, reference_sorted=known)
        assert got.tolist() == expected
    offsets = match_ids(pa.array(query, pa.large_string()), pa.array(reference, pa.string()))
    assert offsets.tolist() == expected
    # one side views, the other offsets
    assert match_ids(pl.Series(query, dtype=pl.String),
                     pa.array(reference, pa.large_string())).tolist() == expected
    assert is_strictly_sorted(ref_views) == (
        all(a < b for a, b in itertools.pairwise(r.encode() for r in reference)))


def test_views_in_several_data_buffers_and_arrow_slices() -> None:
    parts = [pa.array(["x" * 20, "short", "y" * 30], pa.string_view()),
             pa.array(["z" * 15, "q", "x" * 20], pa.string_view())]
    column = pa.concat_arrays(parts)  # two data buffers: views index the second
    assert len(column.buffers()) == 4
    values = column.to_pylist()
    query = pa.array(["x" * 20, "z" * 15, "q", "y" * 30, "y" * 29, "short"], pa.string_view())
    assert match_ids(query, column).tolist() == _expected(query.to_pylist(), values)
    tail = column.slice(2)  # a view array with an offset
    assert match_ids(query, tail).tolist() == _expected(query.to_pylist(), values[2:])
    assert match_ids(query.slice(1, 3), tail).tolist() == _expected(
        query.to_pylist()[1:4], values[2:])


def test_empty_columns_match_nothing() -> None:
    empty = pl.Series([], dtype=pl.String)
    assert match_ids(empty, pl.Series(["a"])).tolist() == []
    assert match_ids(pl.Series(["a", "b" * 20]), empty).tolist() == [-1, -1]
    assert is_strictly_sorted(empty)
    assert lookup(pl.Series(["a", None]), empty).to_list() == [None, None]


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.sampled_from(IDS), max_size=20), sort=st.booleans())
def test_is_sorted_on_views_agrees_with_polars(keys: list[str], sort: bool) -> None:
    series = pl.Series(sorted(keys) if sort else keys, dtype=pl.String)
    by_polars = bool(((series >= series.shift(1)) | series.shift(1).is_null()).all())
    assert _is_sorted(series) == _is_sorted(series, in_place=False) == by_polars


@settings(max_examples=40, deadline=None)
@given(table=st.lists(st.sampled_from(IDS), unique=True, max_size=12),
       keys=st.lists(st.one_of(st.none(), st.sampled_from([*IDS, "nope" * 4])), max_size=25),
       sort=st.booleans())
def test_lookup_on_long_ids_with_nulls(table: list[str], keys: list[str | None],
                                       sort: bool) -> None:
    if sort:  # both sides sorted: the merge of the views
        table = sorted(table)
        keys = sorted(k for k in keys if k is not None) + [k for k in keys if k is None]
    got = lookup(pl.Series(keys, dtype=pl.String), pl.Series(table, dtype=pl.String))
    assert got.to_list() == [table.index(k) if k in table else None for k in keys]


def test_ids_inline_in_their_views_compare_by_their_bytes_to_their_length() -> None:
    # Inline ids (at most 12 bytes) compare as words: the bytes past an id's length must
    # count as nothing, a trailing NUL as a byte, and the last 4 bytes as the first 8 do.
    ids = ["", "\x00", "a", "a\x00", "a\x00\x00", "ab", "abcdefg", "abcdefg\x00",
           "abcdefgh", "abcdefgh\x00", "abcdefgh\x01", "abcdefghijk", "abcdefghijk\x00",
           "abcdefghijkl", "abcdefghijkm", "abcdefghijkm\x00", "abcdefghijkz", "b", "\xff"]
    assert [i.encode() for i in ids] == sorted(i.encode() for i in ids)
    views = pl.Series(ids, dtype=pl.String)
    assert is_strictly_sorted(views)
    assert not is_strictly_sorted(views.reverse())
    assert not is_strictly_sorted(pl.Series(["abcdefgh\x01", "abcdefgh\x00"]))
    query = pl.Series(list(reversed(ids)) + ["a\x00\x00\x00", "abcdefghijkl\x00"])
    want = list(reversed(range(len(ids)))) + [-1, -1]
    for known in (True, None):
        assert match_ids(query, views, reference_sorted=known).tolist() == want
    shuffled = pl.Series(ids[1::2] + ids[::2], dtype=pl.String)  # (the hashed match)
    assert match_ids(query, shuffled).tolist() == _expected(query.to_list(),
                                                            shuffled.to_list())


def test_an_inline_id_is_its_bytes_whatever_its_view_holds_past_them() -> None:
    # A writer need not zero the rest of a short id's view: only its length counts.
    def view(text: bytes, fill: int) -> bytes:
        return len(text).to_bytes(4, "little") + text + bytes([fill]) * (12 - len(text))

    texts = [b"ab", b"ab\x00", b"abcdefghi", b"b"]
    dirty = pa.Array.from_buffers(pa.string_view(), len(texts), [
        None, pa.py_buffer(b"".join(view(t, 0xFF) for t in texts))])
    clean = pa.array([t.decode() for t in texts], pa.string_view())
    assert is_strictly_sorted(dirty)
    assert match_ids(clean, dirty).tolist() == [0, 1, 2, 3]
    assert match_ids(dirty, clean, reference_sorted=True).tolist() == [0, 1, 2, 3]


_SUSPECT_TEXT = st.lists(st.sampled_from(["a", "I0", " ", "\t", "\x00", "\x1f", "\x7f", "\x85",
                                          "\xa0", "\u3000", "é", "\u2028", "x" * 13]),
                         max_size=6).map("".join)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(_SUSPECT_TEXT, min_size=1, max_size=4))
def test_plainly_printable_ids_have_nothing_the_control_regex_finds(ids: list[str]) -> None:
    from features.contract.parsing import _SUSPECT

    found = bool(pl.Series(ids).str.contains(_SUSPECT).any())
    assert not (plainly_printable(pl.Series(ids)) and found)


def test_plainly_printable_says_maybe_for_spaces_controls_and_non_ascii_ends() -> None:
    assert plainly_printable(pl.Series(["I000000001", "Zürich", "x" * 30, ""]))
    for odd in ["I1 ", " I1", "A B", "I\x00", "I\x7f", "\xa0I1", "I1\u3000", "é"]:
        assert not plainly_printable(pl.Series(["I2", odd, "I3"])), odd
    assert not plainly_printable(pl.Series(["I1", None]))
    assert plainly_printable(pl.Series(["x" * 20 + "\x01", "I1"]).slice(1))  # (views of a slice)


def test_kernel_form_has_one_numba_type_per_layout_whatever_the_ids() -> None:
    """Short ids (inline in their views, no data buffer), long ones (a file's read-only
    buffer), an empty column and ids built in memory must reach the kernels as the same
    numba types: each other type compiles every kernel again (20-30 CPU s, mid-run)."""
    import numba as nb

    from features._id_kernels import buffers

    def types(values: object) -> tuple[object, ...]:
        return tuple(nb.typeof(a) for a in buffers(values))

    views = [pl.Series(["I1", "I2"]), pl.Series(["x" * 20, "I2"]), pl.Series([], dtype=pl.String),
             pa.array(["x" * 20, "q"], pa.string_view())]
    assert len({types(v) for v in views}) == 1
    offsets = [pa.array(["I1", "x" * 20], pa.large_string()), pa.array([], pa.large_string()),
               pd.Series(["I1", "I2"], dtype="str")]
    assert len({types(v) for v in offsets}) == 1
    assert all(not a.flags.writeable for v in views + offsets for a in buffers(v))
