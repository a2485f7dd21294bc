"""What live performance decides (issue 19, items 2 and 5): demotion of a champion that
ranks untouched accounts below the aging rule run after run, the random holdout that gets
no model-driven priority, and warnings that persist over runs.

Pure functions over stored run records (``serving.store.WorklistStore.list_runs`` rows as
mappings: ``run_id``, ``as_of``, ``meta`` with ``meta["live"]`` from
``models.live.LivePerformance.to_dict`` and ``meta["model_versions"]``). No store, no
clock, no MLflow: the steps layer applies the verdicts (``pipelines.steps_live``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd

#: The slice a demotion judges: accounts no collector touched before resolution, so the
#: collectors' work on the top of the list does not flatter or hurt either ranking.
DEMOTION_SLICE: Final = "untouched"
#: Salt of the holdout hash: changing it draws other accounts.
HOLDOUT_SALT: Final = "delinq-holdout-v1"


@dataclass(frozen=True)
class DemotionCheck:
    """The live verdict on one population's champion ``version``: the latest resolved
    runs it ranked, newest first, while it stayed below the rule (``streak``: ``(run_id,
    as_of, auc, rule_auc)``), and whether that reaches ``fallback_runs`` (``demote``)."""

    kind: str
    version: str
    streak: tuple[tuple[str, date, float, float], ...]
    fallback_runs: int

    @property
    def demote(self) -> bool:
        """True when the streak is at least ``fallback_runs`` long."""
        return len(self.streak) >= self.fallback_runs

    @property
    def reason(self) -> str:
        """One line for the run summary and the registry (why it was demoted)."""
        figures = "; ".join(f"{d} AUC {a:.3f} vs {r:.3f}" for _, d, a, r in self.streak)
        return (f"{self.kind} champion v{self.version} ranked untouched accounts below the "
                f"aging rule in {len(self.streak)} consecutive resolved runs ({figures}); "
                f"demoted to challenger (live_fallback_runs {self.fallback_runs}), the aging "
                "rule ranks its population")


def below_rule(live: Mapping[str, Any] | None, *, population: str,
               slice: str = DEMOTION_SLICE) -> tuple[float, float] | None:  # noqa: A002
    """``(auc, rule_auc)`` of the model-ranked rows of ``population`` in ``slice`` when
    the model's AUC is below the rule's on the same accounts; ``None`` when it is not, or
    when the run says nothing about it (no such rows, one class only)."""
    for row in (live or {}).get("table", []):
        if (row.get("slice"), row.get("population"), row.get("ranked_by")) == (
                slice, population, "model"):
            auc, rule = row.get("auc"), row.get("rule_auc")
            if auc is None or rule is None:
                return None
            return (float(auc), float(rule)) if auc < rule else None
    return None


def judged(live: Mapping[str, Any] | None, *, population: str,
           slice: str = DEMOTION_SLICE) -> bool:  # noqa: A002
    """Whether a run's live figures compare the model with the rule for ``population``
    (both AUCs present on its model-ranked rows of ``slice``)."""
    return any(
        (row.get("slice"), row.get("population"), row.get("ranked_by")) == (
            slice, population, "model")
        and row.get("auc") is not None and row.get("rule_auc") is not None
        for row in (live or {}).get("table", []))


def demotion_check(runs: Iterable[Mapping[str, Any]], *, kind: str, version: str,
                   fallback_runs: int) -> DemotionCheck:
    """The streak of the champion ``version`` of population ``kind``: walking its
    evaluated runs (``meta["model_versions"][kind] == version`` and ``meta["live"]``
    present) from the newest back, each run whose untouched model-ranked rows have both
    AUCs either extends the streak (model below the rule) or ends it; runs without a
    comparison are passed over. A retrained or restored champion starts afresh (other
    version)."""
    mine = [r for r in runs
            if str((r.get("meta") or {}).get("model_versions", {}).get(kind)) == str(version)
            and (r.get("meta") or {}).get("live")]
    streak = []
    for run in sorted(mine, key=lambda r: r["as_of"], reverse=True):
        live = run["meta"]["live"]
        if not judged(live, population=kind):
            continue
        worse = below_rule(live, population=kind)
        if worse is None:
            break
        streak.append((str(run["run_id"]), run["as_of"], *worse))
    return DemotionCheck(kind=kind, version=str(version), streak=tuple(streak),
                         fallback_runs=int(fallback_runs))


def in_holdout(account_ids: Sequence[str] | pd.Series, *, share: float,
               salt: str = HOLDOUT_SALT) -> np.ndarray:
    """Boolean mask of the accounts in the random holdout: a stable hash of the account id
    (SHA-256 of ``salt`` and the id, first 8 bytes as a fraction of 2**64) below
    ``share`` (0-1). The same accounts every night, whatever else is in the book."""
    if share <= 0:
        return np.zeros(len(account_ids), dtype=bool)
    scale = float(2**64)
    fractions = np.fromiter(
        (int.from_bytes(hashlib.sha256(f"{salt}:{a}".encode()).digest()[:8], "big") / scale
         for a in map(str, account_ids)), dtype=float, count=len(account_ids))
    return fractions < share


def persistent_drift(history: Sequence[AbstractSet[tuple[str, str]]], *,
                     runs: int) -> list[str]:
    """Warning lines for the ``(model, feature)`` pairs with a PSI alert in each of the
    last ``runs`` runs (``history``: each run's alerted pairs, oldest first, tonight's
    last; ``models.drift``'s flags); none when fewer runs are known or ``runs`` is 0."""
    if runs <= 0 or len(history) < runs:
        return []
    persistent = set.intersection(*(set(h) for h in history[-runs:]))
    return [f"persistent drift: {model} {feature} has a PSI alert in each of the last "
            f"{runs} runs (drift_persist_runs {runs}); check the source data or retrain"
            for model, feature in sorted(persistent)]


def _auc(live: Mapping[str, Any] | None, population: str) -> float | None:
    for row in (live or {}).get("table", []):
        if (row.get("slice"), row.get("population"), row.get("ranked_by")) == (
                DEMOTION_SLICE, population, "model"):
            return None if row.get("auc") is None else float(row["auc"])
    return None


def shadow_wins(runs: Iterable[Mapping[str, Any]], *, kind: str, champion: str,
                challenger: str) -> tuple[tuple[str, date, float, float], ...]:
    """The latest resolved runs, newest first, in which the shadow ``challenger`` of
    population ``kind`` (``meta["live_shadow"][kind]``) ranked the untouched accounts
    better (AUC) than the published ``champion`` on the same runs: ``(run_id, as_of,
    challenger_auc, champion_auc)``; the streak ends at the first run where it did not,
    runs without both figures are passed over."""
    streak = []
    for run in sorted(runs, key=lambda r: r["as_of"], reverse=True):
        meta = run.get("meta") or {}
        shadow = (meta.get("live_shadow") or {}).get(kind) or {}
        if (str(meta.get("model_versions", {}).get(kind)) != str(champion)
                or str(shadow.get("version")) != str(challenger)):
            continue
        mine, theirs = _auc(shadow, kind), _auc(meta.get("live"), kind)
        if mine is None or theirs is None:
            continue
        if mine <= theirs:
            break
        streak.append((str(run["run_id"]), run["as_of"], mine, theirs))
    return tuple(streak)
