"""Prefect flows: thin task wrappers around the steps (:mod:`pipelines.steps`, DESIGN
section 9).

Each task runs one step (coarse: one per stage, never per account); steps hand each other
*paths* and small frozen summaries, never DataFrames. Tasks that do I/O retry (twice, with
a delay) unless the error is one the user must fix (bad data, no champion). A task
forwards the step's progress lines to the Prefect run log.

Flow parameters are JSON-serialisable so deployments can store them: ``settings`` is a
dict of :class:`~pipelines.settings.Settings` overrides (``None``: file and environment
only), turned into the settings object once per flow run; ``as_of`` arrives as an ISO date
and is a :class:`datetime.date` from there on (Prefect parses it against the annotation).
"Today" is read here, in the flow (in the settings' timezone), never inside library code.

Flows: ``ingest``, ``build-training-set``, ``train``, ``score`` (one stage each), the
scheduled composites ``nightly-score`` (ingest -> score -> prune -> dunning letters
(``dunning.enabled``) -> live performance of past runs whose labels resolved) and
``weekly-retrain`` (ingest -> training set -> train), and the interactive jobs
``main-job`` (generate -> ingest -> training set -> train -> score -> dunning) and
``run-folder`` (ingest -> train if no champion -> score). Every flow publishes a markdown
summary artifact; scoring flows also publish the top of the worklist as a table artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines import steps
from pipelines.artifacts import (
    live_markdown,
    publish_run_artifacts,
    summary_markdown,
    train_rows,
)
from pipelines.errors import user_errors
from pipelines.notify import notify_failure, notify_warnings
from pipelines.partitioned import partition_runner
from pipelines.progress import progress, routed
from pipelines.settings import (
    ENV_PREFIX,
    NESTED_SECRETS,
    SECRET_FIELDS,
    Settings,
    SettingsError,
    load_settings,
)
from pipelines.steps_dunning import DunningSummary, run_dunning
from pipelines.steps_live import LiveSummary, evaluate_live, warning_lines
from pipelines.summaries import (
    GenerateSummary,
    IngestSummary,
    ScoreSummary,
    TrainingSetSummary,
    TrainSummary,
)
from serving.redact import display_url, redact

# --------------------------------------------------------------------------- boundary


def settings_params(settings: Settings) -> dict[str, Any]:
    """``settings`` as a JSON-safe flow parameter (``data_dir`` made absolute, so a runner
    started from another working directory writes to the same place).

    Credential-bearing settings (:data:`~pipelines.settings.SECRET_FIELDS`) are left out:
    Prefect stores parameters in its database and shows them in its UI. The flow run reads
    them from the environment or the settings file, as the CLI did; a secret that came
    from elsewhere (a keyword argument) cannot reach it, which is an error here.
    """
    params = settings.model_dump(mode="json", exclude={
        **dict.fromkeys(SECRET_FIELDS, True),
        **{table: set(names) for table, names in NESTED_SECRETS.items()}})
    params["data_dir"] = str(Path(settings.data_dir).resolve())
    from_sources = load_settings()
    for name in SECRET_FIELDS:
        if getattr(settings, name) != getattr(from_sources, name):
            raise SettingsError(
                f"{name} differs from the environment's and the settings file's; a flow run "
                f"reads secrets only from there: set {ENV_PREFIX}{name.upper()} instead")
    for table, names in NESTED_SECRETS.items():
        for name in names:
            if getattr(getattr(settings, table), name) != getattr(getattr(from_sources, table),
                                                                  name):
                raise SettingsError(
                    f"{table}.{name} differs from the environment's and the settings file's; "
                    f"a flow run reads secrets only from there: set "
                    f"{ENV_PREFIX}{table.upper()}__{name.upper()} instead")
    return params


def resolve_settings(overrides: Mapping[str, Any] | None) -> Settings:
    """Settings from file and environment with the flow's overrides on top."""
    return load_settings(**dict(overrides or {}))


def today_in(timezone: str) -> date:
    """The calendar date now in ``timezone`` (IANA name): the nightly run's ``as_of``."""
    return datetime.now(ZoneInfo(timezone)).date()


def book_folder(settings: Settings) -> Path:
    """The data folder scheduled runs read by default (where ``delinq demo`` writes)."""
    return Path(settings.data_dir) / "book"


# --------------------------------------------------------------------------- tasks


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition of I/O tasks: retry transient failures, not user-fixable errors."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, user_errors())


def _to_run_log() -> Any:
    """Within a task: the steps' progress lines also go to the Prefect run log."""
    return routed(get_run_logger().info, heartbeats=False)


_IO = {
    "retries": 2,
    "retry_delay_seconds": 5,
    "retry_condition_fn": _retry_unless_user_error,
    "cache_policy": NO_CACHE,
}


