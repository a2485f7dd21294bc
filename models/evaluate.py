"""Test-period metrics of a model side by side with the baselines collections teams use.

Metrics (all on the test period of one model's population):

- ``roc_auc``, ``avg_precision``: ranking quality of the probability;
- ``brier``: mean squared error of the probability;
- ``ece``: expected calibration error over **10 equal-frequency bins** of the
  probability (mean |observed rate - mean probability|, weighted by bin size);
- ``capture@k`` (k = 5, 10, 20): the share of next-period delinquent dollars
  (``delinquent_amount`` of the label frame) held by the top k% of accounts of the
  worklist. The worklist is ranked separately for each ``as_of`` date (that is what an
  analyst sees), and dollars are pooled over dates: sum of captured dollars / sum of all
  delinquent dollars. Ties are broken by open balance, then by row order.

Baselines (:data:`BASELINE_LABELS` says each in words; the metrics table prints them):

- ``aging_rule``: the aging rule **as served**, what would rank the population if the
  model were not promoted (``models.rule``): its key calibrated into a probability by the
  calibration serving would use (:func:`models.rule.served_rule_calibration`: the
  validation period's fit, else the history resolved before the test period, else the
  band rates), the worklist ranked by probability x open balance
  (:func:`models.rule.served_priority`). The quality gate compares the model with it.
- ``aging_rule_key``: the rule's bare key (oldest DPD, then open balance) as the order;
- ``balance_only``, ``hist_days_late`` (the account's historical average days late): each
  ranking by its own key;

the probabilities of the key baselines (for Brier and ECE) come from a calibrator fitted on
the validation period, as for the model. ``logistic_regression`` is fitted on the training
rows with the same features (median imputation with missing indicators, scaling,
one-hot categoricals; float32) and ranks by probability x open balance, like the model;
above :data:`LOGISTIC_MAX_ROWS` training rows it is fitted on a seeded uniform subsample
of them (their weights carried): a linear model of ~150 coefficients is estimated to well
within its test AUC's own noise from that many rows, and a baseline the gate compares with
must not be weakened by it (one that were would flatter the model), so the cap was chosen
where its test AUC does not move beyond noise (``tests/models/test_evaluate.py``). ROC-AUC and
average precision judge each scorer's own score before calibration (the model's log-odds,
a rule's key), so ``aging_rule`` and ``aging_rule_key`` share them.

Sample weights: a sampled training set (``features.pit.sampling``) carries a ``weight``
column; every metric here is then the weighted one (a row of weight ``w`` stands for ``w``
rows of the full set): weighted AUC and average precision, weighted Brier, ECE over
equal-*weight* bins, and capture@k whose top k% of each date is k% of the date's weighted
row count (a row straddling the cut counts for the part of its weight inside it). So each
figure estimates the full set's figure. The baselines' calibrators and the logistic
regression are fitted with the weights too. Without weights (or all 1) every computation is
the unweighted one, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.pit.sampling import row_weights
from models.calibration import Calibrator, brier, choose_calibrator
from models.rule import numeric_column, rule_score, served_rule_calibration

#: The aging rule's key (oldest DPD, then open balance): ``models.rule.rule_score`` itself.
aging_rule_score = rule_score

CAPTURE_KS: tuple[int, ...] = (5, 10, 20)
METRIC_COLUMNS: list[str] = [
    "roc_auc",
    "avg_precision",
    "brier",
    "ece",
    *[f"capture@{k}" for k in CAPTURE_KS],
]
#: What each baseline of :func:`fit_baselines` ranks by, in words (printed under a metrics
#: table and in the gate's line: every figure names what it was compared with).
BASELINE_LABELS: dict[str, str] = {
    "aging_rule": "the aging rule as served (calibrated probability x open balance)",
    "aging_rule_key": "the aging rule's key (oldest DPD, then open balance)",
    "balance_only": "open balance",
    "hist_days_late": "historical average days late",
    "logistic_regression": "logistic regression probability x open balance",
}
#: Most training rows the logistic-regression baseline is fitted on (module docstring;
#: above it a seeded uniform subsample of the rows, their weights carried).
LOGISTIC_MAX_ROWS: Final = 100_000
#: Feature names tried, in order, for the historical-average-days-late baseline.
HIST_DAYS_LATE_CANDIDATES: tuple[str, ...] = (
    "days_late_mean_all",
    "days_late_mean_365d",
    "days_late_mean_180d",
)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = 10,
                               weights: np.ndarray | None = None) -> float:
    """ECE over ``bins`` equal-frequency bins of ``p`` (sorted, split in equal counts; with
    ``weights``, in equal weight: a row goes to the bin of the middle of its weight)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    if weights is not None:
        w = np.asarray(weights, dtype=float)[order]
        mid = np.cumsum(w) - w / 2
        b = np.minimum((mid / w.sum() * min(bins, len(p))).astype(np.int64), bins - 1)
        total = 0.0
        for k in np.unique(b):
            sel = b == k
            wk = w[sel]
            gap = np.average(y[order][sel], weights=wk) - np.average(p[order][sel], weights=wk)
            total += wk.sum() * abs(gap)
        return float(total / w.sum())
    total = 0.0
    for idx in np.array_split(order, min(bins, len(p))):
        if len(idx):
            total += len(idx) * abs(y[idx].mean() - p[idx].mean())
    return float(total / len(p))


