"""The reason-code table: one sentence template per model feature (see ``serving.reasons``).

Fields: ``{v}`` is the feature's own value, ``{count}`` a share turned into a count (see
``count_of``), other names are feature (or detail) columns. The format after the colon is
one of ``serving.reasons`` formats: ``int``, ``money``, ``pct``, ``dec``, ``absdec``,
``days`` ("1 day", "12 days", absolute), ``span`` ("45 days", "7 months", "2.5 years"),
``invoices``/``disputes`` (count with the noun), ``str``.
Every sentence states the account's own number with its unit and window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The delinquency fact always stated for delinquent and late accounts.
FACT_FEATURE = "oldest_dpd"

Predicate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Template:
    """A reason sentence for one feature.

    ``text``: the default sentence. ``variants``: ``(predicate on the value, sentence)``
    pairs tried first, in order. ``if_missing``: sentence when the value is missing (None:
    skip this feature and use the next reason). ``detail``: appended when every field it
    names is present (e.g. the oldest invoice's id and amount). ``count_of``: a count
    column; the field ``{count}`` is then ``round(value x count)`` (a share made a count).
    """

    text: str
    variants: tuple[tuple[Predicate, str], ...] = ()
    if_missing: str | None = None
    detail: str | None = None
    count_of: str | None = None
    #: The fact the sentence states: two reasons of one account never share one (None:
    #: the feature is its own fact), e.g. the past-due amount and its share of the balance.
    fact: str | None = None
    #: Whether the sentence may stand as a mitigating reason (an empty aging band says
    #: nothing about the other bands, so "nothing is 61-90 days past due" never mitigates).
    mitigates: bool = True
    #: Format of the typical value in "typical for ...: X" (None: the format of ``{v}``).
    typical_format: str | None = None


def _neg(v: np.ndarray) -> np.ndarray:
    return np.rint(v) < 0


def _neg_dec(v: np.ndarray) -> np.ndarray:
    """Negative once shown with one decimal (-0.04 reads as 0.0, not as early)."""
    return v <= -0.05


def _zero(v: np.ndarray) -> np.ndarray:
    return np.rint(v) == 0


def _le0(v: np.ndarray) -> np.ndarray:
    return v <= 0


T = Template
#: Fact shared by the sentences that state the past-due amount.
_PAST_DUE = "past_due"


def _window_phrase(w: str) -> str:
    return "so far" if w == "all" else f"in the last {w[:-1]} days"


def _behaviour_templates() -> dict[str, Template]:
    out: dict[str, Template] = {}
    for w in ("90d", "180d", "365d", "all"):
        when = _window_phrase(w)
        paid = f"invoices paid {when}"
        none = f"no invoice was paid {when}, so there is no recent payment record"
        out[f"n_cleared_{w}"] = T(f"{{v:invoices}} paid {when}",
                                  variants=((_zero, f"no invoice was paid {when}"),),
                                  fact="n_cleared")
        out[f"days_late_mean_{w}"] = T(
            f"{paid} were {{v:dec}} days late on average",
            variants=((_neg_dec, f"{paid} were paid {{v:absdec}} days early on average"),),
            if_missing=none, fact="days_late_average", typical_format="dec",
        )
        out[f"days_late_max_{w}"] = T(
            f"the slowest of the {paid} was {{v:days}} late",
            variants=((_le0, f"every one of the {paid} was paid on time"),),
            if_missing=none, fact="days_late_max", typical_format="dec",
        )
        out[f"days_late_wmean_{w}"] = T(
            f"weighted by amount, {paid} were {{v:dec}} days late on average",
            variants=((_neg_dec, f"weighted by amount, {paid} were paid {{v:absdec}} days early "
                             "on average"),),
            if_missing=none, fact="days_late_average", typical_format="dec",
        )
        for k in (1, 15, 30):
            out[f"share_late_{k}d_{w}"] = T(
                f"{{count:int}} of the {{n_cleared_{w}:invoices}} paid {when} were paid "
                f"{k}+ days late",
                count_of=f"n_cleared_{w}",
                if_missing=none, fact="share_late", typical_format="pct",
            )
    return out


def _bucket(label: str) -> Template:
    return T(f"{{v:money}} is {label}", variants=((_zero, f"nothing is {label}"),),
             mitigates=False)


TEMPLATES: dict[str, Template] = {
    # exposure now
    "open_balance": T("open balance is {v:money} on {n_open_invoices:invoices}"),
    "past_due_amount": T("{v:money} is past due ({past_due_share:pct} of the open balance)",
                         variants=((_zero, "nothing is past due"),), fact=_PAST_DUE),
    FACT_FEATURE: T(
        "{past_due_amount:money} is past due; the oldest open invoice is {v:days} past due",
        variants=((_zero, "oldest open invoice falls due today"),
                  (_neg, "nothing is past due; the oldest open invoice is due in {v:days}")),
        detail=" ({oldest_invoice_id:str}, {oldest_invoice_open:money} open)",
        fact=_PAST_DUE,
    ),
    "n_open_invoices": T("{v:invoices} open"),
    "n_past_due_invoices": T("{v:int} of the {n_open_invoices:int} open invoices are past due",
                             variants=((_zero, "no open invoice is past due"),)),
    "amt_not_due": _bucket("not yet due"),
    "amt_dpd_1_30": _bucket("1-30 days past due"),
    "amt_dpd_31_60": _bucket("31-60 days past due"),
    "amt_dpd_61_90": _bucket("61-90 days past due"),
    "amt_dpd_91_plus": _bucket("more than 90 days past due"),
    "past_due_share": T("{v:pct} of the open balance is past due",
                        detail=" ({past_due_amount:money} of {open_balance:money})",
                        fact=_PAST_DUE),
    "amt_due_next_7d": _bucket("falling due in the next 7 days"),
    "amt_due_next_14d": _bucket("falling due in the next 14 days"),
    "amt_due_next_30d": _bucket("falling due in the next 30 days"),
    "largest_open_amount": T("largest open invoice is {v:money}"),
    # payment behaviour
    **_behaviour_templates(),
    "days_late_last": T(
        "the last invoice paid was {v:days} late",
        variants=((_zero, "the last invoice paid was paid on its due date"),
                  (_neg, "the last invoice paid was paid {v:days} early")),
        if_missing="no invoice has been paid yet",
    ),
    "days_late_trend_90d_vs_365d": T(
        "payments are slowing: {v:dec} more days late in the last 90 days than in the 9 "
        "months before",
        variants=((_zero, "payment timing is steady over the last year"),
                  (_neg_dec, "payments are speeding up: {v:absdec} fewer days late in the last "
                         "90 days than in the 9 months before")),
    ),
    "days_since_last_payment": T("last payment received {v:days} ago",
                                 if_missing="no payment received yet"),
    "partial_payment_share_365d": T(
        "{v:pct} of invoices first paid in the last 365 days were paid in parts",
        variants=((_zero, "invoices paid in the last 365 days were each paid in full at once"),),
    ),
    # activity
    "n_invoices_90d": T("{v:invoices} issued in the last 90 days"),
    "n_invoices_365d": T("{v:invoices} issued in the last 365 days"),
    "amt_billed_90d": T("{v:money} billed in the last 90 days"),
    "amt_billed_365d": T("{v:money} billed in the last 365 days"),
    "avg_invoice_amount_365d": T("average invoice over the last 365 days is {v:money}"),
    "tenure_days": T("customer for {v:span} (since the first invoice)"),
    "terms_days_median": T("typical payment terms are {v:int} days"),
    # disputes
    "n_open_disputes": T("{v:disputes} open on unpaid invoices",
                         variants=((_zero, "no open dispute"),)),
    "amt_open_disputes": T("{v:money} of the open balance is under dispute",
                           variants=((_zero, "nothing in the open balance is under dispute"),)),
    "n_disputes_365d": T("{v:disputes} opened in the last 365 days",
                         variants=((_zero, "no dispute opened in the last 365 days"),)),
    "dispute_rate_365d": T("{v:pct} of invoices issued in the last 365 days were disputed"),
    # account attributes
    "credit_utilisation": T("open balance is {v:pct} of the credit limit"),
    "account_age_days": T("account created {v:span} ago"),
    "account_segment": T("customer segment is {v:str}"),
    "account_region": T("customer region is {v:str}"),
    # the collections loop (issue 17; features.spec.LOOP_FEATURE_SPEC)
    "n_broken_promises_180d": T("{v:int} promises to pay broken in the last 180 days",
                                variants=((_zero, "no promise to pay broken in the last 180 "
                                                  "days"),)),
    "kept_promise_share_365d": T("{v:pct} of the promises to pay due in the last 365 days "
                                 "were kept"),
    "days_to_open_promise": T("a promise to pay falls due in {v:days}",
                              variants=((_neg, "a promise to pay fell due {v:days} ago "
                                               "(within the grace days)"),)),
    "amt_open_promises": T("{v:money} promised on open promises to pay",
                           variants=((_zero, "no promise to pay open"),)),
    "n_contacts_30d": T("{v:int} collector contacts in the last 30 days",
                        variants=((_zero, "no collector contact in the last 30 days"),)),
    "days_since_last_contact": T("last collector contact {v:days} ago"),
    "last_contact_outcome": T("the last collector contact's outcome was {v:str}"),
    "n_disputes_opened_90d": T("{v:disputes} opened in the last 90 days",
                               variants=((_zero, "no dispute opened in the last 90 days"),)),
    "n_disputes_resolved_90d": T("{v:disputes} resolved in the last 90 days",
                                 variants=((_zero, "no dispute resolved in the last 90 "
                                                   "days"),)),
}


#: The sentence for an account past due only by an immaterial residue (segment
#: ``preventive``): stated as a fact, never as a risk (fields as in the oldest-DPD fact).
RESIDUE_TEMPLATE = T(
    "{past_due_amount:money} is past due, below the materiality threshold, so the account "
    "counts as not past due; the oldest open invoice is {v:days} past due",
    detail=" ({oldest_invoice_id:str}, {oldest_invoice_open:money} open)",
)

#: Who "typical" refers to, per model: the median of the model's training population.
POPULATION_NAMES: dict[str, str] = {
    "early_warning": "accounts not yet delinquent",
    "persistence": "delinquent accounts",
}

#: Features whose value is bounded by where the data starts (a first invoice on the
#: book's first days says the data starts then, not the customer): left out of the reasons
#: when within :data:`WINDOW_SLACK_DAYS` of the data window.
WINDOW_BOUNDED: tuple[str, ...] = ("tenure_days",)
WINDOW_SLACK_DAYS = 45
