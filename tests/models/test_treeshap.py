"""Exactness of models.treeshap against LightGBM's own pred_contrib."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.treeshap import TreeExplainer

TOL = 1e-6


def _assert_exact(booster: lgb.Booster, X, explainer: TreeExplainer | None = None) -> None:
    ex = explainer or TreeExplainer(booster)
    ours = ex.contributions(X)
    ref = booster.predict(X, pred_contrib=True)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    # additivity: contributions + base value = raw score
    raw = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(ours.sum(axis=1), raw, rtol=0, atol=TOL)
    np.testing.assert_allclose(ex.shap_values(X), ours[:, :-1], rtol=0, atol=0)


def _data(seed: int, n: int, p: int, nan_frac: float, zero_frac: float) -> tuple:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[rng.random((n, p)) < zero_frac] = 0.0
    y_lin = X[:, 0] - X[:, min(1, p - 1)] * (X[:, 0] > 0) + np.sin(3 * X[:, min(2, p - 1)])
    X[rng.random((n, p)) < nan_frac] = np.nan
    y = (y_lin + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    num_leaves=st.sampled_from([2, 3, 7, 15, 31, 63]),
    max_depth=st.sampled_from([-1, 2, 4, 8]),
    nan_frac=st.sampled_from([0.0, 0.1, 0.4]),
    zero_frac=st.sampled_from([0.0, 0.3]),
    missing=st.sampled_from(["nan", "zero", "none"]),
    p=st.integers(1, 6),
)
def test_random_numeric_models_match_pred_contrib(
    seed, num_leaves, max_depth, nan_frac, zero_frac, missing, p
):
    X, y = _data(seed, 600, p, nan_frac, zero_frac)
    params = dict(
        objective="binary", num_leaves=num_leaves, max_depth=max_depth, min_data_in_leaf=5,
        learning_rate=0.3, verbose=-1, seed=seed, max_bin=31, num_threads=1,
        use_missing=missing != "none", zero_as_missing=missing == "zero",
    )
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=8)
    Xt, _ = _data(seed + 1, 300, p, max(nan_frac, 0.05), 0.2)
    _assert_exact(booster, Xt)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_cats=st.sampled_from([3, 8, 40]),
    num_leaves=st.sampled_from([4, 15, 31]),
    nan_frac=st.sampled_from([0.0, 0.2]),
)
def test_random_categorical_models_match_pred_contrib(seed, n_cats, num_leaves, nan_frac):
    rng = np.random.default_rng(seed)
    n = 800
    c = rng.integers(0, n_cats, n).astype(float)
    x = rng.normal(size=n)
    y = ((c % 3 == 0) ^ (x > 0.3)).astype(int)
    X = np.c_[c, x, rng.integers(0, 5, n).astype(float)]
    params = dict(
        objective="binary", num_leaves=num_leaves, verbose=-1, seed=seed, min_data_in_leaf=5,
        min_data_per_group=5, cat_smooth=1.0, max_cat_to_onehot=4, num_threads=1,
    )
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[0, 2]), 6)
    Xt = X[:300].copy()
    # unseen, negative, fractional, huge and missing categories
    Xt[:60, 0] = [np.nan, -1.0, -0.5, 0.7, 2.5, 1e10, -1e10, n_cats + 3.0, 33.0, 64.0] * 6
    Xt[rng.random(300) < nan_frac, 2] = np.nan
    _assert_exact(booster, Xt)


def test_feature_repeated_on_path_and_deep_tree():
    # one informative feature with many thresholds forces repeated splits on one path
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 2000)
    X = np.c_[x, rng.normal(size=2000)]
    y = (np.sin(3 * x) > 0).astype(int)
    booster = lgb.train(
        dict(objective="binary", num_leaves=40, max_depth=-1, min_data_in_leaf=3, verbose=-1),
        lgb.Dataset(X, y), 5,
    )
    dump = booster.dump_model()

    def repeats(node, seen=()):
        if "split_index" not in node:
            return False
        f = node["split_feature"]
        s = (*seen, f)
        return f in seen or repeats(node["left_child"], s) or repeats(node["right_child"], s)

    assert any(repeats(t["tree_structure"]) for t in dump["tree_info"])
    _assert_exact(booster, X[:500])


def test_single_leaf_trees_constant_target():
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = np.ones(200)
    booster = lgb.train(dict(objective="regression", verbose=-1), lgb.Dataset(X, y), 3)
    ex = TreeExplainer(booster)
    assert all("split_index" not in t["tree_structure"] for t in booster.dump_model()["tree_info"])
    _assert_exact(booster, X, ex)
    assert ex.expected_value == pytest.approx(1.0)
    assert np.all(ex.shap_values(X) == 0.0)


def test_mixed_single_leaf_trees_via_min_data():
    X, y = _data(1, 400, 3, 0.1, 0.0)
    booster = lgb.train(
        dict(objective="binary", verbose=-1, min_data_in_leaf=150, num_leaves=4,
             learning_rate=0.5, min_gain_to_split=0.0), lgb.Dataset(X, y), 30,
    )
    _assert_exact(booster, X)


def test_tiny_budget_forces_fallback_and_stays_exact():
    X, y = _data(7, 2000, 6, 0.1, 0.1)
    booster = lgb.train(
        dict(objective="binary", num_leaves=31, max_depth=-1, min_data_in_leaf=5, verbose=-1),
        lgb.Dataset(X, y), 20,
    )
    full = TreeExplainer(booster)
    assert full.n_fallback_trees == 0 or full.n_fallback_trees < booster.num_trees()
    some = TreeExplainer(booster, table_budget_mb=1)
    none = TreeExplainer(booster, table_budget_mb=0)
    assert none.n_fallback_trees == booster.num_trees()
    assert full.n_fallback_trees <= some.n_fallback_trees <= none.n_fallback_trees
    for ex in (full, some, none):
        _assert_exact(booster, X[:400], ex)


def test_leaves_too_deep_for_a_table_are_evaluated_directly(monkeypatch):
    from models import _treeshap_tables

    X, y = _data(11, 1500, 5, 0.1, 0.1)
    booster = lgb.train(
        dict(objective="binary", num_leaves=40, max_depth=-1, min_data_in_leaf=3, verbose=-1),
        lgb.Dataset(X, y), 10,
    )
    monkeypatch.setattr(_treeshap_tables, "MAX_LEAF_BITS", 3)
    ex = TreeExplainer(booster)
    assert ex.n_fallback_trees == 0
    assert 0 < ex.n_direct_leaves < sum(t["num_leaves"] for t in booster.dump_model()["tree_info"])
    _assert_exact(booster, X[:400], ex)


def test_linear_tree_falls_back_to_pred_contrib_with_one_warning():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    y = (X[:, 0] + rng.normal(size=500) > 0).astype(int)
    booster = lgb.train(
        dict(objective="binary", linear_tree=True, verbose=-1, num_leaves=4),
        lgb.Dataset(X, y), 3,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ex = TreeExplainer(booster)
        try:
            ref = booster.predict(X[:50], pred_contrib=True)
        except lgb.basic.LightGBMError:
            ref = None
        if ref is None:  # LightGBM 4.x has no contributions for linear trees
            with pytest.raises(NotImplementedError, match="linear"):
                ex.contributions(X[:50])
        else:
            np.testing.assert_array_equal(ex.contributions(X[:50]), ref)
    assert len([w for w in caught if "linear" in str(w.message)]) == 1


def test_multiclass_is_rejected():
    X = np.random.default_rng(0).normal(size=(300, 3))
    y = np.arange(300) % 3
    booster = lgb.train(
        dict(objective="multiclass", num_class=3, verbose=-1), lgb.Dataset(X, y), 2
    )
    with pytest.raises(ValueError, match="single-output"):
        TreeExplainer(booster)


def test_pandas_categorical_and_sklearn_estimator():
    rng = np.random.default_rng(2)
    n = 1000
    df = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "seg": pd.Categorical(rng.choice(["a", "b", "c", "d"], n)),
            "cnt": rng.integers(0, 9, n),
        }
    )
    y = ((df["seg"].isin(["a", "c"])) ^ (df["num"] > 0)).astype(int)
    clf = lgb.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1, min_child_samples=5)
    clf.fit(df, y)
    test = df.iloc[:200].copy()
    # categories in another order plus an unseen one and a missing one
    test["seg"] = pd.Categorical(
        ["d", "e", None, "a"] * 50, categories=["e", "d", "c", "b", "a"]
    )
    ex = TreeExplainer(clf)
    ours = ex.contributions(test)
    ref = clf.booster_.predict(test, pred_contrib=True)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    assert ex.shap_values(test).shape == (200, 3)


def test_input_does_not_get_mutated_and_empty_input():
    X, y = _data(0, 300, 3, 0.2, 0.0)
    booster = lgb.train(dict(objective="binary", verbose=-1), lgb.Dataset(X, y), 3)
    ex = TreeExplainer(booster)
    before = X.copy()
    ex.shap_values(X)
    np.testing.assert_array_equal(X, before)
    assert ex.shap_values(X[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match="columns"):
        ex.shap_values(X[:, :2])


def test_model_on_synthetic_book_matches_pred_contrib(trained_state):
    from models.model import categorical_levels, feature_matrix, resolve_feature_names

    # The session's synthetic book's training set: real feature frames, categoricals too.
    ts = trained_state.training_set
    ts = ts[~ts["censored"] & ts["y"].notna()]
    names = resolve_feature_names(ts)
    x = feature_matrix(ts, names, categorical_levels(ts, names))
    booster = lgb.train(
        dict(objective="binary", num_leaves=15, verbose=-1, min_data_in_leaf=10, seed=0),
        lgb.Dataset(x, ts["y"].astype(int).to_numpy()), 30,
    )
    ex = TreeExplainer(booster)
    ours = ex.contributions(x)
    np.testing.assert_allclose(ours, booster.predict(x, pred_contrib=True), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        ours.sum(axis=1), booster.predict(x, raw_score=True), rtol=0, atol=TOL
    )


def test_integer_and_float32_inputs_are_cast_like_lightgbm():
    rng = np.random.default_rng(5)
    X = rng.integers(0, 2**25, size=(800, 3))  # ints above 2^24 lose bits in float32
    y = (X[:, 0] % 7 > 3).astype(int)
    booster = lgb.train(
        dict(objective="binary", verbose=-1, num_leaves=31, max_bin=255), lgb.Dataset(X, y), 5
    )
    _assert_exact(booster, X[:300])
    _assert_exact(booster, X[:300].astype(np.float32))
    frame = pd.DataFrame(X[:300], columns=["a", "b", "c"]).astype({"a": "Int64"})
    frame.loc[3, "a"] = pd.NA
    ex = TreeExplainer(booster)
    np.testing.assert_allclose(
        ex.contributions(frame), booster.predict(frame, pred_contrib=True), rtol=0, atol=TOL
    )
