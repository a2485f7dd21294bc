"""The product's steps, shared by the CLI (:mod:`pipelines.cli`) and the Prefect flows
(:mod:`pipelines.flows`), so the two cannot drift apart (DESIGN section 9).

Each step takes the one :class:`~pipelines.settings.Settings` object plus the run's inputs
(keyword-only; paths, counts, dates), calls the library, writes its outputs under
``settings.data_dir`` and returns a small frozen summary (paths, counts, messages; never a
big frame). Steps hand each other *paths*: :func:`ingest` stages the validated book as
Parquet, later steps read it from there.

``as_of`` is a :class:`datetime.date` here and below: the CLI and the flows parse dates
once, at their boundary. No Prefect here (the flows wrap these in tasks) and no "now":
the flows decide what today is.

Where things go, all under ``settings.data_dir``: ``staging/book`` (the validated book),
``staging/training_set.parquet``, ``quarantine/<source folder name>/<table>.csv`` (bad rows
of a validated folder), ``exports/<as_of>/`` (the worklist's Parquet export), the stores.

Layout: the places and settings maps are in :mod:`pipelines.steps_base`, the ingest steps
(generate, validate, ingest, read_book) in :mod:`pipelines.steps_ingest`, the training
steps in :mod:`pipelines.steps_train`, the scoring steps and the store's housekeeping in
:mod:`pipelines.steps_score`, the live-performance step in :mod:`pipelines.steps_live`;
this module is their one face (``from pipelines import steps``; ``steps.score(...)``).
"""

from __future__ import annotations

from pipelines.run_checks import plausibility
from pipelines.steps_base import (
    action_policy,
    export_dir,
    gate_policy,
    label_params,
    materiality,
    model_names,
    quarantine_dir,
    sampling_params,
    staging_dir,
    train_config,
    training_set_path,
)
from pipelines.steps_ingest import generate, ingest, read_book, validate, wait_staged
from pipelines.steps_score import (
    TOP_ROWS,
    check_disk,
    prune,
    reap_stale_runs,
    score,
)
from pipelines.steps_train import (
    build_training_set,
    has_champions,
    read_training_set,
    train,
)

__all__ = [
    "TOP_ROWS",
    "action_policy",
    "build_training_set",
    "check_disk",
    "export_dir",
    "gate_policy",
    "generate",
    "has_champions",
    "ingest",
    "label_params",
    "materiality",
    "model_names",
    "plausibility",
    "prune",
    "quarantine_dir",
    "read_book",
    "read_training_set",
    "reap_stale_runs",
    "sampling_params",
    "score",
    "staging_dir",
    "train",
    "train_config",
    "training_set_path",
    "validate",
    "wait_staged",
]
