"""Receivables KPIs of one run (issue 17): what a collections manager is measured on.

Pure functions of a book and ``as_of`` (everything dated strictly before ``as_of``, as for
the features). Money is in the book's currency, days in days, rates in percent (0-100).
Open amounts are the features' (:func:`features.pit.open_invoices`: net of the payments and
credits applied by the one openness rule).

- **Total AR** = the sum of the accounts' ``open_balance`` (open invoices less the account's
  unapplied credit on account, never below 0 per account).
- **Aging** of the open invoices by days past due (``as_of - due_date``): ``current``
  (0 or fewer), then :data:`features.spec.AGING_BUCKETS` (1-30, 31-60, 61-90, 91+).
  ``unapplied_credit`` is the credit on account that nets those accounts' balances (it
  belongs to no invoice), so ``sum(aging) - unapplied_credit = total_ar``.
- **Current AR** = ``min(aging current, total AR)``.
- **Months** are calendar months counted back from ``as_of``: month 1 is
  ``[as_of - 1 month, as_of)``, month 2 the one before, the same day of the month (clipped
  to the month's end: 03-31 less a month is 02-29), so each has 28-31 days; when ``as_of``
  is the 1st they are exactly the calendar months.
- **Credit sales** of a month = invoice amounts issued in it less credit notes issued in it
  (net credit sales).
- **DSO (countback)**: take total AR; walk back month by month: while what is left exceeds
  the month's credit sales, subtract them and add the month's days; then add
  ``left / sales x days`` of that month and stop. A month with no (or negative net) sales
  adds its days and absorbs nothing. The walk stops at the book's first invoice: what is
  left then adds nothing more. 0 when AR is 0; None when nothing was issued before as_of.
- **Best possible DSO**: the same countback on current AR (what DSO would be were nothing
  past due). **Average days delinquent** = DSO - best possible DSO (>= 0).
- **CEI** (collection effectiveness index) over month 1 = ``(B + S - E) / (B + S - Ec) x
  100``: B = total AR at the month's start, S = its credit sales, E = total AR at as_of,
  Ec = current AR at as_of. None when the denominator is not positive.
- **Promise kept rate**: of the promises to pay falling due in the last month and decided
  (kept or broken, ``features.pit.promises``), the share kept; None without any.
- **Collected from the last worklist**: payments dated in ``[previous as_of, as_of)`` on
  invoices of the accounts of the previous run's worklist (cash only: credit notes are not
  collections).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any, Final

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.book import Book
from features.keys import is_in
from features.pit._prep import Prepared, day_number, prepare
from features.pit.open_invoices import open_state
from features.pit.promises import DEFAULT_GRACE_DAYS, PAYMENT_COLUMNS, promise_state
from features.spec import AGING_BUCKETS, as_day

#: Aging bucket names, in order: not yet due, then :data:`features.spec.AGING_BUCKETS`.
AGING_NAMES: Final = ("current", *(f"{lo}+" if hi is None else f"{lo}-{hi}"
                                   for lo, hi in AGING_BUCKETS))


@dataclass(frozen=True)
class Receivables:
    """Open receivables at one ``as_of`` (book currency): ``total_ar`` (net), ``aging``
    (bucket name -> open invoice amounts), ``unapplied_credit`` and ``current_ar``."""

    total_ar: float
    aging: dict[str, float]
    unapplied_credit: float
    current_ar: float


@dataclass(frozen=True)
class Kpis:
    """The KPIs of one run (see the module docstring for each formula and unit)."""

    as_of: date
    total_ar: float
    aging: dict[str, float]
    unapplied_credit: float
    dso: float | None
    best_possible_dso: float | None
    average_days_delinquent: float | None
    cei: float | None
    promise_kept_rate: float | None
    collected_from_worklist: float | None
    previous_as_of: date | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO strings): what a run stores under ``meta["kpis"]``."""
        out = asdict(self)
        for key in ("as_of", "previous_as_of"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def months_back(as_of: date, k: int) -> date:
    """``as_of`` less ``k`` calendar months, the day clipped to the month's end."""
    total = as_of.year * 12 + (as_of.month - 1) - k
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(as_of.day, calendar.monthrange(year, month)[1]))


