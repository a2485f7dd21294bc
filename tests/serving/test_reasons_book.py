"""Reasons over a whole scored synthetic book (the session ``trained_state``): never on
the wrong side of typical, no fact twice in a row, and the top of the worklist explained
by at least two risk reasons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.spec import FEATURE_DIRECTION
from serving._reason_table import TEMPLATES
from serving.reasons import typical_values
from serving.score import score_book


@pytest.fixture(scope="module")
def scored(trained_state):
    result = score_book(trained_state.book, as_of=trained_state.as_of.date(),
                        models=trained_state.models)
    return result, trained_state.models


def _items(wl: pd.DataFrame) -> list[tuple[str, str, list[dict]]]:
    return [(a, m, json.loads(j)) for a, m, j in
            zip(wl["account_id"], wl["model"], wl["reasons_json"], strict=True)]


def test_no_reason_reads_backwards(scored) -> None:
    result, models = scored
    typical = {k: typical_values(m) for k, m in models.items()}
    assert all(typical.values())
    wrong, cited = [], 0
    for account, model, items in _items(result.worklist):
        for it in items:
            if it["direction"] == "fact":
                continue
            cited += 1
            d = FEATURE_DIRECTION.get(it["feature"], 0)
            t = typical[model].get(it["feature"])
            v = it["value"]
            sign = 1 if it["direction"] == "raises" else -1
            if d == 0 or t is None or v is None or not sign * d * (v - t) > 0:
                wrong.append((account, it["text"]))
            assert "typical for" in it["text"], it["text"]
    assert cited > 0 and wrong == []


def test_no_fact_twice_in_a_row(scored) -> None:
    result, _ = scored
    for _, _, items in _items(result.worklist):
        texts = [it["text"] for it in items]
        assert len(texts) == len(set(texts))
        facts = [TEMPLATES[it["feature"]].fact or it["feature"] for it in items]
        assert len(facts) == len(set(facts)), texts


def test_tenure_bounded_by_the_data_is_never_a_reason(scored, trained_state) -> None:
    result, _ = scored
    history = (trained_state.as_of - pd.Timestamp(trained_state.book.first_date)).days
    ex = result.explanations.set_index("account_id")
    for account, _, items in _items(result.worklist):
        for it in items:
            if it["feature"] == "tenure_days":
                assert ex.loc[account, "tenure_days"] < history - 45


def test_the_top_fifth_has_at_least_two_risk_reasons(scored) -> None:
    wl = scored[0].worklist
    top = wl.nsmallest(max(1, len(wl) // 5), "rank")
    n_reasons = top[["reason_1", "reason_2", "reason_3"]].notna().sum(axis=1)
    share = float((n_reasons >= 2).mean())
    assert share >= 0.95, share


def test_delinquent_rows_state_the_fact_and_residues_are_facts(scored) -> None:
    wl = scored[0].worklist
    for seg, pd_amt, items in zip(wl["segment"], wl["past_due_amount"],
                                  wl["reasons_json"].map(json.loads), strict=True):
        facts = [it for it in items if it["feature"] == "oldest_dpd"]
        if seg in ("delinquent", "late") or (seg == "preventive" and pd_amt > 0):
            assert facts, (seg, items)
        if seg == "preventive" and pd_amt > 0:
            assert facts[0]["direction"] == "fact"
            assert "below the materiality threshold" in facts[0]["text"]
    assert np.isfinite(wl["probability"]).all()


def test_reasons_in_blocks_are_the_reasons_of_the_whole(trained_state, monkeypatch) -> None:
    # An account's reasons read only its own row: blocks of 7 accounts (the last one
    # short; each block has its own mix of segments and missing values) give the frame
    # of one pass over all of them, index, dtypes and every string.
    from features.pit import build_features
    from serving import reasons as R

    feats = build_features(trained_state.book, as_of=trained_state.as_of.date(), facts=True)
    feats = feats.iloc[::-1]  # an index that is not 0..n-1
    model = trained_state.models["persistence"]
    phi = model.explain(feats).values
    assert len(feats) % 7 and len(feats) > 7 * 3

    def run() -> pd.DataFrame:
        return R.reason_codes(feats, phi, model.feature_names, segment=feats["segment"],
                              typical=typical_values(model), population="persistence",
                              history_days=365.0)

    whole = run()
    monkeypatch.setattr(R, "BLOCK_ROWS", 7)
    blocks = run()
    pd.testing.assert_frame_equal(blocks, whole)
    assert whole["reasons_json"].notna().all() and whole["reason_1"].notna().any()
