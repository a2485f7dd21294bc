"""The workbench's REST API (JSON; every response, errors included, in ``/openapi.json``).

Routes (all need a signed-in caller; rights per ``workbench.roles``):

- ``GET /api/worklist``: a page of a run's worklist (keyset: ``after`` = the previous
  page's ``next_cursor``), filters and sorts; ``GET /api/worklist/totals``: the totals of
  the same filtered set;
- ``GET /api/accounts/{account_id}``: scores, reasons, SHAP vector, open invoices, payment
  history, score history across runs, events;
- ``GET|POST /api/accounts/{account_id}/events``, ``GET /api/events``: recorded outcomes;
- ``GET /api/runs``, ``GET /api/runs/{run_id}``, ``GET /api/runs/{run_id}/drift``;
- ``GET /api/me``, ``POST /api/me/tokens``; admin: ``GET|POST /api/users``,
  ``PATCH /api/users/{username}``, ``POST /api/users/{username}/tokens``; managers and
  admins: ``GET /api/audit``.
"""

from __future__ import annotations

import json
import math
import typing
from datetime import date
from pathlib import Path as FilePath
from typing import Annotated, Any, Final

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter

from features.spec import SEGMENTS, EventKind
from serving import store_files
from serving.store import current_run_of
from serving.store_events import audit
from serving.store_records import RunRecord
from workbench import events as ev
from workbench import queries
from workbench.auth import Caller, CallerDep, needs
from workbench.config import AnalystScope
from workbench.history import account_history
from workbench.roles import Right, Role
from workbench.schemas import (
    AccountDetail,
    AuditPage,
    AuditRow,
    DriftRow,
    ErrorOut,
    EventPage,
    Explanation,
    Health,
    RunOut,
    RunSummary,
    ScorePoint,
    Sort,
    TokenCreated,
    UserCreated,
    UserOut,
    WorklistItem,
    WorklistPage,
    WorklistTotals,
)
from workbench.security import new_password
from workbench.users import (
    UserError,
    add_user,
    create_token,
    get_user,
    list_users,
    update_user,
    utc,
)

router = APIRouter()


def _doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    why = {400: "The body is not JSON", 401: "Not signed in (no or bad token/cookie)",
           403: "The caller's role may not do this", 404: "Not found",
           409: "Conflicts with what is recorded", 422: "Invalid request",
           429: "Too many attempts"}
    return {c: {"model": ErrorOut, "description": why[c]} for c in (401, 422, *codes)}


SegmentQ = Annotated[str | None, Query(description=f"One of {', '.join(SEGMENTS)}.")]
AccountId = Annotated[str, Path(min_length=1, max_length=64)]


def _wb(request: Request) -> Any:
    return request.app.state.wb


def _now(request: Request) -> Any:
    return _wb(request).config.clock()


def _run_record(request: Request, as_of: date | None,
                conn: sa.Connection | None = None) -> RunRecord:
    """The current run for ``as_of`` (latest if None), read on ``conn`` if given (with the
    rows that follow: one connection, one snapshot); 404 without one."""
    run = (_wb(request).store.current_run(as_of=as_of) if conn is None
           else current_run_of(conn, as_of=as_of))
    if run is None:
        when = f"as of {as_of}" if as_of else "yet"
        raise HTTPException(404, f"no published run {when}")
    return run


def _run_fields(request: Request, as_of: date | None,
                conn: sa.Connection | None = None) -> dict[str, Any]:
    """The fields of :func:`_run_record` (what a response's ``run`` holds)."""
    return _run_record(request, as_of, conn).__dict__


def _run(request: Request, as_of: date | None) -> RunOut:
    return RunOut.model_validate(_run_fields(request, as_of))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: The float fields of a worklist item: the only ones a non-finite value can reach.
_ITEM_FLOATS: Final = tuple(
    name for name, f in WorklistItem.model_fields.items()
    if f.annotation is float or float in typing.get_args(f.annotation))