def capture_at_k(
    score: np.ndarray,
    amount: np.ndarray,
    *,
    k: float,
    groups: np.ndarray | None = None,
    tiebreak: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> float:
    """Share of ``amount`` held by the top ``k`` percent of rows by ``score``.

    With ``groups`` (for example the ``as_of`` date), each group is ranked on its own and
    its top ``ceil(k% of group size)`` rows are taken; captured amounts are pooled over
    groups. ``tiebreak`` orders rows of equal score (higher first). NaN when there is no
    delinquent amount at all. With ``weights`` a row stands for ``w`` rows of ``amount``
    each: a group's size is its weight, and the row at the cut counts for its share inside.
    """
    score = np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf)
    amount = np.nan_to_num(np.asarray(amount, dtype=float), nan=0.0)
    w = None if weights is None else np.asarray(weights, dtype=float)
    tie = np.zeros(len(score)) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    tie = np.nan_to_num(tie, nan=-np.inf)
    grp = np.zeros(len(score), dtype=np.int64) if groups is None else pd.factorize(groups)[0]
    total = amount.sum() if w is None else (amount * w).sum()
    if total <= 0:
        return float("nan")
    # One lexsort: by group, then score descending, then tiebreak descending, then row.
    order = np.lexsort((np.arange(len(score)), -tie, -score, grp))
    grp_sorted = grp[order]
    if w is not None:
        ws = w[order]
        sizes_w = np.bincount(grp_sorted, weights=ws)
        cum = np.cumsum(ws)
        before = cum - ws - np.r_[0.0, np.cumsum(sizes_w)[:-1]][grp_sorted]
        top = np.ceil(k / 100.0 * sizes_w)[grp_sorted]
        taken = np.clip(top - before, 0.0, ws)
        return float((taken * amount[order]).sum() / total)
    starts = np.flatnonzero(np.r_[True, grp_sorted[1:] != grp_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    position = np.arange(len(order)) - np.repeat(starts, sizes)
    n_top = np.ceil(k / 100.0 * sizes).astype(np.int64)
    taken = position < np.repeat(n_top, sizes)
    return float(amount[order][taken].sum() / total)


def score_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    *,
    priority: np.ndarray,
    amount: np.ndarray,
    ranking: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    tiebreak: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """All metric columns for one scorer (weighted with ``weights``, module docstring).

    ROC-AUC and average precision judge ``ranking`` (the scorer's own ranking score: the
    raw log-odds for LightGBM, the rule key for a rule; ``proba`` when not given), Brier
    and ECE judge ``proba``, capture@k judges ``priority`` (the worklist order) against
    ``amount``, the delinquent dollars per row.
    """
    y = np.asarray(y, dtype=float)
    two_classes = len(np.unique(y)) == 2
    rs = np.nan_to_num(np.asarray(proba if ranking is None else ranking, dtype=float), nan=-1e300)
    out = {
        "roc_auc": (float(roc_auc_score(y, rs, sample_weight=weights)) if two_classes
                    else float("nan")),
        "avg_precision": (float(average_precision_score(y, rs, sample_weight=weights))
                          if two_classes else float("nan")),
        "brier": brier(y, proba, weights),
        "ece": expected_calibration_error(y, proba, weights=weights),
    }
    for k in CAPTURE_KS:
        out[f"capture@{k}"] = capture_at_k(
            priority, amount, k=k, groups=groups, tiebreak=tiebreak, weights=weights
        )
    return out


@dataclass(frozen=True)
class Scores:
    """What one scorer says about the test rows (see :func:`score_metrics`)."""

    proba: np.ndarray
    priority: np.ndarray
    ranking: np.ndarray | None = None
    #: What the scorer is, in words, for lines that name what a model was compared with.
    label: str = ""


def balance_score(frame: pd.DataFrame) -> np.ndarray:
    """Open balance (currency units)."""
    return np.nan_to_num(numeric_column(frame, "open_balance"), nan=0.0)


def hist_days_late_column(columns: Sequence[str]) -> str | None:
    """The feature used by the historical-days-late baseline, if the frame has one."""
    for name in HIST_DAYS_LATE_CANDIDATES:
        if name in columns:
            return name
    return next((c for c in columns if c.startswith("days_late_mean")), None)


def hist_days_late_score(frame: pd.DataFrame) -> np.ndarray:
    """Historical mean days late of cleared invoices; no history counts as 0 (on time)."""
    col = hist_days_late_column(list(frame.columns))
    if col is None:
        return np.zeros(len(frame))
    return np.nan_to_num(numeric_column(frame, col), nan=0.0)


@dataclass
class Baseline:
    """A named scorer: ``rank_score(frame)`` is its own score (ROC-AUC judges it),
    ``worklist_priority(frame)`` orders the worklist (``priority``; the own score when not
    given), ``predict_proba`` is its probability (for Brier/ECE); ``label`` says it in
    words."""

    name: str
    rank: Callable[[pd.DataFrame], np.ndarray]
    proba: Callable[[pd.DataFrame], np.ndarray]
    priority: Callable[[pd.DataFrame], np.ndarray] | None = None
    label: str = ""

    def rank_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Own score, higher = riskier."""
        return self.rank(frame)

    def worklist_priority(self, frame: pd.DataFrame) -> np.ndarray:
        """Worklist order, higher = contact first."""
        return self.rank(frame) if self.priority is None else self.priority(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the bad event per row."""
        return self.proba(frame)


def _rule_baseline(
    name: str, fn: Callable[[pd.DataFrame], np.ndarray], val: pd.DataFrame
) -> Baseline:
    cal: Calibrator = choose_calibrator(fn(val), val["y"].to_numpy(dtype=float),
                                        weights=row_weights(val)).calibrator
    return Baseline(name=name, rank=fn, proba=lambda f: cal.predict(fn(f)),
                    label=BASELINE_LABELS[name])


def served_rule_baseline(train: pd.DataFrame, val: pd.DataFrame) -> Baseline:
    """The aging rule as served after this training (module docstring): probability from
    :func:`models.rule.served_rule_calibration` of ``train`` and ``val``, worklist order
    ``models.rule.RuleCalibration.priority``, own score the rule's key. Its label names
    the calibration source."""
    cal = served_rule_calibration(train=train, val=val)
    source = {"validation": "calibrated on the validation period",
              "history": "calibrated on the history before the test period",
              "dpd_band": "smoothed rate per DPD band",
              "none": "no probability: past-due amount"}[cal.source]
    label = ("the aging rule as served (probability x open balance, "
             f"{source})" if cal.source != "none" else
             f"the aging rule as served ({source})")
    return Baseline(name="aging_rule", rank=rule_score, proba=cal.predict,
                    priority=cal.priority, label=label)


def logistic_pipeline(
    feature_names: Sequence[str], categorical: Sequence[str], *, seed: int = 0
) -> Pipeline:
    """Impute + scale + one-hot + logistic regression on the model's own features."""
    numeric = [c for c in feature_names if c not in categorical]
    pre = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True,
                                  keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore", dtype=np.float32),
             list(categorical)),
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=2000, C=1.0, random_state=seed))