def _receivable_sums(prep: Prepared, as_of: date) -> tuple[float, dict[str, float], float]:
    """Unrounded ``(total AR, aging, unapplied credit)`` at ``as_of``: sums over accounts,
    so those of disjoint account sets add up (:func:`merge_kpi_parts`)."""
    state = open_state(prep, as_of)
    # the account of each open position only (the CSR offsets' search), not of every
    # invoice: at 1M accounts an int64 per invoice was 0.4 GB at the KPIs' peak
    acc_of_open = np.searchsorted(prep.acc_ptr, state.positions, side="right") - 1
    per_acc = np.bincount(acc_of_open, weights=state.amount_open,
                          minlength=len(state.accounts))
    has_open = np.bincount(acc_of_open, minlength=len(state.accounts)) > 0
    netted = np.where(has_open, np.minimum(state.credit_on_account, per_acc), 0.0)
    total = float(np.maximum(per_acc - netted, 0.0)[has_open].sum())
    dpd = state.days_past_due
    aging = {"current": float(state.amount_open[dpd <= 0].sum())}
    for name, (lo, hi) in zip(AGING_NAMES[1:], AGING_BUCKETS, strict=True):
        in_bucket = (dpd >= lo) if hi is None else ((dpd >= lo) & (dpd <= hi))
        aging[name] = float(state.amount_open[in_bucket].sum())
    return total, aging, float(netted.sum())


def _rounded(total: float, aging: dict[str, float], netted: float) -> Receivables:
    return Receivables(total_ar=round(total, 2), aging={k: round(v, 2) for k, v in aging.items()},
                       unapplied_credit=round(netted, 2),
                       current_ar=round(min(aging["current"], total), 2))


def _receivables(prep: Prepared, as_of: date) -> Receivables:
    return _rounded(*_receivable_sums(prep, as_of))


def receivables(book: Book, *, as_of: date | pd.Timestamp) -> Receivables:
    """Total AR, aging buckets, unapplied credit and current AR at ``as_of``."""
    return _receivables(prepare(book), as_day(as_of))


@nb.njit(cache=True, nogil=True)
def _binned_sums(issue, bounds, amount):
    """Per ``[bounds[i], bounds[i + 1])`` the sum of ``amount`` of the rows whose ``issue``
    falls in it, added in row order (as ``np.bincount`` adds its weights: the same floats),
    in one pass: a search and a bin array over every invoice took 0.6 s at 300k accounts
    (15M invoices)."""
    n = len(bounds) - 1
    out = np.zeros(max(n, 0), np.float64)
    for i in range(len(issue)):
        s = issue[i]
        if n <= 0 or s < bounds[0] or s >= bounds[n]:
            continue  # outside every month
        lo, hi = 0, n  # bounds[lo] <= s < bounds[hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if bounds[mid] <= s:
                lo = mid
            else:
                hi = mid
        out[lo] += amount[i]
    return out


def _sales_between(book: Book, edges: Sequence[date]) -> np.ndarray:
    """Net credit sales of each ``[edges[i], edges[i + 1])`` (ascending edges), unrounded."""
    # seconds since 1970 against the edges' midnights: the same months as whole days
    # (floor(s / 86400) >= d exactly when s >= d * 86400), without a division per invoice
    issue = book.invoices["issue_date"].to_numpy("datetime64[s]").view(np.int64)
    bounds = np.asarray([day_number(d) * 86400 for d in edges], dtype=np.int64)
    return _binned_sums(issue, bounds, book.invoices["amount"].to_numpy(np.float64))


def credit_sales(book: Book, *, start: date, end: date) -> float:
    """Net credit sales of ``[start, end)``: invoice amounts issued in it less credit notes
    (negative invoice rows) issued in it (book currency; may be 0 or negative)."""
    if end <= start:
        return 0.0
    return round(float(_sales_between(book, [start, end])[0]), 2)


