"""How a layer is coloured: band combination, stretch on the displayed area, colour maps.

A stretch is computed from the pixels on screen (the array rendered for the current view),
so zooming into a dark corner brightens it, as in desktop GIS. Colour maps are 256-entry
look-up tables: a perceptual ramp for continuous values, a diverging ramp centred on zero for
changes, and a fixed palette for integer classes (a class keeps its colour in every view).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

STRETCHES = {"percent": "2-98 %", "minmax": "min-max", "stddev": "mean ± N std"}
COLORMAPS = {
    "auto": "auto",
    "viridis": "viridis",
    "greys": "greys",
    "diverging": "diverging (0 at the centre)",
    "categorical": "classes",
}
MAX_CLASSES = 24  # integer layers with at most this many values on screen are shown as classes


def _lut(anchors) -> np.ndarray:
    """A (256, 3) uint8 ramp through evenly spaced RGB ``anchors``."""
    anchors = np.asarray(anchors, dtype=np.float64)
    x = np.linspace(0, len(anchors) - 1, 256)
    i = np.minimum(np.floor(x).astype(int), len(anchors) - 2)
    f = (x - i)[:, None]
    return np.round(anchors[i] * (1 - f) + anchors[i + 1] * f).astype(np.uint8)


LUTS = {
    # matplotlib's viridis at nine stops
    "viridis": _lut(
        [
            [68, 1, 84],
            [71, 44, 122],
            [59, 81, 139],
            [44, 113, 142],
            [33, 144, 141],
            [39, 173, 129],
            [92, 200, 99],
            [170, 220, 50],
            [253, 231, 37],
        ]
    ),
    "greys": _lut([[0, 0, 0], [255, 255, 255]]),
    # ColorBrewer's RdBu reversed: blue below zero, white at zero, red above
    "diverging": _lut(
        [
            [5, 48, 97],
            [33, 102, 172],
            [67, 147, 195],
            [146, 197, 222],
            [209, 229, 240],
            [247, 247, 247],
            [253, 219, 199],
            [244, 165, 130],
            [214, 96, 77],
            [178, 24, 43],
            [103, 0, 31],
        ]
    ),
}
# Classes: a value v gets PALETTE[v % len(PALETTE)] (Tableau 20, reordered so neighbours differ)
PALETTE = np.array(
    [
        [186, 186, 186],
        [214, 39, 40],
        [31, 119, 180],
        [44, 160, 44],
        [255, 127, 14],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [188, 189, 34],
        [23, 190, 207],
        [127, 127, 127],
        [174, 199, 232],
        [255, 187, 120],
        [152, 223, 138],
        [255, 152, 150],
        [197, 176, 213],
        [196, 156, 148],
        [247, 182, 210],
        [219, 219, 141],
        [158, 218, 229],
    ],
    dtype=np.uint8,
)


@dataclass
class Style:
    """The display settings of one layer.

    ``mode`` is ``"rgb"`` (``rgb`` names the red, green and blue bands) or ``"band"`` (``band``
    with ``colormap``). ``stretch`` is one of :data:`STRETCHES`, over the displayed area;
    ``n_std`` is N of the ``"stddev"`` stretch. ``time`` indexes a layer's time steps; ``item`` is
    the id of a collection's scene shown alone (``None``: the time step's scenes mosaicked).
    """

    mode: str = "band"
    band: str = ""
    rgb: tuple[str, str, str] = ("", "", "")
    colormap: str = "auto"
    stretch: str = "percent"
    n_std: float = 2.0
    opacity: float = 1.0
    visible: bool = True
    time: int = 0
    item: str | None = None  # a collection's one scene shown alone (its id), instead of the date's mosaic

    def bands_needed(self) -> list[str]:
        return list(self.rgb) if self.mode == "rgb" else [self.band]

    def copy(self, **changes) -> Style:
        return replace(self, **changes)


def default_style(bands: list[str], rgb: tuple[str, str, str] | None = None) -> Style:
    """RGB from the bands named red, green and blue (or B04, B03, B02, or the first three of
    three or four bands), else the first band."""
    if rgb is None:
        lower = [b.lower() for b in bands]
        for names in (("red", "green", "blue"), ("b04", "b03", "b02"), ("r", "g", "b")):
            if all(n in lower for n in names):
                rgb = tuple(bands[lower.index(n)] for n in names)
                break
        else:
            if len(bands) in (3, 4):
                rgb = (bands[0], bands[1], bands[2])
    if rgb:
        return Style(mode="rgb", band=bands[0], rgb=tuple(rgb))
    return Style(mode="band", band=bands[0], rgb=tuple((bands * 3)[:3]))


def stretch_range(values: np.ndarray, method: str, n_std: float = 2.0) -> tuple[float, float]:
    """The (low, high) of ``values`` (finite, 1-D) for a stretch ``method``; (0, 1) for no values."""
    if values.size == 0:
        return 0.0, 1.0
    if method == "minmax":
        lo, hi = float(values.min()), float(values.max())
    elif method == "stddev":
        mean, std = float(values.mean()), float(values.std())
        lo, hi = mean - n_std * std, mean + n_std * std
    elif method == "percent":
        lo, hi = (float(v) for v in np.percentile(values, [2, 98]))
        if hi <= lo:
            lo, hi = float(values.min()), float(values.max())
    else:
        raise ValueError(f"unknown stretch {method!r}: use one of {', '.join(STRETCHES)}")
    return lo, hi


def to_bytes(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``data`` scaled so ``lo`` is 0 and ``hi`` 255, as uint8: ``floor(clip((v - lo) * 255 / (hi - lo), 0, 255))``
    in float64 (NaN becomes 0; with ``hi <= lo``, 255 from ``hi`` up)."""
    if hi <= lo:
        return np.where(np.isfinite(data) & (data >= hi), 255, 0).astype(np.uint8)
    scaled = (data.astype(np.float64) - lo) * (255.0 / (hi - lo))
    np.clip(scaled, 0, 255, out=scaled)
    return np.nan_to_num(scaled, nan=0.0).astype(np.uint8)


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite values of ``values``, flat: every pixel of the view counts in its stretch."""
    flat = values.ravel()
    return flat[np.isfinite(flat)]


@dataclass
class Legend:
    """What a legend shows for a coloured view: a colour bar (``lo``..``hi``, ``lut``), classes, or RGB bands."""

    kind: str  # "colorbar", "classes" or "rgb"
    title: str
    units: str = ""
    lo: float = 0.0
    hi: float = 1.0
    colormap: str = "viridis"
    classes: list[tuple[int, str, tuple[int, int, int]]] = field(default_factory=list)
    bands: tuple[str, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()
    stretch: str = ""


def class_table(classes: dict | None) -> tuple[dict[int, str], dict[int, tuple[int, int, int]]]:
    """Labels and colours of classes given as ``{value: "label"}`` or ``{value: ("label", "#rrggbb")}``."""
    labels, colours = {}, {}
    for key, spec in (classes or {}).items():
        label, colour_spec = (spec, None) if isinstance(spec, str) else (spec[0], spec[1] if len(spec) > 1 else None)
        labels[int(key)] = str(label)
        if colour_spec:
            text = colour_spec.lstrip("#")
            colours[int(key)] = (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    return labels, colours


def class_colours(codes: np.ndarray, colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """The RGB (``codes.shape + (3,)``) of integer classes: the given colours, else the palette's."""
    rgb = PALETTE[np.mod(codes, len(PALETTE))]
    for value, colour in colours.items():
        rgb[codes == value] = colour
    return rgb


