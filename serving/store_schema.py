"""Tables of the worklist store and the checks a run's frames pass before they are written.

Five scoring tables (SQLAlchemy Core, the same DDL on SQLite and PostgreSQL), and the
workbench's users, events and audit (:mod:`serving.store_events`, on the same metadata;
:mod:`serving.store_tables` holds them all):

- ``runs``: one row per scoring run (``running`` -> ``succeeded`` | ``failed``); at most one
  run per ``as_of`` has ``is_current`` (a partial unique index enforces it).
- ``worklist``: one row per scored account and run, keyed by ``(run_id, rank)`` (a run
  published on a SQLite file store since revision 0010 has its rows in a file of its own,
  ``runs.rows_path``, in a table of the same columns: :mod:`serving.store_rows`).
- ``worklist_history``: every run's rows as the reads across runs need them (0010).
- ``explanations``: one row per run that *references* the run's explanation file: the full
  SHAP vectors and feature values of every scored account, as one wide Parquet file (see
  ``serving.store`` for why a file and not rows: measured).
- ``drift``: PSI per (model, feature) and run.

The tables are revision :data:`REVISION` of the store's Alembic migrations
(``serving/migrations``): a change here ships a new revision and moves :data:`REVISION`
(``tests/serving/test_store_migrations.py`` compares the migrated tables with these).

The checks (:func:`check_worklist`, :func:`check_explanations`, :func:`check_drift`) turn a
pandas frame into an Arrow table with the store's fixed types, or raise
:class:`StoreSchemaError` naming the offending column.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from features.spec import MODELS, SEGMENTS

STATUSES: Final = ("running", "succeeded", "failed")

#: Worklist columns in store order: name -> (Arrow type, nullable).
WORKLIST_COLUMNS: Final[dict[str, tuple[pa.DataType, bool]]] = {
    "rank": (pa.int64(), False),
    "account_id": (pa.string(), False),
    "segment": (pa.string(), False),
    "open_balance": (pa.float64(), False),
    "past_due_amount": (pa.float64(), True),
    "oldest_dpd": (pa.float64(), True),
    "model": (pa.string(), False),
    "probability": (pa.float64(), True),
    "priority": (pa.float64(), False),
    "action": (pa.string(), False),
    "reason_1": (pa.string(), True),
    "reason_2": (pa.string(), True),
    "reason_3": (pa.string(), True),
    "mitigating_reason": (pa.string(), True),
    "reasons_json": (pa.string(), True),
    "model_version": (pa.string(), True),
    # Revision 0003: which scorer ranked the row and where its probability came from;
    # None in rows written before 0003 (all ranked by a model: read as "model").
    "scorer": (pa.string(), True),
    "calibration": (pa.string(), True),
    # Revision 0006 (issue 17): why the account is off the main ranking (``HOLDS``; None:
    # in it), the date entered (promised date, snooze end) and the first as_of it is back.
    "hold": (pa.string(), True),
    "hold_date": (pa.date32(), True),
    "hold_ends": (pa.date32(), True),
    "as_of": (pa.date32(), False),
}
#: Why a worklist row is held off the main ranking: an open promise to pay (until its
#: promised date plus grace), or an analyst's snooze (until its date).
HOLDS: Final = ("promise", "snooze")
#: Worklist columns a frame may leave out (read as null: never held): worklists built
#: before the collections loop stay writable.
OPTIONAL_WORKLIST_COLUMNS: Final = ("hold", "hold_date", "hold_ends")
#: Who ranked a worklist row: a gated champion model, or the aging rule (no champion).
RULE_SCORER: Final = "aging_rule"
SCORERS: Final = ("model", RULE_SCORER)
#: Where a row's probability came from: the validation period of the last training, the
#: book's resolved history at scoring time, the smoothed rate of the row's DPD band, or
#: nowhere (``none``: too few positives; no probability, "n/a (thin data)").
CALIBRATIONS: Final = ("validation", "history", "dpd_band", "none")
#: What a null ``scorer`` (a row written before revision 0003) reads as.
LEGACY_SCORER: Final = "model"
#: Drift columns: name -> (Arrow type, nullable, required in the input frame).
DRIFT_COLUMNS: Final[dict[str, tuple[pa.DataType, bool, bool]]] = {
    "model": (pa.string(), True, False),
    "feature": (pa.string(), False, True),
    "psi": (pa.float64(), True, True),
    "flag": (pa.string(), True, False),
}
ID_LENGTH: Final = 64
#: The Alembic revision (``serving/migrations/versions``) that creates exactly these tables.
REVISION: Final = "0010"

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("early_warning_version", sa.String(ID_LENGTH)),
    sa.Column("persistence_version", sa.String(ID_LENGTH)),
    sa.Column("feature_set_version", sa.String(ID_LENGTH)),
    sa.Column("n_scored", sa.Integer),
    sa.Column("n_by_segment", sa.JSON),
    sa.Column("timings", sa.JSON),
    sa.Column("meta", sa.JSON),
    sa.Column("message", sa.Text),
    sa.Column("is_current", sa.Boolean, nullable=False),
    sa.Column("replaced_by", sa.String(ID_LENGTH)),
    # Revision 0002: when the run's process last said it is alive, and which process it
    # is (``<host>:<pid>``); None for runs written before 0002.
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("runner", sa.String(ID_LENGTH)),
    # Revision 0010: the name of the SQLite file holding the run's worklist rows, in the
    # store file's ``<db stem>_rows/`` folder (:mod:`serving.store_rows`: not a path, so a
    # store opened by another spelling of its path, or moved whole, finds it); None: in the
    # ``worklist`` table (PostgreSQL, in-memory stores, runs written before 0010).
    sa.Column("rows_path", sa.Text),
    sa.CheckConstraint(
        "status IN ('running', 'succeeded', 'failed')", name="ck_runs_status"
    ),
)
# One current run per as_of, enforced by the database itself.
sa.Index(
    "ux_runs_current_as_of",
    runs.c.as_of,
    unique=True,
    sqlite_where=runs.c.is_current,
    postgresql_where=runs.c.is_current,
)

_SQL_TYPES: Final = {
    pa.int64(): sa.Integer,
    pa.string(): sa.Text,
    pa.float64(): sa.Double,
    pa.date32(): sa.Date,
}

# No foreign key to runs here: a per-row referential check doubled PostgreSQL's COPY cost
# (measured: 2.5 s vs 1.3 s server CPU per 200k rows). Rows are only ever written by
# write_run for its own run inside the publishing transaction, and deleted with it.
worklist = sa.Table(
    "worklist",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), nullable=False),
    *(
        sa.Column(name, _SQL_TYPES[typ], nullable=nullable)
        for name, (typ, nullable) in WORKLIST_COLUMNS.items()
    ),
    sa.PrimaryKeyConstraint("run_id", "rank", name="pk_worklist"),
)
# Revision 0004: one account's rows (the workbench's account page, score history and
# searches) are index lookups, never a scan of a run's rows. Revision 0009: keyed by run
# first, so that a publish writes its entries as one range of their own instead of beside
# the same accounts' entries of every other run (half the publish's CPU in a store of 30
# runs); the reads across runs start from the published runs (``workbench.queries``).
sa.Index("ix_worklist_account", worklist.c.run_id, worklist.c.account_id)

#: Sort keys of the worklist orders other than rank, each descending with ties by
#: ``rank``: a missing probability or DPD becomes the lowest value (sorts last). The
#: constants are SQL literals, not bound parameters, so that a query's ``ORDER BY`` is the
#: very expression of its index (SQLite and PostgreSQL match expression indexes by text).
def sort_keys(table: sa.Table) -> dict[str, sa.ColumnElement[float]]:
    """:data:`SORT_KEYS` over ``table`` (a table of the worklist's columns: a run's rows
    file is read through a copy of ``worklist``, ``serving.store_rows``)."""
    return {
        "probability": sa.func.coalesce(table.c.probability, sa.literal_column("-1.0")),
        "balance": table.c.open_balance,
        "dpd": sa.func.coalesce(table.c.oldest_dpd, sa.literal_column("-1000000000.0")),
    }


SORT_KEYS: Final[dict[str, sa.ColumnElement[float]]] = sort_keys(worklist)
# Revision 0005: one index per sort key (rank's is the primary key), in the order the
# keyset pages read them: a page is an index range, whatever its depth. Revision 0008:
# segment, action and account id after the rank, so a filtered page tests its filters and
# joins the directory from the index entry, reading only passing rows from the table.
for _name, _key in SORT_KEYS.items():
    sa.Index(f"ix_worklist_{_name}", worklist.c.run_id, sa.desc(_key), worklist.c.rank,
             worklist.c.segment, worklist.c.action, worklist.c.account_id)

#: The columns of a run's rows that the reads across runs need (the account page's score
#: history, :func:`workbench.queries.in_any_run`), besides ``run_id``.
HISTORY_COLUMNS: Final = ("account_id", "rank", "segment", "probability", "priority", "action")
# Revision 0010: every run's rows as the reads across runs need them, keyed by run first
# (a publish appends one range; an account's row in each published run is one lookup).
# A run's own rows may live in a file of their own (``runs.rows_path``): these stay in
# the store, so that reads across runs never open a file per run. Written by the publish
# before its flip, deleted with the run's rows (:mod:`serving.store_publish`).
worklist_history = sa.Table(
    "worklist_history",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), nullable=False),
    *(sa.Column(name, _SQL_TYPES[WORKLIST_COLUMNS[name][0]],
                nullable=WORKLIST_COLUMNS[name][1]) for name in HISTORY_COLUMNS),
    sa.PrimaryKeyConstraint("run_id", "account_id", name="pk_worklist_history"),
    sqlite_with_rowid=False,
)

explanations = sa.Table(
    "explanations",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
)

drift = sa.Table(
    "drift",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    *(
        sa.Column(name, _SQL_TYPES[typ], nullable=nullable)
        for name, (typ, nullable, _) in DRIFT_COLUMNS.items()
    ),
    sa.PrimaryKeyConstraint("run_id", "position", name="pk_drift"),
)



class StoreSchemaError(ValueError):
    """A frame handed to the store breaks the store's schema (message names the column)."""


