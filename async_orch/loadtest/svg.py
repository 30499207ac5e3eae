"""Small inline SVG charts for the load-test report (pure string building).

No JavaScript and no external resources: each function returns one ``<svg>``
element, with ``class="chart"`` and ``data-chart`` naming it, that a browser draws
as it is. Lines are ``<polyline>`` elements (``data-series`` names the series,
``data-points`` counts its points); bars are ``<rect>`` elements. Missing values
(None) break a line rather than drawing it through zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "Series", "bar_chart", "line_chart", "nice_ticks", "stacked_area_chart"]

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

_W, _H = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 150, 28, 40


@dataclass(frozen=True, slots=True)
class Series:
    """A named line: y values (None: no value) at the chart's x values."""

    name: str
    values: Sequence[float | None]
    color: str | None = None


def nice_ticks(high: float, *, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high`` (about ``count`` of them)."""
    if not math.isfinite(high) or high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


class _Frame:
    """The plot area: maps data to pixels and draws axes, grid and legend."""

    def __init__(self, x_max: float, y_max: float) -> None:
        self.x_max = x_max if x_max > 0 else 1.0
        self.y_ticks = nice_ticks(y_max)
        self.y_max = self.y_ticks[-1]
        self.width = _W - _LEFT - _RIGHT
        self.height = _H - _TOP - _BOTTOM

    def x(self, value: float) -> float:
        return round(_LEFT + value / self.x_max * self.width, 1)

    def y(self, value: float) -> float:
        return round(_TOP + self.height - value / self.y_max * self.height, 1)

    def axes(self, title: str, x_label: str, y_label: str, *, x_ticks: bool = True) -> list[str]:
        parts = [
            f'<text class="title" x="{_LEFT}" y="18">{escape(title)}</text>',
            f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{self.width}" '
            f'height="{self.height}" fill="none" stroke="#ccc"/>',
        ]
        for tick in self.y_ticks:
            y = self.y(tick)
            parts.append(
                f'<line x1="{_LEFT}" x2="{_LEFT + self.width}" y1="{y}" y2="{y}" stroke="#eee"/>'
                f'<text class="tick" x="{_LEFT - 6}" y="{y + 4}" text-anchor="end">'
                f"{_fmt(tick)}</text>"
            )
        for tick in nice_ticks(self.x_max, count=6) if x_ticks else []:
            if tick > self.x_max + 1e-9:
                break
            x = self.x(tick)
            parts.append(
                f'<text class="tick" x="{x}" y="{_TOP + self.height + 16}" '
                f'text-anchor="middle">{_fmt(tick)}</text>'
            )
        parts.append(
            f'<text class="label" x="{_LEFT + self.width / 2}" y="{_H - 6}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
            f'<text class="label" x="14" y="{_TOP + self.height / 2}" text-anchor="middle" '
            f'transform="rotate(-90 14 {_TOP + self.height / 2})">{escape(y_label)}</text>'
        )
        return parts

    @staticmethod
    def legend(names: Sequence[tuple[str, str]]) -> list[str]:
        parts = []
        for i, (name, color) in enumerate(names):
            y = _TOP + 6 + i * 18
            parts.append(
                f'<rect x="{_W - _RIGHT + 12}" y="{y}" width="12" height="12" fill="{color}"/>'
                f'<text class="legend" x="{_W - _RIGHT + 30}" y="{y + 10}">{escape(name)}</text>'
            )
        return parts


def _svg(kind: str, name: str, parts: list[str], description: str) -> str:
    body = "".join(parts)
    return (
        f'<svg class="chart" data-chart="{escape(name)}" data-kind="{kind}" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="{escape(description)}">'
        f"<title>{escape(description)}</title>{body}</svg>"
    )


def _empty(name: str, title: str) -> str:
    return _svg(
        "empty",
        name,
        [
            f'<text class="title" x="{_LEFT}" y="18">{escape(title)}</text>',
            f'<text class="empty" x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>',
        ],
        f"{title}: no data",
    )


def _runs(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """Split a series at its missing values into runs of (x, y) points."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=False):
        if y is None or not math.isfinite(y):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    return [r for r in runs if r]


def line_chart(
    name: str,
    *,
    title: str,
    x: Sequence[float],
    series: Sequence[Series],
    x_label: str = "seconds since start",
    y_label: str = "",
) -> str:
    """Lines over a shared x axis; one ``<polyline>`` per unbroken run of values."""
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not x or not values:
        return _empty(name, title)
    frame = _Frame(max(x), max(values))
    parts = frame.axes(title, x_label, y_label)
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        legend.append((s.name, color))
        for run in _runs(x, s.values):
            points = " ".join(f"{frame.x(px)},{frame.y(py)}" for px, py in run)
            if len(run) == 1:  # a lone value: a dot, since a 1-point line draws nothing
                px, py = run[0]
                parts.append(
                    f'<circle data-series="{escape(s.name)}" data-points="1" '
                    f'cx="{frame.x(px)}" cy="{frame.y(py)}" r="2.5" fill="{color}"/>'
                )
                continue
            parts.append(
                f'<polyline data-series="{escape(s.name)}" data-points="{len(run)}" '
                f'points="{points}" fill="none" stroke="{color}" stroke-width="1.8"/>'
            )
    parts += frame.legend(legend)
    return _svg("line", name, parts, title)


def stacked_area_chart(
    name: str,
    *,
    title: str,
    x: Sequence[float],
    layers: Mapping[str, Sequence[float]],
    colors: Mapping[str, str] | None = None,
    x_label: str = "seconds since start",
    y_label: str = "jobs",
) -> str:
    """Areas stacked bottom-up in the order of ``layers``; one ``<polygon>`` each."""
    if not x or not layers:
        return _empty(name, title)
    totals = [sum(layer[i] for layer in layers.values()) for i in range(len(x))]
    if max(totals, default=0) <= 0:
        return _empty(name, title)
    frame = _Frame(max(x), max(totals))
    parts = frame.axes(title, x_label, y_label)
    base = [0.0] * len(x)
    legend = []
    for i, (layer_name, values) in enumerate(layers.items()):
        color = (colors or {}).get(layer_name) or PALETTE[i % len(PALETTE)]
        top = [b + v for b, v in zip(base, values, strict=True)]
        upper = [f"{frame.x(px)},{frame.y(py)}" for px, py in zip(x, top, strict=True)]
        lower = [f"{frame.x(px)},{frame.y(py)}" for px, py in zip(x, base, strict=True)]
        parts.append(
            f'<polygon data-series="{escape(layer_name)}" data-points="{len(x)}" '
            f'points="{" ".join(upper + lower[::-1])}" fill="{color}" fill-opacity="0.8" '
            f'stroke="{color}"/>'
        )
        legend.append((layer_name, color))
        base = top
    parts += frame.legend(legend[::-1])
    return _svg("area", name, parts, title)


def bar_chart(
    name: str,
    *,
    title: str,
    groups: Mapping[str, Mapping[str, float | None]],
    y_label: str = "",
) -> str:
    """Grouped bars: one group per key of ``groups`` (say "p50"), one bar per series."""
    names: list[str] = []
    for values in groups.values():
        names += [n for n in values if n not in names]
    numbers = [v for g in groups.values() for v in g.values() if v is not None]
    if not groups or not numbers or max(numbers) <= 0:
        return _empty(name, title)
    frame = _Frame(1.0, max(numbers))
    parts = frame.axes(title, "", y_label, x_ticks=False)  # the groups are named instead
    slot = frame.width / len(groups)
    bar = slot * 0.8 / max(1, len(names))
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    for g, (group, values) in enumerate(groups.items()):
        left = _LEFT + g * slot + slot * 0.1
        for i, series_name in enumerate(names):
            value = values.get(series_name)
            if value is None:
                continue
            y = frame.y(value)
            parts.append(
                f'<rect data-series="{escape(series_name)}" data-group="{escape(group)}" '
                f'x="{round(left + i * bar, 1)}" y="{y}" width="{round(bar * 0.9, 1)}" '
                f'height="{round(_TOP + frame.height - y, 1)}" fill="{colors[series_name]}">'
                f"<title>{escape(series_name)} {escape(group)}: {_fmt(value)}</title></rect>"
            )
        parts.append(
            f'<text class="tick" x="{round(_LEFT + g * slot + slot / 2, 1)}" '
            f'y="{_TOP + frame.height + 16}" text-anchor="middle">{escape(group)}</text>'
        )
    parts += frame.legend([(n, colors[n]) for n in names])
    return _svg("bar", name, parts, title)