def _finite_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its non-finite floats as None (in place: rows fresh from a query)."""
    for key in _ITEM_FLOATS:
        value = row.get(key)
        if value.__class__ is float and not math.isfinite(value):
            row[key] = None
    return row


#: A worklist page and its totals, validated and serialised in one call each (per-row
#: ``model_validate`` calls, and FastAPI's second pass over a returned model, cost more).
_PAGE: Final = TypeAdapter(WorklistPage)
_TOTALS: Final = TypeAdapter(WorklistTotals)


def _json(adapter: TypeAdapter[Any], value: Any) -> Response:
    """``value`` (validated by ``adapter``) as the JSON body FastAPI would send for the
    route's ``response_model`` (the same bytes and headers), serialised here once."""
    return Response(adapter.dump_json(value, by_alias=True), media_type="application/json")


@router.get("/health", response_model=Health, tags=["health"], responses={})
def health() -> Health:
    """Liveness (anonymous)."""
    return Health(status="ok")


async def _filters(  # async: pure, so it needs no worker thread
    segment: SegmentQ = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    assignee: Annotated[str | None, Query(
        max_length=64, description="A username; empty for unassigned accounts.")] = None,
    snoozed: Annotated[bool | None, Query(description="Only (not) snoozed accounts.")] = None,
    q: Annotated[str | None, Query(max_length=64, description="Account id prefix or "
                                   "account name prefix (any case).")] = None,
) -> queries.Filters:
    """The worklist filters shared by the page and its totals (query parameters)."""
    if segment is not None and segment not in SEGMENTS:
        raise HTTPException(422, f"segment must be one of {', '.join(SEGMENTS)}")
    return queries.Filters(segment=segment, action=action, region=region,
                           assignee=assignee, snoozed=snoozed, search=q or None)


FiltersDep = Annotated[queries.Filters, Depends(_filters)]


@router.get("/api/worklist", response_model=WorklistPage, tags=["worklist"],
            responses=_doc(404))
