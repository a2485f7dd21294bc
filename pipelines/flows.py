"""Prefect flows: a thin orchestration layer over the library API (DESIGN section 9).

Stages are coarse tasks (one per stage, never per account) that hand each other *paths*
and small JSON-safe summaries, never DataFrames: ingest writes the validated book as
Parquet to a staging folder, later stages read it from there. Tasks that do I/O retry
(twice, with a delay) unless the error is one the user must fix (bad data, no champion).

Flow parameters are JSON-serialisable so deployments can store them: ``settings`` is a
dict of :class:`~pipelines.settings.Settings` overrides (``None``: file and environment
only), dates are ISO strings. "Today" is read here, in the flow (in the settings'
timezone), never inside library code.

Flows: ``ingest``, ``build-training-set``, ``train``, ``score`` (one stage each), the
scheduled composites ``nightly-score`` (ingest -> score) and ``weekly-retrain`` (ingest ->
training set -> train), and the interactive jobs ``main-job`` (generate -> ingest ->
training set -> train -> score) and ``run-folder`` (ingest -> train if no champion ->
score). Every flow publishes a markdown summary artifact; scoring flows also publish the
top of the worklist as a table artifact.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from pipelines.artifacts import drift_flags, publish_run_artifacts, summary_markdown, train_rows
from pipelines.errors import user_errors
from pipelines.settings import Settings, load_settings

#: Logger of the one-line progress messages; interactive jobs print it (pipelines.jobs).
PROGRESS_LOGGER = "delinq.progress"
TOP_ROWS = 10
HEARTBEAT_S = 30.0
_progress_log = logging.getLogger(PROGRESS_LOGGER)


# --------------------------------------------------------------------------- helpers


def settings_params(settings: Settings) -> dict[str, Any]:
    """``settings`` as a JSON-safe flow parameter (``data_dir`` made absolute, so a runner
    started from another working directory writes to the same place)."""
    params = settings.model_dump(mode="json")
    params["data_dir"] = str(Path(settings.data_dir).resolve())
    return params


def resolve_settings(overrides: Mapping[str, Any] | None) -> Settings:
    """Settings from file and environment with the flow's overrides on top."""
    return load_settings(**dict(overrides or {}))


def today_in(timezone: str) -> date:
    """The calendar date now in ``timezone`` (IANA name): the nightly run's ``as_of``."""
    return datetime.now(ZoneInfo(timezone)).date()


def staging_dir(settings: Settings) -> Path:
    """Where ingest writes the validated book (Parquet) for the later stages."""
    return Path(settings.data_dir) / "staging" / "book"


def training_set_path(settings: Settings) -> Path:
    """Where the training-set stage writes its Parquet file."""
    return Path(settings.data_dir) / "staging" / "training_set.parquet"


def model_names(settings: Settings) -> dict[str, str]:
    """Registered MLflow model name of each of the two models."""
    return {
        "early_warning": settings.early_warning_model,
        "persistence": settings.persistence_model,
    }


def progress(message: str) -> None:
    """One concise progress line: to :data:`PROGRESS_LOGGER` (printed by interactive jobs)
    and to the Prefect run log (shown in the UI)."""
    _progress_log.info(message)
    with contextlib.suppress(MissingContextError):
        get_run_logger().info(message)


