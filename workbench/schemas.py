"""The API's response bodies (pydantic): what ``/openapi.json`` documents."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from workbench.events import EventOut
from workbench.roles import Role


class ErrorOut(BaseModel):
    """Every error: one sentence, plus the fields at fault for a rejected request."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class Sort(StrEnum):
    """Worklist orders: priority is the run's rank; the others descend, ties by rank."""

    PRIORITY = "priority"
    PROBABILITY = "probability"
    BALANCE = "balance"
    DPD = "dpd"


class RunOut(BaseModel):
    run_id: str
    as_of: date
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    early_warning_version: str | None = None
    persistence_version: str | None = None
    feature_set_version: str | None = None
    n_scored: int | None = None
    n_by_segment: dict[str, int] = Field(default_factory=dict)
    is_current: bool
    replaced_by: str | None = None
    message: str | None = None


class RunSummary(RunOut):
    timings: dict[str, float] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    drift_flags: dict[str, int] = Field(
        default_factory=dict, description="Features per drift flag (PSI 0.1 / 0.25).")


class DriftRow(BaseModel):
    model: str | None = None
    feature: str
    psi: float | None = None
    flag: str | None = None


class WorklistItem(BaseModel):
    rank: int
    account_id: str
    name: str | None = None
    region: str | None = None
    segment: str
    open_balance: float
    past_due_amount: float | None = None
    oldest_dpd: float | None = None
    model: str
    probability: float | None = None
    priority: float
    action: str
    reason_1: str | None = None
    reason_2: str | None = None
    reason_3: str | None = None
    mitigating_reason: str | None = None
    model_version: str | None = None
    scorer: str | None = Field(None, description="model or aging_rule (null: model).")
    calibration: str | None = Field(None, description="Where the probability came from.")
    assignee: str | None = None
    snoozed_until: date | None = None


class WorklistPage(BaseModel):
    run: RunOut
    sort: Sort
    items: list[WorklistItem]
    next_cursor: str | None = Field(
        None, description="Pass as `after` for the next page; null on the last page.")


class WorklistTotals(BaseModel):
    """Totals of the filtered worklist rows (book currency; aging by the oldest open
    invoice's days past due, buckets ``1-30``, ``31-60``, ``61-90``, ``91+``)."""

    run: RunOut
    accounts: int
    open_balance: float
    at_risk: float = Field(description="Sum of probability x open balance.")
    aging: dict[str, int] = Field(description="Accounts per aging bucket.")
    aging_balance: dict[str, float] = Field(description="Open balance per aging bucket.")


class ScorePoint(BaseModel):
    run_id: str
    as_of: date
    rank: int
    segment: str
    probability: float | None = None
    priority: float
    action: str


class Explanation(BaseModel):
    model: str | None = None
    model_version: str | None = None
    base_value: float | None = Field(None, description="Log-odds before any feature.")
    raw_score: float | None = Field(None, description="Log-odds: base + sum of SHAP values.")
    features: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Feature -> {value, shap} (SHAP in log-odds).")


class AccountDetail(BaseModel):
    account_id: str
    run: RunOut
    score: WorklistItem
    reasons: list[dict[str, Any]] = Field(
        default_factory=list, description="Reasons with the account's values (and typical "
        "values where the run has them), strongest first.")
    explanation: Explanation | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    history_available: bool = Field(
        description="False when the staged book is not indexed (no invoices/payments).")
    open_invoices: list[dict[str, Any]] = Field(default_factory=list)
    payments: list[dict[str, Any]] = Field(default_factory=list)
    disputes: list[dict[str, Any]] = Field(default_factory=list)
    score_history: list[ScorePoint] = Field(default_factory=list)
    events: list[EventOut] = Field(default_factory=list)


class EventPage(BaseModel):
    items: list[EventOut]
    next_before: int | None = Field(None, description="Pass as `before` for older events.")


class UserOut(BaseModel):
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str


class UserCreated(BaseModel):
    user: UserOut
    password: str | None = Field(
        None, description="The generated password, shown this once (null if one was given).")


class TokenCreated(BaseModel):
    token: str = Field(description="The API token, shown this once: store it now.")
    username: str
    name: str


class AuditRow(BaseModel):
    audit_id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None


class AuditPage(BaseModel):
    items: list[AuditRow]
    next_before: int | None = None


class Health(BaseModel):
    status: str
