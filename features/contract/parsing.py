"""Turning raw cells into values the way a person reading the export would, or refusing.

Used by :mod:`features.contract.rules`: :func:`parse_columns` adds the parsed value of
every contract column next to the raw one, plus flags the rules read; nothing here drops a
row. (Header names are matched in :mod:`features.contract.headers`.)

- Missing values: :data:`~features.contract.options.MISSING_TOKENS`, case-insensitive.
- Numbers: ``.`` or ``,`` as the decimal separator, the other one as thousands grouping.
  The separator is set or detected per file from values that read only one way; while it
  is unknown, "2.500" and "1,234" are *ambiguous* (never guessed).
- Dates: ISO ``YYYY-MM-DD``, or ``YYYYMMDD`` digits (text, or integers in Parquet: never
  days since 1970), or one ``strftime`` format set for the table.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

import polars as pl

from features.contract.book import DATE_DTYPE, REQUIRED, columns_of
from features.contract.options import ReadOptions
from features.keys import plainly_printable

#: Free text kept exactly as written (only a blank cell is missing): "NA" may be a region
#: (North America) and "None" a reason. Other text (ids, codes) honours missing tokens.
DESCRIPTIVE: Final = frozenset({"name", "segment", "region", "reason", "method",
                                 "contact_name"})
#: Optional text the worklist and its sentences show: a NUL there is ``control_character``
#: (the store cannot hold it). Other optional text is never written there.
SHOWN_TEXT: Final = frozenset({"name", "segment", "region", "reason", "currency",
                                "contact_name", "email", "phone", "language"})
# Any control character, or whitespace at either end (one regex pass tells both).
_SUSPECT: Final = r"[\x00-\x1f\x7f]|^\s|\s$"
_CONTROL: Final = r"[\x00-\x1f\x7f]"

# ------------------------------------------------------------------------ missing values


def _case_variants(token: str) -> set[str]:
    pools = [(ch.upper(), ch.lower()) if ch.isalpha() else (ch,) for ch in token]
    return {"".join(p) for p in itertools.product(*pools)}


def missing_token(text: pl.Expr, tokens: tuple[str, ...]) -> pl.Expr:
    """True where the (stripped) text is a missing-value token, case-insensitively.

    Matching every case spelling exactly is several times cheaper than upper-casing every
    cell (measured: ~0.04 s per 10M ids).
    """
    if sum(2 ** sum(ch.isalpha() for ch in t) for t in tokens) <= 4096:
        spelled = sorted(set().union(*(_case_variants(t) for t in tokens)))
        return text.is_in(spelled)
    longest = max(len(t) for t in tokens)
    return (text.str.len_chars() <= longest) & text.str.to_uppercase().is_in(list(tokens))


# ------------------------------------------------------------------------ numbers

# One separator, 1-3 digits before (no leading 0) and exactly 3 after: thousands or
# decimals. "0.500" and "12345.678" are not ambiguous (no thousands group looks so).
AMBIGUOUS: Final = r"^[+-]?[1-9]\d{0,2}[.,]\d{3}$"
_COMMA_GROUPED: Final = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"  # 1,234.5  1,234,567
_DOT_GROUPED: Final = r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$"  # 1.234,5  1.234.567
_COMMA_DECIMAL: Final = r"^[+-]?\d*,\d+$"  # 12,5  0,500
_DOT_DECIMAL: Final = r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$"  # 12.5  0.500
_SAMPLE: Final = 10_000


def _evidence(values: pl.Series) -> tuple[bool, bool]:
    """(some value reads only with a '.' decimal, some only with ',')."""
    if values.is_empty():
        return False, False
    frame = values.to_frame("t")
    t = pl.col("t")
    plain = ~t.str.contains(AMBIGUOUS)
    dot = (t.str.contains(_DOT_DECIMAL) & plain) | (t.str.contains(_COMMA_GROUPED) & plain)
    comma = (t.str.contains(_COMMA_DECIMAL) & plain) | (t.str.contains(_DOT_GROUPED) & plain)
    out = frame.select(dot.any().alias("d"), comma.any().alias("c")).row(0)
    return bool(out[0]), bool(out[1])


def detect_decimal(texts: list[pl.Series], *, commas: bool) -> tuple[str | None, str]:
    """(decimal separator or None, how) from a file's number columns (stripped text);
    ``commas``: whether any of their cells holds a comma.

    ``how``: ``"detected"``, ``"undetermined"`` (no value tells) or ``"conflicting"``
    (values read both ways: each unambiguous value is read as written, ambiguous ones are
    quarantined). Cheap when a sample already shows '.' decimals and no cell has a comma.
    """
    texts = [t for t in texts if not t.is_empty()]
    if not texts:
        return None, "undetermined"
    if not commas and any(_evidence(t.head(_SAMPLE))[0] for t in texts):
        return ".", "detected"
    # Only cells with a separator can tell (whole numbers say nothing).
    found = [_evidence(t.filter(t.str.contains(r"[.,]"))) for t in texts]
    dot, comma = any(d for d, _ in found), any(c for _, c in found)
    if dot and comma:
        return None, "conflicting"
    if dot or comma:
        return ("." if dot else ","), "detected"
    return None, "undetermined"


def number(text: pl.Expr, decimal: str | None, *, commas: bool = True) -> pl.Expr:
    """Float64 of stripped number text under ``decimal`` (None: each value as it reads).

    Grouping separators are removed only where they form real thousands groups, so "12.50"
    in a ','-decimal file and "1,2,3" anywhere are unparseable (null), not misread.
    ``commas=False`` (no cell has a comma, '.' decimal) is the plain cast.
    """
    if decimal == "." and not commas:
        return text.cast(pl.Float64, strict=False)
    if decimal == ".":
        grouped = pl.when(text.str.contains(_COMMA_GROUPED)).then(
            text.str.replace_all(",", "", literal=True))
        return pl.when(text.str.contains(",", literal=True)).then(grouped).otherwise(
            text).cast(pl.Float64, strict=False)
    if decimal == ",":
        grouped = pl.when(text.str.contains(_DOT_GROUPED)).then(
            text.str.replace_all(".", "", literal=True))
        ungrouped = pl.when(text.str.contains(".", literal=True)).then(grouped).otherwise(text)
        return ungrouped.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    by_itself = (
        pl.when(text.str.contains(AMBIGUOUS)).then(None)
        .when(text.str.contains(_COMMA_GROUPED)).then(text.str.replace_all(",", "",
                                                                           literal=True))
        .when(text.str.contains(_DOT_GROUPED)).then(
            text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
        .when(text.str.contains(_COMMA_DECIMAL)).then(text.str.replace(",", ".", literal=True))
        .otherwise(text)
    )
    return by_itself.cast(pl.Float64, strict=False)


def ambiguous(text: pl.Expr, decimal: str | None) -> pl.Expr:
    """True where a number reads two ways and the file's decimal separator is unknown."""
    if decimal is not None:
        return pl.lit(False)
    return text.str.contains(AMBIGUOUS).fill_null(False)


