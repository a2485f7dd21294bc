"""Scoring a book account partition by account partition, and the book-wide merge (issue 20).

:func:`score_partition` is the per-partition scoring core, and the one the single-process
nightly calls too (its book is then one partition, P = 1): the recorded events of the
collections loop added to the partition's book (``serving.loop_events.book_with_events``:
rows of accounts and invoices the partition does not hold are left out, so every partition
can be given the run's events whole), :func:`serving.score.score_book` (features, holds,
the random holdout, dunning's final notices, reasons), the drift *bin counts* of each model
(``models.drift.bin_counts``, which add up over partitions) and the shadow scores of the
run's challengers and of the holdout's champions (``serving.shadow.shadow_scores``: both
per account). :func:`merge_partitions` turns the parts into the run's one result: the
book-wide rank (the one ranking rule, :func:`serving.score_worklist.rank_order`, held accounts
last), drift as the PSI of the summed counts (never an average of per-partition PSIs) and
the run's counts. A book scored as one partition and as P partitions give the same
worklist, explanations and shadow scores (row order aside) and drift.

:func:`write_part` / :func:`read_part` keep a part as files under a location (a path or
an fsspec URL): written under temporary names and renamed into place, the JSON last, so a
part is complete when its JSON exists and a re-run writes the same files. Time semantics
are :func:`~serving.score.score_book`'s; no clock, no Prefect.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.partition import fs_path, join
from features.pit.promises import DEFAULT_GRACE_DAYS
from features.spec import DEFAULT_MATERIALITY, Materiality, as_day
from models.drift import add_counts
from models.model import DelinqModel
from serving.actions import DEFAULT_POLICY, ActionPolicy
from serving.loop_events import LoopEvents, book_with_events
from serving.rule_scoring import RuleScorer
from serving.score import (
    _WORKLIST_DTYPES,
    WORKLIST_COLUMNS,
    ScoreResult,
    _empty_drift,
    _empty_result,
    _Timer,
    drift_table,
    run_meta,
    score_book,
)
from serving.score import book_reads as score_book_reads
from serving.score_worklist import rank_order
from serving.shadow import SHADOW_COLUMNS, shadow_scores

#: File names of a part under its location.
WORKLIST_FILE, EXPLANATIONS_FILE, SHADOW_FILE, META_FILE = (
    "worklist.parquet", "explanations.parquet", "shadow.parquet", "part.json")


@dataclass(frozen=True)
class RunScorers:
    """What every partition of one run scores with, loaded once by the driver: the
    champions (``models``) and aging-rule scorers (``rules``), the shadow ``challengers``
    and the holdout's ``champions`` (population -> model; empty when none), the store's
    loop ``events`` known at ``as_of`` and dunning's ``final_notice`` account ids. Every
    partition scores with the same model versions even if one is promoted meanwhile."""

    models: dict[str, DelinqModel]
    rules: dict[str, RuleScorer]
    challengers: dict[str, DelinqModel] = field(default_factory=dict)
    champions: dict[str, DelinqModel] = field(default_factory=dict)
    events: LoopEvents | None = None
    final_notice: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartScore:
    """One partition's scoring: ``worklist`` (its rows; ``rank`` is the partition's own
    until merged), ``explanations`` (as :class:`~serving.score.ScoreResult`'s),
    ``drift_counts`` (model -> feature -> rows per reference bin), ``meta`` (the
    partition's counts and timings, as ``ScoreResult.meta``), ``shadow`` (its shadow
    scores, ``serving.shadow.SHADOW_COLUMNS``), and what the steps add: ``kpis`` (the
    partition's additive KPI pieces, ``features.pit.kpis.kpi_part``) and ``totals`` (its
    run-check totals' additive pieces)."""

    worklist: pd.DataFrame
    explanations: pd.DataFrame
    drift_counts: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    shadow: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(SHADOW_COLUMNS)))
    kpis: dict[str, Any] | None = None
    totals: dict[str, Any] | None = None