def worklist(
    request: Request, caller: CallerDep, filters: FiltersDep,
    as_of: Annotated[date | None, Query(description="Run date (default: latest).")] = None,
    sort: Sort = Sort.PRIORITY,
    after: Annotated[str | None, Query(max_length=400, description="next_cursor of the "
                                       "previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
) -> Response:
    """A page of the current run's worklist (keyset pagination; ranks are book-wide)."""
    try:
        with _wb(request).engine.connect() as conn:
            run = _run_fields(request, as_of, conn)
            rows, cursor = queries.worklist_page(
                conn, run_id=run["run_id"], filters=filters, sort=sort, after=after,
                limit=limit, today=_now(request).date())
    except queries.CursorError as exc:
        raise HTTPException(422, str(exc)) from None
    return _json(_PAGE, _PAGE.validate_python({
        "run": run, "sort": sort, "items": [_finite_row(r) for r in rows],
        "next_cursor": cursor}))


@router.get("/api/worklist/totals", response_model=WorklistTotals, tags=["worklist"],
            responses=_doc(404))
def worklist_totals(
    request: Request, caller: CallerDep, filters: FiltersDep,
    as_of: Annotated[date | None, Query(description="Run date (default: latest).")] = None,
) -> Response:
    """Totals of the filtered rows (by segment, action and region: precomputed at publish
    time; with live filters: summed)."""
    with _wb(request).engine.connect() as conn:
        run = _run_fields(request, as_of, conn)
        totals = queries.worklist_totals(conn, run_id=run["run_id"], filters=filters,
                                         today=_now(request).date())
    return _json(_TOTALS, _TOTALS.validate_python({"run": run, **totals}))


def _explanation(path: str | None, account_id: str) -> Explanation | None:
    """The account's row of the run's explanation file at ``path`` (the run record's: no
    second query for it), None when the run has none or was replaced while reading."""
    if path is None:
        return None
    try:
        # One row of ~120 values as plain Python values (an Arrow table or a pandas frame
        # of one row cost more to build than the row costs to read).
        rows = store_files.read_explanation_rows(FilePath(path), [account_id])
    except FileNotFoundError:
        return None
    if not rows:
        return None
    row = {k: _finite(v) for k, v in rows[0].items()}
    features: dict[str, dict[str, Any]] = {}
    for col, value in row.items():
        if col.startswith("shap_"):
            name = col[len("shap_"):]
            features[name] = {"value": row.get(name), "shap": value}
    return Explanation(model=row.get("model"), model_version=row.get("model_version"),
                       base_value=row.get("base_value"), raw_score=row.get("raw_score"),
                       features=features)




def _reasons(text: str | None) -> list[dict[str, Any]]:
    """The run's reasons list; an unreadable one (a run written by other code) is empty
    rather than an error: the sentences are in the row's reason columns too."""
    try:
        parsed = json.loads(text or "[]")
    except ValueError:
        return []
    return [r for r in parsed if isinstance(r, dict)] if isinstance(parsed, list) else []


def _scalar(value: Any) -> Any:
    import pandas as pd

    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return None
    return value.item() if hasattr(value, "item") else value


@router.get("/api/accounts/{account_id}", response_model=AccountDetail, tags=["accounts"],
            responses=_doc(404))
def account(request: Request, caller: CallerDep, account_id: AccountId,
            as_of: Annotated[date | None, Query()] = None) -> AccountDetail:
    """One account in the current run (or the run of ``as_of``), with its history."""
    with _wb(request).engine.connect() as conn:
        return account_detail(request, conn, account_id, as_of)


def account_detail(request: Request, conn: sa.Connection, account_id: str,
                   as_of: date | None) -> AccountDetail:
    """What ``GET /api/accounts/{account_id}`` answers, its store reads on ``conn`` (one
    connection for the run, the row, the score history and the events; the account page
    reads its caller and banner on it too); 404 when the account is not in the run."""
    wb = _wb(request)
    record = _run_record(request, as_of, conn)
    run = RunOut.model_validate(record.__dict__)
    row = queries.account_row(conn, run_id=run.run_id, account_id=account_id)
    if row is None:
        raise HTTPException(404, f"account {account_id!r} is not in run {run.run_id}")
    points = queries.score_history(conn, account_id)
    events = ev.list_events(conn, account_id=account_id, limit=200)
    reasons = _reasons(row.pop("reasons_json"))
    index = wb.history_index()
    past = (account_history(index, account_id, as_of=run.as_of) if index is not None
            else None)
    return AccountDetail(
        account_id=account_id, run=run,
        score=WorklistItem.model_validate({k: _finite(v) for k, v in row.items()}),
        reasons=reasons, explanation=_explanation(record.explanations_path, account_id),
        profile=past.profile if past else {}, history_available=past is not None,
        open_invoices=past.open_invoices if past else [],
        payments=past.payments if past else [], disputes=past.disputes if past else [],
        score_history=[ScorePoint.model_validate({k: _finite(v) for k, v in p.items()})
                       for p in points],
        events=events,
    )


@router.get("/api/accounts/{account_id}/events", response_model=EventPage, tags=["events"],
            responses=_doc())
def account_events(request: Request, caller: CallerDep, account_id: AccountId,
                   before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> EventPage:
    """The account's events, newest first (everyone with read access sees them)."""
    items = ev.list_events(_wb(request).engine, account_id=account_id, before=before,
                           limit=limit)
    return EventPage(items=items, next_before=items[-1].event_id if len(items) == limit
                     else None)


@router.post("/api/accounts/{account_id}/events", response_model=ev.EventOut,
             status_code=201, tags=["events"], responses=_doc(400, 403, 404, 409))
def record(request: Request, account_id: AccountId,
           body: Annotated[ev.EventIn, Body()],
           caller: Caller = Depends(needs(Right.RECORD))) -> ev.EventOut:
    """Record an event on the account (append-only; audited)."""
    wb = _wb(request)
    run = wb.store.current_run()
    balance = None
    with wb.engine.connect() as conn:
        row = (queries.account_row(conn, run_id=run.run_id, account_id=account_id)
               if run is not None else None)
        if row is None and not queries.in_any_run(conn, account_id):
            raise HTTPException(404, f"no account {account_id!r} in any run")
    if row is not None:
        balance = float(row["open_balance"])
    invoices = None
    # The book is read only to check an invoice the event names (a row-group decode per
    # table: the most expensive part of a note's write, and not needed for it).
    index = wb.history_index() if getattr(body, "invoice_id", None) is not None else None
    if index is not None and run is not None:
        invoices = account_history(index, account_id, as_of=run.as_of).invoice_ids or None
    facts = ev.AccountFacts(account_id=account_id, open_balance=balance, invoice_ids=invoices)
    try:
        return ev.record_event(wb.engine, body, facts=facts, user=caller.user,
                               now=_now(request),
                               assigned_only=wb.config.analyst_scope is AnalystScope.ASSIGNED)
    except ev.EventError as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get("/api/events", response_model=EventPage, tags=["events"], responses=_doc(403))
def events_list(request: Request, caller: CallerDep,
                account_id: Annotated[str | None, Query(max_length=64)] = None,
                recorded_by: Annotated[str | None, Query(max_length=64)] = None,
                kind: EventKind | None = None,
                before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> EventPage:
    """Recorded events, newest first. Analysts see their own activity; managers and admins
    everyone's."""
    from workbench.roles import can

    if not can(caller.user.role, Right.SEE_ALL_ACTIVITY):
        if recorded_by not in (None, caller.user.username):
            raise HTTPException(403, "analysts see only their own activity")
        recorded_by = caller.user.username
    items = ev.list_events(_wb(request).engine, account_id=account_id,
                           recorded_by=recorded_by, kind=kind, before=before, limit=limit)
    return EventPage(items=items, next_before=items[-1].event_id if len(items) == limit
                     else None)


# ---------------------------------------------------------------------------- runs
RunId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/api/runs", response_model=list[RunOut], tags=["runs"], responses=_doc())
def runs(request: Request, caller: CallerDep,
         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[RunOut]:
    """Scoring runs, newest first."""
    frame = _wb(request).store.list_runs()
    records = frame.iloc[::-1].head(limit).to_dict("records")
    return [RunOut.model_validate({k: _scalar(v) if not isinstance(v, dict) else v
                                   for k, v in r.items()}) for r in records]


def _record(request: Request, run_id: str) -> Any:
    frame = _wb(request).store.list_runs()
    match = frame[frame["run_id"] == run_id]
    if match.empty:
        raise HTTPException(404, f"no run {run_id!r}")
    return {k: _scalar(v) if not isinstance(v, dict) else v
            for k, v in match.iloc[0].to_dict().items()}


@router.get("/api/runs/{run_id}", response_model=RunSummary, tags=["runs"],
            responses=_doc(404))
def run_summary(request: Request, caller: CallerDep, run_id: RunId) -> RunSummary:
    """One run: counts, timings (seconds), model versions, drift flags."""
    record = _record(request, run_id)
    drift = _wb(request).store.read_drift(run_id)
    flags = drift["flag"].dropna().value_counts().to_dict() if not drift.empty else {}
    record["timings"] = {k: float(v) for k, v in (record.get("timings") or {}).items()}
    return RunSummary.model_validate({**record, "drift_flags": {str(k): int(v)
                                                               for k, v in flags.items()}})


@router.get("/api/runs/{run_id}/drift", response_model=list[DriftRow], tags=["runs"],
            responses=_doc(404))
def run_drift(request: Request, caller: CallerDep, run_id: RunId) -> list[DriftRow]:
    """PSI of every feature and of the score against the training reference."""
    _record(request, run_id)
    frame = _wb(request).store.read_drift(run_id)
    return [DriftRow.model_validate({k: _finite(_scalar(v)) for k, v in r.items()})
            for r in frame.to_dict("records")]


# ---------------------------------------------------------------------------- users
class _NewUser(ev._In):
    username: str = ev.Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    role: Role
    password: str | None = ev.Field(None, min_length=10, max_length=200, description="Omit "
                                    "to have one generated and shown once.")


class _UserChange(ev._In):
    role: Role | None = None
    disabled: bool | None = None


class _NewToken(ev._In):
    name: str = ev.Field("api", min_length=1, max_length=128)


def _user_out(user: Any) -> UserOut:
    return UserOut.model_validate(user.__dict__)


@router.get("/api/me", response_model=UserOut, tags=["users"], responses=_doc())
def me(caller: CallerDep) -> UserOut:
    """The signed-in user."""
    return _user_out(caller.user)


@router.post("/api/me/tokens", response_model=TokenCreated, status_code=201, tags=["users"],
             responses=_doc(400, 403))
def my_token(request: Request, caller: CallerDep,
             body: Annotated[_NewToken, Body()]) -> TokenCreated:
    """A new API token for the caller, shown once."""
    token = create_token(_wb(request).engine, username=caller.user.username, name=body.name,
                         actor=caller.user.username, now=_now(request))
    return TokenCreated(token=token, username=caller.user.username, name=body.name)


Admin = Annotated[Caller, Depends(needs(Right.MANAGE_USERS))]
Username = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/api/users", response_model=list[UserOut], tags=["users"], responses=_doc(403))
def users(request: Request, caller: Admin) -> list[UserOut]:
    """Every user (admin)."""
    return [_user_out(u) for u in list_users(_wb(request).engine)]


@router.post("/api/users", response_model=UserCreated, status_code=201, tags=["users"],
             responses=_doc(400, 403, 409))
def users_add(request: Request, caller: Admin,
              body: Annotated[_NewUser, Body()]) -> UserCreated:
    """Add a user (admin); a generated password is shown once."""
    password = body.password or new_password()
    try:
        user = add_user(_wb(request).engine, username=body.username, role=body.role,
                        password=password, actor=caller.user.username, now=_now(request))
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    return UserCreated(user=_user_out(user), password=None if body.password else password)


@router.patch("/api/users/{username}", response_model=UserOut, tags=["users"],
              responses=_doc(400, 403, 404, 409))
def users_change(request: Request, caller: Admin, username: Username,
                 body: Annotated[_UserChange, Body()]) -> UserOut:
    """Change a user's role or disable/enable them (admin; not yourself)."""
    if username == caller.user.username and (body.disabled or body.role not in (None,
                                                                                Role.ADMIN)):
        raise HTTPException(409, "admins cannot disable or demote themselves")
    try:
        user = update_user(_wb(request).engine, username, actor=caller.user.username,
                           now=_now(request), role=body.role, disabled=body.disabled)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    return _user_out(user)


@router.post("/api/users/{username}/tokens", response_model=TokenCreated, status_code=201,
             tags=["users"], responses=_doc(400, 403, 404))
def users_token(request: Request, caller: Admin, username: Username,
                body: Annotated[_NewToken, Body()]) -> TokenCreated:
    """A new API token for a user (admin), shown once."""
    wb = _wb(request)
    with wb.engine.connect() as conn:
        if get_user(conn, username) is None:
            raise HTTPException(404, f"no user {username!r}")
    token = create_token(wb.engine, username=username, name=body.name,
                         actor=caller.user.username, now=_now(request))
    return TokenCreated(token=token, username=username, name=body.name)


@router.get("/api/audit", response_model=AuditPage, tags=["audit"], responses=_doc(403))
def audit_list(request: Request, caller: Annotated[Caller, Depends(needs(
        Right.SEE_ALL_ACTIVITY))],
        actor: Annotated[str | None, Query(max_length=64)] = None,
        before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> AuditPage:
    """The audit trail, newest first (managers and admins)."""
    query = sa.select(audit).order_by(audit.c.audit_id.desc()).limit(limit)
    if actor is not None:
        query = query.where(audit.c.actor == actor)
    if before is not None:
        query = query.where(audit.c.audit_id < before)
    with _wb(request).engine.connect() as conn:
        rows = [AuditRow.model_validate({**r._mapping, "at": utc(r.at)})
                for r in conn.execute(query).all()]
    return AuditPage(items=rows, next_before=rows[-1].audit_id if len(rows) == limit else None)
