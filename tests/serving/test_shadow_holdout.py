"""Shadow challengers and the random holdout (issue 19, items 2 and 3) on the shared trained
state: a challenger scored beside the run ranks its population as it would have published
it; the holdout's accounts are ranked by the aging rule, the same accounts every night."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.pit.labels import build_labels
from models.live import live_performance
from models.live_policy import in_holdout
from models.rule import RuleCalibration
from serving.rule_scoring import RuleScorer
from serving.score import score_book
from serving.shadow import SHADOW_COLUMNS, shadow_scores, shadow_worklist
from serving.store_schema import RULE_SCORER

AS_OF = date(2024, 3, 1)


@pytest.fixture(scope="module")
def published(trained_state) -> pd.DataFrame:
    return score_book(trained_state.book, as_of=AS_OF, models=trained_state.models).worklist


def test_a_shadow_of_the_champion_ranks_and_scores_like_the_published_list(
    trained_state, published
) -> None:
    ew = trained_state.models["early_warning"]
    shadow = shadow_scores(trained_state.book, as_of=AS_OF, challengers={"early_warning": ew})
    assert list(shadow.columns) == list(SHADOW_COLUMNS)
    mine = published[published["model"] == "early_warning"]
    assert set(shadow["account_id"]) == set(mine["account_id"])
    merged = mine.merge(shadow, on="account_id", suffixes=("", "_shadow"))
    pd.testing.assert_series_equal(merged["probability"], merged["probability_shadow"],
                                   check_names=False, rtol=1e-9)
    rows = shadow_worklist(published, shadow, kind="early_warning")
    # the population's own order, renumbered from 1
    assert rows["account_id"].tolist() == mine.sort_values("rank")["account_id"].tolist()
    assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
    # judged alike: the same live figures as the published rows of the population
    labels = build_labels(trained_state.book, as_of=AS_OF, data_end=date(2024, 7, 1))
    got = live_performance(rows, labels).row(population="early_warning", ranked_by="model")
    want = live_performance(published, labels).row(population="early_warning",
                                                   ranked_by="model")
    assert got["auc"] == pytest.approx(want["auc"]) and got["n_rows"] == want["n_rows"]
    assert shadow_scores(trained_state.book, as_of=AS_OF, challengers={}).empty
    assert len(published) == len(published.drop_duplicates("account_id"))  # not mutated


def test_shadow_scores_from_the_snapshots_features_equal_the_books(trained_state) -> None:
    # each partition hands its snapshot features to the shadow scores (serving.partitioned):
    # one encoding of the book a run, the same scores for both roles
    from features.pit.snapshot import snapshot

    models = trained_state.models
    kwargs = {"as_of": AS_OF, "challengers": {"early_warning": models["early_warning"]},
              "holdout": models, "holdout_share": 0.2}
    want = shadow_scores(trained_state.book, **kwargs)
    got = shadow_scores(trained_state.book, features=snapshot(
        trained_state.book, as_of=AS_OF).features, **kwargs)
    assert set(want["role"]) == {"challenger", "holdout"}
    pd.testing.assert_frame_equal(got, want)


def test_the_holdout_is_ranked_by_the_rule(trained_state, published) -> None:
    rules = {k: RuleScorer(kind=k, why="holdout", calibration=RuleCalibration(
        source="none", evidence={"rows": 0, "positive_rows": 0}))
        for k in trained_state.models}
    result = score_book(trained_state.book, as_of=AS_OF, models=trained_state.models,
                        rules=rules, holdout_share=0.2)
    wl = result.worklist
    held = in_holdout(wl["account_id"], share=0.2)
    assert 0 < held.sum() < len(wl)
    assert (wl.loc[held, "scorer"] == RULE_SCORER).all()
    assert (wl.loc[~held, "scorer"] == "model").all()
    assert sum(result.meta["holdout"].values()) == held.sum()
    assert result.meta["rule_lines"] == []  # both populations have their champion
    # the rest keep the model's probability
    rest = wl[~held].merge(published, on="account_id", suffixes=("", "_pub"))
    pd.testing.assert_series_equal(rest["probability"], rest["probability_pub"],
                                   check_names=False)
