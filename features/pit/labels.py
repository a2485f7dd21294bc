"""Labels of the two models (DESIGN section 5), for the population scored at ``as_of``.

- **early warning** (accounts whose oldest open invoice is under ``delinquency_dpd`` DPD,
  i.e. preventive and early with the default 30): ``y = 1`` when some invoice open at
  ``as_of`` is not cleared before ``due_date + delinquency_dpd`` days. Resolved on the first
  such crossing day, or (``y = 0``) on the day the last open invoice clears in time.
- **persistence** (oldest open invoice at ``delinquency_dpd``+ DPD: delinquent and late):
  ``y = 1`` when, at ``as_of + persistence_days``, some invoice open at ``as_of`` is still
  uncleared and ``delinquency_dpd``+ days past due. Resolved on that check day, or earlier
  (``y = 0``) on the day the last open invoice clears.

Openness at ``as_of`` uses only payments dated before ``as_of``, with the features' clearing
rule (whole cents, ``features.spec.CLEAR_TOLERANCE_CENTS``; the same kernel helper); the
outcome uses every payment dated before ``data_end`` (default: the day after the book's last
event), including payments dated on ``as_of``. A label that the data before ``data_end``
cannot decide is *censored*: ``y`` NaN, ``label_resolved_date`` NaT. A clearing decides a
label when its day is before ``data_end``; a crossing or check day decides it when it is
on or before ``data_end`` (all payments before that day are known). A row can be trained on
at time ``T`` when ``label_resolved_date < T``.

``delinquent_amount``: dollars outstanding at ``as_of`` on the open invoices that realised
the bad event (0 when ``y = 0``, NaN when censored); capture@k sums it.
"""

from __future__ import annotations

from datetime import date, timedelta

import numba as nb
import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit._kernels import _clear_day, _pay_state, account_id_column, run_chunked
from features.pit._prep import NONE, Prepared, day_number, prepare
from features.spec import (
    CLEAR_TOLERANCE_CENTS,
    DELINQUENT_DPD,
    MODELS,
    PERSISTENCE_DAYS,
    as_day,
)

LABEL_COLUMNS = ("account_id", "as_of", "model", "y", "label_resolved_date", "censored",
                 "delinquent_amount")


@nb.njit(cache=True)
def _account_label(a, as_of, end, dpd_limit, check, tol, acc_ptr, issue, due, amount,
                   pay_ptr, pay_day, pay_amt):
    """(model code or -1 if not scored, y or NaN, resolved day or NONE, bad dollars).

    Openness at ``as_of`` and the outcome's clear day (from payments before ``end``) both
    use the features' clearing rule (``_pay_state``, ``_clear_day``), tolerance ``tol``
    cents."""
    lo, hi = acc_ptr[a], acc_ptr[a + 1]
    oldest = NONE
    for i in range(lo, hi):
        if issue[i] < as_of:
            clear = _clear_day(i, as_of, tol, amount, pay_ptr, pay_day, pay_amt)
            if clear == NONE and as_of - due[i] > oldest:
                oldest = as_of - due[i]
    if oldest == NONE:
        return -1, np.nan, NONE, np.nan
    early = oldest < dpd_limit
    model = 0 if early else 1
    any_bad = False
    all_good = True
    first_cross = np.int64(1) << 40
    last_clear = NONE
    amt_bad = 0.0
    for i in range(lo, hi):
        if issue[i] >= as_of:
            continue
        paid, clear, _, _ = _pay_state(i, as_of, tol, amount, pay_ptr, pay_day, pay_amt)
        if clear != NONE:
            continue
        rest = amount[i] - paid
        f = _clear_day(i, end, tol, amount, pay_ptr, pay_day, pay_amt)
        if f != NONE and f > last_clear:
            last_clear = f
        if early:
            c = due[i] + dpd_limit
            if f != NONE and f < c:
                continue
            all_good = False
            if f != NONE or c <= end:  # crossed unpaid (known once day c is in the data)
                any_bad = True
                amt_bad += rest
                if c < first_cross:
                    first_cross = c
        else:
            if f != NONE and f < check:
                continue
            all_good = False
            if check - due[i] >= dpd_limit:
                any_bad = True
                amt_bad += rest
    if early and any_bad:
        return model, 1.0, first_cross, amt_bad
    if all_good:
        return model, 0.0, last_clear, 0.0
    if not early and check <= end:
        return model, (1.0 if any_bad else 0.0), check, amt_bad
    return model, np.nan, NONE, np.nan


