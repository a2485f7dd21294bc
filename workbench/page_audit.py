"""The audit page (``GET /audit``, managers and admins): every write by anyone, newest
first, 100 a page (keyset on ``audit_id``: ``before`` = the last id seen), optionally one
actor's (``actor``). It reads what ``GET /api/audit`` answers (the same route function).
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from workbench import api
from workbench.page_common import page_caller, render, to_login
from workbench.roles import Right, can

router = APIRouter(include_in_schema=False)
PAGE_SIZE: Final = 100


def _json(value: Any) -> str:
    """A before/after value on one line (rendered as text by the template)."""
    return "" if value is None else json.dumps(value, sort_keys=True, default=str)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    caller = page_caller(request)
    if caller is None:
        return to_login()
    context: dict[str, Any] = {"run": None, "rows": [], "next_url": None, "error": None,
                               "actor": "", "as_json": _json}
    if not can(caller.user.role, Right.SEE_ALL_ACTIVITY):
        context["error"] = "The audit trail is for managers and admins."
        return render(request, caller, "audit.html", context, status=403)
    actor = (request.query_params.get("actor") or "").strip()[:64] or None
    before_text = request.query_params.get("before") or ""
    before = int(before_text) if before_text.isdigit() and 0 < int(before_text) < 2**62 \
        else None
    page = api.audit_list(request, caller, actor=actor, before=before, limit=PAGE_SIZE)
    keep = {"actor": actor} if actor else {}
    context.update(rows=page.items, actor=actor or "",
                   next_url=("/audit?" + urlencode({**keep, "before": page.next_before})
                             if page.next_before else None))
    return render(request, caller, "audit.html", context)
