"""A book prepared once and its features at one ``as_of``: what the nightly's steps share.

The nightly reads the book once and then asks several questions of it at the same
``as_of``: the run checks (the totals of the scored population), the receivables KPIs,
the aging rule's resolved history when a population has no champion, and the scoring
itself. Each of them used to encode the book (:func:`prepare_book`, the id matching and
the openness rule's applications) and the scoring population's features again. A
:class:`Snapshot` holds both, computed once, and the steps layer hands it explicitly to
each consumer (``features.pit.kpis.compute_kpis(prepared=...)``,
``serving.score.score_book(features=...)``, ...): no global cache, no hidden state.

Time semantics: as :func:`features.pit.build_features`: everything dated strictly before
``as_of`` is known. The prepared arrays themselves hold the whole book and do not depend on
``as_of`` (the same :class:`PreparedBook` serves any date).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from features.contract.book import Book
from features.pit import _kernels, _prep
from features.spec import DEFAULT_MATERIALITY, Materiality, as_day

#: The book encoded as flat arrays grouped by account (``features.pit._prep.Prepared``):
#: the one input of every point-in-time kernel, independent of ``as_of``.
PreparedBook = _prep.Prepared


def prepare_book(book: Book) -> PreparedBook:
    """Encode ``book`` once for the point-in-time functions that accept ``prepared=``."""
    return _prep.prepare(book)


@dataclass(frozen=True)
class Snapshot:
    """``book`` prepared once (``prepared``) and its features at ``as_of`` under
    ``materiality``, with the worklist's facts (``features``: the frame of
    ``build_features(book, as_of=as_of, facts=True, materiality=materiality)``, one row
    per account with an open invoice at ``as_of``). Consumers must not mutate it."""

    book: Book
    prepared: PreparedBook
    as_of: date
    materiality: Materiality
    features: pd.DataFrame

    def check(self, *, as_of: date | pd.Timestamp, materiality: Materiality) -> None:
        """Raise ``ValueError`` unless this snapshot is of ``as_of`` under ``materiality``
        (a consumer given a snapshot of another night would silently use wrong data)."""
        if as_day(as_of) != self.as_of or materiality != self.materiality:
            raise ValueError(
                f"the snapshot is of {self.as_of} under {self.materiality}, not of "
                f"{as_day(as_of)} under {materiality}")


def snapshot(book: Book, *, as_of: date | pd.Timestamp,
             materiality: Materiality = DEFAULT_MATERIALITY) -> Snapshot:
    """Prepare ``book`` and build its features with facts at ``as_of`` (see
    :class:`Snapshot`)."""
    day = as_day(as_of)
    prepared = _prep.prepare(book)
    features = _kernels.features_frame(prepared, day, facts=True, materiality=materiality)
    return Snapshot(book=book, prepared=prepared, as_of=day, materiality=materiality,
                    features=features)
