"""Named validation rules of the data contract (DESIGN section 3), evaluated with polars.

This module is the engine behind :mod:`features.contract.validation`; use that module's API.

Row rules (exact names, in priority order: a bad row is assigned the FIRST rule it breaks):

=========================  ==================================================================
``missing_value``           a required field is empty (blank after stripping, or null)
``unparseable_date``        a date field is not an ISO ``YYYY-MM-DD`` date (typed datetimes
                            are accepted and truncated to the day)
``unparseable_amount``      a numeric field (amount, credit_limit, terms_days) is not a finite
                            number (terms_days must also be whole)
``non_positive_amount``     an invoice or payment amount is <= 0
``due_before_issue``        invoice due_date < issue_date
``duplicate_id``            repeated invoice_id / payment_id / account_id; the first occurrence
                            (in file order, among rows that broke no earlier rule) is kept
``unknown_invoice``         payment/dispute whose invoice_id is not among the invoice rows read
``parent_quarantined``      payment/dispute whose invoice was quarantined (kept out with it)
``payment_before_issue``    payment_date < the invoice's issue_date
``dispute_before_issue``    dispute opened_date < the invoice's issue_date
``resolved_before_opened``  dispute resolved_date < opened_date
=========================  ==================================================================

Whole-file rules raise :class:`DataContractError`: ``missing_file``, ``missing_column``,
``empty_file``, ``bad_encoding``, ``mixed_currency``, ``too_many_bad_rows`` (and
``ambiguous_file`` when a folder holds the same table twice, e.g. CSV and Parquet).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from features.contract.book import DATE_DTYPE, REQUIRED, columns_of
from features.keys import first_occurrence, lookup

RULES: Final = (
    "missing_value",
    "unparseable_date",
    "unparseable_amount",
    "non_positive_amount",
    "due_before_issue",
    "duplicate_id",
    "unknown_invoice",
    "parent_quarantined",
    "payment_before_issue",
    "dispute_before_issue",
    "resolved_before_opened",
)
FILE_RULES: Final = (
    "missing_file",
    "missing_column",
    "empty_file",
    "bad_encoding",
    "mixed_currency",
    "too_many_bad_rows",
    "ambiguous_file",
)
#: Rules that are consequences of another table's bad row; they do not count as bad rows
#: of the child table for ``too_many_bad_rows`` (the parent's table is charged instead).
DERIVED_RULES: Final = frozenset({"parent_quarantined"})

#: The id column whose repetition is ``duplicate_id``, per table.
ID_COLUMN: Final = {"invoices": "invoice_id", "payments": "payment_id", "accounts": "account_id"}

# Internal column names (double underscore: never clash with source columns).
# Rule and column are small integer codes while rows are checked (see ``code`` and
# ``column_code``): far cheaper than strings on tens of millions of rows.
RULE, COLUMN, ROW = "__rule", "__column", "__row"


class DataContractError(Exception):
    """A whole-file contract violation: one clear message naming file, column and rule.

    Attributes: ``file`` (file or table name), ``column`` (``None`` when the rule concerns
    the whole file), ``rule`` (one of :data:`FILE_RULES`). ``result`` may hold the partial
    validation result (quarantine and summary) when the error was raised after row checks.
    """

    def __init__(self, file: str, column: str | None, rule: str, detail: str) -> None:
        self.file, self.column, self.rule, self.detail = file, column, rule, detail
        self.result: object | None = None
        col = f"column '{column}' " if column else ""
        super().__init__(f"{file}: {col}{detail} (rule {rule})")


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


def _padded(values: pl.Series) -> bool:
    """Whether any value has leading or trailing whitespace (a scan, no string copies)."""
    return bool(values.str.contains(r"^\s|\s$").any())


def _text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Source values as stripped strings (typed columns are cast first)."""
    if dtype != pl.String:
        expr = expr.cast(pl.String)
    return expr.str.strip_chars()


