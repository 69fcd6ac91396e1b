"""The target grid every source is aligned onto, and its tiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

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

    def to_list(self) -> list[int]:
        return [self.row_off, self.col_off, self.height, self.width]


def tile_grid(grid: Grid, tile: int | tuple[int, int], halo: int = 0) -> list[Tile]:
    """Cut ``grid`` into tiles of ``tile`` pixels, row by row; edge tiles are smaller.

    Parameters
    ----------
    grid : Grid
    tile : int or (int, int)
        Tile size in pixels, square or ``(rows, cols)``.
    halo : int
        Extra pixels read on each side of every tile.
    """
    rows, cols = (tile, tile) if isinstance(tile, int) else tile
    tiles = []
    for r in range(math.ceil(grid.height / rows)):
        for c in range(math.ceil(grid.width / cols)):
            row_off, col_off = r * rows, c * cols
            tiles.append(
                Tile(
                    len(tiles),
                    row_off,
                    col_off,
                    min(rows, grid.height - row_off),
                    min(cols, grid.width - col_off),
                    halo,
                )
            )
    return tiles
