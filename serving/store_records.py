"""Run records of the worklist store: the :class:`RunRecord` type and the mapping between a
run's ``meta`` dict and the ``runs`` table's columns (used by :mod:`serving.store`).

Times are UTC (SQLite drops the zone: it is put back on reading); ``timings`` in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from serving import store_schema as S


@dataclass(frozen=True)
class RunRecord:
    """One scoring run as stored (times in UTC, ``timings`` in seconds)."""

    run_id: str
    as_of: date
    status: str
    started_at: datetime
    finished_at: datetime | None
    early_warning_version: str | None
    persistence_version: str | None
    feature_set_version: str | None
    n_scored: int | None
    n_by_segment: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    is_current: bool = False
    replaced_by: str | None = None
    explanations_path: str | None = None
    heartbeat_at: datetime | None = None
    runner: str | None = None


RUN_FIELDS = [f.name for f in fields(RunRecord)]


def meta_columns(meta: dict[str, Any], *, base: RunRecord | None = None) -> dict[str, Any]:
    """Map a ``meta`` dict onto run columns; unknown keys are kept in the ``meta`` JSON."""
    meta = dict(meta or {})
    versions = meta.pop("model_versions", None) or {}
    out: dict[str, Any] = {}
    for model in S.MODELS:
        if model in versions and versions[model] is not None:
            out[f"{model}_version"] = str(versions[model])
    if meta.get("feature_set_version") is not None:
        out["feature_set_version"] = str(meta.pop("feature_set_version"))
    if "message" in meta:
        out["message"] = None if meta["message"] is None else str(meta.pop("message"))
    timings = meta.pop("timings", None)
    if timings is not None or base is not None:
        out["timings"] = {**(base.timings if base else {}),
                          **{str(k): float(v) for k, v in (timings or {}).items()}}
    merged = {**(base.meta if base else {}), **json_safe(meta)}
    if merged or base is None:
        out["meta"] = merged
    return out


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (date, datetime, pd.Timestamp)):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def record_of(row: Any) -> RunRecord:
    values = {name: row.get(name) for name in RUN_FIELDS}
    values["as_of"] = as_date(values["as_of"])
    for name in ("started_at", "finished_at", "heartbeat_at"):
        if values[name] is not None and values[name].tzinfo is None:
            values[name] = values[name].replace(tzinfo=UTC)  # SQLite drops the zone
    for name in ("n_by_segment", "timings", "meta"):
        values[name] = dict(values[name] or {})
    values["is_current"] = bool(values["is_current"])
    return RunRecord(**values)


def as_date(value: Any) -> date:
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise TypeError(f"as_of must be a date, got {type(value).__name__}")