def parse_columns(frame: pl.DataFrame, table: str) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
    """Add parsed ``__v_<col>`` columns; return the frame and per-column flag expressions.

    Flags: ``missing:<col>`` (empty or null) and ``bad:<col>`` (present but unparseable),
    materialised as boolean columns so the rule chains read them instead of recomputing.
    String columns are parsed; already-typed columns (Parquet) are only cast, which is cheap.
    """
    present = {c: d for c, d in columns_of(table).items() if c in frame.columns}
    # Pass 1: stripped text of every column that needs parsing or is text.
    texts, plain = {}, set()
    for col in present:
        src_type = frame.schema[col]
        if _kind(present[col]) == "text" and col not in REQUIRED[table] and (
            src_type == pl.String
        ):
            # Optional text is kept as written (no strip: saves a copy of every string);
            # only empty cells become missing.
            plain.add(col)
            texts[f"__t_{col}"] = pl.col(col)
        elif not (src_type.is_temporal() or src_type.is_numeric()) or (
            _kind(present[col]) == "text"
        ):
            texts[f"__t_{col}"] = _text(pl.col(col), src_type)
            if src_type == pl.String and not _padded(frame.get_column(col)):
                texts[f"__t_{col}"] = pl.col(col)  # nothing to strip: no copy
    frame = frame.with_columns(**texts)
    # Pass 2: parsed values.  Pass 3: flags, reading the materialised values.
    values, flags = [], {}
    for col, dtype in present.items():
        kind, typed = _kind(dtype), f"__t_{col}" not in texts
        src, text, val = pl.col(col), pl.col(f"__t_{col}"), pl.col(value(col))
        empty = text.is_null() | (text == "") if not typed else src.is_null()
        bad = pl.lit(False)
        if kind == "text":
            blank = text == ""
            has_blank = bool(frame.select(blank.any()).item())
            parsed = pl.when(blank).then(None).otherwise(text) if has_blank else text
            missing = val.is_null()
        elif kind == "date":
            parsed = src.cast(pl.Date) if typed else text.str.strptime(
                pl.Date, "%Y-%m-%d", strict=False)
            missing = empty
            if not typed:
                bad = ~missing & val.is_null()
        else:
            parsed = src.cast(pl.Float64) if typed else text.cast(pl.Float64, strict=False)
            if typed:
                missing = val.is_null() | val.is_nan()
                bad = val.is_infinite()
            else:
                missing = empty
                bad = ~missing & (val.is_null() | ~val.is_finite())
            if kind == "int":
                bad = bad | (~missing & (val != val.round(0)))
        values.append(parsed.alias(value(col)))
        flags[f"__m_{col}"] = missing
        flags[f"__b_{col}"] = bad
    frame = frame.with_columns(values).with_columns(**flags).drop(list(texts))
    ints = [value(c) for c, d in present.items() if _kind(d) == "int"]
    if ints:  # whole numbers only; the rest is flagged above
        frame = frame.with_columns(
            pl.when(pl.col(f"__b_{c[4:]}") | pl.col(f"__m_{c[4:]}")).then(None)
            .otherwise(pl.col(c)).cast(pl.Int64).alias(c)
            for c in ints
        )
    names = {f"missing:{c}": pl.col(f"__m_{c}") for c in present}
    names |= {f"bad:{c}": pl.col(f"__b_{c}") for c in present}
    return frame, names


def code(rule: str) -> int:
    """Integer code of a row rule (0 means the row is fine)."""
    return RULES.index(rule) + 1


def column_code(table: str, col: str) -> int:
    """Integer code of a contract column of ``table`` (0 means none)."""
    return list(columns_of(table)).index(col) + 1


def _first(
    table: str, cols: list[str], flags: dict[str, pl.Expr], prefix: str
) -> tuple[pl.Expr, pl.Expr]:
    """(any flag set, code of the first column whose flag is set) over ``cols``."""
    present = [c for c in cols if f"{prefix}:{c}" in flags]
    if not present:
        return pl.lit(False), pl.lit(0, dtype=pl.UInt8)
    anyflag = pl.any_horizontal([flags[f"{prefix}:{c}"] for c in present])
    which = pl.when(flags[f"{prefix}:{present[0]}"]).then(column_code(table, present[0]))
    for c in present[1:]:
        which = which.when(flags[f"{prefix}:{c}"]).then(column_code(table, c))
    return anyflag, which.otherwise(0).cast(pl.UInt8)


def _chain(checks: list[tuple[str, pl.Expr, pl.Expr | int]]) -> tuple[pl.Expr, pl.Expr]:
    """(rule code, column code) of the first check a row fails, in the given order."""
    if not checks:
        return pl.lit(0, dtype=pl.UInt8), pl.lit(0, dtype=pl.UInt8)
    (rule0, cond0, col0), rest = checks[0], checks[1:]
    rule = pl.when(cond0.fill_null(False)).then(code(rule0))
    col = pl.when(cond0.fill_null(False)).then(col0)
    for name, cond, c in rest:
        rule = rule.when(cond.fill_null(False)).then(code(name))
        col = col.when(cond.fill_null(False)).then(c)
    return rule.otherwise(0).cast(pl.UInt8), col.otherwise(0).cast(pl.UInt8)


