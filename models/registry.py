"""MLflow tracking and model registry: the only module that imports MLflow.

Each trained model is logged as a run (params, metrics of the model and baselines,
feature-set version, data window, plots, model card, reference profile) and registered
as a pyfunc (:class:`DelinqPyfunc`) that returns calibrated probabilities for a feature
frame. Aliases (MLflow 3, no stages): the new version becomes ``champion`` only if it
beats the current champion on the same test period (see ``models.card.PROMOTION_RULE``),
else ``challenger``. Scoring loads a model by alias with :func:`load_model`.

The default store is embedded: ``sqlite:///<data_dir>/mlflow.db`` (chosen by the caller
from settings) with artifacts in ``<data_dir>/mlartifacts``. A server URL works too.
Loading a registered pyfunc needs the ``delinq`` package installed (the Python model
class is referenced, not copied).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import lightgbm as lgb
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from models.calibration import Calibrator
from models.card import model_card
from models.evaluate import Scores, capture_at_k, score_metrics
from models.train import ScoringMixin, TrainedModel, feature_matrix, model_scores

CHAMPION = "champion"
CHALLENGER = "challenger"
PRIMARY_METRIC = "capture@10"
TIEBREAK_METRIC = "roc_auc"
_TIE = 1e-9
SHAP_ROWS = 2000

# Loggers that print schema-migration and environment chatter on a fresh store.
_QUIET_LOGGERS = {
    "alembic": logging.WARNING,
    "alembic.runtime.migration": logging.WARNING,
    "mlflow.store.db.utils": logging.WARNING,
    "mlflow.store.sql_alchemy": logging.WARNING,
    "mlflow.utils.git_utils": logging.ERROR,
    "mlflow.tracking._tracking_service.utils": logging.ERROR,
    "mlflow.pyfunc": logging.ERROR,
    "mlflow.models.model": logging.ERROR,
    "mlflow.utils.environment": logging.ERROR,
    "mlflow.utils.requirements_utils": logging.ERROR,
}


class NoChampionError(LookupError):
    """The registered model has no version under the requested alias."""


@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of :func:`log_and_register` for one model."""

    version: str
    promoted: bool
    champion_version: str | None
    run_id: str
    reason: str
    comparison: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's informational chatter (schema creation, git, pickling notes)."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # No usage telemetry: the product runs offline and must not phone home.
    if os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true").lower() == "true":
        with contextlib.suppress(Exception):
            from mlflow.telemetry import set_telemetry_client

            set_telemetry_client()
    saved = {}
    for name, level in _QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow\..*")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def default_tracking_uri(data_dir: str | Path) -> str:
    """The embedded store of a data directory: ``sqlite:///<data_dir>/mlflow.db``."""
    return f"sqlite:///{(Path(data_dir) / 'mlflow.db').resolve()}"


