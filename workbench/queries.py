"""Reads of the store for the API: worklist pages (keyset), one account, score history.

Keyset pagination, never OFFSET: a page is "the next ``limit`` rows after the last one
seen" in the chosen order, so page 1,000 costs what page 1 costs and rows never repeat or
vanish between pages. The order is always total: the sort key, then ``rank`` (unique in a
run). A missing probability (an aging-rule row on thin data) or DPD sorts last.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from models.gate import RULE
from serving import store_schema as S
from serving import store_totals
from serving.store_events import account_directory, account_state
from workbench.schemas import Sort

_W = S.worklist
#: Sort key expression (descending) of each non-rank sort; nulls become the lowest value.
#: The store's expressions, each with its index (``ix_worklist_<sort>``).
_KEYS: dict[Sort, Any] = {sort: S.SORT_KEYS[sort.value]
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


def _filtered(query: sa.Select[Any], *, run_id: str, filters: Filters,
              today: date, by_account: bool = False) -> sa.Select[Any]:
    """``query`` over the run's worklist rows (joined to state and directory) that pass
    ``filters``: the one definition the pages, the totals and the API share."""
    st, d = account_state, account_directory
    # ``by_account``: a narrow search finds its few accounts through the account index
    # (account_id, run_id); the run's equality, wrapped, no longer lures SQLite into
    # scanning the whole run instead.
    in_run = (sa.func.coalesce(_W.c.run_id, "") == run_id if by_account
              else _W.c.run_id == run_id)
    query = (query.select_from(_W.outerjoin(st, st.c.account_id == _W.c.account_id)
                               .outerjoin(d, d.c.account_id == _W.c.account_id))
             .where(in_run))
    if filters.segment is not None:
        query = query.where(_W.c.segment == filters.segment)
    if filters.action is not None:
        query = query.where(_W.c.action == filters.action)
    if filters.region is not None:
        query = query.where(d.c.region == filters.region)
    if filters.assignee is not None:
        query = query.where(st.c.assignee.is_(None) if filters.assignee == ""
                            else st.c.assignee == filters.assignee)
    if filters.snoozed is not None:
        snoozed = sa.and_(st.c.snoozed_until.is_not(None), st.c.snoozed_until > today)
        query = query.where(snoozed if filters.snoozed else ~snoozed)
    if filters.account_prefix:
        query = query.where(_id_prefix(filters.account_prefix))
    if filters.name_prefix:
        query = query.where(_W.c.account_id.in_(_named(filters.name_prefix)))
    if filters.search:
        query = query.where(sa.or_(_id_prefix(filters.search),
                                   _W.c.account_id.in_(_named(filters.search))))
    return query


def _range(column: Any, prefix: str) -> Any:
    # Every string starting with ``prefix`` sorts in [prefix, prefix + U+10FFFF): an index
    # range, where LIKE would scan (and would read % and _ in the prefix as wildcards).
    return sa.and_(column >= prefix, column < prefix + "\U0010ffff")


def _id_prefix(prefix: str) -> Any:
    return _range(_W.c.account_id, prefix)


def _named(prefix: str) -> sa.Select[Any]:
    """Ids of the directory's accounts whose name starts with ``prefix`` (any case)."""
    d = account_directory
    return sa.select(d.c.account_id).where(_range(sa.func.lower(d.c.name), prefix.lower()))


