"""The fast features/labels equal the plain pandas reference (bench/reference_features.py)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.reference_features import reference_features, reference_labels
from features import (
    FEATURE_DESCRIPTIONS,
    FEATURE_SET_VERSION,
    build_features,
    build_labels,
    build_training_set,
    feature_names,
)
from features.pit.training_set import as_of_grid
from features.spec import (
    CATEGORICAL,
    DEFAULT_MATERIALITY,
    FACT_COLUMNS,
    FEATURE_DTYPES,
    KERNEL_COLUMNS,
    NO_MATERIALITY,
    NUMERIC_COLUMNS,
    Materiality,
    check_feature_frame,
)
from features.synthetic import generate_book
from tests.factories import BASE, books_and_as_of, make_book, random_book


def assert_same(fast: pd.DataFrame, ref: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast, ref, check_exact=False, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(case=books_and_as_of())
def test_features_equal_reference_on_random_books(case):
    book, as_of = case
    assert_same(build_features(book, as_of=as_of, facts=True),
                reference_features(book, as_of=as_of, facts=True))


#: Materiality pairs the random books (amounts of tens to hundreds) straddle.
MATERIALITIES = st.sampled_from([NO_MATERIALITY, DEFAULT_MATERIALITY,
                                 Materiality(absolute=150.0, share=0.05),
                                 Materiality(absolute=0.0, share=0.3)])


@settings(max_examples=25, deadline=None)
@given(case=books_and_as_of(), materiality=MATERIALITIES)
def test_features_equal_reference_under_materiality(case, materiality):
    book, as_of = case
    assert_same(build_features(book, as_of=as_of, facts=True, materiality=materiality),
                reference_features(book, as_of=as_of, facts=True, materiality=materiality))


@settings(max_examples=25, deadline=None)
@given(case=books_and_as_of(), dpd=st.sampled_from([1, 15, 30]),
       persist=st.sampled_from([1, 29, 30, 45]),
       end_days=st.one_of(st.none(), st.integers(0, 120)), materiality=MATERIALITIES)
def test_labels_equal_reference_on_random_books(case, dpd, persist, end_days, materiality):
    book, as_of = case
    end = None if end_days is None else as_of + pd.Timedelta(days=end_days)
    kw = dict(delinquency_dpd=dpd, persistence_days=persist, data_end=end,
              materiality=materiality)
    assert_same(build_labels(book, as_of=as_of, **kw), reference_labels(book, as_of=as_of, **kw))


@pytest.fixture(scope="module")
def synthetic():
    return generate_book(300, seed=7)


@pytest.mark.parametrize("as_of", ["2023-03-01", "2024-06-15", "2024-12-31", "2025-02-01"])
def test_equal_reference_on_synthetic_book(synthetic, as_of):
    as_of = date.fromisoformat(as_of)
    fast = build_features(synthetic, as_of=as_of)
    assert len(fast) > 0
    assert_same(fast, reference_features(synthetic, as_of=as_of))
    assert_same(build_features(synthetic, as_of=as_of, facts=True),
                reference_features(synthetic, as_of=as_of, facts=True))
    assert_same(build_labels(synthetic, as_of=as_of), reference_labels(synthetic, as_of=as_of))


def test_training_set_equals_stacked_single_date_calls(synthetic):
    dates = as_of_grid(synthetic, freq="monthly")[:6]
    ts = build_training_set(synthetic, as_of_dates=dates, persistence_days=20)
    parts = [build_features(synthetic, as_of=d).merge(
        build_labels(synthetic, as_of=d, persistence_days=20), on=["account_id", "as_of"])
        for d in dates]
    expected = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(ts, expected)
    assert ts["as_of"].nunique() == len(dates)
    assert not ts["y"].isna().all()


def test_training_set_grid_weekly_and_monthly():
    book = random_book(3, n_accounts=3, n_invoices=30)
    weekly = as_of_grid(book, freq="weekly", start=date(2024, 1, 8),
                         end=date(2024, 3, 4))
    assert weekly[0] == pd.Timestamp("2024-01-08").date() and len(weekly) == 9
    assert all((b - a).days == 7 for a, b in zip(weekly, weekly[1:], strict=False))
    monthly = as_of_grid(book, freq="monthly", start=date(2024, 1, 15),
                          end=date(2024, 4, 1))
    assert [d.isoformat() for d in monthly] == ["2024-02-01", "2024-03-01", "2024-04-01"]
    with pytest.raises(ValueError):
        as_of_grid(book, freq="daily")


def test_feature_names_and_descriptions_cover_every_column():
    names = feature_names()
    assert names[:3] == ["open_balance", "past_due_amount", "oldest_dpd"]
    assert set(NUMERIC_COLUMNS) | set(CATEGORICAL) == set(names)
    assert set(NUMERIC_COLUMNS) <= set(KERNEL_COLUMNS)
    assert set(KERNEL_COLUMNS) - set(NUMERIC_COLUMNS) <= set(FACT_COLUMNS)
    assert set(FEATURE_DESCRIPTIONS) == set(names)
    frame = build_features(random_book(1), as_of=BASE + pd.Timedelta(days=100))
    assert list(frame.columns) == ["account_id", "as_of", "segment", *names]
    assert list(FEATURE_DTYPES) == list(frame.columns)
    assert all(str(frame[c].dtype) == "category" for c in CATEGORICAL)
    check_feature_frame(frame)
    assert isinstance(FEATURE_SET_VERSION, str) and len(FEATURE_SET_VERSION) == 12


@st.composite
def horizon_edge_cases(draw):
    """Books whose invoices clear right at the label edges: due + D - 1, D or D + 1 (early
    warning) and as_of + P - 1, P or P + 1 (persistence), partly in instalments."""
    dpd = draw(st.sampled_from([1, 15, 30]))
    persist = draw(st.sampled_from([1, 29, 30]))
    as_of = BASE + pd.Timedelta(days=100)
    invoices, payments = [], []
    for k in range(draw(st.integers(1, 5))):
        acc = f"A{draw(st.integers(0, 2))}"
        dpd_now = draw(st.sampled_from([-20, -1, 0, 1, dpd - 1, dpd, dpd + 1, 45, 90]))
        due = as_of - pd.Timedelta(days=dpd_now)
        issue = min(due, as_of - pd.Timedelta(days=1)) - pd.Timedelta(days=draw(
            st.sampled_from([0, 10])))
        invoices.append((f"I{k}", acc, issue, due, 100.0))
        anchor = draw(st.sampled_from(["due", "check", "none"]))
        if anchor == "none":
            continue
        edge = (due + pd.Timedelta(days=dpd) if anchor == "due"
                else as_of + pd.Timedelta(days=persist))
        when = max(edge + pd.Timedelta(days=draw(st.integers(-1, 1))), issue)
        if draw(st.booleans()):  # an instalment first, possibly before as_of
            first = max(issue, min(when, as_of) - pd.Timedelta(days=draw(st.integers(0, 5))))
            payments += [(f"I{k}", first, 40.0), (f"I{k}", when, 60.0)]
        else:
            payments.append((f"I{k}", when, 100.0))
    end = draw(st.one_of(st.none(), st.integers(100, 180).map(
        lambda d: BASE + pd.Timedelta(days=d))))
    return make_book(invoices, payments), as_of, dict(
        delinquency_dpd=dpd, persistence_days=persist, data_end=end)


@settings(max_examples=40, deadline=None)
@given(case=horizon_edge_cases())
def test_labels_equal_reference_at_horizon_edges(case):
    book, as_of, kw = case
    assert_same(build_labels(book, as_of=as_of, **kw), reference_labels(book, as_of=as_of, **kw))
