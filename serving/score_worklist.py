"""The worklist of a scoring pass (``serving.score.score_book``): scored rows to ranked,
actioned, explained worklist rows, and the one ranking rule of a worklist
(:func:`rank_order`, also of partitions merged: ``serving.partitioned``).

No dates are read here beyond ``as_of`` (stamped on each row); nothing reads the clock.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.rule import served_priority
from serving import store_schema
from serving.actions import BROKEN_PROMISE, ActionPolicy, recommend_actions
from serving.loop_worklist import broken_reason
from serving.reasons import REASON_COLUMNS

#: The worklist's columns in store order: the store's boundary schema is the one definition.
WORKLIST_COLUMNS: tuple[str, ...] = tuple(store_schema.WORKLIST_COLUMNS)


def worklist_frame(
    feats: pd.DataFrame,
    model_of: np.ndarray,
    probability: np.ndarray,
    version: np.ndarray,
    reasons: pd.DataFrame,
    as_of: pd.Timestamp,
    policy: ActionPolicy,
    *,
    scorer: np.ndarray,
    calibration: np.ndarray,
    loop: pd.DataFrame,
    currency: str = "$",
    final_notice: Collection[str] = (),
) -> pd.DataFrame:
    """The worklist of scored rows ``feats`` (one per account, with the scorer's
    ``probability``, ``model_of`` and ``version``, its ``reasons``, the ``loop`` facts of
    the same accounts in the same order): priority (expected amount at risk), action
    (``serving.actions``), reasons (a broken promise named first), hold, in rank order
    (:func:`rank_order`) with :data:`WORKLIST_COLUMNS`."""
    balance = feats["open_balance"].to_numpy(dtype=np.float64)
    # Expected amount at risk; without a probability (the rule on thin data), the amount
    # already past due (one definition, shared with the quality gate's served rule).
    priority = served_priority(probability, open_balance=balance,
                               past_due_amount=feats["past_due_amount"].to_numpy(np.float64))
    actions = recommend_actions(
        segment=feats["segment"],
        probability=probability,
        past_due_amount=feats["past_due_amount"].to_numpy(dtype=np.float64),
        amount_90_plus=feats["past_due_90_plus"].to_numpy(dtype=np.float64),
        disputed_amount=feats["amt_open_disputes"].to_numpy(dtype=np.float64),
        # A partial payer can pay, just not all at once: an open invoice is part-paid, or
        # invoices of the last year were paid in instalments.
        partial_payer=_flag(feats, "partial_payer") | (
            feats.get("partial_payment_share_365d", pd.Series(0.0, index=feats.index))
            .fillna(0.0).to_numpy() > 0
        ),
        policy=policy,
        hold=loop["hold"].to_numpy(dtype=object),
        days_since_broken_promise=loop["days_since_broken_promise"].to_numpy(),
        # dunning sent the final notice: the policy table hands the account to a person
        final_notice_sent=feats["account_id"].astype("str").isin(set(final_notice)).to_numpy(),
    )
    order = rank_order(priority, feats["account_id"], held=loop["hold"].notna().to_numpy())
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    wl = pd.DataFrame(
        {
            "rank": rank,
            "account_id": feats["account_id"].astype("str"),
            "segment": feats["segment"].astype("str"),
            "open_balance": balance,
            "past_due_amount": feats["past_due_amount"].to_numpy(dtype=np.float64),
            "oldest_dpd": feats["oldest_dpd"].to_numpy(dtype=np.float64),
            "model": pd.Series(model_of, dtype="str"),
            "probability": probability,
            "priority": priority,
            "action": pd.Series(actions, dtype="str"),
        }
    )
    for col in REASON_COLUMNS:
        wl[col] = pd.Series(reasons[col].array, index=wl.index)
    _name_broken_promises(wl, loop, actions == BROKEN_PROMISE, currency)
    wl["hold"] = pd.Series(loop["hold"].to_numpy(dtype=object), dtype="str")
    wl["hold_date"] = loop["hold_date"].to_numpy()
    wl["hold_ends"] = loop["hold_ends"].to_numpy()
    wl["model_version"] = pd.Series(version, dtype="str")
    # Who ranked each row; a model's probability is calibrated on its validation period.
    wl["scorer"] = pd.Series(scorer, dtype="str")
    wl["calibration"] = pd.Series(calibration, dtype="str")
    wl["as_of"] = as_of.to_datetime64().astype("datetime64[s]")
    return wl.iloc[order].reset_index(drop=True)[list(WORKLIST_COLUMNS)]


def rank_order(priority: np.ndarray, account_ids: pd.Series,
               held: np.ndarray | None = None) -> np.ndarray:
    """Row positions in worklist order (the one ranking rule of a worklist, also of account
    partitions merged, ``serving.partitioned``): the main ranking first, then the ``held``
    rows (issue 17); within each, highest ``priority`` first; ties (and NaN priorities,
    last) broken by ``account_id``."""
    # Arrow sorts the string key in C++ (a numpy lexsort on Python strings takes seconds
    # at 1M).
    held = np.zeros(len(account_ids), dtype=bool) if held is None else np.asarray(held, bool)
    keys = pa.table({"h": held.astype(np.int8),
                     "p": np.nan_to_num(np.asarray(priority, dtype=np.float64), nan=-np.inf),
                     "id": pa.array(account_ids.astype("str"))})
    order = pc.sort_indices(keys, sort_keys=[("h", "ascending"), ("p", "descending"),
                                             ("id", "ascending")])
    return order.to_numpy()


def _name_broken_promises(wl: pd.DataFrame, loop: pd.DataFrame, rows: np.ndarray,
                          currency: str) -> None:
    """The first reason of a "broken promise: follow up" row names the promise (date,
    amount); the row's other risk reasons move down one slot (the third gives way).
    ``reasons_json`` keeps the model's explanation as it was."""
    if not rows.any():
        return
    idx = np.flatnonzero(rows)
    text = [broken_reason(d, a, currency=currency) for d, a in zip(
        loop["broken_promised_date"].to_numpy()[idx],
        loop["broken_amount"].to_numpy()[idx], strict=True)]
    for col, before in (("reason_3", "reason_2"), ("reason_2", "reason_1")):
        wl.loc[idx, col] = wl.loc[idx, before].to_numpy()
    wl.loc[idx, "reason_1"] = text


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean fact column (missing -> False)."""
    s = frame[column]
    return (s.notna() & s.astype(object).fillna(False).astype(bool)).to_numpy()
