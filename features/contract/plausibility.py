"""Whole-table plausibility: anomalies that stop a run, and warnings that only inform.

Row-level plausibility (sentinel and out-of-window dates, amounts above the cap) are row
rules in :mod:`features.contract.rules`. Here are the checks that need a whole table or
two: a table that arrived empty or implausibly small next to the others (an *anomaly*:
validation stops with one message naming the file, the rule and the numbers, unless the
caller explicitly accepts anomalies, in which case they are recorded in the result), and
ids that match across files only once leading zeros are dropped (a *warning*).

Later checks of the same kind (against the last accepted book or published run) produce
:class:`Anomaly` values too, so one ``accept_anomalies`` switch covers them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import polars as pl

from features.contract.canonical import bare_accounts
from features.contract.options import Plausibility
from features.contract.parsing import value
from features.contract.rules import RULE, DataContractError

#: What the override is called where users meet it (library, CLI, flows).
OVERRIDE = "accept_anomalies (--accept-anomalies)"


@dataclass(frozen=True)
class Anomaly:
    """A failed plausibility check: the file (or table), the column if any, the rule (one
    of :data:`features.contract.rules.ANOMALY_RULES`) and the numbers in ``detail``."""

    file: str
    column: str | None
    rule: str
    detail: str

    @property
    def message(self) -> str:
        """The same one-line wording as :class:`DataContractError`."""
        return str(self.error())

    def error(self) -> DataContractError:
        """The stop this anomaly causes when not accepted."""
        return DataContractError(self.file, self.column, self.rule,
                                 f"{self.detail}; if this is expected, pass {OVERRIDE}")


def table_anomalies(
    rows_read: Mapping[str, int],
    sources: Mapping[str, str],
    invoiced_accounts: int,
    plausible: Plausibility,
) -> list[Anomaly]:
    """``empty_table`` / ``implausibly_small`` for payments and accounts given as files.

    ``rows_read``: rows per table present (absent tables are not checked: only invoices
    is required). Checked only when invoices has at least ``plausible.min_invoices`` rows.
    """
    invoices = rows_read.get("invoices", 0)
    if invoices < plausible.min_invoices:
        return []
    out = []
    bases = {"payments": (invoices, "invoice rows"),
             "accounts": (invoiced_accounts, "accounts invoiced")}
    for table, (base, what) in bases.items():
        if table not in rows_read:
            continue
        name, n = sources.get(table, table), rows_read[table]
        if n == 0:
            detail = (f"has a header and no rows while {sources.get('invoices', 'invoices')} "
                      f"has {invoices:,} (an export that arrived empty?)")
            out.append(Anomaly(name, None, "empty_table", detail))
        elif n < plausible.min_ratio * base:
            detail = (f"has {n:,} rows for {base:,} {what} ({n / base:.1%} < "
                      f"{plausible.min_ratio:.0%} expected at least)")
            out.append(Anomaly(name, None, "implausibly_small", detail))
    return out


def _unpadded(ids: pl.Series) -> pl.DataFrame:
    """All-digit ids with leading zeros, next to the same digits without them."""
    digits = ids.filter(ids.str.contains(r"^0+\d+$")).unique()
    return pl.DataFrame({"id": digits, "key": digits.str.strip_chars_start("0")})


def leading_zero_warning(
    unmatched: pl.Series, other: pl.Series, *, what: str, where: str, other_where: str
) -> str | None:
    """A warning when ids of one file match ids of another only without leading zeros.

    ``unmatched``: ids of file ``where`` that found no partner (e.g. invoiced accounts
    absent from the accounts file); ``other``: the candidate partners from ``other_where``.
    Ids are compared as text (a "0000001" is not a 1), so such pairs stay apart; the
    warning says so, with an example, instead of guessing.
    """
    if unmatched.is_empty() or other.is_empty():
        return None
    pairs = []
    for padded, plain in ((unmatched, other), (other, unmatched)):
        left = _unpadded(padded.cast(pl.String))
        if left.is_empty():
            continue
        right = plain.cast(pl.String).unique().to_frame("plain")
        right = right.with_columns(pl.col("plain").str.strip_chars_start("0").alias("key"))
        joined = left.join(right, on="key").filter(pl.col("id") != pl.col("plain"))
        pairs.append(joined.sort("id"))
    found = pl.concat(pairs) if pairs else pl.DataFrame()
    if found.is_empty():
        return None
    a, b = found.row(0)[0], found.row(0)[2]
    return (f"{found.height:,} {what} of {where} and {other_where} match only without leading "
            f"zeros (e.g. '{a}' and '{b}'); ids are compared as text, so they were not "
            "matched: export the ids as text in both files")


def unknown_warning(
    bad: pl.DataFrame, parents: pl.DataFrame, name: str, invoices: str
) -> list[str]:
    """Leading-zero warning for references that found no invoice (``unknown_invoice``):
    ``bad`` are a child table's decoded bad rows, ``parents`` the checked invoices."""
    unknown = bad.filter(pl.col(RULE) == "unknown_invoice")
    if unknown.is_empty() or parents.is_empty():
        return []
    kept = parents.filter(pl.col(RULE) == 0).get_column(value("invoice_id"))
    found = leading_zero_warning(
        unknown.get_column(value("invoice_id")).drop_nulls(), kept,
        what="invoice ids", where=name, other_where=invoices)
    return [found] if found else []


