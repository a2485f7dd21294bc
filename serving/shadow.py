"""Shadow challengers (issue 19, item 3): the ``challenger`` of a population scored beside
the published run, never published, so its live performance can be judged like the
champion's once the labels resolve.

:func:`shadow_scores` is pure (a book, an ``as_of``, loaded challengers -> one frame);
:func:`shadow_worklist` turns a published worklist and those scores into the worklist the
challenger *would* have published for its population (same accounts, same balances and
DPD, its own probability and order), which ``models.live.live_performance`` judges exactly
as it judges the published one. Time semantics: features use everything dated strictly
before ``as_of`` (``features.build_features``); nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from features.pit import build_features
from features.spec import DEFAULT_MATERIALITY, MODEL_OF_SEGMENT, Materiality, as_day
from models.model import DelinqModel

#: Columns of :func:`shadow_scores`.
SHADOW_COLUMNS: Final = ("account_id", "model", "model_version", "probability")


def shadow_scores(book: object, *, as_of: date | pd.Timestamp,
                  challengers: Mapping[str, DelinqModel],
                  materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
    """Calibrated probability (0-1) of each account with open receivables at ``as_of``
    whose population (``features.spec.MODEL_OF_SEGMENT``) has a challenger in
    ``challengers`` (population -> loaded model), by that challenger
    (:data:`SHADOW_COLUMNS`); empty when there is none."""
    if not challengers:
        return pd.DataFrame(columns=list(SHADOW_COLUMNS))
    feats = build_features(book, as_of=as_day(as_of), materiality=materiality)  # type: ignore[arg-type]
    population = feats["segment"].astype(object).map(MODEL_OF_SEGMENT)
    parts = []
    for kind, model in sorted(challengers.items()):
        part = feats[(population == kind).to_numpy()]
        if part.empty:
            continue
        parts.append(pd.DataFrame({
            "account_id": part["account_id"].astype(str).to_numpy(),
            "model": kind,
            "model_version": str(model.version or ""),
            "probability": model.risk(part),
        }))
    if not parts:
        return pd.DataFrame(columns=list(SHADOW_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(SHADOW_COLUMNS)]


def shadow_worklist(worklist: pd.DataFrame, shadow: pd.DataFrame, *, kind: str) -> pd.DataFrame:
    """The rows of population ``kind`` of a published ``worklist`` as the challenger in
    ``shadow`` would have ranked them: its probability, priority = probability x open
    balance, ``rank`` by that priority (ties by account id), ``scorer`` ``model``. Rows
    the challenger did not score are left out. Inputs are not mutated."""
    rows = worklist[worklist["model"] == kind].drop(columns=["probability", "rank"])
    scores = shadow[shadow["model"] == kind][["account_id", "probability"]]
    out = rows.assign(account_id=rows["account_id"].astype(str)).merge(
        scores.assign(account_id=scores["account_id"].astype(str)), on="account_id")
    priority = out["probability"].to_numpy(float) * out["open_balance"].to_numpy(float)
    order = np.lexsort((out["account_id"].to_numpy(dtype=str), -priority))
    rank = np.empty(len(out), dtype=np.int64)
    rank[order] = np.arange(1, len(out) + 1)
    return out.assign(rank=rank, scorer="model").sort_values("rank").reset_index(drop=True)
