"""MLflow tracking and model registry: with :mod:`models.mlflow_store` (the shared
plumbing) and :mod:`models.registry_aliases` (demotion, rollback, live performance), the
only modules that import MLflow.

The registry serialises, logs, compares and sets aliases; it never trains. Each
:class:`~models.train.TrainingResult` is logged as a run (params, metrics of the model and
baselines, feature-set version, data window, plots, model card, reference profile) and
registered as a pyfunc (:class:`DelinqPyfunc`) that returns calibrated probabilities for a
feature frame. Aliases (MLflow 3, no stages): the new version becomes ``champion`` only if
it passes the quality gate (``models.gate``: enough evidence, not constant, beats the aging
rule) and then beats the current champion on the same test period
(``models.card.PROMOTION_RULE``): the champion scores the test rows the result holds,
nothing is re-trained or re-read. Otherwise the new version is ``challenger``. The gate's
verdict is recorded on the version (tags ``gate`` = ``passed`` | ``failed`` and
``gate.reason``). Scoring loads the champion with :func:`load_champion`, which refuses a
champion without a recorded gate pass (one promoted by an earlier release);
:func:`load_model` loads any alias.

The default store is embedded: ``sqlite:///<data_dir>/mlflow.db`` (chosen by the caller
from settings) with artifacts in ``<data_dir>/mlartifacts``. A server URL works too. Every
call names its store explicitly (``MlflowClient(tracking_uri=...)``): nothing here sets the
process-wide tracking URI or environment variables, so two stores can be used side by
side. Loading a registered pyfunc needs the ``delinq`` package installed (the Python model
class is referenced, not copied).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)

from features.pit.sampling import row_weights
from models.card import model_card
from models.gate import PASSED, TAG, TAG_REASON, GateOutcome, GatePolicy, judge_result
from models.mlflow_store import (
    CHALLENGER,
    CHAMPION,
    NoChampionError,
    UngatedChampionError,
    default_tracking_uri,
    quiet_mlflow,
    run_artifact_text,
)
from models.mlflow_store import client as _client
from models.mlflow_store import experiment_id as _experiment_id
from models.mlflow_store import has_code as _has_code
from models.mlflow_store import log_run_data as _log_run_data
from models.mlflow_store import never_created as _never_created
from models.mlflow_store import version_by_alias as _version_by_alias
from models.model import DelinqModel
from models.promotion import decide
from models.registry_aliases import (
    DEMOTED_TAG,
    LIVE_EXPERIMENT,
    demote,
    log_live_performance,
    record_champion,
    rollback,
)
from models.rule import ARTIFACT as RULE_ARTIFACT
from models.rule import RuleCalibration
from models.train import TrainingFailure, TrainingResult

__all__ = [
    "CHALLENGER", "CHAMPION", "EXPERIMENT", "LIVE_EXPERIMENT", "DelinqPyfunc", "NoChampionError",
    "RegistrationResult", "UngatedChampionError", "default_tracking_uri", "demote",
    "gate_reason", "last_trained", "load_champion", "load_model", "log_live_performance",
    "quiet_mlflow", "register", "register_result", "rollback",
]

EXPERIMENT = "delinq"
SHAP_ROWS = 2000

@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of registering one :class:`~models.train.TrainingResult`.

    ``champion_version``: the champion after this registration (this version if
    promoted). ``comparison``: the new version's and the old champion's primary metrics on
    the new test period (empty for a first version).
    """

    registered_name: str
    version: str
    promoted: bool
    champion_version: str | None
    run_id: str
    reason: str
    comparison: dict[str, float] = field(default_factory=dict)
    #: The quality gate's verdict on this version (``models.gate``).
    gate: GateOutcome | None = None


# ---------------------------------------------------------------------------- pyfunc


class DelinqPyfunc(mlflow.pyfunc.PythonModel):
    """Registered pyfunc: calibrated delinquency probability (1-D) for each row of a
    feature frame (:meth:`models.model.DelinqModel.risk`)."""

    def load_context(self, context: Any) -> None:
        # One artifact, the model's folder ("model"); versions registered before the
        # DelinqModel type had one artifact per file, all in the same folder.
        folder = context.artifacts.get("model") or str(Path(context.artifacts["meta"]).parent)
        self.model = DelinqModel.load(folder)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return self.model.risk(model_input)


def _pip_requirements() -> list[str]:
    pkgs = ("lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle")
    out = []
    for p in pkgs:
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{p}=={version(p)}")
    return out


