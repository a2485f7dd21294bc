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
inline), never copied from one layout to the other (``_buffers``).

- :func:`match_ids`: row in ``reference`` of each query id (numpy, -1 when absent);
- :func:`lookup`: the same for polars Series with nulls (validation), unique table keys;
- :func:`first_occurrence`: which keys appear for the first time;
- :func:`index_in` / :func:`is_in`: a value set that is small next to the query, or in
  no useful order (Arrow hashes the value set: ~0.1 s per million values), and
  :func:`values_at` to read another column at the rows found.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from numba.extending import overload

Strings = pd.Series | pa.Array | pa.ChunkedArray | pl.Series


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


#: Bytes per row of Arrow's (and polars') string view layout: int32 length, then either
#: the string itself (at most 12 bytes, zero-padded) or a 4-byte prefix, the int32 index
#: of a data buffer and the int32 offset of the string in it.
VIEW_BYTES = 16
VIEW_INLINE = 12


def _buffers(values: Strings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A null-free string column in the kernels' form ``(o, d, s)``, without copying the
    strings where the layout allows:

    - offsets (Arrow ``string``/``large_string``, pandas ``str``): ``o`` the int32/int64
      offsets (n + 1), ``d`` the bytes, ``s`` unused;
    - string views (polars' strings, Arrow ``string_view``): ``o`` the 16-byte views as
      uint8 (16 n), ``d`` the data buffers (the one buffer as is, several concatenated:
      only when a string is longer than 12 bytes, as shorter ones are inline in their
      view), ``s`` the start of each data buffer in ``d`` (int64).

    Why views stay views: at 1M accounts casting both sides of the invoice-id lookup to
    offsets held ~1.8 GB more at validation's peak (issues 11 and 20).
    """
    if isinstance(values, pl.Series):
        # newest: polars' own string views, zero-copy (the default casts to large_string)
        arr = values.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    elif isinstance(values, pa.Array | pa.ChunkedArray):
        arr = values
    else:
        arr = pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type):
        width = np.int64
    elif pa.types.is_string(arr.type):
        width = np.int32
    elif pa.types.is_string_view(arr.type):
        return _view_buffers(arr)
    else:  # dictionaries, binary...: one copy to plain offsets
        arr = arr.cast(pa.large_string())
        width = np.int64
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=width)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(
        1, np.uint8)
    return offsets, data, np.zeros(1, np.int64)


def _view_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_buffers` of a ``string_view`` array (see there)."""
    bufs = arr.buffers()
    start, stop = VIEW_BYTES * arr.offset, VIEW_BYTES * (arr.offset + len(arr))
    views = np.frombuffer(bufs[1], dtype=np.uint8)[start:stop] if len(arr) else np.zeros(
        0, np.uint8)
    lengths = views.view(np.int32)[::VIEW_BYTES // 4]
    data = [b for b in bufs[2:] if b is not None]
    if not data or lengths.max(initial=0) <= VIEW_INLINE:  # every string inline: no bytes
        return views, np.zeros(1, np.uint8), np.zeros(1, np.int64)
    sizes = np.array([b.size for b in data], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    joined = np.frombuffer(data[0], dtype=np.uint8) if len(data) == 1 else np.concatenate(
        [np.frombuffer(b, dtype=np.uint8) for b in data])
    return views, joined, starts


def _span(o, s, i):  # type: ignore[no-untyped-def]
    """(whether the bytes are in ``o``, not ``d``; their start; their length) of string
    ``i`` of a column in kernel form ``(o, d, s)``: compiled only (see
    :func:`_span_overload`). (Not the bytes' array itself: returning an array from a
    compiled function costs reference counting on every string compared.)"""
    raise NotImplementedError


def _size(o):  # type: ignore[no-untyped-def]
    """Number of strings of a column in kernel form: compiled only."""
    raise NotImplementedError


def _rows(o: np.ndarray) -> int:
    """:func:`_size` outside compiled code."""
    return len(o) // VIEW_BYTES if o.dtype == np.uint8 else len(o) - 1


def _is_views(o: nb.types.Array) -> bool:
    return isinstance(o.dtype, nb.types.Integer) and o.dtype.bitwidth == 8


@nb.njit(inline="always")
def _int32_at(o, at):  # type: ignore[no-untyped-def]
    """The little-endian int32 at byte ``at`` of a view buffer (Arrow's lengths, buffer
    indexes and offsets are non-negative). (An unsigned offset: no wraparound check per
    load, so LLVM makes the four one load.)"""
    u = np.uint64(at)
    return np.int64(np.uint64(o[u]) | (np.uint64(o[u + np.uint64(1)]) << np.uint64(8))
                     | (np.uint64(o[u + np.uint64(2)]) << np.uint64(16))
                     | (np.uint64(o[u + np.uint64(3)]) << np.uint64(24)))


@overload(_span, inline="always")
def _span_overload(o, s, i):  # type: ignore[no-untyped-def]
    if _is_views(o):
        def views(o, s, i):  # type: ignore[no-untyped-def]
            at = VIEW_BYTES * i
            n = _int32_at(o, at)
            if n <= VIEW_INLINE:
                return True, at + 4, n
            return False, s[_int32_at(o, at + 8)] + _int32_at(o, at + 12), n
        return views

    def offsets(o, s, i):  # type: ignore[no-untyped-def]
        a = np.int64(o[i])
        return False, a, np.int64(o[i + 1]) - a
    return offsets


@overload(_size, inline="always")
def _size_overload(o):  # type: ignore[no-untyped-def]
    if _is_views(o):
        return lambda o: len(o) // VIEW_BYTES
    return lambda o: len(o) - 1


def _inline_cmp(o, a0, la, p, b0, lb):  # type: ignore[no-untyped-def]
    """:func:`_cmp` of two strings inline in their views (at most 12 bytes each, at
    ``a0`` of ``o`` and ``b0`` of ``p``): compiled only (see :func:`_inline_cmp_overload`).
    """
    raise NotImplementedError


@overload(_inline_cmp, inline="always")
def _inline_cmp_overload(o, a0, la, p, b0, lb):  # type: ignore[no-untyped-def]
    """Two comparisons of big-endian words (the first 8 bytes, then the last 4, each
    string's bytes past its length taken as zero), not a loop over bytes. Why: the id
    checks of validation compare ~100M pairs of such ids at 1M accounts. The loads have
    unsigned offsets (no wraparound check each), so LLVM combines each word's byte loads
    into one load and a byte swap."""
    def impl(o, a0, la, p, b0, lb):  # type: ignore[no-untyped-def]
        x, y = _be8(o, np.uint64(a0), la), _be8(p, np.uint64(b0), lb)
        if x == y:
            x = _be4(o, np.uint64(a0 + 8), max(la - 8, 0))
            y = _be4(p, np.uint64(b0 + 8), max(lb - 8, 0))
            if x == y:  # one is a prefix of the other (zero bytes compare as the padding)
                return -1 if la < lb else (1 if la > lb else 0)
        return -1 if x < y else 1
    return impl


_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@nb.njit(inline="always")
def _be8(o, at, n):  # type: ignore[no-untyped-def]
    """The 8 bytes at ``at`` (uint64) of ``o`` as a big-endian word, those past the first
    ``n`` zeroed."""
    w = ((np.uint64(o[at]) << np.uint64(56)) | (np.uint64(o[at + np.uint64(1)]) << np.uint64(48))
         | (np.uint64(o[at + np.uint64(2)]) << np.uint64(40))
         | (np.uint64(o[at + np.uint64(3)]) << np.uint64(32))
         | (np.uint64(o[at + np.uint64(4)]) << np.uint64(24))
         | (np.uint64(o[at + np.uint64(5)]) << np.uint64(16))
         | (np.uint64(o[at + np.uint64(6)]) << np.uint64(8)) | np.uint64(o[at + np.uint64(7)]))
    if n >= 8:
        return w
    return w & ~(_ONES >> np.uint64(8 * n)) if n > 0 else np.uint64(0)


@nb.njit(inline="always")
def _be4(o, at, n):  # type: ignore[no-untyped-def]
    """:func:`_be8` of 4 bytes."""
    w = ((np.uint64(o[at]) << np.uint64(24)) | (np.uint64(o[at + np.uint64(1)]) << np.uint64(16))
         | (np.uint64(o[at + np.uint64(2)]) << np.uint64(8)) | np.uint64(o[at + np.uint64(3)]))
    if n >= 4:
        return w
    return w & ~(_ONES >> np.uint64(32 + 8 * n)) if n > 0 else np.uint64(0)


@nb.njit(cache=True, nogil=True, _nrt=False)
def _eq(ao, ad, as_, i, bo, bd, bs, j):
    fa, a0, la = _span(ao, as_, i)
    fb, b0, lb = _span(bo, bs, j)
    if la != lb:
        return False
    if fa and fb:
        return _inline_cmp(ao, a0, la, bo, b0, lb) == 0
    for k in range(la):
        u = ao[a0 + k] if fa else ad[a0 + k]
        v = bo[b0 + k] if fb else bd[b0 + k]
        if u != v:
            return False
    return True


@nb.njit(cache=True, nogil=True, _nrt=False)
def _cmp(ao, ad, as_, i, bo, bd, bs, j):
    """Byte-wise comparison of string i of a with string j of b: -1, 0 or 1."""
    fa, a0, la = _span(ao, as_, i)
    fb, b0, lb = _span(bo, bs, j)
    if fa and fb:
        return _inline_cmp(ao, a0, la, bo, b0, lb)
    for k in range(min(la, lb)):
        u = ao[a0 + k] if fa else ad[a0 + k]
        v = bo[b0 + k] if fb else bd[b0 + k]
        if u != v:
            return -1 if u < v else 1
    return -1 if la < lb else (1 if la > lb else 0)


def _near_cmp(ao, ad, as_, i, bo, bd, bs, j):  # type: ignore[no-untyped-def]
    """:func:`_cmp`, inlined where the hot loops compare neighbours: compiled only (see
    :func:`_near_cmp_overload`)."""
    raise NotImplementedError


@overload(_near_cmp, inline="always")
def _near_cmp_overload(ao, ad, as_, i, bo, bd, bs, j):  # type: ignore[no-untyped-def]
    """Two ids inline in their views compared in place (:func:`_inline_cmp`), any others
    by a call of :func:`_cmp`. Why: a call passes the six buffers (~40 words), which
    costs more than the comparison; only the loops' first comparison is inlined, as
    inlining every one made compiling take minutes."""
    def impl(ao, ad, as_, i, bo, bd, bs, j):  # type: ignore[no-untyped-def]
        fa, a0, la = _span(ao, as_, i)
        fb, b0, lb = _span(bo, bs, j)
        if fa and fb:
            return _inline_cmp(ao, a0, la, bo, b0, lb)
        return _cmp(ao, ad, as_, i, bo, bd, bs, j)
    return impl


@nb.njit(cache=True, nogil=True, _nrt=False)
def _hash(o, d, s, i):
    """FNV-1a with a murmur3 finaliser (FNV's low bits alone cluster on id-like strings)."""
    f, a0, n = _span(o, s, i)
    h = np.uint64(14695981039346656037)
    for k in range(a0, a0 + n):
        h = (h ^ np.uint64(o[k] if f else d[k])) * np.uint64(1099511628211)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


@nb.njit(cache=True, nogil=True, _nrt=False)
def _sorted(o, d, s, strict):
    """Whether the strings ascend (byte order), strictly or not."""
    least = 1 if strict else 0  # _cmp(next, this) must be at least this
    for i in range(_size(o) - 1):  # noqa: SIM110 (numba: plain loop)
        if _near_cmp(o, d, s, i + 1, o, d, s, i) < least:
            return False
    return True


@nb.njit(cache=True, nogil=True, _nrt=False)
def _strictly_sorted(o, d, s):
    return _sorted(o, d, s, True)


#: How far back from its hint :func:`_find_sorted` first looks for a query that went back.
_BACK = 64


@nb.njit(cache=True, nogil=True, _nrt=False)
def _find_sorted(qo, qd, qs, j, ro, rd, rs, k, m, r):
    """(row of query ``j`` or -1, next hint) in a strictly sorted reference of ``m`` rows,
    from hint ``k`` (``r``: the sign of ref[k] - query): a few merge steps forward (sorted
    queries hit here), else galloping away from the hint and a binary search. Exact: a miss
    is a true absence."""
    c = k
    steps = 0
    while r < 0 and steps < 3 and c + 1 < m:
        c += 1
        steps += 1
        r = _cmp(ro, rd, rs, c, qo, qd, qs, j)
    if r == 0:
        return c, c
    if r > 0 and steps > 0:  # ref[c - 1] < q < ref[c]: absent
        return -1, c
    # the same by one comparison when the query did not go back before ref[c - 1]: sorted
    # queries absent from a sparse reference (payments against the invoices promises
    # name) then cost two comparisons each, not a binary search
    if r > 0 and (c == 0 or _cmp(ro, rd, rs, c - 1, qo, qd, qs, j) < 0):
        return -1, c
    if r < 0:  # beyond ref[c]: window doubling forward
        lo, step = c, 1
        while lo + step < m and _cmp(ro, rd, rs, lo + step, qo, qd, qs, j) < 0:
            lo += step
            step *= 2
        hi = min(lo + step, m)
    else:  # the query went backwards: first among the hint's last 64 rows (ids listed
        # in blocks, e.g. the invoices promises name account by account, go back a
        # little: 7 comparisons where a search of the whole 15M invoice ids of 300k
        # accounts took 24), else anywhere before them (one comparison more)
        lo, hi = -1, c
        if c > _BACK:
            if _cmp(ro, rd, rs, c - _BACK, qo, qd, qs, j) < 0:
                lo = c - _BACK
            else:
                hi = c - _BACK
    while hi - lo > 1:  # invariant: ref[lo] < q <= ref[hi] (ends are sentinels)
        mid = (lo + hi) // 2
        if _cmp(ro, rd, rs, mid, qo, qd, qs, j) < 0:
            lo = mid
        else:
            hi = mid
    if hi < m and _eq(qo, qd, qs, j, ro, rd, rs, hi):
        return hi, hi
    return -1, min(hi, m - 1)


@nb.njit(cache=True, nogil=True)
def _match_hinted(qo, qd, qs, ro, rd, rs, ref_sorted):
    """Index into the reference of each query string, -1 where not found this way.

    A strictly sorted reference is searched exactly (:func:`_find_sorted`). Otherwise the
    previous match and the next two rows are tried (ordered exports hit here) and the rest
    is left to :func:`_match_hashed`.
    """
    out = np.full(_size(qo), -1, np.int64)
    _hinted_into(out, qo, qd, qs, ro, rd, rs, ref_sorted)
    return out


@nb.njit(cache=True, nogil=True, _nrt=False)
def _hinted_into(out, qo, qd, qs, ro, rd, rs, ref_sorted):
    """:func:`_match_hinted`'s scan, into ``out`` (all -1). Compiled without reference
    counting, as are the kernels that compare (they allocate nothing): the comparisons
    are inlined, and counted references to the buffers at each would cost more than the
    comparison of two short ids (~3x at 1M accounts)."""
    n, m = _size(qo), _size(ro)
    if m == 0:
        return
    k = 0
    for j in range(n):
        if ref_sorted:
            r = _near_cmp(ro, rd, rs, k, qo, qd, qs, j)
            if r == 0:  # the hint itself (a repeated id), without a call
                out[j] = k
            elif r < 0 and k + 1 < m and _near_cmp(ro, rd, rs, k + 1, qo, qd, qs, j) == 0:
                k += 1  # the next one (ids listed in the reference's order), in place
                out[j] = k
            else:
                out[j], k = _find_sorted(qo, qd, qs, j, ro, rd, rs, k, m, r)
            continue
        for c in range(k, min(k + 3, m)):
            if _eq(qo, qd, qs, j, ro, rd, rs, c):
                out[j] = c
                k = c
                break


@nb.njit(cache=True, nogil=True)
def _match_hashed(qo, qd, qs, ro, rd, rs, out):
    """Fill the -1 entries of ``out``: a hash table over those query strings, then one
    sequential scan of the reference (first occurrence wins). Ids not found stay -1."""
    miss = np.flatnonzero(out < 0)
    size = 1
    while size < 2 * len(miss) + 2:
        size *= 2
    table = np.full(size, -1, np.int64)  # slot -> first missing query with that string
    nxt = np.full(len(miss), -1, np.int64)  # chain of further queries with the same string
    _hashed_into(out, miss, table, nxt, qo, qd, qs, ro, rd, rs)
    return out


@nb.njit(cache=True, nogil=True, _nrt=False)
def _hashed_into(out, miss, table, nxt, qo, qd, qs, ro, rd, rs):
    """:func:`_match_hashed`'s work on its allocated tables (without reference counting:
    see :func:`_hinted_into`)."""
    mask = np.uint64(len(table) - 1)
    for t in range(len(miss)):
        j = miss[t]
        s = _hash(qo, qd, qs, j) & mask
        while table[s] >= 0 and not _eq(qo, qd, qs, miss[table[s]], qo, qd, qs, j):
            s = (s + np.uint64(1)) & mask
        if table[s] >= 0:
            nxt[t] = nxt[table[s]]
            nxt[table[s]] = t
        else:
            table[s] = t
    for r in range(_size(ro)):
        s = _hash(ro, rd, rs, r) & mask
        while table[s] >= 0:
            t = table[s]
            if _eq(qo, qd, qs, miss[t], ro, rd, rs, r):
                while t >= 0:
                    if out[miss[t]] < 0:
                        out[miss[t]] = r
                    t = nxt[t]
                break
            s = (s + np.uint64(1)) & mask


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
    qo, qd, qs = _buffers(query)
    ro, rd, rs = _buffers(reference)
    ref_sorted = _strictly_sorted(ro, rd, rs) if reference_sorted is None else reference_sorted
    out = _match_hinted(qo, qd, qs, ro, rd, rs, ref_sorted)
    if not ref_sorted and _has_repeats(ro, rd, rs):
        # The hint window can land on a later copy of a repeated id: only the one scan of
        # the reference in order finds every first occurrence.
        out = _match_hashed(qo, qd, qs, ro, rd, rs, np.full(len(out), -1, np.int64))
    elif not ref_sorted and (out < 0).any():
        out = _match_hashed(qo, qd, qs, ro, rd, rs, out)
    return out


@nb.njit(cache=True, nogil=True, _nrt=False)
def _plain(o, d, s):
    """Whether no string holds a byte below 0x21 (a control character or a space) or
    0x7f, nor starts or ends with a byte above 0x7f (one of a multi-byte character)."""
    for i in range(_size(o)):
        f, a0, n = _span(o, s, i)
        for k in range(a0, a0 + n):
            b = o[k] if f else d[k]
            if b < 0x21 or b == 0x7F:
                return False
        if n and ((o[a0] if f else d[a0]) > 0x7F or (o[a0 + n - 1] if f else d[a0 + n - 1])
                  > 0x7F):
            return False
    return True


def plainly_printable(values: pl.Series) -> bool:
    """True when no id of ``values`` (polars strings) can hold a control character or
    whitespace at either end: none holds an ASCII control character (NUL included) nor a
    space, and none starts or ends with a non-ASCII character. False means "maybe" (a
    space inside a name, a non-ASCII last letter): the caller asks its exact question
    (a regex). Why: the regex costs ~20 ns an id (0.7 CPU s for the 30M ids of the
    invoices of 300k accounts), this one linear pass over the views ~1 ns. Nulls: False."""
    if values.dtype != pl.String or values.null_count():
        return False
    return bool(_plain(*_buffers(values)))


def sorted_unique(ids: pa.Array) -> pa.Array:
    """The distinct ids in ascending (byte) order: a reference :func:`match_ids` searches
    with ``reference_sorted=True`` (no check of it per match)."""
    distinct = pc.unique(ids)
    return distinct.take(pc.sort_indices(distinct))


def is_strictly_sorted(values: Strings) -> bool:
    """Whether null-free string ids are strictly ascending (byte order): the check
    :func:`match_ids` makes of its reference, for a caller matching several queries
    against one reference (pass the answer as ``reference_sorted``)."""
    return bool(_strictly_sorted(*_buffers(values)))


def _has_repeats(ro: np.ndarray, rd: np.ndarray, rs: np.ndarray) -> bool:
    """Whether an id occurs twice in the (unsorted) reference: each row matched against
    the reference itself finds an earlier row."""
    first = _match_hashed(ro, rd, rs, ro, rd, rs, np.full(_rows(ro), -1, np.int64))
    return bool((first != np.arange(len(first))).any())


def ascending(keys: pl.Series) -> bool:
    """Whether ``keys`` ascend (byte order; nulls ignored pairwise): the ``table_sorted``
    of :func:`lookup`."""
    return _is_sorted(keys)


def _is_sorted(keys: pl.Series, *, in_place: bool = True) -> bool:
    """Ascending, nulls anywhere ignored pairwise (one linear pass).

    ``in_place``: null-free strings are compared where they are (:func:`_sorted`), not
    through polars' comparison with a shifted copy of the keys (16 bytes a row) and two
    masks, ~1 GB at 50M payments during validation's peak; polars' costs ~3x less CPU, so
    a caller that copies the keys anyway passes False."""
    if len(keys) < 2:
        return True
    if in_place and keys.dtype == pl.String and keys.null_count() == 0:
        return bool(_sorted(*_buffers(keys), False))
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
