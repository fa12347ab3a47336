"""A small SVG line chart, written by hand so the benchmark needs no plotting library.

``write_svg(path, panels, xlabel)`` draws panels stacked over one shared x
axis; each panel has its own y axis and legend. Enough for docs/pacing.svg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

__all__ = ["Panel", "Series", "write_svg"]

WIDTH, PANEL_HEIGHT = 860, 260
LEFT, RIGHT, TOP, GAP, BOTTOM = 70, 20, 30, 60, 50


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]
    color: str
    dashed: bool = False
    width: float = 2.0


@dataclass
class Panel:
    title: str
    ylabel: str
    series: list[Series] = field(default_factory=list)


def _ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    step = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * step:
            step *= multiple
            break
    return [i * step for i in range(math.ceil(high / step) + 1)]


def write_svg(path: Path, panels: list[Panel], xlabel: str) -> None:
    """Draw ``panels`` one above the other, sharing the x axis, into ``path``."""
    xs = [x for panel in panels for series in panel.series for x, _ in series.points]
    xticks = _ticks(max(xs, default=1.0), 10)
    x_high = xticks[-1]
    plot_width = WIDTH - LEFT - RIGHT
    height = TOP + len(panels) * (PANEL_HEIGHT + GAP) - GAP + BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    for index, panel in enumerate(panels):
        top = TOP + index * (PANEL_HEIGHT + GAP)
        ys = [y for series in panel.series for _, y in series.points]
        yticks = _ticks(max(ys, default=1.0) * 1.1)
        y_high = yticks[-1]

        def px(x: float) -> float:
            return LEFT + x / x_high * plot_width

        def py(y: float, top: int = top, y_high: float = y_high) -> float:
            return top + PANEL_HEIGHT - y / y_high * PANEL_HEIGHT

        out.append(f'<text x="{LEFT}" y="{top - 10}" font-size="14" font-weight="bold">'
                   f"{escape(panel.title)}</text>")  # fmt: skip
        for y in yticks:
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(y):.1f}" '
                       f'y2="{py(y):.1f}" stroke="#e4e4e4"/>')  # fmt: skip
            out.append(f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        for x in xticks:
            out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" '
                       f'y2="{top + PANEL_HEIGHT}" stroke="#f0f0f0"/>')  # fmt: skip
            out.append(f'<text x="{px(x):.1f}" y="{top + PANEL_HEIGHT + 16}" '
                       f'text-anchor="middle">{x:g}</text>')  # fmt: skip
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" '
                   'fill="none" stroke="#888"/>')  # fmt: skip
        middle = top + PANEL_HEIGHT / 2
        out.append(f'<text x="18" y="{middle}" transform="rotate(-90 18 {middle})" '
                   f'text-anchor="middle">{escape(panel.ylabel)}</text>')  # fmt: skip
        for number, series in enumerate(panel.series):
            points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in series.points)
            dash = ' stroke-dasharray="6 4"' if series.dashed else ""
            out.append(f'<polyline points="{points}" fill="none" stroke="{series.color}" '
                       f'stroke-width="{series.width}"{dash}/>')  # fmt: skip
            ly = top + 16 + number * 18
            lx = WIDTH - RIGHT - 250
            out.append(
                f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                f'stroke="{series.color}" stroke-width="{series.width}"{dash}/>'
            )
            out.append(f'<text x="{lx + 30}" y="{ly}">{escape(series.label)}</text>')
    bottom = TOP + len(panels) * (PANEL_HEIGHT + GAP) - GAP
    out.append(f'<text x="{LEFT + plot_width / 2}" y="{bottom + 38}" text-anchor="middle">'
               f"{escape(xlabel)}</text>")  # fmt: skip
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
