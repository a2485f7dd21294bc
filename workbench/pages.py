"""The workbench pages: sign in and out here; the worklist (``/``, ``/worklist``) in
:mod:`workbench.page_worklist`, the account page in :mod:`workbench.page_account`, the run pages in
:mod:`workbench.page_run`, the audit trail in :mod:`workbench.page_audit`.

Every form carries the session's CSRF token (``csrf_token``); the login form too (an
anonymous session holds it). Pages redirect anonymous visitors to ``/login``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workbench.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    caller_or_none,
    new_session,
    session_of,
)
from workbench.security import same_secret
from workbench.users import authenticate, write_audit

router = APIRouter(include_in_schema=False)


def _set_session(request: Request, response: Response, session: dict[str, Any]) -> None:
    wb = request.app.state.wb
    response.set_cookie(SESSION_COOKIE, wb.signer.dumps(session), httponly=True,
                        samesite="strict", secure=wb.config.cookie_secure,
                        max_age=int(wb.signer.max_age_s), path="/")


def _login_page(request: Request, *, error: str | None = None, status: int = 200,
                username: str = "") -> Response:
    session = session_of(request)
    if not session or session.get("u") is not None or not session.get("csrf"):
        session = new_session(None)
    response = request.app.state.wb.templates.TemplateResponse(
        request, "login.html", {"csrf": session["csrf"], "error": error, "username": username},
        status_code=status)
    _set_session(request, response, session)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    if caller_or_none(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=64)] = "",
          password: Annotated[str, Form(max_length=200)] = "",
          csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "") -> Response:
    wb = request.app.state.wb
    session = session_of(request)
    if not session or not same_secret(csrf_token, session.get("csrf")):
        return _login_page(request, error="The form expired; please sign in again.",
                           status=403, username=username)
    key = (username.strip().lower(), request.client.host if request.client else "")
    wait = wb.limiter.retry_after(key)
    if wait is not None:
        return _login_page(request, status=429, username=username,
                           error=f"Too many failed sign-ins; try again in {wait} s.")
    user = authenticate(wb.engine, username.strip().lower(), password)
    if user is None:
        wb.limiter.failed(key)
        return _login_page(request, error="Wrong username or password.", status=401,
                           username=username)
    wb.limiter.succeeded(key)
    with wb.engine.begin() as conn:
        write_audit(conn, actor=user.username, action="session.login",
                    target=f"user:{user.username}", now=wb.config.clock())
    response = RedirectResponse("/", status_code=303)
    _set_session(request, response, new_session(user))  # a new CSRF token per sign-in
    return response


@router.post("/logout")
def logout(request: Request,
           csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "") -> Response:
    session = session_of(request)
    response = RedirectResponse("/login", status_code=303)
    if session and same_secret(csrf_token, session.get("csrf")):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# The worklist (also ``/``), account and run pages, and the vendored assets.
from workbench import (  # noqa: E402
    page_account,
    page_audit,
    page_common,
    page_run,
    page_worklist,
)

for _module in (page_common, page_worklist, page_account, page_run, page_audit):
    router.include_router(_module.router)
