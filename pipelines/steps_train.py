"""The training steps of :mod:`pipelines.steps`: build the training set of the staged book,
train both models and register them (champion only past the gate)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.contract.io import return_freed_memory
from pipelines.progress import heartbeat, progress
from pipelines.settings import Settings
from pipelines.steps_base import (
    gate_policy,
    label_params,
    materiality,
    model_names,
    sampling_params,
    train_config,
    training_set_path,
)
from pipelines.steps_events import model_features, with_store_events
from pipelines.steps_ingest import read_book
from pipelines.summaries import ModelSummary, TrainingSetSummary, TrainSummary

if TYPE_CHECKING:
    import pandas as pd

    from features.contract.book import Book
    from models.stages import StageBudget


def _training_book(settings: Settings, book_path: Path, data_end: date | None = None) -> Book:
    """The staged book as a training set reads it: with the store's events recorded before
    ``data_end`` (:func:`with_store_events`), only the columns it reads
    (``features.pit.training_set.training_view``), and this process's hand-over of the
    staged Book released (``read_book(release=True)``), so the returned view holds the
    only reference: the full Book is freed here and the view once the caller drops it
    (the training set built, the later stages of the retrain hold neither). Memory the
    Arrow pool keeps for reuse is returned to the system (at 100k accounts ~0.6 GB left
    by reading and validating the book)."""
    from features.pit.training_set import training_view

    view = training_view(with_store_events(settings, read_book(book_path, release=True),
                                           as_of=data_end))
    return_freed_memory()
    return view


def _training_frame(settings: Settings, book_path: Path, data_end: date | None = None,
                    budget: StageBudget | None = None) -> tuple[pd.DataFrame, int]:
    """The stacked training set of the staged book over the settings' grid and horizons
    (sampled as the ``train.sample_*`` settings say), and the number of ``as_of`` dates;
    with ``data_end``, only what was known before that day (grid and outcomes)."""
    from features import build_training_set as build
    from features.pit.training_set import as_of_grid

    with (budget.stage("read") if budget is not None else nullcontext()):
        book = _training_book(settings, book_path, data_end)
    dates = as_of_grid(book, freq=settings.grid.value, end=data_end)
    with heartbeat("building the training set"):
        frame = build(book, as_of_dates=dates, delinquency_dpd=settings.delinquency_dpd,
                      persistence_days=settings.persistence_days,
                      materiality=materiality(settings),
                      sampling=train_config(settings).sampling(), data_end=data_end,
                      stages=None if budget is None else budget.stage,
                      grace_days=settings.promise_grace_days)
    del book  # the last reference (:func:`_training_book`): the later stages never hold it
    return_freed_memory()
    return frame, len(dates)


def _summarise_training_set(settings: Settings, frame: pd.DataFrame, *, path: Path | None,
                            as_of_dates: int, seconds: float) -> TrainingSetSummary:
    """Counts of a training set (or of its ``model``, ``y``, ``censored`` and ``weight``
    columns): weighted when sampled, so they are the full grid's."""
    import numpy as np

    from features.pit.sampling import WEIGHT

    weight = (frame[WEIGHT].to_numpy(dtype=float) if WEIGHT in frame.columns
              else np.ones(len(frame)))
    resolved = ~frame["censored"].astype(bool).to_numpy()
    y = frame["y"].to_numpy(dtype=float)
    model = frame["model"].astype(str).to_numpy()
    kinds = sorted(set(model[resolved]))
    return TrainingSetSummary(
        path=path, rows=int(round(weight.sum())), as_of_dates=as_of_dates,
        resolved={m: int(round(weight[resolved & (model == m)].sum())) for m in kinds},
        positives={m: int(round(weight[resolved & (model == m) & (y == 1)].sum()))
                   for m in kinds},
        seconds=seconds, kept_rows=int(len(frame)) if WEIGHT in frame.columns else None,
        **label_params(settings),
    )


