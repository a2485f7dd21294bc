"""The frozen summaries the steps (:mod:`pipelines.steps`) return: paths, counts, dates and
messages, never big frames. The CLI prints them, the flows pass them between tasks and
build their artifacts from them.

They do not depend on which library API produced them (the training summary in
particular is filled in one function of the steps layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GenerateSummary:
    """A synthetic book written to ``out``: rows per table, injected bad rows per table and
    rule, wall seconds."""

    out: Path
    rows: Mapping[str, int]
    injected: Mapping[str, Mapping[str, int]]
    seconds: float


@dataclass(frozen=True)
class ValidationSummary:
    """A validated data folder: counts per table (``table``, ``rows_read``, ``kept``,
    ``quarantined`` and one count per rule), the printed report, where the bad rows went,
    and the kept book's size and dates (first and last event)."""

    source: Path
    quarantine: Path
    tables: tuple[Mapping[str, Any], ...]
    report: str
    quarantined: int
    accounts: int
    invoices: int
    first_date: date
    last_date: date
    seconds: float


@dataclass(frozen=True, kw_only=True)
class IngestSummary(ValidationSummary):
    """A validated data folder, its kept rows staged as Parquet at ``staged``."""

    staged: Path


@dataclass(frozen=True)
class TrainingSetSummary:
    """A stacked training set: rows, ``as_of`` dates, and per model population the resolved
    (uncensored) rows and positives, with the definition it was built with. When sampled
    (``features.pit.sampling``), ``rows``, ``resolved`` and ``positives`` are the full
    grid's (the weighted counts, exact) and ``kept_rows`` the rows kept; else ``None``."""

    path: Path | None
    rows: int
    as_of_dates: int
    resolved: Mapping[str, int]
    positives: Mapping[str, int]
    grid: str
    delinquency_dpd: int
    persistence_days: int
    seconds: float
    kept_rows: int | None = None

    @property
    def resolved_rows(self) -> int:
        return sum(self.resolved.values())

    @property
    def positive_rate(self) -> float | None:
        n = self.resolved_rows
        return sum(self.positives.values()) / n if n else None

    def describe(self) -> str:
        """One line: size, definition and positives per model."""
        pops = ", ".join(f"{m} {self.positives.get(m, 0):,} of {n:,}"
                         for m, n in self.resolved.items())
        kept = ("" if self.kept_rows is None or self.kept_rows == self.rows
                else f" (sampled: {self.kept_rows:,} kept, weighted)")
        return (f"training set: {self.rows:,} rows{kept} over {self.as_of_dates} as_of dates "
                f"({self.grid} grid; delinquent at {self.delinquency_dpd} DPD, "
                f"{self.persistence_days}-day persistence); positives of resolved rows: "
                f"{pops or 'none'}")


@dataclass(frozen=True)
class ModelSummary:
    """One model's training outcome: its registration (name, version, whether promoted and
    why), its test-period metrics (``metrics``: the model's row; ``metrics_table``:
    scorer -> metric -> value, baselines included), data window and row counts; or the
    ``error`` that kept it from training."""

    model: str
    registered_name: str
    version: str | None = None
    promoted: bool = False
    champion_version: str | None = None
    reason: str = ""
    run_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_table: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    data_window: Mapping[str, str] = field(default_factory=dict)
    n_rows: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class TrainSummary:
    """Both models trained on one training set: per-model outcomes, the printed report."""

    models: tuple[ModelSummary, ...]
    training_set: TrainingSetSummary
    report: str
    seconds: float
    #: The stage budget (``models.stages.StageBudget.as_dict``): per stage its wall and CPU
    #: seconds and peak RSS (MB), in the order run.
    stages: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def promoted(self) -> list[str]:
        return [m.model for m in self.models if m.promoted]


@dataclass(frozen=True)
class ScoreSummary:
    """One scoring run as of ``as_of``: the run record's facts, the export, drift flag
    lines and the top rows of the worklist (JSON-safe)."""

    as_of: date
    run_id: str
    status: str
    message: str | None
    n_scored: int
    n_by_segment: Mapping[str, int]
    early_warning_version: str | None
    persistence_version: str | None
    feature_set_version: str | None
    store_url: str
    export_path: Path
    flags: tuple[str, ...]
    top: tuple[Mapping[str, Any], ...]
    seconds: float
    #: One line per population the aging rule ranked (no gated champion): why, and where
    #: its probability came from (``serving.rule_scoring.RuleScorer.line``).
    rule_lines: tuple[str, ...] = ()
    #: The run's receivables KPIs as stored in its ``meta["kpis"]``
    #: (``features.pit.kpis.Kpis.as_dict`` plus ``seconds``); empty when not computed.
    kpis: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The run's facts as name -> value (for reports and artifacts)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "n_scored": self.n_scored,
            **{f"n_{k}": v for k, v in self.n_by_segment.items()},
            "early_warning_version": self.early_warning_version,
            "persistence_version": self.persistence_version,
            "feature_set_version": self.feature_set_version,
            "export_path": str(self.export_path),
            **({"ranked_by_the_aging_rule": " | ".join(self.rule_lines)}
               if self.rule_lines else {}),
        }
