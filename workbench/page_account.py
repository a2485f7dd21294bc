"""The account page (``GET /accounts/{account_id}``) and its event forms
(``POST /accounts/{account_id}/events``).

The page reads exactly what ``GET /api/accounts/{account_id}`` answers (it calls that
route's function: one query path), and draws the run's exact SHAP explanation as a
server-rendered waterfall (:mod:`workbench.charts`). Each event kind has a form; a form is
validated by the API's own body model and recorded by the API's own route function, so
the rules are the same; an error is shown in place, beside the form, with status 422 (or
the rule's 403/404/409), the typed values kept.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from features.spec import ContactChannel, ContactOutcome, EventKind
from workbench import api, charts
from workbench import events as ev
from workbench.auth import CSRF_FIELD, Caller
from workbench.page_common import money, page_caller, pct, render, to_login
from workbench.roles import Right, can
from workbench.security import same_secret

router = APIRouter(include_in_schema=False)
_EVENT: Final = TypeAdapter(ev.EventIn)

#: One form per event kind: (field, label, input type, choices or None, required).
FORMS: Final[dict[str, tuple[tuple[str, str, str, tuple[str, ...] | None, bool], ...]]] = {
    EventKind.NOTE: (("note", "Note", "textarea", None, True),),
    EventKind.PROMISE: (("promised_date", "Promised date", "date", None, True),
                        ("amount", "Amount", "number", None, True),
                        ("invoice_id", "Invoice (optional)", "text", None, False)),
    EventKind.CONTACT: (("channel", "Channel", "select", tuple(ContactChannel), True),
                        ("outcome", "Outcome", "select", tuple(ContactOutcome), True),
                        ("contact_date", "Contact date (default today)", "date", None, False),
                        ("note", "Note", "textarea", None, False)),
    EventKind.PROMISE_CANCELLED: (("refers_to", "Promise event id", "number", None, True),
                                  ("reason", "Reason", "text", None, False)),
    EventKind.DISPUTE_OPENED: (("invoice_id", "Invoice", "text", None, True),
                               ("reason", "Reason", "text", None, True)),
    EventKind.DISPUTE_RESOLVED: (("refers_to", "Dispute event id", "number", None, True),
                                 ("reason", "Reason", "text", None, False)),
    EventKind.ASSIGNMENT: (("assignee", "Assignee (empty: unassign)", "text", None, False),),
    EventKind.SNOOZE: (("until", "Snooze until", "date", None, True),
                       ("reason", "Reason", "text", None, False)),
    EventKind.UNSNOOZE: (("reason", "Reason", "text", None, False),),
}
TITLES: Final = {k: str(k).replace("_", " ").capitalize() for k in FORMS}


def _as_of(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _page(request: Request, caller: Caller, account_id: str, as_of: date | None, *,
          form_errors: dict[str, str] | None = None,
          form_values: dict[str, dict[str, str]] | None = None,
          status: int = 200, conn: sa.Connection | None = None) -> Response:
    """The page; every store read on ``conn`` (the request's one connection; one is opened
    when None)."""
    if conn is None:
        with request.app.state.wb.engine.connect() as own:
            return _page(request, caller, account_id, as_of, form_errors=form_errors,
                         form_values=form_values, status=status, conn=own)
    try:
        detail = api.account_detail(request, conn, account_id, as_of)
    except HTTPException as exc:
        return render(request, caller, "account.html",
                      {"missing": str(exc.detail), "account_id": account_id, "run": None},
                      status=exc.status_code, conn=conn)
    expl = detail.explanation
    waterfall = charts.waterfall_svg(base_value=expl.base_value if expl else None,
                                     features=expl.features if expl else {})
    history = charts.history_svg([(f"{p.as_of} (rank {p.rank})", p.probability)
                                  for p in detail.score_history])
    return render(request, caller, "account.html", {
        "d": detail, "s": detail.score, "run": detail.run, "account_id": account_id,
        "waterfall": waterfall, "history_chart": history, "money": money, "pct": pct,
        "forms": FORMS, "titles": TITLES, "form_errors": form_errors or {},
        "form_values": form_values or {}, "can_record": can(caller.user.role, Right.RECORD),
        "as_of_value": detail.run.as_of.isoformat(),
        "action_url": f"/accounts/{quote(account_id, safe='')}/events",
    }, status=status, conn=conn)


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
def account_page(request: Request, account_id: str) -> Response:
    # One connection for the caller, the account's rows, its events and the banner.
    with request.app.state.wb.engine.connect() as conn:
        caller = page_caller(request, conn)
        if caller is None:
            return to_login()
        return _page(request, caller, account_id, _as_of(request.query_params.get("as_of")),
                     conn=conn)


def _message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "form"
    return f"{where}: {first.get('msg', 'invalid')}"


@router.post("/accounts/{account_id}/events", response_class=HTMLResponse)
async def record_event(request: Request, account_id: str) -> Response:
    """Record one event from its form; back to the account page (303) or the page with the
    error beside the form."""
    caller = page_caller(request)
    if caller is None:
        return to_login()
    form = await request.form()
    values = {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}
    kind = values.pop("kind", "")
    token = values.pop(CSRF_FIELD, "")
    as_of = _as_of(values.pop("as_of", None))
    back = dict(values)
    if kind not in FORMS:
        return _page(request, caller, account_id, as_of, status=422,
                     form_errors={"_": f"unknown event kind {kind[:40]!r}"})
    if not same_secret(token, caller.csrf):
        return _page(request, caller, account_id, as_of, status=403,
                     form_errors={kind: "The form expired; reload the page and try again."},
                     form_values={kind: back})
    if not can(caller.user.role, Right.RECORD):
        return _page(request, caller, account_id, as_of, status=403,
                     form_errors={kind: f"role {caller.user.role.value} may not record "
                                        "events"}, form_values={kind: back})
    fields = {name for name, *_ in FORMS[kind]}
    body: dict[str, Any] = {"kind": kind}
    for name in fields:
        if values.get(name):
            body[name] = values[name]
        elif name == "assignee":
            body[name] = None  # an empty assignee unassigns
    try:
        event = _EVENT.validate_python(body)
    except ValidationError as exc:
        return _page(request, caller, account_id, as_of, status=422,
                     form_errors={kind: _message(exc)}, form_values={kind: back})
    try:
        api.record(request, account_id, event, caller)
    except HTTPException as exc:
        return _page(request, caller, account_id, as_of, status=exc.status_code,
                     form_errors={kind: str(exc.detail)}, form_values={kind: back})
    url = f"/accounts/{quote(account_id, safe='')}"
    if as_of is not None:
        url += f"?as_of={as_of.isoformat()}"
    return RedirectResponse(url + "#events", status_code=303)
