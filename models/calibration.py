"""Probability calibration of a model's raw score: isotonic or Platt, chosen by Brier.

The calibrator maps LightGBM's raw score (log-odds margin) to a probability. Both methods
are monotone non-decreasing in the raw score, so rankings and the signs of SHAP
explanations carry over from the raw score to the calibrated probability. Calibrators
are fitted on the *validation* period (never on training rows, whose scores are
over-confident) and are stored as plain numbers (:meth:`Calibrator.to_dict`) so a
registered model needs no pickled sklearn object to load.

Calibration from the evidence (issue 12, item 3): isotonic regression is a candidate only
when the validation rows hold at least :data:`MIN_ISOTONIC_CLASS` positives *and*
negatives (with fewer, whole steps of the step function sit on a handful of rows and read
0% or 100%); otherwise Platt scaling is used. The probabilities are bounded by what the
validation rows can support (:func:`evidence_bounds`), not by a fixed epsilon.

Sample weights (a sampled training set, ``features.pit.sampling``): every fit and Brier
takes optional ``weights`` (a row of weight ``w`` stands for ``w`` rows of the full set);
the class counts and the row count of the bounds are then the weighted counts, the
estimates of the full set's. ``weights=None`` is the unweighted computation, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression

Method = Literal["isotonic", "platt"]

# The bound of calibrators stored before the bounds came from the evidence (and the floor
# of Platt's base-rate fallback).
_EPS = 1e-4
#: Positives and negatives the validation rows need before isotonic is a candidate.
MIN_ISOTONIC_CLASS = 50


def evidence_bounds(n_rows: int) -> tuple[float, float]:
    """``(low, high)`` probability bounds a calibration on ``n_rows`` rows can support.

    ``low = 0.5 / (n_rows + 1)``: the Jeffreys posterior mean of the event rate in a bin
    holding *every* row with no event, so no bin of those rows can justify less (and
    ``high = 1 - low`` symmetrically). 100 validation rows cannot claim 0.01%; 100,000 can
    claim 0.0005%.
    """
    low = 0.5 / (max(int(n_rows), 0) + 1)
    return low, 1.0 - low


def brier(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean squared error of probabilities ``p`` against 0/1 outcomes ``y`` (weighted
    mean with ``weights``)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if weights is None:
        return float(np.mean((p - y) ** 2))
    return float(np.average((p - y) ** 2, weights=np.asarray(weights, dtype=float)))


def weighted_count(mask: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Rows of ``mask`` that are true, or the sum of their ``weights``."""
    mask = np.asarray(mask, dtype=bool)
    return float(mask.sum()) if weights is None else float(np.asarray(weights)[mask].sum())


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, numerically safe for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def _platt(s: np.ndarray, t: np.ndarray, *, iters: int = 50,
           w: np.ndarray | None = None) -> tuple[float, float]:
    """Logistic fit ``t ~ sigmoid(a * s + b)`` by Newton steps on the standardised score.

    Two parameters only, so a direct Newton solve is faster and better conditioned than a
    general solver (rule baselines feed unscaled keys such as balances). A tiny ridge
    keeps separable data finite. A negative slope (which would invert the ranking)
    falls back to the constant base rate. ``w``: row weights (``None``: all 1).
    """
    if w is not None:
        mu = float(np.average(s, weights=w))
        sd = float(np.sqrt(np.average((s - mu) ** 2, weights=w))) or 1.0
    else:
        mu, sd = float(s.mean()), float(s.std()) or 1.0
    z = (s - mu) / sd
    x = np.column_stack([z, np.ones_like(z)])
    coef = np.zeros(2)
    for _ in range(iters):
        p = sigmoid(x @ coef)
        if w is None:
            grad = x.T @ (p - t) + 1e-6 * coef
            hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        else:
            grad = x.T @ (w * (p - t)) + 1e-6 * coef
            hess = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        coef -= step
        if np.abs(step).max() < 1e-10:
            break
    if coef[0] < 0:
        mean = t.mean() if w is None else np.average(t, weights=w)
        rate = float(np.clip(mean, _EPS, 1 - _EPS))
        return 0.0, float(np.log(rate / (1 - rate)))
    return float(coef[0] / sd), float(coef[1] - coef[0] * mu / sd)


