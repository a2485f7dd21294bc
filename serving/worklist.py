"""Readable fixed-width rendering of a worklist and of runs for the terminal
(``delinq worklist``, ``delinq runs``).

One line per account (rank, account, segment, open balance, probability, amount at risk,
action), then the top reasons on an indented second line, and the mitigating reason (if
any) on a third, so an analyst can read the day's work top to bottom.

Everything shown comes from data (ids, names, reasons), so it goes through
:func:`terminal_safe`: control characters (an ANSI escape in an account id would recolour
or rewrite the analyst's terminal) are shown escaped, never sent raw. An id too long for
its column keeps its start and end around a visible ``…``, so two long ids that differ
only at the end stay distinguishable.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from typing import Any

import pandas as pd

from serving.store_schema import MODELS, RULE_SCORER

#: The probability of a rule-ranked row on data too thin to calibrate.
THIN_DATA = "n/a"

_COLUMNS = (
    # (header, width, right-aligned)
    ("rank", 5, True),
    ("account", 14, False),
    ("segment", 10, False),
    ("open balance", 14, True),
    ("prob", 6, True),
    ("at risk", 14, True),
    ("action", 21, False),
)


def format_worklist(frame: pd.DataFrame, *, top: int = 10) -> str:
    """The first ``top`` rows of a worklist as a fixed-width text table.

    ``frame`` has the worklist columns of the store (``rank``, ``account_id``, ``segment``,
    ``open_balance``, ``probability``, ``priority``, ``action``, ``reason_1..3``,
    ``mitigating_reason``; ``scorer`` when present); rows are shown in ``rank`` order.
    Money is in the book's currency, probability in percent ("n/a": the aging rule ranked
    the row on data too thin for a probability, "n/a (thin data)"). Rows the aging rule
    ranked say so on their reasons line: ``why (aging rule):``.
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    if frame.empty:
        return "worklist is empty: no accounts with open receivables in this run"
    rows = frame.sort_values("rank", kind="stable").head(top)
    header = _line([h for h, _, _ in _COLUMNS])
    lines = [header, "-" * len(header)]
    for rec in rows.itertuples(index=False):
        cells = [
            str(int(rec.rank)),
            clip(terminal_safe(rec.account_id), 14),
            terminal_safe(rec.segment),
            _money(rec.open_balance),
            _pct(rec.probability) if _present(rec.probability) else THIN_DATA,
            _money(rec.priority),
            terminal_safe(rec.action),
        ]
        lines.append(_line(cells))
        reasons = [terminal_safe(r) for r in (rec.reason_1, rec.reason_2, rec.reason_3)
                   if _present(r)]
        why = "; ".join(reasons) if reasons else "(no risk-raising reason)"
        by_rule = getattr(rec, "scorer", None) == RULE_SCORER
        lines.append(("      why (aging rule): " if by_rule else "      why: ") + why)
        mitigating = getattr(rec, "mitigating_reason", None)
        if _present(mitigating):
            lines.append("      but: " + terminal_safe(mitigating))
    shown = len(rows)
    if len(frame) > shown:
        lines.append(f"({shown} of {len(frame)} accounts shown)")
    return "\n".join(lines)


def _line(cells: list[str]) -> str:
    parts = []
    for cell, (_, width, right) in zip(cells, _COLUMNS, strict=True):
        parts.append(cell.rjust(width) if right else cell.ljust(width))
    return "  ".join(parts).rstrip()


def _present(value: object) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(str(value).strip())


