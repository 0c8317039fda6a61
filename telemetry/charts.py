"""Server-rendered SVG charts (pure functions: points in, SVG text out).

No JavaScript, no CDN and no inline ``style`` attributes (the CSP forbids them): colours come from
CSS classes (static/css/telemetry.css) or SVG presentation attributes. Every piece of text is
escaped, so the output can be marked safe by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

Point = tuple[datetime, float | None]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[Point]
    css_class: str = "chart-series"  # one class name: path "chart-line X", dot "X-dot"


def _num(value: float) -> str:
    """Compact, locale-free SVG number."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _segments(coords: Sequence[tuple[float, float] | None]) -> str:
    """SVG path data; ``None`` breaks the line (a gap in the data)."""
    parts: list[str] = []
    pen_down = False
    for c in coords:
        if c is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_num(c[0])} {_num(c[1])}")
        pen_down = True
    return " ".join(parts)


def sparkline(
    values: Sequence[float | None],
    *,
    width: int = 120,
    height: int = 24,
    label: str = "",
    css_class: str = "sparkline",
) -> str:
    """A tiny line over evenly spaced values; ``None`` values leave a gap."""
    numbers = [v for v in values if v is not None]
    title = f"<title>{escape(label)}</title>" if label else ""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{_attr(css_class)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_attr(label)}">'
    )
    if not numbers:
        return f"{head}{title}</svg>"
    low, high = min(numbers), max(numbers)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    pad = 2.0
    coords = [
        None if v is None else (i * step, pad + (height - 2 * pad) * (1 - (v - low) / span))
        for i, v in enumerate(values)
    ]
    last = next(c for c in reversed(coords) if c is not None)
    return (
        f'{head}{title}<path class="sparkline-path" d="{_segments(coords)}" fill="none"/>'
        f'<circle class="sparkline-dot" cx="{_num(last[0])}" cy="{_num(last[1])}" r="2"/></svg>'
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    width: int = 320,
    height: int = 140,
    y_min: float | None = None,
    y_max: float | None = None,
    floor: float | None = None,
    min_span: float = 2.0,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    empty_text: str = "No data yet",
) -> str:
    """A time-series chart with a y-axis range, a time range and one path per series.

    ``y_min``/``y_max`` are always inside the axis; ``floor`` is a value the axis never goes
    below (0 for quantities that cannot be negative). The axis spans at least ``min_span``, so
    a flat series (every speed 0) gets a sensible axis, e.g. 0 to 10 km/h, never -1 to 1.
    ``value_format`` renders a bare number: the unit is added once, after it.
    """
    margin_left, margin_right, margin_top, margin_bottom = 52.0, 8.0, 22.0, 20.0
    plot_w = width - margin_left - margin_right
    plot_h = height - margin_top - margin_bottom
    unit_suffix = f" ({unit})" if unit else ""
    all_points = [(t, v) for s in series for t, v in s.points if v is not None]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_attr(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="4" y="14">{escape(title + unit_suffix)}</text>',
        f'<rect class="chart-frame" x="{_num(margin_left)}" y="{_num(margin_top)}" '
        f'width="{_num(plot_w)}" height="{_num(plot_h)}" fill="none"/>',
    ]
    if not all_points:
        parts.append(
            f'<text class="chart-empty" x="{_num(margin_left + plot_w / 2)}" '
            f'y="{_num(margin_top + plot_h / 2)}" text-anchor="middle">'
            f"{escape(empty_text)}</text></svg>"
        )
        return "".join(parts)

    times = [_ts(t) for t, _ in all_points]
    t0, t1 = min(times), max(times)
    t_span = (t1 - t0) or 1.0
    values = [v for _, v in all_points]
    low = min(values) if y_min is None else min(y_min, min(values))
    high = max(values) if y_max is None else max(y_max, max(values))
    low, high = _axis_range(low, high, floor=floor, min_span=min_span)
    v_span = high - low

    def xy(t: datetime, v: float) -> tuple[float, float]:
        x = margin_left + (plot_w * (_ts(t) - t0) / t_span if t1 > t0 else plot_w)
        y = margin_top + plot_h * (1 - (v - low) / v_span)
        return x, y

    for label_value, y in ((high, margin_top), (low, margin_top + plot_h)):
        parts.append(
            f'<text class="chart-axis" x="{_num(margin_left - 4)}" y="{_num(y + 4)}" '
            f'text-anchor="end">{escape(value_format(label_value))}</text>'
        )
    parts.append(
        f'<text class="chart-axis" x="{_num(margin_left)}" y="{_num(height - 4)}">'
        f"{escape(_time_label(t0))}</text>"
        f'<text class="chart-axis" x="{_num(margin_left + plot_w)}" y="{_num(height - 4)}" '
        f'text-anchor="end">{escape(_time_label(t1))}</text>'
    )
    for s in series:
        ordered = sorted(s.points, key=lambda p: _ts(p[0]))
        coords = [None if v is None else xy(t, v) for t, v in ordered]
        present = [c for c in coords if c is not None]
        if not present:
            continue
        parts.append(
            f'<path class="chart-line {_attr(s.css_class)}" d="{_segments(coords)}" fill="none">'
            f"<title>{escape(s.name)}</title></path>"
        )
        last_t, last_v = next((t, v) for t, v in reversed(ordered) if v is not None)
        cx, cy = xy(last_t, last_v)
        parts.append(
            f'<circle class="chart-dot {_attr(s.css_class)}-dot" cx="{_num(cx)}" cy="{_num(cy)}" r="3">'
            f"<title>{escape(f'{s.name}: {_with_unit(value_format(last_v), unit)}')}</title>"
            "</circle>"
        )
    with_data = [s for s in series if any(v is not None for _, v in s.points)]
    if len(series) > 1:
        for i, s in enumerate(with_data):
            x = margin_left + plot_w - 80 * i
            parts.append(
                f'<text class="chart-legend {_attr(s.css_class)}-legend" x="{_num(x)}" y="14" '
                f'text-anchor="end">{escape(s.name)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _axis_range(
    low: float, high: float, *, floor: float | None, min_span: float
) -> tuple[float, float]:
    """Widen a too-narrow range around its middle, then lift it back onto ``floor``.

    Data below the floor (which should not exist) stays visible: the floor only stops padding.
    """
    data_low = low
    min_span = max(min_span, 1e-9)
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    if floor is not None and low < floor <= data_low:
        low, high = floor, high + (floor - low)
    return low, high


def _with_unit(text: str, unit: str) -> str:
    """ "96 %" from "96" and "%"; never "96 % %" when the formatted value has the unit already."""
    if not unit or text.rstrip().endswith(unit):
        return text
    return f"{text} {unit}"


def _ts(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _time_label(value: float) -> str:
    return datetime.fromtimestamp(value, tz=UTC).strftime("%d %b %H:%M UTC")
