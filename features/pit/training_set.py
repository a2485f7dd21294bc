"""Training sets: point-in-time features joined with labels over a grid of ``as_of`` dates.

The rows for each date are exactly what :func:`features.build_features` and
:func:`features.build_labels` return for that date (the same kernels; the book is only
encoded once for the whole grid), stacked in grid order.

Large books are *sampled on their labels* (``sampling``, :mod:`features.pit.sampling`):
the labels of every (account, ``as_of``) come first, then the sample is drawn, and the
features are computed only for the kept rows, date by date; a ``weight`` column (float64,
the Horvitz-Thompson weight ``n / k`` of the row's stratum) follows the label columns, and
the model library weighs every fit and figure with it. With a holdout rule
(``Sampling.holdout``) the dates of the validation and test periods are sampled on their
own budget (by default kept whole), found from the label counts of every date before any
feature is computed. :func:`write_training_set` streams
the same chunks to one Parquet file, so the whole grid is never held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit import _kernels, _prep
from features.pit._loop_rows import LoopRows
from features.pit._prep import Prepared, day_number
from features.pit.labels import default_data_end, label_arrays, label_columns, labels_frame
from features.pit.promises import DEFAULT_GRACE_DAYS
from features.pit.sampling import (
    CENSORED,
    NEGATIVE,
    POSITIVE,
    WEIGHT,
    Sampling,
    outcome_codes,
    sample_rows,
)
from features.spec import (
    DEFAULT_MATERIALITY,
    DELINQUENT_DPD,
    MODELS,
    PERSISTENCE_DAYS,
    Materiality,
    as_day,
)

#: A stage timer (``models.stages.StageBudget.stage``): the build reports ``labels``,
#: ``sampling`` and ``features`` through it (accumulated over the dates).
StageHook = Callable[[str], AbstractContextManager[Any]]


def no_stage(name: str) -> AbstractContextManager[Any]:
    """The :data:`StageHook` that times nothing (no budget given)."""
    return nullcontext()


#: The columns of each Book table that a training set reads (the encoding of
#: ``features.pit._prep``, the labels, the kernel features and the collections loop's
#: features with their ``recorded_since`` days; checked by
#: ``tests/features/test_training_view.py``). Ids that only name a row (``payment_id``),
#: the payment's account code and method, the invoice's terms, currency and document type
#: (validation already turned credit notes into negative amounts) and the accounts' contact
#: data are read by nothing here: at 1M accounts they are ~1.5 GB of the ~7.6 GB Book.
TRAINING_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "invoices": ("invoice_id", "account_id", "issue_date", "due_date", "amount",
                 "reference_invoice_id"),
    "payments": ("invoice_id", "payment_date", "amount"),
    "accounts": ("account_id", "segment", "region", "credit_limit", "created_date"),
    "disputes": ("invoice_id", "opened_date", "resolved_date"),
    "promises": ("promise_id", "account_id", "created_date", "promised_date", "amount",
                 "invoice_id", "recorded_date", "cancelled_date"),
    "contacts": ("contact_id", "account_id", "contact_date", "outcome", "recorded_date"),
}


def training_view(book: Book) -> Book:
    """``book`` with only the :data:`TRAINING_COLUMNS` of each table (those it holds): the
    same rows, so :func:`build_training_set` and :func:`write_training_set` give the same
    training set from it. A projection: its frames share their columns with ``book``'s
    (never copied, never mutated), so once the caller drops ``book`` the other columns
    are freed while the training set is built."""
    return Book(**{table: frame[[c for c in columns if c in frame.columns]]
                   for table, columns in TRAINING_COLUMNS.items()
                   if (frame := getattr(book, table)) is not None})


def as_of_grid(book: Book, *, freq: Literal["weekly", "monthly"] = "weekly",
               start: date | pd.Timestamp | None = None,
               end: date | pd.Timestamp | None = None) -> list[date]:
    """Snapshot dates from ``start`` to ``end`` inclusive, every 7 days from ``start``
    (weekly) or on the first of each month (monthly).

    Defaults: ``start`` = the book's first issue date + 182 days (some history to learn
    from), ``end`` = the day after the book's last event.
    """
    lo = as_day(start) if start is not None else as_day(book.first_date) + timedelta(days=182)
    hi = as_day(end) if end is not None else default_data_end(book)
    if freq == "weekly":
        days = pd.date_range(lo, hi, freq="7D")
    elif freq == "monthly":
        days = pd.date_range(lo, hi, freq="MS")
    else:
        raise ValueError(f"freq must be 'weekly' or 'monthly', got {freq!r}")
    return [d.date() for d in days]


def _frame(prep: Prepared, rows: np.ndarray, feats: dict, labels: dict,
           weight: np.ndarray | None) -> pd.DataFrame:
    out = pd.DataFrame({**feats, **labels}, copy=False)
    out.insert(0, "account_id", _kernels.account_id_column(prep, rows))
    if weight is not None:
        out[WEIGHT] = weight
    return out


def _full_chunks(prep: Prepared, dates: list[date], label_kw: dict,
                 stage: StageHook) -> Iterator[pd.DataFrame]:
    for as_of in dates:
        with stage("features"):
            rows, feats = _kernels.feature_columns(prep, as_of,
                                                   materiality=label_kw["materiality"])
        with stage("labels"):
            label_rows, labels = label_columns(prep, as_of, **label_kw)
        # both populations are "accounts with an open invoice at as_of", in account order,
        # so the join on (account_id, as_of) is positional
        if not np.array_equal(rows, label_rows):
            raise AssertionError("features and labels disagree on the population")
        with stage("features"):
            frame = _frame(prep, rows, feats, labels, None)
        yield frame


#: The resolved day of a censored label in :class:`_DateLabels` (int32 days, for NaT).
_NO_DAY: Final = np.iinfo(np.int32).min
#: ``y`` of each outcome code (``features.pit.sampling.outcome_codes``' inverse: labels
#: are 0, 1 or missing).
_Y_OF_OUTCOME: Final = np.full(3, np.nan)
_Y_OF_OUTCOME[[POSITIVE, NEGATIVE]] = (1.0, 0.0)


@dataclass
class _DateLabels:
    """One date's labels, compact (every row of the grid is held until the rates are
    known: 18 bytes a row, ~1.1 GB over the 61M rows of a 1M-account weekly grid): account
    row (int32), model code and outcome code (int8 each: ``y`` is 0, 1 or missing), resolved
    day (int32 days since 1970, :data:`_NO_DAY` when censored) and the amount (float64:
    exact). :meth:`take` gives the label values of the kept rows, equal to
    ``label_arrays``'."""

    rows: np.ndarray
    model: np.ndarray
    outcome: np.ndarray
    resolved: np.ndarray
    amount: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray, model: np.ndarray, y: np.ndarray, resolved: np.ndarray,
           amount: np.ndarray) -> _DateLabels:
        """From ``label_arrays``' (rows, model, y, resolved dates, amount)."""
        outcome = outcome_codes(y)
        if not np.array_equal(_Y_OF_OUTCOME[outcome], y, equal_nan=True):
            raise AssertionError("labels other than 0, 1 or missing")
        days = resolved.astype("datetime64[D]").view(np.int64)
        days = np.where(np.isnat(resolved), _NO_DAY, days).astype(np.int32)
        return cls(rows=rows.astype(np.int32), model=model, outcome=outcome, resolved=days,
                   amount=amount)

    def take(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(``y`` (float64), resolved dates (``datetime64[s]``, NaT when censored),
        amount) of the rows at positions ``keep``."""
        days = self.resolved[keep]
        resolved = np.where(days == _NO_DAY, np.datetime64("NaT"),
                            days.astype("datetime64[D]")).astype("datetime64[s]")
        return _Y_OF_OUTCOME[self.outcome[keep]], resolved, self.amount[keep]


def _holdout_dates(sampling: Sampling, dates: list[date], counts: np.ndarray
                   ) -> tuple[np.ndarray, tuple[pd.Timestamp, pd.Timestamp] | None]:
    """Which dates are the holdout's (a bool per date) and its period, by the sampling's
    rule on the censored share of each date holding rows (``counts``: per date, model and
    outcome), exactly the shares the split reads off the weighted sample."""
    in_holdout = np.zeros(len(dates), dtype=bool)
    if sampling.holdout is None or not len(dates):
        return in_holdout, None
    per_date = counts.sum(axis=1)
    total = per_date.sum(axis=1)
    held = total > 0
    shares = pd.Series(per_date[held, CENSORED] / total[held],
                       index=pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[s]")[held]))
    period = sampling.holdout(shares.sort_index())
    if period is not None:
        days = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[s]"))
        in_holdout = np.asarray((days >= period[0]) & (days <= period[1]))
    return in_holdout, period


def _rates_of(counts: np.ndarray, rule: Callable[[dict], dict]) -> dict:
    return rule({m: tuple(int(c) for c in counts[i]) for i, m in enumerate(MODELS)})


def _sampled_chunks(prep: Prepared, dates: list[date], label_kw: dict,
                    sampling: Sampling, stats: TrainingSetStats,
                    stage: StageHook) -> Iterator[pd.DataFrame]:
    per_date: list[_DateLabels] = []
    counts = np.zeros((len(dates), len(MODELS), 3), dtype=np.int64)  # date, model, outcome
    for d, as_of in enumerate(dates):
        with stage("labels"):
            lab = _DateLabels.of(*label_arrays(prep, as_of, **label_kw))
        for m in range(len(MODELS)):
            counts[d, m] = np.bincount(lab.outcome[lab.model == m], minlength=3)
        per_date.append(lab)
    with stage("sampling"):
        in_holdout, period = _holdout_dates(sampling, dates, counts)
        rates = _rates_of(counts[~in_holdout].sum(axis=0), sampling.rates)
        holdout_rates = _rates_of(counts[in_holdout].sum(axis=0), sampling.holdout_rates)
    stats.labelled_rows = int(counts.sum())
    stats.rates = rates
    if period is not None:
        stats.holdout = period
        stats.holdout_rates = holdout_rates
    for i, as_of in enumerate(dates):
        lab = per_date[i]
        per_date[i] = None  # type: ignore[call-overload]  # free as we go
        with stage("sampling"):
            keep, weight = sample_rows(lab.model, lab.outcome,
                                       day=day_number(as_of), seed=sampling.seed,
                                       rates=holdout_rates if in_holdout[i] else rates)
            accounts = lab.rows[keep].astype(np.int64)
        with stage("features"):
            _, feats = _kernels.feature_columns(prep, as_of, accounts=accounts,
                                                materiality=label_kw["materiality"])
            y, resolved, amount = lab.take(keep)
            labels = {
                "model": pd.Series(np.asarray(MODELS, dtype=object)[lab.model[keep]],
                                   dtype="str"),
                "y": y,
                "label_resolved_date": resolved,
                "censored": np.isnan(y),
                "delinquent_amount": amount,
            }
            frame = _frame(prep, accounts, feats, labels, weight)
        yield frame


@dataclass
class TrainingSetStats:
    """What building a training set counted: ``rows`` kept (in the frame or file),
    ``labelled_rows`` (every (account, ``as_of``) of the grid; equal to ``rows`` without
    sampling), ``rates`` per model (positive, negative; empty without sampling: the
    training period's when there is a holdout), ``holdout`` (first and last ``as_of`` of
    the validation and test periods sampled apart, ``None`` when none) and
    ``holdout_rates`` (theirs), and ``path`` of the Parquet file when one was written."""

    rows: int = 0
    labelled_rows: int = 0
    rates: dict[str, tuple[float, float]] = field(default_factory=dict)
    path: Path | None = None
    holdout: tuple[pd.Timestamp, pd.Timestamp] | None = None
    holdout_rates: dict[str, tuple[float, float]] = field(default_factory=dict)


def _chunks(book: Book, dates: Iterable[date | pd.Timestamp], *, delinquency_dpd: int,
            persistence_days: int, data_end: date | pd.Timestamp | None,
            sampling: Sampling | None, stats: TrainingSetStats, materiality: Materiality,
            stages: StageHook | None = None,
            prepared: Prepared | None = None,
            grace_days: int = DEFAULT_GRACE_DAYS,
            ) -> tuple[Prepared, dict, Iterator[pd.DataFrame]]:
    end = default_data_end(book) if data_end is None else as_day(data_end)
    label_kw = dict(delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
                    data_end=end, materiality=materiality)
    stage = stages or no_stage
    with stage("labels"):  # the book's encoding serves labels and features alike
        prep = _prep.prepare(book) if prepared is None else prepared
    days = [as_day(d) for d in dates]
    if sampling is None:
        chunks = _full_chunks(prep, days, label_kw, stage)
    else:
        chunks = _sampled_chunks(prep, days, label_kw, sampling, stats, stage)
    if book.has_events:  # the collections loop's features (issue 17), date by date
        with stage("features"):  # event rows matched to accounts once, not once per date
            loop = LoopRows(book, prep.account_ids, grace_days=grace_days)
        chunks = _with_loop(chunks, loop, stage)
    return prep, label_kw, chunks


def _with_loop(chunks: Iterator[pd.DataFrame], loop: LoopRows,
               stage: StageHook) -> Iterator[pd.DataFrame]:
    for chunk in chunks:
        with stage("features"):
            out = loop.features(chunk)
        yield out


def _empty(prep: Prepared, label_kw: dict, sampling: Sampling | None) -> pd.DataFrame:
    end = label_kw["data_end"]
    frame = _kernels.features_frame(prep, end, materiality=label_kw["materiality"]).iloc[:0]
    frame = frame.merge(labels_frame(prep, end, **label_kw).iloc[:0], on=["account_id", "as_of"])
    if sampling is not None:
        frame[WEIGHT] = pd.Series(dtype=np.float64)
    return frame


def build_training_set(book: Book, *, as_of_dates: Iterable[date | pd.Timestamp],
                       delinquency_dpd: int = DELINQUENT_DPD,
                       persistence_days: int = PERSISTENCE_DAYS,
                       data_end: date | pd.Timestamp | None = None,
                       sampling: Sampling | None = None,
                       materiality: Materiality = DEFAULT_MATERIALITY,
                       stages: StageHook | None = None,
                       prepared: Prepared | None = None,
                       grace_days: int = DEFAULT_GRACE_DAYS) -> pd.DataFrame:
    """Stacked ``build_features`` rows joined with ``build_labels`` on (account_id, as_of).

    One row per account with an open invoice at each date; columns are the feature frame's
    followed by ``model``, ``y``, ``label_resolved_date``, ``censored`` and
    ``delinquent_amount``. Censored rows are kept (filter on ``censored`` to train).
    Segments and labels count past-due amounts under ``materiality``.

    With ``sampling`` (:class:`features.pit.sampling.Sampling`), only the sampled rows
    are computed and kept, in the same order, and a ``weight`` column follows (every
    weight 1.0 where a population is kept in full). Without it, every row, no weight
    column: the frame of earlier releases. ``stages`` (a :data:`StageHook`) times the
    ``labels``, ``sampling`` and ``features`` stages. ``prepared``: ``book`` already
    encoded (``features.pit.snapshot.prepare_book``), so it is not encoded again.

    A book with promises or contacts (``Book.has_events``) gets the collections loop's
    features appended (``features.pit.loop``; ``grace_days`` of the promises): missing
    before each source's recorded-since day. A book without them: the frame as before.
    """
    prep, label_kw, chunks = _chunks(
        book, as_of_dates, delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
        data_end=data_end, sampling=sampling, stats=TrainingSetStats(),
        materiality=materiality, stages=stages, prepared=prepared, grace_days=grace_days)
    parts = list(chunks)
    if not parts:
        return _empty(prep, label_kw, sampling)
    del prep, chunks  # the encoding (~3 GB at 1M accounts) is freed before the stacking
    return pd.concat(parts, ignore_index=True)


def write_training_set(book: Book, path: Path | str, *,
                       as_of_dates: Iterable[date | pd.Timestamp],
                       delinquency_dpd: int = DELINQUENT_DPD,
                       persistence_days: int = PERSISTENCE_DAYS,
                       data_end: date | pd.Timestamp | None = None,
                       sampling: Sampling | None = None,
                       materiality: Materiality = DEFAULT_MATERIALITY,
                       stages: StageHook | None = None,
                       grace_days: int = DEFAULT_GRACE_DAYS) -> TrainingSetStats:
    """:func:`build_training_set`, streamed: each ``as_of`` date's rows are computed and
    appended to the Parquet file ``path`` (one row group per date), so memory holds one
    date's features at a time (plus, when sampling, the compact labels of the grid).
    The file holds the same rows, columns and values as the frame; timestamps come back
    from Parquet in milliseconds (``pipelines.steps.read_training_set`` casts them back).
    Written to ``path`` + ``.tmp`` then renamed: a crash leaves no half file at ``path``.
    ``stages``: as in :func:`build_training_set` (writing the file counts as ``features``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    stats = TrainingSetStats(path=path)
    prep, label_kw, chunks = _chunks(
        book, as_of_dates, delinquency_dpd=delinquency_dpd, persistence_days=persistence_days,
        data_end=data_end, sampling=sampling, stats=stats, materiality=materiality,
        stages=stages, grace_days=grace_days)
    stage = stages or no_stage
    writer = None
    try:
        for chunk in chunks:
            with stage("features"):
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
            stats.rows += len(chunk)
        if writer is None:  # an empty grid: an empty file with the frame's columns
            empty = pa.Table.from_pandas(_empty(prep, label_kw, sampling), preserve_index=False)
            writer = pq.ParquetWriter(tmp, empty.schema)
            writer.write_table(empty)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    if sampling is None:
        stats.labelled_rows = stats.rows
    return stats