@dataclass(frozen=True)
class BookReads:
    """All the scoring of a partition reads of its book, taken while the book is held
    (:func:`book_reads`): its ``shadow`` scores, its ``features`` (with the loop features
    a champion reads) and their ``loop`` facts (``serving.score.book_reads``). Given to
    :func:`score_partition` (``reads=``), the scoring needs no book: its owner frees it
    before the scoring's own peak."""

    shadow: pd.DataFrame
    features: pd.DataFrame
    loop: pd.DataFrame


def book_reads(
    book: Book,
    *,
    as_of: date | pd.Timestamp,
    scorers: RunScorers,
    features: pd.DataFrame,
    materiality: Materiality = DEFAULT_MATERIALITY,
    holdout_share: float = 0.0,
    grace_days: int = DEFAULT_GRACE_DAYS,
    pay_invoices: np.ndarray | None = None,
) -> BookReads:
    """The :class:`BookReads` of the partition ``book`` (arguments as
    :func:`score_partition`'s; ``features``: ``book``'s at ``as_of``, required): what
    :func:`score_partition` would read of ``book``, the same values."""
    events = scorers.events if scorers.events is not None else LoopEvents.empty()
    # The shadow scores first (they read only the book and its features): their model
    # matrices are then never held beside the scoring's worklist and explanations.
    shadow = shadow_scores(book, as_of=as_of, challengers=scorers.challengers,
                           materiality=materiality, holdout=scorers.champions,
                           holdout_share=holdout_share, features=features,
                           grace_days=grace_days)
    if features.empty:
        return BookReads(shadow=shadow, features=features, loop=pd.DataFrame())
    feats, loop = score_book_reads(
        book_with_events(book, events), as_of=as_of, models=scorers.models,
        features=features, grace_days=grace_days, snoozes=events.snoozes,
        pay_invoices=pay_invoices)
    return BookReads(shadow=shadow, features=feats, loop=loop)


def score_partition(
    book: Book | None,
    *,
    as_of: date | pd.Timestamp,
    scorers: RunScorers,
    history_start: date | pd.Timestamp | None = None,
    features: pd.DataFrame | None = None,
    table_budget_mb: int = 512,
    policy: ActionPolicy = DEFAULT_POLICY,
    materiality: Materiality = DEFAULT_MATERIALITY,
    holdout_share: float = 0.0,
    grace_days: int = DEFAULT_GRACE_DAYS,
    final_notice: Collection[str] | None = None,
    pay_invoices: np.ndarray | None = None,
    reads: BookReads | None = None,
) -> PartScore:
    """Score the account partition ``book`` (the staged book's rows of some accounts, as
    ``features.partition`` splits it; or the whole book) as of ``as_of`` with ``scorers``
    (see the module). ``history_start``: the whole book's first day, which the reasons
    cite (default ``book.first_date``); ``features``: ``book``'s features with facts at
    ``as_of`` under ``materiality`` when the caller has them (``features.pit.snapshot``);
    ``final_notice``: ``scorers.final_notice`` unless given; ``pay_invoices``: as
    :func:`~serving.score.score_book`'s. The loop's events are ``scorers.events`` (none
    when None). ``reads``: :func:`book_reads` of ``book`` taken already (``features`` and
    ``pay_invoices`` are then not read); ``book`` may then be None (given
    ``history_start``)."""
    events = scorers.events if scorers.events is not None else LoopEvents.empty()
    if reads is not None:
        shadow, features, loop = reads.shadow, reads.features, reads.loop
    elif book is None:
        raise ValueError("score_partition without reads needs the book")
    else:
        # The shadow scores first (they read only the book and its features): their model
        # matrices are then never held beside the scoring's worklist and explanations.
        shadow = shadow_scores(book, as_of=as_of, challengers=scorers.challengers,
                               materiality=materiality, holdout=scorers.champions,
                               holdout_share=holdout_share, features=features,
                               grace_days=grace_days)
        loop = None
    result = score_book(
        None if book is None else book_with_events(book, events), as_of=as_of,
        models=scorers.models, table_budget_mb=table_budget_mb, policy=policy,
        rules=scorers.rules, materiality=materiality, grace_days=grace_days,
        snoozes=events.snoozes, holdout_share=holdout_share, features=features,
        history_start=history_start,
        final_notice=scorers.final_notice if final_notice is None else final_notice,
        pay_invoices=pay_invoices, loop=loop)
    return PartScore(worklist=result.worklist, explanations=result.explanations,
                     drift_counts=result.drift_counts, meta=dict(result.meta), shadow=shadow)


