"""Steps of the collections loop (issue 17): the workbench's events in training, and which
loop features a model may use.

:func:`with_store_events` adds the events recorded in the worklist store (promises,
contacts, disputes: ``serving.loop_events``) to a staged book before a training set is
built; scoring reads them itself (``serving.score_run.score_into_store``, in the store it
writes). :func:`model_features` decides whether the loop features are model inputs: only
when each of their sources was recorded since before the validation period starts (so the
validation and test periods never see a feature that is missing because nothing was
recorded yet); otherwise the models train on the base features exactly as before. Its
lines say from when each source is recorded and whether it is used, for the training
report. No Prefect, no "now".
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from features.contract.book import Book
    from models.train import TrainConfig


def with_store_events(settings: Settings, book: Book, *, as_of: date | None = None) -> Book:
    """``book`` plus the events the store holds, recorded strictly before ``as_of``
    (default: the day after the book's last date). The book itself when there is no store
    yet (training before any scoring run), it holds no event, or it awaits a schema
    upgrade (the next scoring run applies it). Never creates or changes a store."""
    from serving.loop_events import book_with_events
    from serving.store import WorklistStore
    from serving.store_io import StoreMissingError
    from serving.store_migrate import StoreVersionError

    day = as_of or (book.last_date.date() + timedelta(days=1))
    try:
        with WorklistStore(settings.resolved_store_url, read_only=True) as store:
            events = store.read_loop_events(as_of=day)
    except (StoreMissingError, StoreVersionError):  # none yet, or the next run upgrades it
        return book
    return book_with_events(book, events)


def model_features(frame: pd.DataFrame, *, config: TrainConfig
                   ) -> tuple[list[str] | None, list[str]]:
    """(model input names, report lines) for the training set ``frame``.

    ``None`` (the models' default, the base features) when ``frame`` has no loop features,
    or when a source of theirs was not recorded since before the validation period starts
    (its features are then dropped: all of them, so the feature-set version is the base
    one); else the base features plus the loop features.
    """
    import pandas as pd

    from features.spec import FEATURE_COLUMNS, LOOP_FEATURE_COLUMNS, LOOP_SOURCES
    from models.train import split_bounds

    if not all(c in frame.columns for c in LOOP_FEATURE_COLUMNS):
        return None, []
    start = pd.Timestamp(split_bounds(frame, config=config).val_start)
    # A source is recorded at an as_of when its always-defined count is not missing there.
    probes = {"promises": "amt_open_promises", "contacts": "n_contacts_30d",
              "disputes": "n_disputes_opened_90d"}
    lines, covered = [], True
    as_of = pd.to_datetime(frame["as_of"])
    for source, probe in probes.items():
        known = as_of[frame[probe].notna()]
        since = known.min() if len(known) else None
        ok = since is not None and since <= start
        covered &= ok
        when = "never" if since is None else f"from {since.date()}"
        lines.append(f"loop features: {source} recorded {when}; validation starts "
                     f"{start.date()}: {'covered' if ok else 'not covered'}")
    used = covered and set(LOOP_SOURCES.values()) == set(probes)
    lines.append("loop features " + ("used (promises, contacts, disputes cover the validation "
                                     "and test periods)" if used else
                                     "not used: the models train on the base features"))
    return ([*FEATURE_COLUMNS, *LOOP_FEATURE_COLUMNS] if used else None), lines
