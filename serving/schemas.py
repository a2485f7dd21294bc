"""pandera schemas of the frames scoring produces (worklist, explanations, drift).

Used by tests and by :func:`validate_result` (cheap checks a run makes before writing):
column presence and dtype family, value ranges (probability in [0, 1], rank 1..n unique,
balances >= 0), allowed segments, models and actions, drift flags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandera.pandas as pa

from features.spec import MODELS, SEGMENTS
from serving.actions import ACTIONS
from serving.store_schema import CALIBRATIONS, HOLDS, SCORERS

if TYPE_CHECKING:
    from serving.score import ScoreResult

FLAGS = ("ok", "watch", "alert")


def _ranks_are_1_to_n(df) -> bool:  # type: ignore[no-untyped-def]
    ranks = df["rank"].to_numpy()
    return len(ranks) == 0 or bool(
        (ranks.min() == 1) and (ranks.max() == len(ranks)) and len(set(ranks)) == len(ranks)
    )


WORKLIST_SCHEMA = pa.DataFrameSchema(
    {
        "rank": pa.Column("int64", pa.Check.ge(1)),
        "account_id": pa.Column(str, unique=True),
        "segment": pa.Column(str, pa.Check.isin(SEGMENTS)),
        "open_balance": pa.Column(float, pa.Check.ge(0)),
        "past_due_amount": pa.Column(float, pa.Check.ge(0), nullable=True),
        "oldest_dpd": pa.Column(float, nullable=True),
        "model": pa.Column(str, pa.Check.isin(MODELS)),
        # missing only where the aging rule had too few positives to calibrate
        "probability": pa.Column(float, pa.Check.in_range(0.0, 1.0), nullable=True),
        "priority": pa.Column(float, pa.Check.ge(0)),
        "action": pa.Column(str, pa.Check.isin(ACTIONS)),
        "reason_1": pa.Column(str, nullable=True),
        "reason_2": pa.Column(str, nullable=True),
        "reason_3": pa.Column(str, nullable=True),
        "mitigating_reason": pa.Column(str, nullable=True),
        "reasons_json": pa.Column(str, pa.Check.str_startswith("[")),
        "model_version": pa.Column(str),
        "scorer": pa.Column(str, pa.Check.isin(SCORERS)),
        "calibration": pa.Column(str, pa.Check.isin(CALIBRATIONS)),
        # issue 17: held off the main ranking (an open promise or a snooze) until hold_ends
        "hold": pa.Column(str, pa.Check.isin(HOLDS), nullable=True),
        "hold_date": pa.Column("datetime64[s]", nullable=True),
        "hold_ends": pa.Column("datetime64[s]", nullable=True),
        "as_of": pa.Column("datetime64[s]"),
    },
    checks=[pa.Check(_ranks_are_1_to_n, error="rank must be 1..n without gaps or ties")],
    strict=True,
    coerce=False,
)

EXPLANATIONS_HEAD_SCHEMA = pa.DataFrameSchema(
    {
        "account_id": pa.Column(str),
        "model": pa.Column(str, pa.Check.isin(MODELS)),
        "model_version": pa.Column(str),
        "base_value": pa.Column(float),
        "raw_score": pa.Column(float),
        # Feature values keep their own names; SHAP values are float columns shap_<feature>.
        "shap_.+": pa.Column(float, regex=True, required=False),
    },
    strict=False,
)

DRIFT_SCHEMA = pa.DataFrameSchema(
    {
        "model": pa.Column(str, pa.Check.isin(MODELS)),
        "feature": pa.Column(str),
        "psi": pa.Column(float, pa.Check.ge(0)),
        "flag": pa.Column(str, pa.Check.isin(FLAGS)),
    },
    strict=True,
)


def validate_result(result: ScoreResult) -> None:
    """Raise ``pandera.errors.SchemaError`` if a scoring result breaks its schemas."""
    WORKLIST_SCHEMA.validate(result.worklist)
    EXPLANATIONS_HEAD_SCHEMA.validate(result.explanations)
    DRIFT_SCHEMA.validate(result.drift)