def bare_warning(accounts: pl.DataFrame, seen: pl.DataFrame, name: str, invoices: str
                  ) -> list[str]:
    """Leading-zero warning for invoiced accounts the accounts file lacks."""
    missing = bare_accounts(accounts, seen)
    if missing.is_empty():
        return []
    found = leading_zero_warning(
        missing.get_column("account_id"), accounts.get_column("account_id"),
        what="account ids", where=invoices, other_where=name)
    return [found] if found else []


# ------------------------------------------------------------------ run-level checks


@dataclass(frozen=True)
class RunTotals:
    """What a scoring run publishes, in three numbers: ``open_balance`` (book currency,
    summed over the accounts scored), ``share_late`` (0-1: accounts in the ``late``
    segment over accounts scored) and ``accounts`` (scored)."""

    open_balance: float
    share_late: float
    accounts: int

    @classmethod
    def of(cls, features: pl.DataFrame | object) -> RunTotals:
        """The totals of a feature frame (``features.build_features``: one row per account
        scored, with ``open_balance`` and ``segment``)."""
        frame = features if isinstance(features, pl.DataFrame) else pl.from_pandas(
            features[["open_balance", "segment"]])  # type: ignore[index]
        n = frame.height
        late = frame.filter(pl.col("segment") == "late").height
        return cls(float(frame.get_column("open_balance").sum()) if n else 0.0,
                   late / n if n else 0.0, n)

    def as_meta(self) -> dict[str, float | int]:
        """The totals as a run's meta entry (JSON)."""
        return {"open_balance": round(self.open_balance, 2),
                "share_late": round(self.share_late, 6), "accounts": self.accounts}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object] | None) -> RunTotals | None:
        """Totals recorded by :meth:`as_meta` (None when a run recorded none)."""
        if not meta or not {"open_balance", "share_late", "accounts"} <= set(meta):
            return None
        return cls(float(meta["open_balance"]), float(meta["share_late"]),  # type: ignore[arg-type]
                   int(meta["accounts"]))  # type: ignore[call-overload]


def as_of_anomalies(*, as_of: date, last_event: date, plausible: Plausibility) -> list[Anomaly]:
    """``as_of_beyond_data`` when ``as_of`` is more than ``plausible.max_days_beyond_data``
    days after the book's last event (``last_event``, e.g. ``Book.last_date``)."""
    gap = (as_of - last_event).days
    if gap <= plausible.max_days_beyond_data:
        return []
    return [Anomaly("as_of", None, "as_of_beyond_data",
                    f"{as_of.isoformat()} is {gap:,} days after the data's last event "
                    f"({last_event.isoformat()}; at most {plausible.max_days_beyond_data} "
                    "allowed): every account would look that much later than it is")]


def totals_anomalies(current: RunTotals, previous: RunTotals | None, *,
                     plausible: Plausibility, previous_as_of: date | None = None
                     ) -> list[Anomaly]:
    """``totals_jump`` for each total that moved beyond its threshold since the last
    published run (``previous``; nothing to compare when None). Pure: numbers in, findings
    out."""
    if previous is None:
        return []
    since = f" since the run of {previous_as_of.isoformat()}" if previous_as_of else ""
    out = []

    def relative(now: float, before: float) -> float:
        return abs(now - before) / before if before else (0.0 if now == before else 1.0)

    for name, now, before, limit in (
        ("open balance", current.open_balance, previous.open_balance,
         plausible.max_balance_change),
        ("accounts scored", current.accounts, previous.accounts,
         plausible.max_accounts_change),
    ):
        change = relative(now, before)
        if change > limit:
            out.append(Anomaly("run", None, "totals_jump",
                               f"{name} {now:,.0f} against {before:,.0f}{since} "
                               f"({change:.0%} change, at most {limit:.0%} allowed)"))
    moved = abs(current.share_late - previous.share_late)
    if moved > plausible.max_late_share_change:
        out.append(Anomaly("run", None, "totals_jump",
                           f"share of accounts late {current.share_late:.1%} against "
                           f"{previous.share_late:.1%}{since} ({moved * 100:.1f} points, at "
                           f"most {plausible.max_late_share_change * 100:.0f} allowed)"))
    return out
