"""Train, evaluate, register, load and explain the delinquency models (DESIGN section 7).

Modules:

- :mod:`models.model`: :class:`DelinqModel`, the one model type (raw score in log-odds,
  calibrated risk, scikit-learn ``predict_proba``, exact TreeSHAP explanations, save/load);
- :mod:`models.train`: :class:`TrainConfig` and :func:`train_models` / :func:`train_model`,
  which return a :class:`TrainingResult` per model kind (the model, its metrics beside the
  baselines, the data window and the test-period scores);
- :mod:`models.registry`: :func:`register` (MLflow run, version, champion or challenger)
  and :func:`load_champion`; the only module that imports MLflow;
- :mod:`models.report`: the printed training report;
- the parts: ``calibration``, ``evaluate`` (metrics and baselines), ``drift`` (PSI),
  ``treeshap`` (the exact explainer), ``card`` and ``plots``.

A notebook::

    from features import as_of_grid, build_training_set, generate_book
    from models import load_champion, register, train_models

    book = generate_book(2000, seed=0)
    results = train_models(build_training_set(book, as_of_dates=as_of_grid(book)))
    register(results, tracking_uri="sqlite:///mlflow.db",
             names={"early_warning": "ew", "persistence": "pe"})
    model = load_champion("ew", tracking_uri="sqlite:///mlflow.db")

Names are re-exported lazily, so ``import models.treeshap`` does not import MLflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.model import DelinqModel, Explanation, feature_matrix
    from models.registry import (
        NoChampionError,
        RegistrationResult,
        load_champion,
        load_model,
        register,
    )
    from models.report import format_report, training_summary
    from models.train import (
        TrainConfig,
        TrainingFailure,
        TrainingResult,
        train_model,
        train_models,
    )

_EXPORTS = {
    "DelinqModel": "models.model",
    "Explanation": "models.model",
    "feature_matrix": "models.model",
    "TrainConfig": "models.train",
    "TrainingFailure": "models.train",
    "TrainingResult": "models.train",
    "train_model": "models.train",
    "train_models": "models.train",
    "NoChampionError": "models.registry",
    "RegistrationResult": "models.registry",
    "load_champion": "models.registry",
    "load_model": "models.registry",
    "register": "models.registry",
    "format_report": "models.report",
    "training_summary": "models.report",
}
__all__ = [
    "DelinqModel",
    "Explanation",
    "NoChampionError",
    "RegistrationResult",
    "TrainConfig",
    "TrainingFailure",
    "TrainingResult",
    "feature_matrix",
    "format_report",
    "load_champion",
    "load_model",
    "register",
    "train_model",
    "train_models",
    "training_summary",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
