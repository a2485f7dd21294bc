"""The run pages: ``GET /runs`` (the runs, newest first) and ``GET /runs/{run_id}`` (one
run: summary, timings, counts per model and segment, rows the aging rule ranked, drift
flags and the PSI table, the run's KPIs when its meta holds ``"kpis"``, and each model
version's test-period metrics beside the baselines, from the model registry).

They read what ``GET /api/runs``, ``/api/runs/{id}`` and ``/api/runs/{id}/drift`` answer
(the same route functions).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from features.spec import MODELS
from serving.store_schema import RULE_SCORER
from workbench import api, queries
from workbench.page_common import money, page_caller, render, to_login

router = APIRouter(include_in_schema=False)


def flat_items(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested mapping as (dotted key, leaf) rows, for a KPI block of any shape."""
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows.extend(flat_items(inner, f"{prefix}{key}."))
        return rows
    return [(prefix.rstrip("."), value)]


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request) -> Response:
    caller = page_caller(request)
    if caller is None:
        return to_login()
    runs = api.runs(request, caller, 100)
    return render(request, caller, "runs.html", {"runs": runs, "run": None})


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    caller = page_caller(request)
    if caller is None:
        return to_login()
    try:
        summary = api.run_summary(request, caller, run_id)
        drift = api.run_drift(request, caller, run_id)
    except HTTPException as exc:
        return render(request, caller, "run.html", {"missing": str(exc.detail), "run": None,
                                                    "run_id": run_id},
                      status=exc.status_code)
    with request.app.state.wb.engine.connect() as conn:
        rule_rows = queries.rule_ranked(conn, run_id=run_id)
    kpis = summary.meta.get("kpis")
    metrics = model_metrics(request.app.state.wb, summary)
    flagged = sorted((d for d in drift if d.flag), key=lambda d: -(d.psi or 0.0))
    return render(request, caller, "run.html", {
        "s": summary, "run": summary, "run_id": run_id, "rule_rows": rule_rows,
        "drift": sorted(drift, key=lambda d: -(d.psi or 0.0)), "flagged": flagged,
        "kpis": flat_items(kpis) if isinstance(kpis, dict) else None, "money": money,
        "metrics": metrics,
    })


def model_metrics(wb: Any, summary: Any) -> dict[str, dict[str, Any]]:
    """Per model of the run that a registered version ranked: its version, the metric
    names, and scorer -> metric -> value of its training's test period (the model first,
    then the baselines). Models the aging rule ranked, or without recorded metrics, are
    left out."""
    out: dict[str, dict[str, Any]] = {}
    for model in MODELS:
        version = getattr(summary, f"{model}_version", None)
        if not version or version == RULE_SCORER:
            continue
        table = wb.model_metrics(model, str(version))
        if table:
            names = list(dict.fromkeys(m for row in table.values() for m in row))
            out[model] = {"version": version, "names": names, "rows": table}
    return out