def read_training_set(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A training set written by :func:`build_training_set` (``columns``: only those), with
    the spec's dtypes:
    Parquet keeps timestamps in milliseconds, the feature frame's ``as_of`` is in seconds
    (``features.spec.FEATURE_DTYPES``), so dates are cast back here, once, at the boundary."""
    import pandas as pd

    frame = pd.read_parquet(path, columns=columns)
    dates = [c for c in ("as_of", "label_resolved_date") if c in frame.columns]
    return frame.astype({c: "datetime64[s]" for c in dates})


#: The columns :func:`_summarise_training_set` counts (the weight last).
_COUNT_COLUMNS = ["model", "y", "censored", "weight"]


def build_training_set(*, settings: Settings, book: Path) -> TrainingSetSummary:
    """Build the training set of the staged book ``book`` over the settings' ``grid`` of
    ``as_of`` dates with its label horizons, sampled as the ``train.sample_*`` settings say
    (labels of every row first, features only for the kept rows); stream it, date by date,
    to :func:`training_set_path`."""
    from features.pit.training_set import as_of_grid, write_training_set

    progress(f"building the training set ({settings.grid.value} as_of grid)")
    t0 = time.perf_counter()
    out = training_set_path(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = _training_book(settings, book)
    dates = as_of_grid(staged, freq=settings.grid.value)
    with heartbeat("building the training set"):
        stats = write_training_set(
            staged, out, as_of_dates=dates, delinquency_dpd=settings.delinquency_dpd,
            persistence_days=settings.persistence_days, materiality=materiality(settings),
            sampling=train_config(settings).sampling(),
            grace_days=settings.promise_grace_days)
    del staged
    return_freed_memory()
    counts = read_training_set(out, columns=_COUNT_COLUMNS if stats.rates else
                               _COUNT_COLUMNS[:-1])
    summary = _summarise_training_set(settings, counts, path=out, as_of_dates=len(dates),
                                      seconds=time.perf_counter() - t0)
    progress(f"  {summary.rows:,} rows over {len(dates)} as_of dates"
             + (f", {summary.kept_rows:,} kept (sampled)"
                if summary.kept_rows not in (None, summary.rows) else "")
             + f" ({summary.seconds:.1f} s)")
    return summary


def record_offline_tests(*, results: Mapping[str, Any], runs: Mapping[str, str],
                         tracking_uri: str) -> dict[str, int]:
    """At training time, each trained model's offline test rows
    (``models.live_verdict.offline_test_rows``: what the live check compares a run's
    random holdout with), stored on its training run (``runs``: kind -> MLflow run id;
    ``models.registry_offline.log_offline_test``), so the nightly never rebuilds the
    training set for it. Returns kind -> rows stored."""
    from models.live_verdict import offline_test_rows
    from models.registry_offline import log_offline_test
    from models.train import TrainingResult

    out = {}
    for kind, result in results.items():
        if not isinstance(result, TrainingResult) or kind not in runs:
            continue
        rows = offline_test_rows(result)
        log_offline_test(tracking_uri=tracking_uri, run_id=runs[kind], rows=rows)
        out[kind] = len(rows)
    return out


def record_period_spreads(*, frame: pd.DataFrame, results: Mapping[str, Any], config: Any,
                          runs: Mapping[str, str], tracking_uri: str) -> dict[str, Any]:
    """At training time, each trained model's period spread (``models.live_period``, the
    live check's rule 4 in ``models.live_agreement``) from the training set ``frame`` it
    was trained on, stored on its training run (``runs``: kind -> MLflow run id;
    ``models.registry_aliases.log_period_spread``). Returns kind -> the stored dict."""
    from models.live_period import period_spread
    from models.registry_aliases import log_period_spread
    from models.train import TrainingResult

    out = {}
    for kind, result in results.items():
        if not isinstance(result, TrainingResult) or kind not in runs:
            continue
        spread = period_spread(frame, result, config=config).to_dict()
        log_period_spread(tracking_uri=tracking_uri, run_id=runs[kind], spread=spread)
        lags = ", ".join(f"{v:.3f}" for v in spread["sigma_by_lag"]) or "none (too few windows)"
        progress(f"  {kind}: period spread over {len(spread['windows'])} window(s) of "
                 f"{spread['window_weeks']} weeks, sigma by lag {lags}")
        out[kind] = spread
    return out


def _train_and_register(
    frame: pd.DataFrame, settings: Settings, budget: StageBudget | None = None
) -> tuple[tuple[ModelSummary, ...], str]:
    """Train both models on ``frame``, register them, promote by the gate and the
    registry's rule (:func:`gate_policy`).

    The one place that calls the model library's training and registry API; returns the
    outcome as :class:`ModelSummary` rows (which do not depend on that API) and the printed
    report (``models.report``).
    """
    from features.spec import check_feature_frame
    from models.gate import judge_all
    from models.registry import register
    from models.report import format_report, training_summary
    from models.stages import StageBudget
    from models.train import train_models

    budget = budget or StageBudget()
    check_feature_frame(frame)  # the spec's dtypes, also after a Parquet round trip
    names, loop_lines = model_features(frame, config=train_config(settings))
    results = train_models(frame, config=train_config(settings), feature_names=names,
                           stages=budget.stage)
    with budget.stage("gate"):  # the verdicts are kept: register reads them (models.gate)
        judge_all(results, policy=gate_policy(settings))
    with budget.stage("mlflow"):
        registrations = register(results, tracking_uri=settings.resolved_tracking_uri,
                                 names=model_names(settings),
                                 extra_params={**label_params(settings),
                                               **sampling_params(settings)},
                                 gate=gate_policy(settings))
    with budget.stage("period_spread"):  # the live check's, fixed now (models.live_agreement)
        record_period_spreads(frame=frame, results=results, config=train_config(settings),
                              runs={k: r.run_id for k, r in registrations.items()},
                              tracking_uri=settings.resolved_tracking_uri)
    with budget.stage("offline_rows"):  # what the live check compares a holdout with
        record_offline_tests(results=results, runs={k: r.run_id for k, r in registrations.items()},
                             tracking_uri=settings.resolved_tracking_uri)
    outcome = training_summary(results, registrations)
    models = tuple(
        ModelSummary(
            model=model,
            registered_name=str(info.get("registered_name", model_names(settings)[model])),
            version=None if info.get("version") is None else str(info["version"]),
            promoted=bool(info.get("promoted")),
            champion_version=(None if info.get("champion_version") is None
                              else str(info["champion_version"])),
            reason=str(info.get("reason", "")),
            run_id=info.get("run_id"),
            metrics=dict(info.get("metrics", {})),
            metrics_table={str(k): dict(v) for k, v in info.get("metrics_table", {}).items()},
            data_window=dict(info.get("data_window", {})),
            n_rows=dict(info.get("n_rows", {})),
            error=None if "error" not in info else str(info["error"]),
        )
        for model, info in outcome.items()
    )
    return models, "\n".join([format_report(outcome), *loop_lines])


def train(*, settings: Settings, book: Path | None = None,
          training_set: Path | None = None, data_end: date | None = None,
          budget: StageBudget | None = None) -> TrainSummary:
    """Train both models, compare them with the baselines on the test period, register
    them; each becomes champion only if better than the current one.

    Fit on ``training_set`` (the Parquet file of :func:`build_training_set`) when given,
    else on the training set of the staged book ``book``, built with the settings' grid and
    label horizons; ``data_end`` (e.g. a run's scoring date inside the book) keeps that
    training set to what was known strictly before it: no outcome seen after it. The
    settings' ``train`` options and seed configure LightGBM and the time split.
    ``budget`` (``models.stages.StageBudget``; the caller's when it timed earlier stages,
    e.g. validation) times every stage; the table is printed and logged on the runs.
    """
    from models.stages import StageBudget, report_stages

    if training_set is None and book is None:
        raise ValueError("train needs a staged book or a training set")
    progress("training and registering the two models (LightGBM, calibrated)")
    t0 = time.perf_counter()
    budget = budget or StageBudget()
    with budget:
        if training_set is not None:
            with budget.stage("read"):
                frame = read_training_set(training_set)
            n_dates = int(frame["as_of"].nunique())
        else:
            frame, n_dates = _training_frame(settings, Path(book),  # type: ignore[arg-type]
                                             data_end, budget)
        built = _summarise_training_set(settings, frame, path=training_set,
                                        as_of_dates=n_dates, seconds=time.perf_counter() - t0)
        with heartbeat("training"):
            models, report = _train_and_register(frame, settings, budget)
    stage_lines: list[str] = []

    def emit(line: str) -> None:  # logged as progress and kept for the printed report
        progress(line)
        stage_lines.append(line)

    report_stages(budget, tracking_uri=settings.resolved_tracking_uri,
                  run_ids={m.model: m.run_id for m in models}, emit=emit)
    report = "\n".join([report, *stage_lines])
    seconds = time.perf_counter() - t0
    summary = TrainSummary(models=models, training_set=built, report=report, seconds=seconds,
                           stages=budget.as_dict())
    promoted = summary.promoted
    progress(f"  trained in {seconds:.1f} s; promoted to champion: "
             f"{', '.join(promoted) if promoted else 'none (the report says why per model)'}")
    return summary


def has_champions(*, settings: Settings) -> bool:
    """Whether both models are trained: each has a gated champion, or a trained version
    that failed the gate (the aging rule ranks its population; retraining every night
    would not change the verdict: the weekly retraining does that). False when a model was
    never trained."""
    from models.registry import NoChampionError, last_trained, load_champion

    for name in model_names(settings).values():
        try:
            load_champion(name, tracking_uri=settings.resolved_tracking_uri)
        except NoChampionError:
            if last_trained(name, tracking_uri=settings.resolved_tracking_uri) is None:
                return False
    return True