@task(name="generate", cache_policy=NO_CACHE)
def generate_task(settings: Settings, out: Path, accounts: int, start: date,
                  end: date) -> GenerateSummary:
    """:func:`pipelines.steps.generate`."""
    with _to_run_log():
        return steps.generate(settings=settings, out=out, accounts=accounts, start=start,
                              end=end)


@task(name="ingest", **_IO)
def ingest_task(settings: Settings, source: Path,
                accept_anomalies: bool = False, background: bool = False) -> IngestSummary:
    """:func:`pipelines.steps.ingest` (``background``: the staged files written on a
    thread; the score step waits for them before it publishes)."""
    with _to_run_log():
        return steps.ingest(settings=settings, source=source, accept_anomalies=accept_anomalies,
                            background=background)


@task(name="build-training-set", cache_policy=NO_CACHE)
def training_set_task(settings: Settings, book: Path) -> TrainingSetSummary:
    """:func:`pipelines.steps.build_training_set`."""
    with _to_run_log():
        return steps.build_training_set(settings=settings, book=book)


@task(name="train-and-register", retries=1, retry_delay_seconds=5,
      retry_condition_fn=_retry_unless_user_error, cache_policy=NO_CACHE)
def train_task(settings: Settings, book: Path | None = None,
               training_set: Path | None = None, data_end: date | None = None) -> TrainSummary:
    """:func:`pipelines.steps.train`."""
    with _to_run_log():
        return steps.train(settings=settings, book=book, training_set=training_set,
                           data_end=data_end)


@task(name="score", **_IO)
def score_task(settings: Settings, book: Path, as_of: date,
               why: dict[str, str] | None = None,
               accept_anomalies: bool = False) -> ScoreSummary:
    """:func:`pipelines.steps.score` (its partitions on Dask when ``settings.partitions``
    > 1: :mod:`pipelines.partitioned`)."""
    with _to_run_log():
        return steps.score(settings=settings, book=book, as_of=as_of, why=why,
                           accept_anomalies=accept_anomalies,
                           run_parts=partition_runner(settings))


@task(name="prune", **_IO)
def prune_task(settings: Settings, today: date) -> dict[str, list[str]]:
    """:func:`pipelines.steps.prune` (retention, after the nightly score)."""
    with _to_run_log():
        return steps.prune(settings=settings, today=today)


@task(name="live-performance", cache_policy=NO_CACHE)
def live_task(settings: Settings, book: Path) -> LiveSummary:
    """:func:`pipelines.steps_live.evaluate_live` (past runs whose labels resolved)."""
    with _to_run_log():
        return evaluate_live(settings=settings, book=book)


def _evaluate_past_runs(settings: Settings, book: Path) -> LiveSummary | str:
    """The nightly's last stage: past runs' live performance. Today's worklist is already
    published, so a failure here is reported in the artifact, never fails the night."""
    try:
        return live_task(settings, book)
    except Exception as exc:
        with _to_run_log():
            progress(f"live performance not evaluated: {type(exc).__name__}: {exc}")
        return f"live performance not evaluated: {type(exc).__name__}: {exc}"


@task(name="dunning", cache_policy=NO_CACHE)
def dunning_task(settings: Settings, book: Path, as_of: date) -> DunningSummary:
    """:func:`pipelines.steps_dunning.run_dunning` (after the run is published). Never
    retried: a retry could send what a failed attempt already sent (the send log stops
    it, but a person should look first)."""
    with _to_run_log():
        return run_dunning(settings=settings, book=book, as_of=as_of)


def _dun(settings: Settings, book: Path, as_of: date) -> DunningSummary | str:
    """Letters after the published run; a failure is reported in the artifact (today's
    worklist is published already), never fails the night."""
    try:
        return dunning_task(settings, book, as_of)
    except Exception as exc:
        with _to_run_log():
            progress(f"dunning failed: {type(exc).__name__}: {exc}")
        return f"dunning failed: {type(exc).__name__}: {exc}"


