"""Read a window of the target grid from each source: offset, or warped on the fly."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from .contract import Img
from .grid import Grid


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
            self._vrt = rasterio.open(exact_warped_vrt(self._ds, grid, source["resampling"], source.get("scale")))
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
        out_dtype = _wider_dtype(self.fill, self.dtype) if _needs_wider(self.fill, self.dtype) else self.dtype
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + rows, limit_rows), min(c0 + cols, limit_cols)
        if (rr0, cc0, rr1, cc1) == (r0, c0, r0 + rows, c0 + cols) and out_dtype == self.dtype:
            # Wholly inside the source (most tiles): read straight into the result, with no
            # filled array to allocate and copy into (a tenth of a tile's read time).
            out = dataset.read(window=Window(c0, r0, cols, rows))
            return out[0] if src["count"] == 1 else out
        out = np.full((src["count"], rows, cols), self.fill, dtype=out_dtype)
        if rr1 > rr0 and cc1 > cc0:
            part = dataset.read(window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
            out[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part
        return out[0] if src["count"] == 1 else out

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._ds.close()


def exact_warped_vrt(dataset, grid: Grid, resampling: str, scale: Sequence[float] | None = None) -> str:
    """The XML of a warped VRT of ``dataset`` onto ``grid`` that a tile reads like a whole warp.

    Two things make a window of it equal the same pixels of the whole grid warped at once:
    GDAL's exact transformer (the default approximate one interpolates along each chunk's
    scanlines, so it depends on the chunk), and one resampling scale (``XSCALE``/``YSCALE``)
    for every chunk. rasterio's ``WarpedVRT(tolerance=0)`` should give the first but leaves
    GDAL without a transformer (rasterio 1.4: "pfnTransformer is NULL"), so the VRT is made
    with the approximate transformer, serialised, and its ``ApproxTransformer`` replaced by
    the exact transformer it wraps.
    """
    extras = {"XSCALE": repr(float(scale[0])), "YSCALE": repr(float(scale[1]))} if scale else {}
    with (
        WarpedVRT(
            dataset,
            crs=CRS.from_wkt(grid.crs),
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling[resampling],
            **extras,
        ) as vrt,
        MemoryFile(ext=".vrt") as mem,
    ):
        rasterio.shutil.copy(vrt, mem.name, driver="VRT")
        root = ET.fromstring(mem.read())
    transformer = root.find("GDALWarpOptions/Transformer")
    approx = transformer.find("ApproxTransformer") if transformer is not None else None
    if approx is not None:
        transformer.remove(approx)
        transformer.append(approx.find("BaseTransformer")[0])
    source = root.find("GDALWarpOptions/SourceDataset")
    source.set("relativeToVRT", "0")
    source.text = dataset.name
    return ET.tostring(root, encoding="unicode")


def _needs_wider(fill, dtype: np.dtype) -> bool:
    """Whether ``dtype`` cannot hold the fill value (the source's nodata, or 0)."""
    if isinstance(fill, float) and math.isnan(fill):
        return dtype.kind != "f"
    if dtype.kind == "f":
        return False
    # rasterio gives nodata as a float (0.0 for a uint8 source): what matters is its value, not its type.
    if float(fill).is_integer() and dtype.kind in "ui":
        info = np.iinfo(dtype)
        return not info.min <= fill <= info.max
    return not np.can_cast(np.min_scalar_type(fill), dtype)


def _wider_dtype(fill, dtype: np.dtype) -> np.dtype:
    """The smallest dtype holding both ``dtype`` and ``fill`` (never float16, which GeoTIFF lacks)."""
    if not math.isnan(fill) and float(fill).is_integer():
        return np.result_type(dtype, np.min_scalar_type(int(fill)))
    return np.result_type(dtype, np.float32)


class GridReader:
    """All sources of a manifest, read onto its grid window by window."""

    def __init__(self, sources: Sequence[dict], grid: Grid):
        self.names = [s["name"] for s in sources]
        self.grid = grid
        self.readers = [SourceReader(s, grid) for s in sources]

    def read(self, window: Window) -> Img:
        arrays = [r.read(window) for r in self.readers]
        transform = self.grid.transform @ Affine.translation(window.col_off, window.row_off)
        return Img(self.names, arrays, window, transform)

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def __enter__(self) -> GridReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
