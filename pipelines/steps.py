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
"""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.progress import heartbeat, progress
from pipelines.run_checks import check_run, plausibility
from pipelines.settings import Settings
from pipelines.steps_events import model_features, with_store_events
from pipelines.summaries import (
    GenerateSummary,
    IngestSummary,
    ModelSummary,
    ScoreSummary,
    TrainingSetSummary,
    TrainSummary,
    ValidationSummary,
)
from serving.store_io import display_url

if TYPE_CHECKING:
    import pandas as pd

    from features.contract.book import Book
    from features.pit.snapshot import Snapshot
    from features.spec import Materiality
    from models.gate import GatePolicy
    from models.stages import StageBudget
    from models.train import TrainConfig
    from serving.actions import ActionPolicy

#: Rows of the worklist's top kept in a score summary (for artifacts and reports).
TOP_ROWS = 10


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
    :func:`label_params`): the budget, explicit rates and seed; ``sample_max_rows`` 0 when
    it never is."""
    cfg = train_config(settings)
    return {"sample_max_rows": cfg.sample_max_rows or 0,
            "sample_positive_rate": cfg.sample_positive_rate,
            "sample_negative_rate": cfg.sample_negative_rate,
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


# --------------------------------------------------------------------------- book I/O


def read_book(path: Path) -> Book:
    """The Book staged by :func:`ingest` (already validated: typed, not re-checked)."""
    from features.contract.book import Book
    from features.contract.io import read_folder

    tables = {t: frame for t, (_, frame) in read_folder(path).items()}
    return Book.from_frames(**tables)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` in as ``target``: a crash leaves either the old or the new folder."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- steps


def generate(*, settings: Settings, out: Path, accounts: int, start: date | str = "2023-01-01",
             end: date | str = "2024-12-31", error_rate: float = 0.0,
             fmt: str = "parquet", independent_lateness: bool = False,
             loop: bool = False) -> GenerateSummary:
    """Write a synthetic book of ``accounts`` accounts (issue dates from ``start``, events
    until ``end``) to the folder ``out``, seeded by ``settings.seed``
    (``independent_lateness``, ``loop``: see ``features.synthetic.generate_book``)."""
    from features.synthetic import write_book_folder

    progress(f"generating a synthetic book: {accounts:,} accounts, {start} to {end}")
    t0 = time.perf_counter()
    written = write_book_folder(accounts, out, seed=settings.seed, start=start, end=end,
                                error_rate=error_rate, fmt=fmt,
                                independent_lateness=independent_lateness, loop=loop)
    rows = {k: int(v) for k, v in written.get("rows", {}).items()}
    seconds = time.perf_counter() - t0
    progress(f"  {rows.get('invoices', 0):,} invoices written to {out} ({seconds:.1f} s)")
    return GenerateSummary(out=Path(out), rows=rows, injected=written.get("injected", {}),
                           seconds=float(written.get("seconds", seconds)))


def _validate(settings: Settings, source: Path, quarantine: Path | None,
              accept_anomalies: bool = False) -> tuple[Any, dict]:
    from features.contract.validation import validate_folder

    progress(f"validating {source}")
    t0 = time.perf_counter()
    qdir = Path(quarantine) if quarantine is not None else quarantine_dir(settings, source)
    result = validate_folder(source, max_bad_share=settings.max_bad_share, quarantine_dir=qdir,
                             plausibility=plausibility(settings),
                             accept_anomalies=accept_anomalies)
    book = result.book
    tables = tuple(
        {k: (str(v) if k == "table" else int(v)) for k, v in rec.items()}
        for rec in result.summary.to_dict("records")
    )
    facts = {
        "source": Path(source),
        "quarantine": qdir,
        "tables": tables,
        "report": result.render(),
        "quarantined": sum(r["quarantined"] for r in tables),
        "accounts": int(book.accounts.shape[0]),
        "invoices": int(len(book.invoices)),
        "first_date": book.first_date.date(),
        "last_date": book.last_date.date(),
        "seconds": time.perf_counter() - t0,
    }
    return book, facts


def validate(*, settings: Settings, source: Path, quarantine: Path | None = None,
             accept_anomalies: bool = False) -> ValidationSummary:
    """Validate the data folder ``source``: bad rows to ``quarantine`` (default
    :func:`quarantine_dir`), nothing staged. ``DataContractError`` if it cannot be used
    (an anomaly too, unless ``accept_anomalies``)."""
    _, facts = _validate(settings, source, quarantine, accept_anomalies)
    return ValidationSummary(**facts)


def ingest(*, settings: Settings, source: Path,
           accept_anomalies: bool = False) -> IngestSummary:
    """Validate the data folder ``source`` (bad rows to :func:`quarantine_dir`) and stage
    the kept rows as Parquet at :func:`staging_dir` for the later steps. A plausibility
    anomaly stops here (nothing staged) unless ``accept_anomalies``."""
    from features.contract.io import write_book

    t0 = time.perf_counter()
    book, facts = _validate(settings, source, None, accept_anomalies)
    target = staging_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_book(book, tmp)
    _replace_dir(tmp, target)
    facts["seconds"] = time.perf_counter() - t0
    progress(
        f"  kept {facts['invoices']:,} invoices of {facts['accounts']:,} accounts, "
        f"quarantined {facts['quarantined']:,} rows ({facts['seconds']:.1f} s)"
    )
    return IngestSummary(**facts, staged=target)


def _training_frame(settings: Settings, book_path: Path, data_end: date | None = None,
                    budget: StageBudget | None = None) -> tuple[pd.DataFrame, int]:
    """The stacked training set of the staged book over the settings' grid and horizons
    (sampled as the ``train.sample_*`` settings say), and the number of ``as_of`` dates;
    with ``data_end``, only what was known before that day (grid and outcomes)."""
    from features import build_training_set as build
    from features.pit.training_set import as_of_grid

    book = with_store_events(settings, read_book(book_path), as_of=data_end)
    dates = as_of_grid(book, freq=settings.grid.value, end=data_end)
    with heartbeat("building the training set"):
        frame = build(book, as_of_dates=dates, delinquency_dpd=settings.delinquency_dpd,
                      persistence_days=settings.persistence_days,
                      materiality=materiality(settings),
                      sampling=train_config(settings).sampling(), data_end=data_end,
                      stages=None if budget is None else budget.stage,
                      grace_days=settings.promise_grace_days)
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
    staged = with_store_events(settings, read_book(book))
    dates = as_of_grid(staged, freq=settings.grid.value)
    with heartbeat("building the training set"):
        stats = write_training_set(
            staged, out, as_of_dates=dates, delinquency_dpd=settings.delinquency_dpd,
            persistence_days=settings.persistence_days, materiality=materiality(settings),
            sampling=train_config(settings).sampling(),
            grace_days=settings.promise_grace_days)
    del staged
    counts = read_training_set(out, columns=_COUNT_COLUMNS if stats.rates else
                               _COUNT_COLUMNS[:-1])
    summary = _summarise_training_set(settings, counts, path=out, as_of_dates=len(dates),
                                      seconds=time.perf_counter() - t0)
    progress(f"  {summary.rows:,} rows over {len(dates)} as_of dates"
             + (f", {summary.kept_rows:,} kept (sampled)"
                if summary.kept_rows not in (None, summary.rows) else "")
             + f" ({summary.seconds:.1f} s)")
    return summary



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
    report_stages(budget, tracking_uri=settings.resolved_tracking_uri,
                  run_ids={m.model: m.run_id for m in models}, emit=progress)
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


def reap_stale_runs(*, settings: Settings) -> list[str]:
    """Mark failed the running runs whose process died (no heartbeat for
    ``settings.run_stale_after_min``) and remove their files; return their ids."""
    from serving.store import WorklistStore

    with WorklistStore(settings.resolved_store_url, export_dir=export_dir(settings),
                       upgrade=True,
                       stale_after=timedelta(minutes=settings.run_stale_after_min)) as store:
        reaped = store.reap_stale()
    for run_id in reaped:
        progress(f"  run {run_id} had stopped (its process died): marked failed, files removed")
    return reaped


def check_disk(*, settings: Settings) -> int:
    """Raise :class:`~pipelines.errors.NotEnoughDiskError` (one line) when the disk under
    ``settings.data_dir`` has less free space than a run needs: ``min_free_disk_mb``, or
    twice the last published run's explanation file if larger (the file and its export
    link, plus the database's growth). Returns the free space in MB."""
    from pipelines.errors import NotEnoughDiskError
    from serving.store import StoreMissingError, WorklistStore

    folder = Path(settings.data_dir).resolve()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    free_mb = shutil.disk_usage(existing).free // 2**20
    need_mb = settings.min_free_disk_mb
    try:
        with WorklistStore(settings.resolved_store_url, read_only=True) as store:
            last = store.current_run()
            if last is not None and last.explanations_path:
                size = Path(last.explanations_path).stat().st_size
                need_mb = max(need_mb, 2 * size // 2**20)
    except (StoreMissingError, FileNotFoundError):
        pass  # no run yet: the setting alone
    if free_mb < need_mb:
        raise NotEnoughDiskError(
            f"not enough free disk under {folder}: {free_mb:,} MB free, a run needs about "
            f"{need_mb:,} MB; the run did not start (free space, or lower the retention "
            "settings and run `delinq runs prune`)")
    return int(free_mb)


def prune(*, settings: Settings, today: date) -> dict[str, list[str]]:
    """Apply the settings' retention policy as of ``today`` (explanation files of the
    newest ``retain_explanations_runs`` published runs kept; runs older than
    ``resolved_retain_scores_days`` and exports older than ``retain_exports_days``
    deleted); returns what went."""
    from serving.store import WorklistStore

    with WorklistStore(settings.resolved_store_url, export_dir=export_dir(settings),
                       upgrade=True,
                       stale_after=timedelta(minutes=settings.run_stale_after_min)) as store:
        gone = store.prune(today=today, keep_explanations=settings.retain_explanations_runs,
                           keep_scores_days=settings.resolved_retain_scores_days,
                           keep_exports_days=settings.retain_exports_days,
                           keep_kpis_days=settings.resolved_retain_kpis_days)
    progress(f"  retention: {len(gone['explanations'])} explanation files, "
             f"{len(gone['runs'])} old runs, {len(gone['scores'])} runs' scores (KPIs kept), "
             f"{len(gone['exports'])} export folders removed")
    return gone


def run_kpis(*, settings: Settings, book: Book, as_of: date,
             snapshot: Snapshot | None = None) -> dict[str, Any]:
    """The run's receivables KPIs (:func:`features.pit.kpis.compute_kpis`, JSON-ready), the
    amount collected counted on the worklist of the latest published run before
    ``as_of``; ``seconds``: the time they took. ``snapshot``: ``book`` already prepared
    (the scoring's, :mod:`features.pit.snapshot`), not encoded again."""
    from features.pit.kpis import compute_kpis
    from serving.store import WorklistStore

    t0 = time.perf_counter()
    previous = None
    with WorklistStore(settings.resolved_store_url, upgrade=True) as store:
        runs = store.list_runs()
        runs = runs[runs["is_current"] & (runs["as_of"] < as_of)]
        if not runs.empty:
            prev_as_of = max(runs["as_of"])
            ids = store.read_worklist(as_of=prev_as_of)["account_id"]
            previous = (prev_as_of, ids.astype("str").tolist())
    kpis = compute_kpis(book, as_of=as_of, previous=previous,
                        prepared=None if snapshot is None else snapshot.prepared).as_dict()
    return {**kpis, "seconds": round(time.perf_counter() - t0, 3)}


def score(*, settings: Settings, book: Path, as_of: date,
          why: dict[str, str] | None = None,
          accept_anomalies: bool = False) -> ScoreSummary:
    """Score every account of the staged book ``book`` with open receivables as of
    ``as_of`` (events strictly before it) with the champion models, and a population
    without a gated champion with the aging rule (``why``: model -> why it has none, when
    the caller knows, e.g. training stopped); write the worklist run to the store and its
    Parquet export, with the receivables KPIs (:func:`run_kpis`) in the run's
    ``meta["kpis"]``. The summary's ``rule_lines`` say which populations the rule ranked.
    The run checks (:func:`check_run`) come first: a failed one stops before anything is
    written, unless ``accept_anomalies`` (then the run's meta records it)."""
    from features.pit.snapshot import snapshot
    from models.live import staleness_lines
    from pipelines.artifacts import drift_flags, worklist_table
    from pipelines.steps_live import watch_run
    from serving.score import run_scoring
    from serving.store import WorklistStore
    from serving.worklist import kpi_line

    if not isinstance(as_of, date):
        raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
    progress(f"scoring as of {as_of.isoformat()} (exact TreeSHAP reasons for every account)")
    t0 = time.perf_counter()
    reap_stale_runs(settings=settings)
    staged = read_book(book)
    # The book is encoded and its features built once, here; the run checks, the KPIs and
    # the scoring all read this one snapshot (each used to rebuild them).
    with heartbeat("features"):
        shared = snapshot(staged, as_of=as_of, materiality=materiality(settings))
    run_meta = check_run(settings=settings, book=staged, as_of=as_of,
                         accept_anomalies=accept_anomalies, materiality=materiality(settings),
                         snapshot=shared)
    with heartbeat("scoring"):
        kpis = run_kpis(settings=settings, book=staged, as_of=as_of, snapshot=shared)
        record = run_scoring(
            staged, as_of=as_of, tracking_uri=settings.resolved_tracking_uri,
            store_url=settings.resolved_store_url, export_dir=export_dir(settings),
            model_names=model_names(settings), table_budget_mb=settings.shap_table_budget_mb,
            policy=action_policy(settings), materiality=materiality(settings),
            why=why, delinquency_dpd=settings.delinquency_dpd,
            persistence_days=settings.persistence_days,
            extra_meta={**run_meta, "kpis": kpis}, snapshot=shared,
            holdout_share=settings.live_holdout_share, grace_days=settings.promise_grace_days,
        )
    del shared
    with WorklistStore(settings.resolved_store_url) as store:
        top = store.read_worklist(as_of=as_of, top=TOP_ROWS)
        drift = store.read_drift(record.run_id)
    seconds = time.perf_counter() - t0
    # a champion whose training data is old is said first (issue 19, staleness)
    stale = staleness_lines(as_of, record.meta.get("champion_data_end") or {},
                            max_age_days=settings.stale_model_days)
    drift_lines = drift_flags(drift)
    # issue 19: shadow challengers scored beside the run, drift alerts that persist
    watch = watch_run(settings=settings, book=staged, as_of=as_of, run_id=record.run_id)
    flags = [*stale, *watch, *drift_lines]
    # said by the run's message (printed by the CLI) and the flows' summaries
    rule_lines = tuple(str(x) for x in record.meta.get("rule_lines", []))
    for line in [*stale, *watch]:
        progress(f"  {line}")
    progress(f"  {record.n_scored or 0:,} accounts scored; drift: {drift_lines[0]} "
             f"({seconds:.1f} s)")
    if record.meta.get("kpis"):
        progress(f"  {kpi_line(record.meta['kpis'])}")
    return ScoreSummary(
        as_of=as_of,
        run_id=record.run_id,
        status=record.status,
        message=record.message,
        n_scored=int(record.n_scored or 0),
        n_by_segment={k: int(v) for k, v in record.n_by_segment.items()},
        early_warning_version=record.early_warning_version,
        persistence_version=record.persistence_version,
        feature_set_version=record.feature_set_version,
        store_url=display_url(settings.resolved_store_url),
        export_path=export_dir(settings) / as_of.isoformat() / "worklist.parquet",
        flags=tuple(flags),
        top=tuple(worklist_table(top, top=TOP_ROWS)),
        seconds=seconds,
        rule_lines=rule_lines,
        kpis=dict(record.meta.get("kpis") or {}),
    )
