"""models.plots on a single-class test period (issue 12, item 6): the figures are drawn and
saved without a library warning (matplotlib warns on an empty legend, numpy on empty
means), so training prints nothing of the kind."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from models import plots
from models.evaluate import Scores


def _scores(n: int, seed: int) -> Scores:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.3, n)
    return Scores(proba=p, priority=p * rng.uniform(100, 5000, n))


def test_single_class_figures_raise_no_warning(tmp_path: Path) -> None:
    n = 50
    y = np.zeros(n)  # a test period without a positive: no ROC curve, no delinquent dollars
    scorers = {"lightgbm": _scores(n, 0), "aging_rule": _scores(n, 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = {
            "roc": plots.roc_figure(y, scorers),
            "calibration": plots.calibration_figure(y, scorers["lightgbm"].proba),
            "capture_curve": plots.capture_figure(np.zeros(n), scorers),
        }
        paths = plots.save_all(figs, tmp_path)
    assert [p.name for p in paths] == ["roc.png", "calibration.png", "capture_curve.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert figs["roc"].axes[0].get_legend() is None  # nothing labelled: no empty legend


def test_two_class_figures_keep_their_legend() -> None:
    n = 50
    y = (np.arange(n) % 5 == 0).astype(float)
    scorers = {"lightgbm": _scores(n, 0), "aging_rule": _scores(n, 1)}
    fig = plots.roc_figure(y, scorers)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["lightgbm", "aging_rule"]


def test_weighted_figures_draw_the_full_test_period() -> None:
    """A sampled test period (weights) draws the curves of the rows it stands for: each
    row of weight 2 counts as two rows (ROC and capture points of the expanded rows;
    calibration bins of equal weight, means weighted)."""
    rng = np.random.default_rng(3)
    n = 400
    y = (rng.random(n) < 0.2).astype(float)
    sc = _scores(n, 2)
    w = np.where(y == 1, 1.0, 2.0)  # negatives sampled at rate 1/2
    rep = np.repeat(np.arange(n), w.astype(int))
    expanded = Scores(proba=sc.proba[rep], priority=sc.priority[rep])
    amount = np.where(y == 1, rng.uniform(100, 900, n), 0.0)

    def line(fig, i=0):
        return np.column_stack(fig.axes[0].lines[i].get_data())

    np.testing.assert_allclose(line(plots.roc_figure(y, {"m": sc}, weights=w)),
                               line(plots.roc_figure(y[rep], {"m": expanded})))
    cap_w = line(plots.capture_figure(amount, {"m": sc}, weights=w))
    cap_x = line(plots.capture_figure(amount[rep], {"m": expanded}))
    assert {tuple(p) for p in np.round(cap_w, 12)} <= {tuple(p) for p in np.round(cap_x, 12)}
    cal = line(plots.calibration_figure(y, sc.proba, weights=w))
    assert len(cal) == 10
    assert np.isclose(np.average(cal[:, 1]), np.average(y, weights=w), atol=0.02)
    unweighted = line(plots.calibration_figure(y, sc.proba))
    assert not np.allclose(cal[:, 1], unweighted[:, 1])  # the weights change the rates
