"""Evaluation plots logged with each model: ROC, calibration, capture curve, SHAP summary.

Every function returns a matplotlib Figure drawn with the non-interactive Agg canvas
(no display, no global backend switch); :func:`save_all` writes the PNG files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from models.evaluate import Scores


def _legend(ax: Axes, loc: str) -> None:
    """A legend only when something is labelled: a single-class test period draws no ROC
    or capture curve, and matplotlib warns on an empty legend (training prints nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=loc, fontsize=8)


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def roc_figure(y: np.ndarray, scorers: Mapping[str, Scores], *,
               weights: np.ndarray | None = None) -> Figure:
    """ROC curves of every scorer's ranking score on the test period (``weights``: the
    rows' sample weights, so a sampled test period draws the full one's curve)."""
    fig = _figure()
    ax = fig.add_subplot()
    y = np.asarray(y, dtype=float)
    for name, sc in scorers.items():
        rank = np.nan_to_num(np.asarray(sc.proba if sc.ranking is None else sc.ranking), nan=-1e300)
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, rank, sample_weight=weights)
            ax.plot(fpr, tpr, label=name, lw=2 if name == "lightgbm" else 1)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test period")
    _legend(ax, "lower right")
    return fig


def calibration_figure(y: np.ndarray, proba: np.ndarray, *, bins: int = 10,
                       weights: np.ndarray | None = None) -> Figure:
    """Observed rate vs mean probability over equal-frequency bins (test period). With
    ``weights`` (sample weights) the bins hold equal *weight* and both means are weighted,
    as ``models.evaluate``'s ECE: the full test period's curve."""
    fig = _figure()
    ax = fig.add_subplot()
    y = np.asarray(y, dtype=float)
    p = np.asarray(proba, dtype=float)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(p, kind="mergesort")
    n_bins = min(bins, max(len(p), 1))
    # bin of each sorted row by its cumulative weight's midpoint: equal-weight bins
    cum = np.cumsum(w[order])
    mid = (cum - w[order] / 2) / cum[-1] if len(cum) else cum
    edges = np.minimum((mid * n_bins).astype(int), n_bins - 1)
    parts = [order[edges == b] for b in range(n_bins)]
    parts = [i for i in parts if len(i)]
    ax.plot([np.average(p[i], weights=w[i]) for i in parts],
            [np.average(y[i], weights=w[i]) for i in parts], marker="o", label="model")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect")
    ax.set(xlabel="mean calibrated probability", ylabel="observed rate",
           title="Calibration, test period (equal-frequency bins)")
    _legend(ax, "upper left")
    return fig


def capture_figure(amount: np.ndarray, scorers: Mapping[str, Scores], *,
                   weights: np.ndarray | None = None) -> Figure:
    """Cumulative share of delinquent dollars vs share of accounts worked, per scorer.

    Pools the test rows (one ranking over all test dates), which is what a curve can show;
    the capture@k metrics rank within each date. ``weights``: a row stands for ``weight``
    rows (dollars and accounts alike).
    """
    fig = _figure()
    ax = fig.add_subplot()
    w = np.ones(len(amount)) if weights is None else np.asarray(weights, dtype=float)
    amt = np.nan_to_num(np.asarray(amount, dtype=float)) * w
    total = amt.sum()
    for name, sc in scorers.items():
        if total <= 0:
            break
        order = np.argsort(-np.nan_to_num(np.asarray(sc.priority, dtype=float), nan=-np.inf),
                           kind="mergesort")
        share = np.cumsum(amt[order]) / total
        x = np.cumsum(w[order]) / w.sum()
        ax.plot(x, share, label=name, lw=2 if name == "lightgbm" else 1)
    for k in (0.05, 0.10, 0.20):
        ax.axvline(k, ls=":", color="grey", lw=0.8)
    ax.set(xlabel="share of accounts worked (ranked)", ylabel="share of delinquent dollars",
           title="Capture curve, test period")
    _legend(ax, "lower right")
    return fig


def shap_summary_figure(
    shap_values: np.ndarray, features: pd.DataFrame, *, top: int = 15
) -> Figure:
    """Beeswarm-style summary: per top feature (by mean |SHAP|), one dot per row at its
    SHAP value (log-odds), coloured by the feature's within-column percentile."""
    sv = np.asarray(shap_values, dtype=float)
    names = list(features.columns)
    importance = np.abs(sv).mean(axis=0)
    order = np.argsort(-importance)[:top][::-1]
    fig = _figure(7.0, max(3.0, 0.35 * len(order) + 1.2))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        col = features.iloc[:, j]
        if isinstance(col.dtype, pd.CategoricalDtype):
            vals = col.cat.codes.to_numpy(dtype=float)
            vals[vals < 0] = np.nan
        else:
            vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        pct = pd.Series(vals).rank(pct=True).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(sv))
        ax.scatter(sv[:, j], row + jitter, c=np.nan_to_num(pct, nan=0.5), cmap="coolwarm",
                   s=4, vmin=0, vmax=1, alpha=0.6, linewidths=0)
    ax.set_yticks(range(len(order)), [names[j] for j in order], fontsize=7)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel="SHAP value (log-odds; colour: low -> high feature value)",
           title="SHAP summary, test sample")
    fig.tight_layout()
    return fig


def save_all(figures: Mapping[str, Figure], folder: Path) -> list[Path]:
    """Write each figure as ``<name>.png`` in ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = folder / f"{name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def feature_importance_order(shap_values: np.ndarray, names: Sequence[str]) -> list[str]:
    """Feature names by mean |SHAP|, largest first."""
    imp = np.abs(np.asarray(shap_values, dtype=float)).mean(axis=0)
    return [names[j] for j in np.argsort(-imp)]