def _as_arrow(frame: pd.DataFrame, name: str, typ: pa.DataType, what: str) -> pa.Array:
    """Column ``name`` as an Arrow array of ``typ`` (NaN and None become null)."""
    col = frame[name]
    if col.isna().all():  # e.g. an empty frame, or reason_3 all None (pandas: float64)
        return pa.nulls(len(col), typ)
    try:
        if pa.types.is_date32(typ):
            if not pd.api.types.is_datetime64_dtype(col.dtype):
                col = pd.to_datetime(col, errors="raise")
            stamps = col.to_numpy()
            days = stamps.astype("datetime64[D]")
            if ((days != stamps) & ~np.isnat(stamps)).any():
                raise ValueError("holds times of day; dates are midnight")
            return pa.array(days, from_pandas=True).cast(pa.date32())
        if pa.types.is_string(typ) and not (
            pd.api.types.is_string_dtype(col.dtype) or pd.api.types.is_object_dtype(col.dtype)
        ):
            raise TypeError(f"dtype {col.dtype} is not a string dtype")
        arr = pa.array(col, from_pandas=True)
        if pa.types.is_integer(typ) and pa.types.is_floating(arr.type):
            whole = pc.equal(arr, pc.floor(arr))
            if not pc.all(whole).as_py():
                raise TypeError("holds non-integer numbers")
        return arr.cast(typ)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise StoreSchemaError(
            f"{what} column {name!r}: expected {typ}, got {col.dtype} ({exc})"
        ) from exc