def _artifact_location(tracking_uri: str) -> str | None:
    """For a SQLite store, a folder ``mlartifacts`` next to the database file."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    db = Path(unquote(tracking_uri[len("sqlite:///"):]))
    return (db.parent / "mlartifacts").resolve().as_uri()


def _client(tracking_uri: str) -> Any:
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiment_id(client: Any, tracking_uri: str, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(experiment, artifact_location=_artifact_location(tracking_uri))


# ---------------------------------------------------------------------------- pyfunc

_ARTIFACTS = ("booster", "calibrator", "meta", "reference_profile")


class DelinqPyfunc(mlflow.pyfunc.PythonModel):
    """Registered pyfunc: calibrated delinquency probability for each row of a feature frame."""

    def load_context(self, context: Any) -> None:
        self.state = _state_from_files(context.artifacts)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return self.state.predict_proba(model_input)


@dataclass
class LoadedModel(ScoringMixin):
    """A registered model version, ready to score (see :class:`ScoringMixin`)."""

    booster: lgb.Booster
    calibrator: Calibrator
    feature_names: list[str]
    categories: dict[str, list[str]]
    feature_set_version: str
    reference_profile: dict[str, Any]
    model: str = ""
    version: str = ""
    registered_name: str = ""
    data_window: dict[str, str] = field(default_factory=dict)


def _state_from_files(paths: Mapping[str, str]) -> LoadedModel:
    meta = json.loads(Path(paths["meta"]).read_text())
    return LoadedModel(
        booster=lgb.Booster(model_file=paths["booster"]),
        calibrator=Calibrator.from_dict(json.loads(Path(paths["calibrator"]).read_text())),
        feature_names=list(meta["feature_names"]),
        categories={k: list(v) for k, v in meta["categories"].items()},
        feature_set_version=meta["feature_set_version"],
        reference_profile=json.loads(Path(paths["reference_profile"]).read_text()),
        model=meta.get("model", ""),
        data_window=dict(meta.get("data_window", {})),
    )


def _write_model_files(trained: TrainedModel, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: str(folder / f"{name}.{'txt' if name == 'booster' else 'json'}")
             for name in _ARTIFACTS}
    trained.booster.save_model(paths["booster"])
    Path(paths["calibrator"]).write_text(json.dumps(trained.calibrator.to_dict()))
    meta = {
        "model": trained.model,
        "feature_names": trained.feature_names,
        "categories": trained.categories,
        "feature_set_version": trained.feature_set_version,
        "data_window": trained.data_window,
    }
    Path(paths["meta"]).write_text(json.dumps(meta, indent=1))
    Path(paths["reference_profile"]).write_text(json.dumps(trained.reference_profile))
    return paths


@contextlib.contextmanager
def _skip_requirement_check() -> Iterator[None]:
    try:
        import mlflow.utils.environment as env
    except ImportError:  # pragma: no cover
        yield
        return
    original = getattr(env, "warn_dependency_requirement_mismatches", None)
    if original is None:
        yield
        return
    env.warn_dependency_requirement_mismatches = lambda *a, **k: None
    try:
        yield
    finally:
        env.warn_dependency_requirement_mismatches = original


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ("lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle")
    out = []
    for p in pkgs:
        with contextlib.suppress(Exception):
            out.append(f"{p}=={version(p)}")
    return out


# ---------------------------------------------------------------------------- plots


def _shap_values(trained: TrainedModel, x: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP values (log-odds) of at most ``SHAP_ROWS`` rows, bias column dropped.

    LightGBM's own ``pred_contrib`` is used here rather than ``models.treeshap``: both are
    exact, and for a 2,000-row plot the project's explainer would spend far longer
    JIT-compiling its kernels in a fresh process than it saves (measured: tens of seconds
    vs well under a second). Scoring, which explains every account, uses the fast one.
    """
    sv = np.asarray(trained.booster.predict(x, pred_contrib=True), dtype=float)
    return sv[:, : len(trained.feature_names)]


def _figures(trained: TrainedModel, seed: int) -> dict[str, Any]:
    from models import plots

    test = trained.test_frame
    y = test["y"].to_numpy(dtype=float)
    scorers = {"lightgbm": model_scores(trained, test)}
    scorers |= {k: v for k, v in trained.baseline_scores.items() if len(v.proba) == len(test)}
    figs = {
        "roc": plots.roc_figure(y, scorers),
        "calibration": plots.calibration_figure(y, scorers["lightgbm"].proba),
        "capture_curve": plots.capture_figure(test["delinquent_amount"].to_numpy(float), scorers),
    }
    sample = test.sample(n=min(SHAP_ROWS, len(test)), random_state=seed)
    x = feature_matrix(sample, trained.feature_names, trained.categories)
    figs["shap_summary"] = plots.shap_summary_figure(_shap_values(trained, x), x)
    return figs


# ---------------------------------------------------------------------------- promotion


