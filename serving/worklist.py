"""Readable fixed-width rendering of a worklist for the terminal (``delinq worklist``).

One line per account (rank, account, segment, open balance, probability, amount at risk,
action), then the top reasons on an indented second line, and the mitigating reason (if
any) on a third, so an analyst can read the day's work top to bottom.
"""

from __future__ import annotations

import math

import pandas as pd

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
    ``mitigating_reason``); rows are shown in ``rank`` order. Money is in the book's
    currency, probability in percent. An empty frame gives a one-line message.
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
            _clip(str(rec.account_id), 14),
            str(rec.segment),
            _money(rec.open_balance),
            _pct(rec.probability),
            _money(rec.priority),
            str(rec.action),
        ]
        lines.append(_line(cells))
        reasons = [r for r in (rec.reason_1, rec.reason_2, rec.reason_3) if _present(r)]
        why = "; ".join(reasons) if reasons else "(no risk-raising reason)"
        lines.append("      why: " + why)
        mitigating = getattr(rec, "mitigating_reason", None)
        if _present(mitigating):
            lines.append("      but: " + str(mitigating))
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


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


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
