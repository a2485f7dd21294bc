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
each pair's own accounts' variance taken out, since the live check's bootstrap carries the
accounts' noise already. The variances come from one account bootstrap of
``models.live_agreement.PERIOD_RESAMPLES`` draws shared by all windows
(:func:`window_draws`): every pair is paired by account as in
``models.live_agreement.auc_agreement``, and the draws cost one AUC per window instead of
two per pair (up to 15 pairs).

Cost: at most ``PERIOD_WINDOWS`` extra fits per model, each on at most
:data:`REFIT_MAX_ROWS` rows (a seeded uniform subsample above it: the refits estimate
how the AUC moves, not the best model), with the champion's rounds; rows are taken by
position, only the columns a refit reads. Pure: no MLflow, no clock; inputs are never
mutated.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pit.sampling import row_weights
from models.gate import draw_counts
from models.live_agreement import (
    LEVEL,
    PERIOD_RESAMPLES,
    PERIOD_WINDOWS,
    PeriodSpread,
    evidence,
    movement_by_lag,
    weighted_aucs,
)
from models.model import categorical_levels, feature_matrix
from models.train import TrainConfig, TrainingResult, monotone_constraints

#: Most training rows of one refit (a seeded uniform subsample above it).
REFIT_MAX_ROWS: Final = 200_000
#: Cells (draws x rows) of one block of bootstrap weights (~32 MB of float64).
_BLOCK_CELLS: Final = 4_000_000
#: The standard normal's quantile at ``(1 + LEVEL) / 2`` (derived from LEVEL, so the two
#: cannot disagree): a window's sd is its bootstrap interval's width over ``2 * _Z``
#: (robust to a few degenerate draws).
_Z: Final = NormalDist().inv_cdf((1 + LEVEL) / 2)


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
    docstring). ``sigma_by_lag`` is empty when fewer than two windows could be judged.
    Rows are selected by position: no copy of the population's frame, only each refit's
    (sampled) rows of the columns it reads."""
    keep = ((training_set["model"] == result.kind).to_numpy()
            & ~training_set["censored"].astype(bool).to_numpy()
            & training_set["y"].notna().to_numpy())
    pos = np.flatnonzero(keep)
    as_of = pd.to_datetime(training_set["as_of"].to_numpy()[pos])
    resolved = pd.to_datetime(training_set["label_resolved_date"].to_numpy()[pos])
    light = training_set[["account_id", "y", *(["weight"] if "weight" in training_set
                                               else [])]]
    names = list(result.model.feature_names)
    rounds = int(result.params.get("best_iteration") or config.n_estimators)
    judged: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    embargo = pd.Timedelta(days=config.embargo_days)
    for k, (val_start, start, end) in enumerate(window_bounds(result, config=config,
                                                              windows=windows)):
        train_at = pos[np.asarray((as_of < val_start - embargo) & (resolved < val_start))]
        window_at = pos[np.asarray((as_of >= start) & (as_of <= end))]
        window = light.iloc[window_at]
        if not (evidence(light.iloc[train_at]).enough and evidence(window).enough):
            break
        scored = window[["account_id", "y"]].assign(
            account_id=window["account_id"].astype(str),
            probability=_refit_scores(training_set, train_at, window_at, names=names,
                                      config=config, rounds=rounds, seed=config.seed + k))
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
    draws = window_draws(frames, resamples=resamples, seed=config.seed)
    variance = {(i, j): float(np.nanvar(draws[i] - draws[j]))
                for i in range(len(frames)) for j in range(i + 1, len(frames))}
    for k, window_auc in enumerate(draws):  # each window's own sd, for the report
        if np.isfinite(window_auc).any():
            low, high = np.nanquantile(window_auc, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
            judged[k]["sd"] = float((high - low) / (2 * _Z))
    b = result.bounds
    return PeriodSpread(window_weeks=config.test_weeks, test_start=str(b.test_start.date()),
                        test_end=str(b.test_end.date()), windows=tuple(judged),
                        sigma_by_lag=movement_by_lag([w["auc"] for w in judged], variance))


def window_draws(frames: Sequence[pd.DataFrame], *, resamples: int,
                 seed: int = 0) -> np.ndarray:
    """``(len(frames), resamples)`` AUCs of each window's scored rows (``account_id``,
    ``y``, ``probability``, optional ``weight``) under one account bootstrap shared by all
    windows: each draw gives every account of any window a multiplicity
    (``models.gate.draw_counts``), so every pair of windows is paired as in
    ``models.live_agreement.auc_agreement`` (an account in both counts alike in both), and
    one set of draws gives every pair's variance (``var(A_i - A_j)``) and every window's
    spread: ``len(frames)`` AUCs per draw instead of two per pair."""
    if not frames:
        return np.empty((0, resamples))
    ids = [f["account_id"].astype(str).to_numpy() for f in frames]
    codes, index = pd.factorize(np.concatenate(ids))
    ends = np.cumsum([len(i) for i in ids])
    parts = [(codes[e - len(i):e], f["y"].to_numpy(float), f["probability"].to_numpy(float),
              f["weight"].to_numpy(float) if "weight" in f else np.ones(len(f)))
             for f, i, e in zip(frames, ids, ends, strict=True)]
    rng = np.random.default_rng(seed)
    out = np.empty((len(frames), resamples))
    block = max(1, _BLOCK_CELLS // max(1, max(len(i) for i in ids)))
    for b0 in range(0, resamples, block):
        n = min(block, resamples - b0)
        counts = draw_counts(rng, n, len(index))  # copies of each account in each draw
        for k, (acc, y, p, w) in enumerate(parts):
            out[k, b0:b0 + n] = weighted_aucs(y, p, counts[:, acc] * w)
    return out


def _refit_scores(training_set: pd.DataFrame, train_at: np.ndarray, window_at: np.ndarray, *,
                  names: Sequence[str], config: TrainConfig, rounds: int,
                  seed: int) -> np.ndarray:
    """Raw scores of the rows ``window_at`` (positions in ``training_set``) by LightGBM
    refitted on the rows ``train_at`` (at most :data:`REFIT_MAX_ROWS` of them: a seeded
    uniform subsample, drawn as ``DataFrame.sample(n, random_state=seed)`` draws) with
    ``config``'s parameters (monotone as configured) and ``rounds`` rounds."""
    if len(train_at) > REFIT_MAX_ROWS:
        pick = np.random.RandomState(seed).choice(len(train_at), REFIT_MAX_ROWS, replace=False)
        train_at = train_at[pick]
    cols = [training_set.columns.get_loc(c) for c in
            [*names, "y", *(["weight"] if "weight" in training_set else [])]]
    train = training_set.iloc[train_at, cols]
    cats = categorical_levels(train, names)
    params = config.lgbm_params(len(train))
    if config.monotone:
        params.update(monotone_constraints(names))
    params = {**params, "n_estimators": rounds, "random_state": seed}
    clf = lgb.LGBMClassifier(**params)
    clf.fit(feature_matrix(train, names, cats), train["y"].to_numpy(dtype=int),
            sample_weight=row_weights(train))
    del train
    window = training_set.iloc[window_at, cols[:len(names)]]
    return np.asarray(clf.predict(feature_matrix(window, names, cats), raw_score=True),
                      dtype=float)
