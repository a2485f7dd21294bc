"""Live vs offline agreement (issue 19): the weighted AUC matches scikit-learn's, and the
paired account bootstrap of the difference covers 0 for two samples of one population and
not for a ranking that lost its skill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.live_agreement import auc_agreement, weighted_aucs


def test_weighted_auc_is_sklearns_with_ties_and_weights() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300).astype(float)
    score = np.round(rng.random(300) + 0.3 * y, 1)  # coarse: many ties
    w = rng.integers(0, 4, size=(5, 300)).astype(float)
    got = weighted_aucs(y, score, w)
    want = [roc_auc_score(y, score, sample_weight=row) for row in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(weighted_aucs(np.ones(4), np.arange(4.0), np.ones((1, 4))))[0]


def _population(n_accounts: int, *, skill: float, seed: int, dates: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n_accounts)
    rows = []
    for _ in range(dates):  # an account on several as_of dates (the test period)
        y = (rng.random(n_accounts) < 1 / (1 + np.exp(-(risk - 1.0)))).astype(float)
        p = 1 / (1 + np.exp(-(skill * risk + rng.normal(scale=0.5, size=n_accounts))))
        rows.append(pd.DataFrame({"account_id": [f"a{i}" for i in range(n_accounts)],
                                  "y": y, "probability": p}))
    return pd.concat(rows, ignore_index=True)


def test_two_samples_of_one_population_agree_and_a_lost_skill_does_not() -> None:
    offline = _population(600, skill=1.0, seed=1, dates=4)
    live = _population(600, skill=1.0, seed=2).sample(300, random_state=0)
    same = auc_agreement(live, offline, resamples=300)
    assert same.agrees and same.low < same.difference < same.high
    assert same.n_live == 300 and same.n_offline == 2400
    assert same.live_auc == pytest.approx(roc_auc_score(live["y"], live["probability"]))
    # the difference's interval is wider than the live one alone would suggest
    assert same.high - same.low > (same.live_high - same.live_low) * 0.9
    lost = auc_agreement(_population(600, skill=0.1, seed=2), offline, resamples=300)
    assert not lost.agrees and lost.high < 0
    assert lost.to_dict()["agrees"] is False
    # weights of a sampled test period count as rows
    doubled = auc_agreement(live, offline.assign(weight=2.0), resamples=50)
    assert doubled.offline_auc == pytest.approx(same.offline_auc)
    assert len(live) == 300 and "weight" not in offline  # inputs untouched
