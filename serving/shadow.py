"""Shadow challengers (issue 19, item 3): the ``challenger`` of a population scored beside
the published run, never published, so its live performance can be judged like the
champion's once the labels resolve. The same file keeps the **holdout**'s model scores
(issue 19, item 2): the accounts of the random holdout are ranked by the aging rule in the
published list, so the champion's probability of them is kept here (role ``holdout``) and
judged once the labels resolve: an unbiased sample of the population for comparing live
with offline figures (``models.live_agreement``).

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
from features.pit.loop import with_loop_features
from features.pit.promises import DEFAULT_GRACE_DAYS
from features.spec import (
    DEFAULT_MATERIALITY,
    LOOP_FEATURE_SPEC,
    MODEL_OF_SEGMENT,
    Materiality,
    as_day,
)
from models.model import DelinqModel

#: Columns of :func:`shadow_scores`.
SHADOW_COLUMNS: Final = ("account_id", "model", "model_version", "probability", "role")
#: ``role`` of a row: scored by the population's challenger (every account of it), or by
#: its champion (the holdout's accounts only, which the published list ranked by the rule).
ROLES: Final = ("challenger", "holdout")


def shadow_scores(book: object, *, as_of: date | pd.Timestamp,
                  challengers: Mapping[str, DelinqModel],
                  materiality: Materiality = DEFAULT_MATERIALITY,
                  holdout: Mapping[str, DelinqModel] | None = None,
                  holdout_share: float = 0.0,
                  features: pd.DataFrame | None = None,
                  grace_days: int = DEFAULT_GRACE_DAYS) -> pd.DataFrame:
    """Calibrated probability (0-1) of each account with open receivables at ``as_of``
    whose population (``features.spec.MODEL_OF_SEGMENT``) has a challenger in
    ``challengers`` (population -> loaded model), by that challenger (role
    ``challenger``); and of each account of the random holdout
    (``models.live_policy.in_holdout`` at ``holdout_share``, 0-1) whose population has a
    champion in ``holdout`` (population -> loaded champion), by that champion (role
    ``holdout``). :data:`SHADOW_COLUMNS`; empty when there is nothing to score. One
    feature build serves both; ``features``: the book's features at ``as_of`` under
    ``materiality`` when the caller has them already (e.g. the scoring's). A model trained
    with the collections loop's features gets them from ``book`` (promises' ``grace_days``),
    as ``serving.score.score_book`` does."""
    from models.live_policy import in_holdout

    holdout = dict(holdout or {}) if holdout_share > 0 else {}
    if not challengers and not holdout:
        return pd.DataFrame(columns=list(SHADOW_COLUMNS))
    feats = features if features is not None else build_features(
        book, as_of=as_day(as_of), materiality=materiality)  # type: ignore[arg-type]
    models = [*challengers.values(), *holdout.values()]
    if any(f in LOOP_FEATURE_SPEC for m in models for f in m.feature_names):
        feats = with_loop_features(feats.reset_index(drop=True), book,  # type: ignore[arg-type]
                                   grace_days=grace_days)
    population = feats["segment"].astype(object).map(MODEL_OF_SEGMENT).to_numpy(dtype=object)
    held = in_holdout(feats["account_id"], share=holdout_share)
    jobs = [(kind, model, "challenger", population == kind)
            for kind, model in sorted(challengers.items())]
    jobs += [(kind, model, "holdout", (population == kind) & held)
             for kind, model in sorted(holdout.items())]
    parts = []
    for kind, model, role, mask in jobs:
        part = feats[mask]
        if part.empty:
            continue
        parts.append(pd.DataFrame({
            "account_id": part["account_id"].astype(str).to_numpy(),
            "model": kind,
            "model_version": str(model.version or ""),
            "probability": model.risk(part),
            "role": role,
        }))
    if not parts:
        return pd.DataFrame(columns=list(SHADOW_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(SHADOW_COLUMNS)]


def shadow_worklist(worklist: pd.DataFrame, shadow: pd.DataFrame, *, kind: str,
                    role: str = "challenger") -> pd.DataFrame:
    """The rows of population ``kind`` of a published ``worklist`` as the model of
    ``role`` in ``shadow`` would have ranked them: its probability, priority = probability
    x open balance, ``rank`` by that priority (ties by account id), ``scorer`` ``model``.
    Rows that model did not score are left out (``holdout``: every account but the
    holdout's). A ``shadow`` frame without ``role`` holds challengers only (files written
    before the holdout was kept). Inputs are not mutated."""
    rows = worklist[worklist["model"] == kind].drop(columns=["probability", "rank"])
    mine = (shadow["role"] == role) if "role" in shadow.columns else role == "challenger"
    scores = shadow[(shadow["model"] == kind) & mine][["account_id", "probability"]]
    out = rows.assign(account_id=rows["account_id"].astype(str)).merge(
        scores.assign(account_id=scores["account_id"].astype(str)), on="account_id")
    priority = out["probability"].to_numpy(float) * out["open_balance"].to_numpy(float)
    order = np.lexsort((out["account_id"].to_numpy(dtype=str), -priority))
    rank = np.empty(len(out), dtype=np.int64)
    rank[order] = np.arange(1, len(out) + 1)
    return out.assign(rank=rank, scorer="model").sort_values("rank").reset_index(drop=True)
