"""What every workbench page shares: the signed-in caller, rendering, the vendored assets.

Pages are server-rendered (Jinja2, autoescaped: every id and name renders as text) and
enhanced with HTMX 2.0 (``static/htmx-2.0.11.min.js``, vendored: nothing is fetched at run
time, no Node build). The content security policy allows scripts and styles from this
origin only, so templates carry no inline script or style: assets are served here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from workbench.auth import Caller, caller_or_none
from workbench.queries import nightly_trouble
from workbench.users import connected

STATIC: Final = Path(__file__).with_name("static")
HTMX_FILE: Final = "htmx-2.0.11.min.js"
#: The files served under ``/static/`` (a fixed list: no path from the request is opened).
ASSETS: Final[dict[str, str]] = {
    HTMX_FILE: "text/javascript",
    "workbench.css": "text/css",
}

router = APIRouter(include_in_schema=False)


@router.get("/static/{name}")
def static(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(404, f"no asset {name!r}")
    response = FileResponse(STATIC / name, media_type=media)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def page_caller(request: Request, conn: sa.Connection | None = None) -> Caller | None:
    """The caller of a page: a signed-in browser session only (tokens are for the API);
    read on ``conn`` when given (the page's one connection)."""
    caller = caller_or_none(request, conn)
    return caller if caller is not None and caller.via == "session" else None


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def render(request: Request, caller: Caller, template: str, context: dict[str, Any],
           *, status: int = 200, conn: sa.Connection | None = None) -> Response:
    """``template`` with the signed-in user, their CSRF token (every form carries it) and
    the banner of a failed or blocked latest run (:func:`workbench.queries.nightly_trouble`,
    read on ``conn`` when given: the page's one connection)."""
    wb = request.app.state.wb
    with connected(wb.engine if conn is None else conn) as c:
        banner = nightly_trouble(c)
    return wb.templates.TemplateResponse(
        request, template, {"user": caller.user, "csrf": caller.csrf, "banner": banner,
                            **context},
        status_code=status)


def money(value: Any) -> str:
    """A book-currency amount with thousands separators, or "n/a"."""
    if value is None:
        return "n/a"
    return f"{float(value):,.2f}"


def pct(value: Any, *, missing: str = "n/a (thin data)") -> str:
    """A probability as a percentage; a missing one (aging-rule row on thin data) says so."""
    if value is None:
        return missing
    return f"{100.0 * float(value):.1f}%"
