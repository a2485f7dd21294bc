"""Numba kernels: one pass per ``as_of`` over a ``Prepared`` book (see ``features.pit.features``).

Each account's invoices are contiguous and each invoice's payments are sorted by date, so
the known payments of an invoice are a prefix of its slice and every feature family is a
running aggregate: the whole snapshot is one cache-friendly scan, parallel over accounts.
Definitions are in ``features.spec.FEATURE_SPEC`` and, written plainly, in
``bench/reference_features.py``; the tests hold the two equal.

What the kernels read from the spec arrives as arguments, never as compiled-in globals, so
numba's disk cache (which only watches this file) cannot hold a stale value:

- the output rows come in a numpy record (:data:`COLS`) with one field per kernel column
  name (``o[c.open_balance]``) and array fields for the windowed families
  (``o[c.n_cleared[w]]``). Its numba type spells every field name and offset, so any change
  of the spec's column layout is a new signature and a recompile;
- the windows, buckets and thresholds come in a second record (:data:`PARAMS`);
- the clearing tolerance is a plain integer argument.

The clearing rule is ``features.spec.clear_threshold`` (the cents rule of
``features.spec.is_cleared`` as one threshold per invoice), inlined into :func:`_pay_state`
and :func:`_clear_day`, which the label kernels (``features.pit.labels``) share. Helpers are
inlined at numba's level (``inline="always"``): LLVM does not inline a call into another
compiled function, and those calls made the labels pass ~40% slower (measured). Formulas are
compiled in, and numba's cache only watches each function's own file: after editing
``clear_threshold`` or these helpers, touch the files that use them (or delete their
``__pycache__``). The tolerance, the value a policy change touches, is an argument.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Final

import numba as nb
import numpy as np
import pandas as pd

from features.pit._prep import NEVER, NONE, Prepared, day_number
from features.spec import (
    AGING_BUCKETS,
    AGING_COLUMNS,
    BEHAVIOUR_WINDOWS,
    CLEAR_TOLERANCE_CENTS,
    DEFAULT_MATERIALITY,
    DUE_SOON_COLUMNS,
    DUE_SOON_DAYS,
    FACT_COLUMNS,
    FEATURE_COLUMNS,
    KERNEL_COLUMNS,
    KERNEL_INDEX,
    LATE_DAYS,
    SEGMENT_AMOUNT_COLUMNS,
    SEGMENT_EDGES,
    Materiality,
    behaviour_column,
    clear_threshold,
    material_segment,
)

_clear_threshold = nb.njit(inline="always")(clear_threshold)

#: "No upper end" for a window or bucket: beyond any day difference of real dates.
_UNBOUNDED: Final = 1 << 40


def _record(fields: dict[str, object]) -> np.void:
    """One numpy record (int64 scalars and int64 arrays) holding ``fields``."""
    values = {k: np.asarray(v, dtype=np.int64) for k, v in fields.items()}
    dtype = np.dtype([(k, np.int64, v.shape) for k, v in values.items()])
    rec = np.zeros(1, dtype)
    for k, v in values.items():
        rec[0][k] = v
    return rec[0]


def _behaviour_rows(metric: str) -> list[int]:
    return [KERNEL_INDEX[behaviour_column(metric, w)] for w in BEHAVIOUR_WINDOWS]


#: Output row of every kernel column by name, plus the windowed families as arrays.
COLS: Final = _record({
    **KERNEL_INDEX,
    "aging": [KERNEL_INDEX[c] for c in AGING_COLUMNS],
    "due_soon": [KERNEL_INDEX[c] for c in DUE_SOON_COLUMNS],
    "band": [KERNEL_INDEX[c] for c in SEGMENT_AMOUNT_COLUMNS[1:]],
    **{m: _behaviour_rows(m) for m in ("n_cleared", "days_late_mean", "days_late_max",
                                         "days_late_wmean")},
    "share_late": [_behaviour_rows(f"share_late_{k}d") for k in LATE_DAYS],
})
#: Windows (days; all history = unbounded), aging bucket DPD ranges, due-soon horizons and
#: days-late thresholds, as the spec defines them.
PARAMS: Final = _record({
    "win_days": [_UNBOUNDED if w is None else w for w in BEHAVIOUR_WINDOWS],
    "late_days": list(LATE_DAYS),
    "aging_lo": [lo for lo, _ in AGING_BUCKETS],
    "aging_hi": [_UNBOUNDED if hi is None else hi for _, hi in AGING_BUCKETS],
    "soon_days": list(DUE_SOON_DAYS),
    "band_dpd": list(SEGMENT_EDGES[1:]),
})


@nb.njit(cache=True, inline="always")
def _pay_state(i, as_of, tol, amount, pay_ptr, pay_day, pay_amt):
    """(paid dollars, clear day, first payment day, last payment day) of invoice ``i`` from
    its payments dated before ``as_of``; the clear day is the first day the running total
    satisfies the clearing rule with tolerance ``tol`` cents (NONE if none did)."""
    paid = 0.0
    thresh = _clear_threshold(amount[i], tol)
    clear = NONE
    first = NONE
    last = NONE
    for p in range(pay_ptr[i], pay_ptr[i + 1]):
        d = pay_day[p]
        if d >= as_of:
            break
        if first == NONE:
            first = d
        last = d
        paid += pay_amt[p]
        if clear == NONE and paid >= thresh:
            clear = d
    return paid, clear, first, last


@nb.njit(cache=True, inline="always")
def _clear_day(i, end, tol, amount, pay_ptr, pay_day, pay_amt):
    """Clear day of invoice ``i`` from its payments dated before ``end`` (NONE if not
    cleared): :func:`_pay_state`'s rule, stopping at the clearing payment."""
    paid = 0.0
    thresh = _clear_threshold(amount[i], tol)
    for p in range(pay_ptr[i], pay_ptr[i + 1]):
        if pay_day[p] >= end:
            break
        paid += pay_amt[p]
        if paid >= thresh:
            return pay_day[p]
    return NONE