@nb.njit(cache=True, nogil=True)
def _labels_range(start, stop, model, y, resolved, bad_amt, as_of, end, dpd_limit, check,
                  tol, acc_ptr, issue, due, amount, pay_ptr, pay_day, pay_amt):
    for a in range(start, stop):
        m, ya, r, b = _account_label(a, as_of, end, dpd_limit, check, tol, acc_ptr, issue,
                                     due, amount, pay_ptr, pay_day, pay_amt)
        model[a] = m
        y[a] = ya
        resolved[a] = r
        bad_amt[a] = b


def _labels(as_of, end, dpd_limit, persist, tol, acc_ptr, *arrays):
    n_acc = len(acc_ptr) - 1
    model = np.full(n_acc, -1, np.int8)
    y = np.full(n_acc, np.nan)
    resolved = np.full(n_acc, NONE, np.int64)
    bad_amt = np.full(n_acc, np.nan)
    run_chunked(_labels_range, n_acc, model, y, resolved, bad_amt, as_of, end, dpd_limit,
                as_of + persist, tol, acc_ptr, *arrays)
    return model, y, resolved, bad_amt


def default_data_end(book: Book) -> date:
    """The day after the book's last event: everything strictly before it is known."""
    return as_day(book.last_date) + timedelta(days=1)


def label_columns(prep: Prepared, as_of: date, *, delinquency_dpd: int,
                  persistence_days: int, data_end: date,
                  tolerance_cents: int = CLEAR_TOLERANCE_CENTS) -> tuple[np.ndarray, dict]:
    """(scored account rows, {column: values}) of the labels at ``as_of``, columns in the
    :func:`build_labels` order minus ``account_id`` and ``as_of``."""
    model, y, resolved, amt = _labels(
        day_number(as_of), day_number(data_end), int(delinquency_dpd),
        int(persistence_days), int(tolerance_cents), prep.acc_ptr, prep.issue, prep.due,
        prep.amount, prep.pay_ptr, prep.pay_day, prep.pay_amt)
    rows = np.flatnonzero(model >= 0)
    res = resolved[rows]
    res_dates = np.where(res == NONE, np.datetime64("NaT"),
                         res.astype("datetime64[D]")).astype("datetime64[s]")
    y = y[rows]
    return rows, {
        "model": pd.Series(np.asarray(MODELS, dtype=object)[model[rows]], dtype="str"),
        "y": y,
        "label_resolved_date": res_dates,
        "censored": np.isnan(y),
        "delinquent_amount": amt[rows],
    }


def labels_frame(prep: Prepared, as_of: date, *, delinquency_dpd: int,
                 persistence_days: int, data_end: date) -> pd.DataFrame:
    """The :func:`build_labels` frame from a prepared book."""
    rows, cols = label_columns(prep, as_of, delinquency_dpd=delinquency_dpd,
                               persistence_days=persistence_days, data_end=data_end)
    return pd.DataFrame({
        "account_id": account_id_column(prep, rows),
        "as_of": np.full(len(rows), np.datetime64(as_of, "s")),
        **cols,
    })


def build_labels(book: Book, *, as_of: date | pd.Timestamp,
                 delinquency_dpd: int = DELINQUENT_DPD,
                 persistence_days: int = PERSISTENCE_DAYS,
                 data_end: date | pd.Timestamp | None = None) -> pd.DataFrame:
    """Labels of every account with an open invoice at ``as_of`` (see module docstring).

    ``as_of`` and ``data_end`` are days (``date``, or ``pd.Timestamp`` whose date is used).
    Columns: ``account_id``, ``as_of``, ``model`` ("early_warning" / "persistence"), ``y``
    (float 0/1, NaN when censored), ``label_resolved_date``, ``censored``,
    ``delinquent_amount`` (dollars). Rows sorted by ``account_id``, the same rows as
    :func:`features.build_features` for the same ``as_of``.
    """
    end = default_data_end(book) if data_end is None else as_day(data_end)
    return labels_frame(prepare(book), as_day(as_of),
                        delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
                        data_end=end)
