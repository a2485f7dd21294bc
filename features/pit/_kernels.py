"""Numba kernels: one pass per ``as_of`` over a ``Prepared`` book (see ``features.pit.features``).

Each account's invoices are contiguous and each invoice's payments are sorted by date, so
the known payments of an invoice are a prefix of its slice and every feature family is a
running aggregate: the whole snapshot is one cache-friendly scan, parallel over accounts.
Definitions are in ``features.pit.FEATURE_SPEC`` and, written plainly, in
``bench/reference_features.py``; the tests hold the two equal.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numba as nb
import numpy as np
import pandas as pd

from features.pit._prep import NEVER, NONE, Prepared
from features.spec import CLEAR_SLACK  # a compile-time constant: bump the cache if changed

_WIN = ("90d", "180d", "365d", "all")
#: Column order of the kernel's output matrix (the literal indices below follow it).
KERNEL_COLUMNS: Final = (
    "open_balance", "past_due_amount", "oldest_dpd", "n_open_invoices", "n_past_due_invoices",
    "amt_not_due", "amt_dpd_1_30", "amt_dpd_31_60", "amt_dpd_61_90", "amt_dpd_91_plus",
    "past_due_share", "amt_due_next_7d", "amt_due_next_14d", "amt_due_next_30d",
    "largest_open_amount",
    *[f"{m}_{w}" for w in _WIN for m in (
        "n_cleared", "days_late_mean", "days_late_max", "days_late_wmean", "share_late_1d",
        "share_late_15d", "share_late_30d")],
    "days_late_last", "days_late_trend_90d_vs_365d", "days_since_last_payment",
    "partial_payment_share_365d", "n_invoices_90d", "n_invoices_365d", "amt_billed_90d",
    "amt_billed_365d", "avg_invoice_amount_365d", "tenure_days", "terms_days_median",
    "n_open_disputes", "amt_open_disputes", "n_disputes_365d", "dispute_rate_365d",
    "credit_utilisation", "account_age_days",
)
_NK = 60


@nb.njit(cache=True)
def _pay_state(i, as_of, amount, pay_ptr, pay_day, pay_amt):
    """(paid, clear day, first payment day, last payment day) from payments before as_of."""
    paid = 0.0
    clear = NONE
    first = NONE
    last = NONE
    thresh = amount[i] - CLEAR_SLACK
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
def _account_features(a, o, as_of, acc_ptr, issue, due, amount, pay_ptr, pay_day, pay_amt,
                      dis_ptr, dis_open, dis_res, credit_limit, created):
    """Fill row ``o`` (all NaN on entry) with account ``a``'s features; untouched if the
    account has no open invoice. A plain function (not inlined into the parallel loop)
    keeps numba's compile time to seconds."""
    wins = np.array([90, 180, 365, 1 << 40], np.int64)
    lo, hi = acc_ptr[a], acc_ptr[a + 1]
    n_open = 0
    bal = 0.0
    pdue = 0.0
    n_pd = 0
    oldest = NONE
    b = np.zeros(5)
    nx = np.zeros(3)
    largest = 0.0
    wn = np.zeros(4)
    wsum = np.zeros(4)
    wmax = np.full(4, -np.inf)
    wamt = np.zeros(4)
    wdl = np.zeros(4)
    w1 = np.zeros(4)
    w15 = np.zeros(4)
    w30 = np.zeros(4)
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
        paid, clear, first, last = _pay_state(i, as_of, amount, pay_ptr, pay_day, pay_amt)
        if last > last_pay:
            last_pay = last
        is_open = clear == NONE
        rest = amt - paid
        if is_open:
            dpd = as_of - due[i]
            n_open += 1
            bal += rest
            if dpd > oldest:
                oldest = dpd
            if rest > largest or n_open == 1:
                largest = rest
            if dpd >= 1:
                pdue += rest
                n_pd += 1
            if dpd <= 0:
                b[0] += rest
                if dpd > -7:
                    nx[0] += rest
                if dpd > -14:
                    nx[1] += rest
                if dpd > -30:
                    nx[2] += rest
            elif dpd <= 30:
                b[1] += rest
            elif dpd <= 60:
                b[2] += rest
            elif dpd <= 90:
                b[3] += rest
            else:
                b[4] += rest
        else:
            dl = clear - due[i]
            for w in range(4):
                if clear >= as_of - wins[w]:
                    wn[w] += 1
                    wsum[w] += dl
                    if dl > wmax[w]:
                        wmax[w] = dl
                    wamt[w] += amt
                    wdl[w] += amt * dl
                    if dl >= 1:
                        w1[w] += 1
                    if dl >= 15:
                        w15[w] += 1
                    if dl >= 30:
                        w30[w] += 1
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
        open_dis = False
        for q in range(dis_ptr[i], dis_ptr[i + 1]):
            if dis_open[q] >= as_of:
                break
            disputed = True
            if dis_open[q] >= as_of - 365:
                n_dis365 += 1
            if is_open and dis_res[q] >= as_of:
                n_odis += 1
                open_dis = True
        if open_dis:
            amt_odis += rest
        if disputed and in365:
            disputed365 += 1
    if n_open == 0:
        return
    o[0] = bal
    o[1] = pdue
    o[2] = oldest
    o[3] = n_open
    o[4] = n_pd
    for k in range(5):
        o[5 + k] = b[k]
    o[10] = pdue / bal
    for k in range(3):
        o[11 + k] = nx[k]
    o[14] = largest
    for w in range(4):
        c = 15 + 7 * w
        o[c] = wn[w]
        if wn[w] > 0:
            o[c + 1] = wsum[w] / wn[w]
            o[c + 2] = wmax[w]
            o[c + 3] = wdl[w] / wamt[w]
            o[c + 4] = w1[w] / wn[w]
            o[c + 5] = w15[w] / wn[w]
            o[c + 6] = w30[w] / wn[w]
    if last_clear != NONE:
        o[43] = last_dl
    if rec_n > 0 and old_n > 0:
        o[44] = rec_s / rec_n - old_s / old_n
    if last_pay != NONE:
        o[45] = as_of - last_pay
    if pp_n > 0:
        o[46] = pp_k / pp_n
    o[47] = n90
    o[48] = n365
    o[49] = a90
    o[50] = a365
    if n365 > 0:
        o[51] = a365 / n365
        o[57] = disputed365 / n365
    o[52] = as_of - first_issue
    o[53] = _median(terms, nk)
    o[54] = n_odis
    o[55] = amt_odis
    o[56] = n_dis365
    if credit_limit[a] > 0:
        o[58] = bal / credit_limit[a]
    if created[a] != NONE:
        o[59] = as_of - created[a]


