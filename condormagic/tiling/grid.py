"""The target grid every source is aligned onto, and its tiles.

Tiles are not stored: :class:`Tiling` computes any tile from its index, so a grid of
millions of tiles costs nothing until tiles are asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size in pixels.

    Parameters
    ----------
    crs : str or None
        The grid's CRS as WKT (or ``None`` for a grid without a CRS).
    transform : affine.Affine
        Pixel to map coordinates, as in rasterio.
    width, height : int
        Size in pixels.
    """

    crs: str | None
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> tuple[float, float]:
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in grid coordinates (north-up grids)."""
        return window_bounds(self, Window(0, 0, self.width, self.height))

    @property
    def is_rectilinear(self) -> bool:
        return self.transform.b == 0 and self.transform.d == 0

    def rasterio_crs(self) -> CRS | None:
        return CRS.from_wkt(self.crs) if self.crs else None

    def to_dict(self) -> dict:
        return {
            "crs": self.crs,
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Grid:
        return cls(data["crs"], Affine(*data["transform"]), data["width"], data["height"])


def window_bounds(grid: Grid, window: Window) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of a window of ``grid``, in the grid's coordinates."""
    col, row, w, h = window.col_off, window.row_off, window.width, window.height
    corners = [grid.transform @ xy for xy in ((col, row), (col + w, row), (col, row + h), (col + w, row + h))]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return (min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class Tile:
    """One tile of the grid: the pixels a function call produces.

    ``window`` is the tile itself; ``read_window`` adds the halo on every side and may
    reach outside the grid (those pixels are filled with the source's nodata).
    """

    index: int
    row_off: int
    col_off: int
    height: int
    width: int
    halo: int = 0

    @property
    def window(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)

    @property
    def read_window(self) -> Window:
        h = self.halo
        return Window(self.col_off - h, self.row_off - h, self.width + 2 * h, self.height + 2 * h)

    def where(self) -> str:
        """``rows 0:1024, cols 1024:2048``: the tile's place on the grid, for messages."""
        return f"rows {self.row_off}:{self.row_off + self.height}, cols {self.col_off}:{self.col_off + self.width}"

    def to_list(self) -> list[int]:
        return [self.row_off, self.col_off, self.height, self.width]


class Tiling(Sequence):
    """The tiles of a grid, row by row, computed from their index; edge tiles are smaller.

    Parameters
    ----------
    width, height : int
        The grid's size in pixels.
    tile : int or (int, int)
        Tile size in pixels, square or ``(rows, cols)``.
    halo : int
        Extra pixels read on each side of every tile.
    """

    def __init__(self, width: int, height: int, tile: int | Sequence[int], halo: int = 0):
        self.width, self.height, self.halo = int(width), int(height), int(halo)
        rows, cols = (tile, tile) if isinstance(tile, int) else tile
        self.tile_rows, self.tile_cols = int(rows), int(cols)
        self.n_rows = math.ceil(self.height / self.tile_rows)
        self.n_cols = math.ceil(self.width / self.tile_cols)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} is not on the grid (it has {len(self)} tiles)")
        r, c = divmod(index, self.n_cols)
        row_off, col_off = r * self.tile_rows, c * self.tile_cols
        return Tile(
            index,
            row_off,
            col_off,
            min(self.tile_rows, self.height - row_off),
            min(self.tile_cols, self.width - col_off),
            self.halo,
        )

    def __iter__(self) -> Iterator[Tile]:
        return (self[i] for i in range(len(self)))

    def array(self, indices=None) -> np.ndarray:
        """``(n, 4)`` int64 array of ``row_off, col_off, height, width`` of the tiles (all, or ``indices``)."""
        index = np.arange(len(self), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        r, c = np.divmod(index, self.n_cols)
        row_off, col_off = r * self.tile_rows, c * self.tile_cols
        heights = np.minimum(self.tile_rows, self.height - row_off)
        widths = np.minimum(self.tile_cols, self.width - col_off)
        return np.stack([row_off, col_off, heights, widths], axis=1)

    def to_dict(self) -> dict:
        return {"tile": [self.tile_rows, self.tile_cols], "halo": self.halo}

    def __repr__(self) -> str:
        return f"<Tiling {len(self)} tiles of {self.tile_rows} x {self.tile_cols} px, halo {self.halo}>"


def tile_grid(grid: Grid, tile: int | tuple[int, int], halo: int = 0) -> Tiling:
    """The tiles of ``grid`` (see :class:`Tiling`)."""
    return Tiling(grid.width, grid.height, tile, halo)
