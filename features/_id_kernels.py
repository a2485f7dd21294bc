"""The compiled kernels of :mod:`features.keys` (private: import ``features.keys``).

Strings in *kernel form* ``(o, d, s)`` (:func:`buffers`: Arrow offsets or polars' 16-byte
string views, read where they are), compared byte-wise: equality, order, a hash, the
hinted scan and the hash-table fallback of ``features.keys.match_ids``, and the
printable-id check. Every kernel is specialised per array type of its arguments (views as
uint8, offsets as int32 or int64) and cached on disk (``cache=True``; ``pipelines.warm``
compiles the combinations the nightly meets at install time).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from numba.extending import overload

#: The id columns the matchers take: pandas, Arrow (chunked or not) or polars strings.
Strings = pd.Series | pa.Array | pa.ChunkedArray | pl.Series


#: Bytes per row of Arrow's (and polars') string view layout: int32 length, then either
#: the string itself (at most 12 bytes, zero-padded) or a 4-byte prefix, the int32 index
#: of a data buffer and the int32 offset of the string in it.
VIEW_BYTES = 16
VIEW_INLINE = 12


def buffers(values: Strings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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

    The three arrays are read-only views whatever their source (no copy). Why: numba
    compiles a kernel per array type, and writable and read-only arrays are two types:
    polars ids of at most 12 bytes (``d`` a fresh array) and longer ones (``d`` polars'
    read-only buffer) compiled every kernel again, 20-30 CPU s mid-run for the type
    ``pipelines.warm`` had not met (its ids are short).
    """
    o, d, s = _buffers(values)
    return _read_only(o), _read_only(d), _read_only(s)


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only view (the same memory)."""
    view = a.view()
    view.flags.writeable = False
    return view


def _buffers(values: Strings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`buffers`, the arrays as they come (see there)."""
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
    """:func:`buffers` of a ``string_view`` array (see there)."""
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
def ascends(o, d, s, strict):
    """Whether the strings ascend (byte order), strictly or not."""
    least = 1 if strict else 0  # _cmp(next, this) must be at least this
    for i in range(_size(o) - 1):  # noqa: SIM110 (numba: plain loop)
        if _near_cmp(o, d, s, i + 1, o, d, s, i) < least:
            return False
    return True


def strictly_sorted(o: np.ndarray, d: np.ndarray, s: np.ndarray) -> bool:
    """:func:`ascends`, strictly. (Not a kernel of its own: compiled, it passed ``True``
    as a literal, so ``ascends`` was compiled twice per column type, ~5 CPU s each.)"""
    return bool(ascends(o, d, s, True))


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
def match_hinted(qo, qd, qs, ro, rd, rs, ref_sorted):
    """Index into the reference of each query string, -1 where not found this way.

    A strictly sorted reference is searched exactly (:func:`_find_sorted`). Otherwise the
    previous match and the next two rows are tried (ordered exports hit here) and the rest
    is left to :func:`match_hashed`.
    """
    out = np.full(_size(qo), -1, np.int64)
    _hinted_into(out, qo, qd, qs, ro, rd, rs, ref_sorted)
    return out


@nb.njit(cache=True, nogil=True, _nrt=False)
def _hinted_into(out, qo, qd, qs, ro, rd, rs, ref_sorted):
    """:func:`match_hinted`'s scan, into ``out`` (all -1). Compiled without reference
    counting, as are the kernels that compare (they allocate nothing): the comparisons
    are inlined, and counted references to the buffers at each would cost more than the
    comparison of two short ids (~3x at 1M accounts)."""
    n, m = _size(qo), _size(ro)
    if m == 0:
        return
    k = np.int64(0)  # (not the literal 0: _find_sorted was compiled for it too)
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
def match_hashed(qo, qd, qs, ro, rd, rs, out):
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
    """:func:`match_hashed`'s work on its allocated tables (without reference counting:
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


@nb.njit(cache=True, nogil=True, _nrt=False)
def plain(o, d, s):
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


def has_repeats(ro: np.ndarray, rd: np.ndarray, rs: np.ndarray) -> bool:
    """Whether an id occurs twice in the (unsorted) reference: each row matched against
    the reference itself finds an earlier row."""
    first = match_hashed(ro, rd, rs, ro, rd, rs, np.full(_rows(ro), -1, np.int64))
    return bool((first != np.arange(len(first))).any())
