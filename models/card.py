"""The model card (markdown) logged with every registered model version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

PROMOTION_RULE = (
    "A new version becomes `champion` only if it first passes the **quality gate** on its "
    "test period (`models.gate`): (a) enough evidence (by default at least 30 distinct "
    "positive accounts and 100 positive rows), (b) not constant (the model made splits and "
    "its scores vary), (c) it beats the **aging rule as served** (what would rank the "
    "population without the model: the rule's key, oldest DPD then balance, calibrated "
    "into a probability as scoring would, the worklist by probability x open balance): "
    "the 5th percentile of an account-level bootstrap (1,000 resamples) of the capture@10 "
    "difference (model - rule) is above 0 and its ROC-AUC is not below the rule's. A "
    "version that passes then must beat the current champion on the **same test period**: "
    "the champion is re-scored on the new version's test rows, and the primary metric is "
    "**capture@10** (share of next-period delinquent dollars in the top 10% of the "
    "worklist, ranked by calibrated probability x open balance); a tie (within 1e-9) is "
    "broken by **ROC-AUC**. When there is no champion, or it has no recorded gate pass, or "
    "its features differ (no head-to-head comparison is possible), the gate alone decides. "
    "A version that does not get promoted gets the alias `challenger`; the gate's verdict "
    "is recorded on every version (tags `gate`, `gate.reason`)."
)

QUESTIONS = {
    "early_warning": (
        "Accounts not yet delinquent (segments preventive and early): probability that an "
        "invoice open at `as_of` goes 30+ days past due while still unpaid."
    ),
    "persistence": (
        "Delinquent accounts (segments delinquent and late): probability that 30 days "
        "after `as_of` an invoice open at `as_of` is still unpaid and 30+ days past due."
    ),
}


def _markdown_table(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| scorer | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row.to_numpy(float)) + " |")
    return "\n".join(lines)


def model_card(
    *,
    model: str,
    registered_name: str,
    version: str,
    feature_set_version: str,
    data_window: Mapping[str, str],
    n_rows: Mapping[str, int],
    metrics: pd.DataFrame,
    params: Mapping[str, Any],
    calibration: Mapping[str, Any],
    calibration_brier: Mapping[str, float],
    feature_names: Sequence[str],
    promoted: bool,
    reason: str,
) -> str:
    """Markdown model card: purpose, data window, split, metrics vs baselines, promotion."""
    w = data_window
    status = "champion" if promoted else "challenger"
    briers = ", ".join(f"{k} {v:.4f}" for k, v in calibration_brier.items())
    param_text = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"""# Model card: {registered_name} v{version} ({model})

**Question.** {QUESTIONS.get(model, model)}

**Status.** `{status}`. {reason}

**Promotion rule.** {PROMOTION_RULE}

## Data
- Feature set version: `{feature_set_version}` ({len(feature_names)} features)
- Train: `as_of` {w.get('train_start')} .. {w.get('train_end')}, labels resolved before
  {w.get('train_labels_before')} ({n_rows.get('train', 0)} rows)
- Validation (early stopping, calibration): `as_of` {w.get('val_start')} .. {w.get('val_end')},
  labels resolved before {w.get('val_labels_before')} ({n_rows.get('val', 0)} rows)
- Test: `as_of` {w.get('test_start')} .. {w.get('test_end')} ({n_rows.get('test', 0)} rows)
- Censored rows (label unresolved at the end of the data) are never used for training.

## Model
LightGBM binary classifier ({param_text}).
Calibration: **{calibration.get('method')}** on validation raw scores, chosen by
out-of-fold validation Brier ({briers}).

## Test-period metrics (model vs baselines)
ROC-AUC and average precision judge each scorer's ranking score; Brier and ECE (10
equal-frequency bins) its probability; capture@k the share of next-period delinquent
dollars in the top k% of each `as_of` worklist.

{_markdown_table(metrics)}

## Limits
Trained on the book it was given; check the drift report (PSI of features and score)
before trusting scores on a changed population.
"""