@contextlib.contextmanager
def ticker(label: str, *, emit: Callable[[str], None], every: float,
           until: threading.Event | None = None) -> Iterator[None]:
    """While the block runs (and ``until`` is not set), call ``emit("  ... <label>: <n> s")``
    every ``every`` seconds, so a long stage without progress hooks never looks hung."""
    done = threading.Event()
    t0 = time.perf_counter()

    def beat() -> None:
        while not (done.wait(every) or (until is not None and until.is_set())):
            emit(f"  ... {label}: {time.perf_counter() - t0:.0f} s")

    thread = threading.Thread(target=beat, name=f"delinq-ticker-{label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def heartbeat(label: str, *, every: float = HEARTBEAT_S) -> contextlib.AbstractContextManager:
    """:func:`ticker` on the progress logger (terminal only), for long flow stages."""
    return ticker(label, emit=_progress_log.info, every=every)


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition of I/O tasks: retry transient failures, not user-fixable errors."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, user_errors())


def read_staged_book(path: str | Path) -> Any:
    """The Book written by the ingest stage (already validated: typed, not re-checked)."""
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


_IO = {
    "retries": 2,
    "retry_delay_seconds": 5,
    "retry_condition_fn": _retry_unless_user_error,
    "cache_policy": NO_CACHE,
}


# --------------------------------------------------------------------------- tasks


@task(name="generate", cache_policy=NO_CACHE)
def generate_task(out: str, accounts: int, seed: int, start: str, end: str) -> dict[str, Any]:
    """Write a synthetic book folder (Parquet) and return its row counts."""
    from features.synthetic import write_book_folder

    progress(f"generating a synthetic book: {accounts:,} accounts, {start} to {end}")
    t0 = time.perf_counter()
    summary = write_book_folder(accounts, out, seed=seed, start=start, end=end)
    rows = {k: int(v) for k, v in summary.get("rows", {}).items()}
    seconds = time.perf_counter() - t0
    progress(f"  {rows.get('invoices', 0):,} invoices written to {out} ({seconds:.1f} s)")
    return {"out": str(out), "rows": rows, "seconds": seconds}


@task(name="ingest", **_IO)
def ingest_task(
    source: str, staged: str, max_bad_share: float, quarantine: str | None = None
) -> dict[str, Any]:
    """Validate the data folder ``source`` (bad rows to ``quarantine``, default
    ``<source>/_quarantine``) and write the kept rows as Parquet to ``staged``; return the
    validation summary and the book's dates."""
    from features.contract.io import write_book
    from features.contract.validation import validate_folder

    progress(f"validating {source}")
    t0 = time.perf_counter()
    qdir = Path(quarantine) if quarantine is not None else Path(source) / "_quarantine"
    result = validate_folder(source, max_bad_share=max_bad_share, quarantine_dir=qdir)
    target = Path(staged)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_book(result.book, tmp)
    _replace_dir(tmp, target)
    book = result.book
    summary = [
        {k: (int(v) if k != "table" else str(v)) for k, v in rec.items()}
        for rec in result.summary.to_dict("records")
    ]
    seconds = time.perf_counter() - t0
    quarantined = sum(r["quarantined"] for r in summary)
    progress(
        f"  kept {len(book.invoices):,} invoices of {book.accounts.shape[0]:,} accounts, "
        f"quarantined {quarantined:,} rows ({seconds:.1f} s)"
    )
    return {
        "source": str(source),
        "staged": str(target),
        "quarantine": str(qdir),
        "summary": summary,
        "report": result.render(),
        "quarantined": quarantined,
        "accounts": int(book.accounts.shape[0]),
        "invoices": int(len(book.invoices)),
        "first_date": book.first_date.date().isoformat(),
        "last_date": book.last_date.date().isoformat(),
        "seconds": seconds,
    }


@task(name="build-training-set", cache_policy=NO_CACHE)
def training_set_task(
    staged: str, out: str, grid: str, delinquency_dpd: int, persistence_days: int
) -> dict[str, Any]:
    """Build the stacked training set over the ``grid`` of ``as_of`` dates; write Parquet."""
    from features import build_training_set
    from features.pit.training_set import as_of_grid

    progress(f"building the training set ({grid} as_of grid)")
    t0 = time.perf_counter()
    book = read_staged_book(staged)
    dates = as_of_grid(book, freq=grid)
    with heartbeat("building the training set"):
        frame = build_training_set(
            book,
            as_of_dates=dates,
            delinquency_dpd=delinquency_dpd,
            persistence_days=persistence_days,
        )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    resolved = frame[~frame["censored"].astype(bool)]
    seconds = time.perf_counter() - t0
    progress(f"  {len(frame):,} rows over {len(dates)} as_of dates ({seconds:.1f} s)")
    return {
        "path": str(out),
        "rows": int(len(frame)),
        "as_of_dates": len(dates),
        "resolved_rows": int(len(resolved)),
        "positive_rate": float(resolved["y"].mean()) if len(resolved) else None,
        "seconds": seconds,
    }


@task(name="train-and-register", retries=1, retry_delay_seconds=5,
      retry_condition_fn=_retry_unless_user_error, cache_policy=NO_CACHE)
def train_task(
    staged: str,
    tracking_uri: str,
    grid: str,
    names: dict[str, str],
    training_set: str | None = None,
    delinquency_dpd: int = 30,
    persistence_days: int = 30,
) -> dict[str, Any]:
    """Train both models, compare with baselines, register; promote only if better.

    With ``training_set`` (the Parquet file of the training-set stage) the models are fit
    on it; otherwise the training set is built from the staged book.
    """
    from features import build_training_set
    from features.pit.training_set import as_of_grid
    from models.registry import register
    from models.report import format_report, training_summary
    from models.train import train_models

    progress("training and registering the two models (LightGBM, calibrated)")
    t0 = time.perf_counter()
    with heartbeat("training"):
        if training_set is not None:
            import pandas as pd

            frame = pd.read_parquet(training_set)
        else:
            book = read_staged_book(staged)
            frame = build_training_set(
                book, as_of_dates=as_of_grid(book, freq=grid), delinquency_dpd=delinquency_dpd,
                persistence_days=persistence_days,
            )
        results = train_models(frame)
        summary = training_summary(results, register(
            results, tracking_uri=tracking_uri, names=names,
            extra_params={"grid": grid, "delinquency_dpd": delinquency_dpd,
                          "persistence_days": persistence_days},
        ))
    seconds = time.perf_counter() - t0
    promoted = [m for m, info in summary.items() if info.get("promoted")]
    progress(f"  trained in {seconds:.1f} s; promoted to champion: "
             f"{', '.join(promoted) if promoted else 'none (champions stay)'}")
    return {"report": format_report(summary), "models": train_rows(summary), "seconds": seconds}


@task(name="score", **_IO)
def score_task(
    staged: str,
    as_of: str,
    tracking_uri: str,
    store_url: str,
    export_dir: str,
    names: dict[str, str],
    table_budget_mb: int,
) -> dict[str, Any]:
    """Score every account with open receivables as of ``as_of``; write the worklist run to
    the store and its Parquet export; return the run record, drift flags and the top rows."""
    from pipelines.artifacts import worklist_table
    from serving.score import run_scoring
    from serving.store import WorklistStore

    progress(f"scoring as of {as_of} (exact TreeSHAP reasons for every account)")
    t0 = time.perf_counter()
    book = read_staged_book(staged)
    day = date.fromisoformat(as_of)
    with heartbeat("scoring"):
        record = run_scoring(
            book,
            as_of=day,
            tracking_uri=tracking_uri,
            store_url=store_url,
            export_dir=Path(export_dir),
            model_names=names,
            table_budget_mb=table_budget_mb,
        )
    store = WorklistStore(store_url)
    try:
        top = store.read_worklist(as_of=day, top=TOP_ROWS)
        drift = store.read_drift(record.run_id)
    finally:
        store.close()
    seconds = time.perf_counter() - t0
    flags = drift_flags(drift)
    progress(f"  {record.n_scored or 0:,} accounts scored; drift: {flags[0]} ({seconds:.1f} s)")
    summary = {
        "run_id": record.run_id,
        "status": record.status,
        "n_scored": int(record.n_scored or 0),
        **{f"n_{k}": int(v) for k, v in record.n_by_segment.items()},
        "early_warning_version": record.early_warning_version,
        "persistence_version": record.persistence_version,
        "feature_set_version": record.feature_set_version,
        "export_path": str(Path(export_dir) / as_of / "worklist.parquet"),
    }
    return {"as_of": as_of, "record": summary, "flags": flags,
            "top": worklist_table(top, top=TOP_ROWS), "seconds": seconds}


@task(name="publish-artifacts", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def publish_task(key: str, markdown: str, top: list[dict[str, Any]] | None) -> list[str]:
    """Attach the run's markdown summary (and worklist table) to the flow run."""
    return publish_run_artifacts(key, markdown, top)


# --------------------------------------------------------------------------- stages


def _ingest(settings: Settings, source: str) -> dict[str, Any]:
    # Bad rows go under data_dir, not into the source folder (which may be read-only).
    return ingest_task(source, str(staging_dir(settings)), settings.max_bad_share,
                       str(Path(settings.data_dir) / "quarantine"))


def _training_set(settings: Settings, staged: str) -> dict[str, Any]:
    return training_set_task(staged, str(training_set_path(settings)), settings.grid,
                             settings.delinquency_dpd, settings.persistence_days)


def _train(settings: Settings, staged: str, training_set: str | None = None) -> dict[str, Any]:
    return train_task(staged, settings.resolved_tracking_uri, settings.grid,
                      model_names(settings), training_set, settings.delinquency_dpd,
                      settings.persistence_days)


def _score(settings: Settings, staged: str, as_of: str) -> dict[str, Any]:
    return score_task(staged, as_of, settings.resolved_tracking_uri,
                      settings.resolved_store_url, str(Path(settings.data_dir) / "exports"),
                      model_names(settings), settings.shap_table_budget_mb)


def _day_after(iso: str) -> str:
    return (date.fromisoformat(iso) + timedelta(days=1)).isoformat()


def _publish(title: str, settings: Settings, stages: Mapping[str, Mapping[str, Any]],
             **facts: Any) -> list[str]:
    """Build and publish the run's artifacts from the stage summaries."""
    ingest, train, score = (stages.get(k) for k in ("ingest", "train", "score"))
    all_facts = dict(facts)
    if ingest:
        all_facts |= {"source": ingest["source"], "book dates":
                      f"{ingest['first_date']} to {ingest['last_date']}",
                      "accounts": ingest["accounts"], "invoices": ingest["invoices"],
                      "rows quarantined": ingest["quarantined"]}
    if score:
        all_facts |= {"as_of": score["as_of"], "worklist store": settings.resolved_store_url}
        all_facts |= {f"run {k}": v for k, v in score["record"].items()}
    if train:
        all_facts["MLflow tracking URI"] = settings.resolved_tracking_uri
    markdown = summary_markdown(
        title,
        facts=all_facts,
        timings={name: float(s["seconds"]) for name, s in stages.items() if "seconds" in s},
        validation=ingest["summary"] if ingest else (),
        metrics=train["models"] if train else (),
        flags=score["flags"] if score else (),
    )
    return publish_task(title, markdown, score["top"] if score else None)


# --------------------------------------------------------------------------- flows


@flow(name="ingest")
def ingest_flow(source: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate the data folder ``source`` and stage the validated book as Parquet."""
    s = resolve_settings(settings)
    stages = {"ingest": _ingest(s, source)}
    _publish("ingest", s, stages)
    return stages["ingest"]


@flow(name="build-training-set")
def build_training_set_flow(
    book_path: str | None = None, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build the training set from the staged book (default: the ingest staging folder)."""
    s = resolve_settings(settings)
    stages = {"training_set": _training_set(s, book_path or str(staging_dir(s)))}
    _publish("build-training-set", s, stages)
    return stages["training_set"]


@flow(name="train")
def train_flow(
    book_path: str | None = None, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train, evaluate and register both models from the staged book (the training set is
    built from it with the settings' grid and horizons)."""
    s = resolve_settings(settings)
    stages = {"train": _train(s, book_path or str(staging_dir(s)))}
    _publish("train", s, stages)
    return stages["train"]


@flow(name="score")
def score_flow(
    book_path: str | None = None,
    as_of: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the staged book as of ``as_of`` (ISO date; default today in the settings'
    timezone) and write the worklist."""
    s = resolve_settings(settings)
    day = as_of or today_in(s.timezone).isoformat()
    stages = {"score": _score(s, book_path or str(staging_dir(s)), day)}
    _publish("score", s, stages)
    return stages["score"]


@flow(name="nightly-score")
def nightly_score(
    data_source: str | None = None,
    as_of: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The scheduled nightly run: ingest ``data_source`` (default ``<data_dir>/book``) and
    score as of ``as_of`` (default: today in the settings' timezone)."""
    s = resolve_settings(settings)
    day = as_of or today_in(s.timezone).isoformat()
    stages: dict[str, dict[str, Any]] = {}
    stages["ingest"] = _ingest(s, data_source or str(Path(s.data_dir) / "book"))
    stages["score"] = _score(s, stages["ingest"]["staged"], day)
    keys = _publish("nightly-score", s, stages)
    return {**stages, "artifacts": keys}


@flow(name="weekly-retrain")
def weekly_retrain(
    data_source: str | None = None, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The scheduled weekly run: ingest, build the training set, train and register (the
    new models become champion only if they beat the current ones)."""
    s = resolve_settings(settings)
    stages: dict[str, dict[str, Any]] = {}
    stages["ingest"] = _ingest(s, data_source or str(Path(s.data_dir) / "book"))
    stages["training_set"] = _training_set(s, stages["ingest"]["staged"])
    stages["train"] = _train(s, stages["ingest"]["staged"], stages["training_set"]["path"])
    keys = _publish("weekly-retrain", s, stages)
    return {**stages, "artifacts": keys}


@flow(name="main-job")
def main_job_flow(
    settings: dict[str, Any] | None = None,
    accounts: int = 5000,
    seed: int = 0,
    start: str = "2023-01-01",
    end: str = "2024-12-31",
) -> dict[str, Any]:
    """The README's main command: generate a synthetic book into ``<data_dir>/book``,
    validate, build the training set, train and register a champion, and score as of the
    day after the book's last date."""
    s = resolve_settings(settings)
    stages: dict[str, dict[str, Any]] = {}
    book_dir = str(Path(s.data_dir) / "book")
    stages["generate"] = generate_task(book_dir, accounts, seed, start, end)
    stages["ingest"] = _ingest(s, book_dir)
    staged = stages["ingest"]["staged"]
    stages["training_set"] = _training_set(s, staged)
    stages["train"] = _train(s, staged, stages["training_set"]["path"])
    stages["score"] = _score(s, staged, _day_after(stages["ingest"]["last_date"]))
    keys = _publish("main-job", s, stages)
    return {**stages, "artifacts": keys}


@flow(name="run-folder")
def run_folder_flow(data_source: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The main job on a user's data folder: validate, train if there is no champion yet,
    score as of the day after the book's last date."""
    from models.registry import NoChampionError, load_champion

    s = resolve_settings(settings)
    stages: dict[str, dict[str, Any]] = {}
    stages["ingest"] = _ingest(s, data_source)
    staged = stages["ingest"]["staged"]
    try:
        for name in model_names(s).values():
            load_champion(name, tracking_uri=s.resolved_tracking_uri)
        progress("champion models found: scoring with them")
    except NoChampionError:
        stages["train"] = _train(s, staged)
    stages["score"] = _score(s, staged, _day_after(stages["ingest"]["last_date"]))
    keys = _publish("run-folder", s, stages)
    return {**stages, "artifacts": keys}
