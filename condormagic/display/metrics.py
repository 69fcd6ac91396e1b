"""A run's metrics as a person reads them: sorted naturally, grouped by prefix, with their units.

The naming rule (documented in the README): a metric named ``<what>_<unit>`` with a unit from
:data:`UNITS` is shown with that unit (``area_km2`` as ``area 12.5 km²``); names that share a
prefix before their first ``_`` are shown together (``before_3``, ``after_3``, ``before_13``... as
one table with a column per prefix and a row per rest: ``3``, ``13``, in natural order).
"""

from __future__ import annotations

import math
import re
from html import escape

UNITS = {
    "km2": "km²",
    "m2": "m²",
    "ha": "ha",
    "km": "km",
    "m": "m",
    "cm": "cm",
    "mm": "mm",
    "pct": "%",
    "percent": "%",
    "kg": "kg",
    "t": "t",
    "s": "s",
    "px": "px",
}
MAX_ROWS = 12  # rows of a group shown before the rest fold away


def natural_key(name: str) -> list:
    """``before_3`` before ``before_13``: digits compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name) if part]


def split_unit(name: str) -> tuple[str, str]:
    """``("area", "km²")`` for ``area_km2``; ``(name, "")`` without a known unit."""
    base, sep, last = name.rpartition("_")
    if sep and base and last.lower() in UNITS:
        return base, UNITS[last.lower()]
    return name, ""


def number(value: float) -> str:
    """``1,234,567``, ``12.35``, ``0.0012``; never ``-0`` (``-0.00001`` is ``0``)."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{round(value) + 0:,}"
    if abs(value) >= 1:
        return f"{round(value, 2) + 0.0:,.2f}".rstrip("0").rstrip(".")
    return f"{round(value, 4) + 0.0:.4f}".rstrip("0").rstrip(".")


def with_unit(value: float, unit: str) -> str:
    if not unit:
        return number(value)
    return f"{number(value)}{'' if unit == '%' else ' '}{unit}"


def grouped(metrics: dict[str, float]) -> tuple[list[tuple[str, str, float]], dict[str, list[tuple[str, str, float]]]]:
    """The single metrics ``(label, unit, value)`` and the groups ``{prefix: [(rest, unit, value)]}``:
    groups in the order the function gave them, everything within them in natural order."""
    by_prefix: dict[str, list[tuple[str, str, float]]] = {}
    for name in metrics:
        prefix = split_unit(name)[0].partition("_")[0]
        by_prefix.setdefault(prefix if "_" in split_unit(name)[0] else "", [])
    for name in sorted(metrics, key=natural_key):
        base, unit = split_unit(name)
        prefix, sep, rest = base.partition("_")
        key = prefix if sep and rest else ""
        by_prefix.setdefault(key, []).append((rest if key else base, unit, metrics[name]))
    singles = by_prefix.pop("", [])
    by_prefix = {p: items for p, items in by_prefix.items() if items}
    for prefix in [p for p, items in by_prefix.items() if len(items) == 1]:
        ((rest, unit, value),) = by_prefix.pop(prefix)
        singles.append((f"{prefix}_{rest}", unit, value))
    singles.sort(key=lambda item: natural_key(item[0]))
    return singles, by_prefix


def metrics_html(metrics: dict[str, float], style: str = "") -> str:
    """The metrics block: single metrics on one line, each group as a small table."""
    if not metrics:
        return ""
    singles, groups = grouped(metrics)
    parts = []
    if singles:
        parts.append(
            '<div class="cm-metric-line">'
            + " &middot; ".join(
                f'<span class="cm-metric">{escape(label)} <b>{escape(with_unit(value, unit))}</b></span>'
                for label, unit, value in singles
            )
            + "</div>"
        )
    cell = "padding:0 10px 0 0;text-align:right;white-space:nowrap"
    # Groups over the same rows (before_3, after_3...) make one table, a column per prefix.
    tables: dict[tuple, list[str]] = {}
    for prefix, items in groups.items():
        tables.setdefault(tuple(rest for rest, _, _ in items), []).append(prefix)
    for rows, prefixes in tables.items():
        values = {p: {rest: (unit, value) for rest, unit, value in groups[p]} for p in prefixes}
        head = f'<th style="{cell};text-align:left"></th>' + "".join(
            f'<th style="{cell}">{escape(p)}</th>' for p in prefixes
        )
        body = []
        for rest in rows:
            body.append(
                f'<tr data-metric="{escape(rest)}"><td style="{cell};text-align:left">{escape(rest)}</td>'
                + "".join(f'<td style="{cell}">{escape(with_unit(*reversed(values[p][rest])))}</td>' for p in prefixes)
                + "</tr>"
            )
        table = (
            f'<table class="cm-metric-table" style="border-collapse:collapse;margin:2px 0">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body[:MAX_ROWS])}</tbody></table>"
        )
        if len(rows) > MAX_ROWS:
            table += (
                f'<details><summary>{len(rows) - MAX_ROWS} more</summary><table style="border-collapse:collapse">'
                f"<tbody>{''.join(body[MAX_ROWS:])}</tbody></table></details>"
            )
        parts.append(table)
    return f'<div class="cm-metrics" style="{style}">' + "".join(parts) + "</div>"


def metrics_text(metrics: dict[str, float]) -> str:
    """The metrics as lines of text, in the same order as :func:`metrics_html`."""
    singles, groups = grouped(metrics)
    lines = [f"{label} = {with_unit(value, unit)}" for label, unit, value in singles]
    for prefix, items in groups.items():
        lines.append(f"{prefix}: " + ", ".join(f"{rest} = {with_unit(value, unit)}" for rest, unit, value in items))
    return "\n".join(lines)
