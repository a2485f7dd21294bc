"""The collections loop's features at ``as_of`` (issue 17; ``features.spec.LOOP_FEATURE_SPEC``).

Promises to pay (their states from :func:`features.pit.promises.promise_state`), collector
contacts and disputes opened or resolved, per account. Pure; only what is known strictly
before ``as_of`` counts: a promise or contact from its known day (``recorded_date``, else
its business date, see ``features.contract.book``), a dispute from its ``opened_date`` /
``resolved_date``.

*Recorded since* (:func:`recorded_since`): the first day a row of a source (``promises``,
``contacts``, ``disputes``) is known. At an ``as_of`` on or before it the source tells
nothing yet, so its features are missing (NaN), never zero: "no broken promise" is a fact
only once promises are recorded at all. A source without rows has no such date (its
features are always missing).

Units: counts, days, dollars (book currency), shares 0-1; windows in the names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from features.contract.book import EVENT_DATE, Book
from features.pit.promises import DEFAULT_GRACE_DAYS, invoice_accounts, promise_state
from features.spec import (
    LOOP_CATEGORICAL,
    LOOP_FEATURE_COLUMNS,
    LOOP_SOURCES,
    ContactOutcome,
    as_day,
)

#: The sources of the loop features (``features.spec.LOOP_SOURCES``' values).
SOURCES = ("promises", "contacts", "disputes")


def _known_day(frame: pd.DataFrame, table: str) -> pd.Series:
    return frame["recorded_date"].fillna(frame[EVENT_DATE[table]])


def recorded_since(book: Book) -> dict[str, pd.Timestamp | None]:
    """Per source, the first day one of its rows is known (None: the source has no row)."""
    out: dict[str, pd.Timestamp | None] = {}
    for table in ("promises", "contacts"):
        frame = getattr(book, table)
        out[table] = pd.Timestamp(_known_day(frame, table).min()) if len(frame) else None
    opened = book.disputes["opened_date"]
    out["disputes"] = pd.Timestamp(opened.min()) if len(opened) else None
    return out


def _window(days: pd.Series, cut: pd.Timestamp, width: int) -> pd.Series:
    return (days < cut) & (days >= cut - pd.Timedelta(days=width))


def _per_account(values: pd.Series, ids: pd.Index, fill: float = np.nan) -> np.ndarray:
    return values.reindex(ids).fillna(fill).to_numpy(dtype=np.float64) if len(values) else (
        np.full(len(ids), fill))


def dispute_owners(book: Book) -> pd.Series:
    """The account of each row of ``book.disputes`` (same index; missing where the invoice
    is unknown): ``features.pit.promises.invoice_accounts``, which a training set computes
    once for all its dates (``python -m bench.loop``)."""
    return invoice_accounts(book, book.disputes["invoice_id"])


def loop_features(book: Book, *, as_of: date | pd.Timestamp, accounts: Sequence[str],
                  grace_days: int = DEFAULT_GRACE_DAYS,
                  since: Mapping[str, pd.Timestamp | None] | None = None,
                  owners: pd.Series | None = None,
                  pay_accounts: pd.Series | None = None) -> pd.DataFrame:
    """The loop features of ``accounts`` at ``as_of``: a frame aligned with ``accounts``
    (same order, default index), one column per ``features.spec.LOOP_FEATURE_COLUMNS``
    (dtypes ``LOOP_FEATURE_DTYPES``). ``since``: the sources' recorded-since days
    (default :func:`recorded_since` of ``book``); ``grace_days``: the promises' grace;
    ``owners`` and ``pay_accounts``: :func:`dispute_owners` and
    ``features.pit.promises.payment_accounts`` of ``book`` when the caller has them.
    """
    cut = pd.Timestamp(as_day(as_of))
    since = recorded_since(book) if since is None else since
    ids = pd.Index(pd.Series(accounts, dtype="str"))
    out: dict[str, np.ndarray | pd.Categorical] = {}

    states = promise_state(book, as_of=cut, grace_days=grace_days, pay_accounts=pay_accounts)

    broken = states["state"] == "broken"
    kept = states["state"] == "kept"
    recent = _window(states["resolved_date"], cut, 180)
    out["n_broken_promises_180d"] = _per_account(
        (broken & recent).groupby(states["account_id"]).sum(), ids, 0.0)
    year = _window(states["resolved_date"], cut, 365)
    resolved_year = ((broken | kept) & year).groupby(states["account_id"]).sum()
    kept_year = (kept & year).groupby(states["account_id"]).sum()
    share = (kept_year / resolved_year.where(resolved_year > 0))
    out["kept_promise_share_365d"] = _per_account(share, ids)
    is_open = states["state"] == "open"
    first_open = states[is_open].groupby("account_id")["promised_date"].min()
    out["days_to_open_promise"] = _per_account((first_open - cut).dt.days, ids)
    out["amt_open_promises"] = _per_account(
        states["amount"].where(is_open, 0.0).groupby(states["account_id"]).sum(), ids, 0.0)

    c = book.contacts
    c = c[_known_day(c, "contacts") < cut]
    out["n_contacts_30d"] = _per_account(
        _window(c["contact_date"], cut, 30).groupby(c["account_id"]).sum(), ids, 0.0)
    last = c.sort_values(["contact_date", "contact_id"]).groupby("account_id").tail(1)
    last = last.set_index("account_id")
    out["days_since_last_contact"] = _per_account((cut - last["contact_date"]).dt.days, ids)
    outcome = last["outcome"].reindex(ids) if len(last) else pd.Series(index=ids, dtype=object)
    out["last_contact_outcome"] = pd.Categorical(
        outcome.to_numpy(dtype=object), categories=[o.value for o in ContactOutcome])

    d = book.disputes
    owner = dispute_owners(book) if owners is None else owners
    out["n_disputes_opened_90d"] = _per_account(
        _window(d["opened_date"], cut, 90).groupby(owner).sum(), ids, 0.0)
    out["n_disputes_resolved_90d"] = _per_account(
        _window(d["resolved_date"], cut, 90).groupby(owner).sum(), ids, 0.0)

    frame = pd.DataFrame(out)[list(LOOP_FEATURE_COLUMNS)]
    for col in LOOP_FEATURE_COLUMNS:  # missing, not zero, before the source is recorded
        first = since.get(LOOP_SOURCES[col])
        if first is None or cut <= first:
            frame[col] = (pd.Categorical([None] * len(frame), categories=frame[col].cat.categories)
                          if col in LOOP_CATEGORICAL else np.nan)
    return frame


def with_loop_features(frame: pd.DataFrame, book: Book, *, grace_days: int = DEFAULT_GRACE_DAYS,
                       since: Mapping[str, pd.Timestamp | None] | None = None,
                       owners: pd.Series | None = None,
                       pay_accounts: pd.Series | None = None) -> pd.DataFrame:
    """``frame`` (a feature frame or training-set chunk of *one* ``as_of``) with the loop
    features of its accounts appended (a new frame; ``frame`` is not mutated).
    ``since``, ``owners`` and ``pay_accounts``: as :func:`loop_features`."""
    if frame.empty:
        extra = loop_features(book, as_of=book.first_date, accounts=[], since={})
        return pd.concat([frame.reset_index(drop=True), extra], axis=1)
    as_of = pd.Timestamp(frame["as_of"].iloc[0])
    extra = loop_features(book, as_of=as_of, accounts=frame["account_id"].tolist(),
                          grace_days=grace_days, since=since, owners=owners,
                          pay_accounts=pay_accounts)
    extra.index = frame.index
    return pd.concat([frame, extra], axis=1)