@dataclass
class Calibrator:
    """A monotone map from raw score (log-odds) to probability, sklearn style.

    ``method="isotonic"`` stores the step function's knots (``x``, ``y``) and interpolates
    linearly between them; ``method="platt"`` stores ``p = sigmoid(a * score + b)`` with
    ``a >= 0``. ``fit(scores, y)`` then ``predict_proba(scores)`` returns an ``(n, 2)``
    array like sklearn classifiers; :meth:`predict` returns the positive-class column.
    """

    method: Method = "isotonic"
    params: dict[str, Any] = field(default_factory=dict)

    def fit(self, scores: np.ndarray, y: np.ndarray,
            weights: np.ndarray | None = None) -> Calibrator:
        """Fit on raw scores and 0/1 outcomes (``weights``: per row, ``None`` = 1);
        returns ``self``. The bounds take the weighted row count."""
        s = np.asarray(scores, dtype=float).ravel()
        t = np.asarray(y, dtype=float).ravel()
        w = None if weights is None else np.asarray(weights, dtype=float).ravel()
        if len(s) != len(t) or len(s) == 0 or (w is not None and len(w) != len(s)):
            raise ValueError("calibration needs equally long, non-empty scores and labels")
        n_rows = len(s) if w is None else int(round(w.sum()))
        low, high = evidence_bounds(n_rows)
        if self.method == "isotonic":
            iso = IsotonicRegression(y_min=low, y_max=high, out_of_bounds="clip")
            iso.fit(s, t, sample_weight=w)
            self.params = {
                "x": [float(v) for v in iso.X_thresholds_],
                "y": [float(v) for v in iso.y_thresholds_],
            }
        elif self.method == "platt":
            a, b = _platt(s, t, w=w)
            self.params = {"a": a, "b": b}
        else:  # pragma: no cover - Literal guards this
            raise ValueError(f"unknown calibration method {self.method!r}")
        self.params |= {"low": low, "high": high, "n_rows": n_rows}
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class for each raw score."""
        if not self.params:
            raise RuntimeError("calibrator is not fitted")
        s = np.asarray(scores, dtype=float).ravel()
        low, high = self.bounds
        if self.method == "isotonic":
            return np.clip(np.interp(s, self.params["x"], self.params["y"]), low, high)
        return np.clip(sigmoid(self.params["a"] * s + self.params["b"]), low, high)

    @property
    def bounds(self) -> tuple[float, float]:
        """The lowest and highest probability this calibrator gives (0-1)."""
        return (float(self.params.get("low", _EPS)), float(self.params.get("high", 1 - _EPS)))

    def predict_proba(self, scores: np.ndarray) -> np.ndarray:
        """``(n, 2)`` array of class probabilities (negative, positive)."""
        p = self.predict(scores)
        return np.column_stack([1.0 - p, p])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (method and fitted numbers)."""
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Inverse of :meth:`to_dict`."""
        return cls(method=data["method"], params=dict(data["params"]))


@dataclass(frozen=True)
class CalibrationChoice:
    """The chosen calibrator and the validation Brier of each candidate (and of raw)."""

    calibrator: Calibrator
    brier_by_method: dict[str, float]


def choose_calibrator(
    scores: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0,
    weights: np.ndarray | None = None,
) -> CalibrationChoice:
    """Choose isotonic or Platt by out-of-fold validation Brier, then refit it on all rows.

    Isotonic is a candidate only with at least :data:`MIN_ISOTONIC_CLASS` positives and
    negatives among the rows; otherwise Platt is the only one. In-sample, isotonic
    regression always looks at least as good as Platt (it has a knot per step), so the
    choice uses ``folds``-fold cross-validation within the validation rows.
    ``brier_by_method`` reports those out-of-fold Briers (of the candidates) plus
    ``"raw"``: ``sigmoid(score)``, the uncalibrated LightGBM probability. Ties go to Platt.
    With ``weights``, the fits, the Briers and the class counts are weighted.
    """
    s = np.asarray(scores, dtype=float).ravel()
    t = np.asarray(y, dtype=float).ravel()
    w = None if weights is None else np.asarray(weights, dtype=float).ravel()
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(s)) % max(2, folds)
    n_pos = weighted_count(t == 1, w)
    enough = min(n_pos, weighted_count(t != 1, w)) >= MIN_ISOTONIC_CLASS
    methods: tuple[Method, ...] = ("platt", "isotonic") if enough else ("platt",)
    briers: dict[str, float] = {}
    for method in methods:
        oof = np.empty(len(s))
        for k in np.unique(fold_of):
            test = fold_of == k
            train = ~test
            w_train = None if w is None else w[train]
            if len(np.unique(t[train])) < 2:
                oof[test] = (np.average(t[train], weights=w_train) if train.any()
                             else 0.5)
                continue
            oof[test] = Calibrator(method=method).fit(
                s[train], t[train], w_train).predict(s[test])
        briers[method] = brier(t, oof, w)
    best = min(methods, key=lambda m: (briers[m], m != "platt"))
    briers["raw"] = brier(t, sigmoid(s), w)
    return CalibrationChoice(calibrator=Calibrator(method=best).fit(s, t, w),
                             brier_by_method=briers)