def resolve_colormap(name: str, values: np.ndarray, integer: bool, has_classes: bool) -> str:
    """The colour map ``"auto"`` means for these values: classes for integers with few values,
    diverging for values spread either side of zero, else viridis."""
    if name != "auto":
        return name
    if has_classes:
        return "categorical"
    if values.size and integer and np.unique(values).size <= MAX_CLASSES:
        return "categorical"
    if values.size:
        lo, hi = np.percentile(values, [2, 98])
        if lo < 0 < hi and min(-lo, hi) >= 0.2 * max(-lo, hi):
            return "diverging"
    return "viridis"


def colour(
    data: np.ndarray,
    style: Style,
    integer: bool = False,
    classes: dict | None = None,
    units: str = "",
    title: str = "",
) -> tuple[np.ndarray, Legend]:
    """RGBA ``(4, rows, cols)`` uint8 of ``data`` (``(bands, rows, cols)`` float, NaN for no data)
    in the bands ``style`` asks for (three for RGB, one otherwise), and its legend."""
    valid = np.all(np.isfinite(data), axis=0)
    alpha = np.where(valid, np.uint8(round(255 * max(0.0, min(1.0, style.opacity)))), np.uint8(0))
    if style.mode == "rgb":
        ranges, rgb = [], []
        for band in data[:3]:
            lo, hi = stretch_range(_finite(band), style.stretch, style.n_std)
            ranges.append((lo, hi))
            rgb.append(to_bytes(band, lo, hi))
        legend = Legend("rgb", title, units, bands=tuple(style.rgb), ranges=tuple(ranges), stretch=style.stretch)
        return np.stack([*rgb, alpha]), legend
    band = data[0]
    values = _finite(band)
    cmap = resolve_colormap(style.colormap, values, integer, bool(classes))
    if cmap == "categorical":
        labels, colours = class_table(classes)
        finite = np.where(valid, band, 0)
        codes = np.rint(finite).astype(np.int64)
        rgb = class_colours(codes, colours).transpose(2, 0, 1)
        present = np.unique(np.rint(values).astype(np.int64)) if values.size else np.array([], dtype=np.int64)
        shown = [int(v) for v in present[:MAX_CLASSES]]
        entries = [
            (v, labels.get(v, str(v)), tuple(int(c) for c in class_colours(np.array([v]), colours)[0])) for v in shown
        ]
        legend = Legend("classes", title, units, colormap=cmap, classes=entries)
        return np.concatenate([rgb, alpha[None]]), legend
    lo, hi = stretch_range(values, style.stretch, style.n_std)
    if cmap == "diverging":
        m = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -m, m
    grey = to_bytes(band, lo, hi)
    rgb = LUTS[cmap][grey].transpose(2, 0, 1)
    legend = Legend("colorbar", title, units, lo=lo, hi=hi, colormap=cmap, stretch=style.stretch)
    return np.concatenate([rgb, alpha[None]]), legend
