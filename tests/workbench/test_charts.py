"""The account page's SVG charts, checked by hand on small inputs."""

from __future__ import annotations

import re

import pytest

from workbench.charts import history_svg, top_contributions, waterfall_svg
from workbench.page_common import pct


def test_top_contributions_keep_the_strongest_and_sum_the_rest() -> None:
    features = {"a": {"value": 1, "shap": 0.5}, "b": {"value": 2, "shap": -0.8},
                "c": {"value": 3, "shap": 0.1}, "d": {"value": 4, "shap": 0.05},
                "e": {"value": 5, "shap": 0.0}}
    bars = top_contributions(features, top=2)
    assert bars[:2] == [("b", 2, -0.8), ("a", 1, 0.5)]
    assert bars[2][0] == "other 2 features" and bars[2][2] == pytest.approx(0.15)


def test_waterfall_ends_at_the_raw_score_and_escapes_labels() -> None:
    features = {"<script>x</script>": {"value": "<b>", "shap": 0.75},
                "dpd": {"value": 40.0, "shap": -0.25}}
    svg = str(waterfall_svg(base_value=-2.0, features=features))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect") == 2
    # base -2.0 + 0.75 - 0.25 = -1.5, printed as the final score.
    assert re.search(r">-1\.500</text>", svg)
    assert "No explanation" in str(waterfall_svg(base_value=None, features={}))


def test_history_marks_missing_probabilities_and_missing_reads_thin_data() -> None:
    svg = str(history_svg([("2024-01-01", 0.2), ("2024-02-01", None), ("2024-03-01", 0.4)]))
    assert svg.count("<circle") == 3 and "2024-02-01: n/a" in svg
    assert pct(None) == "n/a (thin data)" and pct(0.1234) == "12.3%"
