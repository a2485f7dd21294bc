"""The worklist page (``GET /`` and ``GET /worklist``): a run's ranked accounts.

The run is the current one for the picked ``as_of`` (default: the latest); the page names
it, its model versions and how many rows the aging rule ranked. Rows come from
:func:`workbench.queries.worklist_page` (the API's query: keyset pages, never OFFSET; the
"next page" link carries the cursor) and the totals of the same filtered set from
:func:`workbench.queries.worklist_totals`.

Query parameters: ``as_of``, ``segment``, ``action``, ``region``, ``assignee`` (a
username, ``-`` for unassigned), ``mine`` (``1``: assigned to me), ``snoozed`` (``yes`` /
``no``), ``q`` (account id prefix or account name prefix, any case), ``sort`` (priority,
probability, balance, dpd), ``after`` (cursor). A value the page cannot use is reported on
the page, never a 500.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from features.spec import SEGMENTS
from serving.actions import ACTIONS
from workbench import queries
from workbench.page_common import money, page_caller, pct, render, to_login
from workbench.schemas import Sort

router = APIRouter(include_in_schema=False)
PAGE_SIZE: Final = 50
#: Parameters that select the rows (kept by the pager and the sort links).
FILTER_PARAMS: Final = ("as_of", "segment", "action", "region", "assignee", "mine",
                        "snoozed", "q", "sort")


def _params(request: Request) -> dict[str, str]:
    return {k: v.strip() for k in (*FILTER_PARAMS, "after")
            if (v := request.query_params.get(k)) is not None and v.strip()}


def parse_filters(params: dict[str, str], *, username: str
                  ) -> tuple[queries.Filters, Sort, date | None, list[str]]:
    """The filters, sort and as_of the parameters ask for, and one sentence per parameter
    that was not usable (that parameter is then ignored)."""
    errors: list[str] = []
    segment = params.get("segment")
    if segment is not None and segment not in SEGMENTS:
        errors.append(f"segment must be one of {', '.join(SEGMENTS)}")
        segment = None
    as_of = None
    if "as_of" in params:
        try:
            as_of = date.fromisoformat(params["as_of"])
        except ValueError:
            errors.append("as of must be a date (YYYY-MM-DD)")
    try:
        sort = Sort(params.get("sort", Sort.PRIORITY.value))
    except ValueError:
        errors.append(f"sort must be one of {', '.join(s.value for s in Sort)}")
        sort = Sort.PRIORITY
    assignee = params.get("assignee")
    if params.get("mine") == "1":
        assignee = username
    elif assignee == "-":
        assignee = ""
    snoozed = {"yes": True, "no": False}.get(params.get("snoozed", ""))
    filters = queries.Filters(segment=segment, action=params.get("action"),
                              region=params.get("region"), assignee=assignee,
                              snoozed=snoozed, search=params.get("q"))
    return filters, sort, as_of, errors


def _url(params: dict[str, str], **change: str | None) -> str:
    merged = {**params, **change}
    return "/worklist?" + urlencode({k: v for k, v in merged.items() if v})


def _run_dates(wb: Any) -> list[date]:
    runs = wb.store.list_runs()
    if runs.empty:
        return []
    current = runs[runs["is_current"].astype(bool)]
    return sorted({d.date() if hasattr(d, "date") else d for d in current["as_of"]},
                  reverse=True)


@router.get("/", response_class=HTMLResponse)
@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(request: Request) -> Response:
    caller = page_caller(request)
    if caller is None:
        return to_login()
    wb = request.app.state.wb
    params = _params(request)
    filters, sort, as_of, errors = parse_filters(params, username=caller.user.username)
    run = wb.store.current_run(as_of=as_of)
    context: dict[str, Any] = {
        "params": params, "errors": errors, "run": run, "segments": SEGMENTS,
        "actions": ACTIONS, "sorts": [s.value for s in Sort], "sort": sort.value,
        "run_dates": _run_dates(wb), "rows": [], "totals": None, "next_url": None,
        "first_url": None, "money": money, "pct": pct, "rule_rows": None,
    }
    if run is None:
        errors.append(f"no published run as of {as_of}" if as_of else "no published run yet")
        return render(request, caller, "worklist.html", context)
    today = wb.config.clock().date()
    try:
        with wb.engine.connect() as conn:
            rows, cursor = queries.worklist_page(
                conn, run_id=run.run_id, filters=filters, sort=sort,
                after=params.get("after"), limit=PAGE_SIZE, today=today)
            totals = queries.worklist_totals(conn, run_id=run.run_id, filters=filters,
                                             today=today)
            context["rule_rows"] = queries.rule_ranked(conn, run_id=run.run_id)
    except queries.CursorError as exc:
        errors.append(str(exc))
        return render(request, caller, "worklist.html", context, status=422)
    keep = {k: v for k, v in params.items() if k != "after"}
    context.update(
        rows=rows, totals=totals,
        next_url=_url(keep, after=cursor) if cursor else None,
        first_url=_url(keep) if "after" in params else None,
        sort_urls={s.value: _url(keep, sort=s.value) for s in Sort},
        as_of_value=run.as_of.isoformat(),
    )
    return render(request, caller, "worklist.html", context)
