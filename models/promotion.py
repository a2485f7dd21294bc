"""Promotion: does a new model version replace the champion? (``models.card.PROMOTION_RULE``)

The quality gate (``models.gate``) comes first; a version that passes it is compared with
the current champion on the *same* test period (the rows the new result holds; the
champion scores them, nothing is re-trained or re-read): higher capture@10 wins, a tie is
broken by ROC-AUC. Without a champion to compare with (none, one without a gate pass, or
one whose features this test set lacks) the gate alone decides. Pure: the registry
(``models.registry``) sets the aliases.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.pit.sampling import row_weights
from models.evaluate import Scores, capture_at_k, score_metrics
from models.gate import GateOutcome
from models.model import DelinqModel
from models.train import TrainingResult

PRIMARY_METRIC = "capture@10"
TIEBREAK_METRIC = "roc_auc"
_TIE = 1e-9




def _primary(scores: Scores, test: pd.DataFrame) -> dict[str, float]:
    y = test["y"].to_numpy(dtype=float)
    amount = test["delinquent_amount"].to_numpy(dtype=float)
    groups = test["as_of"].to_numpy()
    tiebreak = test["open_balance"].to_numpy(dtype=float)
    w = row_weights(test)  # a sampled test period: the full one's figures
    m = score_metrics(y, scores.proba, priority=scores.priority, ranking=scores.ranking,
                      amount=amount, groups=groups, tiebreak=tiebreak, weights=w)
    m[PRIMARY_METRIC] = capture_at_k(scores.priority, amount, k=10, groups=groups,
                                     tiebreak=tiebreak, weights=w)
    return {PRIMARY_METRIC: m[PRIMARY_METRIC], TIEBREAK_METRIC: m[TIEBREAK_METRIC]}


def beats(new: Mapping[str, float], old: Mapping[str, float]) -> bool:
    """The promotion rule: higher capture@10, or equal capture@10 and higher ROC-AUC."""
    dn, do = new[PRIMARY_METRIC], old[PRIMARY_METRIC]
    if np.isnan(do) and not np.isnan(dn):
        return True
    if dn > do + _TIE:
        return True
    return abs(dn - do) <= _TIE and new[TIEBREAK_METRIC] > old[TIEBREAK_METRIC] + _TIE


def decide(
    result: TrainingResult, champion: DelinqModel | None, gate: GateOutcome,
    replaced: str = "",
) -> tuple[bool, str, dict[str, float]]:
    """Promote or not, and the one line saying why. The gate comes first; a model that
    passes it is then compared with the champion on the same test period, when it can be.
    ``replaced``: why a champion that exists is not compared (e.g. it has no gate pass)."""
    if not gate.passed:
        return False, f"{gate.reason}: registered as challenger.", {}
    if champion is None:
        why = replaced or "no champion yet"
        return True, f"{gate.reason}; {why}: promoted to champion.", {}
    test = result.test
    missing = [c for c in champion.feature_names if c not in test.columns]
    if missing:
        return True, (
            f"{gate.reason}; champion v{champion.version} (feature set "
            f"{champion.feature_set_version}) needs features absent from this test set "
            f"({missing[:3]}...), so a head-to-head comparison on the same test period was "
            "impossible: promoted to champion on the gate alone."
        ), {}
    # The new version's scores were computed once at training; only the champion scores.
    new, old = _primary(result.test_scores, test), _primary(champion.scores(test), test)
    cmp = {f"new_{k}": v for k, v in new.items()} | {f"champion_{k}": v for k, v in old.items()}
    period = f"{result.data_window.get('test_start')}..{result.data_window.get('test_end')}"
    text = (f"{gate.reason}; on test period {period}: new capture@10 "
            f"{new[PRIMARY_METRIC]:.4f} / AUC {new[TIEBREAK_METRIC]:.4f} vs champion "
            f"v{champion.version} {old[PRIMARY_METRIC]:.4f} / {old[TIEBREAK_METRIC]:.4f}")
    if beats(new, old):
        return True, text + ": promoted to champion.", cmp
    return False, text + ": not better, registered as challenger.", cmp
