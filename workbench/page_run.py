"""The run pages: ``GET /runs`` (the runs, newest first) and ``GET /runs/{run_id}`` (one
run: summary, timings, counts per model and segment, rows the aging rule ranked, drift
flags and the PSI table, the run's KPIs when its meta holds ``"kpis"``, each model
version's test-period metrics beside the baselines, from the model registry, and the run's
live performance once its labels resolved (``meta["live"]``, ``pipelines.steps_live``):
per population and slice of accounts the published ranking beside the aging rule on the
same accounts, and per customer segment, region, open-balance and tenure band, flagged
where the model is below the rule; before that, the day its labels resolve).

They read what ``GET /api/runs``, ``/api/runs/{id}`` and ``/api/runs/{id}/drift`` answer
(the same route functions).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
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
        "live": live_view(summary.meta, as_of=summary.as_of,
                          horizon_days=request.app.state.wb.config.label_horizon_days),
    })


#: Slices of the live table, in page order, with their labels.
LIVE_SLICES = (("all", "all accounts"),
               ("untouched", "untouched (no contact or promise before resolution)"))


def live_view(meta: Mapping[str, Any], *, as_of: date,
              horizon_days: int) -> dict[str, Any]:
    """What the run page shows of the run's live performance (``meta["live"]``,
    ``models.live.LivePerformance.to_dict`` plus ``slices`` and ``holdout``).

    Not evaluated yet: ``{"resolved": False, "resolves_on": as_of + horizon_days}``.
    Evaluated: ``rows``, per population (each model's, then all) and slice (all,
    untouched, and the random holdout when kept): rows, positives, the published AUC and
    capture@10 beside the aging rule's on the same accounts, ECE, and ``below`` when the
    model's AUC is below the rule's (``models.live_policy.below_rule``); the rows the model
    ranked, or every row (``ranked_by`` ``all``) where the rule ranked the population.
    ``slices``: per population, the per-dimension table of ``models.slices`` (``below_rule``
    flagged). ``counts``, ``data_end`` and ``contacts`` as stored. The holdout's row has
    ``evidence``: live vs offline as the evaluation judged it (``models.live_verdict.
    verdict_text``), or for a run judged before that check existed its accounts per class
    against the evidence rule of ``models.live_agreement`` (``too few to judge ...``
    below ``min_accounts`` of a class);
    ``key_basis``: some row compares with the rule's bare key (``models.live``)."""
    from models.live_agreement import MIN_ACCOUNTS, evidence_of_counts
    from models.live_policy import below_rule
    from models.live_verdict import verdict_text

    live = meta.get("live")
    if not live:
        return {"resolved": False, "resolves_on": as_of + timedelta(days=int(horizon_days))}

    def pick(table: list[dict[str, Any]], slc: str, pop: str) -> dict[str, Any] | None:
        by = {r.get("ranked_by"): r for r in table
              if (r.get("slice"), r.get("population")) == (slc, pop)}
        return by.get("model") or by.get("all")

    rows = []
    for pop in (*MODELS, "all"):
        for slc, label in LIVE_SLICES:
            row = pick(live.get("table", []), slc, pop)
            if row:  # a figure stored before ``rule_basis`` was compared with the key
                rows.append({**row, "rule_basis": row.get("rule_basis") or "key",
                             "label": label, "by_rule": row["ranked_by"] != "model",
                             "below": row["ranked_by"] == "model" and below_rule(
                                 live, population=pop, slice=slc) is not None})
        held = (live.get("holdout") or {}).get(pop)
        row = pick(held.get("table", []), "all", pop) if held else None
        if row:
            ev = evidence_of_counts(n_rows=row["n_rows"], n_positive=row["n_positive"])
            rows.append({**row, "rule_basis": row.get("rule_basis") or "key",
                         "label": "random holdout (ranked by the rule, scored by "
                         f"champion v{held.get('version')})", "by_rule": False,
                         "evidence": verdict_text((live.get("agreement") or {}).get(pop))
                         or ev.holdout_line(),
                         "below": below_rule(held, population=pop, slice="all") is not None})
    return {"resolved": True, "rows": rows, "slices": live.get("slices") or {},
            "key_basis": any(r.get("rule_basis") == "key" for r in rows),
            "has_holdout": any(r.get("evidence") for r in rows), "min_accounts": MIN_ACCOUNTS,
            "counts": live.get("counts") or {}, "data_end": live.get("data_end"),
            "contacts": live.get("contacts")}


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
