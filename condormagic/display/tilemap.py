"""The tile map: the grid's footprint with each tile drawn, coloured by its job's state or picked job.

Drawn as one SVG (a ``rect`` per tile, each with a tooltip) up to :data:`SVG_MAX_TILES` tiles,
else as one PNG with a pixel per tile, so a run of a million tiles costs one small image.
Tiles are drawn on a :class:`Lattice`: a few tiles make a small map (not 420 px of one colour),
and a thin last row or column of tiles stays wide enough to see and to click.
"""

from __future__ import annotations

import base64
import itertools

import numpy as np

from ..rundir.state import STATES
from .cards import COLOURS
from .images import png_bytes

SVG_MAX_TILES = 2500  # above this, the tile map is a PNG (one pixel per tile), not one rect per tile
MAP_WIDTH = 420  # the longer side of the map, at most
MAX_CELL = 64  # px of a whole tile, at most: four tiles make a map of 128 px, not 420
MIN_PART = 0.4  # a thin edge tile is drawn at least this part of a whole one


class Lattice:
    """Where grid pixels fall on the drawn map: each whole tile is ``cell`` px, a thin edge tile at
    least ``MIN_PART`` of that; positions inside a tile are linear.

    ``lattice.x(cols)`` and ``lattice.y(rows)`` map grid columns and rows (numbers or arrays) to
    map pixels; ``width`` and ``height`` are the map's size.
    """

    def __init__(self, width: int, height: int, tile_rows: int, tile_cols: int, size: int = MAP_WIDTH):
        n_rows, n_cols = max(1, -(-height // tile_rows)), max(1, -(-width // tile_cols))
        self.cell = min(MAX_CELL, size / max(n_rows, n_cols))
        self._cols = self._edges(width, tile_cols, n_cols)
        self._rows = self._edges(height, tile_rows, n_rows)
        self._px = (self.cell / tile_cols, self.cell / tile_rows)  # beyond the grid (a halo): whole-tile scale
        self.width = max(1, round(self._cols[1][-1]))
        self.height = max(1, round(self._rows[1][-1]))

    def _edges(self, extent: int, tile: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Tile edges in grid pixels, and where each is drawn."""
        grid = np.minimum(np.arange(n + 1) * tile, extent).astype(float)
        parts = np.diff(grid) / tile
        drawn = np.concatenate([[0.0], np.cumsum(np.maximum(parts, MIN_PART) * self.cell)])
        return grid, drawn

    @staticmethod
    def _map(values, edges: tuple[np.ndarray, np.ndarray], px: float):
        grid, drawn = edges
        values = np.asarray(values, dtype=float)
        inside = np.interp(values, grid, drawn)
        return inside + (np.minimum(values, 0) + np.maximum(values - grid[-1], 0)) * px

    def x(self, cols):
        return self._map(cols, self._cols, self._px[0])

    def y(self, rows):
        return self._map(rows, self._rows, self._px[1])

    def boxes(self, tiles: np.ndarray) -> np.ndarray:
        """``[x, y, w, h]`` on the map of tiles given as ``[row, col, height, width]`` rows."""
        tiles = np.asarray(tiles, dtype=float).reshape(-1, 4)
        x0, x1 = self.x(tiles[:, 1]), self.x(tiles[:, 1] + tiles[:, 3])
        y0, y1 = self.y(tiles[:, 0]), self.y(tiles[:, 0] + tiles[:, 2])
        return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)

    @classmethod
    def of(cls, grid_width: int, grid_height: int, tiling, size: int = MAP_WIDTH) -> Lattice:
        return cls(grid_width, grid_height, tiling.tile_rows, tiling.tile_cols, size)


class TileMap:
    """The grid's footprint with every tile coloured by its job's state."""

    def __init__(self, manifest, width: int = MAP_WIDTH):
        self.gw, self.gh = manifest.grid.width, manifest.grid.height
        self.tiles = manifest.tiling.array()  # row, col, height, width
        self.tile_job = np.full(len(self.tiles), -1, dtype=np.int64)
        sizes = np.fromiter(map(len, manifest.jobs), dtype=np.int64, count=len(manifest.jobs))
        flat = np.fromiter(itertools.chain.from_iterable(manifest.jobs), dtype=np.int64, count=int(sizes.sum()))
        self.tile_job[flat] = np.repeat(np.arange(len(manifest.jobs)), sizes)
        self.lattice = Lattice.of(self.gw, self.gh, manifest.tiling, width)
        self.width, self.height = self.lattice.width, self.lattice.height
        self._last = None
        self._html = ""
        self.size = (manifest.tiling.tile_rows, manifest.tiling.tile_cols)

    def html(self, job_states) -> str:
        """The map for the jobs' states: their codes (indices into STATES, as ``RunState.codes``) or names."""
        if isinstance(job_states, np.ndarray):
            codes = job_states
        else:
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
            self.tiles,
            self.lattice,
            [COLOURS.get(state, "none") for state in states],
            [
                f'data-tile="{i}" data-job="{job}" data-state="{state}"' + (f' data-pick="{job}"' if job >= 0 else "")
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


def tile_rects(tiles, lattice: Lattice, fills: list[str], attrs: list[str], titles: list[str]) -> str:
    """One SVG ``rect.cm-tile`` per tile (``[row, col, height, width]`` in grid pixels), placed on ``lattice``."""
    boxes = lattice.boxes(tiles).tolist() if len(tiles) else []
    return "".join(
        f'<rect class="cm-tile" {attr} x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" '
        f'height="{h:.2f}" fill="{fill}"><title>{title}</title></rect>'
        for (x, y, w, h), fill, attr, title in zip(boxes, fills, attrs, titles, strict=True)
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