@nb.njit(cache=True, inline="always")
def _open_disputes(i, as_of, dis_ptr, dis_open, dis_res):
    """Disputes of invoice ``i`` open at ``as_of``: opened before it, not resolved before it
    (a missing resolved date is NEVER). Called for open invoices only."""
    n = 0
    for q in range(dis_ptr[i], dis_ptr[i + 1]):
        if dis_open[q] >= as_of:
            break
        if dis_res[q] >= as_of:
            n += 1
    return n


@nb.njit(cache=True, inline="always")
def _credit_on_account(a, as_of, coa_ptr, coa_day, coa_amt):
    """Account ``a``'s unapplied credit known at ``as_of`` (changes dated before it), in
    whole cents' dollars and never negative: what nets its open balance."""
    coa = 0.0
    for q in range(coa_ptr[a], coa_ptr[a + 1]):
        if coa_day[q] >= as_of:
            break
        coa += coa_amt[q]
    return max(round(coa, 2), 0.0)


@nb.njit(cache=True)
def _median(x, n):
    """Median of ``x[:n]`` (sorts it in place). Shell sort by hand: ``np.median`` alone
    costs ~12 s of numba compile time on a small machine."""
    gap = n // 2
    while gap > 0:
        for i in range(gap, n):
            v = x[i]
            j = i
            while j >= gap and x[j - gap] > v:
                x[j] = x[j - gap]
                j -= gap
            x[j] = v
        gap //= 2
    mid = n // 2
    return x[mid] if n % 2 else 0.5 * (x[mid - 1] + x[mid])


