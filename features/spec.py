"""The feature and domain spec: the one definition of every name the pipeline shares.

A leaf module: it imports nothing of the project, so the contract, the point-in-time
kernels, the models, serving and the flows all import their constants from here.

Time semantics (DESIGN section 4): ``as_of`` is a date; everything dated strictly before it
is known. Amounts are in the book's currency, durations in days, shares in 0-1.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

#: The two models, one per question a collector asks (DESIGN section 5).
MODELS: Final = ("early_warning", "persistence")
#: Which model scores which collections segment.
MODEL_OF_SEGMENT: Final = {
    "preventive": "early_warning",
    "early": "early_warning",
    "delinquent": "persistence",
    "late": "persistence",
}

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


def to_day(as_of: date | pd.Timestamp | str) -> pd.Timestamp:
    """``as_of`` as a midnight Timestamp (accepts date, datetime, Timestamp or ISO string)."""
    return pd.Timestamp(as_of).normalize()


def ordered_categories(values: pd.Series) -> list[str]:
    """Categories of an account attribute: sorted distinct non-missing values of the book,
    so every snapshot of one book shares the same categorical dtype."""
    return sorted(str(v) for v in values.dropna().unique())