def countback_days(receivable: float, months: Sequence[tuple[float, int]]) -> float:
    """Countback: days of sales (latest month first, ``(credit sales, days)``) that
    ``receivable`` amounts to (see the module docstring); what is left after the last
    month adds nothing more."""
    left = float(receivable)
    days = 0.0
    for sales, n_days in months:
        if left <= 0:
            break
        if sales > 0 and left <= sales:
            return days + left / sales * n_days
        days += n_days
        left -= max(sales, 0.0)
    return days


def _month_edges(first: date | None, as_of: date) -> list[date]:
    """Month edges from ``as_of`` back past ``first`` (the first invoice before
    ``as_of``), ascending; none without one."""
    if first is None:
        return []
    edges, k = [as_of], 1
    while edges[-1] > first:
        edges.append(months_back(as_of, k))
        k += 1
    return edges[::-1]


def _first_issue(book: Book, as_of: date) -> date | None:
    issued = book.invoices["issue_date"]
    issued = issued[issued < pd.Timestamp(as_of)]
    return None if issued.empty else issued.min().date()


def _months_of(sales: Sequence[float], edges: Sequence[date]) -> list[tuple[float, int]]:
    """``(credit sales, days)`` per month, latest first, from sales between ``edges``."""
    days = [(b - a).days for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [(round(float(x), 2), n) for x, n in zip(sales, days, strict=True)][::-1]


def _sales_months(book: Book, as_of: date) -> list[tuple[float, int]]:
    """``(credit sales, days)`` of the months back from ``as_of`` down to the book's first
    invoice (latest first)."""
    edges = _month_edges(_first_issue(book, as_of), as_of)
    if not edges:
        return []
    return _months_of(_sales_between(book, edges), edges)


def _dso_pair(book: Book, as_of: date, now: Receivables) -> tuple[float | None, float | None]:
    months = _sales_months(book, as_of)
    if not months:
        return None, None
    return (round(countback_days(now.total_ar, months), 2),
            round(countback_days(now.current_ar, months), 2))


def dso_countback(book: Book, *, as_of: date | pd.Timestamp) -> float | None:
    """Days sales outstanding at ``as_of`` by the countback method (days)."""
    day = as_day(as_of)
    return _dso_pair(book, day, receivables(book, as_of=day))[0]


def best_possible_dso(book: Book, *, as_of: date | pd.Timestamp) -> float | None:
    """Best possible DSO at ``as_of``: the countback of current AR (days)."""
    day = as_day(as_of)
    return _dso_pair(book, day, receivables(book, as_of=day))[1]


def average_days_delinquent(book: Book, *, as_of: date | pd.Timestamp) -> float | None:
    """DSO - best possible DSO at ``as_of`` (days)."""
    day = as_day(as_of)
    dso, best = _dso_pair(book, day, receivables(book, as_of=day))
    return None if dso is None or best is None else round(dso - best, 2)


def _cei(begin: Receivables, sales: float, end: Receivables) -> float | None:
    denominator = begin.total_ar + sales - end.current_ar
    if denominator <= 0:
        return None
    return round((begin.total_ar + sales - end.total_ar) / denominator * 100.0, 2)


def collection_effectiveness_index(book: Book, *, as_of: date | pd.Timestamp) -> float | None:
    """CEI over the month before ``as_of`` (percent; see the module docstring)."""
    day = as_day(as_of)
    prep = prepare(book)
    start = months_back(day, 1)
    return _cei(_receivables(prep, start), credit_sales(book, start=start, end=day),
                _receivables(prep, day))


def _promise_counts(book: Book, as_of: date, grace_days: int) -> tuple[int, int]:
    """``(kept, decided)`` promises falling due in the month before ``as_of`` (see
    :func:`promise_kept_rate`): counts, so those of disjoint account sets add up."""
    start, cut = pd.Timestamp(months_back(as_of, 1)), pd.Timestamp(as_of)
    promises = book.promises
    due = ((promises["promised_date"] >= start) & (promises["promised_date"] < cut)).to_numpy()
    if not due.any():
        return 0, 0
    # A promise's state reads its own row and the payments dated from its creation to
    # before as_of, so the states of the month's promises alone, against those payments
    # alone, are theirs in the whole book: the payment matching (~5M ids hashed at 100k
    # accounts) then runs on a few weeks of payments instead of the book's history.
    # (only the columns the rule reads: the ids of every other column taken over the
    # month's payments cost 0.5 s at 300k accounts)
    promises = promises[due]
    paid = book.payments["payment_date"]
    recent = ((paid >= promises["created_date"].min()) & (paid < cut)).to_numpy()
    payments = book.payments[list(PAYMENT_COLUMNS)][recent]
    states = promise_state(replace(book, promises=promises, payments=payments),
                           as_of=as_of, grace_days=grace_days)
    decided = states[states["state"].isin(["kept", "broken"])]
    return int((decided["state"] == "kept").sum()), int(len(decided))


def _kept_rate(kept: int, decided: int) -> float | None:
    return None if not decided else float(kept / decided * 100.0)


def promise_kept_rate(book: Book, *, as_of: date | pd.Timestamp,
                      grace_days: int = DEFAULT_GRACE_DAYS) -> float | None:
    """Share (percent) of the promises to pay falling due in the month before ``as_of``
    (promised date in ``[as_of - 1 month, as_of)``) that were kept, among those decided
    at ``as_of`` (kept or broken, ``features.pit.promises.promise_state``; cancelled and
    still open ones are left out): ``kept / (kept + broken) x 100``. None when no such
    promise is decided (a book without promises included)."""
    return _kept_rate(*_promise_counts(book, as_day(as_of), grace_days))


def collected_from(book: Book, *, account_ids: Iterable[str], since: date,
                   as_of: date | pd.Timestamp) -> float:
    """Cash collected from ``account_ids``: payments dated in ``[since, as_of)`` on their
    invoices (book currency); ``since`` is the previous run's as_of."""
    day = as_day(as_of)
    if since > day:
        raise ValueError(f"since ({since}) is after as_of ({day})")
    return round(_collected_sum(book, account_ids=account_ids, since=since, as_of=day), 2)


def _collected_sum(book: Book, *, account_ids: Iterable[str], since: date,
                   as_of: date) -> float:
    inv, pay = book.invoices, book.payments
    ids = pa.array([str(a) for a in account_ids], type=pa.string())
    theirs = pa.array(is_in(inv["account_id"], ids))  # (codes: through their categories)
    pay_inv = pa.array(pay["invoice_id"])
    invoices = pa.array(inv["invoice_id"]).filter(theirs).cast(pay_inv.type)
    mine = pc.is_in(pay_inv, value_set=invoices)
    when = pay["payment_date"]
    dated = ((when >= pd.Timestamp(since)) & (when < pd.Timestamp(as_of))).to_numpy(bool)
    paid = pay["amount"].to_numpy(np.float64)[dated & mine.to_numpy(zero_copy_only=False)]
    return float(paid.sum())


def compute_kpis(book: Book, *, as_of: date | pd.Timestamp,
                 previous: tuple[date, Iterable[str]] | None = None,
                 prepared: Prepared | None = None) -> Kpis:
    """Every KPI of a run at ``as_of``; ``previous``: the previous run's ``(as_of, worklist
    account ids)``, for the amount collected since (None: no previous run). ``prepared``:
    ``book`` already encoded (``features.pit.snapshot.prepare_book``), so it is not
    encoded again."""
    day = as_day(as_of)
    prep = prepare(book) if prepared is None else prepared
    now = _receivables(prep, day)
    dso, best = _dso_pair(book, day, now)
    start = months_back(day, 1)
    cei = _cei(_receivables(prep, start), credit_sales(book, start=start, end=day), now)
    collected = None
    if previous is not None:
        collected = collected_from(book, account_ids=previous[1], since=previous[0], as_of=day)
    return Kpis(
        as_of=day, total_ar=now.total_ar, aging=now.aging,
        unapplied_credit=now.unapplied_credit, dso=dso, best_possible_dso=best,
        average_days_delinquent=None if dso is None or best is None else round(dso - best, 2),
        cei=cei, promise_kept_rate=promise_kept_rate(book, as_of=day),
        collected_from_worklist=collected,
        previous_as_of=None if previous is None else previous[0])


def kpi_part(book: Book, *, as_of: date | pd.Timestamp, first_issue: date | None,
             previous: tuple[date, Iterable[str]] | None = None,
             prepared: Prepared | None = None) -> dict[str, Any]:
    """The additive pieces of the KPIs of ``book``, one account partition of a larger book
    (JSON-ready, unrounded sums): receivables at ``as_of`` and a month before, credit sales
    per month back to ``first_issue`` (the *whole* book's first invoice before ``as_of``),
    the month's sales, the amount collected from ``previous``'s accounts, the promises
    kept and decided. ``prepared``: ``book`` already encoded (as :func:`compute_kpis`).
    :func:`merge_kpi_parts` of the parts of every partition is :func:`compute_kpis` of the
    whole book (to the cent: sums are rounded once, after adding)."""
    day = as_day(as_of)
    prep = prepare(book) if prepared is None else prepared
    start = months_back(day, 1)
    edges = _month_edges(first_issue, day)
    collected = None
    if previous is not None:
        collected = _collected_sum(book, account_ids=previous[1], since=previous[0], as_of=day)
    # the last month of the walk back is [start, day): the CEI's month, not summed again
    # (without edges nothing was issued before as_of in the whole book: no sales)
    sales = [float(x) for x in _sales_between(book, edges)] if edges else []
    return {"now": _receivable_sums(prep, day), "begin": _receivable_sums(prep, start),
            "edges": [d.isoformat() for d in edges], "sales": sales,
            "month_sales": sales[-1] if sales else 0.0,
            "collected": collected,
            "promises": list(_promise_counts(book, day, DEFAULT_GRACE_DAYS))}


def merge_kpi_parts(parts: Sequence[dict[str, Any]], *, as_of: date | pd.Timestamp,
                    previous_as_of: date | None = None) -> Kpis:
    """The KPIs of a book from the :func:`kpi_part` of each of its account partitions."""
    day = as_day(as_of)

    def receivable(key: str) -> Receivables:
        total = sum(float(p[key][0]) for p in parts)
        aging = {name: sum(float(p[key][1][name]) for p in parts) for name in AGING_NAMES}
        return _rounded(total, aging, sum(float(p[key][2]) for p in parts))

    now, begin = receivable("now"), receivable("begin")
    edges = [date.fromisoformat(d) for d in parts[0]["edges"]] if parts else []
    dso = best = None
    if edges:
        sales = np.sum([p["sales"] for p in parts], axis=0)
        months = _months_of(sales, edges)
        dso = round(countback_days(now.total_ar, months), 2)
        best = round(countback_days(now.current_ar, months), 2)
    month_sales = round(sum(float(p["month_sales"]) for p in parts), 2)
    collected = None
    if previous_as_of is not None:
        collected = round(sum(float(p["collected"] or 0.0) for p in parts), 2)
    return Kpis(
        as_of=day, total_ar=now.total_ar, aging=now.aging,
        unapplied_credit=now.unapplied_credit, dso=dso, best_possible_dso=best,
        average_days_delinquent=None if dso is None or best is None else round(dso - best, 2),
        cei=_cei(begin, month_sales, now),
        promise_kept_rate=_kept_rate(sum(int(p["promises"][0]) for p in parts),
                                     sum(int(p["promises"][1]) for p in parts)),
        collected_from_worklist=collected, previous_as_of=previous_as_of)