@nb.njit(cache=True)
def _account_features(a, o, c, prm, as_of, tol, oldest_pos, acc_ptr, issue, due, amount,
                      pay_ptr, pay_day, pay_amt, dis_ptr, dis_open, dis_res, coa_ptr,
                      coa_day, coa_amt, credit_limit, created):
    """Fill column ``o`` (all NaN on entry; rows named by the record ``c``) with account
    ``a``'s features and facts, and ``oldest_pos[a]`` with the position of its oldest open
    invoice; untouched if the account has no open invoice. A plain function (not inlined
    into the parallel loop) keeps numba's compile time to seconds."""
    n_win = len(prm.win_days)
    n_late = len(prm.late_days)
    n_aging = len(prm.aging_lo)
    n_soon = len(prm.soon_days)
    n_band = len(prm.band_dpd)
    lo, hi = acc_ptr[a], acc_ptr[a + 1]
    n_open = 0
    bal = 0.0
    pdue = 0.0
    n_pd = 0
    oldest = NONE
    oldest_i = -1
    oldest_rest = 0.0
    partial = False
    not_due = 0.0
    aging = np.zeros(n_aging)
    soon = np.zeros(n_soon)
    band = np.zeros(n_band)
    largest = 0.0
    wn = np.zeros(n_win)
    wsum = np.zeros(n_win)
    wmax = np.full(n_win, -np.inf)
    wamt = np.zeros(n_win)
    wdl = np.zeros(n_win)
    wlate = np.zeros((n_late, n_win))
    last_clear = NONE
    last_dl = 0
    rec_n = 0
    rec_s = 0.0
    old_n = 0
    old_s = 0.0
    last_pay = NONE
    pp_n = 0
    pp_k = 0
    n90 = 0
    n365 = 0
    a90 = 0.0
    a365 = 0.0
    first_issue = NEVER
    terms = np.empty(hi - lo)
    nk = 0
    n_odis = 0
    amt_odis = 0.0
    n_dis365 = 0
    disputed365 = 0
    for i in range(lo, hi):
        if issue[i] >= as_of:
            continue
        amt = amount[i]
        paid, clear, first, last = _pay_state(i, as_of, tol, amount, pay_ptr, pay_day,
                                               pay_amt)
        if last > last_pay:
            last_pay = last
        is_open = clear == NONE
        rest = amt - paid
        if is_open:
            dpd = as_of - due[i]
            n_open += 1
            bal += rest
            if paid > 0.0:
                partial = True
            if dpd > oldest:  # strict: ties keep the invoice listed first
                oldest = dpd
                oldest_i = i
                oldest_rest = rest
            if rest > largest or n_open == 1:
                largest = rest
            if dpd >= 1:
                pdue += rest
                n_pd += 1
                for k in range(n_band):
                    if dpd >= prm.band_dpd[k]:
                        band[k] += rest
            if dpd <= 0:
                not_due += rest
                for k in range(n_soon):
                    if dpd > -prm.soon_days[k]:
                        soon[k] += rest
            else:
                for k in range(n_aging):
                    if prm.aging_lo[k] <= dpd <= prm.aging_hi[k]:
                        aging[k] += rest
                        break
        else:
            dl = clear - due[i]
            for w in range(n_win):
                if clear >= as_of - prm.win_days[w]:
                    wn[w] += 1
                    wsum[w] += dl
                    if dl > wmax[w]:
                        wmax[w] = dl
                    wamt[w] += amt
                    wdl[w] += amt * dl
                    for t in range(n_late):
                        if dl >= prm.late_days[t]:
                            wlate[t, w] += 1
            if clear > last_clear:
                last_clear = clear
                last_dl = dl
            elif clear == last_clear and dl > last_dl:
                last_dl = dl
            if clear >= as_of - 90:
                rec_n += 1
                rec_s += dl
            elif clear >= as_of - 365:
                old_n += 1
                old_s += dl
        if first != NONE and first >= as_of - 365:
            pp_n += 1
            if is_open or clear > first:
                pp_k += 1
        if issue[i] >= as_of - 90:
            n90 += 1
            a90 += amt
        in365 = issue[i] >= as_of - 365
        if in365:
            n365 += 1
            a365 += amt
        if issue[i] < first_issue:
            first_issue = issue[i]
        terms[nk] = due[i] - issue[i]
        nk += 1
        disputed = False
        for q in range(dis_ptr[i], dis_ptr[i + 1]):
            if dis_open[q] >= as_of:
                break
            disputed = True
            if dis_open[q] >= as_of - 365:
                n_dis365 += 1
        if is_open:
            k_odis = _open_disputes(i, as_of, dis_ptr, dis_open, dis_res)
            if k_odis > 0:
                n_odis += k_odis
                amt_odis += rest
        if disputed and in365:
            disputed365 += 1
    if n_open == 0:
        return
    # Credit on account (unapplied credit known at as_of) nets the balance, never below 0.
    coa = _credit_on_account(a, as_of, coa_ptr, coa_day, coa_amt)
    o[c.open_balance] = max(bal - coa, 0.0)
    o[c.credit_on_account] = coa
    o[c.past_due_amount] = pdue
    o[c.oldest_dpd] = oldest
    o[c.n_open_invoices] = n_open
    o[c.n_past_due_invoices] = n_pd
    o[c.amt_not_due] = not_due
    for k in range(n_aging):
        o[c.aging[k]] = aging[k]
    o[c.past_due_share] = pdue / bal
    for k in range(n_soon):
        o[c.due_soon[k]] = soon[k]
    o[c.largest_open_amount] = largest
    for w in range(n_win):
        o[c.n_cleared[w]] = wn[w]
        if wn[w] > 0:
            o[c.days_late_mean[w]] = wsum[w] / wn[w]
            o[c.days_late_max[w]] = wmax[w]
            o[c.days_late_wmean[w]] = wdl[w] / wamt[w]
            for t in range(n_late):
                o[c.share_late[t, w]] = wlate[t, w] / wn[w]
    if last_clear != NONE:
        o[c.days_late_last] = last_dl
    if rec_n > 0 and old_n > 0:
        o[c.days_late_trend_90d_vs_365d] = rec_s / rec_n - old_s / old_n
    if last_pay != NONE:
        o[c.days_since_last_payment] = as_of - last_pay
    if pp_n > 0:
        o[c.partial_payment_share_365d] = pp_k / pp_n
    o[c.n_invoices_90d] = n90
    o[c.n_invoices_365d] = n365
    o[c.amt_billed_90d] = a90
    o[c.amt_billed_365d] = a365
    if n365 > 0:
        o[c.avg_invoice_amount_365d] = a365 / n365
        o[c.dispute_rate_365d] = disputed365 / n365
    o[c.tenure_days] = as_of - first_issue
    o[c.terms_days_median] = _median(terms, nk)
    o[c.n_open_disputes] = n_odis
    o[c.amt_open_disputes] = amt_odis
    o[c.n_disputes_365d] = n_dis365
    if credit_limit[a] > 0:
        o[c.credit_utilisation] = bal / credit_limit[a]
    if created[a] != NONE:
        o[c.account_age_days] = as_of - created[a]
    o[c.oldest_invoice_open] = oldest_rest
    o[c.partial_payer] = 1.0 if partial else 0.0
    for k in range(n_band):
        o[c.band[k]] = band[k]
    oldest_pos[a] = oldest_i


