"""Reads of the store for the API: worklist pages (keyset), one account, score history.

Keyset pagination, never OFFSET: a page is "the next ``limit`` rows after the last one
seen" in the chosen order, so page 1,000 costs what page 1 costs and rows never repeat or
vanish between pages. The order is always total: the sort key, then ``rank`` (unique in a
run). A missing probability (an aging-rule row on thin data) or DPD sorts last.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import sqlalchemy as sa

from models.gate import RULE
from serving import store_rows, store_totals
from serving import store_schema as S
from serving.store_events import account_directory, account_state
from workbench.schemas import Sort

#: One run's rows, wherever they are: every statement on them runs on the connection
#: :func:`serving.store_rows.run_rows` returns for the run (its file or the store's table).
_W = store_rows.run_worklist
#: Sort key expression (descending) of each non-rank sort; nulls become the lowest value.
#: The store's expressions, each with its index (``ix_worklist_<sort>``).
_KEYS: dict[Sort, Any] = {sort: store_rows.SORT_KEYS[sort.value]
                          for sort in (Sort.PROBABILITY, Sort.BALANCE, Sort.DPD)}
MAX_PAGE = 500


class CursorError(ValueError):
    """A page cursor that this sort did not produce."""


@dataclass(frozen=True)
class Filters:
    """Worklist filters (None: no filter). ``snoozed``: True only snoozed accounts, False
    only those not snoozed, as of ``today``. ``assignee``: a username, or ``""`` for
    unassigned accounts."""

    segment: str | None = None
    action: str | None = None
    region: str | None = None
    assignee: str | None = None
    snoozed: bool | None = None
    #: Account id prefix (case-sensitive; a range on the account index, never LIKE).
    account_prefix: str | None = None
    #: Account name prefix (case-insensitive: a range on ``lower(name)``, never LIKE).
    name_prefix: str | None = None
    #: Account id prefix *or* name prefix (the pages' one search box).
    search: str | None = None

    @property
    def searching(self) -> bool:
        """True when an id or name prefix narrows the rows to a few accounts."""
        return bool(self.search or self.name_prefix or self.account_prefix)

    @property
    def precomputed(self) -> bool:
        """True when only segment, action and region filter: the totals are then read
        from the run's precomputed totals (:mod:`serving.store_totals`)."""
        return (self.assignee is None and self.snoozed is None and not self.account_prefix
                and not self.name_prefix and not self.search)


