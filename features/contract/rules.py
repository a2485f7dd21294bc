"""Named validation rules of the data contract (DESIGN section 3), evaluated with polars.

This module is the engine behind :mod:`features.contract.validation`; use that module's API.

Row rules (exact names, in priority order: a bad row is assigned the FIRST rule it breaks):

=========================  ==================================================================
``malformed_line``          a CSV line's field count differs from the header's (message: the
                            line number and raw text)
``missing_value``           a required field is empty, null or a missing-value token
                            ("NULL", "N/A", ... see ``options.MISSING_TOKENS``)
``control_character``       a required id holds a control character, or text the worklist
                            shows holds a NUL
``unparseable_date``        a date is not ISO ``YYYY-MM-DD``, ``YYYYMMDD`` digits or the set
                            ``date_format`` (typed datetimes are truncated to the day)
``sentinel_date``           a date is a placeholder (``Plausibility.sentinel_dates``)
``implausible_date``        a date is outside ``[date_min, date_max)`` (created_date: only
                            the end)
``unparseable_amount``      a number (amount, credit_limit, terms_days) is not finite under
                            the file's decimal separator (terms_days must also be whole)
``ambiguous_amount``        a number reads two ways ("2.500") and the decimal is unknown
``non_positive_amount``     a payment amount is <= 0, or an invoice amount is 0 (a negative
                            invoice amount is a credit note, kept)
``amount_above_cap``        an amount or credit limit is above ``Plausibility.amount_cap``
``due_before_issue``        invoice due_date < issue_date
``duplicate_id``            an exact copy of an earlier row with the same invoice_id /
                            payment_id / account_id (the first, in file order, is kept)
``conflicting_duplicate``   every row of an id whose copies differ in a contract column
``unknown_invoice``         payment/dispute whose invoice_id is not among the invoice rows read
``parent_quarantined``      payment/dispute whose invoice was quarantined (kept out with it)
``payment_quarantined``     an invoice named by a quarantined payment row: whether it is
                            paid is unknown, so it is held out (no phantom delinquency;
                            see ``features.contract.held_out``)
``dispute_before_issue``    dispute opened_date < the invoice's issue_date
``resolved_before_opened``  dispute resolved_date < opened_date
``unknown_account``         promise/contact whose account_id has no invoice among the kept
                            invoices (an event of no customer of the book)
``unknown_enumeration``     a contact's channel or outcome is not one of the spec's values
                            (``features.spec.ContactChannel`` / ``ContactOutcome``; case
                            and surrounding spaces ignored)
``promised_before_created`` a promise's promised_date is before its created_date
=========================  ==================================================================

The collections loop's tables (``promises``, ``contacts``) also get ``missing_value``,
the date and amount rules (a promised amount must be positive: ``non_positive_amount``),
``duplicate_id`` / ``conflicting_duplicate`` on their id and ``unknown_invoice`` for a
promise naming an invoice that is not among the invoices read.

Whole-file rules raise :class:`DataContractError` (:data:`FILE_RULES`); plausibility
anomalies (:data:`ANOMALY_RULES`) too, unless accepted.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from features.contract.book import DATE_DTYPE, REQUIRED, columns_of
from features.contract.options import Plausibility, ReadOptions
from features.contract.parsing import Parsed, date_wording, parse_columns, value
from features.keys import ascending, first_occurrence, lookup
from features.spec import ContactChannel, ContactOutcome

RULES: Final = (
    "malformed_line",
    "missing_value",
    "control_character",
    "unparseable_date",
    "sentinel_date",
    "implausible_date",
    "unparseable_amount",
    "ambiguous_amount",
    "non_positive_amount",
    "amount_above_cap",
    "due_before_issue",
    "duplicate_id",
    "conflicting_duplicate",
    "unknown_invoice",
    "parent_quarantined",
    "payment_quarantined",
    "dispute_before_issue",
    "resolved_before_opened",
    "unknown_account",
    "unknown_enumeration",
    "promised_before_created",
)
FILE_RULES: Final = (
    "missing_file",
    "missing_column",
    "duplicate_column",
    "reserved_column",
    "unsupported_type",
    "empty_file",
    "unreadable_file",
    "bad_encoding",
    "mixed_currency",
    "too_many_bad_rows",
    "ambiguous_file",
)
#: Whole-table plausibility rules (see ``features.contract.plausibility``): an *anomaly*
#: stops the run unless anomalies are explicitly accepted.
ANOMALY_RULES: Final = ("empty_table", "implausibly_small", "as_of_beyond_data", "totals_jump")
#: Rules that are consequences of another table's bad row; they do not count as bad rows
#: of the child table for ``too_many_bad_rows`` (the parent's table is charged instead).
DERIVED_RULES: Final = frozenset({"parent_quarantined", "payment_quarantined"})

#: The id column whose repetition is ``duplicate_id``, per table.
ID_COLUMN: Final = {"invoices": "invoice_id", "payments": "payment_id", "accounts": "account_id",
                    "promises": "promise_id", "contacts": "contact_id"}
#: Columns of the event tables whose values are a spec enumeration (canonical: lower case).
ENUMERATIONS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "contacts": {"channel": tuple(ContactChannel), "outcome": tuple(ContactOutcome)}}

# Internal column names (double underscore: never clash with source columns).
# Rule and column are small integer codes while rows are checked (see ``code`` and
# ``column_code``): far cheaper than strings on tens of millions of rows.
RULE, COLUMN, ROW = "__rule", "__column", "__row"


def index_dtype(height: int) -> pl.DataType:
    """The integer type of a record number (:data:`ROW`) or row index (:data:`PARENT`)
    among ``height`` rows: UInt32 below 2**32 rows (half of Int64's 8 bytes a row: at 1M
    accounts 0.2 GB each beside the 50M payments at validation's peak), else Int64. The
    quarantine reports record numbers as Int64 whatever this is."""
    return pl.UInt32 if height < 2**32 - 1 else pl.Int64


#: Internal column of a raw CSV table: null, or what is wrong with a malformed line.
MALFORMED: Final = "__malformed"
_DETAIL = "__detail"  # per-row detail of conflicting duplicates (which columns differ)


class DataContractError(Exception):
    """A whole-file contract violation: one clear message naming file, column and rule.

    Attributes: ``file`` (file or table name), ``column`` (``None`` when the rule concerns
    the whole file), ``rule`` (one of :data:`FILE_RULES` or :data:`ANOMALY_RULES`).
    ``result`` may hold the partial validation result (quarantine and summary) when the
    error was raised after row checks.
    """

    def __init__(self, file: str, column: str | None, rule: str, detail: str) -> None:
        self.file, self.column, self.rule, self.detail = file, column, rule, detail
        self.result: object | None = None
        col = f"column '{printable(column)}' " if column else ""
        super().__init__(f"{file}: {col}{printable(detail)} (rule {rule})")


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x00``): a message quoting
    the data (a header, a currency) stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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


def row_local_rules(
    frame: pl.DataFrame, table: str, options: ReadOptions, plausible: Plausibility
) -> tuple[pl.DataFrame, Parsed]:
    """Parse the contract columns and apply the rules that need no other table."""
    frame, flags, parsed = parse_columns(frame, table, options)
    types = columns_of(table)
    dates = [c for c, d in types.items() if d == DATE_DTYPE and value(c) in frame.columns]
    numbers = [c for c, d in types.items() if d in ("float64", "Int64")]
    amounts = [c for c, d in types.items() if d == "float64" and value(c) in frame.columns]
    for c in dates:
        day = pl.col(value(c))
        flags[f"sentinel:{c}"] = day.is_in(list(plausible.sentinel_dates))
        early = pl.lit(False) if c in UNBOUNDED_BELOW else day < plausible.date_min
        flags[f"implausible:{c}"] = early | (day >= plausible.date_max)
    for c in amounts:
        flags[f"cap:{c}"] = pl.col(value(c)) > plausible.amount_cap
    checks: list[tuple[str, pl.Expr, pl.Expr | int]] = []
    if MALFORMED in frame.columns:
        checks.append(("malformed_line", pl.col(MALFORMED).is_not_null(), 0))
    for rule, cols, prefix in (
        ("missing_value", list(REQUIRED[table]), "missing"),
        ("control_character", list(types), "control"),
        ("unparseable_date", dates, "bad"),
        ("sentinel_date", dates, "sentinel"),
        ("implausible_date", dates, "implausible"),
        ("unparseable_amount", numbers, "bad"),
        ("ambiguous_amount", numbers, "ambiguous"),
    ):
        hit, which = _first(table, cols, flags, prefix)
        checks.append((rule, hit, which))
    for col, allowed in ENUMERATIONS.get(table, {}).items():
        known = enumeration(pl.col(value(col))).is_in(list(allowed))
        checks.append(("unknown_enumeration", ~known, column_code(table, col)))
    if table in ("invoices", "payments", "promises"):
        # A negative invoice is a credit note (kept); a payment or promise must be positive.
        amount = column_code(table, "amount")
        bad_amount = pl.col(value("amount")) == 0 if table == "invoices" else (
            pl.col(value("amount")) <= 0)
        checks.append(("non_positive_amount", bad_amount, amount))
    hit, which = _first(table, amounts, flags, "cap")
    checks.append(("amount_above_cap", hit, which))
    if table == "invoices":
        due_before = pl.col(value("due_date")) < pl.col(value("issue_date"))
        checks.append(("due_before_issue", due_before, column_code(table, "due_date")))
    if table == "promises":
        early = pl.col(value("promised_date")) < pl.col(value("created_date"))
        checks.append(("promised_before_created", early, column_code(table, "promised_date")))
    rule, col = _chain(checks)
    frame = frame.with_columns(rule.alias(RULE), col.alias(COLUMN))
    id_col = ID_COLUMN.get(table)
    if id_col and value(id_col) in frame.columns:
        frame = _duplicates(frame, table, id_col)
    return frame, parsed


#: Date columns checked only against the window's end: a customer may be older than the
#: receivables (an account created in 1985 is plausible, an invoice issued then is not).
UNBOUNDED_BELOW: Final = frozenset({"created_date"})


def _duplicates(frame: pl.DataFrame, table: str, id_col: str) -> pl.DataFrame:
    """``duplicate_id`` for exact copies (the first is kept), ``conflicting_duplicate`` for
    every copy of an id whose rows differ in any contract column (none can be trusted).

    Only rows that broke no earlier rule take part; an empty optional id (payment_id) is
    never a duplicate. Copies are compared on parsed values ("100" equals "100.00").
    """
    alive = frame.get_column(RULE) == 0
    ids = frame.get_column(value(id_col))
    if not alive.all():
        ids = frame.select(pl.when(alive).then(ids.name)).to_series()
    later = alive & ids.is_not_null() & ~first_occurrence(ids)
    if not later.any():
        return frame
    repeated = ids.filter(later).unique().implode()
    group = frame.filter(pl.lit(alive) & pl.col(value(id_col)).is_in(repeated))
    compared = [value(c) for c in columns_of(table) if value(c) in frame.columns and c != id_col]
    differ = group.group_by(value(id_col)).agg(
        pl.len().alias("__n"), *[(pl.col(c).n_unique() > 1).alias(c) for c in compared])
    names = [c[len(value("")):] for c in compared]
    differ = differ.with_columns(
        pl.concat_str(
            [pl.when(pl.col(v)).then(pl.lit(n)) for v, n in zip(compared, names, strict=True)],
            separator=", ", ignore_nulls=True,
        ).alias(_DETAIL)
    ).filter(pl.col(_DETAIL) != "")
    detail = pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    if differ.height:
        rows = group.join(differ.select(value(id_col), "__n", _DETAIL), on=value(id_col))
        text = pl.concat_str(pl.lit("appears "), pl.col("__n").cast(pl.String),
                             pl.lit(" times and the copies differ in "), pl.col(_DETAIL))
        at = rows.get_column(ROW) - 1
        detail = detail.scatter(at, rows.select(text).to_series())
        conflict = detail.is_not_null()
    else:
        conflict = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    frame = frame.with_columns(detail.alias(_DETAIL))
    code_ = column_code(table, id_col)
    return assign(frame, [("conflicting_duplicate", pl.lit(conflict), code_),
                          ("duplicate_id", pl.lit(later), code_)])


def parents_of(invoices: pl.DataFrame) -> pl.DataFrame:
    """The slim view of checked invoices that payment/dispute rules need, in file order
    (row ``i`` is the file's record ``i + 1``: no record-number column is kept). Their
    accounts are added as codes (:func:`with_account_codes`) once the kept invoices are
    canonical, not held as strings."""
    return invoices.select(value("invoice_id"), value("issue_date"), value("amount"), RULE)


#: Internal column of ``parents``: the invoice's account as a code, its position among the
#: sorted distinct accounts of the kept invoices (null for a quarantined invoice).
ACCOUNT_CODE: Final = "__account_code"
#: Internal column of checked payments/disputes: the row of their invoice in ``parents``
#: (null when the invoice is not among the kept ones).
PARENT: Final = "__parent"


def with_account_codes(parents: pl.DataFrame, rows: pl.Series,
                       account_ids: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
    """``parents`` with :data:`ACCOUNT_CODE`, and the sorted distinct accounts it codes.

    ``rows``/``account_ids``: the record numbers (:data:`ROW`) and accounts of the kept
    invoices in canonical order (sorted by account), so the distinct accounts are where the
    id changes and a code is a running count: linear, no hashing of 50M strings (a
    payment's account is then its invoice's code, ``child_rules``).
    """
    first = first_occurrence(account_ids)
    codes = first.cast(pl.UInt32).cum_sum() - 1
    column = pl.repeat(None, parents.height, dtype=pl.UInt32, eager=True).alias(ACCOUNT_CODE)
    if len(rows):
        column = column.scatter(rows - 1, codes)
    return parents.with_columns(column), account_ids.filter(first)


def kept_ids_sorted(parents: pl.DataFrame) -> bool:
    """Whether the kept invoices' ids (``parents`` with no rule broken) ascend: the
    ``ids_sorted`` of :func:`child_rules` and :func:`event_rules`, asked once per book
    (invoices held out later only remove ids from an ascending run: still ascending)."""
    alive = parents.get_column(RULE) == 0
    ids = parents.get_column(value("invoice_id"))
    return ascending(ids if alive.all() else ids.filter(alive))


def child_rules(frame: pl.DataFrame, table: str, parents: pl.DataFrame, *,
                ids_sorted: bool | None = None) -> pl.DataFrame:
    """Rules of payments/disputes that need their invoice (``parents``: see parents_of;
    ``ids_sorted``: :func:`kept_ids_sorted` of them, None to have it checked).

    Adds :data:`PARENT` and the invoice's issue date (``__parent_issue``); payments also
    get their invoice's account code (:data:`ACCOUNT_CODE`), which the kept rows hold as
    their ``account_id`` (a payment's account is its invoice's: the one the workbench and
    every feature use). (The invoice's amount is read through :data:`PARENT` when needed,
    not copied beside every payment.)
    """
    inv_id, issue = value("invoice_id"), value("issue_date")
    alive = parents.get_column(RULE) == 0
    kept = parents if alive.all() else parents.filter(alive)
    at = lookup(frame.get_column(inv_id), kept.get_column(inv_id), table_sorted=ids_sorted)
    if kept.height < parents.height:  # rows of ``kept`` to rows of ``parents``
        at = alive.arg_true().gather(at)
    at = at.cast(index_dtype(parents.height))
    added = [at.alias(PARENT), parents.get_column(issue).gather(at).alias("__parent_issue")]
    if table == "payments" and ACCOUNT_CODE in parents.columns:
        added.append(parents.get_column(ACCOUNT_CODE).gather(at))
    frame = frame.with_columns(added)
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
    if table == "disputes":  # a payment before issue is a prepayment (kept)
        before = pl.col(value("opened_date")) < pl.col("__parent_issue")
        checks.append(("dispute_before_issue", before, column_code(table, "opened_date")))
        if value("resolved_date") in frame.columns:
            resolved = pl.col(value("resolved_date")) < pl.col(value("opened_date"))
            code_ = column_code(table, "resolved_date")
            checks.append(("resolved_before_opened", resolved, code_))
    return assign(frame, checks)


def enumeration(text: pl.Expr) -> pl.Expr:
    """An enumeration cell as the spec spells it: stripped, lower case."""
    return text.str.strip_chars().str.to_lowercase()


def event_rules(frame: pl.DataFrame, table: str, parents: pl.DataFrame,
                accounts: pl.DataFrame, *, ids_sorted: bool | None = None) -> pl.DataFrame:
    """Rules of promises/contacts that need the invoices: ``unknown_account`` (``accounts``:
    the distinct invoiced accounts of the kept invoices) and, for a promise naming an
    invoice, ``unknown_invoice`` (``ids_sorted``: as in :func:`child_rules`)."""
    known = lookup(frame.get_column(value("account_id")),
                   accounts.get_column("account_id")).is_not_null()
    checks: list[tuple[str, pl.Expr, pl.Expr | int]] = [
        ("unknown_account", ~pl.lit(known), column_code(table, "account_id"))]
    if table == "promises" and value("invoice_id") in frame.columns:
        alive = parents.filter(pl.col(RULE) == 0).get_column(value("invoice_id"))
        found = lookup(frame.get_column(value("invoice_id")), alive,
                       table_sorted=ids_sorted).is_not_null()
        named = pl.col(value("invoice_id")).is_not_null()
        checks.append(("unknown_invoice", named & ~pl.lit(found),
                       column_code(table, "invoice_id")))
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


def messages(bad: pl.DataFrame, options: ReadOptions, plausible: Plausibility) -> pl.Series:
    """One readable message per quarantined row (``bad``: quarantined rows, decoded)."""
    col, rule, raw = pl.col(COLUMN), pl.col(RULE), _raw(pl.col(COLUMN), bad)

    def date(c: str) -> pl.Expr:
        return pl.col(c).dt.strftime("%Y-%m-%d") if c in bad.columns else pl.lit("?")

    def column_value(*then: str | pl.Expr) -> pl.Expr:
        parts = [pl.lit(p) if isinstance(p, str) else p for p in then]
        return pl.concat_str(pl.lit("column '"), col, pl.lit("' value '"), raw, pl.lit("'"),
                             *parts)

    q = pl.lit("'")
    window = f"{plausible.date_min}..{plausible.date_max}"
    decimal = "" if options.decimal is None else f" with decimal '{options.decimal}'"
    texts = {
        "malformed_line": pl.col(MALFORMED) if MALFORMED in bad.columns else pl.lit("?"),
        "missing_value": pl.concat_str(pl.lit("required column '"), col, pl.lit("' is empty")),
        "control_character": pl.concat_str(
            pl.lit("column '"), col, pl.lit("' holds a control character (such as NUL or a tab)"
                                           "; ids and text must be printable")),
        "unparseable_date": column_value(f" is not {date_wording(options.date_format)}"),
        "sentinel_date": column_value(" is a placeholder date, not a real one"),
        "implausible_date": column_value(f" is outside the plausible dates {window}"),
        "unparseable_amount": column_value(f" is not a finite number{decimal}"),
        "ambiguous_amount": column_value(
            " reads as thousands or as decimals, and no value in the file tells which; set "
            "the read option decimal"),
        "non_positive_amount": pl.concat_str(pl.lit("amount "), raw, pl.lit(" is not positive")),
        "amount_above_cap": column_value(f" is above the cap {plausible.amount_cap:,.0f}"),
        "due_before_issue": pl.concat_str(
            pl.lit("due_date "), date(value("due_date")), pl.lit(" is before issue_date "),
            date(value("issue_date")),
        ),
        "duplicate_id": pl.concat_str(col, pl.lit(" "), q, raw, q,
                                      pl.lit(" already seen (an identical copy)")),
        "conflicting_duplicate": pl.concat_str(
            col, pl.lit(" "), q, raw, q, pl.lit(" "),
            pl.col(_DETAIL) if _DETAIL in bad.columns else pl.lit("?"),
            pl.lit(": every copy is quarantined")),
        "unknown_invoice": pl.concat_str(
            pl.lit("invoice_id '"), raw, pl.lit("' is not among the invoices read")
        ),
        "parent_quarantined": pl.concat_str(
            pl.lit("invoice '"), raw, pl.lit("' was quarantined, so this row is kept out with it")
        ),
        "dispute_before_issue": pl.concat_str(
            pl.lit("opened_date "), date(value("opened_date")),
            pl.lit(" is before the invoice's issue_date "), date("__parent_issue"),
        ),
        "resolved_before_opened": pl.concat_str(
            pl.lit("resolved_date "), date(value("resolved_date")),
            pl.lit(" is before opened_date "), date(value("opened_date")),
        ),
        "unknown_account": pl.concat_str(
            pl.lit("account_id '"), raw, pl.lit("' has no invoice among the invoices read")),
        "unknown_enumeration": column_value(" is not one of the spec's values"),
        "promised_before_created": pl.concat_str(
            pl.lit("promised_date "), date(value("promised_date")),
            pl.lit(" is before created_date "), date(value("created_date"))),
    }
    expr = pl.lit(None, dtype=pl.String)
    for name, text in texts.items():
        expr = pl.when(rule == name).then(text).otherwise(expr)
    return bad.select(expr.alias("_message")).get_column("_message")