@nb.njit(cache=True, nogil=True)
def _features_range(start, stop, out, c, prm, as_of, tol, oldest_pos, acc_ptr, issue, due,
                    amount, pay_ptr, pay_day, pay_amt, dis_ptr, dis_open, dis_res, coa_ptr,
                    coa_day, coa_amt, credit_limit, created):
    for a in range(start, stop):
        _account_features(a, out[:, a], c, prm, as_of, tol, oldest_pos, acc_ptr, issue, due,
                          amount, pay_ptr, pay_day, pay_amt, dis_ptr, dis_open, dis_res,
                          coa_ptr, coa_day, coa_amt, credit_limit, created)


@nb.njit(cache=True, nogil=True)
def _features_accounts(start, stop, accounts, out, c, prm, as_of, tol, oldest_pos, acc_ptr,
                       issue, due, amount, pay_ptr, pay_day, pay_amt, dis_ptr, dis_open,
                       dis_res, coa_ptr, coa_day, coa_amt, credit_limit, created):
    """:func:`_features_range` for the accounts ``accounts[start:stop]`` only (column ``j``
    of ``out`` is account ``accounts[j]``): a sampled training set computes no other."""
    for j in range(start, stop):
        _account_features(accounts[j], out[:, j], c, prm, as_of, tol, oldest_pos, acc_ptr,
                          issue, due, amount, pay_ptr, pay_day, pay_amt, dis_ptr, dis_open,
                          dis_res, coa_ptr, coa_day, coa_amt, credit_limit, created)


def run_chunked(kernel, n: int, *args: object) -> None:
    """Run ``kernel(start, stop, *args)`` over ``range(n)`` in chunks on a thread pool.

    The kernels release the GIL (``nogil``), so threads use every core. Plain threads
    rather than numba's ``parallel=True``: the parfor compile costs ~30 s here, a plain
    function a few seconds (and it is cached on disk after the first run).
    """
    workers = max(1, min(os.cpu_count() or 1, 8))
    if n < 10_000 or workers == 1:
        kernel(0, n, *args)
        return
    bounds = np.linspace(0, n, 4 * workers + 1).astype(np.int64)
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(kernel, int(lo), int(hi), *args)
                   for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        for f in futures:
            f.result()