def _check_columns(frame: pd.DataFrame, known: list[str], required: list[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise StoreSchemaError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise StoreSchemaError(f"{what} is missing column(s) {missing}")
    extra = [str(c) for c in frame.columns if c not in known]
    if extra:
        raise StoreSchemaError(f"{what} has unexpected column(s) {extra}; expected {known}")


def _no_nulls(arr: pa.Array, name: str, what: str) -> None:
    if arr.null_count:
        raise StoreSchemaError(f"{what} column {name!r} has {arr.null_count} missing value(s)")


def _one_of(arr: pa.Array, allowed: tuple[str, ...], name: str, what: str) -> None:
    bad = pc.unique(pc.filter(arr, pc.invert(pc.is_in(arr, value_set=pa.array(allowed)))))
    if len(bad):
        raise StoreSchemaError(
            f"{what} column {name!r} has value(s) {bad.to_pylist()[:5]}; allowed {list(allowed)}"
        )


def _has_nul(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a value of the string array ``arr`` holds a NUL character. The bytes of all
    its values are first tested at once (the least byte of the data buffer, read in
    place: 0.05 CPU s against the per-value search's 0.4 for the worklist's 13 text
    columns at 1M rows); only when one is 0, which may lie outside the values of a sliced
    array, are the values searched one by one."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is None or data.size == 0:
            continue
        if np.frombuffer(data, np.uint8).min() == 0 and pc.any(  # a view: no copy
                pc.match_substring(chunk, "\x00")).as_py():
            return True
    return False


def check_worklist(frame: pd.DataFrame, *, as_of: date) -> pa.Table:
    """The worklist as an Arrow table in store column order, or :class:`StoreSchemaError`.

    Rules: exactly the :data:`WORKLIST_COLUMNS` (those of :data:`OPTIONAL_WORKLIST_COLUMNS`
    may be left out: null); no missing values where not nullable; ``hold`` one of
    :data:`HOLDS`, held rows ranked after the others (each part by priority);
    ``rank`` is 1..n without gaps or ties; ``account_id`` unique; ``segment``, ``model``,
    ``scorer`` (required) and ``calibration`` (required) from the allowed sets;
    ``probability`` in [0, 1], and missing exactly where ``calibration`` is ``none``, which
    only the aging rule may be (thin data); money finite; ``priority`` does not increase
    with ``rank``; every ``as_of`` equals the run's ``as_of``.
    """
    what = "worklist"
    names = list(WORKLIST_COLUMNS)
    _check_columns(frame, names, [c for c in names if c not in OPTIONAL_WORKLIST_COLUMNS],
                   what)
    arrays: dict[str, pa.Array] = {}
    for name, (typ, nullable) in WORKLIST_COLUMNS.items():
        if name not in frame.columns:  # an optional column left out
            arrays[name] = pa.nulls(len(frame), typ)
            continue
        arr = _as_arrow(frame, name, typ, what)
        if not nullable:
            _no_nulls(arr, name, what)
        # PostgreSQL text cannot hold NUL; say so here rather than fail inside COPY.
        if pa.types.is_string(typ) and _has_nul(arr):
            raise StoreSchemaError(f"{what} column {name!r} has text with a NUL character")
        arrays[name] = arr
    n = len(frame)
    rank = arrays["rank"].to_numpy()
    if n and not np.array_equal(np.sort(rank), np.arange(1, n + 1)):
        raise StoreSchemaError(f"{what} column 'rank' must be 1..{n} without gaps or ties")
    if n and pc.count_distinct(arrays["account_id"]).as_py() != n:
        raise StoreSchemaError(f"{what} column 'account_id' has duplicate values")
    _one_of(arrays["segment"], SEGMENTS, "segment", what)
    _one_of(arrays["model"], MODELS, "model", what)
    for name, allowed in (("scorer", SCORERS), ("calibration", CALIBRATIONS)):
        # nullable in the table for rows written before 0003; every new row says it
        _no_nulls(arrays[name], name, what)
        _one_of(arrays[name], allowed, name, what)
    _check_probability(arrays, what)
    for name in ("open_balance", "priority", "past_due_amount", "oldest_dpd"):
        values = arrays[name].to_numpy(zero_copy_only=False)
        if np.isinf(values).any():
            raise StoreSchemaError(f"{what} column {name!r} has infinite values")
    _one_of(arrays["hold"].drop_null(), HOLDS, "hold", what)
    if n > 1:
        # Held rows (issue 17) are ranked after the main ranking, each part by priority.
        order = np.argsort(rank)
        by_rank = arrays["priority"].to_numpy()[order]
        held = arrays["hold"].is_valid().to_numpy(zero_copy_only=False)[order]
        same = held[1:] == held[:-1]
        if ((np.diff(by_rank) > 0) & same).any():
            raise StoreSchemaError(f"{what} column 'priority' increases with 'rank'")
        if (np.diff(held.astype(np.int8)) < 0).any():
            raise StoreSchemaError(f"{what} column 'hold': a held row is ranked before the "
                                   "main ranking")
    days = pc.unique(arrays["as_of"]).to_pylist()
    if any(d != as_of for d in days):
        raise StoreSchemaError(f"{what} column 'as_of' has {days[:3]}; the run is as of {as_of}")
    return pa.table(arrays)


def _check_probability(arrays: dict[str, pa.Array], what: str) -> None:
    """``probability`` in [0, 1]; missing exactly on aging-rule rows calibrated ``none``."""
    prob = arrays["probability"].to_numpy(zero_copy_only=False)
    missing = np.isnan(prob)
    if not ((prob[~missing] >= 0.0) & (prob[~missing] <= 1.0)).all():
        raise StoreSchemaError(f"{what} column 'probability' must be within [0, 1]")
    none = (arrays["calibration"].to_numpy(zero_copy_only=False) == "none")
    rule = (arrays["scorer"].to_numpy(zero_copy_only=False) == "aging_rule")
    if (none & ~rule).any():
        raise StoreSchemaError(
            f"{what} column 'calibration' is 'none' on {int((none & ~rule).sum())} row(s) "
            "not ranked by the aging rule: a model's probability is always calibrated"
        )
    if (missing != none).any():
        raise StoreSchemaError(
            f"{what} column 'probability' is missing on {int((missing & ~none).sum())} "
            f"row(s) whose calibration is not 'none' and present on "
            f"{int((~missing & none).sum())} whose calibration is 'none'"
        )


def check_explanations(frame: pd.DataFrame, *, account_ids: pa.Array) -> pa.Table:
    """The explanations as an Arrow table (rows in the given order), or an error.

    Wide format, one row per scored account: ``account_id`` (unique, the same set as the
    worklist's) and any other columns (feature values, ``shap_<feature>``, ``base_value``,
    ...), stored as given (no sort: a reader finds a few accounts through the
    ``account_id`` column and reads only their Parquet row groups).
    """
    what = "explanations"
    if not isinstance(frame, pd.DataFrame):
        raise StoreSchemaError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[1] == 0 and len(account_ids) == 0:
        frame = pd.DataFrame({"account_id": pd.Series(dtype="str")})
    if "account_id" not in frame.columns:
        raise StoreSchemaError(f"{what} is missing column(s) ['account_id']")
    if not all(isinstance(c, str) for c in frame.columns) or frame.columns.duplicated().any():
        raise StoreSchemaError(f"{what} column names must be unique strings")
    ids = _as_arrow(frame, "account_id", pa.string(), what)
    _no_nulls(ids, "account_id", what)
    if pc.count_distinct(ids).as_py() != len(ids):
        raise StoreSchemaError(f"{what} column 'account_id' has duplicate values")
    if len(account_ids):
        missing = pc.filter(account_ids, pc.invert(pc.is_in(account_ids, value_set=ids)))
    else:
        missing = account_ids
    if len(ids) != len(account_ids) or len(missing):
        raise StoreSchemaError(
            f"{what} must have one row per worklist account: {len(ids)} rows for "
            f"{len(account_ids)} accounts, e.g. missing {missing.to_pylist()[:3]}"
        )
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise StoreSchemaError(f"{what} cannot be stored as Parquet: {exc}") from exc
    return table.set_column(table.schema.get_field_index("account_id"), "account_id", ids)


def check_drift(frame: pd.DataFrame) -> pa.Table:
    """The drift frame (``feature``, ``psi``, optional ``model`` and ``flag``) as Arrow."""
    what = "drift"
    _check_columns(
        frame, list(DRIFT_COLUMNS), [c for c, (_, _, req) in DRIFT_COLUMNS.items() if req], what
    )
    arrays: dict[str, pa.Array] = {}
    for name, (typ, nullable, _) in DRIFT_COLUMNS.items():
        if name not in frame.columns:
            arrays[name] = pa.nulls(len(frame), typ)
            continue
        arr = _as_arrow(frame, name, typ, what)
        if not nullable:
            _no_nulls(arr, name, what)
        arrays[name] = arr
    keys = pd.DataFrame({"m": arrays["model"].to_pylist(), "f": arrays["feature"].to_pylist()})
    if keys.duplicated().any():
        raise StoreSchemaError(f"{what} has repeated (model, feature) pairs")
    return pa.table(arrays)
