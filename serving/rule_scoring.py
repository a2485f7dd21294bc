"""Scoring a population with the aging rule when it has no gated champion model.

:func:`resolve_scorers` decides, per population, who ranks it tonight: the gated
``champion`` model, or the aging rule (``models.rule``) with the first calibration the
evidence supports (the last training's validation period, the book's resolved history, a
smoothed rate per DPD band, or none) and one line saying why no model ranks it and where
the probability comes from (:attr:`RuleScorer.line`), e.g.::

    persistence: no champion (gate failed (evidence): the test period holds 3 positive
    accounts ...); ranked by the aging rule, calibrated on the last training's validation
    period (41 positive of 880 rows)

A champion whose training read data after the scoring date (:func:`seen_after`, e.g.
``delinq run --as-of`` a past date after a training on the whole book) does not rank it:
the rule does, calibrated on the history before that date, and the line names the
champion's data end. A replay of a past date thus still ends in a worklist, and nothing in
it was known only later (refusing would leave the operator with nothing to compare).

:func:`rule_part` scores the rule's rows: probability, reasons (the rule's own facts: the
oldest invoice's days past due and the past-due amount, in ``serving.reasons``' sentence
style; no SHAP), and their explanation rows. The worklist then ranks them, as every row, by
``models.rule.served_priority`` (probability x open balance, the past-due amount without a
probability): the ranking the quality gate compares each model with (``models.gate``).
Nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.spec import DEFAULT_MATERIALITY, Materiality, as_day
from models.model import DelinqModel
from models.rule import RuleCalibration, choose_rule_calibration, resolved_history, rule_score
from serving.reason_render import TEMPLATES, template_columns
from serving.reasons import FACT_FEATURE, fact_reasons, render_reason
from serving.store_schema import RULE_SCORER

if TYPE_CHECKING:
    from features.pit.snapshot import PreparedBook

#: The rule's facts, in reason order (feature names of ``serving.reasons``' templates).
RULE_FACTS = (FACT_FEATURE, "past_due_amount")


@dataclass(frozen=True)
class RuleScorer:
    """The aging rule ranking population ``kind``: why no model does (``why``, one
    clause) and how its key becomes a probability (``calibration``)."""

    kind: str
    why: str
    calibration: RuleCalibration

    @property
    def line(self) -> str:
        """One line for the run summary, the artifact and ``delinq worklist``."""
        return (f"{self.kind}: no champion ({self.why}); ranked by the aging rule, "
                f"{self.calibration.describe()}")


def resolve_scorers(
    book: object,
    *,
    as_of: date | pd.Timestamp,
    tracking_uri: str,
    model_names: Mapping[str, str],
    why: Mapping[str, str] | None = None,
    delinquency_dpd: int | None = None,
    persistence_days: int | None = None,
    materiality: Materiality = DEFAULT_MATERIALITY,
    prepared: PreparedBook | None = None,
    every_rule: bool = False,
) -> tuple[dict[str, DelinqModel], dict[str, RuleScorer]]:
    """``(models, rules)``: the gated champion of each entry of ``model_names`` (model key
    -> registered name), and a :class:`RuleScorer` for every key without one.

    ``why`` (key -> clause) says why a key has no model when the caller knows better than
    the registry (e.g. training stopped: the split error). A rule's calibration is the
    last training's validation fit, else one on ``book``'s history resolved before
    ``as_of`` (labels with ``delinquency_dpd`` and ``persistence_days``; ``prepared``:
    ``book`` already encoded, ``features.pit.snapshot.prepare_book``). ``every_rule``:
    a key with a champion gets a rule too (it ranks the random holdout, issue 19).
    """
    # MLflow is imported here, not with the module: a Dask worker that only scores a
    # partition never loads it (issue 20)
    from models.registry import NoChampionError, UngatedChampionError, last_trained, load_champion
    day = as_day(as_of)
    models: dict[str, DelinqModel] = {}
    rules: dict[str, RuleScorer] = {}
    for key, registered in model_names.items():
        future = None  # why the champion may not score this date (it saw later data)
        try:
            champion = load_champion(registered, tracking_uri=tracking_uri)
            future = seen_after(champion, as_of=day)
            if future is None:
                models[key] = champion
                if not every_rule:
                    continue
                reason = "random holdout: no model-driven priority (live_holdout_share)"
            else:
                reason = future
        except UngatedChampionError:
            reason = "the champion has no recorded quality-gate pass (an earlier release's)"
        except NoChampionError:
            reason = "no model trained yet: run `delinq train`"
        last = last_trained(registered, tracking_uri=tracking_uri)
        if key in models:
            pass  # the holdout's rule: the reason stays the holdout's
        elif future is None and last is not None and last.get("gate_reason"):
            reason = str(last["gate_reason"])
        if key not in models and last is not None and last.get("demoted"):  # issue 19
            reason = str(last["demoted"])
        if why and why.get(key) and key not in models:
            reason = why[key]
        # The last training's validation period is newer than the champion's data: when the
        # champion already saw past this date, so did it.
        validation = None if last is None or future else last.get("rule_calibration")
        calibration = validation
        if calibration is None or calibration.source != "validation":
            history = resolved_history(book, as_of=day, kind=key,
                                       delinquency_dpd=delinquency_dpd,
                                       persistence_days=persistence_days,
                                       materiality=materiality, prepared=prepared)
            calibration = choose_rule_calibration(validation=None, history=history)
        rules[key] = RuleScorer(kind=key, why=reason, calibration=calibration)
    return models, rules


def seen_after(model: DelinqModel, *, as_of: date) -> str | None:
    """Why ``model`` may not score ``as_of`` (one clause), or None when it may: a model
    whose training knew outcomes after ``as_of`` (:attr:`DelinqModel.data_end` later than
    it: its fit, calibration and the gate's test outcomes) would rank that day with
    knowledge of the future, e.g. ``delinq run --as-of`` a past date after a training on
    the whole book. The aging rule then ranks the population with the history known
    before ``as_of`` (the caller's fallback)."""
    end = model.data_end
    if end is None or end <= as_of:
        return None
    version = f" v{model.version}" if model.version else ""
    return (f"the champion{version} was trained on data up to {end.isoformat()}, after "
            f"this run's as_of {as_of.isoformat()}: it would rank with knowledge of the "
            "future (score a later date, or train on the data before it)")


@dataclass(frozen=True)
class RulePart:
    """The rule's scores of one population's rows: probability (NaN when calibration is
    ``none``), reasons (on the part's index), explanation rows."""

    probability: np.ndarray
    reasons: pd.DataFrame
    explanations: pd.DataFrame


def rule_part(part: pd.DataFrame, scorer: RuleScorer, *, currency: str = "$") -> RulePart:
    """Score ``part`` (feature rows with facts) with ``scorer`` (see :class:`RulePart`)."""
    key = rule_score(part)
    probability = scorer.calibration.predict(part)
    expl = pd.DataFrame({
        "account_id": part["account_id"].astype("str").to_numpy(dtype=object),
        "model": scorer.kind,
        "model_version": RULE_SCORER,
        "base_value": np.nan,
        "raw_score": key,  # the rule's key, not log-odds: there is no SHAP for a rule
        **{c: part[c].to_numpy(dtype=float) for c in ("oldest_dpd", "past_due_amount",
                                                        "open_balance")},
    }).astype({"account_id": "str", "model": "str", "model_version": "str"})
    return RulePart(probability=probability, reasons=rule_reasons(part, currency=currency),
                    explanations=expl)


def rule_reasons(part: pd.DataFrame, *, currency: str = "$") -> pd.DataFrame:
    """The rule's facts as reasons: ``reason_1`` the oldest open invoice's days past due
    (with the past-due amount and the invoice), ``reason_2`` the past-due amount and its
    share of the balance when something is past due; no mitigating reason. ``reasons_json``
    lists them with direction ``fact`` (no SHAP: the rule has none;
    ``serving.reasons.fact_reasons``)."""
    # only the columns the two templates read (a feature row has ~100)
    values = {c: part[c].to_numpy() for c in dict.fromkeys(
        c for f in RULE_FACTS for c in template_columns(f, TEMPLATES[f]))}
    texts = {f: render_reason(f, values, currency=currency) for f in RULE_FACTS}
    past_due = np.nan_to_num(part["past_due_amount"].to_numpy(dtype=float), nan=0.0) > 0
    second = pc.if_else(pa.array(past_due), texts["past_due_amount"],
                        pa.nulls(len(part), pa.string()))
    return fact_reasons([(FACT_FEATURE, values[FACT_FEATURE], texts[FACT_FEATURE]),
                         ("past_due_amount", values["past_due_amount"], second)], part.index)