def encode_cursor(sort: Sort, key: float | None, rank: int) -> str:
    raw = json.dumps([sort.value, key, rank]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str) -> tuple[float | None, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, key, rank = json.loads(raw)
        if name != sort.value or not isinstance(rank, int) or isinstance(rank, bool):
            raise ValueError
        if key is not None and (isinstance(key, bool) or not isinstance(key, int | float)):
            raise ValueError
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CursorError(f"cursor {cursor[:40]!r} is not a cursor of sort {sort.value!r}; "
                          "start again without `after`") from exc
    return key, rank


#: The largest code point: every string starting with ``p`` sorts in [p, p + _MAX).
_MAX = "\U0010ffff"


def _shape(filters: Filters) -> tuple[Any, ...]:
    """What decides the statement of ``filters`` (which filters, not their values): the
    statements are built once per shape (:func:`_statement`) and run with :func:`_values`."""
    assignee = None if filters.assignee is None else bool(filters.assignee)
    return (filters.segment is not None, filters.action is not None,
            filters.region is not None, assignee, filters.snoozed,
            bool(filters.account_prefix), bool(filters.name_prefix), bool(filters.search))


def _values(*, run_id: str, filters: Filters, today: date) -> dict[str, Any]:
    """The bound values of ``filters``' statement (names of :func:`_filtered`'s params)."""
    values: dict[str, Any] = {"run_id": run_id}
    for name in ("segment", "action", "region"):
        if getattr(filters, name) is not None:
            values[name] = getattr(filters, name)
    if filters.assignee:
        values["assignee"] = filters.assignee
    if filters.snoozed is not None:
        values["today"] = today
    # Ranges, never LIKE (which would scan, and read % and _ in the prefix as wildcards).
    for name, prefix in (("account", filters.account_prefix), ("search_id", filters.search)):
        if prefix:
            values[f"{name}_lo"], values[f"{name}_hi"] = prefix, prefix + _MAX
    for name, prefix in (("name", filters.name_prefix), ("search_name", filters.search)):
        if prefix:
            values[f"{name}_lo"], values[f"{name}_hi"] = prefix.lower(), prefix.lower() + _MAX
    return values


def _filtered(query: sa.Select[Any], *, shape: tuple[Any, ...],
              by_account: bool = False) -> sa.Select[Any]:
    """``query`` over the run's worklist rows (joined to state and directory) that pass the
    filters of ``shape`` (:func:`_shape`; values bound by name, :func:`_values`): the one
    definition the pages, the totals and the API share. ``by_account``: a search's rows
    are found through the account index (:func:`_searched`), not by walking the run."""
    st, d = account_state, account_directory
    segment, action, region, assignee, snoozed, account, name, search = shape
    query = query.select_from(_W.outerjoin(st, st.c.account_id == _W.c.account_id)
                              .outerjoin(d, d.c.account_id == _W.c.account_id))
    query = query.where(_W.c.run_id == _RUN_ID)
    if by_account and search:
        query = query.where(_W.c.account_id.in_(_searched()))
    if segment:
        query = query.where(_W.c.segment == sa.bindparam("segment"))
    if action:
        query = query.where(_W.c.action == sa.bindparam("action"))
    if region:
        query = query.where(d.c.region == sa.bindparam("region"))
    if assignee is not None:
        query = query.where(st.c.assignee == sa.bindparam("assignee") if assignee
                            else st.c.assignee.is_(None))
    if snoozed is not None:
        today = sa.bindparam("today", type_=sa.Date)
        held = sa.and_(st.c.snoozed_until.is_not(None), st.c.snoozed_until > today)
        query = query.where(held if snoozed else ~held)
    if account:
        query = query.where(_range(_W.c.account_id, "account"))
    if name:
        query = query.where(_W.c.account_id.in_(_named("name")))
    if search:
        query = query.where(sa.or_(_range(_W.c.account_id, "search_id"),
                                   _W.c.account_id.in_(_named("search_name"))))
    return query


_RUN_ID: Final = sa.bindparam("run_id", type_=sa.String)


def _ids_in_run(name: str) -> sa.Select[Any]:
    """Account ids of the run's rows in the range ``name``: one range of the account
    index ``(run_id, account_id)``."""
    w = _W.alias("by_id")
    return sa.select(w.c.account_id).where(w.c.run_id == _RUN_ID, _range(w.c.account_id, name))


def _searched() -> sa.CompoundSelect:
    """The account ids a narrow search reads (its id prefix's in the run, its name
    prefix's in the directory), as one list: SQLite then looks each up in the account
    index ``(run_id, account_id)``; with the search's ``OR`` it would walk the whole run
    through an index starting with ``run_id`` (without statistics it takes an equality on
    the first column of an index for ~10 rows)."""
    return sa.union(_ids_in_run("search_id"), _named("search_name"))


def _range(column: Any, name: str) -> Any:
    """``column`` in [``<name>_lo``, ``<name>_hi``): an index range."""
    return sa.and_(column >= sa.bindparam(f"{name}_lo", type_=sa.String),
                   column < sa.bindparam(f"{name}_hi", type_=sa.String))


def _named(name: str) -> sa.Select[Any]:
    """Ids of the directory's accounts whose lower-cased name is in the range ``name``."""
    d = account_directory
    return sa.select(d.c.account_id).where(_range(sa.func.lower(d.c.name), name))


def worklist_page(conn: sa.Connection, *, run_id: str, filters: Filters, sort: Sort,
                  after: str | None, limit: int, today: date) -> tuple[list[dict], str | None]:
    """One page of the run's worklist and the cursor of the next (None at the end)."""
    conn = store_rows.run_rows(conn, run_id)
    statement, values = _page_statement(
        run_id=run_id, filters=filters, sort=sort, after=after, limit=limit, today=today,
        narrow=narrow_search(conn, run_id=run_id, filters=filters))
    result = conn.execute(statement, values)
    keys = tuple(result.keys())
    rows = [dict(zip(keys, r, strict=True)) for r in result.all()]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = None
    if more and rows:
        last_row = rows[-1]
        cursor = encode_cursor(sort, last_row.get("_key"), int(last_row["rank"]))
    for r in rows:
        r.pop("_key", None)
    return rows, cursor


#: A search matching at most this many of a run's accounts is read through the account
#: index and then sorted; a broader one walks the sort's index and filters (it fills a
#: page early).
NARROW_SEARCH = 2000


def narrow_search(conn: sa.Connection, *, run_id: str, filters: Filters) -> bool:
    """Whether ``filters`` search for at most :data:`NARROW_SEARCH` accounts of the run
    (each prefix's matches counted through the account index up to one more than that:
    their sum bounds the accounts the search matches)."""
    if not filters.searching:
        return False
    conn = store_rows.run_rows(conn, run_id)
    search = Filters(search=filters.search, name_prefix=filters.name_prefix,
                     account_prefix=filters.account_prefix)
    n = conn.execute(_probe(_shape(search)),
                     _values(run_id=run_id, filters=search, today=date.min)).scalar_one()
    return int(n) <= NARROW_SEARCH


@functools.lru_cache(maxsize=64)
def _probe(shape: tuple[Any, ...]) -> sa.Select[Any]:
    """The statement of :func:`narrow_search` for a search of ``shape`` (built once): the
    run's accounts each of its prefixes matches, counted up to ``NARROW_SEARCH + 1`` each
    and added (at least the accounts the search matches: a bound, read lazily through the
    account index, where counting their union would first read all of them)."""
    *_, account, name, search = shape
    by_id = [_ids_in_run(n) for n, on in (("account", account), ("search_id", search)) if on]
    by_name = [sa.select(_W.c.account_id).where(_W.c.run_id == _RUN_ID,
                                                _W.c.account_id.in_(_named(n)))
               for n, on in (("name", name), ("search_name", search)) if on]
    arms = [*by_id, *by_name]
    counts = [sa.select(sa.func.count()).select_from(
        arm.limit(NARROW_SEARCH + 1).subquery()).scalar_subquery() for arm in arms]
    return sa.select(functools.reduce(lambda a, b: a + b, counts))


def _page_values(sort: Sort, after: str | None, limit: int) -> dict[str, Any]:
    """The bound values of a page statement's cursor and limit (:func:`_page`)."""
    values: dict[str, Any] = {"limit": limit + 1}
    if after is not None:
        last, rank = decode_cursor(sort, after)
        if sort is not Sort.PRIORITY and last is None:
            raise CursorError("cursor without a sort key; start again without `after`")
        values["after_rank"] = rank
        if sort is not Sort.PRIORITY:
            values["after_key"] = last
    return values


def page_query(*, run_id: str, filters: Filters, sort: Sort, after: str | None, limit: int,
               today: date, narrow: bool = False) -> sa.Select[Any]:
    """The statement of :func:`worklist_page`, its values bound: ``limit + 1`` rows (one
    more tells whether there is a next page), in the sort's order from its index
    (``ix_worklist_<sort>``), or, for a ``narrow`` search (:func:`narrow_search`),
    through the account index."""
    statement, values = _page_statement(run_id=run_id, filters=filters, sort=sort,
                                        after=after, limit=limit, today=today, narrow=narrow)
    return statement.params(**values)


def _page_statement(*, run_id: str, filters: Filters, sort: Sort, after: str | None,
                    limit: int, today: date,
                    narrow: bool) -> tuple[sa.Select[Any], dict[str, Any]]:
    """A page's cached statement (:func:`_page`) and the values to run it with."""
    return (_page(_shape(filters), sort, after is not None, narrow),
            {**_values(run_id=run_id, filters=filters, today=today),
             **_page_values(sort, after, limit)})


@functools.lru_cache(maxsize=256)
def _page(shape: tuple[Any, ...], sort: Sort, after: bool, narrow: bool) -> sa.Select[Any]:
    """The page statement of a filter ``shape``, sort and cursor (built once, values bound
    at execution: building and keying it cost more than running it)."""
    st, d = account_state, account_directory
    cols = [c for c in _W.c if c.name in _ITEM_COLUMNS]
    query = _filtered(
        sa.select(*cols, d.c.name, d.c.region, st.c.assignee, st.c.snoozed_until),
        shape=shape, by_account=narrow)
    # A narrow search: the order expressions are "+ 0" so that SQLite cannot walk a sort
    # index instead (filtering the whole run) as it would, assuming most rows match.
    rank = _W.c.rank + 0 if narrow else _W.c.rank
    after_rank = sa.bindparam("after_rank", type_=sa.Integer)
    if sort is Sort.PRIORITY:
        query = query.order_by(rank)
        if after:
            query = query.where(_W.c.rank > after_rank)
    else:
        key = _KEYS[sort]
        order = key + 0 if narrow else key
        query = query.add_columns(key.label("_key")).order_by(order.desc(), rank)
        if after:
            last = sa.bindparam("after_key", type_=sa.Double)
            # "key <= last" first: a bound SQLite seeks the index to (the OR alone it
            # tests on every entry from the run's first: a page at depth d walked d rows).
            query = query.where(key <= last,
                                sa.or_(key < last, sa.and_(key == last, _W.c.rank > after_rank)))
    return query.limit(sa.bindparam("limit", type_=sa.Integer))


_ITEM_COLUMNS = ("rank", "account_id", "segment", "open_balance", "past_due_amount",
                 "oldest_dpd", "model", "probability", "priority", "action", "reason_1",
                 "reason_2", "reason_3", "mitigating_reason", "reasons_json", "model_version",
                 "scorer", "calibration")


def account_row(conn: sa.Connection, *, run_id: str, account_id: str) -> dict | None:
    """The account's worklist row in the run with its directory and state (index lookup)."""
    conn = store_rows.run_rows(conn, run_id)
    row = conn.execute(_ACCOUNT_ROW, {"run_id": run_id, "account_id": account_id}).first()
    return None if row is None else dict(row._mapping)


def score_history(conn: sa.Connection, account_id: str, *, limit: int = 400) -> list[dict]:
    """The account's row in every published run, oldest ``as_of`` first."""
    rows = conn.execute(_SCORE_HISTORY, {"account_id": account_id, "limit": limit}).all()
    return [dict(x._mapping) for x in reversed(rows)]


#: The published runs' ids (one per ``as_of``), read from the partial index
#: ``ux_runs_current_as_of``. An account's rows across runs are each run's entry of
#: ``worklist_history``'s key ``(run_id, account_id)`` (revision 0010: a run's own rows
#: may be in a file of their own), looked up from these (a few hundred runs).
#: The predicate is the index's own text: SQLite uses a partial index only for a query
#: whose WHERE has its very term (``is_current``, not the ``is_current = 1`` SQLAlchemy
#: writes for a boolean column); uncorrelated, so that it reads ``runs`` of its own.
_PUBLISHED: Final = (sa.select(S.runs.c.run_id)
                     .where(sa.literal_column("runs.is_current"))
                     .correlate(None))


def _account_statements() -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The statements of :func:`account_row` and :func:`score_history`, values bound at
    execution (built once: building and keying them cost more than running them; the
    account page runs both)."""
    st, d, r = account_state, account_directory, S.runs
    cols = [c for c in _W.c if c.name in _ITEM_COLUMNS]
    row = (sa.select(*cols, d.c.name, d.c.region, st.c.assignee, st.c.snoozed_until)
           .select_from(_W.outerjoin(st, st.c.account_id == _W.c.account_id)
                        .outerjoin(d, d.c.account_id == _W.c.account_id))
           .where(_W.c.run_id == sa.bindparam("run_id", type_=sa.String),
                  _W.c.account_id == sa.bindparam("account_id", type_=sa.String)))
    h = S.worklist_history
    history = (sa.select(h.c.run_id, r.c.as_of, h.c.rank, h.c.segment, h.c.probability,
                         h.c.priority, h.c.action)
               .join(r, r.c.run_id == h.c.run_id)
               .where(h.c.run_id.in_(_PUBLISHED),
                      h.c.account_id == sa.bindparam("account_id", type_=sa.String))
               .order_by(r.c.as_of.desc())
               .limit(sa.bindparam("limit", type_=sa.Integer)))
    return row, history


_ACCOUNT_ROW, _SCORE_HISTORY = _account_statements()


def in_any_run(conn: sa.Connection, account_id: str) -> bool:
    """Whether the account has a row in a published run (any ``as_of``). Rows of a run
    still being written, failed, replaced or being deleted do not count: they are not
    published, and would vanish (lookups of ``worklist_history``'s key ``(run_id,
    account_id)``, one per published run)."""
    h = S.worklist_history
    return conn.execute(sa.select(h.c.run_id)
                        .where(h.c.run_id.in_(_PUBLISHED), h.c.account_id == account_id)
                        .limit(1)).first() is not None


def worklist_totals(conn: sa.Connection, *, run_id: str, filters: Filters,
                    today: date) -> dict[str, Any]:
    """Totals of the filtered rows (:func:`serving.store_totals.read`: ``accounts``,
    ``open_balance`` and ``at_risk`` in book currency, ``aging`` accounts and
    ``aging_balance`` open balance per bucket of the oldest invoice's DPD).

    Filters by segment, action and region only read the run's precomputed totals (a few
    rows); filters on live state (assignee, snooze, search) sum the matching rows.
    """
    if filters.precomputed:
        stored = store_totals.read(conn, run_id=run_id, segment=filters.segment,
                                   action=filters.action, region=filters.region)
        if stored is not None:
            return stored
    conn = store_rows.run_rows(conn, run_id)
    row = conn.execute(_totals(_shape(filters), narrow_search(conn, run_id=run_id,
                                                              filters=filters)),
                       _values(run_id=run_id, filters=filters, today=today)).one()
    return store_totals.as_totals(row)


@functools.lru_cache(maxsize=64)
def _totals(shape: tuple[Any, ...], narrow: bool) -> sa.Select[Any]:
    """The statement summing the rows of a filter ``shape`` (built once)."""
    return _filtered(sa.select(*store_totals.aggregates(_W.c.oldest_dpd, _W.c.open_balance,
                                                        _W.c.priority)),
                     shape=shape, by_account=narrow)


def rule_ranked(conn: sa.Connection, *, run_id: str) -> int:
    """How many of the run's rows the aging rule ranked (``scorer = 'aging_rule'``): from
    the run's precomputed totals, else counted."""
    stored = store_totals.read(conn, run_id=run_id, scorer=RULE)
    if stored is not None:
        return int(stored["accounts"])
    return int(store_rows.run_rows(conn, run_id).execute(sa.select(sa.func.count()).where(
        _W.c.run_id == run_id, _W.c.scorer == RULE)).scalar_one())


def nightly_trouble(conn: sa.Connection) -> dict[str, Any] | None:
    """The latest finished run (by ``started_at``) when it did not succeed: ``run_id``,
    ``as_of``, ``status`` ("failed", or "was blocked" when its meta says ``blocked``) and
    ``reason`` (its message); None when the latest run succeeded or there is none. The
    pages show it as a banner: analysts must know the worklist they see may be stale."""
    row = conn.execute(_LATEST_FINISHED).first()
    if row is None or row.status != "failed":
        return None
    blocked = isinstance(row.meta, dict) and bool(row.meta.get("blocked"))
    return {"run_id": row.run_id, "as_of": row.as_of,
            "status": "was blocked" if blocked else "failed",
            "reason": " ".join((row.message or "no reason recorded").split())[:300]}


#: The latest finished run (:func:`nightly_trouble`, on every page: built once).
_LATEST_FINISHED: Final = (
    sa.select(S.runs.c.run_id, S.runs.c.as_of, S.runs.c.status, S.runs.c.message,
              S.runs.c.meta)
    .where(S.runs.c.status != "running").order_by(S.runs.c.started_at.desc()).limit(1))
