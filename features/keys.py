"""Exact matching of string ids over tens of millions of rows: the project's one matcher.

Used by validation (``features.contract``: duplicate ids, payments and disputes against
invoices) and by the point-in-time encoding (``features.pit``: invoices to accounts,
payments and disputes to invoices). Every function is exact: a hash only proposes
candidates, the bytes of the strings decide.

Why hand-rolled: on this class of machine a random access into a 50M-row table costs
~150 ns, so a generic hash join of 50M payment ids against 50M invoice ids takes minutes,
and polars' hash-based ``is_first_distinct`` and ``join`` on strings cost seconds per few
million rows. Real exports (and the synthetic book) list payments roughly in invoice order
and invoices grouped by account, so :func:`match_ids` first tries a *hinted* match (the
previous row's match or the next ones, galloping when the reference is sorted), which is a
sequential scan, and falls back to a hash table only for the rows that miss. Results never
depend on input order, only speed does. Strings are compared where they are: Arrow's
offsets layout (pandas, Arrow) or polars' 16-byte string views (ids of at most 12 bytes
inline), never copied from one layout to the other (``features._id_kernels.buffers``).

- :func:`match_ids`: row in ``reference`` of each query id (numpy, -1 when absent);
- :func:`lookup`: the same for polars Series with nulls (validation), unique table keys;
- :func:`first_occurrence`: which keys appear for the first time;
- :func:`index_in` / :func:`is_in`: a value set that is small next to the query, or in
  no useful order (Arrow hashes the value set: ~0.1 s per million values), and
  :func:`values_at` to read another column at the rows found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from features._id_kernels import (
    Strings,
    ascends,
    buffers,
    has_repeats,
    match_hashed,
    match_hinted,
    plain,
    strictly_sorted,
)


def id_array(values: Strings) -> pa.Array:
    """Ids (Arrow-backed or object strings, codes, polars) as one Arrow string array, with
    dictionaries decoded and chunks combined: the form Arrow's hash lookups take."""
    if isinstance(values, pl.Series):
        values = values.to_arrow()
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(
        values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array if array.type == pa.string() else array.cast(pa.string())


def _coded(values: object) -> tuple[np.ndarray, pd.Index] | None:
    """(codes, categories) of a pandas ``category`` column (the Book's code columns, e.g.
    invoices' ``account_id``), None for anything else. Matching such a column matches its
    categories (far fewer than the rows: 1M accounts for 50M invoices) and reads each
    row's answer through its code: never one string per row."""
    dtype = getattr(values, "dtype", None)
    if not isinstance(dtype, pd.CategoricalDtype):
        return None
    cat = values.array if isinstance(values, pd.Series) else values
    return np.asarray(cat.codes), dtype.categories


def _through_codes(codes: np.ndarray, at: np.ndarray, missing: object) -> np.ndarray:
    """``at[code]`` per row (``at``: the answer per category), ``missing`` where a row's
    code is -1 (a missing value)."""
    return np.append(at, np.array([missing], dtype=at.dtype))[codes]


def index_in(query: Strings, value_set: Strings) -> np.ndarray:
    """Position (int64) in ``value_set`` of each ``query`` id (its first occurrence), -1
    where absent or missing. Arrow hashes ``value_set``; for two big columns listed in a
    similar order, :func:`match_ids` is the cheaper matcher."""
    if (coded := _coded(query)) is not None:
        return _through_codes(coded[0], index_in(coded[1], value_set), -1)
    at = pc.index_in(id_array(query), value_set=id_array(value_set))
    return at.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def is_in(query: Strings, value_set: Strings) -> np.ndarray:
    """Whether each ``query`` id is in ``value_set`` (bool; a missing id is not)."""
    if (coded := _coded(query)) is not None:
        return _through_codes(coded[0], is_in(coded[1], value_set), False)
    found = pc.is_in(id_array(query), value_set=id_array(value_set))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def values_at(values: pd.Series, rows: np.ndarray, index: pd.Index | None = None,
              name: object = None) -> pd.Series:
    """``values`` (ids) at ``rows`` (positions as :func:`index_in` or :func:`match_ids`
    give them), missing where a row is -1, as a ``str`` Series with ``index``."""
    if (coded := _coded(values)) is not None:  # the rows' codes, then their categories
        codes, categories = coded
        rows = np.asarray(rows)
        at = codes[np.where(rows < 0, 0, rows)] if len(codes) else np.full(len(rows), -1)
        values, rows = pd.Series(categories), np.where(rows < 0, -1, at).astype(np.int64)
    taken = id_array(values).take(pa.array(rows, mask=rows < 0))
    return pd.Series(pd.array(taken, dtype="str"), index=index, name=name)


def match_ids(query: Strings, reference: Strings, *,
              reference_sorted: bool | None = None) -> np.ndarray:
    """Row index (int64) in ``reference`` of each ``query`` id (its first occurrence), -1
    where absent. Both sides must be null-free string columns (pandas, Arrow or polars).

    ``reference_sorted``: whether the reference is strictly ascending (byte order), when the
    caller knows; checked here otherwise (one linear pass). A ``category`` query (a
    Book's code column) is matched by its categories, each row answered through its code.
    """
    if (coded := _coded(query)) is not None:
        at = match_ids(pd.Series(coded[1]), reference, reference_sorted=reference_sorted)
        return _through_codes(coded[0], at, -1)
    qo, qd, qs = buffers(query)
    ro, rd, rs = buffers(reference)
    ref_sorted = strictly_sorted(ro, rd, rs) if reference_sorted is None else reference_sorted
    out = match_hinted(qo, qd, qs, ro, rd, rs, ref_sorted)
    if not ref_sorted and has_repeats(ro, rd, rs):
        # The hint window can land on a later copy of a repeated id: only the one scan of
        # the reference in order finds every first occurrence.
        out = match_hashed(qo, qd, qs, ro, rd, rs, np.full(len(out), -1, np.int64))
    elif not ref_sorted and (out < 0).any():
        out = match_hashed(qo, qd, qs, ro, rd, rs, out)
    return out




def plainly_printable(values: pl.Series) -> bool:
    """True when no id of ``values`` (polars strings) can hold a control character or
    whitespace at either end: none holds an ASCII control character (NUL included) nor a
    space, and none starts or ends with a non-ASCII character. False means "maybe" (a
    space inside a name, a non-ASCII last letter): the caller asks its exact question
    (a regex). Why: the regex costs ~20 ns an id (0.7 CPU s for the 30M ids of the
    invoices of 300k accounts), this one linear pass over the views ~1 ns. Nulls: False."""
    if values.dtype != pl.String or values.null_count():
        return False
    return bool(plain(*buffers(values)))


def sorted_unique(ids: pa.Array) -> pa.Array:
    """The distinct ids in ascending (byte) order: a reference :func:`match_ids` searches
    with ``reference_sorted=True`` (no check of it per match)."""
    distinct = pc.unique(ids)
    return distinct.take(pc.sort_indices(distinct))


def is_strictly_sorted(values: Strings) -> bool:
    """Whether null-free string ids are strictly ascending (byte order): the check
    :func:`match_ids` makes of its reference, for a caller matching several queries
    against one reference (pass the answer as ``reference_sorted``)."""
    return bool(strictly_sorted(*buffers(values)))


def ascending(keys: pl.Series) -> bool:
    """Whether ``keys`` ascend (byte order; nulls ignored pairwise): the ``table_sorted``
    of :func:`lookup`."""
    return _is_sorted(keys)


def _is_sorted(keys: pl.Series, *, in_place: bool = True) -> bool:
    """Ascending, nulls anywhere ignored pairwise (one linear pass).

    ``in_place``: null-free strings are compared where they are (:func:`ascends`), not
    through polars' comparison with a shifted copy of the keys (16 bytes a row) and two
    masks, ~1 GB at 50M payments during validation's peak; polars' costs ~3x less CPU, so
    a caller that copies the keys anyway passes False."""
    if len(keys) < 2:
        return True
    if in_place and keys.dtype == pl.String and keys.null_count() == 0:
        return bool(ascends(*buffers(keys), False))
    prev = keys.shift(1)
    return bool(((keys >= prev) | keys.is_null() | prev.is_null()).all())


def first_occurrence(keys: pl.Series) -> pl.Series:
    """Boolean Series: True where a non-null key appears for the first time (nulls: True).

    Equal to ``keys.is_first_distinct()`` on the non-null keys.
    """
    n = len(keys)
    if n == 0:
        return pl.Series(dtype=pl.Boolean)
    not_null = keys.is_not_null()
    if keys.null_count() == 0 and _is_sorted(keys, in_place=False):
        return (keys != keys.shift(1)).fill_null(True)
    hashes = keys.hash(seed=0).to_numpy()
    ordered = np.sort(hashes[not_null.to_numpy()])
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    first = np.ones(n, dtype=bool)
    if len(repeated):
        cand = np.flatnonzero(np.isin(hashes, repeated) & not_null.to_numpy())
        exact = keys.gather(cand).is_first_distinct().to_numpy()
        first[cand] = exact
    return pl.Series(first)


def _sorted_lookup(keys: pl.Series, table_keys: pl.Series) -> pl.Series:
    """:func:`lookup` when both sides are sorted (a written, canonical book): the hinted
    scan of :func:`match_ids` is then one linear merge."""
    # unique table keys (the caller's guarantee) in ascending order: strictly sorted
    if keys.null_count() == 0:  # (no filtered copy of the keys)
        out = match_ids(keys, table_keys, reference_sorted=True)
    else:
        valid = keys.is_not_null()
        found = match_ids(keys.filter(valid), table_keys, reference_sorted=True)
        out = np.full(len(keys), -1, dtype=np.int64)
        out[valid.to_numpy()] = found
    return pl.Series(out).replace(-1, None)


def _join_lookup(keys: pl.Series, table_keys: pl.Series) -> pl.Series:
    """Exact hash join in polars (large unsorted inputs, or a 64-bit hash collision)."""
    idx = pl.DataFrame({"k": table_keys, "i": pl.int_range(len(table_keys), eager=True)})
    joined = pl.DataFrame({"k": keys}).join(idx, on="k", how="left", maintain_order="left")
    return joined.get_column("i").cast(pl.Int64)


def _narrow_lookup(keys: pl.Series, table_keys: pl.Series) -> pl.Series:
    """Few keys, big table: keep only table rows whose hash a key has, then match there.

    Searching the big table's hashes in the small sorted key hashes stays in cache, unlike
    random probes into a big sorted array.
    """
    th = table_keys.hash(seed=0).to_numpy()
    kh = keys.hash(seed=0).to_numpy()
    sk = np.sort(kh)
    pos = np.minimum(np.searchsorted(sk, th), len(sk) - 1)
    rows = np.flatnonzero(sk[pos] == th)
    sub = th[rows]
    order = np.argsort(sub)
    sorted_h = sub[order]
    if len(rows) == 0:
        return pl.Series([None] * len(keys), dtype=pl.Int64)
    if np.any(sorted_h[1:] == sorted_h[:-1]):
        return _join_lookup(keys, table_keys)  # two ids share a 64-bit hash: rare
    at = np.minimum(np.searchsorted(sorted_h, kh), len(sorted_h) - 1)
    cand = rows[order[at]]
    # Confirm on the strings (a hash hit with a different id is a miss).
    same = (table_keys.gather(cand) == keys).fill_null(False).to_numpy()
    found = (sorted_h[at] == kh) & same
    return pl.Series(np.where(found, cand, -1)).cast(pl.Int64).replace(-1, None)


def lookup(keys: pl.Series, table_keys: pl.Series, *,
           table_sorted: bool | None = None) -> pl.Series:
    """Row index (Int64) into ``table_keys`` of each key, null when absent.

    ``table_keys`` must be unique and non-null (the caller guarantees it: kept invoice ids).
    Sorted inputs (as written by the synthetic generator or from a canonical Book) take a
    linear merge; few keys (disputes) a hash lookup confirmed on the strings; anything
    else a polars hash join. ``table_sorted``: whether ``table_keys`` ascend
    (:func:`ascending`), when the caller knows it (validation looks payments, disputes
    and promises up in the same invoices: one pass over 50M ids, ~1.5 s, instead of
    three); checked here otherwise.
    """
    if len(table_keys) == 0 or len(keys) == 0:
        return pl.Series([None] * len(keys), dtype=pl.Int64)
    if table_sorted is None:
        table_sorted = _is_sorted(table_keys)
    if table_sorted and _is_sorted(keys.drop_nulls()):
        return _sorted_lookup(keys, table_keys)
    if 4 * len(keys) <= len(table_keys):
        return _narrow_lookup(keys, table_keys)
    return _join_lookup(keys, table_keys)