def feature_matrix(prep: Prepared, as_of: date, *,
                   tolerance_cents: int = CLEAR_TOLERANCE_CENTS,
                   accounts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, oldest open invoice position) of one snapshot.

    The matrix is ``(len(KERNEL_COLUMNS), n_accounts)`` float64, feature-major so each
    output column is one contiguous slice; accounts with no open invoice are NaN. The
    positions (int64, -1 for those accounts) index ``prep``'s invoice order. With
    ``accounts`` (account rows, int64), only those are computed: column ``j`` is
    ``accounts[j]`` (the same kernel per account, so the same values).
    """
    n_acc = len(prep.acc_ptr) - 1
    oldest_pos = np.full(n_acc, -1, np.int64)
    args = (COLS, PARAMS, day_number(as_of), int(tolerance_cents), oldest_pos,
            prep.acc_ptr, prep.issue, prep.due, prep.amount, prep.pay_ptr, prep.pay_day,
            prep.pay_amt, prep.dis_ptr, prep.dis_open, prep.dis_res, prep.coa_ptr,
            prep.coa_day, prep.coa_amt, prep.credit_limit, prep.created)
    if accounts is None:
        out = np.full((len(KERNEL_COLUMNS), n_acc), np.nan)
        run_chunked(_features_range, n_acc, out, *args)
        return out, oldest_pos
    accounts = np.ascontiguousarray(accounts, dtype=np.int64)
    out = np.full((len(KERNEL_COLUMNS), len(accounts)), np.nan)
    run_chunked(_features_accounts, len(accounts), accounts, out, *args)
    return out, oldest_pos[accounts]


def feature_columns(prep: Prepared, as_of: date, *, facts: bool = False,
                    materiality: Materiality = DEFAULT_MATERIALITY,
                    accounts: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, object]]:
    """(account rows with an open invoice, {column: values}) of one snapshot, in the
    :func:`features.pit.build_features` column order minus ``account_id`` (with the
    :data:`features.spec.FACT_COLUMNS` last when ``facts``). The segment is the material
    segment (:func:`features.spec.material_segment`) under ``materiality``. With
    ``accounts`` (sorted account rows that all have an open invoice), the rows of those
    accounts only."""
    mat, oldest_pos = feature_matrix(prep, as_of, accounts=accounts)
    open_ = ~np.isnan(mat[KERNEL_INDEX["open_balance"]])
    if accounts is None:
        rows = pos = np.flatnonzero(open_)  # account rows; their matrix columns
    else:
        if not open_.all():
            raise AssertionError("an account asked for has no open invoice at as_of")
        rows, pos = np.asarray(accounts, dtype=np.int64), np.arange(len(accounts))
    bands = [mat[KERNEL_INDEX[c], pos] for c in SEGMENT_AMOUNT_COLUMNS]
    cols: dict[str, object] = {
        "as_of": np.full(len(rows), np.datetime64(as_of, "s")),
        "segment": material_segment(bands, mat[KERNEL_INDEX["open_balance"], pos],
                                    materiality=materiality),
    }
    for name in FEATURE_COLUMNS:
        if name in KERNEL_INDEX:
            cols[name] = mat[KERNEL_INDEX[name], pos]
    for name, codes, cats in (("account_segment", prep.segment_codes, prep.segment_cats),
                              ("account_region", prep.region_codes, prep.region_cats)):
        cols[name] = pd.Categorical.from_codes(codes[rows], categories=cats)
    if facts:
        cols["oldest_invoice_id"] = prep.invoice_id_column(oldest_pos[pos])
        cols["oldest_invoice_open"] = mat[KERNEL_INDEX["oldest_invoice_open"], pos]
        cols["partial_payer"] = mat[KERNEL_INDEX["partial_payer"], pos] > 0
        cols["credit_on_account"] = mat[KERNEL_INDEX["credit_on_account"], pos]
        for name in SEGMENT_AMOUNT_COLUMNS[1:]:
            cols[name] = mat[KERNEL_INDEX[name], pos]
    del mat
    names = ("as_of", "segment", *FEATURE_COLUMNS, *(FACT_COLUMNS if facts else ()))
    return rows, {c: cols[c] for c in names}


def account_id_column(prep: Prepared, rows: np.ndarray) -> pd.Series:
    """The ``account_id`` column (pandas ``str``) of the given account rows."""
    return pd.Series(prep.account_ids.take(rows), dtype="str")


def features_frame(prep: Prepared, as_of: date, *, facts: bool = False,
                   materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
    """The :func:`features.pit.build_features` frame from a prepared book."""
    rows, cols = feature_columns(prep, as_of, facts=facts, materiality=materiality)
    return pd.DataFrame({"account_id": account_id_column(prep, rows), **cols})
