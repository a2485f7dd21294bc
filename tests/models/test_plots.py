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