def _primary(model: ScoringMixin, test: pd.DataFrame) -> dict[str, float]:
    sc: Scores = model_scores(model, test)
    y = test["y"].to_numpy(dtype=float)
    amount = test["delinquent_amount"].to_numpy(dtype=float)
    m = score_metrics(y, sc.proba, priority=sc.priority, ranking=sc.ranking, amount=amount,
                      groups=test["as_of"].to_numpy(),
                      tiebreak=test["open_balance"].to_numpy(dtype=float))
    m[PRIMARY_METRIC] = capture_at_k(sc.priority, amount, k=10, groups=test["as_of"].to_numpy(),
                                     tiebreak=test["open_balance"].to_numpy(dtype=float))
    return {PRIMARY_METRIC: m[PRIMARY_METRIC], TIEBREAK_METRIC: m[TIEBREAK_METRIC]}


def beats(new: Mapping[str, float], old: Mapping[str, float]) -> bool:
    """The promotion rule: higher capture@10, or equal capture@10 and higher ROC-AUC."""
    dn, do = new[PRIMARY_METRIC], old[PRIMARY_METRIC]
    if np.isnan(do) and not np.isnan(dn):
        return True
    if dn > do + _TIE:
        return True
    return abs(dn - do) <= _TIE and new[TIEBREAK_METRIC] > old[TIEBREAK_METRIC] + _TIE


def _decide(
    trained: TrainedModel, champion: LoadedModel | None
) -> tuple[bool, str, dict[str, float]]:
    if champion is None:
        return True, "First registered version: promoted to champion.", {}
    test = trained.test_frame
    missing = [c for c in champion.feature_names if c not in test.columns]
    if missing:
        return False, (
            f"Champion v{champion.version} (feature set {champion.feature_set_version}) needs "
            f"features absent from this test set ({missing[:3]}...); it cannot be compared on "
            "the same test period, so the new version stays challenger."
        ), {}
    new, old = _primary(trained, test), _primary(champion, test)
    cmp = {f"new_{k}": v for k, v in new.items()} | {f"champion_{k}": v for k, v in old.items()}
    period = f"{trained.data_window.get('test_start')}..{trained.data_window.get('test_end')}"
    text = (f"On test period {period}: new capture@10 {new[PRIMARY_METRIC]:.4f} / AUC "
            f"{new[TIEBREAK_METRIC]:.4f} vs champion v{champion.version} "
            f"{old[PRIMARY_METRIC]:.4f} / {old[TIEBREAK_METRIC]:.4f}")
    if beats(new, old):
        return True, text + ": promoted to champion.", cmp
    return False, text + ": not better, registered as challenger.", cmp


# ---------------------------------------------------------------------------- public API


def _metric_key(scorer: str, metric: str) -> str:
    return f"{scorer}.{metric.replace('@', '_at_')}"


