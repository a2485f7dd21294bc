"""Quality per slice (issue 19, item 4) on hand-made rows: bands, the AUCs beside the rule,
the flag, and the test period of the shared trained state in the training report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.slices import flagged_lines, slice_keys, slice_metrics


def test_bands_of_size_and_tenure() -> None:
    rows = pd.DataFrame({
        "account_segment": ["small", None, "enterprise", "small"],
        "account_region": ["emea", "apac", None, "emea"],
        "open_balance": [999.0, 1_000.0, 150_000.0, np.nan],
        "tenure_days": [10.0, 182.0, 800.0, np.nan],
    })
    keys = slice_keys(rows)
    assert keys["segment"].tolist() == ["small", "unknown", "enterprise", "small"]
    assert keys["region"].tolist() == ["emea", "apac", "unknown", "emea"]
    # an edge belongs to the band above it
    assert keys["size"].tolist() == ["under 1k", "1k-10k", "100k+", "unknown"]
    assert keys["tenure"].tolist() == ["under 6 months", "6 months-2 years", "2 years+",
                                       "unknown"]


def test_a_slice_where_the_model_is_below_the_rule_is_flagged() -> None:
    n = 40
    y = np.tile([1.0, 0.0], n)
    # north: the model ranks perfectly, the rule (oldest DPD) backwards;
    # south: the model backwards, the rule perfectly
    north = pd.DataFrame({"account_region": "north", "y": y[:n],
                          "oldest_dpd": np.where(y[:n] == 1, 1.0, 20.0)})
    south = pd.DataFrame({"account_region": "south", "y": y[:n],
                          "oldest_dpd": np.where(y[:n] == 1, 20.0, 1.0)})
    rows = pd.concat([north, south], ignore_index=True).assign(
        account_segment="small", open_balance=500.0, tenure_days=400.0)
    p = np.concatenate([np.where(y[:n] == 1, 0.9, 0.1), np.where(y[:n] == 1, 0.1, 0.9)])
    table = slice_metrics(rows, probability=p)
    region = table[table["dimension"] == "region"].set_index("value")
    assert region.loc["north", "auc"] == 1.0 and region.loc["north", "rule_auc"] == 0.0
    assert not region.loc["north", "below_rule"]
    assert region.loc["south", "below_rule"] and region.loc["south", "auc"] == 0.0
    # the whole book in one segment: 0.5 each
    seg = table[table["dimension"] == "segment"].iloc[0]
    assert seg["n_rows"] == 80 and seg["auc"] == pytest.approx(0.5)
    (line,) = flagged_lines(table, model="early_warning")
    assert line == ("early_warning: below the aging rule's key on region = south "
                    "(AUC 0.000 vs 1.000, 40 rows)")
    assert set(table["rule_basis"]) == {"key"}  # no served probability given
    # the rule as served: its probability, here backwards in the north as well
    served = slice_metrics(rows, probability=p, rule_probability=1.0 - p)
    north = served[served["value"] == "north"].iloc[0]
    assert north["rule_basis"] == "served" and north["rule_auc"] == 0.0
    (line,) = flagged_lines(served, model="early_warning")
    assert line.startswith("early_warning: below the aging rule as served on region = south")
    # too few rows: no AUC, never flagged
    small = slice_metrics(rows.iloc[:20], probability=p[:20], min_rows=30)
    assert small["auc"].isna().all() and not small["below_rule"].any()


def test_the_training_report_gives_the_slices(trained_state) -> None:
    from models.report import format_report, training_summary

    summary = training_summary(trained_state.results, trained_state.registrations)
    slices = pd.DataFrame(summary["early_warning"]["slices"])
    assert set(slices["dimension"]) == {"segment", "region", "size", "tenure"}
    test = trained_state.results["early_warning"].test
    # every dimension partitions the test period's rows
    assert (slices.groupby("dimension")["n_rows"].sum() == len(test)).all()
    report = format_report(summary)
    flagged = slices[slices["below_rule"]]
    # compared with the rule as served (its calibrated probability on the test period)
    assert set(slices["rule_basis"]) == {"served"}
    for r in flagged.itertuples(index=False):
        assert (f"slice: early_warning: below the aging rule as served on {r.dimension} = "
                f"{r.value}") in report