def terminal_safe(value: Any, *, keep_newlines: bool = False) -> str:
    """``str(value)`` with every control character (C0, DEL, C1, and Unicode format
    characters such as bidi overrides) shown as a visible escape (``\\x1b``, ``\\u202e``),
    so data can never move the cursor, recolour or rewrite the terminal.
    ``keep_newlines``: line breaks of a multi-line report stay line breaks."""
    text = str(value)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " " or (keep_newlines and ch == "\n"):
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: whole when it fits, else its start and
    its end around a visible ``…`` (ids often differ only at the end)."""
    if len(text) <= width:
        return text
    head = (width - 1) - (width - 1) // 2
    tail = (width - 1) // 2
    return text[:head] + "…" + (text[-tail:] if tail else "")


def describe_run(run: Any) -> str:
    """One line naming a run (:class:`serving.store.RunRecord`): its id, as_of, status,
    model versions, account count and when it finished (UTC)."""
    when = run.finished_at or run.started_at
    versions = (f"early_warning v{run.early_warning_version or '-'}, "
                f"persistence v{run.persistence_version or '-'}")
    return terminal_safe(
        f"run {run.run_id} as of {run.as_of.isoformat()} ({run.status}, {versions}, "
        f"{run.n_scored or 0:,} accounts, {when:%Y-%m-%d %H:%M} UTC)"
    )


_RUN_COLUMNS = (("run", 25), ("as_of", 10), ("status", 9), ("models ew/pers", 14),
                ("accounts", 9), ("started (UTC)", 16), ("finished", 16), ("by", 18),
                # issue 19: days since each champion's training data ended (ew/pers; "!"
                # past the stale limit), realized AUC vs the aging rule once labels resolved
                ("model age", 11), ("live AUC vs rule", 23))


def format_runs(frame: pd.DataFrame, *, stale_model_days: int | None = None) -> str:
    """The runs of :meth:`serving.store.WorklistStore.list_runs`, newest first, one line
    each (``*`` marks the published run of its as_of), the message indented below.
    ``model age``: days from each champion's training data end to the run's as_of, with
    ``!`` above ``stale_model_days``; ``live AUC vs rule``: ``models.live.headline``."""
    if frame.empty:
        return "no runs yet"
    from models.live import headline  # here: the run list needs no sklearn until now

    header = "  ".join(h.ljust(w) for h, w in _RUN_COLUMNS).rstrip()
    lines = ["  " + header, "  " + "-" * len(header)]
    for r in frame.iloc[::-1].itertuples(index=False):
        cells = [
            terminal_safe(r.run_id), str(pd.Timestamp(r.as_of).date()), terminal_safe(r.status),
            terminal_safe(f"{r.early_warning_version or '-'}/{r.persistence_version or '-'}"),
            "-" if pd.isna(r.n_scored) else f"{int(r.n_scored):,}",
            _when(r.started_at), _when(r.finished_at),
            terminal_safe(getattr(r, "runner", None) or "-"),
            _ages(r, stale_model_days),
            headline((getattr(r, "meta", None) or {}).get("live")),
        ]
        cells = [c if len(c) <= w else clip(c, w) for c, (_, w) in zip(cells, _RUN_COLUMNS,
                                                                       strict=True)]
        mark = "* " if r.is_current else "  "
        lines.append(mark + "  ".join(c.ljust(w) for c, (_, w) in
                                      zip(cells, _RUN_COLUMNS, strict=True)).rstrip())
        if _present(r.message):
            lines.append("      " + terminal_safe(r.message))
    lines.append("(* = the published worklist of its as_of; `delinq runs delete RUN` "
                 "deletes a run)")
    return "\n".join(lines)


def _ages(run: Any, stale_model_days: int | None) -> str:
    """``62d/70d!``: each model's age at the run (``-`` when the rule ranked it)."""
    from models.live import model_age_days

    ends = (getattr(run, "meta", None) or {}).get("champion_data_end") or {}
    if not ends:
        return "-"
    cells = []
    for kind in MODELS:
        age = model_age_days(run.as_of, ends.get(kind))
        stale = age is not None and stale_model_days is not None and age > stale_model_days
        cells.append("-" if age is None else f"{age}d{'!' if stale else ''}")
    return "/".join(cells)


def _when(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


def _money(value: float) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:,.0f}"


def _pct(value: float) -> str:
    """Percent, whole numbers; never a bare 0% or 100%: below 0.5% reads "<1%" and from
    99.5% ">99%" (a calibrated probability is never certain)."""
    if value is None or pd.isna(value):
        return "-"
    if value < 0.005:
        return "<1%"
    if value >= 0.995:
        return ">99%"
    return f"{100 * value:.0f}%"


def _short_money(x: float) -> str:
    """Money in thousands (k) or millions (M), one decimal: the KPI line's scale."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:,.1f}{unit}"
    return f"{x:,.0f}"


def kpi_line(kpis: Mapping[str, Any]) -> str:
    """One short line of a run's stored KPIs (``meta["kpis"]``:
    :meth:`features.pit.kpis.Kpis.as_dict`), for ``delinq worklist``, the demo and the nightly
    artifact; money in the book's currency (k = thousands, M = millions), e.g. ``KPIs: AR 1.2M
    (past due 31%), DSO 41.3 d, best 28.0 d, ADD 13.3 d, CEI 84.1%, collected from the
    last worklist 210.4k``."""
    def days(v: Any) -> str:
        return "n/a" if v is None else f"{v:.1f} d"

    total = float(kpis.get("total_ar") or 0.0)
    aging = kpis.get("aging") or {}
    past_due = sum(v for k, v in aging.items() if k != "current")
    gross = past_due + float(aging.get("current") or 0.0)
    share = f" (past due {past_due / gross:.0%})" if gross > 0 else ""
    cei = kpis.get("cei")
    parts = [f"AR {_short_money(total)}{share}", f"DSO {days(kpis.get('dso'))}",
             f"best {days(kpis.get('best_possible_dso'))}",
             f"ADD {days(kpis.get('average_days_delinquent'))}",
             "CEI n/a" if cei is None else f"CEI {cei:.1f}%"]
    if kpis.get("promise_kept_rate") is not None:
        parts.append(f"promises kept {kpis['promise_kept_rate']:.0f}%")
    collected = kpis.get("collected_from_worklist")
    if collected is not None:
        parts.append(f"collected from the last worklist {_short_money(collected)}")
    return terminal_safe("KPIs: " + ", ".join(parts))
