"""Live performance of a published worklist (issue 19, item 1): how the ranking a scoring
run actually published turned out, once its labels resolved, beside the aging rule on the
same accounts.

Inputs are two frames, nothing else (no store, no clock):

- the run's **worklist** as stored (``serving.store.WorklistStore.read_worklist``):
  ``account_id``, ``model`` (the population: ``early_warning`` / ``persistence``),
  ``scorer`` (``model`` or ``aging_rule``: who ranked the row), ``rank`` (1 = first),
  ``probability`` (0-1, NaN when the rule had no calibration), ``open_balance`` and
  ``oldest_dpd`` (at the run's ``as_of``);
- the **labels** of the same ``as_of`` (``features.build_labels`` on the current book with
  ``data_end`` = the day after its last event): exactly the label training uses, so live
  and offline figures answer the same question. Censored rows (``y`` NaN: not decided by
  the data yet) are left out and counted; so are worklist rows without a label and rows
  whose label population differs from the scored one (the materiality settings changed).

Per subset of resolved rows, keyed by ``slice`` x ``population`` x ``ranked_by``:

- ``slice``: ``all``, and ``untouched``: accounts with no recorded contact or promise
  before their label resolved (``contacted``, the ids the caller knows were contacted;
  collectors working the top of the list lower realized lateness exactly where the model
  ranked high). The workbench records contacts (issue 15); until it is wired, the caller
  passes none and ``untouched`` equals ``all`` (``counts["contacted"]`` says 0). It is
  not a random sample of the population (the contacted are the top of the list), so its
  figures are not comparable with the offline test period's: the random holdout's are
  (``models.live_agreement``);
- ``population``: each model population and ``all``;
- ``ranked_by``: rows a gated ``model`` ranked, rows the ``aging_rule`` ranked (no gated
  champion; their probability is the rule's calibration), and ``all``.

**The rule compared with** is the aging rule **as served** (``models.rule``), what would
have ranked those accounts without the model, the comparison the quality gate makes
(``models.gate``): its probability is the rule's served calibration
(``rule_calibrations``: population -> ``models.rule.RuleCalibration``, the one the run's
scoring resolved, ``meta["rule_calibrations"]``; on rows the rule ranked, the published
probability already is it) and its worklist order ``models.rule.served_priority``
(probability x open balance, the past-due amount without a probability). A subset whose
model-ranked rows have no known served calibration (a run scored before it was recorded,
or without a rule for that population) is compared with the rule's bare key instead, and
its ``rule_basis`` says so (``models.slices.RULE_BASES``): a figure never claims more than it
is.

Metrics (``models.evaluate``'s definitions, one of each):

- ``auc`` / ``rule_auc``: ROC-AUC of the published probability / of the served rule's
  probability (its key, and basis ``key``, where it has none on a row judged, thin data,
  or is unknown: one decision with the slices, ``models.slices.rule_auc_score``), both
  over the rows that have a published probability (the same accounts); NaN with one class
  only. Both are calibrated probabilities, ties of either calibration counted alike;
- ``capture@10`` / ``rule_capture@10``: share of the subset's realized delinquent dollars
  (labels' ``delinquent_amount``) held by its top 10% of rows in the published order
  (``rank``) / in the served rule's order (``served_priority``; basis ``key``: the key's
  order), ties by open balance: ``capture_at_k``;
- ``ece`` (10 equal-frequency bins, ``expected_calibration_error``) and ``brier`` of the
  published probability;
- the reliability curve: per bin (the ECE's bins), rows, mean probability, observed rate.

Pure functions; inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.spec import MODELS, as_day
from models.calibration import brier
from models.evaluate import aging_rule_score, capture_at_k, expected_calibration_error
from models.rule import RuleCalibration, numeric_column, served_priority
from models.slices import rule_auc_score

#: Slices of the accounts: all, and those with no recorded contact before resolution.
SLICES: Final = ("all", "untouched")
#: Populations: each model's, and the whole worklist.
POPULATIONS: Final = (*MODELS, "all")
#: Who ranked the rows (``serving.store_schema.SCORERS``), and all rows.
RANKED_BY: Final = ("model", "aging_rule", "all")
#: The capture share (percent of rows worked) reported live.
CAPTURE_K: Final = 10
#: Equal-frequency bins of the reliability curve and of the ECE.
RELIABILITY_BINS: Final = 10
#: Columns of :attr:`LivePerformance.table` (``rule_basis`` last: the one text column).
TABLE_COLUMNS: Final = (
    "slice", "population", "ranked_by", "n_rows", "n_positive", "delinquent_amount",
    "n_probability", "auc", "rule_auc", f"capture@{CAPTURE_K}", f"rule_capture@{CAPTURE_K}",
    "ece", "brier", "rule_basis",
)
#: Columns of :attr:`LivePerformance.reliability`.
RELIABILITY_COLUMNS: Final = (
    "slice", "population", "ranked_by", "bin", "n_rows", "mean_probability", "observed_rate",
)


def label_horizon_days(*, delinquency_dpd: int, persistence_days: int) -> int:
    """Days after ``as_of`` by which a run's labels are due to resolve:
    ``delinquency_dpd + persistence_days`` (the label horizon the retention settings keep
    runs for): past the persistence check day, and past the crossing day of an invoice
    falling due up to ``persistence_days`` after ``as_of``. Rows still undecided then
    (longer terms) stay censored and are counted, never guessed."""
    return int(delinquency_dpd) + int(persistence_days)


def resolves_on(as_of: date | pd.Timestamp, *, delinquency_dpd: int,
                persistence_days: int) -> date:
    """The first ``data_end`` (day after the book's last event) at which a run of
    ``as_of`` is evaluated: ``as_of`` + :func:`label_horizon_days`."""
    return as_day(as_of) + timedelta(days=label_horizon_days(
        delinquency_dpd=delinquency_dpd, persistence_days=persistence_days))


@dataclass(frozen=True)
class LivePerformance:
    """A run's realized metrics (module docstring). ``table``: one row per subset that has
    resolved rows (:data:`TABLE_COLUMNS`); ``reliability``: the curve's bins
    (:data:`RELIABILITY_COLUMNS`); ``counts``: worklist rows, ``resolved``, ``censored``,
    ``unlabelled`` (no label row), ``population_mismatch`` and ``contacted`` rows."""

    table: pd.DataFrame
    reliability: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    def row(self, *, slice: str = "all", population: str = "all",  # noqa: A002
            ranked_by: str = "all") -> dict[str, Any] | None:
        """The table row of one subset as a dict (NaN as None, as stored), or None when
        it has no resolved rows."""
        return _row(self.to_dict(), slice=slice, population=population, ranked_by=ranked_by)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN as None) for a run's ``meta["live"]`` and MLflow."""
        return {
            "counts": {k: int(v) for k, v in self.counts.items()},
            "table": _records(self.table),
            "reliability": _records(self.reliability),
        }


def live_performance(
    worklist: pd.DataFrame, labels: pd.DataFrame, *, contacted: AbstractSet[str] = frozenset(),
    rule_calibrations: Mapping[str, RuleCalibration] | None = None,
) -> LivePerformance:
    """Realized metrics of the published ``worklist`` against its resolved ``labels``
    (module docstring), per slice, population and scorer; ``contacted``: account ids with
    a recorded contact or promise between the run's ``as_of`` and their label's
    resolution (empty: none recorded); ``rule_calibrations``: the aging rule's served
    calibration per population (:func:`served_rule_columns`)."""
    joined, has_label, mismatch, resolved = _joined(worklist, labels)
    ids = set(map(str, contacted))
    counts = {
        "worklist": len(joined),
        "resolved": int(resolved.sum()),
        "censored": int((has_label & ~mismatch & joined["y"].isna()).sum()),
        "unlabelled": int((~has_label).sum()),
        "population_mismatch": int(mismatch.sum()),
        "contacted": int(joined["account_id"].isin(ids).sum()) if ids else 0,
    }
    rows = joined[resolved].reset_index(drop=True)
    rule_p, known = served_rule_columns(rows, rule_calibrations or {})
    rows = rows.assign(rule_probability=rule_p, rule_known=known)
    untouched = ~rows["account_id"].isin(ids) if ids else pd.Series(True, index=rows.index)
    table, bins = [], []
    for slc in SLICES:
        in_slice = untouched if slc == "untouched" else pd.Series(True, index=rows.index)
        for pop in POPULATIONS:
            in_pop = in_slice & ((rows["model"] == pop) if pop != "all" else True)
            for by in RANKED_BY:
                sub = rows[in_pop & ((rows["scorer"] == by) if by != "all" else True)]
                if not len(sub):
                    continue
                key = {"slice": slc, "population": pop, "ranked_by": by}
                metrics, curve = subset_metrics(sub)
                table.append({**key, **metrics})
                bins += [{**key, **b} for b in curve]
    return LivePerformance(
        table=pd.DataFrame(table, columns=list(TABLE_COLUMNS)),
        reliability=pd.DataFrame(bins, columns=list(RELIABILITY_COLUMNS)),
        counts=counts,
    )


def resolved_rows(worklist: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``worklist`` whose label resolved (what :func:`live_performance` judges):
    joined with ``labels`` by ``account_id`` (as str), the label of the row's own
    population (``model``), ``y`` known; the worklist's columns plus ``y`` and
    ``delinquent_amount``. Inputs are not mutated."""
    joined, _, _, resolved = _joined(worklist, labels)
    return joined[resolved].drop(columns=["label_model"]).reset_index(drop=True)


def _joined(worklist: pd.DataFrame, labels: pd.DataFrame,
            ) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.Series]:
    """The worklist left-joined with its labels, and the masks: has a label, of another
    population, resolved (one definition for :func:`live_performance` and
    :func:`resolved_rows`)."""
    lab = labels[["account_id", "model", "y", "delinquent_amount"]].rename(
        columns={"model": "label_model"})
    lab = lab.assign(account_id=lab["account_id"].astype(str))
    wl = worklist.assign(account_id=worklist["account_id"].astype(str))
    joined = wl.merge(lab, on="account_id", how="left", validate="one_to_one")
    has_label = joined["label_model"].notna()
    mismatch = has_label & (joined["label_model"] != joined["model"])
    return joined, has_label, mismatch, has_label & ~mismatch & joined["y"].notna()


def subset_metrics(rows: pd.DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, reliability bins) of resolved worklist rows (``y``, ``delinquent_amount``,
    ``rank``, ``probability``, ``open_balance``, ``oldest_dpd``, ``past_due_amount``, and
    :func:`served_rule_columns`' ``rule_probability`` / ``rule_known`` when the served
    rule is known): see the module docstring."""
    y = rows["y"].to_numpy(dtype=float)
    amount = rows["delinquent_amount"].to_numpy(dtype=float)
    p = pd.to_numeric(rows["probability"], errors="coerce").to_numpy(dtype=float)
    balance = pd.to_numeric(rows["open_balance"], errors="coerce").to_numpy(dtype=float)
    has_p = np.isfinite(p)
    published = -rows["rank"].to_numpy(dtype=float)  # the worklist's own order, no ties
    served = "rule_known" in rows and bool(rows["rule_known"].to_numpy(dtype=bool).all())
    rule_p = rows["rule_probability"].to_numpy(dtype=float) if served else None
    # the AUC's rule score and its basis: one decision with the slices (models.slices)
    rule, basis = rule_auc_score(rows, rule_p, judged=has_p)
    if rule_p is not None:  # the served rule's worklist order, whatever the AUC's basis
        past_due = (numeric_column(rows, "past_due_amount") if "past_due_amount" in rows
                    else np.full(len(rows), np.nan))  # read only where p is NaN
        rule_order = served_priority(rule_p, open_balance=balance, past_due_amount=past_due)
    else:
        rule_order = aging_rule_score(rows)
    out: dict[str, Any] = {
        "n_rows": len(rows),
        "n_positive": int((y == 1).sum()),
        "delinquent_amount": float(np.nansum(amount)),
        "n_probability": int(has_p.sum()),
        "auc": _auc(y[has_p], p[has_p]),
        "rule_auc": _auc(y[has_p], rule[has_p]),
        f"capture@{CAPTURE_K}": capture_at_k(published, amount, k=CAPTURE_K),
        f"rule_capture@{CAPTURE_K}": capture_at_k(rule_order, amount, k=CAPTURE_K,
                                                  tiebreak=balance),
        "ece": (expected_calibration_error(y[has_p], p[has_p], bins=RELIABILITY_BINS)
                if has_p.any() else float("nan")),
        "brier": brier(y[has_p], p[has_p]) if has_p.any() else float("nan"),
        "rule_basis": basis,
    }
    return out, reliability_bins(y[has_p], p[has_p])


def served_rule_columns(rows: pd.DataFrame, calibrations: Mapping[str, RuleCalibration],
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``(rule_probability, known)`` per worklist row (``model``, ``scorer``,
    ``probability``, ``oldest_dpd``, ``open_balance``): the aging rule's served
    probability (0-1; NaN where it has none) and whether it is known. A row the rule
    ranked published it; a model-ranked row gets ``calibrations[its population]``'s
    prediction, unknown when the population has none."""
    out = np.full(len(rows), np.nan)
    known = np.zeros(len(rows), dtype=bool)
    by_rule = (rows["scorer"] == "aging_rule").to_numpy()
    out[by_rule] = numeric_column(rows, "probability")[by_rule]
    known[by_rule] = True
    model = rows["model"].to_numpy(dtype=object)
    for pop, cal in calibrations.items():
        at = ~by_rule & (model == pop)
        if at.any():
            out[at] = cal.predict(rows[at])
            known[at] = True
    return out, known


def reliability_bins(y: np.ndarray, p: np.ndarray, *,
                     bins: int = RELIABILITY_BINS) -> list[dict[str, Any]]:
    """The reliability curve over the ECE's bins (``expected_calibration_error``: rows
    sorted by ``p``, split in ``min(bins, n)`` equal counts): per bin, ``bin`` (0 = lowest
    probabilities), ``n_rows``, ``mean_probability``, ``observed_rate``. The ECE is the
    row-weighted mean of ``|observed_rate - mean_probability|`` over these bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if not len(p):
        return []
    order = np.argsort(p, kind="mergesort")
    parts = [i for i in np.array_split(order, min(bins, len(p))) if len(i)]
    return [{"bin": k, "n_rows": len(i), "mean_probability": float(p[i].mean()),
             "observed_rate": float(y[i].mean())} for k, i in enumerate(parts)]


def headline(live: Mapping[str, Any] | None) -> str:
    """A few characters for a run list, from a stored ``meta["live"]`` (``to_dict``):
    ``AUC 0.81 vs 0.74`` (published vs the aging rule as served, all resolved rows the
    model ranked; rows the rule ranked when no model did: `` (rule)``; `` (key)`` when the
    rule's served calibration was unknown and its bare key stood in, ``rule_basis``);
    ``-`` when not evaluated, ``n/a`` when no subset has an AUC (one class only)."""
    if not live:
        return "-"
    row = _row(live, slice="all", population="all", ranked_by="model")
    tag = ""
    if row is None:  # no model ranked a resolved row: the rule ranked them all
        row, tag = _row(live, slice="all", population="all", ranked_by="all"), " (rule)"
    if not row or row.get("auc") is None or row.get("rule_auc") is None:
        return "n/a"
    tag += " (key)" if row.get("rule_basis") == "key" else ""
    return f"AUC {row['auc']:.2f} vs {row['rule_auc']:.2f}{tag}"


def _row(live: Mapping[str, Any], **key: str) -> dict[str, Any] | None:
    for row in live.get("table", []):
        if all(row.get(k) == v for k, v in key.items()):
            return dict(row)
    return None


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC, NaN unless both classes are present (as ``models.evaluate.score_metrics``)."""
    if len(np.unique(y)) != 2:
        return float("nan")
    return float(roc_auc_score(y, score))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: _plain(v) for k, v in rec.items()})
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def contacted_accounts(contacts: pd.DataFrame, promises: pd.DataFrame, *,
                       as_of: date | pd.Timestamp, until: date | pd.Timestamp) -> frozenset[str]:
    """Account ids treated between a run's publication and its labels' resolution: a
    recorded contact dated (``contact_date``) on or after ``as_of`` and before ``until``
    (:func:`resolves_on`), or a promise made before ``until`` whose promised date is on or
    after ``as_of`` (a promise still running when the list was published is treatment
    too). Frames in the shape of ``serving.store_events.read_contacts`` /
    ``read_promises`` (DESIGN's ``contacts`` and ``promises``); business dates, not when
    they were recorded, decide (an event is recorded on or after its date)."""
    start, end = pd.Timestamp(as_day(as_of)), pd.Timestamp(as_day(until))
    ids: set[str] = set()
    if len(contacts):
        day = pd.to_datetime(contacts["contact_date"])
        ids |= set(contacts.loc[(day >= start) & (day < end), "account_id"].astype(str))
    if len(promises):
        made = pd.to_datetime(promises["created_date"])
        due = pd.to_datetime(promises["promised_date"])
        running = (made < end) & (due.isna() | (due >= start))
        ids |= set(promises.loc[running, "account_id"].astype(str))
    return frozenset(ids)


def flat_metrics(live: Mapping[str, Any]) -> dict[str, float]:
    """The stored table (``LivePerformance.to_dict``) as MLflow metrics:
    ``<slice>.<population>.<ranked_by>.<metric>`` (``@`` spelled ``_at_``), finite values
    only, plus ``counts.<name>``."""
    out = {f"counts.{k}": float(v) for k, v in live.get("counts", {}).items()}
    for row in live.get("table", []):
        key = f"{row['slice']}.{row['population']}.{row['ranked_by']}"
        for name in TABLE_COLUMNS[3:-1]:  # the numbers (not rule_basis)
            value = row.get(name)
            if value is not None and np.isfinite(value):
                out[f"{key}.{name.replace('@', '_at_')}"] = float(value)
    return out


def model_age_days(as_of: date | pd.Timestamp, data_end: str | date | None) -> int | None:
    """Days from a champion's training data end (the last ``as_of`` of its training set,
    ISO text or a date) to a run's ``as_of``; None when unknown (the rule ranked it)."""
    if data_end is None or data_end == "":
        return None
    return (as_day(as_of) - as_day(pd.Timestamp(data_end))).days


def staleness_lines(as_of: date | pd.Timestamp, data_ends: Mapping[str, str | date | None],
                    *, max_age_days: int) -> list[str]:
    """One warning line per model whose training data ended more than ``max_age_days``
    before ``as_of`` (``data_ends``: model -> that end, a run's
    ``meta["champion_data_end"]``); none when every champion is fresher."""
    lines = []
    for kind, end in sorted(data_ends.items()):
        age = model_age_days(as_of, end)
        if age is not None and age > max_age_days:
            day = as_day(pd.Timestamp(end))
            lines.append(f"stale model: {kind} champion trained on data up to {day}, "
                         f"{age} days before this run (stale_model_days {max_age_days}); "
                         "retrain (`delinq train`) or check why the weekly retraining "
                         "promotes nothing")
    return lines


def live_slices(
    worklist: pd.DataFrame, labels: pd.DataFrame, accounts: pd.DataFrame, *,
    as_of: date | pd.Timestamp, contacted: AbstractSet[str] = frozenset(),
    rule_calibrations: Mapping[str, RuleCalibration] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per population, the slices (``models.slices``) of the resolved, untouched rows a
    model ranked: the published probability beside the aging rule as served (its
    probability by ``rule_calibrations[population]``; the rule's key for a population
    without one, the table's ``rule_basis`` says which) per customer segment, region,
    size and tenure band. ``accounts``: ``account_id``, ``account_segment``,
    ``account_region``, ``first_invoice`` (the account's first issue date): tenure is
    ``as_of - first_invoice`` in days. JSON-safe records (NaN as None)."""
    from models.slices import slice_metrics

    lab = labels[["account_id", "model", "y"]].rename(columns={"model": "label_model"})
    rows = worklist.assign(account_id=worklist["account_id"].astype(str)).merge(
        lab.assign(account_id=lab["account_id"].astype(str)), on="account_id")
    ids = set(map(str, contacted))
    rows = rows[(rows["label_model"] == rows["model"]) & rows["y"].notna()
                & (rows["scorer"] == "model") & ~rows["account_id"].isin(ids)]
    acc = accounts.assign(account_id=accounts["account_id"].astype(str))
    rows = rows.merge(acc, on="account_id", how="left")
    first = pd.to_datetime(rows["first_invoice"])
    rows = rows.assign(tenure_days=(pd.Timestamp(as_day(as_of)) - first).dt.days)
    out = {}
    cals = rule_calibrations or {}
    for pop in MODELS:
        part = rows[rows["model"] == pop]
        if len(part):
            rule_p = cals[pop].predict(part) if pop in cals else None
            table = slice_metrics(part, probability=part["probability"].to_numpy(float),
                                  rule_probability=rule_p)
            out[pop] = _records(table)
    return out