# ------------------------------------------------------------------------ dates

ISO: Final = "%Y-%m-%d"
DIGITS: Final = "%Y%m%d"
#: Readable names of the date formats (for messages and the read summary).
FORMAT_NAMES: Final = {ISO: "YYYY-MM-DD", DIGITS: "YYYYMMDD"}


def text_date(text: pl.Expr, date_format: str | None, *, digits: bool = False) -> pl.Expr:
    """Date of stripped text: ``date_format`` if set, else ISO; ``digits=True``: the
    ``YYYYMMDD`` reading (8 digits only), tried where ISO failed."""
    if digits:
        return pl.when(text.str.contains(r"^\d{8}$")).then(
            text.str.strptime(pl.Date, DIGITS, strict=False))
    return text.str.strptime(pl.Date, date_format or ISO, strict=False)


def typed_date(src: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Date of a typed (Parquet) column: temporal cast; integers (and whole floats) as
    ``YYYYMMDD`` digits, anything else null (unparseable), never days since 1970."""
    if dtype.is_temporal():
        return src.cast(pl.Date)
    whole = src if dtype.is_integer() else pl.when(src == src.round(0)).then(src)
    digits = pl.when(whole.is_between(10000101, 99991231)).then(whole).cast(pl.Int64)
    return digits.cast(pl.String).str.strptime(pl.Date, DIGITS, strict=False)


def date_wording(date_format: str | None) -> str:
    """How the expected format reads in a message."""
    if date_format is None:
        return "a YYYY-MM-DD or YYYYMMDD date"
    return f"a date in the format {date_format}"


# ------------------------------------------------------------------------ columns

def value(col: str) -> str:
    """Name of the internal column holding the parsed value of contract column ``col``."""
    return f"__v_{col}"


def _kind(dtype: str) -> str:
    if dtype == DATE_DTYPE:
        return "date"
    if dtype == "float64":
        return "float"
    if dtype == "Int64":
        return "int"
    return "text"


def _as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A typed source column as text: whole floats without ".0" (an id 1.0 is "1")."""
    if dtype == pl.String:
        return expr
    if dtype.is_float():
        whole = pl.when(expr == expr.round(0)).then(expr.cast(pl.Int64, strict=False))
        return pl.coalesce(whole.cast(pl.String), expr.cast(pl.String))
    return expr.cast(pl.String)


@dataclass(frozen=True)
class Parsed:
    """What parsing one table found: the decimal separator and the date formats seen."""

    decimal: str | None = None
    decimal_how: str | None = None
    date_formats: tuple[str, ...] = ()


def parse_columns(
    frame: pl.DataFrame, table: str, options: ReadOptions
) -> tuple[pl.DataFrame, dict[str, pl.Expr], Parsed]:
    """Add parsed ``__v_<col>`` columns; return the frame, per-column flags, and facts.

    Flags (boolean columns the rule chains read): ``missing:<col>`` (empty, null or a
    missing token), ``bad:<col>`` (present but unparseable), ``control:<col>`` (a control
    character) and ``ambiguous:<col>`` (a number that reads two ways). String columns are
    parsed; typed columns (Parquet) are only cast, which is cheap.
    """
    present = {c: d for c, d in columns_of(table).items() if c in frame.columns}
    tokens = options.missing
    texts: dict[str, pl.Expr] = {}
    control: dict[str, pl.Expr] = {}
    # One pass over the string columns asks, per column, whether any cell needs attention
    # (one select: polars scans the columns in parallel). Optional text (codes,
    # descriptive text, the optional ids of payments) is kept as written, which saves a
    # copy of every string; of it, only text the worklist shows is searched for a NUL
    # (which no database stores; a byte search is several times cheaper than the regex
    # pass that parsed columns and required ids get for control characters and padding).
    strings = [c for c in present if frame.schema[c] == pl.String]
    as_written = [c for c in strings if _kind(present[c]) == "text" and c not in REQUIRED[table]]
    # Optional text held as a Categorical (``raw_checks.as_categories``) is kept as written
    # too, without ever becoming one string per row: its probe reads its distinct values.
    coded = [c for c in present if frame.schema[c] == pl.Categorical
             and _kind(present[c]) == "text" and c not in REQUIRED[table]]
    # A column of plainly printable ids (``keys.plainly_printable``: one cheap pass over
    # their bytes) has no cell the regex would find: it is not asked.
    plain = {c for c in strings if c not in as_written and plainly_printable(
        frame.get_column(c))}
    probes = [
        pl.col(c).cast(pl.Binary).bin.contains(b"\x00").any().alias(c) if c in as_written
        else pl.col(c).str.contains(_SUSPECT).any().alias(c)
        for c in strings if (c not in as_written or c in SHOWN_TEXT) and c not in plain
    ]
    # Numbers: a comma anywhere means the grouping-aware parse (and decimal detection).
    probes += [pl.col(c).str.contains(",", literal=True).any().alias(f"comma:{c}")
               for c in strings if _kind(present[c]) in ("float", "int")]
    needs = frame.select(probes).row(0, named=True) if probes else {}
    needs |= dict.fromkeys(plain, False)
    needs |= {c: bool(frame.get_column(c).unique().cast(pl.String)
                      .str.contains("\x00", literal=True).any())
              for c in coded if c in SHOWN_TEXT}
    for col, dtype in present.items():
        src_type, kind = frame.schema[col], _kind(dtype)
        if kind != "text" and (src_type.is_temporal() or src_type.is_numeric()):
            continue  # typed: cast below, no text
        if col in coded:
            texts[col] = pl.col(col)
            if needs.get(col):
                control[col] = pl.col(col).cast(pl.String).str.contains("\x00", literal=True)
        elif src_type != pl.String:
            texts[col] = _as_text(pl.col(col), src_type).str.strip_chars()
        elif col in as_written:
            texts[col] = pl.col(col)
            if needs.get(col):
                control[col] = pl.col(col).str.contains("\x00", literal=True)
        elif needs[col]:
            texts[col] = pl.col(col).str.strip_chars()
            if kind == "text":
                control[col] = texts[col].str.contains(_CONTROL)
        else:
            texts[col] = pl.col(col)  # nothing to strip, no control character: no copy
    frame = frame.with_columns(**{f"__t_{c}": e for c, e in texts.items()})
    numbers = [c for c in present if _kind(present[c]) in ("float", "int") and c in texts]
    decimal, decimal_how = options.decimal, "set" if options.decimal else None
    commas = any(needs.get(f"comma:{c}", True) for c in numbers)
    if numbers and decimal is None:
        series = [frame.get_column(f"__t_{c}") for c in numbers]
        decimal, decimal_how = detect_decimal(series, commas=commas)
    formats: set[str] = set()
    missing_of = {
        c: pl.col(f"__t_{c}").is_null() | (
            (pl.col(f"__t_{c}") == "") if c in DESCRIPTIVE else missing_token(
                pl.col(f"__t_{c}"), tokens))
        for c in texts
    }
    # Whether a text column has missing cells, asked in one parallel pass: a when/then
    # (a copy of the column) only where one is.
    text_cols = [c for c in texts if _kind(present[c]) == "text"]
    has_missing = frame.select(
        *[missing_of[c].any().alias(c) for c in text_cols]).row(0, named=True) if (
        text_cols) else {}
    values, flags, text_dates = [], {}, []
    for col, dtype in present.items():
        kind, src_type = _kind(dtype), frame.schema[col]
        src, val = pl.col(col), pl.col(value(col))
        text = pl.col(f"__t_{col}") if col in texts else None
        bad, amb = pl.lit(False), pl.lit(False)
        if text is None:  # typed source
            missing = src.is_null()
            if kind == "date":
                parsed = typed_date(src, src_type)
                bad = ~missing & val.is_null()
                if not src_type.is_temporal():
                    formats.add("YYYYMMDD")
            else:
                parsed = src.cast(pl.Float64)
                missing = val.is_null() | val.is_nan()
                bad = val.is_infinite()
        else:
            missing = missing_of[col]
            if kind == "text":
                parsed = pl.when(missing).then(None).otherwise(text) if has_missing[col] else text
                missing = val.is_null()
            elif kind == "date":
                parsed = text_date(text, options.date_format)
                text_dates.append(col)
                bad = ~missing & val.is_null()
            else:
                parsed = number(text, decimal, commas=commas)
                amb = ~missing & ambiguous(text, decimal)
                bad = ~missing & ~amb & (val.is_null() | ~val.is_finite())
        if kind == "int":
            bad = bad | (~missing & (val != val.round(0)))
        values.append(parsed.alias(value(col)))
        flags[f"__m_{col}"] = missing
        flags[f"__b_{col}"] = bad
        if text is not None and kind in ("float", "int") and decimal is None:
            flags[f"__a_{col}"] = amb
        if col in control:
            flags[f"__c_{col}"] = control[col]
    frame = frame.with_columns(values)
    if text_dates:
        frame, seen = _second_chance(frame, text_dates, missing_of, options.date_format)
        formats |= seen
    frame = frame.with_columns(**flags).drop([f"__t_{c}" for c in texts])
    ints = [c for c, d in present.items() if _kind(d) == "int"]
    if ints:  # whole numbers only; the rest is flagged above
        frame = frame.with_columns(
            pl.when(pl.col(f"__b_{c}") | pl.col(f"__m_{c}")).then(None)
            .otherwise(pl.col(value(c))).cast(pl.Int64).alias(value(c))
            for c in ints
        )
    names = {f"missing:{c}": pl.col(f"__m_{c}") for c in present}
    names |= {f"bad:{c}": pl.col(f"__b_{c}") for c in present}
    names |= {f"ambiguous:{c}": pl.col(f"__a_{c}") for c in present if f"__a_{c}" in flags}
    names |= {f"control:{c}": pl.col(f"__c_{c}") for c in control}
    found = Parsed(decimal=decimal if numbers else None,
                   decimal_how=decimal_how if numbers else None,
                   date_formats=tuple(sorted(formats)))
    return frame, names, found


def _second_chance(
    frame: pl.DataFrame, dates: list[str], missing_of: dict[str, pl.Expr],
    date_format: str | None,
) -> tuple[pl.DataFrame, set[str]]:
    """Text dates parsed once (ISO or the set format) get a ``YYYYMMDD`` reading where
    that failed; returns the frame and the names of the formats that read something.

    Asked on the materialised dates in one pass, so the common all-ISO file parses once.
    """
    probe = frame.select(
        *[(~missing_of[c] & pl.col(value(c)).is_null()).any().alias(f"failed:{c}")
          for c in dates],
        *[pl.col(value(c)).is_not_null().any().alias(f"read:{c}") for c in dates],
    ).row(0, named=True)
    formats = set()
    if any(probe[f"read:{c}"] for c in dates):
        formats.add(FORMAT_NAMES.get(date_format or ISO, date_format or ISO))
    retry = [c for c in dates if probe[f"failed:{c}"]] if date_format is None else []
    if retry:
        before = sum(frame.get_column(value(c)).null_count() for c in retry)
        frame = frame.with_columns(
            pl.coalesce(pl.col(value(c)), text_date(pl.col(f"__t_{c}"), None, digits=True))
            .alias(value(c)) for c in retry)
        if sum(frame.get_column(value(c)).null_count() for c in retry) < before:
            formats.add(FORMAT_NAMES[DIGITS])
    return frame, formats