def _log_pyfunc(client: MlflowClient, *, experiment_id: str, run_id: str, model: DelinqModel,
                folder: Path) -> tuple[str, str]:
    """Log ``model`` as an MLflow 3 logged model of the run; returns its artifact location
    and id.

    The same steps as ``mlflow.pyfunc.log_model``, through the client of the named store
    (``log_model`` resolves the process-wide tracking URI and active run instead). The
    location, not ``models:/<id>``, is what a version is registered from: MLflow resolves
    a ``models:/`` source with a client of the process-wide tracking URI.
    """
    logged = client.create_logged_model(experiment_id=experiment_id, name="model",
                                        source_run_id=run_id, tags={"model": model.kind})
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    try:
        files = folder / "files"
        model.save(files)
        local = folder / "pyfunc"
        mlflow.pyfunc.save_model(
            path=str(local),
            python_model=DelinqPyfunc(),
            artifacts={"model": str(files)},
            pip_requirements=_pip_requirements(),
            mlflow_model=Model(artifact_path=logged.artifact_location, run_id=run_id,
                               model_uuid=logged.model_id, model_id=logged.model_id),
        )
        client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    return logged.artifact_location, logged.model_id


# ---------------------------------------------------------------------------- plots


def _shap_values(model: DelinqModel, x: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP values (log-odds) of at most ``SHAP_ROWS`` rows, bias column dropped.

    LightGBM's own ``pred_contrib`` is used here rather than ``models.treeshap``: both are
    exact, and for a 2,000-row plot the project's explainer would spend far longer
    JIT-compiling its kernels in a fresh process than it saves (measured: tens of seconds
    vs well under a second). Scoring, which explains every account, uses the fast one.
    """
    sv = np.asarray(model.booster.predict(x, pred_contrib=True), dtype=float)
    return sv[:, : len(model.feature_names)]


def _figures(result: TrainingResult, seed: int) -> dict[str, Any]:
    from models import plots  # here: matplotlib (~0.4 s to import) only when registering

    test = result.test
    y = test["y"].to_numpy(dtype=float)
    scorers = {"lightgbm": result.test_scores}
    scorers |= {k: v for k, v in result.baseline_scores.items() if len(v.proba) == len(test)}
    w = row_weights(test)  # a sampled test period draws the full one's curves
    figs = {
        "roc": plots.roc_figure(y, scorers, weights=w),
        "calibration": plots.calibration_figure(y, scorers["lightgbm"].proba, weights=w),
        "capture_curve": plots.capture_figure(test["delinquent_amount"].to_numpy(float),
                                              scorers, weights=w),
    }
    sample = test.sample(n=min(SHAP_ROWS, len(test)), random_state=seed)
    x = result.model.matrix(sample)
    figs["shap_summary"] = plots.shap_summary_figure(_shap_values(result.model, x), x)
    return figs


# ---------------------------------------------------------------------------- logging


def _metric_key(scorer: str, metric: str) -> str:
    return f"{scorer}.{metric.replace('@', '_at_')}"


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if not _has_code(exc, RESOURCE_ALREADY_EXISTS):
            raise


def register_result(
    result: TrainingResult,
    *,
    tracking_uri: str,
    registered_name: str,
    experiment: str = EXPERIMENT,
    extra_params: Mapping[str, Any] | None = None,
    gate: GatePolicy | None = None,
) -> RegistrationResult:
    """Log ``result`` as an MLflow run, register its model as a new version of
    ``registered_name``, and set the alias by the gate and the promotion rule.

    The run holds params (``extra_params`` too), metrics (``<scorer>.<metric>`` for the
    model and every baseline, ``gate.<figure>`` for the gate), tags (model, feature-set
    version, gate verdict), plots, the metrics table, the model card and the pyfunc model
    (with the reference profile for drift). ``gate``: the gate's thresholds
    (``models.gate.GatePolicy``, its defaults when not given).
    """
    model = result.model
    verdict = judge_result(result, policy=gate)
    with quiet_mlflow():
        client = _client(tracking_uri)
        exp_id = _experiment_id(client, tracking_uri, experiment)
        params = {"model": model.kind, "feature_set_version": model.feature_set_version,
                  "calibration": model.calibrator.method,
                  "n_features": len(model.feature_names),
                  **{f"n_rows_{k}": v for k, v in result.n_rows.items()},
                  **{f"window_{k}": v for k, v in result.data_window.items()},
                  **result.params, **dict(extra_params or {})}
        metrics = {_metric_key(s, m): float(v) for s, row in result.metrics.iterrows()
                   for m, v in row.items() if np.isfinite(v)}
        metrics |= {f"calibration_brier.{k}": v for k, v in result.calibration_brier.items()}
        metrics |= {_metric_key("gate", k): float(v) for k, v in verdict.numbers.items()
                    if np.isfinite(v)}
        run = client.create_run(exp_id, run_name=model.kind, tags={
            "model": model.kind, "feature_set_version": model.feature_set_version,
            "mlflow.source.name": "delinq", **verdict.tags()})
        run_id = run.info.run_id
        try:
            _log_run_data(client, run_id, params, metrics)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                figures = _figures(result, seed=int(result.params.get("random_state", 0)))
                from models.plots import save_all

                for path in save_all(figures, folder / "plots"):
                    client.log_artifact(run_id, str(path), artifact_path="plots")
                client.log_text(run_id, result.metrics.to_csv(), METRICS_ARTIFACT)
                client.log_dict(run_id, model.reference_profile, "reference_profile.json")
                if result.rule_calibration is not None:
                    # what ranks this population if the gate fails (models.rule)
                    client.log_dict(run_id, result.rule_calibration.to_dict(), RULE_ARTIFACT)
                location, model_id = _log_pyfunc(client, experiment_id=exp_id, run_id=run_id,
                                                  model=model, folder=folder)
            champion, replaced = _gated_champion(registered_name, tracking_uri)
            _ensure_registered_model(client, registered_name)
            mv = client.create_model_version(
                registered_name, source=location, run_id=run_id, model_id=model_id,
                tags={"model": model.kind, "feature_set_version": model.feature_set_version,
                      **verdict.tags()})
            promoted, reason, cmp = decide(result, champion, verdict, replaced)
            client.set_registered_model_alias(registered_name,
                                              CHAMPION if promoted else CHALLENGER, mv.version)
            if promoted:  # what a rollback restores (models.registry_aliases)
                record_champion(client, registered_name, str(mv.version))
            card = model_card(
                model=model.kind, registered_name=registered_name, version=str(mv.version),
                feature_set_version=model.feature_set_version, data_window=result.data_window,
                n_rows=result.n_rows, metrics=result.metrics, params=result.params,
                calibration=model.calibrator.to_dict(),
                calibration_brier=result.calibration_brier,
                feature_names=model.feature_names, promoted=promoted, reason=reason,
            )
            client.log_text(run_id, card, "model_card.md")
            _log_run_data(client, run_id, {}, {
                f"promotion.{k.replace('@', '_at_')}": v for k, v in cmp.items()})
            client.set_tag(run_id, "promotion", CHAMPION if promoted else CHALLENGER)
            client.update_model_version(registered_name, mv.version, description=reason)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
    return RegistrationResult(
        registered_name=registered_name,
        version=str(mv.version),
        promoted=promoted,
        champion_version=str(mv.version) if promoted else (champion.version if champion else None),
        run_id=run_id,
        reason=reason,
        comparison=cmp,
        gate=verdict,
    )


def register(
    results: Mapping[str, TrainingResult | TrainingFailure],
    *,
    tracking_uri: str,
    names: Mapping[str, str],
    experiment: str = EXPERIMENT,
    extra_params: Mapping[str, Any] | None = None,
    gate: GatePolicy | None = None,
) -> dict[str, RegistrationResult]:
    """Register every trained result (:func:`register_result`) under ``names[kind]``;
    failures (:class:`~models.train.TrainingFailure`) are skipped. ``{kind: outcome}``."""
    return {
        kind: register_result(result, tracking_uri=tracking_uri, registered_name=names[kind],
                              experiment=experiment, extra_params=extra_params, gate=gate)
        for kind, result in results.items()
        if isinstance(result, TrainingResult)
    }


# ---------------------------------------------------------------------------- loading


def _gated_champion(name: str, tracking_uri: str) -> tuple[DelinqModel | None, str]:
    """The champion a new version must beat, or ``None`` and why there is none to beat
    (``""``: no champion at all; otherwise the champion has no recorded gate pass)."""
    try:
        return load_champion(name, tracking_uri=tracking_uri), ""
    except UngatedChampionError as exc:
        return None, f"the champion is not compared ({exc})"
    except NoChampionError:
        return None, ""


def load_model(
    registered_name: str, *, tracking_uri: str, alias: str = CHAMPION,
    require_gate: bool = False,
) -> DelinqModel:
    """The version of ``registered_name`` under ``alias``, ready to score (its ``version``
    set). Raises :class:`NoChampionError` when the model or the alias does not exist, and
    (with ``require_gate``) :class:`UngatedChampionError` when the version has no recorded
    gate pass (tag ``gate`` = ``passed``)."""
    with quiet_mlflow():
        client = None if _never_created(tracking_uri) else _client(tracking_uri)
        mv = None if client is None else _version_by_alias(client, registered_name, alias)
        if mv is None:
            what = "champion model" if alias == CHAMPION else f"model under alias '{alias}'"
            raise NoChampionError(
                f"no {what} for '{registered_name}': run `delinq train` first")
        if require_gate and (mv.tags or {}).get(TAG) != PASSED:
            raise UngatedChampionError(
                f"{alias} v{mv.version} of '{registered_name}' has no recorded quality-gate "
                "pass (promoted by an earlier release): not used for scoring; run `delinq "
                "train` to train and gate a new version"
            )
        # The version's storage location, from this store's client: a "models:/" URI would
        # be resolved against the process-wide registry URI.
        location = client.get_model_version_download_uri(registered_name, mv.version)
        model = _load_pyfunc(location, tracking_uri=tracking_uri)
    return replace(model, version=str(mv.version))


def _load_pyfunc(location: str, *, tracking_uri: str) -> DelinqModel:
    """The model of the pyfunc stored at ``location`` (the files are read into memory)."""
    # suppress_warnings: skips the slow environment re-check (and its chatter); the model's
    # own files are validated by loading them.
    if urlparse(location).scheme in ("", "file"):
        # An embedded store's artifacts are local files: read in place, nothing copied.
        pyfunc = mlflow.pyfunc.load_model(location, suppress_warnings=True)
        return pyfunc.unwrap_python_model().model
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(artifact_uri=location, dst_path=tmp,
                                   tracking_uri=tracking_uri, registry_uri=tracking_uri)
        pyfunc = mlflow.pyfunc.load_model(local, suppress_warnings=True)
        return pyfunc.unwrap_python_model().model


def gate_reason(registered_name: str, *, tracking_uri: str,
                alias: str = CHALLENGER) -> str | None:
    """The recorded gate line (tag ``gate.reason``) of the version under ``alias``, or
    ``None`` when there is no such version or it has no verdict."""
    if _never_created(tracking_uri):
        return None
    with quiet_mlflow():
        mv = _version_by_alias(_client(tracking_uri), registered_name, alias)
    return None if mv is None else (mv.tags or {}).get(TAG_REASON)


def last_trained(registered_name: str, *, tracking_uri: str) -> dict[str, Any] | None:
    """The newest registered version of ``registered_name`` (any alias, gate passed or
    not): ``{"version", "gate_reason", "rule_calibration", "demoted"}`` (the aging rule's
    calibration on that training's validation period, a :class:`~models.rule.RuleCalibration`
    or None when it was too thin; ``demoted``: why live performance demoted the challenger
    from champion, or None), or None when nothing was ever registered under the name."""
    if _never_created(tracking_uri):
        return None
    with quiet_mlflow():
        client = _client(tracking_uri)
        try:
            versions = client.search_model_versions(f"name = '{registered_name}'")
        except MlflowException as exc:
            if not _has_code(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE):
                raise
            return None
        if not versions:
            return None
        mv = max(versions, key=lambda v: int(v.version))
        calibration = None
        try:
            data = json.loads(run_artifact_text(client, mv.run_id, RULE_ARTIFACT,
                                                tracking_uri=tracking_uri))
            calibration = RuleCalibration.from_dict(data)
        except (MlflowException, OSError, KeyError, ValueError):
            calibration = None  # too thin at training, or trained before the artifact
    return {"version": str(mv.version), "gate_reason": (mv.tags or {}).get(TAG_REASON),
            "rule_calibration": calibration, "demoted": _demoted(client, registered_name)}


#: The artifact of a training run holding the test-period metrics of the model and every
#: baseline (one row per scorer, one column per metric).
METRICS_ARTIFACT = "metrics_table.csv"


def version_metrics(registered_name: str, version: str, *,
                    tracking_uri: str) -> dict[str, dict[str, float]]:
    """The test-period metrics recorded when ``version`` of ``registered_name`` was
    trained: scorer (the model first, then the baselines) -> metric -> value, as in the
    training report; empty when the version, its run or its table is not found."""
    import io

    with quiet_mlflow():
        client = _client(tracking_uri)
        try:
            mv = client.get_model_version(registered_name, str(version))
            text = run_artifact_text(client, mv.run_id, METRICS_ARTIFACT,
                                     tracking_uri=tracking_uri)
        except (MlflowException, OSError):
            return {}
    table = pd.read_csv(io.StringIO(text), index_col=0)
    return {str(scorer): {str(k): float(v) for k, v in row.items() if np.isfinite(v)}
            for scorer, row in table.iterrows()}


def _demoted(client: MlflowClient, registered_name: str) -> str | None:
    """Why the challenger was demoted from champion by live performance, if it was
    (``models.registry_aliases.demote`` moves the champion to ``challenger``)."""
    mv = _version_by_alias(client, registered_name, CHALLENGER)
    return None if mv is None else (mv.tags or {}).get(DEMOTED_TAG)


def load_champion(registered_name: str, *, tracking_uri: str) -> DelinqModel:
    """The ``champion`` version of ``registered_name`` (:func:`load_model`), provided it
    passed the quality gate (else :class:`UngatedChampionError`, a
    :class:`NoChampionError`)."""
    return load_model(registered_name, tracking_uri=tracking_uri, alias=CHAMPION,
                      require_gate=True)

