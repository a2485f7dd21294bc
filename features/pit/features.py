"""Point-in-time features: what is known about each open account at ``as_of``.

Time semantics (DESIGN section 4): ``as_of`` is a date and everything dated strictly before
it is known: invoices with ``issue_date < as_of``, payments with ``payment_date < as_of``,
disputes with ``opened_date < as_of`` (resolved only if ``resolved_date < as_of``). An
invoice is *cleared* on the first day its cumulative known payments, in whole cents, reach
its amount less one cent (``features.spec.CLEAR_TOLERANCE_CENTS``); it is *open* at
``as_of`` when issued before and not cleared before ``as_of``. DPD of an open invoice =
``as_of - due_date`` in days; days late of a cleared invoice = clear date - due date
(negative = paid early).

:func:`build_features` returns one row per account with at least one open invoice (the
scored population, DESIGN section 5). Features that need history an account does not have
yet are NaN, never a zero pretending to be a fact. Every definition lives in
``features.spec.FEATURE_SPEC``; ``FEATURE_SET_VERSION`` hashes it, so any change to a
definition changes the version logged with a model.

Implementation: ids are encoded once per call (``features.pit._prep``), then one numba pass
per ``as_of`` over invoices grouped by account computes every family
(``features.pit._kernels``). ``bench/reference_features.py`` is the plain pandas oracle.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from features.contract.book import Book
from features.pit import _kernels, _prep
from features.spec import DEFAULT_MATERIALITY, Materiality, as_day


def build_features(book: Book, *, as_of: date | pd.Timestamp, facts: bool = False,
                   materiality: Materiality = DEFAULT_MATERIALITY,
                   prepared: _prep.Prepared | None = None) -> pd.DataFrame:
    """Point-in-time features of every account with an open invoice at ``as_of``.

    ``as_of`` is a day (a ``date``, or a ``pd.Timestamp`` whose date is used). Columns:
    ``account_id``, ``as_of`` (datetime64[s]), ``segment``, then :func:`feature_names`
    (amounts in dollars, durations in days, shares in 0-1; see :data:`FEATURE_SPEC`); dtypes
    are :data:`features.spec.FEATURE_DTYPES`. With ``facts``, the
    :data:`features.spec.FACT_COLUMNS` the worklist cites follow (oldest open invoice id and
    its open dollars, partial payer): same pass, same openness rule, not model inputs. Rows
    sorted by ``account_id``. Only data dated strictly before ``as_of`` is used.

    ``segment`` is the material segment (DESIGN section 5): the highest DPD band (1+, 30+,
    90+) whose open past-due amount exceeds both thresholds of ``materiality``; an account
    past due only by an immaterial residue is ``preventive``.

    ``prepared``: ``book`` already encoded (``features.pit.snapshot.prepare_book``), so it
    is not encoded again (the nightly's steps share one).
    """
    prep = _prep.prepare(book) if prepared is None else prepared
    return _kernels.features_frame(prep, as_day(as_of), facts=facts, materiality=materiality)
