"""Prefect artifacts of a run: a short markdown summary and a table of the worklist's top.

The builders are pure (plain data in, markdown text or JSON-safe rows out) so they are
tested without a Prefect server; :func:`publish_run_artifacts` is the only function that
talks to Prefect, and it is called from inside a flow run (artifacts attach to that run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

from pipelines.summaries import ModelSummary
from serving.store_schema import WORKLIST_COLUMNS

#: Worklist columns shown in the table artifact, in store order (those present are kept):
#: all but the model name, the structured reasons and the run date (the summary says those).
TABLE_COLUMNS: tuple[str, ...] = tuple(
    c for c in WORKLIST_COLUMNS if c not in ("model", "reasons_json", "as_of")
)


def artifact_key(text: str) -> str:
    """A valid Prefect artifact key (lowercase letters, digits, dashes) made from ``text``."""
    chars = [c if c.isalnum() else "-" for c in text.lower()]
    key = "-".join(part for part in "".join(chars).split("-") if part)
    return key or "run"


def json_safe(value: Any) -> Any:
    """``value`` as a JSON-serialisable scalar: NaN/NA -> None, numpy -> Python, dates -> ISO."""
    if value is None:
        return None
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return pd.Timestamp(value).date().isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # list-like values: render as text
        return str(value)
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    return str(value)


def worklist_table(frame: pd.DataFrame, *, top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` rows of a worklist (by ``rank``) as JSON-safe records for a table artifact.

    Money columns are in the book's currency, ``probability`` is 0-1, ``oldest_dpd`` days.
    """
    if frame.empty:
        return []
    rows = frame.sort_values("rank", kind="stable").head(top) if "rank" in frame else frame
    cols = [c for c in TABLE_COLUMNS if c in rows.columns] or list(rows.columns)
    return [
        {c: json_safe(v) for c, v in zip(cols, rec, strict=True)}
        for rec in rows[cols].itertuples(index=False, name=None)
    ]


def train_rows(models: Iterable[ModelSummary]) -> list[dict[str, Any]]:
    """One JSON-safe row per model (version, promoted, LightGBM test metrics, or the error
    that kept it from training) for the summary artifact."""
    rows = []
    for m in models:
        row: dict[str, Any] = {"model": m.model, "version": m.version, "promoted": m.promoted}
        row |= {k: json_safe(v) for k, v in m.metrics.items()}
        if m.error is not None:
            row["error"] = m.error
        rows.append(row)
    return rows


def drift_flags(drift: Any, *, top: int = 10) -> list[str]:
    """Drift lines for the summary: counts of PSI flags (``watch`` >= 0.1, ``alert`` >= 0.25)
    over all (model, feature) rows, then the ``top`` largest flagged PSIs."""
    flagged = drift[drift["flag"] != "ok"].sort_values("psi", ascending=False)
    counts = flagged["flag"].value_counts()
    lines = [f"{int(counts.get('alert', 0))} alert, {int(counts.get('watch', 0))} watch "
             f"of {len(drift)} PSI checks"]
    lines += [f"PSI {r.flag}: {r.model} {r.feature} = {r.psi:.3f}"
              for r in flagged.head(top).itertuples(index=False)]
    return lines


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return lines


def _cell(value: Any) -> str:
    value = json_safe(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(
    title: str,
    *,
    facts: Mapping[str, Any],
    timings: Mapping[str, float],
    validation: Sequence[Mapping[str, Any]] = (),
    metrics: Sequence[Mapping[str, Any]] = (),
    flags: Sequence[str] = (),
    kpis: Mapping[str, Any] | None = None,
) -> str:
    """A short markdown report of one run.

    ``facts``: name -> value lines (as_of, source, counts, paths). ``timings``: stage ->
    wall seconds. ``validation``: the validation summary rows (table, rows_read, kept,
    quarantined). ``metrics``: metric rows (any columns; the first row's keys are the
    header). ``flags``: drift or quality warnings, one line each (``none`` when empty).
    ``kpis``: the run's receivables KPIs (``features.pit.kpis.Kpis.as_dict``), a section of
    their own.
    """
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {_cell(v)}" for k, v in facts.items()]
    if timings:
        total = sum(timings.values())
        lines += ["", "## Stages (wall seconds)", ""]
        rows = [(stage, f"{sec:.1f}") for stage, sec in timings.items()]
        lines += _md_table(["stage", "seconds"], [*rows, ("total", f"{total:.1f}")])
    if validation:
        lines += ["", "## Validation", ""]
        header = ["table", "rows_read", "kept", "quarantined"]
        lines += _md_table(header, [[r.get(h) for h in header] for r in validation])
    if metrics:
        header = list(metrics[0])
        lines += ["", "## Metrics", ""]
        lines += _md_table(header, [[r.get(h) for h in header] for r in metrics])
    if kpis:
        from serving.worklist import kpi_line  # the one rendering of the KPIs

        lines += ["", "## Receivables KPIs", "", kpi_line(kpis), ""]
        aging = dict(kpis.get("aging") or {})
        lines += _md_table(["aging", *aging], [["open amount", *aging.values()]])
    lines += ["", "## Flags", ""]
    lines += [f"- {f}" for f in flags] if flags else ["- none"]
    return "\n".join(lines) + "\n"


def live_markdown(rows: Sequence[Mapping[str, Any]], *, data_end: date, pending: int) -> str:
    """The nightly's live-performance section (issue 19): one line per past run evaluated
    this time (``pipelines.steps_live.LiveSummary.evaluated``: realized AUC vs the aging
    rule as served, and per random holdout live vs its champion's offline test period,
    ``models.live_verdict.agreement_lines``: agrees, differs or too few to judge, pooled
    over the version's resolved runs; resolved and undecided rows), how many runs still
    wait for their labels."""
    lines = ["", "## Live performance of past runs", ""]
    if rows:
        lines += _md_table(["run", "as_of",
                            "AUC vs the aging rule as served; holdout live vs offline",
                            "resolved", "undecided"],
                           [[r["run_id"], r["as_of"], r["headline"], r["resolved"],
                             r["censored"]] for r in rows])
        lines.append("")
    lines.append(f"- {len(rows)} run(s) newly evaluated against the book up to "
                 f"{data_end.isoformat()}; {pending} published run(s) still wait for labels "
                 "(`delinq runs` shows every run's figure)")
    return "\n".join(lines) + "\n"


def publish_run_artifacts(
    key: str, markdown: str, top_rows: Sequence[Mapping[str, Any]] | None = None
) -> list[str]:
    """Publish the markdown summary (``<key>-summary``) and, when given, the worklist table
    (``<key>-worklist``) on the current Prefect flow run; return the artifact keys.

    Keys are stable per flow so the Prefect UI shows the latest version and its history.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    base = artifact_key(key)
    keys = [f"{base}-summary"]
    create_markdown_artifact(markdown, key=keys[0], description=f"{key}: run summary")
    if top_rows is not None:
        keys.append(f"{base}-worklist")
        create_table_artifact(
            [dict(r) for r in top_rows],
            key=keys[1],
            description=f"{key}: top of the worklist",
        )
    return keys
