"""Places and settings maps of the steps layer (:mod:`pipelines.steps`): where each step
writes under ``settings.data_dir``, and the library's option objects built from the one
:class:`~pipelines.settings.Settings`. Shared by the ingest, training and scoring steps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.settings import Settings

if TYPE_CHECKING:
    from features.spec import Materiality
    from models.gate import GatePolicy
    from models.train import TrainConfig
    from serving.actions import ActionPolicy


# --------------------------------------------------------------------------- places


def staging_dir(settings: Settings) -> Path:
    """Where :func:`ingest` writes the validated book (Parquet) for the later steps."""
    return Path(settings.data_dir) / "staging" / "book"


def training_set_path(settings: Settings) -> Path:
    """Where :func:`build_training_set` writes its Parquet file."""
    return Path(settings.data_dir) / "staging" / "training_set.parquet"


def quarantine_dir(settings: Settings, source: Path) -> Path:
    """Where the bad rows of the data folder ``source`` go:
    ``<data_dir>/quarantine/<source folder name>`` (never into ``source``, which may be
    read-only)."""
    return Path(settings.data_dir) / "quarantine" / Path(source).resolve().name


def export_dir(settings: Settings) -> Path:
    """Root of the worklist exports (``<as_of>/worklist.parquet`` below it)."""
    return Path(settings.data_dir) / "exports"


# --------------------------------------------------------------------------- settings maps


def model_names(settings: Settings) -> dict[str, str]:
    """Registered MLflow model name of each of the two models."""
    return {
        "early_warning": settings.early_warning_model,
        "persistence": settings.persistence_model,
    }


def label_params(settings: Settings) -> dict[str, Any]:
    """The training set's definition in the settings (logged with each trained model)."""
    return {
        "grid": settings.grid.value,
        "delinquency_dpd": settings.delinquency_dpd,
        "persistence_days": settings.persistence_days,
    }


def train_config(settings: Settings) -> TrainConfig:
    """``models.train.TrainConfig`` from the settings: the ``train`` options that are set
    (the others keep the library's defaults) and the settings' seed (also the sample's,
    unless ``train.sample_seed`` is set)."""
    from models.train import TrainConfig

    return TrainConfig(seed=settings.seed, **settings.train.model_dump(exclude_none=True))


def sampling_params(settings: Settings) -> dict[str, Any]:
    """How the training set is sampled (logged with each trained model beside
    :func:`label_params`): the budgets, explicit rates and seed; ``sample_max_rows`` 0 when
    it never is, ``sample_holdout_max_rows`` 0 when the validation and test periods are
    kept in full."""
    cfg = train_config(settings)
    return {"sample_max_rows": cfg.sample_max_rows or 0,
            "sample_positive_rate": cfg.sample_positive_rate,
            "sample_negative_rate": cfg.sample_negative_rate,
            "sample_holdout_max_rows": cfg.sample_holdout_max_rows or 0,
            "sample_seed": cfg.seed if cfg.sample_seed is None else cfg.sample_seed}


def gate_policy(settings: Settings) -> GatePolicy:
    """``models.gate.GatePolicy`` from the settings: the ``gate`` options that are set
    (the others keep the library's defaults) and the settings' seed for the bootstrap."""
    from models.gate import GatePolicy

    return GatePolicy(seed=settings.seed, **settings.gate.model_dump(exclude_none=True))


def action_policy(settings: Settings) -> ActionPolicy:
    """``serving.actions.ActionPolicy`` from the settings: the ``actions`` options that are
    set (the others keep the library's defaults)."""
    from serving.actions import ActionPolicy

    return ActionPolicy(**settings.actions.model_dump(exclude_none=True))


def materiality(settings: Settings) -> Materiality:
    """``features.spec.Materiality`` from the settings (unset thresholds keep the
    library's defaults): the one pair the training set and the scoring both use."""
    from features.spec import Materiality

    return Materiality(**settings.materiality.model_dump(exclude_none=True))


#: The audit trail's actor of what the pipeline does by itself (demotions, promotions).
ACTOR = "delinq"


def write_audit(settings: Settings, *, action: str, target: str, before: Any, after: Any,
                actor: str | None = None) -> None:
    """Append one row to the store's audit table (migration 0004; the workbench's trail),
    ``actor`` defaulting to :data:`ACTOR`, ``at`` the wall clock (when it was recorded)."""
    from datetime import UTC, datetime

    from serving import store_io
    from serving.store import WorklistStore
    from serving.store_events import audit

    WorklistStore(settings.resolved_store_url, upgrade=True).close()
    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url))
    try:
        with engine.begin() as conn:
            conn.execute(audit.insert().values(
                at=datetime.now(UTC), actor=actor or ACTOR, action=action,
                target=target[:256], before=before, after=after))
    finally:
        engine.dispose()
