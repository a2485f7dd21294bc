"""Reason codes: every feature has a template; sentences carry the account's own numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import reason_render as RR
from serving import reasons as R
from serving._reason_table import Template

TOY = {
    "oldest_dpd": Template(
        "oldest open invoice is {v:int} days past due",
        variants=((lambda v: v <= 0, "nothing is past due yet"),),
        detail=" ({oldest_invoice_id:str}, {oldest_invoice_open:money} open)",
    ),
    "past_due_share": Template("{v:pct} of the open balance is past due"),
    "n_late15": Template("{v:int} of the last {n_paid:int} invoices were paid 15+ days late"),
    "days_late_mean": Template(
        "invoices were paid {v:dec} days late on average",
        variants=((lambda v: v < 0, "invoices were paid {v:abs} days early on average"),),
        if_missing="no invoice was paid in the window",
    ),
    "region": Template("customer region is {v:str}"),
    "n_paid": Template("{v:int} invoices paid"),
}
NAMES = list(TOY)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "oldest_dpd": [47.0, -3.0, 95.0],
            "past_due_share": [0.62, 0.0, 1.0],
            "n_late15": [4.0, 0.0, 2.0],
            "days_late_mean": [12.25, np.nan, -2.4],
            "region": pd.Categorical(["north", None, 'so"uth']),
            "n_paid": [6.0, 0.0, np.nan],
            "oldest_invoice_id": pd.Series(["INV-123", "INV-9", None], dtype="str"),
            "oldest_invoice_open": [1200.0, 50.0, 3.0],
        }
    )


def test_top_three_and_mitigating_use_own_numbers() -> None:
    frame = _frame()
    shap = np.array(
        [
            [0.9, 0.5, 0.7, 0.1, -0.2, -0.8],
            [0.0, 0.0, 0.0, 0.4, 0.0, -0.1],
            [-0.5, 0.3, 0.2, 0.1, 0.0, 0.6],
        ]
    )
    out = R.reason_codes(frame, shap, NAMES, templates=TOY)
    first = "oldest open invoice is 47 days past due (INV-123, $1,200 open)"
    assert out.loc[0, "reason_1"] == first
    assert out.loc[0, "reason_2"] == "4 of the last 6 invoices were paid 15+ days late"
    assert out.loc[0, "reason_3"] == "62% of the open balance is past due"
    assert out.loc[0, "mitigating_reason"] == "6 invoices paid"
    # Missing value with an if_missing sentence: the sentence, not a number.
    assert out.loc[1, "reason_1"] == "no invoice was paid in the window"
    assert pd.isna(out.loc[1, "reason_2"])
    assert out.loc[1, "mitigating_reason"] == "0 invoices paid"
    # n_paid missing (no if_missing) -> skipped; so is n_late15 (its field n_paid is missing).
    assert out.loc[2, "reason_1"] == "0% of the open balance is past due".replace("0%", "100%")
    assert out.loc[2, "reason_2"] == "invoices were paid 2 days early on average"
    assert out.loc[2, "mitigating_reason"].startswith("oldest open invoice is 95 days past due")
    for text in out["reasons_json"]:
        json.loads(text)


def test_delinquent_accounts_always_state_the_fact() -> None:
    frame = _frame()
    shap = np.array(
        [
            [-0.9, 0.5, 0.7, 0.1, 0.2, -0.1],
            [-0.9, 0.5, 0.7, 0.1, 0.2, -0.1],
            [-0.9, 0.5, 0.7, 0.1, 0.2, -0.1],
        ]
    )
    seg = ["delinquent", "early", "late"]
    out = R.reason_codes(frame, shap, NAMES, segment=seg, templates=TOY)
    assert out.loc[0, "reason_3"].startswith("oldest open invoice is 47 days past due")
    assert out.loc[0, "mitigating_reason"] == "6 invoices paid"  # the fact is not repeated
    assert not str(out.loc[1, "reason_3"]).startswith("oldest")
    items = json.loads(out.loc[2, "reasons_json"])
    fact = [i for i in items if i["feature"] == "oldest_dpd"]
    assert fact and fact[0]["direction"] == "fact" and fact[0]["value"] == 95
    assert "so'uth" not in out.loc[2, "reason_1"]  # region SHAP 0.2 < others


def test_reasons_json_is_structured() -> None:
    frame = _frame()
    shap = np.array([[0.9, 0.5, 0.7, 0.1, -0.2, -0.8]] * 3)
    out = R.reason_codes(frame, shap, NAMES, templates=TOY)
    items = json.loads(out.loc[0, "reasons_json"])
    assert [i["feature"] for i in items] == ["oldest_dpd", "n_late15", "past_due_share", "n_paid"]
    assert [i["direction"] for i in items] == ["raises"] * 3 + ["lowers"]
    assert items[0]["value"] == 47 and items[0]["shap"] == pytest.approx(0.9)
    assert items[0]["text"] == out.loc[0, "reason_1"]


def test_text_values_are_json_safe() -> None:
    frame = _frame()
    shap = np.zeros((3, len(NAMES)))
    shap[:, 4] = 1.0
    out = R.reason_codes(frame, shap, NAMES, templates=TOY)
    assert out.loc[2, "reason_1"] == "customer region is so'uth"
    assert json.loads(out.loc[2, "reasons_json"])[0]["value"] == "so'uth"
    assert pd.isna(out.loc[1, "reason_1"])  # region missing and no if_missing sentence


def test_empty_frame() -> None:
    frame = _frame().iloc[:0]
    out = R.reason_codes(frame, np.zeros((0, len(NAMES))), NAMES, templates=TOY)
    assert list(out.columns) == list(R.REASON_COLUMNS) and len(out) == 0


def test_missing_template_is_refused() -> None:
    with pytest.raises(KeyError, match="no_such_feature"):
        R.reason_codes(_frame(), np.zeros((3, 1)), ["no_such_feature"], templates=TOY)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=20))
def test_money_format_matches_python(values: list[float]) -> None:
    got = RR._fmt_money(np.array(values), "$").to_pylist()
    want = [("-" if round(v) < 0 else "") + f"${abs(round(v)):,}" for v in values]
    assert got == want


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20))
def test_decimal_format_matches_python(values: list[float]) -> None:
    got = RR._fmt_dec(np.array(values), "").to_pylist()
    for g, v in zip(got, values, strict=True):
        assert float(g) == pytest.approx(v, abs=0.051)


# ------------------------------------------------------------------ the real feature table


def test_every_feature_has_a_template() -> None:
    from features import feature_names

    assert R.missing_templates(feature_names()) == []
    assert R.missing_templates(["open_balance", "not_a_feature"]) == ["not_a_feature"]


def _real_frame(names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({f: [3.0, np.nan, 0.0, -4.0] for f in names})
    for c in ("account_segment", "account_region"):
        if c in frame:
            frame[c] = pd.Categorical(["smb", None, "smb", "smb"])
    frame["oldest_invoice_id"] = pd.Series(["INV-7", "INV-8", None, "INV-9"], dtype="str")
    frame["oldest_invoice_open"] = [1234.6, 10.0, 5.0, 7.0]
    return frame


def test_every_template_renders_values_and_missing_values() -> None:
    from features import feature_names

    names = feature_names()
    frame = _real_frame(names)
    for j, feature in enumerate(names):
        shap = np.zeros((len(frame), len(names)))
        shap[:, j] = 1.0
        out = R.reason_codes(frame, shap, names)
        texts = out["reason_1"].tolist()
        assert isinstance(texts[0], str) and texts[0], feature
        if feature not in ("account_segment", "account_region"):
            assert "3" in texts[0], (feature, texts[0])  # the account's own value
        else:
            assert texts[0].endswith("smb")
        # Missing value: the template's sentence for it, or skipped (no reason at all).
        if R.TEMPLATES[feature].if_missing is None:
            assert pd.isna(texts[1]), (feature, texts[1])
        else:
            assert texts[1] == R.TEMPLATES[feature].if_missing
        for text in (t for t in texts if isinstance(t, str)):
            assert "nan" not in text and "None" not in text and "--" not in text, text
            assert "{" not in text, text


def test_fact_sentence_names_the_invoice() -> None:
    from features import feature_names

    names = feature_names()
    frame = _real_frame(names)
    frame["oldest_dpd"] = [47.0, 5.0, 0.0, -12.0]
    shap = np.zeros((len(frame), len(names)))
    shap[:, names.index("oldest_dpd")] = 1.0
    out = R.reason_codes(frame, shap, names)
    assert out.loc[0, "reason_1"] == (
        "$3 is past due; the oldest open invoice is 47 days past due (INV-7, $1,235 open)"
    )
    assert out.loc[2, "reason_1"] == "oldest open invoice falls due today"
    assert out.loc[3, "reason_1"].startswith("nothing is past due; the oldest open invoice is "
                                             "due in 12 days (INV-9")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(NAMES), max_size=len(NAMES)),
        min_size=3, max_size=3,
    )
)
def test_chosen_reasons_are_the_extreme_shap_values(rows: list[list[float]]) -> None:
    frame = _frame()
    shap = np.array(rows)
    out = R.reason_codes(frame, shap, NAMES, templates=TOY)
    ok = R._renderable(frame, NAMES, TOY)
    for i in range(3):
        items = json.loads(out.loc[i, "reasons_json"])
        risk = [it["shap"] for it in items if it["direction"] == "raises"]
        low = [it["shap"] for it in items if it["direction"] == "lowers"]
        candidates = sorted((s for s, k in zip(shap[i], ok[i], strict=True) if k and s > 0),
                            reverse=True)
        assert risk == pytest.approx([round(s, 6) for s in candidates[:3]], abs=1e-6)
        negatives = [s for s, k in zip(shap[i], ok[i], strict=True) if k and s < 0]
        assert low == pytest.approx([round(min(negatives), 6)] if negatives else [], abs=1e-6)
        texts = [out.loc[i, c] for c in ("reason_1", "reason_2", "reason_3")]
        assert [t for t in texts if isinstance(t, str)] == [
            it["text"] for it in items if it["direction"] == "raises"
        ]


def test_the_rules_reasons_state_its_facts_as_json_whatever_the_values_and_ids() -> None:
    """The aging rule's reasons (``rule_reasons`` through ``fact_reasons``): reason_1 the
    oldest invoice's fact, reason_2 the past-due amount's only when something is past due,
    no third or mitigating reason; ``reasons_json`` parses to exactly those facts in
    order, values rounded to 6 places, null when missing or infinite, and stays JSON
    whatever the invoice id holds (quotes, backslashes, control characters, non-ASCII)."""
    import json

    import numpy as np

    from serving.rule_scoring import rule_reasons

    dpd = [95.0, 1 / 3, np.nan, 12.0, np.inf, 3.0]
    past_due = [2736.375, 1e-9, np.nan, 0.0, 123456789.123456789, -5.0]
    ids = ['INV-"1"', "a\\b", "ü-€", "x\ny", "\x01", "0042"]
    part = pd.DataFrame({
        "oldest_dpd": dpd, "past_due_amount": past_due, "oldest_invoice_id": ids,
        "oldest_invoice_open": [100.0] * 6, "past_due_share": [0.4] * 6,
    }, index=pd.RangeIndex(10, 16))
    out = rule_reasons(part)
    assert list(out.columns) == ["reason_1", "reason_2", "reason_3", "mitigating_reason",
                                 "reasons_json"]
    assert out.index.equals(part.index)
    assert out["reason_3"].isna().all() and out["mitigating_reason"].isna().all()
    for i, row in enumerate(out.itertuples(index=False)):
        facts = json.loads(row.reasons_json)
        stated = [t for t in (row.reason_1, row.reason_2) if isinstance(t, str)]
        assert [f["text"] for f in facts] == stated
        assert isinstance(row.reason_2, str) == (past_due[i] > 0)  # nan, 0, negative: none
        assert all(f["shap"] is None and f["direction"] == "fact" for f in facts)
        want = {"oldest_dpd": dpd[i], "past_due_amount": past_due[i]}
        for f in facts:
            v = want[f["feature"]]
            assert f["value"] == (round(v, 6) if np.isfinite(v) else None), (i, f)
        assert [f["feature"] for f in facts] == (
            ["oldest_dpd"] * isinstance(row.reason_1, str)
            + ["past_due_amount"] * isinstance(row.reason_2, str))