def logistic_input(
    frame: pd.DataFrame, feature_names: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """Plain float32 / string columns for the logistic pipeline (no pandas extension
    types; float32 halves the fit's working set, and the coefficients need no more)."""
    cols: dict[str, Any] = {}
    for c in feature_names:
        if c in categorical:
            cols[c] = frame[c].astype(object).where(frame[c].notna(), "__missing__").astype(str)
        else:
            v = numeric_column(frame, c)
            cols[c] = np.where(np.isfinite(v), v, np.nan).astype(np.float32)
    return pd.DataFrame(cols, index=frame.index)


def logistic_rows(train: pd.DataFrame, *, max_rows: int = LOGISTIC_MAX_ROWS,
                  seed: int = 0) -> np.ndarray:
    """Positions of the training rows the logistic baseline is fitted on: all of them up to
    ``max_rows``, else a seeded uniform subsample of ``max_rows`` (sorted)."""
    if len(train) <= max_rows:
        return np.arange(len(train))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(train), size=max_rows, replace=False))


def fit_baselines(
    train: pd.DataFrame,
    val: pd.DataFrame,
    *,
    feature_names: Sequence[str],
    categorical: Sequence[str] = (),
    seed: int = 0,
    logistic_max_rows: int = LOGISTIC_MAX_ROWS,
) -> dict[str, Baseline]:
    """Fit the baselines (module docstring): the aging rule as served (calibrated as
    serving would after this training: on ``val``, else the history of ``train`` and
    ``val``), key rules calibrated on ``val``, logistic regression on ``train`` (at most
    ``logistic_max_rows`` of its rows, :func:`logistic_rows`; each with the rows' sample
    weights when the frames carry them). ``train`` and ``val`` are read, never copied
    whole."""
    out = {
        "aging_rule": served_rule_baseline(train, val),
        "aging_rule_key": _rule_baseline("aging_rule_key", rule_score, val),
        "balance_only": _rule_baseline("balance_only", balance_score, val),
        "hist_days_late": _rule_baseline("hist_days_late", hist_days_late_score, val),
    }
    feats = list(feature_names)
    cats = [c for c in categorical if c in feats]
    pipe = logistic_pipeline(feats, cats, seed=seed)
    keep = logistic_rows(train, max_rows=logistic_max_rows, seed=seed)
    fit_rows = train if len(keep) == len(train) else train.iloc[keep]
    w = row_weights(fit_rows)
    fit_kw = {} if w is None else {"logisticregression__sample_weight": w}
    pipe.fit(logistic_input(fit_rows, feats, cats), fit_rows["y"].to_numpy(dtype=int),
             **fit_kw)
    del fit_rows
    memo: dict[int, tuple[pd.DataFrame, np.ndarray]] = {}

    def lr_proba(frame: pd.DataFrame) -> np.ndarray:
        # rank and proba of one frame (baseline_scores asks both): transformed once
        hit = memo.get(id(frame))
        if hit is None or hit[0] is not frame:
            hit = (frame, pipe.predict_proba(logistic_input(frame, feats, cats))[:, 1])
            memo.clear()
            memo[id(frame)] = hit
        return hit[1]

    out["logistic_regression"] = Baseline(
        name="logistic_regression",
        rank=lambda f: lr_proba(f) * balance_score(f),
        proba=lr_proba,
        label=BASELINE_LABELS["logistic_regression"],
    )
    return out


