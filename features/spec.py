"""The feature and domain spec: the one definition of every name the pipeline shares.

A leaf module: it imports nothing of the project, so the contract, the point-in-time
kernels, the models, serving and the flows all import their constants from here.

Time semantics (DESIGN section 4): ``as_of`` is a date; everything dated strictly before it
is known. :func:`as_day` is the one normaliser of a cut-off given at a public boundary.
Amounts are in the book's currency, durations in days, shares in 0-1.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pandas as pd

# ------------------------------------------------------------------ models and segments

#: The two models, one per question a collector asks (DESIGN section 5).
MODELS: Final = ("early_warning", "persistence")

#: Collections segments by the oldest open invoice's days past due (DPD), in DPD order.
SEGMENTS: Final = ("preventive", "early", "delinquent", "late")
#: An account is *delinquent* from 30 DPD (the usual definition of a delinquent account)
#: and *late* from 90 DPD (the threshold of the EBA definition of default).
DELINQUENT_DPD: Final = 30
LATE_DPD: Final = 90
#: First DPD of each segment after ``preventive``: early 1-29, delinquent 30-89, late 90+.
SEGMENT_EDGES: Final = (1, DELINQUENT_DPD, LATE_DPD)
#: Segments at or past the delinquency edge: scored by ``persistence``, and their reasons
#: always state the delinquency fact.
DELINQUENT_SEGMENTS: Final = tuple(s for s, lo in zip(SEGMENTS[1:], SEGMENT_EDGES, strict=True)
                                   if lo >= DELINQUENT_DPD)
#: Which model scores which segment: early warning before the delinquency edge,
#: persistence at or past it.
MODEL_OF_SEGMENT: Final[dict[str, str]] = {
    s: MODELS[1] if s in DELINQUENT_SEGMENTS else MODELS[0] for s in SEGMENTS}
#: Default label horizons (days; settings may change them): early warning asks whether an
#: open invoice reaches ``DELINQUENT_DPD``; persistence looks this many days ahead.
PERSISTENCE_DAYS: Final = 30


def segment_of(oldest_dpd: np.ndarray) -> pd.Series:
    """Collections segment (pandas ``str``) from the oldest open invoice's DPD alone: 0 or
    less preventive, 1-29 early, 30-89 delinquent, 90+ late (:data:`SEGMENT_EDGES`). The
    segment the product uses is :func:`material_segment` (this is its limit with no
    materiality thresholds)."""
    idx = np.searchsorted(np.asarray(SEGMENT_EDGES), np.asarray(oldest_dpd), side="right")
    return pd.Series(np.asarray(SEGMENTS, dtype=object)[idx], dtype="str")


# ------------------------------------------------------------------ materiality


def is_material(amount: Any, exposure: Any, absolute: float, share: float) -> Any:
    """The materiality rule (arrays or scalars): a past-due ``amount`` counts when it
    exceeds both ``absolute`` (book currency) and ``share`` (0-1) of the open ``exposure``.
    What the numba kernels compile (``features.pit``), hence plain arguments."""
    return (amount > absolute) & (amount > share * exposure)


@dataclass(frozen=True)
class Materiality:
    """When a past-due amount makes an account past due (DESIGN section 5).

    An amount counts only when it exceeds both thresholds: ``absolute`` (book currency)
    and ``share`` (0-1) of the account's open exposure (its open balance at ``as_of``).
    The defaults are the EBA guidelines on the definition of default (EBA/GL/2016/07 with
    Delegated Regulation (EU) 2018/171) for non-retail exposures, 500 and 1%, which use
    exactly such a pair for 90 days past due; B2B receivables are non-retail.
    ``Materiality(0, 0)`` (:data:`NO_MATERIALITY`) counts every cent: the plain DPD rule.
    Settings: ``materiality.absolute``, ``materiality.share``.
    """

    absolute: float = 500.0
    share: float = 0.01

    def material(self, amount: Any, exposure: Any) -> Any:
        """:func:`is_material` with these thresholds."""
        return is_material(amount, exposure, self.absolute, self.share)


DEFAULT_MATERIALITY: Final = Materiality()
NO_MATERIALITY: Final = Materiality(absolute=0.0, share=0.0)


def band_amount_column(edge: int) -> str:
    """Name of the open amount ``edge``+ days past due: ``past_due_amount`` for 1+, else
    ``past_due_30_plus``, ``past_due_90_plus``."""
    return "past_due_amount" if edge == 1 else f"past_due_{edge}_plus"


#: Open amount at or past each :data:`SEGMENT_EDGES` DPD (cumulative: 30+ includes 90+).
SEGMENT_AMOUNT_COLUMNS: Final = tuple(band_amount_column(e) for e in SEGMENT_EDGES)


def material_segment(band_amounts: Any, open_balance: Any, *,
                     materiality: Materiality = DEFAULT_MATERIALITY) -> pd.Series:
    """Collections segment (pandas ``str``): the highest DPD band whose past-due amount is
    material. ``band_amounts`` holds one array per :data:`SEGMENT_EDGES` edge (the open
    amount 1+, 30+ and 90+ days past due, :data:`SEGMENT_AMOUNT_COLUMNS`), ``open_balance``
    the exposure. An account past due only by an immaterial residue is ``preventive``."""
    exposure = np.asarray(open_balance, dtype=np.float64)
    idx = np.zeros(len(exposure), np.int64)
    for k, amount in enumerate(band_amounts, start=1):
        idx = np.where(materiality.material(np.asarray(amount, dtype=np.float64), exposure),
                       k, idx)
    return pd.Series(np.asarray(SEGMENTS, dtype=object)[idx], dtype="str")


# ------------------------------------------------------------------ windows and buckets

#: Aging buckets of open amounts: inclusive DPD ranges (None = no upper end). They follow
#: the receivables aging report, which counts whole 30-day months from the first day past
#: due ("1-30" is the first month late), while :data:`SEGMENT_EDGES` follow the delinquency
#: definitions, whose thresholds read "30 or more" and "90 or more" days past due. Both are
#: what collectors and regulators read, so neither is bent to the other: an invoice exactly
#: 30 days past due sits in the 1-30 bucket and makes its account delinquent.
AGING_BUCKETS: Final[tuple[tuple[int, int | None], ...]] = (
    (1, 30), (31, 60), (61, 90), (91, None))
#: Horizons (days ahead) of the "amount falling due in the next N days" features.
DUE_SOON_DAYS: Final = (7, 14, 30)
#: Payment-behaviour windows in days (None = all history), over invoices cleared within
#: ``[as_of - window, as_of)``.
BEHAVIOUR_WINDOWS: Final[tuple[int | None, ...]] = (90, 180, 365, None)
#: Days-late thresholds of the "share paid N+ days late" features.
LATE_DAYS: Final = (1, 15, 30)


def window_suffix(days: int | None) -> str:
    """``90d`` for a 90-day window, ``all`` for all history."""
    return "all" if days is None else f"{days}d"


def aging_column(bucket: tuple[int, int | None]) -> str:
    """Feature name of an aging bucket: ``amt_dpd_1_30``, ``amt_dpd_91_plus``."""
    lo, hi = bucket
    return f"amt_dpd_{lo}_plus" if hi is None else f"amt_dpd_{lo}_{hi}"


def due_soon_column(days: int) -> str:
    """Feature name of the amount falling due within ``days``: ``amt_due_next_7d``."""
    return f"amt_due_next_{days}d"


#: Payment-behaviour metrics, each computed per window of :data:`BEHAVIOUR_WINDOWS`.
BEHAVIOUR_METRICS: Final = ("n_cleared", "days_late_mean", "days_late_max", "days_late_wmean",
                            *(f"share_late_{k}d" for k in LATE_DAYS))


def behaviour_column(metric: str, days: int | None) -> str:
    """Feature name of a behaviour metric over a window: ``days_late_mean_180d``."""
    return f"{metric}_{window_suffix(days)}"


AGING_COLUMNS: Final = tuple(aging_column(b) for b in AGING_BUCKETS)
DUE_SOON_COLUMNS: Final = tuple(due_soon_column(d) for d in DUE_SOON_DAYS)


# ------------------------------------------------------------------ clearing (openness)

#: An invoice is *cleared* on the first day its cumulative payments, in whole cents, reach
#: its amount in cents less this many cents (DESIGN section 3, "a tolerance of one cent"):
#: $99.99 paid clears a $100.00 invoice, $99.98 leaves it open for $0.02. Comparing whole
#: cents makes the rule exact (no floating-point slack). The kernels take it as an argument,
#: so numba's disk cache can never hold a stale value.
CLEAR_TOLERANCE_CENTS: Final = 1


def to_cents(amount: Any) -> Any:
    """Amounts in currency units -> whole cents (int64; nearest, halves up), on arrays."""
    return np.floor(np.asarray(amount, dtype=np.float64) * 100.0 + 0.5).astype(np.int64)


def is_cleared(paid: Any, amount: Any, tolerance_cents: int = CLEAR_TOLERANCE_CENTS) -> Any:
    """The clearing rule: cumulative payments ``paid`` (currency units) reach ``amount``
    less ``tolerance_cents``, both rounded to whole cents (arrays or scalars)."""
    return to_cents(paid) >= to_cents(amount) - tolerance_cents


def clear_threshold(amount: float, tolerance_cents: int) -> float:
    """The least running total of payments (currency units) that clears ``amount``:
    ``paid >= clear_threshold(amount, t)`` is :func:`is_cleared` ``(paid, amount, t)``
    whenever ``paid`` is whole cents (it sits half a cent below the first clearing total).

    What the numba kernels compile (``features.pit._kernels``): one rounding per invoice
    instead of one per payment (measured: rounding every payment cost ~40% of the pass).
    """
    return (np.floor(amount * 100.0 + 0.5) - tolerance_cents - 0.5) / 100.0


# ------------------------------------------------------------------ the feature spec


def _exposure_spec() -> dict[str, str]:
    aging = {}
    for (lo, hi), name in zip(AGING_BUCKETS, AGING_COLUMNS, strict=True):
        span = f"{lo}+" if hi is None else f"{lo}-{hi}"
        aging[name] = f"Dollars owed on open invoices {span} days past due."
    return {
        "open_balance": "Dollars still owed on invoices open at as_of (payments and applied "
        "credits deducted), less any credit on account; never negative.",
        "past_due_amount": "Dollars owed on open invoices past their due date (1+ DPD).",
        "oldest_dpd": "Days past due of the oldest open invoice (negative = not yet due).",
        "n_open_invoices": "Number of invoices open at as_of.",
        "n_past_due_invoices": "Number of open invoices 1+ days past due.",
        "amt_not_due": "Dollars owed on open invoices not yet past due (0 or fewer DPD).",
        **aging,
        "past_due_share": "Share (0-1) of the open balance that is past due.",
        **{name: f"Dollars owed on open invoices falling due in the next {d} days."
           for d, name in zip(DUE_SOON_DAYS, DUE_SOON_COLUMNS, strict=True)},
        "largest_open_amount": "Dollars owed on the largest open invoice.",
    }


def _behaviour_spec() -> dict[str, str]:
    spec: dict[str, str] = {}
    for days in BEHAVIOUR_WINDOWS:
        span = "all invoices cleared before as_of" if days is None else (
            f"invoices cleared in the {days} days before as_of")
        text = {
            "n_cleared": f"Count of {span}.",
            "days_late_mean": f"Mean days late (clear date - due date) of {span}.",
            "days_late_max": f"Maximum days late of {span}.",
            "days_late_wmean": f"Invoice-amount-weighted mean days late of {span}.",
            **{f"share_late_{k}d": f"Share (0-1) of {span} paid {k}+ days late."
               for k in LATE_DAYS},
        }
        for metric in BEHAVIOUR_METRICS:
            spec[behaviour_column(metric, days)] = text[metric]
    return spec


#: feature name -> plain-English definition with unit and window (also the reason-code text
#: source). Order is the model input order of :func:`feature_names`.
FEATURE_SPEC: Final[dict[str, str]] = {
    **_exposure_spec(),
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
def _directions() -> dict[str, int]:
    up = ["past_due_amount", "oldest_dpd", "n_past_due_invoices", *AGING_COLUMNS,
          "past_due_share", "days_late_last", "days_late_trend_90d_vs_365d",
          "days_since_last_payment", "partial_payment_share_365d", "n_open_disputes",
          "amt_open_disputes", "n_disputes_365d", "dispute_rate_365d", "credit_utilisation"]
    for days in BEHAVIOUR_WINDOWS:
        up += [behaviour_column(m, days) for m in BEHAVIOUR_METRICS if m != "n_cleared"]
    # The loop features (below) with a known direction: promise breakers are riskier,
    # keeping promises lowers risk (issue 17's documented effect).
    loop = {"n_broken_promises_180d": 1, "kept_promise_share_365d": -1}
    return {**{f: 1 for f in up}, "tenure_days": -1, "account_age_days": -1, **loop}


#: Known risk direction of a feature: +1 when a higher value means more risk (later
#: payments, more past due, more disputes), -1 when it means less (a longer relationship).
#: Features not listed (amounts billed, counts, terms, categories) have no known direction.
#: The models are trained monotone in these directions (``models.train``), and a reason
#: cites a feature only on the side of typical its direction calls risky or safe
#: (``serving.reasons``).
FEATURE_DIRECTION: Final[dict[str, int]] = _directions()
#: Alias used by the reason codes.
FEATURE_DESCRIPTIONS: Final[dict[str, str]] = FEATURE_SPEC
CATEGORICAL: Final = ("account_segment", "account_region")
FEATURE_COLUMNS: Final = tuple(FEATURE_SPEC)
NUMERIC_COLUMNS: Final = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL)

# ------------------------------------------------------------- collections loop

#: Features of the collections loop (issue 17): promises to pay, contacts and disputes
#: opened or resolved, from the book's ``promises`` / ``contacts`` / ``disputes`` tables
#: and the workbench's events (``features.pit.loop``). Not model inputs unless the book
#: carries them and their sources cover the validation and test periods (the training
#: step decides, ``pipelines.steps_events``); a model trained with them has the feature-set
#: version :data:`LOOP_FEATURE_SET_VERSION`. Each is missing (not zero) before its
#: source's *recorded since* date (:data:`LOOP_SOURCES`).
LOOP_FEATURE_SPEC: Final[dict[str, str]] = {
    "n_broken_promises_180d": "Number of promises to pay broken in the 180 days before "
    "as_of (the day after the promised date plus grace passed without the amount paid).",
    "kept_promise_share_365d": "Share (0-1) of the promises resolved (kept or broken) in the "
    "365 days before as_of that were kept (missing when none was resolved).",
    "days_to_open_promise": "Days from as_of to the promised date of the earliest open "
    "promise (negative within the grace days; missing when none is open).",
    "amt_open_promises": "Dollars promised on promises still open at as_of.",
    "n_contacts_30d": "Number of collector contacts in the 30 days before as_of.",
    "days_since_last_contact": "Days since the last collector contact (missing when never "
    "contacted).",
    "last_contact_outcome": "Outcome of the last collector contact (category: "
    "ContactOutcome values).",
    "n_disputes_opened_90d": "Number of disputes opened in the 90 days before as_of.",
    "n_disputes_resolved_90d": "Number of disputes resolved in the 90 days before as_of.",
}
LOOP_FEATURE_COLUMNS: Final = tuple(LOOP_FEATURE_SPEC)
LOOP_CATEGORICAL: Final = ("last_contact_outcome",)
#: The table each loop feature is computed from: before that source's recorded-since date
#: (the first day any of its rows is known) the feature is missing.
LOOP_SOURCES: Final[dict[str, str]] = {
    "n_broken_promises_180d": "promises", "kept_promise_share_365d": "promises",
    "days_to_open_promise": "promises", "amt_open_promises": "promises",
    "n_contacts_30d": "contacts", "days_since_last_contact": "contacts",
    "last_contact_outcome": "contacts", "n_disputes_opened_90d": "disputes",
    "n_disputes_resolved_90d": "disputes"}
LOOP_FEATURE_DTYPES: Final[dict[str, str]] = {
    c: "category" if c in LOOP_CATEGORICAL else "float64" for c in LOOP_FEATURE_COLUMNS}

# ------------------------------------------------------------- protected attributes

#: Attributes of a person a credit decision must not use, nor anything derived from them
#: (issue 12, item 5): no adapter emits them and no feature or account attribute the
#: models read may be one (:func:`check_not_protected`, run on this module's own lists).
PROTECTED: Final = ("sex", "gender", "age", "date_of_birth", "birth_date", "marital_status",
                    "marriage", "education")
#: Columns of the ``accounts`` table the features read (``account_segment``,
#: ``account_region``, ``credit_utilisation``, ``account_age_days``).
MODEL_ACCOUNT_ATTRIBUTES: Final = ("segment", "region", "credit_limit", "created_date")


def protected_names(names: Any) -> list[str]:
    """The names among ``names`` that are, or derive from, a :data:`PROTECTED` attribute:
    the attribute itself, ``<attr>_...`` (``age_band``, ``education_level``) or
    ``account_<attr>``, compared case-insensitively with spaces and ``-`` as ``_``.
    ``account_age_days`` (the customer account's age) is not a person's age: not matched."""
    out = []
    for name in names:
        norm = str(name).strip().lower().replace(" ", "_").replace("-", "_")
        if norm.startswith("account_"):
            norm = norm[len("account_"):]
            if norm.startswith("age_"):  # the account's own age (days since created)
                continue
        if any(norm == p or norm.startswith(p + "_") for p in PROTECTED):
            out.append(str(name))
    return out


def check_not_protected(names: Any, *, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when a name in ``names`` is protected
    (:func:`protected_names`)."""
    found = protected_names(names)
    if found:
        raise ValueError(f"{where}: protected attributes must never reach a model: "
                         f"{found} (features.spec.PROTECTED)")


check_not_protected([*FEATURE_COLUMNS, *LOOP_FEATURE_COLUMNS, *MODEL_ACCOUNT_ATTRIBUTES],
                    where="features.spec (model inputs)")

#: Facts the worklist cites (reason details, actions), computed in the same kernel pass as
#: the features with the same openness rule, but not model inputs.
FACT_SPEC: Final[dict[str, str]] = {
    "oldest_invoice_id": "Id of the open invoice with the earliest due date (ties: the one "
    "listed first in the book).",
    "oldest_invoice_open": "Dollars still owed on that invoice.",
    "partial_payer": "Whether some open invoice is partly paid (boolean).",
    "credit_on_account": "Dollars of credit (credit notes, overpayments, prepayments of "
    "invoices not issued yet) known at as_of and not yet applied to an invoice; netted "
    "from open_balance.",
    **{band_amount_column(e): f"Dollars owed on open invoices {e}+ days past due (the "
       "segment's band amounts)." for e in SEGMENT_EDGES[1:]},
}
FACT_COLUMNS: Final = tuple(FACT_SPEC)

#: Rows of the point-in-time kernel's output matrix: every numeric feature, then the numeric
#: facts (the oldest open invoice's id comes out as an invoice position beside it). The
#: kernels address rows by name through :data:`KERNEL_INDEX`, never by a literal number.
KERNEL_COLUMNS: Final = (*NUMERIC_COLUMNS, "oldest_invoice_open", "partial_payer",
                          "credit_on_account", *SEGMENT_AMOUNT_COLUMNS[1:])
KERNEL_INDEX: Final[dict[str, int]] = {name: k for k, name in enumerate(KERNEL_COLUMNS)}

#: Columns of the feature frame (``features.build_features``) and their pandas dtypes; the
#: fact columns are present only when asked for.
FEATURE_DTYPES: Final[dict[str, str]] = {
    "account_id": "str",
    "as_of": "datetime64[s]",
    "segment": "str",
    **{c: "category" if c in CATEGORICAL else "float64" for c in FEATURE_COLUMNS},
}
FACT_DTYPES: Final[dict[str, str]] = {
    "oldest_invoice_id": "str", "oldest_invoice_open": "float64", "partial_payer": "bool",
    "credit_on_account": "float64", **{c: "float64" for c in SEGMENT_AMOUNT_COLUMNS[1:]}}


def check_feature_frame(frame: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the first column of :data:`FEATURE_DTYPES` that is missing
    or has another dtype (and likewise for any :data:`FACT_DTYPES` column present). Other
    columns (labels, in a training set) are not checked."""
    for name, want in FEATURE_DTYPES.items():
        if name not in frame.columns:
            raise ValueError(f"feature frame has no column {name!r} (expected dtype {want})")
    expected = {**FEATURE_DTYPES, **{c: d for c, d in FACT_DTYPES.items() if c in frame.columns}}
    for name, want in expected.items():
        got = str(frame[name].dtype)
        if got != want:
            raise ValueError(
                f"feature frame column {name!r} has dtype {got}, expected {want}")


#: Bump when the *computation* changes without a definition text change (2: clearing in
#: whole cents with a one-cent tolerance; 3: material segments, so the models' populations).
_MANUAL_VERSION: Final = 3


def feature_set_version(spec: dict[str, str] | None = None) -> str:
    """Short hash of the feature definitions (name -> text, in order), the clearing
    tolerance, the segment edges and a manual version: changes whenever a definition does."""
    payload = {"manual": _MANUAL_VERSION, "spec": FEATURE_SPEC if spec is None else spec,
               "tolerance_cents": CLEAR_TOLERANCE_CENTS, "segments": list(SEGMENT_EDGES)}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]


FEATURE_SET_VERSION: Final[str] = feature_set_version()
#: The feature-set version of a model trained with the loop features as well.
LOOP_FEATURE_SET_VERSION: Final[str] = feature_set_version({**FEATURE_SPEC, **LOOP_FEATURE_SPEC})


def feature_set_version_of(names: Any) -> str:
    """The feature-set version of a model with input columns ``names``: the loop version
    when any loop feature is among them, else :data:`FEATURE_SET_VERSION` (a book without
    promises and contacts trains exactly as before, version included)."""
    loop = any(n in LOOP_FEATURE_SPEC for n in names)
    return LOOP_FEATURE_SET_VERSION if loop else FEATURE_SET_VERSION


def feature_names() -> list[str]:
    """Model input columns in order (includes open_balance, past_due_amount, oldest_dpd)."""
    return list(FEATURE_COLUMNS)


def ordered_categories(values: pd.Series) -> list[str]:
    """Categories of an account attribute: sorted distinct non-missing values of the book,
    so every snapshot of one book shares the same categorical dtype."""
    return sorted(str(v) for v in values.dropna().unique())


# ------------------------------------------------------------------ time


def as_day(value: date | pd.Timestamp | np.datetime64) -> date:
    """The calendar day of a cut-off given at a public boundary (``as_of``, ``data_end``).

    Accepts a ``date``, a ``datetime``/``pd.Timestamp`` (its date; the time of day is
    dropped) or a ``numpy.datetime64``. Strings are refused: parse them where they enter
    (``date.fromisoformat``), so inside the library a cut-off is always a ``date``.
    """
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        if pd.isna(value):
            raise ValueError("a cut-off date is required, got NaT")
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError("a cut-off date is required, got NaT")
        return value.astype("datetime64[D]").item()
    raise TypeError(f"expected a date or pd.Timestamp, got {type(value).__name__} {value!r}")


# ------------------------------------------------------------------ enumerations


class ContactChannel(StrEnum):
    """How a collector reached (or tried to reach) a customer."""

    PHONE = "phone"
    EMAIL = "email"
    LETTER = "letter"
    PORTAL = "portal"
    SMS = "sms"
    VISIT = "visit"


class ContactOutcome(StrEnum):
    """What a contact attempt achieved."""

    REACHED = "reached"
    NO_ANSWER = "no_answer"
    WRONG_CONTACT = "wrong_contact"
    REFUSED = "refused"
    PROMISED = "promised"
    DISPUTED = "disputed"


class EventKind(StrEnum):
    """Kinds of the append-only workbench events (a correction is a new event)."""

    CONTACT = "contact"
    PROMISE = "promise"
    PROMISE_CANCELLED = "promise_cancelled"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_RESOLVED = "dispute_resolved"
    NOTE = "note"
    ASSIGNMENT = "assignment"
    SNOOZE = "snooze"
    UNSNOOZE = "unsnooze"
