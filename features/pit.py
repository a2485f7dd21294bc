"""Point-in-time features: what is known about each open account at ``as_of``.

Time semantics (DESIGN section 4): ``as_of`` is a date and everything dated strictly before
it is known: invoices with ``issue_date < as_of``, payments with ``payment_date < as_of``,
disputes with ``opened_date < as_of`` (resolved only if ``resolved_date < as_of``). An
invoice is *cleared* on the first day its cumulative known payments reach its amount less
one cent; it is *open* at ``as_of`` when issued before and not cleared before ``as_of``.
DPD of an open invoice = ``as_of - due_date`` in days; days late of a cleared invoice =
clear date - due date (negative = paid early).

:func:`build_features` returns one row per account with at least one open invoice (the
scored population, DESIGN section 5). Features that need history an account does not have
yet are NaN, never a zero pretending to be a fact. Every definition lives in
:data:`FEATURE_SPEC`; :data:`FEATURE_SET_VERSION` hashes it, so any change to a definition
changes the version logged with a model.

Implementation: ids are encoded once per call (``features._pit_prep``), then one numba pass
per ``as_of`` over invoices grouped by account computes every family
(``features._pit_kernels``). ``bench/reference_features.py`` is the plain pandas oracle.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from features.book import Book

#: Bump when the *computation* changes without a definition text change.
_MANUAL_VERSION: Final = 1

#: An invoice is cleared when cumulative payments reach ``amount - CLEAR_SLACK``: one cent,
#: plus half a cent of slack so cent-rounded amounts compare robustly in floating point
#: (for amounts in whole cents this is exactly "within one cent").
CLEAR_SLACK: Final = 0.015
#: Payment-behaviour windows in days (None = all history), over invoices cleared within
#: ``[as_of - window, as_of)``.
BEHAVIOUR_WINDOWS: Final = (90, 180, 365, None)
SEGMENTS: Final = ("preventive", "early", "delinquent", "late")


def _behaviour_spec() -> dict[str, str]:
    spec: dict[str, str] = {}
    for days in BEHAVIOUR_WINDOWS:
        w = "all" if days is None else f"{days}d"
        span = "all invoices cleared before as_of" if days is None else (
            f"invoices cleared in the {days} days before as_of")
        spec[f"n_cleared_{w}"] = f"Count of {span}."
        spec[f"days_late_mean_{w}"] = f"Mean days late (clear date - due date) of {span}."
        spec[f"days_late_max_{w}"] = f"Maximum days late of {span}."
        spec[f"days_late_wmean_{w}"] = f"Invoice-amount-weighted mean days late of {span}."
        for k in (1, 15, 30):
            spec[f"share_late_{k}d_{w}"] = f"Share (0-1) of {span} paid {k}+ days late."
    return spec


#: feature name -> plain-English definition with unit and window (also the reason-code text
#: source). Order is the model input order of :func:`feature_names`.
FEATURE_SPEC: Final[dict[str, str]] = {
    "open_balance": "Dollars still owed on invoices open at as_of (partial payments deducted).",
    "past_due_amount": "Dollars owed on open invoices past their due date (1+ DPD).",
    "oldest_dpd": "Days past due of the oldest open invoice (negative = not yet due).",
    "n_open_invoices": "Number of invoices open at as_of.",
    "n_past_due_invoices": "Number of open invoices 1+ days past due.",
    "amt_not_due": "Dollars owed on open invoices not yet past due (0 or fewer DPD).",
    "amt_dpd_1_30": "Dollars owed on open invoices 1-30 days past due.",
    "amt_dpd_31_60": "Dollars owed on open invoices 31-60 days past due.",
    "amt_dpd_61_90": "Dollars owed on open invoices 61-90 days past due.",
    "amt_dpd_91_plus": "Dollars owed on open invoices 91+ days past due.",
    "past_due_share": "Share (0-1) of the open balance that is past due.",
    "amt_due_next_7d": "Dollars owed on open invoices falling due in the next 7 days.",
    "amt_due_next_14d": "Dollars owed on open invoices falling due in the next 14 days.",
    "amt_due_next_30d": "Dollars owed on open invoices falling due in the next 30 days.",
    "largest_open_amount": "Dollars owed on the largest open invoice.",
    **_behaviour_spec(),
    "days_late_last": "Days late of the most recently cleared invoice (latest if several).",
    "days_late_trend_90d_vs_365d": "Mean days late of invoices cleared in the last 90 days "
    "minus that of invoices cleared 91-365 days before as_of (positive = getting later).",
    "days_since_last_payment": "Days since the last payment received (any amount).",
    "partial_payment_share_365d": "Share (0-1) of invoices first paid in the last 365 days "
    "whose first payment day did not clear them (paid in instalments or partially).",
    "n_invoices_90d": "Number of invoices issued in the last 90 days.",
    "n_invoices_365d": "Number of invoices issued in the last 365 days.",
    "amt_billed_90d": "Dollars invoiced in the last 90 days.",
    "amt_billed_365d": "Dollars invoiced in the last 365 days.",
    "avg_invoice_amount_365d": "Mean invoice amount in dollars over the last 365 days.",
    "tenure_days": "Days since the account's first invoice.",
    "terms_days_median": "Median payment terms in days (due date - issue date) of all invoices.",
    "n_open_disputes": "Number of unresolved disputes on open invoices.",
    "amt_open_disputes": "Dollars owed on open invoices with an unresolved dispute.",
    "n_disputes_365d": "Number of disputes opened in the last 365 days.",
    "dispute_rate_365d": "Share (0-1) of invoices issued in the last 365 days that were "
    "disputed.",
    "credit_utilisation": "Open balance divided by the credit limit (missing if no limit).",
    "account_age_days": "Days since the account was created (missing if unknown).",
    "account_segment": "Customer segment from the accounts table (category).",
    "account_region": "Customer region from the accounts table (category).",
}
#: Alias used by the reason codes.
FEATURE_DESCRIPTIONS: Final[dict[str, str]] = FEATURE_SPEC
CATEGORICAL: Final = ("account_segment", "account_region")
FEATURE_COLUMNS: Final = tuple(FEATURE_SPEC)
NUMERIC_COLUMNS: Final = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL)



def feature_set_version(spec: dict[str, str] | None = None) -> str:
    """Short hash of the feature definitions (name -> text, in order), the clear tolerance,
    the segment boundaries and a manual version: changes whenever a definition does."""
    payload = {"manual": _MANUAL_VERSION, "spec": FEATURE_SPEC if spec is None else spec,
               "slack": CLEAR_SLACK, "segments": [0, 29, 89]}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]


FEATURE_SET_VERSION: Final[str] = feature_set_version()


def feature_names() -> list[str]:
    """Model input columns in order (includes open_balance, past_due_amount, oldest_dpd)."""
    return list(FEATURE_COLUMNS)


def segment_of(oldest_dpd: np.ndarray) -> pd.Series:
    """Collections segment from the oldest open invoice's DPD: <=0 preventive, 1-29 early,
    30-89 delinquent, 90+ late."""
    idx = np.searchsorted(np.array([0, 29, 89]), np.asarray(oldest_dpd), side="left")
    return pd.Series(np.asarray(SEGMENTS, dtype=object)[idx], dtype="str")


def ordered_categories(values: pd.Series) -> list[str]:
    """Categories of an account attribute: sorted distinct non-missing values of the book,
    so every snapshot of one book shares the same categorical dtype."""
    return sorted(str(v) for v in values.dropna().unique())


def to_day(as_of: date | pd.Timestamp | str) -> pd.Timestamp:
    """``as_of`` as a midnight Timestamp (accepts date, datetime, Timestamp or ISO string)."""
    return pd.Timestamp(as_of).normalize()


def build_features(book: Book, *, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """Point-in-time features of every account with an open invoice at ``as_of``.

    Columns: ``account_id``, ``as_of`` (datetime64[s]), ``segment``, then
    :func:`feature_names` (amounts in dollars, durations in days, shares in 0-1; see
    :data:`FEATURE_SPEC`). Rows sorted by ``account_id``. Only data dated strictly before
    ``as_of`` is used.
    """
    from features import _pit_kernels, _pit_prep

    prep = _pit_prep.prepare(book)
    return _pit_kernels.features_frame(prep, to_day(as_of))
