"""Population stability against the training reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from models.drift import flag, psi, psi_table, reference_profile


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, size=n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "days_late_mean_all": x,
        "n_open_invoices": rng.integers(1, 4, n).astype(float),
        "account_region": pd.Categorical(rng.choice(["n", "s", "e"], n)),
    })


FEATS = ["days_late_mean_all", "n_open_invoices", "account_region"]


def test_profile_is_json_and_self_psi_is_zero() -> None:
    frame = _frame(2000, 0)
    scores = np.random.default_rng(0).random(2000)
    profile = reference_profile(frame, feature_names=FEATS, scores=scores)
    restored = json.loads(json.dumps(profile))
    table = psi_table(restored, frame, scores=scores)
    assert set(table["feature"]) == {*FEATS, "__score__"}
    assert table["psi"].abs().max() < 1e-9
    assert set(table["flag"]) == {"ok"}


def test_same_distribution_new_sample_is_ok_and_shift_alerts() -> None:
    profile = reference_profile(_frame(5000, 0), feature_names=FEATS, scores=np.zeros(5000))
    same = psi_table(profile, _frame(5000, 1)).set_index("feature")
    assert (same["flag"] == "ok").all()
    shifted = psi_table(profile, _frame(5000, 2, shift=1.5)).set_index("feature")
    assert shifted.loc["days_late_mean_all", "flag"] == "alert"
    assert shifted.loc["n_open_invoices", "flag"] == "ok"


def test_unseen_levels_and_missing_columns_drift() -> None:
    frame = _frame(1000, 0)
    profile = reference_profile(frame, feature_names=FEATS, scores=np.zeros(1000))
    new = frame.assign(account_region=pd.Categorical(["w"] * 1000)).drop(
        columns="n_open_invoices"
    )
    table = psi_table(profile, new).set_index("feature")
    assert table.loc["account_region", "flag"] == "alert"
    assert table.loc["n_open_invoices", "flag"] == "alert"  # reported as all-missing


def test_flags() -> None:
    assert [flag(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok", "ok", "watch", "watch", "alert", "alert"
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 1), min_size=2, max_size=8), st.integers(0, 1000))
def test_psi_non_negative(weights: list[float], seed: int) -> None:
    e = np.array(weights) / sum(weights)
    a = np.random.default_rng(seed).dirichlet(np.ones(len(e)))
    assert psi(e, a) >= 0
    assert psi(e, e) == 0
