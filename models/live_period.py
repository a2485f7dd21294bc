"""The period spread of a trained model (issue 19, the live check's rule 4 in
``models.live_agreement``): how much its test-period ROC-AUC moves from one period of the
test period's length to another, measured **at training time on the training set alone**
(data known then), so the live-vs-offline check is fixed before any live label exists.

Windows (``k = 0 .. PERIOD_WINDOWS - 1``, newest first) of ``test_weeks`` weeks step back
from the test period (window 0 is its own dates). Window ``k`` is judged the way the test
period judges the champion, ``k`` windows earlier: a LightGBM model with the champion's
parameters and boosting rounds (no early stopping: the rounds are the champion's best
iteration) is refitted on the population's rows whose ``as_of`` and label resolution fall
before the window's validation gap (``val_weeks`` weeks plus ``embargo_days`` before the
window starts, the real split's layout), and scores only the window's rows (the raw score:
what the calibration maps monotonically; AUC moves between periods alike). A window
whose refit or whose own rows hold fewer than ``models.live_agreement.MIN_ACCOUNTS``
distinct accounts of a class ends the series (too little to say). Why refits and not the
final model: the final model was fitted on every earlier window (in-sample, so optimistic
and flat: no evidence of how it generalises), and its validation period chose its rounds
and calibration; the test period alone is one window, no spread.

Then per lag ``j`` the movement ``sigma_j`` (``models.live_agreement.movement_by_lag``),
each pair's own accounts' variance (a paired account bootstrap of
``models.live_agreement.PERIOD_RESAMPLES`` draws) taken out, since the live check's
bootstrap carries the accounts' noise already.

Cost: at most ``PERIOD_WINDOWS`` extra fits per model, each on at most
:data:`REFIT_MAX_ROWS` rows (a seeded uniform subsample above it: the refits estimate
how the AUC moves, not the best model), with the champion's rounds. Pure: no MLflow, no
clock; inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pit.sampling import row_weights
from models.live_agreement import (
    PERIOD_RESAMPLES,
    PERIOD_WINDOWS,
    PeriodSpread,
    auc_agreement,
    evidence,
    movement_by_lag,
    weighted_aucs,
)
from models.model import categorical_levels, feature_matrix
from models.train import TrainConfig, TrainingResult, monotone_constraints

#: Most training rows of one refit (a seeded uniform subsample above it).
REFIT_MAX_ROWS: Final = 200_000


def window_bounds(result: TrainingResult, *, config: TrainConfig,
                  windows: int = PERIOD_WINDOWS) -> list[tuple[pd.Timestamp, ...]]:
    """``(val_start, start, end)`` of each window, newest first (module docstring): window
    ``k`` spans the test period's dates moved back ``k x test_weeks`` weeks, and its refit
    learns from the rows ``models.train.split_by_time`` would train on had the test period
    been that window: ``as_of`` before ``val_start - embargo_days``, label resolved before
    ``val_start`` (= the window's start less ``embargo_days`` and ``val_weeks`` weeks)."""
    step = pd.Timedelta(days=7 * config.test_weeks)
    gap = pd.Timedelta(days=7 * config.val_weeks + config.embargo_days)
    b = result.bounds
    return [(b.test_start - k * step - gap, b.test_start - k * step, b.test_end - k * step)
            for k in range(windows)]


def period_spread(training_set: pd.DataFrame, result: TrainingResult, *,
                  config: TrainConfig, windows: int = PERIOD_WINDOWS,
                  resamples: int = PERIOD_RESAMPLES) -> PeriodSpread:
    """The :class:`~models.live_agreement.PeriodSpread` of the trained ``result`` (its
    population's rows of ``training_set``, the frame it was trained from; see the module
    docstring). ``sigma_by_lag`` is empty when fewer than two windows could be judged."""
    rows = training_set[(training_set["model"] == result.kind)
                        & ~training_set["censored"].astype(bool)
                        & training_set["y"].notna()]
    as_of = pd.to_datetime(rows["as_of"])
    resolved = pd.to_datetime(rows["label_resolved_date"])
    names = list(result.model.feature_names)
    rounds = int(result.params.get("best_iteration") or config.n_estimators)
    judged: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    embargo = pd.Timedelta(days=config.embargo_days)
    for k, (val_start, start, end) in enumerate(window_bounds(result, config=config,
                                                              windows=windows)):
        train = rows[(as_of < val_start - embargo) & (resolved < val_start)]
        window = rows[(as_of >= start) & (as_of <= end)]
        if not (evidence(train).enough and evidence(window).enough):
            break
        scored = window[["account_id", "y"]].assign(
            account_id=window["account_id"].astype(str),
            probability=_refit_scores(train, window, names=names, config=config,
                                      rounds=rounds, seed=config.seed + k))
        w = row_weights(window)
        if w is not None:
            scored = scored.assign(weight=w)
        weight = scored["weight"].to_numpy(float) if "weight" in scored else np.ones(len(scored))
        auc = float(weighted_aucs(scored["y"].to_numpy(float),
                                  scored["probability"].to_numpy(float), weight[None, :])[0])
        ev = evidence(scored)
        judged.append({"start": str(start.date()), "end": str(end.date()), "auc": auc,
                       "sd": float("nan"), "rows": len(scored),
                       "positive_accounts": ev.positive, "negative_accounts": ev.negative})
        frames.append(scored)
    variance = {}
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            pair = auc_agreement(frames[i], frames[j], resamples=resamples, seed=i * 31 + j)
            variance[(i, j)] = pair.sd ** 2
            if j == i + 1:  # each window's own sd, for the report (95% width / 3.92)
                judged[i]["sd"] = (pair.live_high - pair.live_low) / 3.92
                judged[j]["sd"] = (pair.offline_high - pair.offline_low) / 3.92
    b = result.bounds
    return PeriodSpread(window_weeks=config.test_weeks, test_start=str(b.test_start.date()),
                        test_end=str(b.test_end.date()), windows=tuple(judged),
                        sigma_by_lag=movement_by_lag([w["auc"] for w in judged], variance))


def _refit_scores(train: pd.DataFrame, window: pd.DataFrame, *, names: Sequence[str],
                  config: TrainConfig, rounds: int, seed: int) -> np.ndarray:
    """Raw scores of ``window`` by LightGBM refitted on ``train`` with ``config``'s
    parameters (monotone as configured) and ``rounds`` rounds."""
    if len(train) > REFIT_MAX_ROWS:
        train = train.sample(n=REFIT_MAX_ROWS, random_state=seed)
    cats = categorical_levels(train, names)
    params = config.lgbm_params(len(train))
    if config.monotone:
        params.update(monotone_constraints(names))
    params = {**params, "n_estimators": rounds, "random_state": seed}
    clf = lgb.LGBMClassifier(**params)
    clf.fit(feature_matrix(train, names, cats), train["y"].to_numpy(dtype=int),
            sample_weight=row_weights(train))
    return np.asarray(clf.predict(feature_matrix(window, names, cats), raw_score=True),
                      dtype=float)
