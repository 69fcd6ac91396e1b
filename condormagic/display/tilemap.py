"""The tile map: the grid's footprint with each tile drawn, coloured by its job's state or picked job.

Drawn as one SVG (a ``rect`` per tile, each with a tooltip) up to :data:`SVG_MAX_TILES` tiles,
else as one PNG with a pixel per tile, so a run of a million tiles costs one small image.
"""

from __future__ import annotations

import base64

import numpy as np

from ..rundir.state import STATES
from .cards import COLOURS
from .images import png_bytes

SVG_MAX_TILES = 2500  # above this, the tile map is a PNG (one pixel per tile), not one rect per tile
MAP_WIDTH = 420


class TileMap:
    """The grid's footprint with every tile coloured by its job's state."""

    def __init__(self, manifest, width: int = MAP_WIDTH):
        self.gw, self.gh = manifest.grid.width, manifest.grid.height
        self.tiles = manifest.tiling.array()  # row, col, height, width
        self.tile_job = np.full(len(self.tiles), -1, dtype=np.int64)
        for job, tiles in enumerate(manifest.jobs):
            self.tile_job[tiles] = job
        self.scale = width / max(self.gw, self.gh)
        self.width, self.height = max(1, round(self.gw * self.scale)), max(1, round(self.gh * self.scale))
        self._last = None
        self._html = ""
        self.size = (manifest.tiling.tile_rows, manifest.tiling.tile_cols)

    def html(self, job_states: list[str]) -> str:
        index = {s: i for i, s in enumerate(STATES)}
        codes = np.array([index[s] for s in job_states], dtype=np.int8)
        tile_codes = np.where(self.tile_job >= 0, codes[np.clip(self.tile_job, 0, None)], -1)
        key = tile_codes.tobytes()
        if key == self._last:
            return self._html
        self._last = key
        self._html = self._svg(tile_codes) if len(self.tiles) <= SVG_MAX_TILES else self._png(tile_codes)
        return self._html

    def _svg(self, codes: np.ndarray) -> str:
        states = [STATES[code] if code >= 0 else "skipped" for code in codes.tolist()]
        jobs = self.tile_job.tolist()
        rects = tile_rects(
            self.tiles.tolist(),
            self.scale,
            [COLOURS.get(state, "none") for state in states],
            [
                f'data-tile="{i}" data-job="{job}" data-state="{state}"'
                for i, (job, state) in enumerate(zip(jobs, states, strict=True))
            ],
            [
                f"tile {i} &#183; Job#{job} &#183; {state}"
                for i, (job, state) in enumerate(zip(jobs, states, strict=True))
            ],
        )
        return tilemap_svg(rects, self.width, self.height, len(codes))

    def _png(self, codes: np.ndarray) -> str:
        """Many tiles: one pixel per tile on the tile lattice, drawn pixelated."""
        palette = np.array([[int(COLOURS[s][i : i + 2], 16) for i in (1, 3, 5)] + [255] for s in STATES] + [[0] * 4])
        data, _ = tiles_png(self.tiles, self.size, palette[codes])
        counts = np.bincount(codes[codes >= 0], minlength=len(STATES))
        title = ", ".join(f"{s} {n}" for s, n in zip(STATES, counts.tolist(), strict=True) if n)
        return (
            f'<img class="cm-tilemap" src="data:image/png;base64,{data}" width="{self.width}" height="{self.height}" '
            f'title="{len(codes)} tiles: {title}" style="image-rendering:pixelated;display:block">'
        )


def tile_rects(tiles: list, scale: float, fills: list[str], attrs: list[str], titles: list[str]) -> str:
    """One SVG ``rect.cm-tile`` per tile (``[row, col, height, width]`` in grid pixels, times ``scale``)."""
    s = scale
    return "".join(
        f'<rect class="cm-tile" {attr} x="{col * s:.2f}" y="{row * s:.2f}" width="{w * s:.2f}" '
        f'height="{h * s:.2f}" fill="{fill}"><title>{title}</title></rect>'
        for (row, col, h, w), fill, attr, title in zip(tiles, fills, attrs, titles, strict=True)
    )


def tilemap_svg(body: str, width: int, height: int, n_tiles: int, over: str = "") -> str:
    """The tile map's SVG: the grid's dashed footprint, the tiles (``body``), then ``over`` drawn on top."""
    return (
        f'<svg class="cm-tilemap" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="display:block">'
        '<rect width="100%" height="100%" fill="none" stroke="var(--jp-border-color1,#999)" '
        'stroke-dasharray="3 2"/>'
        f'<g stroke="var(--jp-layout-color0,#fff)" stroke-width="{0.5 if n_tiles > 400 else 1}">'
        + body
        + "</g>"
        + over
        + "</svg>"
    )


def tiles_png(tiles: np.ndarray, size: tuple[int, int], rgba: np.ndarray) -> tuple[str, tuple[int, int]]:
    """Base64 PNG with one pixel per tile on the tile lattice (tiles of ``size`` rows and cols, ``rgba``
    per tile); and its (rows, cols)."""
    rows = tiles[:, 0] // size[0]
    cols = tiles[:, 1] // size[1]
    img = np.zeros((int(rows.max()) + 1, int(cols.max()) + 1, 4), dtype=np.uint8)
    img[rows, cols] = rgba
    return base64.b64encode(png_bytes(img.transpose(2, 0, 1))).decode(), img.shape[:2]