def assign(frame: pl.DataFrame, checks: list[tuple[str, pl.Expr, pl.Expr | int]]) -> pl.DataFrame:
    """Give rows that broke no earlier rule the first of ``checks`` they fail.

    ``checks`` are ``(rule, failing condition, column code)`` in rule order. Conditions are
    materialised once (polars would evaluate them once per when/then branch otherwise).
    """
    conds = {f"__c{i}": cond for i, (_, cond, _) in enumerate(checks)}
    frame = frame.with_columns(**conds)
    named = [(rule, pl.col(f"__c{i}"), col) for i, (rule, _, col) in enumerate(checks)]
    rule, col = _chain(named)
    frame = frame.with_columns(rule.alias("__new_rule"), col.alias("__new_col"))
    hit = (pl.col(RULE) == 0) & (pl.col("__new_rule") > 0)
    return frame.with_columns(
        pl.when(hit).then(pl.col("__new_rule")).otherwise(pl.col(RULE)).alias(RULE),
        pl.when(hit).then(pl.col("__new_col")).otherwise(pl.col(COLUMN)).alias(COLUMN),
    ).drop("__new_rule", "__new_col", *conds)


def row_local_rules(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Parse the contract columns and apply the rules that need no other row or table."""
    frame, flags = parse_columns(frame, table)
    types = columns_of(table)
    dates = [c for c, d in types.items() if d == DATE_DTYPE]
    numbers = [c for c, d in types.items() if d in ("float64", "Int64")]
    checks: list[tuple[str, pl.Expr, pl.Expr | int]] = []
    for rule, cols, prefix in (
        ("missing_value", list(REQUIRED[table]), "missing"),
        ("unparseable_date", dates, "bad"),
        ("unparseable_amount", numbers, "bad"),
    ):
        hit, which = _first(table, cols, flags, prefix)
        checks.append((rule, hit, which))
    if table in ("invoices", "payments"):
        amount = column_code(table, "amount")
        checks.append(("non_positive_amount", pl.col(value("amount")) <= 0, amount))
    if table == "invoices":
        due_before = pl.col(value("due_date")) < pl.col(value("issue_date"))
        checks.append(("due_before_issue", due_before, column_code(table, "due_date")))
    rule, col = _chain(checks)
    frame = frame.with_columns(rule.alias(RULE), col.alias(COLUMN))
    id_col = ID_COLUMN.get(table)
    if id_col and value(id_col) in frame.columns:
        alive = frame.get_column(RULE) == 0
        # Only rows still alive compete for "first occurrence" (others are masked to null,
        # which never counts); an empty optional id (payment_id) is never a duplicate.
        ids = frame.get_column(value(id_col))
        if not alive.all():
            ids = frame.select(pl.when(alive).then(ids.name)).to_series()
        dup = alive & ids.is_not_null() & ~first_occurrence(ids)
        frame = assign(frame, [("duplicate_id", pl.lit(dup), column_code(table, id_col))])
    return frame


def parents_of(invoices: pl.DataFrame) -> pl.DataFrame:
    """The slim view of checked invoices that payment/dispute rules need."""
    return invoices.select(value("invoice_id"), value("issue_date"), value("account_id"), RULE)


def child_rules(frame: pl.DataFrame, table: str, parents: pl.DataFrame) -> pl.DataFrame:
    """Rules of payments/disputes that need their invoice (``parents``: see parents_of)."""
    inv_id, issue = value("invoice_id"), value("issue_date")
    alive = parents.get_column(RULE) == 0
    kept = parents if alive.all() else parents.filter(alive)
    at = lookup(frame.get_column(inv_id), kept.get_column(inv_id))
    frame = frame.with_columns(
        kept.get_column(issue).gather(at).alias("__parent_issue"),
        kept.get_column(value("account_id")).gather(at).alias("__parent_account"),
    )
    found = pl.col("__parent_issue").is_not_null()
    dropped = parents.filter((pl.col(RULE) > 0) & pl.col(inv_id).is_not_null())
    if dropped.height:
        dropped_ids = dropped.get_column(inv_id).unique().implode()
        quarantined_parent = ~found & pl.col(inv_id).is_in(dropped_ids)
    else:
        quarantined_parent = pl.lit(False)
    ref = column_code(table, "invoice_id")
    checks: list[tuple[str, pl.Expr, pl.Expr | int]] = [
        ("unknown_invoice", ~found & ~quarantined_parent, ref),
        ("parent_quarantined", quarantined_parent, ref),
    ]
    if table == "payments":
        before = pl.col(value("payment_date")) < pl.col("__parent_issue")
        checks.append(("payment_before_issue", before, column_code(table, "payment_date")))
    else:
        before = pl.col(value("opened_date")) < pl.col("__parent_issue")
        checks.append(("dispute_before_issue", before, column_code(table, "opened_date")))
        if value("resolved_date") in frame.columns:
            resolved = pl.col(value("resolved_date")) < pl.col(value("opened_date"))
            code_ = column_code(table, "resolved_date")
            checks.append(("resolved_before_opened", resolved, code_))
    return assign(frame, checks)


def _raw(column: pl.Expr, frame: pl.DataFrame) -> pl.Expr:
    """The raw source value of the column named in ``column`` (per row), as a string."""
    out = pl.lit("", dtype=pl.String)
    for c in reversed([c for c in frame.columns if not c.startswith("__")]):
        out = pl.when(column == c).then(pl.col(c).cast(pl.String).fill_null("")).otherwise(out)
    return out


def decoded(bad: pl.DataFrame, table: str) -> pl.DataFrame:
    """``bad`` with its rule and column codes replaced by their names (strings)."""
    names = pl.Series([None, *RULES], dtype=pl.String)
    cols = pl.Series([None, *columns_of(table)], dtype=pl.String)
    return bad.with_columns(
        pl.col(RULE).cast(pl.Int64).replace_strict(list(range(len(names))), names),
        pl.col(COLUMN).cast(pl.Int64).replace_strict(list(range(len(cols))), cols),
    )


def messages(bad: pl.DataFrame) -> pl.Series:
    """One readable message per quarantined row (``bad``: quarantined rows, decoded)."""
    col, rule, raw = pl.col(COLUMN), pl.col(RULE), _raw(pl.col(COLUMN), bad)

    def date(c: str) -> pl.Expr:
        return pl.col(c).dt.strftime("%Y-%m-%d") if c in bad.columns else pl.lit("?")

    q = pl.lit("'")
    texts = {
        "missing_value": pl.concat_str(pl.lit("required column '"), col, pl.lit("' is empty")),
        "unparseable_date": pl.concat_str(
            pl.lit("column '"), col, pl.lit("' value '"), raw, pl.lit("' is not a YYYY-MM-DD date")
        ),
        "unparseable_amount": pl.concat_str(
            pl.lit("column '"), col, pl.lit("' value '"), raw, pl.lit("' is not a finite number")
        ),
        "non_positive_amount": pl.concat_str(pl.lit("amount "), raw, pl.lit(" is not positive")),
        "due_before_issue": pl.concat_str(
            pl.lit("due_date "), date(value("due_date")), pl.lit(" is before issue_date "),
            date(value("issue_date")),
        ),
        "duplicate_id": pl.concat_str(col, pl.lit(" "), q, raw, q, pl.lit(" already seen")),
        "unknown_invoice": pl.concat_str(
            pl.lit("invoice_id '"), raw, pl.lit("' is not among the invoices read")
        ),
        "parent_quarantined": pl.concat_str(
            pl.lit("invoice '"), raw, pl.lit("' was quarantined, so this row is kept out with it")
        ),
        "payment_before_issue": pl.concat_str(
            pl.lit("payment_date "), date(value("payment_date")),
            pl.lit(" is before the invoice's issue_date "), date("__parent_issue"),
        ),
        "dispute_before_issue": pl.concat_str(
            pl.lit("opened_date "), date(value("opened_date")),
            pl.lit(" is before the invoice's issue_date "), date("__parent_issue"),
        ),
        "resolved_before_opened": pl.concat_str(
            pl.lit("resolved_date "), date(value("resolved_date")),
            pl.lit(" is before opened_date "), date(value("opened_date")),
        ),
    }
    expr = pl.lit(None, dtype=pl.String)
    for name, text in texts.items():
        expr = pl.when(rule == name).then(text).otherwise(expr)
    return bad.select(expr.alias("_message")).get_column("_message")