@task(name="publish-artifacts", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def publish_task(key: str, markdown: str, top: list[dict[str, Any]] | None) -> list[str]:
    """Attach the run's markdown summary (and worklist table) to the flow run."""
    return publish_run_artifacts(key, markdown, top)


def _publish(title: str, settings: Settings, stages: Mapping[str, Any]) -> list[str]:
    """Build and publish the run's artifacts from the stage summaries."""
    ingest: IngestSummary | None = stages.get("ingest")
    train: TrainSummary | None = stages.get("train")
    score: ScoreSummary | None = stages.get("score")
    live: LiveSummary | str | None = stages.get("live")
    dunning: DunningSummary | str | None = stages.get("dunning")
    facts: dict[str, Any] = {}
    if ingest:
        facts |= {"source": str(ingest.source),
                  "book dates": f"{ingest.first_date} to {ingest.last_date}",
                  "accounts": ingest.accounts, "invoices": ingest.invoices,
                  "rows quarantined": ingest.quarantined}
    if score:
        facts |= {"as_of": score.as_of.isoformat(), "worklist store": score.store_url}
        facts |= {f"run {k}": v for k, v in score.record().items()}
    if train:
        facts["MLflow tracking URI"] = display_url(settings.resolved_tracking_uri)
    markdown = summary_markdown(
        title,
        facts=facts,
        timings={name: float(s.seconds) for name, s in stages.items()
                 if hasattr(s, "seconds")},
        validation=ingest.tables if ingest else (),
        metrics=train_rows(train.models) if train else (),
        # which populations the aging rule ranked, and why: said first, plainly
        flags=(*score.rule_lines, *score.flags, *([live] if isinstance(live, str) else []),
               *(live.lines if isinstance(live, LiveSummary) else ()),
               *([dunning] if isinstance(dunning, str) else []))
        if score else (),
        kpis=score.kpis if score else None,
    )
    if isinstance(live, LiveSummary):
        markdown += live_markdown(live.evaluated, data_end=live.data_end,
                                  pending=live.pending)
    if isinstance(dunning, DunningSummary):
        markdown += dunning.markdown()
    return publish_task(title, markdown, [dict(r) for r in score.top] if score else None)


# --------------------------------------------------------------------------- flows


@flow(name="ingest")
def ingest_flow(source: str, settings: dict[str, Any] | None = None) -> IngestSummary:
    """Validate the data folder ``source`` and stage the validated book as Parquet."""
    s = resolve_settings(settings)
    stages = {"ingest": ingest_task(s, Path(source))}
    _publish("ingest", s, stages)
    return stages["ingest"]


@flow(name="build-training-set")
def build_training_set_flow(
    book_path: str | None = None, settings: dict[str, Any] | None = None
) -> TrainingSetSummary:
    """Build the training set from the staged book (default: the ingest staging folder)."""
    s = resolve_settings(settings)
    book = Path(book_path) if book_path else steps.staging_dir(s)
    stages = {"training_set": training_set_task(s, book)}
    _publish("build-training-set", s, stages)
    return stages["training_set"]


@flow(name="train")
def train_flow(
    book_path: str | None = None, settings: dict[str, Any] | None = None
) -> TrainSummary:
    """Train, evaluate and register both models from the staged book (the training set is
    built from it with the settings' grid and horizons)."""
    s = resolve_settings(settings)
    book = Path(book_path) if book_path else steps.staging_dir(s)
    stages = {"train": train_task(s, book=book)}
    _publish("train", s, stages)
    return stages["train"]


@flow(name="score")
def score_flow(
    book_path: str | None = None,
    as_of: date | None = None,
    settings: dict[str, Any] | None = None,
    accept_anomalies: bool = False,
) -> ScoreSummary:
    """Score the staged book as of ``as_of`` (ISO date; default today in the settings'
    timezone) and write the worklist (``accept_anomalies``: publish despite a failed
    plausibility check, recorded in the run's meta)."""
    s = resolve_settings(settings)
    book = Path(book_path) if book_path else steps.staging_dir(s)
    stages = {"score": score_task(s, book, as_of or today_in(s.timezone),
                                   accept_anomalies=accept_anomalies)}
    _publish("score", s, stages)
    return stages["score"]


@flow(name="nightly-score")
def nightly_score(
    data_source: str | None = None,
    as_of: date | None = None,
    settings: dict[str, Any] | None = None,
    accept_anomalies: bool = False,
) -> dict[str, Any]:
    """The scheduled nightly run: ingest ``data_source`` (default ``<data_dir>/book``),
    score as of ``as_of`` (default: today in the settings' timezone), apply retention, then
    evaluate the past runs whose labels resolved since (their live performance; a failure
    there is a flag in the artifact, not a failed night). A failed plausibility check stops
    it before the last worklist is replaced, unless ``accept_anomalies``."""
    s = resolve_settings(settings)
    day = as_of or today_in(s.timezone)
    stages: dict[str, Any] = {}
    try:
        steps.check_disk(settings=s)  # stop before starting, in one line, on a full disk
        source = Path(data_source) if data_source else book_folder(s)
        stages["ingest"] = ingest_task(s, source, accept_anomalies, background=True)
        stages["score"] = score_task(s, stages["ingest"].staged, day,
                                       accept_anomalies=accept_anomalies)
        prune_task(s, day)  # retention, once the new run is safely published
        stages["dunning"] = _dun(s, stages["ingest"].staged, day)  # letters after publishing
        stages["live"] = _evaluate_past_runs(s, stages["ingest"].staged)
        keys = _publish("nightly-score", s, stages)
        notify_warnings(settings=s, flow="nightly-score", as_of=day,
                        lines=warning_lines(stages["score"].flags, stages["live"]))
    except Exception as exc:
        # Somebody must know that today's list is missing (the webhook in the settings).
        notify_failure(settings=s, flow="nightly-score", as_of=day,
                       reason=f"{type(exc).__name__}: {exc}")
        if "score" not in stages:  # stopped before a run was published: the banner says so
            _record_blocked(s, day, f"{type(exc).__name__}: {exc}")
        raise
    return {**stages, "artifacts": keys}


def _record_blocked(settings: Settings, day: date, reason: str) -> None:
    """Record the nightly of ``day`` as blocked in the store (``delinq runs`` and the
    workbench's banner show it); best effort: a full disk or a missing store must not hide
    the error that stopped the night."""
    from serving.store import WorklistStore

    try:
        with WorklistStore(settings.resolved_store_url) as store:
            store.record_blocked(as_of=day, reason=reason)
    except Exception as exc:  # noqa: BLE001 (the original error is raised by the caller)
        progress(f"could not record the blocked nightly: {redact(str(exc), settings.secrets())}")


@flow(name="weekly-retrain")
def weekly_retrain(
    data_source: str | None = None, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The scheduled weekly run: ingest, build the training set, train and register (the
    new models become champion only if they beat the current ones)."""
    s = resolve_settings(settings)
    try:
        steps.check_disk(settings=s)  # a training set needs room: stop before starting
        stages: dict[str, Any] = {}
        stages["ingest"] = ingest_task(s, Path(data_source) if data_source else book_folder(s))
        stages["training_set"] = training_set_task(s, stages["ingest"].staged)
        stages["train"] = train_task(s, training_set=stages["training_set"].path)
        keys = _publish("weekly-retrain", s, stages)
    except Exception as exc:
        # A retrain that stops silently leaves ageing models in place: say so, like the nightly.
        notify_failure(settings=s, flow="weekly-retrain", as_of=None,
                       reason=f"{type(exc).__name__}: {exc}")
        raise
    return {**stages, "artifacts": keys}


@flow(name="main-job")
def main_job_flow(
    settings: dict[str, Any] | None = None,
    accounts: int = 5000,
    start: date = date(2023, 1, 1),
    end: date = date(2024, 12, 31),
) -> dict[str, Any]:
    """The README's main command: generate a synthetic book (seeded by the settings) into
    ``<data_dir>/book``, validate, build the training set, train and register a champion,
    and score as of the day after the book's last date."""
    s = resolve_settings(settings)
    stages: dict[str, Any] = {}
    book_dir = book_folder(s)
    stages["generate"] = generate_task(s, book_dir, accounts, start, end)
    stages["ingest"] = ingest_task(s, book_dir)
    staged = stages["ingest"].staged
    stages["training_set"] = training_set_task(s, staged)
    stages["train"] = train_task(s, training_set=stages["training_set"].path)
    stages["score"] = score_task(s, staged, stages["ingest"].last_date + timedelta(days=1))
    stages["dunning"] = _dun(s, staged, stages["score"].as_of)  # the demo's outbox
    keys = _publish("main-job", s, stages)
    return {**stages, "artifacts": keys}


@flow(name="run-folder")
def run_folder_flow(data_source: str, settings: dict[str, Any] | None = None,
                    as_of: date | None = None,
                    accept_anomalies: bool = False) -> dict[str, Any]:
    """The main job on a user's data folder: validate, train if there is no champion yet,
    score as of ``as_of`` (default: the day after the book's last date). A training run
    for an ``as_of`` inside the book sees only what was known before it.
    ``accept_anomalies``: go on despite a failed plausibility check, recorded in the
    summary and the run's meta."""
    s = resolve_settings(settings)
    stages: dict[str, Any] = {}
    stages["ingest"] = ingest_task(s, Path(data_source), accept_anomalies)
    staged = stages["ingest"].staged
    day = as_of or stages["ingest"].last_date + timedelta(days=1)
    from models.train import SplitError

    why: dict[str, str] | None = None
    if steps.has_champions(settings=s):
        with _to_run_log():
            progress("trained models found (champions, or the gate's verdict): scoring")
    else:
        try:
            stages["train"] = train_task(s, book=staged, data_end=as_of)
        except SplitError as exc:
            # A book too thin to train on still gets a worklist: the aging rule ranks it.
            why = {m: f"training stopped: {exc}" for m in steps.model_names(s)}
            with _to_run_log():
                progress(f"  no model trained ({exc}); the aging rule ranks the worklist")
    stages["score"] = score_task(s, staged, day, why, accept_anomalies=accept_anomalies)
    keys = _publish("run-folder", s, stages)
    return {**stages, "artifacts": keys}