@nb.njit(cache=True, nogil=True)
def _features_range(start, stop, out, as_of, acc_ptr, issue, due, amount, pay_ptr, pay_day,
                    pay_amt, dis_ptr, dis_open, dis_res, credit_limit, created):
    for a in range(start, stop):
        _account_features(a, out[:, a], as_of, acc_ptr, issue, due, amount, pay_ptr, pay_day,
                          pay_amt, dis_ptr, dis_open, dis_res, credit_limit, created)


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


def _features(as_of, acc_ptr, *arrays):
    n_acc = len(acc_ptr) - 1
    # feature-major, so each output column is one contiguous slice
    out = np.full((_NK, n_acc), np.nan)
    run_chunked(_features_range, n_acc, out, as_of, acc_ptr, *arrays)
    return out


def _day_number(ts: pd.Timestamp) -> int:
    """Days since 1970-01-01 of a midnight Timestamp."""
    return int((ts.to_datetime64().astype("datetime64[D]")).astype(np.int64))


def feature_matrix(prep: Prepared, as_of: pd.Timestamp) -> np.ndarray:
    """(len(KERNEL_COLUMNS), n_accounts) float64; accounts with no open invoice are NaN."""
    return _features(
        _day_number(as_of), prep.acc_ptr, prep.issue, prep.due, prep.amount, prep.pay_ptr,
        prep.pay_day, prep.pay_amt, prep.dis_ptr, prep.dis_open, prep.dis_res,
        prep.credit_limit, prep.created)


def feature_columns(prep: Prepared, as_of: pd.Timestamp) -> tuple[np.ndarray, dict]:
    """(account rows with an open invoice, {column: values}) of one snapshot, in the
    :func:`features.pit.build_features` column order minus ``account_id``."""
    from features.spec import FEATURE_COLUMNS, segment_of

    mat = feature_matrix(prep, as_of)
    rows = np.flatnonzero(~np.isnan(mat[0]))
    cols: dict[str, object] = {
        "as_of": np.full(len(rows), as_of.to_datetime64(), dtype="datetime64[s]"),
        "segment": segment_of(mat[2, rows]),
    }
    for k, name in enumerate(KERNEL_COLUMNS):
        cols[name] = mat[k, rows]
    del mat
    for name, codes, cats in (("account_segment", prep.segment_codes, prep.segment_cats),
                              ("account_region", prep.region_codes, prep.region_cats)):
        cols[name] = pd.Categorical.from_codes(codes[rows], categories=cats)
    return rows, {c: cols[c] for c in ("as_of", "segment", *FEATURE_COLUMNS)}


def account_id_column(prep: Prepared, rows: np.ndarray) -> pd.Series:
    """The ``account_id`` column (pandas ``str``) of the given account rows."""
    return pd.Series(prep.account_ids.take(rows), dtype="str")


def features_frame(prep: Prepared, as_of: pd.Timestamp) -> pd.DataFrame:
    """The :func:`features.pit.build_features` frame from a prepared book."""
    rows, cols = feature_columns(prep, as_of)
    return pd.DataFrame({"account_id": account_id_column(prep, rows), **cols})
