"""Legends drawn on the map: a colour bar with units, the classes present, or the RGB bands and their stretch."""

from __future__ import annotations

from html import escape

from .style import LUTS, STRETCHES, Legend

BOX = (
    "font:11px/1.35 var(--jp-ui-font-family,sans-serif);color:var(--jp-ui-font-color1,#222);"
    "background:var(--jp-layout-color1,#fff);padding:4px 6px;border-radius:3px;max-width:230px"
)


def number(value: float) -> str:
    """A value as a person reads it on a legend: ``2,410``, ``0.327``, ``1.2e+12``; never ``-0``."""
    if abs(value) < 1e-12:
        return "0"
    if 1000 <= abs(value) < 1e9:
        text = f"{round(value):,}"
    else:
        text = f"{value:.3g}"
    return "0" if text in ("-0", "0") else text


def gradient(colormap: str, stops: int = 9) -> str:
    lut = LUTS[colormap]
    colours = [lut[round(i * 255 / (stops - 1))] for i in range(stops)]
    return "linear-gradient(to right," + ",".join(f"rgb({r},{g},{b})" for r, g, b in colours) + ")"


def legend_html(legend: Legend | None, side: str = "") -> str:
    """The HTML of ``legend`` (``side`` is ``"left"``/``"right"`` on a split map)."""
    if legend is None:
        return ""
    title = escape(legend.title)
    units = f" ({escape(legend.units)})" if legend.units else ""
    head = (
        f'<div style="font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis">{title}{units}</div>'
    )
    if legend.kind == "classes":
        rows = "".join(
            f'<div class="cm-legend-class" data-value="{v}"><span style="display:inline-block;width:10px;height:10px;'
            f'background:rgb{colour};margin-right:4px;border:1px solid #8888"></span>{escape(label)}</div>'
            for v, label, colour in legend.classes
        )
        body = rows or '<div style="opacity:.7">no data in view</div>'
        kind = "classes"
    elif legend.kind == "rgb":
        body = "".join(
            f'<div><b style="color:{c}">{c[0].upper()}</b> {escape(b)}: {number(lo)} &ndash; {number(hi)}</div>'
            for c, b, (lo, hi) in zip(("red", "green", "blue"), legend.bands, legend.ranges, strict=False)
        )
        body += f'<div style="opacity:.7">stretch {escape(STRETCHES.get(legend.stretch, legend.stretch))}</div>'
        kind = "rgb"
    else:
        mid = (legend.lo + legend.hi) / 2
        body = (
            f'<div class="cm-colorbar" style="height:10px;width:200px;background:{gradient(legend.colormap)};'
            'border:1px solid #8888"></div>'
            '<div style="display:flex;justify-content:space-between;width:202px">'
            f'<span class="cm-lo">{number(legend.lo)}</span><span>{number(mid)}</span>'
            f'<span class="cm-hi">{number(legend.hi)}</span></div>'
        )
        note = "centred on 0" if legend.colormap == "diverging" else STRETCHES.get(legend.stretch, legend.stretch)
        body += f'<div style="opacity:.7">{escape(note)}</div>'
        kind = legend.colormap
    return f'<div class="cm-legend" data-kind="{kind}" data-side="{side}" style="{BOX}">{head}{body}</div>'


def side_label_html(name: str, side: str) -> str:
    """The name of the layer shown on one side of a split map, written on that side."""
    arrow = "&#9664; " if side == "left" else ""
    after = " &#9654;" if side == "right" else ""
    return (
        f'<div class="cm-side-label" data-side="{side}" style="{BOX};font-weight:600">'
        f"{arrow}{escape(name)}{after}</div>"
    )
