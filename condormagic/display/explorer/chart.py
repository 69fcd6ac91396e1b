"""The pixel inspector's time series: a small SVG chart of a collection's values at a point, date by date.

Values are drawn as lines through points placed by date (a gap where a date has no value there:
outside its scenes, or their nodata); a band of classes (SCL) as a strip of coloured cells, one per
date. The date shown on the map is marked. Every point carries ``data-time``, ``data-band`` and
``data-value``, and a tooltip.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from .legend import number
from .style import class_colours, class_table

WIDTH, HEIGHT = 380, 130
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 18, 20
LINE_COLOURS = {0: "#e53935", 1: "#43a047", 2: "#1e88e5"}  # the bands of an RGB view: red, green, blue
ONE_COLOUR = "#5c6bc0"
TEXT = 'fill="currentColor" style="font:10px var(--jp-ui-font-family,sans-serif)"'


def _positions(times: np.ndarray) -> list[float]:
    """Each date's place along the axis, 0 to 1, by time (evenly when all dates are one)."""
    seconds = times.astype("datetime64[s]").astype(np.int64).astype(float)
    span = seconds.max() - seconds.min() if len(seconds) else 0.0
    if span <= 0:
        return [0.5] if len(seconds) == 1 else [i / max(1, len(seconds) - 1) for i in range(len(seconds))]
    return [(s - seconds.min()) / span for s in seconds]


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def series_svg(
    title: str,
    labels: list[str],
    times: np.ndarray,
    series: dict[str, list],
    current: int | None = None,
    classes: dict | None = None,
    rgb: bool = False,
) -> str:
    """The SVG of ``series`` (``{band: [value or None per date]}``) over the dates ``labels`` (at ``times``).

    ``classes`` (``{value: label}``, as for the legends): the one band is a strip of class cells.
    ``rgb``: the three bands are red, green and blue lines.
    """
    x0, x1 = LEFT, WIDTH - RIGHT
    xs = [x0 + p * (x1 - x0) for p in _positions(times)]
    parts = [f'<text x="0" y="11" font-weight="600" {TEXT}>{escape(title)}</text>']
    if current is not None and 0 <= current < len(xs):
        parts.append(
            f'<line class="cm-series-now" x1="{xs[current]:.1f}" x2="{xs[current]:.1f}" y1="{TOP - 2}" '
            f'y2="{HEIGHT - BOTTOM + 2}" stroke="currentColor" stroke-opacity="0.45" stroke-dasharray="3 2"/>'
        )
    if classes is not None:
        parts += _strip(labels, xs, series, classes)
    else:
        parts += _lines(labels, xs, series, rgb)
    base = HEIGHT - BOTTOM
    parts.append(f'<line x1="{x0}" x2="{x1}" y1="{base}" y2="{base}" stroke="currentColor" stroke-opacity="0.4"/>')
    shown = sorted({0, len(labels) - 1, *([current] if current is not None else [])} - {-1})
    last_x = -1e9
    for i in shown:
        if abs(xs[i] - last_x) < 58 and i != current:
            continue
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        parts.append(
            f'<text x="{xs[i]:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" {TEXT}>{escape(labels[i][:10])}</text>'
        )
        last_x = xs[i]
    return (
        f'<svg class="cm-series-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" style="color:var(--jp-ui-font-color1,#222)">{"".join(parts)}</svg>'
    )


def _lines(labels, xs, series: dict[str, list], rgb: bool) -> list[str]:
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(float(v))]
    if not values:
        return [f'<text x="{LEFT}" y="{TOP + 30}" {TEXT} opacity="0.7">no data at this point on any date</text>']
    lo, hi = min(values), max(values)
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = (lo - pad if lo - pad >= 0 or lo < 0 else 0.0), hi + pad  # values that are never negative: from 0
    top, base = TOP, HEIGHT - BOTTOM

    def y(v) -> float:
        return base - (float(v) - lo) / (hi - lo) * (base - top)

    parts = [
        f'<text x="{LEFT - 4}" y="{top + 8}" text-anchor="end" {TEXT}>{escape(number(hi))}</text>',
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end" {TEXT}>{escape(number(lo))}</text>',
    ]
    for b, (band, vs) in enumerate(series.items()):
        colour = LINE_COLOURS.get(b, ONE_COLOUR) if rgb else ONE_COLOUR
        run: list[str] = []
        for i, v in enumerate([*vs, None]):
            if v is not None and math.isfinite(float(v)):
                run.append(f"{xs[i]:.1f},{y(v):.1f}")
                continue
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            run = []
        for i, v in enumerate(vs):
            if v is None or not math.isfinite(float(v)):
                continue
            parts.append(
                f'<circle cx="{xs[i]:.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}" data-time="{escape(labels[i])}" '
                f'data-band="{escape(band)}" data-value="{escape(repr(v))}">'
                f"<title>{escape(labels[i])} · {escape(band)}: {escape(_value_text(v))}</title></circle>"
            )
    if len(series) > 1:
        x = LEFT + 4
        for b, band in enumerate(series):
            colour = LINE_COLOURS.get(b, ONE_COLOUR) if rgb else ONE_COLOUR
            parts.append(
                f'<text x="{x}" y="{TOP + 8}" fill="{colour}" style="font:10px sans-serif">{escape(band)}</text>'
            )
            x += 8 + 6 * len(band)
    return parts


def _strip(labels, xs, series: dict[str, list], classes: dict) -> list[str]:
    names, colours = class_table(classes)
    ((band, vs),) = series.items()
    top, base = TOP + 14, HEIGHT - BOTTOM - 14
    gaps = np.diff(xs) if len(xs) > 1 else np.array([40.0])
    width = float(max(4.0, min(24.0, gaps.min() * 0.9)))
    parts = []
    for i, v in enumerate(vs):
        if v is None:
            parts.append(
                f'<rect x="{xs[i] - width / 2:.1f}" y="{top}" width="{width:.1f}" height="{base - top}" fill="none" '
                f'stroke="currentColor" stroke-opacity="0.4" stroke-dasharray="2 2" data-time="{escape(labels[i])}" '
                f'data-band="{escape(band)}" data-value=""><title>{escape(labels[i])}: no data</title></rect>'
            )
            continue
        code = int(round(float(v)))
        r, g, b = (int(c) for c in class_colours(np.array([code]), colours)[0])
        name = names.get(code, str(code))
        parts.append(
            f'<rect x="{xs[i] - width / 2:.1f}" y="{top}" width="{width:.1f}" height="{base - top}" '
            f'fill="rgb({r},{g},{b})" stroke="#8888" data-time="{escape(labels[i])}" data-band="{escape(band)}" '
            f'data-value="{escape(repr(v))}" data-class="{escape(name)}">'
            f"<title>{escape(labels[i])}: {escape(name)} ({code})</title></rect>"
        )
    return parts
