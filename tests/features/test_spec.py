"""The leaf spec: one definition per domain constant, the cut-off normaliser, the cents rule,
the kernel layout and the feature-frame dtype check."""

from __future__ import annotations

import ast
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features.spec as S
from features import build_features, build_training_set
from tests.factories import make_book

ROOT = Path(__file__).resolve().parents[2]


def test_spec_is_a_leaf() -> None:
    tree = ast.parse((ROOT / "features" / "spec.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"features", "models", "serving", "pipelines", "bench"}


def test_segments_models_and_edges() -> None:
    assert S.SEGMENT_EDGES == (1, 30, 90)
    assert S.DELINQUENT_SEGMENTS == ("delinquent", "late")
    assert S.MODEL_OF_SEGMENT == {"preventive": "early_warning", "early": "early_warning",
                                  "delinquent": "persistence", "late": "persistence"}
    assert set(S.MODEL_OF_SEGMENT.values()) == set(S.MODELS)
    dpd = np.array([-3, 0, 1, 29, 30, 89, 90, 500])
    assert S.segment_of(dpd).tolist() == ["preventive", "preventive", "early", "early",
                                          "delinquent", "delinquent", "late", "late"]


def test_bucket_and_window_names_derive_from_the_constants() -> None:
    assert S.AGING_COLUMNS == ("amt_dpd_1_30", "amt_dpd_31_60", "amt_dpd_61_90",
                               "amt_dpd_91_plus")
    assert S.DUE_SOON_COLUMNS == ("amt_due_next_7d", "amt_due_next_14d", "amt_due_next_30d")
    for metric in S.BEHAVIOUR_METRICS:
        for days in S.BEHAVIOUR_WINDOWS:
            assert S.behaviour_column(metric, days) in S.FEATURE_SPEC
    assert "share_late_15d_all" in S.FEATURE_SPEC


def test_other_packages_import_the_one_definition() -> None:
    from features.pit import labels
    from serving import reasons, schemas, store_schema

    assert store_schema.SEGMENTS is S.SEGMENTS and store_schema.MODELS is S.MODELS
    assert schemas.SEGMENTS is S.SEGMENTS and schemas.MODELS is S.MODELS
    assert labels.MODELS is S.MODELS
    assert reasons.DELINQUENT_SEGMENTS is S.DELINQUENT_SEGMENTS


def test_enumerations_are_typed_strings() -> None:
    assert [c.value for c in S.ContactChannel] == ["phone", "email", "letter", "portal", "sms",
                                                   "visit"]
    assert [o.value for o in S.ContactOutcome] == ["reached", "no_answer", "wrong_contact",
                                                   "refused", "promised", "disputed"]
    assert [k.value for k in S.EventKind] == [
        "contact", "promise", "promise_cancelled", "dispute_opened", "dispute_resolved",
        "note", "assignment", "snooze", "unsnooze"]
    assert S.ContactChannel("sms") is S.ContactChannel.SMS and S.EventKind.NOTE == "note"
    with pytest.raises(ValueError):
        S.ContactOutcome("maybe")


def test_as_day_is_the_one_normaliser() -> None:
    day = date(2024, 7, 1)
    assert S.as_day(day) is day
    assert S.as_day(pd.Timestamp("2024-07-01 23:59")) == day
    assert S.as_day(datetime(2024, 7, 1, 8)) == day
    assert S.as_day(np.datetime64("2024-07-01")) == day
    with pytest.raises(TypeError, match="expected a date or pd.Timestamp"):
        S.as_day("2024-07-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaT"):
        S.as_day(pd.NaT)  # type: ignore[arg-type]


def test_cents_rule() -> None:
    assert S.to_cents(np.array([99.99, 100.0, 0.01, 0.3 - 0.1, 1e9 + 0.07])).tolist() == [
        9999, 10000, 1, 20, 100_000_000_007]
    paid = np.array([99.99, 99.98, 100.5, 0.1 + 0.2 + 99.69])
    assert S.is_cleared(paid, 100.0).tolist() == [True, False, True, True]
    assert S.is_cleared(99.99, 100.0, tolerance_cents=0) == np.False_


@settings(max_examples=200, deadline=None)
@given(amount=st.integers(1, 10**11), payments=st.lists(st.integers(1, 10**9), max_size=8),
       tol=st.sampled_from([0, 1, 2]))
def test_the_kernels_threshold_is_the_cents_rule(amount, payments, tol) -> None:
    """On whole cents, a running total reaches ``clear_threshold`` exactly when
    ``is_cleared`` says so (the kernels use the first, the oracle the second)."""
    dollars = amount / 100.0
    running = np.cumsum(np.array(payments, dtype=np.float64) / 100.0)
    running = np.r_[running, dollars - tol / 100.0, dollars - (tol + 1) / 100.0]
    assert ((running >= S.clear_threshold(dollars, tol))
            == S.is_cleared(running, dollars, tol)).all()


def test_kernel_rows_are_addressed_by_name() -> None:
    from features.pit._kernels import COLS, PARAMS

    assert S.KERNEL_COLUMNS[:len(S.NUMERIC_COLUMNS)] == S.NUMERIC_COLUMNS
    for name, k in S.KERNEL_INDEX.items():
        assert COLS[name] == k
    assert [S.KERNEL_COLUMNS[k] for k in COLS["aging"]] == list(S.AGING_COLUMNS)
    assert [S.KERNEL_COLUMNS[k] for k in COLS["share_late"][1]] == [
        S.behaviour_column("share_late_15d", w) for w in S.BEHAVIOUR_WINDOWS]
    assert PARAMS["aging_lo"].tolist() == [lo for lo, _ in S.AGING_BUCKETS]


def test_feature_frame_dtypes() -> None:
    book = make_book([("I1", "A", "2024-01-01", "2024-02-01", 100.0),
                      ("I2", "B", "2024-01-01", "2024-03-01", 50.0)],
                     [("I1", "2024-01-20", 30.0)], accounts=[("A", "small", "emea")])
    frame = build_features(book, as_of=date(2024, 2, 10), facts=True)
    assert len(frame) == 2
    S.check_feature_frame(frame)
    assert {c: str(frame[c].dtype) for c in frame.columns} == {**S.FEATURE_DTYPES,
                                                               **S.FACT_DTYPES}
    training = build_training_set(book, as_of_dates=[date(2024, 2, 10)])
    assert len(training) == 2
    S.check_feature_frame(training)  # label columns beside the features are fine

    with pytest.raises(ValueError, match="'oldest_dpd' has dtype int64, expected float64"):
        S.check_feature_frame(frame.astype({"oldest_dpd": "int64"}))
    with pytest.raises(ValueError, match="'account_region' has dtype str, expected category"):
        S.check_feature_frame(frame.astype({"account_region": "str"}))
    with pytest.raises(ValueError, match="no column 'tenure_days'"):
        S.check_feature_frame(frame.drop(columns="tenure_days"))
    with pytest.raises(ValueError, match="'partial_payer' has dtype float64, expected bool"):
        S.check_feature_frame(frame.astype({"partial_payer": "float64"}))


def test_protected_attributes_are_no_model_input() -> None:
    from features.spec import (
        FEATURE_COLUMNS,
        MODEL_ACCOUNT_ATTRIBUTES,
        check_not_protected,
        protected_names,
    )

    assert protected_names([*FEATURE_COLUMNS, *MODEL_ACCOUNT_ATTRIBUTES]) == []
    # the attribute, a derivative, an account_ form, any spelling; the account's own age
    # (days since the customer account was created) is not a person's age
    names = ["SEX", "age", "Age Band", "education_level", "marital-status", "account_gender",
             "account_age_days", "tenure_days", "segment", "usage"]
    assert protected_names(names) == ["SEX", "age", "Age Band", "education_level",
                                      "marital-status", "account_gender"]
    with pytest.raises(ValueError, match=r"training: protected .*\['marriage'\]"):
        check_not_protected(["oldest_dpd", "marriage"], where="training")
