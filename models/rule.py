"""The aging rule as a first-class scorer (issue 12, item 2): what ranks a population that
has no gated champion model.

The rule is the one collections teams already use: oldest DPD first, then open balance
(:func:`rule_score`, the rule's *key*; ``models.evaluate.aging_rule_score`` is this same
function). Its key becomes a probability by the first calibration of this chain that the
evidence supports (:class:`RuleCalibration`, ``source``):

1. ``validation``: a calibrator fitted on the validation period of the last training of
   this population (saved on the training's MLflow run even when the gate failed), when
   that period holds at least :data:`MIN_FIT_POSITIVES` positive and negative rows;
2. ``history``: the same fit on the book's whole resolved history at scoring time
   (:func:`resolved_history`: rows whose label resolved strictly before ``as_of``, so
   nothing is looked ahead), with the same minimum;
3. ``dpd_band``: a Beta-smoothed rate per collections segment (the DPD bands of
   ``features.spec.SEGMENTS``): ``(positives + k * base) / (rows + k)`` with the
   population's base rate as the prior mean and ``k =`` :data:`BAND_PRIOR_ROWS` pseudo
   rows, when the history holds at least :data:`MIN_BAND_POSITIVES` positives;
4. ``none``: fewer positives than that: no probability ("n/a (thin data)"); the worklist's
   priority then falls back to the past-due amount.

**The rule as served** ranks a worklist by :func:`served_priority`: calibrated probability
x open balance (expected amount at risk, book currency), the past-due amount where there
is no probability; the same order as a model's rows (``serving.score`` uses this function
for every row). So the rule *as served* does not rank by its key alone: the calibration
bends the key and the exposure (open balance) multiplies it. The quality gate
(``models.gate``) compares a model with exactly that ranking on the model's test period
(:meth:`RuleCalibration.priority`, with :func:`served_rule_calibration`: the calibration
serving would use, fitted only on rows resolved before the test period).

Sample weights (``features.pit.sampling``): a sampled frame's ``weight`` column weighs the
calibration fits and the band rates, so they estimate the full set's; ``evidence`` counts
the kept rows (the thresholds are on real positives).

Everything here is a pure function of its inputs; nothing reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from features.pit.sampling import row_weights
from features.spec import DEFAULT_MATERIALITY, SEGMENTS, Materiality, as_day, segment_of
from models.calibration import Calibrator, choose_calibrator

if TYPE_CHECKING:
    from features.pit.snapshot import PreparedBook

Source = Literal["validation", "history", "dpd_band", "none"]
#: The calibration sources in the order they are tried (``serving.store_schema``'s
#: ``CALIBRATIONS``: the worklist's ``calibration`` column).
SOURCES: Final = ("validation", "history", "dpd_band", "none")
#: Positive (and negative) rows a fitted calibration of the rule key needs.
MIN_FIT_POSITIVES: Final = 20
#: Positive rows the smoothed per-band rates need; below it there is no probability.
MIN_BAND_POSITIVES: Final = 5
#: Strength of the Beta prior of the band rates, in pseudo rows at the base rate.
BAND_PRIOR_ROWS: Final = 20
#: Weekly ``as_of`` dates of the resolved history (the newest, before the scoring date).
HISTORY_DATES: Final = 26
#: The calibrator's artifact name on a training run (``models.registry``).
ARTIFACT: Final = "aging_rule_calibration.json"


def numeric_column(frame: pd.DataFrame, col: str) -> np.ndarray:
    """``frame[col]`` as float64, anything unparseable or missing as NaN."""
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def rule_score(frame: pd.DataFrame) -> np.ndarray:
    """The aging rule's key (higher = contact first): oldest DPD (whole days), then open
    balance, as one number ``floor(dpd) + x / (1 + x)`` with ``x = balance / 1000``.

    The fractional part lies in [0, 1), so the single number orders rows exactly as the
    two-key rule does. Missing DPD or balance counts as 0.
    """
    dpd = np.floor(np.nan_to_num(numeric_column(frame, "oldest_dpd"), nan=0.0))
    x = np.clip(np.nan_to_num(numeric_column(frame, "open_balance"), nan=0.0), 0, None) / 1000.0
    return dpd + x / (1.0 + x)


def served_priority(probability: np.ndarray, *, open_balance: np.ndarray,
                    past_due_amount: np.ndarray) -> np.ndarray:
    """The worklist's priority (book currency; higher = contact first): ``probability``
    (0-1) x ``open_balance``, the expected amount at risk; where there is no probability
    (NaN: the rule on thin data) the ``past_due_amount`` already at stake. One definition
    for every row a worklist ranks (a model's or the rule's) and for the gate's comparison
    with the rule as served."""
    p = np.asarray(probability, dtype=float)
    balance = np.asarray(open_balance, dtype=float)
    past_due = np.nan_to_num(np.asarray(past_due_amount, dtype=float), nan=0.0)
    return np.where(np.isnan(p), past_due, p * balance)


def _evidence(y: np.ndarray, weights: np.ndarray | None = None) -> dict[str, int]:
    if weights is None:
        return {"rows": int(len(y)), "positive_rows": int((y == 1).sum())}
    # a sampled row stands for `weight` rows: the full set's counts (rounded)
    return {"rows": int(round(weights.sum())), "positive_rows": int(round(weights[y == 1].sum()))}


@dataclass(frozen=True)
class RuleCalibration:
    """How the rule's key becomes a probability for one population (module docstring).

    ``source``: one of :data:`SOURCES`; ``calibrator``: the fitted map of the key (for
    ``validation`` and ``history``); ``band_rates``: segment -> smoothed rate (for
    ``dpd_band``); ``evidence``: rows and positive rows it was fitted on.
    """

    source: Source
    calibrator: Calibrator | None = None
    band_rates: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, int] = field(default_factory=dict)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability (0-1) per row of ``frame`` (``oldest_dpd``, ``open_balance``);
        NaN everywhere when the source is ``none``."""
        if self.source == "none":
            return np.full(len(frame), np.nan)
        if self.calibrator is not None:
            return self.calibrator.predict(rule_score(frame))
        seg = segment_of(np.nan_to_num(frame["oldest_dpd"].to_numpy(dtype=float), nan=0.0))
        return seg.map(self.band_rates).to_numpy(dtype=float)

    def priority(self, frame: pd.DataFrame) -> np.ndarray:
        """The served rule's worklist priority of ``frame``'s rows (:func:`served_priority`
        of :meth:`predict`; ``past_due_amount`` is read only where there is no
        probability)."""
        p = self.predict(frame)
        missing = np.isnan(p)
        past_due = (numeric_column(frame, "past_due_amount") if missing.any()
                    else np.zeros(len(frame)))
        return served_priority(p, open_balance=numeric_column(frame, "open_balance"),
                               past_due_amount=past_due)

    def describe(self) -> str:
        """Where the probability comes from, for the one line scoring prints."""
        if self.source == "none":
            return (f"no probability (n/a, thin data: {self.evidence.get('positive_rows', 0)} "
                    f"positive rows in the resolved history, needs {MIN_BAND_POSITIVES}); "
                    "priority is the past-due amount")
        what = {"validation": "calibrated on the last training's validation period",
                "history": "calibrated on the book's resolved history",
                "dpd_band": "smoothed rate per DPD band of the resolved history"}[self.source]
        return (f"{what} ({self.evidence.get('positive_rows', 0):,} positive of "
                f"{self.evidence.get('rows', 0):,} rows)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the training run's artifact)."""
        return {"source": self.source, "band_rates": dict(self.band_rates),
                "evidence": dict(self.evidence),
                "calibrator": None if self.calibrator is None else self.calibrator.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleCalibration:
        """Inverse of :meth:`to_dict`."""
        cal = data.get("calibrator")
        return cls(source=data["source"],
                   calibrator=None if cal is None else Calibrator.from_dict(cal),
                   band_rates={str(k): float(v) for k, v in data.get("band_rates", {}).items()},
                   evidence={str(k): int(v) for k, v in data.get("evidence", {}).items()})


def fit_rule_calibration(rows: pd.DataFrame, *, source: Source) -> RuleCalibration | None:
    """A fitted calibration of the rule key on labelled ``rows`` (``y``, ``oldest_dpd``,
    ``open_balance``), or None when they hold fewer than :data:`MIN_FIT_POSITIVES`
    positive or negative rows. ``source`` names where the rows come from. Sampled rows
    (a ``weight`` column, ``features.pit.sampling``) are weighted in the fit and the
    evidence, so the probabilities are the full set's."""
    y = rows["y"].to_numpy(dtype=float)
    w = row_weights(rows)
    ev = _evidence(y, w)
    if min(ev["positive_rows"], ev["rows"] - ev["positive_rows"]) < MIN_FIT_POSITIVES:
        return None
    cal = choose_calibrator(rule_score(rows), y, weights=w).calibrator
    return RuleCalibration(source=source, calibrator=cal, evidence=ev)


def band_calibration(rows: pd.DataFrame) -> RuleCalibration:
    """Beta-smoothed rate per DPD band (segment) of labelled ``rows``, or ``none`` below
    :data:`MIN_BAND_POSITIVES` positives (module docstring, step 3)."""
    y = rows["y"].to_numpy(dtype=float)
    ev = _evidence(y)
    if ev["positive_rows"] < MIN_BAND_POSITIVES:
        return RuleCalibration(source="none", evidence=ev)
    w = row_weights(rows)
    w = np.ones(len(y)) if w is None else w
    base = float((w * (y == 1)).sum() / w.sum())
    seg = segment_of(np.nan_to_num(rows["oldest_dpd"].to_numpy(dtype=float), nan=0.0))
    counts = (pd.DataFrame({"seg": seg.to_numpy(), "sum": w * (y == 1), "size": w})
              .groupby("seg")[["sum", "size"]].sum())
    rates = {}
    for s in SEGMENTS:
        pos, n = (counts.loc[s, "sum"], counts.loc[s, "size"]) if s in counts.index else (0, 0)
        rates[s] = float((pos + BAND_PRIOR_ROWS * base) / (n + BAND_PRIOR_ROWS))
    return RuleCalibration(source="dpd_band", band_rates=rates, evidence=ev)


def choose_rule_calibration(
    *, validation: RuleCalibration | None, history: pd.DataFrame
) -> RuleCalibration:
    """The chain of the module docstring: ``validation`` (as saved by the last training)
    if given, else a fit on ``history`` (resolved rows of this population, see
    :func:`resolved_history`), else the smoothed band rates, else ``none``."""
    if validation is not None and validation.source == "validation":
        return validation
    fitted = fit_rule_calibration(history, source="history") if len(history) else None
    if fitted is not None:
        return fitted
    if not len(history):
        return RuleCalibration(source="none", evidence={"rows": 0, "positive_rows": 0})
    return band_calibration(history)


def served_rule_calibration(*, train: pd.DataFrame, val: pd.DataFrame) -> RuleCalibration:
    """The calibration serving would give the rule on the day after the validation period
    (:func:`choose_rule_calibration`): the fit on ``val`` (the last training's validation
    period, what a training saves), else the resolved history, here the rows of ``train``
    and ``val`` of the newest :data:`HISTORY_DATES` ``as_of`` dates (labelled rows of one
    population; the split keeps only labels resolved before the test period starts, so
    nothing is looked ahead), else the band rates, else ``none``. What the quality gate
    compares a model with on the test period that follows."""
    validation = fit_rule_calibration(val, source="validation") if len(val) else None
    if validation is not None:
        return validation
    history = pd.concat([train, val], ignore_index=True)
    if len(history):
        days = pd.to_datetime(history["as_of"])
        newest = np.sort(days.unique())[-HISTORY_DATES:]
        history = history[days.isin(newest).to_numpy()].reset_index(drop=True)
    return choose_rule_calibration(validation=None, history=history)


def resolved_history(
    book: Any, *, as_of: date | pd.Timestamp, kind: str, delinquency_dpd: int | None = None,
    persistence_days: int | None = None, n_dates: int = HISTORY_DATES,
    materiality: Materiality = DEFAULT_MATERIALITY, prepared: PreparedBook | None = None,
) -> pd.DataFrame:
    """Labelled rows of population ``kind`` whose label resolved strictly before ``as_of``.

    The rows of the newest ``n_dates`` weekly ``as_of`` dates before ``as_of`` (the first
    a week after the book's first issue date), labelled with the data known before
    ``as_of`` only (``data_end = as_of``): no look-ahead; labels and segments under
    ``materiality`` (the scoring run's). Columns: the training set's. ``prepared``:
    ``book`` already encoded (``features.pit.snapshot.prepare_book``; the nightly's).
    """
    from features import build_training_set

    day = as_day(as_of)
    first = as_day(book.first_date) + timedelta(days=7)
    last = day - timedelta(days=1)
    dates = list(pd.date_range(first, last, freq="7D").date)[-n_dates:] if last >= first else []
    if not dates:
        return pd.DataFrame({"y": pd.Series(dtype=float), "oldest_dpd": pd.Series(dtype=float),
                             "open_balance": pd.Series(dtype=float)})
    kw = {k: v for k, v in (("delinquency_dpd", delinquency_dpd),
                            ("persistence_days", persistence_days)) if v is not None}
    frame = build_training_set(book, as_of_dates=dates, data_end=day, materiality=materiality,
                               prepared=prepared, **kw)
    resolved = pd.to_datetime(frame["label_resolved_date"])
    keep = (~frame["censored"].astype(bool)) & (frame["model"] == kind) & (
        resolved < pd.Timestamp(day))
    return frame[keep].reset_index(drop=True)