def _summed(dicts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[str(k)] = out.get(str(k), 0) + int(v)
    return out


def merge_partitions(
    parts: Sequence[PartScore],
    *,
    as_of: date | pd.Timestamp,
    models: Mapping[str, DelinqModel],
    rules: Mapping[str, RuleScorer] | None = None,
) -> ScoreResult:
    """The run's result from its partitions: worklist rows of every part ranked book-wide
    (:func:`~serving.score_worklist.rank_order`: held accounts after the main ranking),
    explanations concatenated (part order), drift as the PSI of the summed bin counts,
    counts and timings summed. One part is returned as scored (ranks and all)."""
    rule_lines = [r.line for k, r in (rules or {}).items() if k not in models]
    as_of_ts = pd.Timestamp(as_day(as_of))
    timer = _Timer()
    for part in parts:
        for stage, seconds in part.meta.get("timings", {}).items():
            timer.seconds[stage] = timer.seconds.get(stage, 0.0) + float(seconds)
        for stage, seconds in part.meta.get("cpu_timings", {}).items():
            timer.cpu[stage] = timer.cpu.get(stage, 0.0) + float(seconds)
    full = [p for p in parts if len(p.worklist)]
    if not full:
        return _empty_result(models, as_of_ts, timer, rule_lines)
    with timer.stage("merge"):
        if len(full) == 1:  # one part (P = 1): its frames as they are, no copy
            worklist, explanations = full[0].worklist, full[0].explanations
        else:
            wl = pd.concat([p.worklist for p in full], ignore_index=True)
            order = rank_order(wl["priority"].to_numpy(dtype=np.float64), wl["account_id"],
                               held=_held(wl["hold"]))
            worklist = wl.iloc[order].reset_index(drop=True)
            worklist["rank"] = np.arange(1, len(worklist) + 1, dtype=np.int64)
            worklist = worklist[list(WORKLIST_COLUMNS)]
            explanations = pd.concat([p.explanations for p in full], ignore_index=True)
        drift_parts = []
        for name in sorted({m for p in full for m in p.drift_counts}):
            counts = add_counts(*(p.drift_counts[name] for p in full if name in p.drift_counts))
            drift_parts.append(drift_table(models[name], counts, name))
        drift = pd.concat(drift_parts, ignore_index=True) if drift_parts else _empty_drift()
    holdout = _summed([p.meta.get("holdout") or {} for p in full])
    meta = run_meta(
        as_of_ts=as_of_ts, worklist=worklist, drift=drift, timer=timer,
        n_by_model=dict(sorted(_summed([p.meta.get("n_by_model", {}) for p in full]).items())),
        models=models, rules=rules or {},
        holdout={k: holdout[k] for k in models if k in holdout},
        n_held=_summed([p.meta.get("n_held") or {} for p in full]))
    return ScoreResult(worklist=worklist, explanations=explanations, drift=drift, meta=meta)


def _held(hold: pd.Series) -> np.ndarray:
    """Whether each worklist row is held (its ``hold`` is set, as ``score_book`` ranks)."""
    return hold.notna().to_numpy()


def merge_shadow(parts: Sequence[PartScore]) -> pd.DataFrame:
    """The run's shadow scores: every part's, concatenated (one part: as it is)."""
    frames = [p.shadow for p in parts if len(p.shadow)]
    if len(frames) <= 1:
        return frames[0] if frames else pd.DataFrame(columns=list(SHADOW_COLUMNS))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- part files


def _atomic_write(location: str, name: str, data: bytes) -> None:
    fs, target = fs_path(join(location, name))
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    fs.mv(tmp, target)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def write_frame(frame: pd.DataFrame, location: str, name: str) -> str:
    """Write ``frame`` as Parquet to ``location``/``name`` (temporary name, renamed);
    returns its location."""
    fs, root = fs_path(location)
    fs.makedirs(root, exist_ok=True)
    _atomic_write(location, name, _parquet_bytes(frame))
    return join(location, name)


def read_frame(path: str) -> pd.DataFrame:
    """The Parquet file at ``path`` (a path or an fsspec URL)."""
    fs, p = fs_path(path)
    with fs.open(p, "rb") as fh:
        return pd.read_parquet(fh)


def write_part(part: PartScore, location: str) -> str:
    """Write ``part`` under ``location`` (created): its three Parquet files, then
    :data:`META_FILE` (counts, meta), each under a temporary name renamed into place.
    Writing the same part again gives the same files. Returns the JSON file's location."""
    fs, root = fs_path(location)
    fs.makedirs(root, exist_ok=True)
    _atomic_write(location, WORKLIST_FILE, _parquet_bytes(part.worklist))
    _atomic_write(location, EXPLANATIONS_FILE, _parquet_bytes(part.explanations))
    _atomic_write(location, SHADOW_FILE, _parquet_bytes(part.shadow))
    meta = {"drift_counts": part.drift_counts, "meta": part.meta, "kpis": part.kpis,
            "totals": part.totals}
    _atomic_write(location, META_FILE, json.dumps(meta, sort_keys=True, default=str).encode())
    return join(location, META_FILE)


def part_done(location: str) -> bool:
    """Whether a complete part is under ``location`` (its JSON, written last, exists)."""
    fs, path = fs_path(join(location, META_FILE))
    return bool(fs.exists(path))


def read_part(location: str) -> PartScore:
    """The part :func:`write_part` wrote under ``location`` (dtypes as scored: strings
    as ``str``, ``as_of`` in seconds)."""
    fs, _ = fs_path(location)
    with fs.open(fs_path(join(location, META_FILE))[1], "rb") as fh:
        meta = json.loads(fh.read())
    frames = []
    for name in (WORKLIST_FILE, EXPLANATIONS_FILE, SHADOW_FILE):
        with fs.open(fs_path(join(location, name))[1], "rb") as fh:
            frames.append(pd.read_parquet(fh))
    worklist, explanations, shadow = frames
    for column, dtype in _WORKLIST_DTYPES.items():
        if dtype.startswith("datetime64") and column in worklist.columns:
            worklist[column] = worklist[column].astype(dtype)
    return PartScore(worklist=worklist, explanations=explanations,
                     drift_counts=meta["drift_counts"], meta=meta["meta"], shadow=shadow,
                     kpis=meta.get("kpis"), totals=meta.get("totals"))


def save_scorers(scorers: RunScorers, location: str) -> str:
    """Write the run's :class:`RunScorers` to ``location``/``scorers.pkl`` for the
    partitions' workers; returns its location."""
    fs, root = fs_path(location)
    fs.makedirs(root, exist_ok=True)
    _atomic_write(location, "scorers.pkl", pickle.dumps(scorers))
    return join(location, "scorers.pkl")


def load_scorers(path: str) -> RunScorers:
    """The :class:`RunScorers` written by :func:`save_scorers` (a file this run wrote)."""
    fs, p = fs_path(path)
    with fs.open(p, "rb") as fh:
        return pickle.loads(fh.read())  # noqa: S301 - written by this run, not user input
