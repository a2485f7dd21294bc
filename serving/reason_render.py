"""Reason sentences: a template rendered over the accounts it explains (vectorised).

The formatting half of the reason codes (:mod:`serving.reasons` chooses which feature
explains which account; this module writes the sentences). Template fields and formats are
described in :mod:`serving.reasons`. Numbers are formatted with numpy arithmetic and Arrow
string kernels, never Python's ``format`` per value, so 4M reasons a night stay cheap.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from serving._reason_table import TEMPLATES, Template

# ------------------------------------------------------------------- formatting
# Number formatting is done with numpy arithmetic and Arrow string kernels: Python's
# format() costs ~1-2 us per value on the target machine, too much for 4M reasons a night.


def _digits(v: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(v.astype(np.int64)), pa.string())


def _sign(neg: np.ndarray, text: pa.Array | str) -> pa.Array:
    return pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", text, ""), text)


def _fmt_int(v: np.ndarray, currency: str) -> pa.Array:
    return _digits(np.rint(v.astype(np.float64)))


def _fmt_abs(v: np.ndarray, currency: str) -> pa.Array:
    return _digits(np.rint(np.abs(v.astype(np.float64))))


def _fmt_pct(v: np.ndarray, currency: str) -> pa.Array:
    return pc.binary_join_element_wise(_digits(np.rint(100 * v.astype(np.float64))), "%", "")


def _fmt_dec(v: np.ndarray, currency: str) -> pa.Array:
    x = v.astype(np.float64)
    tenths = np.rint(np.abs(x) * 10).astype(np.int64)
    text = pc.binary_join_element_wise(_digits(tenths // 10), ".", _digits(tenths % 10), "")
    return _sign((x < 0) & (tenths > 0), text)


def _fmt_money(v: np.ndarray, currency: str) -> pa.Array:
    x = np.rint(v.astype(np.float64)).astype(np.int64)
    a = np.abs(x)
    n_groups = np.maximum(1, np.ceil(np.log10(np.maximum(a, 1) + 1) / 3).astype(np.int64))
    out: pa.Array = pa.array([""] * len(a), pa.string())
    for k in range(int(n_groups.max(initial=1)) - 1, -1, -1):
        group = _digits((a // 1000**k) % 1000)
        padded = pc.binary_join_element_wise(",", pc.utf8_lpad(group, width=3, padding="0"), "")
        piece = pc.if_else(pa.array(n_groups - 1 == k), group,
                           pc.if_else(pa.array(n_groups - 1 > k), padded, ""))
        out = pc.binary_join_element_wise(out, piece, "")
    return _sign(x < 0, pc.binary_join_element_wise(currency, out, ""))


def fmt_str(v: np.ndarray, currency: str) -> pa.Array:
    # Quotes, backslashes and control characters are replaced here, at the only place
    # free text (ids, category labels) enters a sentence, so sentences are JSON-safe.
    text = pa.array(pd.Series(v, dtype=object).astype("str").to_numpy(dtype=object),
                    pa.string(), from_pandas=True)
    text = pc.replace_substring(pc.replace_substring(text, '"', "'"), "\\", "/")
    return pc.replace_substring_regex(text, "[\\x00-\\x1f]", " ")


def _fmt_absdec(v: np.ndarray, currency: str) -> pa.Array:
    return _fmt_dec(np.abs(v.astype(np.float64)), currency)


def _counted(singular: str, plural: str) -> Callable[[np.ndarray, str], pa.Array]:
    def fmt(v: np.ndarray, currency: str) -> pa.Array:
        n = np.rint(np.abs(v.astype(np.float64)))
        noun = pc.if_else(pa.array(n == 1), f" {singular}", f" {plural}")
        return pc.binary_join_element_wise(_digits(n), noun, "")

    return fmt


def _fmt_span(v: np.ndarray, currency: str) -> pa.Array:
    """A duration in days as days (< 61), months (< 730) or years with one decimal."""
    d = np.abs(v.astype(np.float64))
    days = _counted("day", "days")(d, currency)
    months = _counted("month", "months")(np.rint(d / 30.44), currency)
    years = pc.binary_join_element_wise(_fmt_dec(d / 365.25, currency), " years", "")
    return pc.if_else(pa.array(d < 61), days, pc.if_else(pa.array(d < 730), months, years))


FORMATS: dict[str, Callable[[np.ndarray, str], pa.Array]] = {
    "int": _fmt_int,
    "abs": _fmt_abs,
    "pct": _fmt_pct,
    "money": _fmt_money,
    "dec": _fmt_dec,
    "absdec": _fmt_absdec,
    "days": _counted("day", "days"),
    "span": _fmt_span,
    "invoices": _counted("invoice", "invoices"),
    "disputes": _counted("dispute", "disputes"),
    "str": fmt_str,
}
#: Field computed from the template's ``count_of`` column rather than read from the frame.
COUNT_FIELD = "count"


@dataclass(frozen=True)
class _Compiled:
    """A template text split into literal pieces and (column, format) fields."""

    pieces: tuple[str | tuple[str, str], ...]
    columns: tuple[str, ...] = field(default=())


def compile_template(text: str, feature: str) -> _Compiled:
    pieces: list[str | tuple[str, str]] = []
    cols: list[str] = []
    for literal, name, spec, _ in string.Formatter().parse(text):
        if literal:
            pieces.append(literal)
        if name is not None:
            col = feature if name == "v" else name
            fmt = spec or "int"
            if col == COUNT_FIELD:
                col = f"{COUNT_FIELD}:{feature}"
            if fmt not in FORMATS:
                raise ValueError(f"template of {feature!r}: unknown format {fmt!r}")
            pieces.append((col, fmt))
            cols.append(col)
    return _Compiled(tuple(pieces), tuple(dict.fromkeys(cols)))


def _render(compiled: _Compiled, values: Mapping[str, np.ndarray], n: int, cur: str) -> pa.Array:
    parts: list[pa.Array | str] = []
    for piece in compiled.pieces:
        if isinstance(piece, str):
            parts.append(piece)
        else:
            col, fmt = piece
            parts.append(FORMATS[fmt](values[col], cur))
    if all(isinstance(p, str) for p in parts):
        return pa.array(["".join(parts)] * n, pa.string())  # type: ignore[arg-type]
    return pc.binary_join_element_wise(*parts, "")


def _isna(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return ~np.isfinite(values)
    return np.asarray(pd.isna(values), dtype=bool)


def _scatter(chunks: list[tuple[np.ndarray, pa.Array]], n: int) -> pa.Array:
    """Arrays rendered for disjoint row subsets -> one length-n array (null elsewhere)."""
    if not chunks:
        return pa.nulls(n, pa.string())
    rows = np.concatenate([r for r, _ in chunks])
    data = pa.concat_arrays([c for _, c in chunks])
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    return data.take(pa.array(pos, mask=pos < 0))


def render_reason(
    feature: str,
    values: Mapping[str, np.ndarray],
    *,
    currency: str = "$",
    templates: Mapping[str, Template] = TEMPLATES,
) -> pa.Array:
    """Sentences of ``feature``'s template for aligned value arrays (Arrow strings).

    ``values`` maps column names (the feature and any other fields the template uses) to
    equally long arrays. Rows whose own value is missing get the ``if_missing`` sentence,
    or null when the template has none (the caller then moves to the next reason).
    """
    tmpl = templates[feature]
    own = np.asarray(values[feature])
    n = len(own)
    if tmpl.count_of is not None:
        values = {**values, f"{COUNT_FIELD}:{feature}": own * np.asarray(values[tmpl.count_of])}
    missing = _isna(own)
    todo = ~missing
    chunks: list[tuple[np.ndarray, pa.Array]] = []
    for predicate, text in (*tmpl.variants, (None, tmpl.text)):
        if predicate is None:
            rows = todo
        else:
            with np.errstate(invalid="ignore"):
                rows = todo & np.asarray(predicate(own), dtype=bool)
        todo = todo & ~rows
        if rows.any():
            chunks.append(_render_rows(compile_template(text, feature), values, rows, currency))
    if tmpl.if_missing is not None and missing.any():
        chunks.append(_render_rows(compile_template(tmpl.if_missing, feature), values, missing,
                                   currency))
    out = _scatter(chunks, n)
    if tmpl.detail:
        detail = compile_template(tmpl.detail, feature)
        ok = ~missing
        for c in detail.columns:
            ok &= ~_isna(np.asarray(values[c])) if c in values else np.zeros(n, bool)
        if ok.any():
            extra = _scatter([_render_rows(detail, values, ok, currency)], n)
            joined = pc.binary_join_element_wise(out, pc.fill_null(extra, ""), "")
            out = pc.if_else(pa.array(ok), joined, out)
    return out


def _render_rows(
    compiled: _Compiled, values: Mapping[str, np.ndarray], rows: np.ndarray, cur: str
) -> tuple[np.ndarray, pa.Array]:
    idx = np.flatnonzero(rows)
    sub = {c: np.asarray(values[c])[idx] for c in compiled.columns}
    return idx, _render(compiled, sub, len(idx), cur)


def template_columns(feature: str, tmpl: Template) -> list[str]:
    """Frame columns a template reads (its own, other fields, the ``count_of`` column)."""
    texts = [tmpl.text, *(t for _, t in tmpl.variants)]
    texts += [t for t in (tmpl.detail, tmpl.if_missing) if t]
    cols = [feature, *([tmpl.count_of] if tmpl.count_of else [])]
    for t in texts:
        cols += [c for c in compile_template(t, feature).columns
                 if not c.startswith(COUNT_FIELD + ":")]
    return list(dict.fromkeys(cols))


# ------------------------------------------------------------------- JSON


def json_str(values: pa.Array) -> pa.Array:
    """JSON string literals of text made JSON-safe by :func:`fmt_str` (null -> null)."""
    return pc.if_else(pc.is_null(values), "null",
                      pc.binary_join_element_wise('"', values, '"', ""))


def json_number(values: np.ndarray) -> pa.Array:
    """Floats rounded to 6 decimals as JSON numbers (missing or infinite -> null)."""
    v = np.round(np.asarray(values, dtype=np.float64), 6)
    finite = np.isfinite(v)
    text = pc.cast(pa.array(np.where(finite, v, 0.0)), pa.string())
    return pc.if_else(pa.array(finite), text, "null")