def evaluate_scorers(test: pd.DataFrame, scorers: Mapping[str, Scores]) -> pd.DataFrame:
    """Metrics table for ``{name: Scores}`` on the ``test`` label frame.

    ``test`` needs ``y``, ``delinquent_amount``, ``open_balance`` and ``as_of``; its
    ``weight`` column, when present, weighs every metric (and the base rate).
    """
    w = row_weights(test)
    rows = {
        name: score_metrics(
            test["y"].to_numpy(dtype=float),
            sc.proba,
            priority=sc.priority,
            ranking=sc.ranking,
            amount=test["delinquent_amount"].to_numpy(dtype=float),
            groups=test["as_of"].to_numpy(),
            tiebreak=balance_score(test),
            weights=w,
        )
        for name, sc in scorers.items()
    }
    y = test["y"].to_numpy(dtype=float)
    base_rate = float(test["y"].mean()) if w is None else float(np.average(y, weights=w))
    return metrics_table(rows, n_rows=len(test), base_rate=base_rate)


def baseline_scores(baseline: Baseline, frame: pd.DataFrame) -> Scores:
    """Scores of a baseline: its probability, its worklist order as priority, its own score
    as ranking, its label."""
    rank = baseline.rank_score(frame)
    priority = rank if baseline.priority is None else baseline.worklist_priority(frame)
    return Scores(proba=baseline.predict_proba(frame), priority=priority, ranking=rank,
                  label=baseline.label)


def metrics_table(
    rows: Mapping[str, Mapping[str, float]], *, n_rows: int | None = None,
    base_rate: float | None = None,
) -> pd.DataFrame:
    """One row per scorer (model first, then baselines), one column per metric."""
    table = pd.DataFrame.from_dict({k: dict(v) for k, v in rows.items()}, orient="index")
    table = table.reindex(columns=METRIC_COLUMNS)
    table.index.name = "scorer"
    if n_rows is not None:
        table.attrs["n_rows"] = n_rows
    if base_rate is not None:
        table.attrs["base_rate"] = base_rate
    return table


def format_metrics_table(table: pd.DataFrame, *, title: str = "") -> str:
    """Fixed-width text of a metrics table (3 decimals), with an optional title line."""
    header = f"{'scorer':<22}" + "".join(f"{c:>14}" for c in table.columns)
    lines = [title] if title else []
    lines.append(header)
    for name, row in table.iterrows():
        lines.append(f"{name!s:<22}" + "".join(f"{v:>14.3f}" for v in row.to_numpy(float)))
    extra = []
    if "n_rows" in table.attrs:
        extra.append(f"test rows: {table.attrs['n_rows']}")
    if "base_rate" in table.attrs:
        extra.append(f"base rate: {table.attrs['base_rate']:.3f}")
    if extra:
        lines.append("  " + ", ".join(extra))
    named = [f"{name}: {BASELINE_LABELS[name]}" for name in table.index
             if name in BASELINE_LABELS]
    if named:
        lines.append("  baselines: " + "; ".join(named))
    return "\n".join(lines)
