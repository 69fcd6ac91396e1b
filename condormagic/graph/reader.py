"""Read a window of the target grid from each source: offset, or warped on the fly."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from .grid import Grid


class Img(Sequence):
    """The arrays a function receives for one tile, in declaration order.

    ``img[0]`` and ``img["dem1"]`` are the same array. ``img.window`` is the window
    of the target grid that was read (halo included) and ``img.transform`` its
    affine transform, for functions that need coordinates.
    """

    def __init__(self, names: Sequence[str], arrays: Sequence[np.ndarray], window: Window, transform: Affine):
        self.names = tuple(names)
        self._arrays = list(arrays)
        self.window = window
        self.transform = transform

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._arrays[self.names.index(key)]
            except ValueError:
                raise KeyError(f"{key!r} is not a source; the sources are {', '.join(self.names)}") from None
        return self._arrays[key]

    def __len__(self) -> int:
        return len(self._arrays)

    def keys(self) -> tuple[str, ...]:
        return self.names

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}: {a.dtype}{list(a.shape)}" for n, a in zip(self.names, self._arrays, strict=True))
        return f"<Img {shapes}>"


def parse_nodata(value) -> float | None:
    return float("nan") if value == "nan" else value


class SourceReader:
    """Reads windows of one source (a manifest dict) aligned onto ``grid``.

    Not thread-safe: open one per thread.
    """

    def __init__(self, source: dict, grid: Grid):
        self.source = source
        self.grid = grid
        self.nodata = parse_nodata(source["nodata"])
        self._ds = rasterio.open(source["path"])
        self._vrt = None
        if source["warp"]:
            self._vrt = WarpedVRT(
                self._ds,
                crs=CRS.from_wkt(grid.crs),
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling[source["resampling"]],
                # An exact transformer, so that a tile equals the same pixels of a whole warp.
                tolerance=0,
            )
        self.fill = 0 if self.nodata is None else self.nodata
        self.dtype = np.dtype(source["dtype"])

    def read(self, window: Window) -> np.ndarray:
        """Read ``window`` of the grid; pixels outside the source are its nodata (or 0).

        Returns a 2-D array for a one-band source, 3-D ``(bands, rows, cols)`` otherwise.
        """
        src = self.source
        if self._vrt is not None:
            dataset, (row_shift, col_shift) = self._vrt, (0, 0)
            limit_rows, limit_cols = self.grid.height, self.grid.width
        else:
            dataset, (row_shift, col_shift) = self._ds, src["offset"]
            limit_rows, limit_cols = src["height"], src["width"]
        rows, cols = int(window.height), int(window.width)
        r0, c0 = int(window.row_off) + row_shift, int(window.col_off) + col_shift
        out_dtype = (
            np.result_type(self.dtype, np.min_scalar_type(self.fill))
            if _needs_wider(self.fill, self.dtype)
            else self.dtype
        )
        out = np.full((src["count"], rows, cols), self.fill, dtype=out_dtype)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + rows, limit_rows), min(c0 + cols, limit_cols)
        if rr1 > rr0 and cc1 > cc0:
            part = dataset.read(window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
            out[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part
        return out[0] if src["count"] == 1 else out

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._ds.close()


def _needs_wider(fill, dtype: np.dtype) -> bool:
    if isinstance(fill, float) and math.isnan(fill):
        return dtype.kind != "f"
    return not np.can_cast(np.min_scalar_type(fill), dtype)


class GridReader:
    """All sources of a manifest, read onto its grid window by window."""

    def __init__(self, sources: Sequence[dict], grid: Grid):
        self.names = [s["name"] for s in sources]
        self.grid = grid
        self.readers = [SourceReader(s, grid) for s in sources]

    def read(self, window: Window) -> Img:
        arrays = [r.read(window) for r in self.readers]
        transform = self.grid.transform * Affine.translation(window.col_off, window.row_off)
        return Img(self.names, arrays, window, transform)

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def __enter__(self) -> GridReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
