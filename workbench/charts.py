"""Server-rendered SVG charts for the account page: the SHAP waterfall and the score history.

Pure functions returning :class:`markupsafe.Markup`; every label is escaped (ids, names and
feature values are data, rendered as text). No inline style (the CSP forbids it): colours
are presentation attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from markupsafe import Markup, escape

#: Contributions drawn one by one; the rest are summed into one "other features" bar.
WATERFALL_TOP: Final = 8
RAISES: Final = "#c0392b"   # a contribution that raises the risk (log-odds up)
LOWERS: Final = "#2471a3"


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def top_contributions(features: Mapping[str, Mapping[str, Any]], *,
                      top: int = WATERFALL_TOP) -> list[tuple[str, Any, float]]:
    """(label, feature value, SHAP) of the ``top`` largest |SHAP| features, strongest first,
    then one ("other N features", None, their sum) when more are non-zero."""
    items = [(name, f.get("value"), float(f["shap"])) for name, f in features.items()
             if f.get("shap") is not None and float(f["shap"]) != 0.0]
    items.sort(key=lambda t: (-abs(t[2]), t[0]))
    head, rest = items[:top], items[top:]
    if rest:
        head.append((f"other {len(rest)} features", None, sum(t[2] for t in rest)))
    return head


def waterfall_svg(*, base_value: float | None, features: Mapping[str, Mapping[str, Any]],
                  top: int = WATERFALL_TOP, width: int = 640) -> Markup:
    """A horizontal waterfall in log-odds: from the model's base value, each contribution
    moves the running total, ending at the account's raw score (base + sum of SHAP)."""
    bars = top_contributions(features, top=top)
    if base_value is None or not bars:
        return Markup('<p class="muted">No explanation stored for this account.</p>')
    row_h, label_w, pad = 22, 250, 60
    plot_w = width - label_w - pad
    running = [base_value]
    for _, _, shap in bars:
        running.append(running[-1] + shap)
    lo, hi = min(running), max(running)
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return label_w + (v - lo) / span * plot_w

    height = row_h * (len(bars) + 2) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="waterfall" role="img" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'aria-label="SHAP waterfall">']
    parts.append(f'<text x="4" y="{row_h - 6}" font-size="12">base value (log-odds)</text>'
                 f'<text x="{x(base_value) + 4:.1f}" y="{row_h - 6}" font-size="12">'
                 f'{base_value:+.3f}</text>')
    for i, (label, value, shap) in enumerate(bars):
        y = row_h * (i + 1)
        start, end = running[i], running[i + 1]
        left, right = min(x(start), x(end)), max(x(start), x(end))
        colour = RAISES if shap > 0 else LOWERS
        shown = label if value is None else f"{label} = {_num(value)}"
        parts.append(
            f'<g class="bar"><text x="4" y="{y + 15}" font-size="12">{escape(shown)}</text>'
            f'<rect x="{left:.1f}" y="{y + 3}" width="{max(right - left, 1.0):.1f}" '
            f'height="{row_h - 6}" fill="{colour}"></rect>'
            f'<text x="{right + 4:.1f}" y="{y + 15}" font-size="11">{shap:+.3f}</text></g>')
    y = row_h * (len(bars) + 1)
    parts.append(f'<text x="4" y="{y + 15}" font-size="12" font-weight="bold">'
                 f'score (log-odds)</text><text x="{x(running[-1]) + 4:.1f}" y="{y + 15}" '
                 f'font-size="12" font-weight="bold">{running[-1]:+.3f}</text>'
                 f'<line x1="{x(running[-1]):.1f}" x2="{x(running[-1]):.1f}" y1="{row_h}" '
                 f'y2="{y + 18}" stroke="#444" stroke-dasharray="3,3"></line></svg>')
    return Markup("".join(parts))


def history_svg(points: Sequence[tuple[str, float | None]], *, width: int = 320,
                height: int = 80) -> Markup:
    """A small line chart of the account's probability across runs (oldest first); runs
    without a probability (aging rule on thin data) are gaps, marked on the axis."""
    if not points:
        return Markup('<p class="muted">No earlier runs.</p>')
    pad = 8
    n = len(points)

    def x(i: int) -> float:
        return pad + (i / (n - 1) if n > 1 else 0.5) * (width - 2 * pad)

    def y(p: float) -> float:
        return height - pad - p * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="history" role="img" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'aria-label="probability across runs">',
             f'<line x1="{pad}" x2="{width - pad}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
             f'stroke="#bbb"></line>']
    segment: list[str] = []
    for i, (label, p) in enumerate(points):
        if p is None:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(0):.1f}" r="2" fill="#999">'
                         f'<title>{escape(label)}: n/a</title></circle>')
            if len(segment) > 1:
                parts.append(f'<polyline fill="none" stroke="{RAISES}" '
                             f'points="{" ".join(segment)}"></polyline>')
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(p):.1f}")
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p):.1f}" r="3" fill="{RAISES}">'
                     f'<title>{escape(label)}: {100 * p:.1f}%</title></circle>')
    if len(segment) > 1:
        parts.append(f'<polyline fill="none" stroke="{RAISES}" '
                     f'points="{" ".join(segment)}"></polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))
