"""Labels of the two models (DESIGN section 5), for the population scored at ``as_of``.

Materiality (DESIGN section 5, ``features.spec.Materiality``): an amount past due counts
only when it exceeds both the absolute threshold and the share of the account's open
exposure (its open balance at ``as_of``). Amounts are the invoices' outstanding dollars at
``as_of`` (payments made later, before the crossing or check day, are not deducted: the
label is about the exposure scored at ``as_of``).

- **early warning** (accounts whose open amount ``delinquency_dpd``+ DPD at ``as_of`` is
  not material, i.e. preventive and early with the default 30): ``y = 1`` when the invoices
  open at ``as_of`` that are not cleared before ``due_date + delinquency_dpd`` days (an
  immaterial residue already past it included) carry a material amount. Resolved on the
  first crossing day on which the amount crossed so far is material; ``y = 0`` on the day
  the last open invoice clears in time (all of them do), or on the last day an invoice
  clears in time or crosses (never ``as_of``'s past) when the crossed amount stays
  immaterial.
- **persistence** (material amount ``delinquency_dpd``+ DPD at ``as_of``: delinquent and
  late): ``y = 1`` when, at ``as_of + persistence_days``, the invoices open at ``as_of``
  still uncleared and ``delinquency_dpd``+ days past due carry a material amount. Resolved
  on that check day, or earlier (``y = 0``) on the day the last open invoice clears.

Openness at ``as_of`` uses only payments dated before ``as_of``, with the features' clearing
rule (whole cents, ``features.spec.CLEAR_TOLERANCE_CENTS``; the same kernel helper); the
outcome uses every payment dated before ``data_end`` (default: the day after the book's last
event), including payments dated on ``as_of``. A label that the data before ``data_end``
cannot decide is *censored*: ``y`` NaN, ``label_resolved_date`` NaT. A clearing decides a
label when its day is before ``data_end``; a crossing or check day decides it when it is
on or before ``data_end`` (all payments before that day are known). A row can be trained on
at time ``T`` when ``label_resolved_date < T``.

``delinquent_amount``: dollars outstanding at ``as_of`` on the open invoices that realised
the bad event (0 when ``y = 0``, NaN when censored); capture@k sums it. With
``Materiality(0, 0)`` (``features.spec.NO_MATERIALITY``) every cent counts: the plain rule.
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
    DEFAULT_MATERIALITY,
    DELINQUENT_DPD,
    MODELS,
    PERSISTENCE_DAYS,
    Materiality,
    as_day,
    is_material,
)

LABEL_COLUMNS = ("account_id", "as_of", "model", "y", "label_resolved_date", "censored",
                 "delinquent_amount")


_is_material = nb.njit(inline="always")(is_material)


@nb.njit(cache=True)
def _account_label(a, as_of, end, dpd_limit, check, tol, mat_abs, mat_share, acc_ptr, issue,
                   due, amount, pay_ptr, pay_day, pay_amt):
    """(model code or -1 if not scored, y or NaN, resolved day or NONE, bad dollars).

    Openness at ``as_of`` and the outcome's clear day (from payments before ``end``) both
    use the features' clearing rule (``_pay_state``, ``_clear_day``), tolerance ``tol``
    cents; amounts count under the materiality rule (``mat_abs``, ``mat_share``)."""
    lo, hi = acc_ptr[a], acc_ptr[a + 1]
    n = hi - lo
    rest = np.zeros(n)
    is_open = np.zeros(n, np.bool_)
    exposure = 0.0
    over = 0.0
    for i in range(lo, hi):
        if issue[i] >= as_of:
            continue
        paid, clear, _, _ = _pay_state(i, as_of, tol, amount, pay_ptr, pay_day, pay_amt)
        if clear != NONE:
            continue
        is_open[i - lo] = True
        rest[i - lo] = amount[i] - paid
        exposure += amount[i] - paid
        if as_of - due[i] >= dpd_limit:
            over += amount[i] - paid
    if not is_open.any():
        return -1, np.nan, NONE, np.nan
    early = not _is_material(over, exposure, mat_abs, mat_share)
    model = 0 if early else 1
    all_good = True
    unknown = False
    last_clear = NONE
    last_resolved = as_of
    amt_bad = 0.0
    cross = np.empty(n, np.int64)
    cross_amt = np.empty(n)
    n_cross = 0
    check_amt = 0.0
    for i in range(lo, hi):
        if not is_open[i - lo]:
            continue
        f = _clear_day(i, end, tol, amount, pay_ptr, pay_day, pay_amt)
        if f != NONE and f > last_clear:
            last_clear = f
        if early:
            c = due[i] + dpd_limit
            if f != NONE and f < c:
                if f > last_resolved:
                    last_resolved = f
                continue
            all_good = False
            if f != NONE or c <= end:  # crossed unpaid (known once day c is in the data)
                amt_bad += rest[i - lo]
                cross[n_cross] = c
                cross_amt[n_cross] = rest[i - lo]
                n_cross += 1
                if c > last_resolved:
                    last_resolved = c
            else:
                unknown = True
        else:
            if f != NONE and f < check:
                continue
            all_good = False
            if check - due[i] >= dpd_limit:
                amt_bad += rest[i - lo]
                check_amt += rest[i - lo]
    if all_good:
        return model, 0.0, last_clear, 0.0
    if early:
        # the first crossing day on which the amount crossed so far is material
        order = np.argsort(cross[:n_cross], kind="mergesort")
        total = 0.0
        for k in range(n_cross):
            total += cross_amt[order[k]]
            last = k == n_cross - 1 or cross[order[k + 1]] != cross[order[k]]
            if last and _is_material(total, exposure, mat_abs, mat_share):
                return model, 1.0, max(cross[order[k]], as_of), amt_bad
        if unknown:
            return model, np.nan, NONE, np.nan
        # every invoice cleared in time or crossed, never a material amount
        return model, 0.0, last_resolved, 0.0
    if check <= end:
        if _is_material(check_amt, exposure, mat_abs, mat_share):
            return model, 1.0, check, amt_bad
        return model, 0.0, check, 0.0
    return model, np.nan, NONE, np.nan


@nb.njit(cache=True, nogil=True)
def _labels_range(start, stop, model, y, resolved, bad_amt, as_of, end, dpd_limit, check,
                  tol, mat_abs, mat_share, acc_ptr, issue, due, amount, pay_ptr, pay_day,
                  pay_amt):
    for a in range(start, stop):
        m, ya, r, b = _account_label(a, as_of, end, dpd_limit, check, tol, mat_abs,
                                     mat_share, acc_ptr, issue, due, amount, pay_ptr,
                                     pay_day, pay_amt)
        model[a] = m
        y[a] = ya
        resolved[a] = r
        bad_amt[a] = b


def _labels(as_of, end, dpd_limit, persist, tol, materiality, acc_ptr, *arrays):
    n_acc = len(acc_ptr) - 1
    model = np.full(n_acc, -1, np.int8)
    y = np.full(n_acc, np.nan)
    resolved = np.full(n_acc, NONE, np.int64)
    bad_amt = np.full(n_acc, np.nan)
    run_chunked(_labels_range, n_acc, model, y, resolved, bad_amt, as_of, end, dpd_limit,
                as_of + persist, tol, float(materiality.absolute), float(materiality.share),
                acc_ptr, *arrays)
    return model, y, resolved, bad_amt


def default_data_end(book: Book) -> date:
    """The day after the book's last event: everything strictly before it is known."""
    return as_day(book.last_date) + timedelta(days=1)