def log_and_register(
    trained: TrainedModel,
    *,
    tracking_uri: str,
    registered_name: str,
    experiment: str = "delinq",
    extra_params: Mapping[str, Any] | None = None,
) -> RegistrationResult:
    """Log ``trained`` as an MLflow run, register it, and set its alias by the promotion rule.

    The run holds params, metrics (``<scorer>.<metric>`` for the model and every
    baseline), tags (model, feature-set version, data window), plots, the metrics table,
    the model card and the pyfunc model (with the reference profile for drift).
    """
    with quiet_mlflow():
        mlflow.set_tracking_uri(tracking_uri)
        client = _client(tracking_uri)
        exp_id = _experiment_id(client, tracking_uri, experiment)
        params = {"model": trained.model, "feature_set_version": trained.feature_set_version,
                  "calibration": trained.calibrator.method,
                  "n_features": len(trained.feature_names),
                  **{f"n_rows_{k}": v for k, v in trained.n_rows.items()},
                  **{f"window_{k}": v for k, v in trained.data_window.items()},
                  **trained.params, **dict(extra_params or {})}
        metrics = {_metric_key(s, m): float(v) for s, row in trained.metrics.iterrows()
                   for m, v in row.items() if np.isfinite(v)}
        metrics |= {f"calibration_brier.{k}": v for k, v in trained.calibration_brier.items()}
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
            experiment_id=exp_id, run_name=f"{trained.model}"
        ) as run:
            run_id = run.info.run_id
            mlflow.set_tags({"model": trained.model,
                             "feature_set_version": trained.feature_set_version,
                             "mlflow.source.name": "delinq"})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(metrics)
            folder = Path(tmp)
            from models.plots import save_all

            for path in save_all(_figures(trained, seed=int(trained.params.get("random_state", 0))),
                                 folder / "plots"):
                mlflow.log_artifact(str(path), artifact_path="plots")
            mlflow.log_text(trained.metrics.to_csv(), "metrics_table.csv")
            mlflow.log_dict(trained.reference_profile, "reference_profile.json")
            files = _write_model_files(trained, folder / "model_files")
            # MLflow re-checks our exact pins against the running environment by scanning
            # every installed distribution (seconds per requirement); the pins are read
            # from this very environment, so the check can only pass: skip it.
            with _skip_requirement_check():
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=DelinqPyfunc(),
                    artifacts=files,
                    pip_requirements=_pip_requirements(),
                )
        champion = _current(client, registered_name, CHAMPION, tracking_uri)
        with contextlib.suppress(Exception):
            client.create_registered_model(registered_name)
        mv = client.create_model_version(registered_name, source=info.model_uri, run_id=run_id,
                                         model_id=info.model_id,
                                         tags={"model": trained.model,
                                               "feature_set_version": trained.feature_set_version})
        promoted, reason, cmp = _decide(trained, champion)
        if promoted:
            client.set_registered_model_alias(registered_name, CHAMPION, mv.version)
        else:
            client.set_registered_model_alias(registered_name, CHALLENGER, mv.version)
        card = model_card(
            model=trained.model, registered_name=registered_name, version=str(mv.version),
            feature_set_version=trained.feature_set_version, data_window=trained.data_window,
            n_rows=trained.n_rows, metrics=trained.metrics, params=trained.params,
            calibration=trained.calibrator.to_dict(), calibration_brier=trained.calibration_brier,
            feature_names=trained.feature_names, promoted=promoted, reason=reason,
        )
        client.log_text(run_id, card, "model_card.md")
        if cmp:
            for k, v in cmp.items():
                client.log_metric(run_id, f"promotion.{k.replace('@', '_at_')}", v)
        client.set_tag(run_id, "promotion", CHAMPION if promoted else CHALLENGER)
        client.update_model_version(registered_name, mv.version, description=reason)
    return RegistrationResult(
        version=str(mv.version),
        promoted=promoted,
        champion_version=str(mv.version) if promoted else (champion.version if champion else None),
        run_id=run_id,
        reason=reason,
        comparison=cmp,
    )


def _current(client: Any, name: str, alias: str, tracking_uri: str) -> LoadedModel | None:
    try:
        return load_model(tracking_uri=tracking_uri, registered_name=name, alias=alias)
    except NoChampionError:
        return None


def load_model(
    *, tracking_uri: str, registered_name: str, alias: str = CHAMPION
) -> LoadedModel:
    """The version of ``registered_name`` under ``alias``, ready to score.

    Raises :class:`NoChampionError` when the model or the alias does not exist.
    """
    with quiet_mlflow():
        client = _client(tracking_uri)
        try:
            mv = client.get_model_version_by_alias(registered_name, alias)
        except MlflowException as exc:
            what = "champion model" if alias == CHAMPION else f"model under alias '{alias}'"
            raise NoChampionError(
                f"no {what} for '{registered_name}': run `delinq train` first"
            ) from exc
        mlflow.set_tracking_uri(tracking_uri)
        # suppress_warnings: skips the slow environment re-check (and its chatter); the
        # model's own files are validated by loading them.
        pyfunc = mlflow.pyfunc.load_model(f"models:/{registered_name}/{mv.version}",
                                          suppress_warnings=True)
    state: LoadedModel = pyfunc.unwrap_python_model().state
    state.version = str(mv.version)
    state.registered_name = registered_name
    return state