def worklist_page(conn: sa.Connection, *, run_id: str, filters: Filters, sort: Sort,
                  after: str | None, limit: int, today: date) -> tuple[list[dict], str | None]:
    """One page of the run's worklist and the cursor of the next (None at the end)."""
    query = page_query(run_id=run_id, filters=filters, sort=sort, after=after, limit=limit,
                       today=today, narrow=narrow_search(conn, run_id=run_id, filters=filters))
    rows = [dict(r._mapping) for r in conn.execute(query).all()]
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
    (counted through the account index, never more than that many rows read)."""
    if not filters.searching:
        return False
    probe = _filtered(sa.select(sa.literal(1)), run_id=run_id, by_account=True,
                      filters=Filters(search=filters.search, name_prefix=filters.name_prefix,
                                      account_prefix=filters.account_prefix),
                      today=date.min).limit(NARROW_SEARCH + 1)
    n = conn.execute(sa.select(sa.func.count()).select_from(probe.subquery())).scalar_one()
    return int(n) <= NARROW_SEARCH


def page_query(*, run_id: str, filters: Filters, sort: Sort, after: str | None, limit: int,
               today: date, narrow: bool = False) -> sa.Select[Any]:
    """The statement of :func:`worklist_page`: ``limit + 1`` rows (one more tells whether
    there is a next page), in the sort's order from its index (``ix_worklist_<sort>``),
    or, for a ``narrow`` search (:func:`narrow_search`), through the account index."""
    st, d = account_state, account_directory
    cols = [c for c in _W.c if c.name in _ITEM_COLUMNS]
    query = _filtered(
        sa.select(*cols, d.c.name, d.c.region, st.c.assignee, st.c.snoozed_until),
        run_id=run_id, filters=filters, today=today, by_account=narrow)
    # A narrow search: the order expressions are "+ 0" so that SQLite cannot walk a sort
    # index instead (filtering the whole run) as it would, assuming most rows match.
    searching = narrow
    rank = _W.c.rank + 0 if searching else _W.c.rank
    if sort is Sort.PRIORITY:
        query = query.order_by(rank)
        if after is not None:
            query = query.where(_W.c.rank > decode_cursor(sort, after)[1])
    else:
        key = _KEYS[sort]
        order = key + 0 if searching else key
        query = query.add_columns(key.label("_key")).order_by(order.desc(), rank)
        if after is not None:
            last, rank = decode_cursor(sort, after)
            if last is None:
                raise CursorError("cursor without a sort key; start again without `after`")
            query = query.where(sa.or_(key < last, sa.and_(key == last, _W.c.rank > rank)))
    return query.limit(limit + 1)


_ITEM_COLUMNS = ("rank", "account_id", "segment", "open_balance", "past_due_amount",
                 "oldest_dpd", "model", "probability", "priority", "action", "reason_1",
                 "reason_2", "reason_3", "mitigating_reason", "reasons_json", "model_version",
                 "scorer", "calibration")


def account_row(conn: sa.Connection, *, run_id: str, account_id: str) -> dict | None:
    """The account's worklist row in the run with its directory and state (index lookup)."""
    st, d = account_state, account_directory
    cols = [c for c in _W.c if c.name in _ITEM_COLUMNS]
    row = conn.execute(
        sa.select(*cols, d.c.name, d.c.region, st.c.assignee, st.c.snoozed_until)
        .select_from(_W.outerjoin(st, st.c.account_id == _W.c.account_id)
                     .outerjoin(d, d.c.account_id == _W.c.account_id))
        .where(_W.c.run_id == run_id, _W.c.account_id == account_id)
    ).first()
    return None if row is None else dict(row._mapping)


def score_history(conn: sa.Connection, account_id: str, *, limit: int = 400) -> list[dict]:
    """The account's row in every published run, oldest ``as_of`` first."""
    r = S.runs
    rows = conn.execute(
        sa.select(_W.c.run_id, r.c.as_of, _W.c.rank, _W.c.segment, _W.c.probability,
                  _W.c.priority, _W.c.action)
        .join(r, r.c.run_id == _W.c.run_id)
        .where(_W.c.account_id == account_id, r.c.is_current)
        .order_by(r.c.as_of.desc()).limit(limit)
    ).all()
    return [dict(x._mapping) for x in reversed(rows)]


def in_any_run(conn: sa.Connection, account_id: str) -> bool:
    """Whether the account has a row in a published run (any ``as_of``). Rows of a run
    still being written, failed, replaced or being deleted do not count: they are not
    published, and would vanish (index lookup on ``(account_id, run_id)``)."""
    r = S.runs
    return conn.execute(sa.select(_W.c.run_id).join(r, r.c.run_id == _W.c.run_id)
                        .where(_W.c.account_id == account_id, r.c.is_current)
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
    row = conn.execute(_filtered(
        sa.select(*store_totals.aggregates(_W.c.oldest_dpd, _W.c.open_balance,
                                           _W.c.priority)),
        run_id=run_id, filters=filters, today=today,
        by_account=narrow_search(conn, run_id=run_id, filters=filters))).one()
    return store_totals.as_totals(row)


def rule_ranked(conn: sa.Connection, *, run_id: str) -> int:
    """How many of the run's rows the aging rule ranked (``scorer = 'aging_rule'``): from
    the run's precomputed totals, else counted."""
    stored = store_totals.read(conn, run_id=run_id, scorer=RULE)
    if stored is not None:
        return int(stored["accounts"])
    return int(conn.execute(sa.select(sa.func.count()).where(
        _W.c.run_id == run_id, _W.c.scorer == RULE)).scalar_one())


def nightly_trouble(conn: sa.Connection) -> dict[str, Any] | None:
    """The latest finished run (by ``started_at``) when it did not succeed: ``run_id``,
    ``as_of``, ``status`` ("failed", or "was blocked" when its meta says ``blocked``) and
    ``reason`` (its message); None when the latest run succeeded or there is none. The
    pages show it as a banner: analysts must know the worklist they see may be stale."""
    r = S.runs
    row = conn.execute(
        sa.select(r.c.run_id, r.c.as_of, r.c.status, r.c.message, r.c.meta)
        .where(r.c.status != "running").order_by(r.c.started_at.desc()).limit(1)
    ).first()
    if row is None or row.status != "failed":
        return None
    blocked = isinstance(row.meta, dict) and bool(row.meta.get("blocked"))
    return {"run_id": row.run_id, "as_of": row.as_of,
            "status": "was blocked" if blocked else "failed",
            "reason": " ".join((row.message or "no reason recorded").split())[:300]}