def label_arrays(prep: Prepared, as_of: date, *, delinquency_dpd: int,
                 persistence_days: int, data_end: date,
                 materiality: Materiality = DEFAULT_MATERIALITY,
                 tolerance_cents: int = CLEAR_TOLERANCE_CENTS
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The labels at ``as_of`` as plain arrays over the scored account rows: (rows, model
    code (int8, index into ``features.spec.MODELS``), ``y`` (float64, NaN when censored),
    resolved date (``datetime64[s]``, NaT when censored), ``delinquent_amount``). What a
    training set's sampler reads for every date (no strings built)."""
    model, y, resolved, amt = _labels(
        day_number(as_of), day_number(data_end), int(delinquency_dpd),
        int(persistence_days), int(tolerance_cents), materiality, prep.acc_ptr, prep.issue,
        prep.due,
        prep.amount, prep.pay_ptr, prep.pay_day, prep.pay_amt)
    rows = np.flatnonzero(model >= 0)
    res = resolved[rows]
    res_dates = np.where(res == NONE, np.datetime64("NaT"),
                         res.astype("datetime64[D]")).astype("datetime64[s]")
    return rows, model[rows], y[rows], res_dates, amt[rows]


def label_columns(prep: Prepared, as_of: date, *, delinquency_dpd: int,
                  persistence_days: int, data_end: date,
                  materiality: Materiality = DEFAULT_MATERIALITY,
                  tolerance_cents: int = CLEAR_TOLERANCE_CENTS) -> tuple[np.ndarray, dict]:
    """(scored account rows, {column: values}) of the labels at ``as_of``, columns in the
    :func:`build_labels` order minus ``account_id`` and ``as_of``."""
    rows, model, y, res_dates, amt = label_arrays(
        prep, as_of, delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
        data_end=data_end, materiality=materiality, tolerance_cents=tolerance_cents)
    return rows, {
        "model": pd.Series(np.asarray(MODELS, dtype=object)[model], dtype="str"),
        "y": y,
        "label_resolved_date": res_dates,
        "censored": np.isnan(y),
        "delinquent_amount": amt,
    }


def labels_frame(prep: Prepared, as_of: date, *, delinquency_dpd: int,
                 persistence_days: int, data_end: date,
                 materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
    """The :func:`build_labels` frame from a prepared book."""
    rows, cols = label_columns(prep, as_of, delinquency_dpd=delinquency_dpd,
                               persistence_days=persistence_days, data_end=data_end,
                               materiality=materiality)
    return pd.DataFrame({
        "account_id": account_id_column(prep, rows),
        "as_of": np.full(len(rows), np.datetime64(as_of, "s")),
        **cols,
    })


def build_labels(book: Book, *, as_of: date | pd.Timestamp,
                 delinquency_dpd: int = DELINQUENT_DPD,
                 persistence_days: int = PERSISTENCE_DAYS,
                 data_end: date | pd.Timestamp | None = None,
                 materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
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
                        data_end=end, materiality=materiality)
