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
from rasterio.errors import RasterioIOError
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

    def __init__(self, source: dict, grid: Grid, alpha: bool = False):
        self.source = source
        self.grid = grid
        self.nodata = parse_nodata(source["nodata"])
        self._ds = open_raster(source["path"], source.get("overview"))
        self._vrt = None
        # A nodata the file does not declare (a collection's asset whose STAC metadata gives it).
        declared = None if self.nodata is None or self._ds.nodata is not None else self.nodata
        if source["warp"]:
            scale, level = source.get("scale"), source.get("overview")
            xml = exact_warped_vrt(self._ds, grid, source["resampling"], scale, declared, alpha, overview=level)
            self._vrt = rasterio.open(xml)
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

    def read_valid(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read ``window`` of a one-band source with where it has values: not its nodata; for a
        source without nodata, inside the source (its warp's alpha band, or its rectangle)."""
        if self.nodata is not None:
            data = self.read(window)
            if isinstance(self.nodata, float) and math.isnan(self.nodata):
                return data, ~np.isnan(data)
            return data, data != self.nodata
        if self._vrt is None:
            data = self.read(window)
            row_shift, col_shift = self.source["offset"]
            r0, c0 = int(window.row_off) + row_shift, int(window.col_off) + col_shift
            rows = np.arange(r0, r0 + data.shape[0])
            cols = np.arange(c0, c0 + data.shape[1])
            inside_rows = (rows >= 0) & (rows < self.source["height"])
            inside_cols = (cols >= 0) & (cols < self.source["width"])
            return data, inside_rows[:, None] & inside_cols[None, :]
        rows, cols = int(window.height), int(window.width)
        r0, c0 = int(window.row_off), int(window.col_off)
        data = np.zeros((rows, cols), dtype=self.dtype)
        valid = np.zeros((rows, cols), dtype=bool)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + rows, self.grid.height), min(c0 + cols, self.grid.width)
        if rr1 > rr0 and cc1 > cc0:
            part = self._vrt.read(window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
            data[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part[0]
            valid[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part[-1] > 0
        return data, valid

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._ds.close()


# Called with the path of every raster a reader opens: an opener hook, for tests and tools that
# count what a job reads.
OPEN_HOOKS: list = []


def open_raster(path: str, overview: int | None = None):
    """Open a raster (at an overview level); every file the readers open goes through here."""
    for hook in OPEN_HOOKS:
        hook(path)
    if overview is not None:
        return rasterio.open(path, overview_level=overview)
    return rasterio.open(path)


def exact_warped_vrt(
    dataset,
    grid: Grid,
    resampling: str,
    scale: Sequence[float] | None = None,
    nodata: float | None = None,
    alpha: bool = False,
    options: dict | None = None,
    overview: int | None = None,
) -> str:
    """The XML of a warped VRT of ``dataset`` onto ``grid`` that a tile reads like a whole warp.

    Two things make a window of it equal the same pixels of the whole grid warped at once:
    GDAL's exact transformer (the default approximate one interpolates along each chunk's
    scanlines, so it depends on the chunk), and one resampling scale (``XSCALE``/``YSCALE``)
    for every chunk. rasterio's ``WarpedVRT(tolerance=0)`` should give the first but leaves
    GDAL without a transformer (rasterio 1.4: "pfnTransformer is NULL"), so the VRT is made
    with the approximate transformer, serialised, and its ``ApproxTransformer`` replaced by
    the exact transformer it wraps.

    ``nodata`` is a nodata value the file does not declare (given by a STAC item); ``alpha``
    adds an alpha band that marks the pixels the source covers (for sources without nodata).
    ``overview`` is the overview level ``dataset`` was opened at (rasterio's ``overview_level``):
    the VRT then opens its file at that level (GDAL's ``OVERVIEW_LEVEL`` open option), whose
    pixels the transformer and the scale are in.
    """
    extras = {"XSCALE": repr(float(scale[0])), "YSCALE": repr(float(scale[1]))} if scale else {}
    if nodata is not None:
        extras.update(src_nodata=nodata, nodata=nodata)
    if alpha:
        extras["add_alpha"] = True
    extras.update(options or {})
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
    warp_options = root.find("GDALWarpOptions")
    for old in warp_options.findall("OpenOptions"):
        warp_options.remove(old)
    if overview is not None:
        opened = ET.Element("OpenOptions")
        ET.SubElement(opened, "OOI", key="OVERVIEW_LEVEL").text = str(int(overview))
        warp_options.insert(list(warp_options).index(source) + 1, opened)
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


def stacked_vrt(paths: Sequence[str], like: dict, overviews: Sequence[int | None] | None = None) -> str:
    """The XML of a VRT whose band ``i`` is the one band of ``paths[i]`` (of its overview level
    ``overviews[i]`` when that is not ``None``): rasters of one geometry (``like``'s CRS, transform
    and size), dtype and nodata."""
    from rasterio.dtypes import _gdal_typename

    root = ET.Element("VRTDataset", rasterXSize=str(like["width"]), rasterYSize=str(like["height"]))
    if like["crs"]:
        ET.SubElement(root, "SRS").text = like["crs"]
    t = Affine(*like["transform"][:6])
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    size = {"xOff": "0", "yOff": "0", "xSize": str(like["width"]), "ySize": str(like["height"])}
    nodata = parse_nodata(like["nodata"])
    for i, path in enumerate(paths, start=1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=_gdal_typename(like["dtype"]), band=str(i))
        if nodata is not None:
            ET.SubElement(band, "NoDataValue").text = (
                "nan" if isinstance(nodata, float) and math.isnan(nodata) else repr(nodata)
            )
        source = ET.SubElement(band, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = path
        level = overviews[i - 1] if overviews else None
        if level is not None:  # GDAL opens the file at that level: its size is the overview's
            options = ET.SubElement(source, "OpenOptions")
            ET.SubElement(options, "OOI", key="OVERVIEW_LEVEL").text = str(int(level))
        ET.SubElement(source, "SourceBand").text = "1"
        ET.SubElement(source, "SrcRect", **size)
        ET.SubElement(source, "DstRect", **size)
    return ET.tostring(root, encoding="unicode")


class CollectionReader:
    """Reads windows of a collection source (a manifest dict, see
    :meth:`~condormagic.tiling.collection.CollectionSource.to_dict`) onto ``grid``.

    A window gives ``(time, band, rows, cols)``: each time step's items mosaicked, band by band,
    by the first valid pixel in the items' order. Only the items whose footprint window touches
    the window are read; an asset's file is opened the first time it is needed, once.
    Not thread-safe: open one per thread.
    """

    def __init__(self, source: dict, grid: Grid):
        self.source = source
        self.grid = grid
        self.bands = list(source["bands"])
        self.times = np.array(source["times"], dtype="datetime64[ns]")
        self.dtype = np.dtype(source["dtype"])
        self.fills = [parse_nodata(f) for f in source["fill"]]
        self.items = source["items"]
        self.steps = source["steps"]
        self.windows = np.array([item["window"] for item in self.items], dtype=np.int64).reshape(-1, 4)
        self._readers: dict[tuple[int, int], SourceReader] = {}
        self._groups: dict | None = None
        self._members: dict = {}
        self._stack_vrts: dict = {}

    def touching(self, window: Window) -> list[int]:
        """The items whose footprint touches ``window`` (indices into the source's items)."""
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        w = self.windows
        hit = (w[:, 0] < r1) & (w[:, 2] > r0) & (w[:, 1] < c1) & (w[:, 3] > c0)
        return np.flatnonzero(hit).tolist()

    def _asset(self, item: int, band: int) -> SourceReader:
        reader = self._readers.get((item, band))
        if reader is None:
            reader = SourceReader(self._asset_dict(item, band), self.grid, alpha=self._needs_alpha(item, band))
            self._readers[(item, band)] = reader
        return reader

    def _asset_dict(self, item: int, band: int) -> dict:
        asset = dict(self.items[item]["assets"][band])
        asset["crs"] = self.source["crs"][asset["crs"]]
        asset["name"] = self.source["name"]
        asset["count"] = 1
        return asset

    def _needs_alpha(self, item: int, band: int) -> bool:
        asset = self.items[item]["assets"][band]
        return asset["nodata"] is None and asset["warp"]

    def _stacks(self) -> dict:
        """Warped assets that share their pixels' geometry, resampling, dtype and nodata (one granule's
        bands of one resolution, over every date), grouped: GDAL then transforms each grid pixel once
        for the whole group, not once per asset (the exact transformer is most of a warp's cost)."""
        if self._groups is None:
            groups: dict[tuple, list[tuple[int, int]]] = {}
            for k, item in enumerate(self.items):
                for b, a in enumerate(item["assets"]):
                    if not a["warp"] or a["nodata"] is None:
                        continue
                    key = (a["crs"], tuple(a["transform"]), a["width"], a["height"], a["dtype"], str(a["nodata"]))
                    key += (a["resampling"], tuple(a["scale"] or ()), tuple(item["window"]))
                    groups.setdefault(key, []).append((k, b))
            self._groups = {member: (key, i) for key, members in groups.items() for i, member in enumerate(members)}
            self._members = groups
        return self._groups

    def _stack(self, key: tuple):
        vrt = self._stack_vrts.get(key)
        if vrt is None:
            members = self._members[key]
            first = self._asset_dict(*members[0])
            paths = [self.items[k]["assets"][b]["path"] for k, b in members]
            levels = [self.items[k]["assets"][b].get("overview") for k, b in members]
            for path in paths:
                for hook in OPEN_HOOKS:
                    hook(path)
            with rasterio.open(stacked_vrt(paths, first, levels)) as stack:
                xml = exact_warped_vrt(
                    stack,
                    self.grid,
                    first["resampling"],
                    first.get("scale"),
                    options={"UNIFIED_SRC_NODATA": "NO"},  # each band its own nodata, as warped alone
                )
            vrt = rasterio.open(xml)
            self._stack_vrts[key] = vrt
        return vrt

    def _read_stacked(self, wanted: list[tuple[int, int]], r0: int, c0: int, rows: int, cols: int) -> dict:
        """Read the grouped assets among ``wanted``: ``{(item, band): (data, valid, window)}``."""
        groups = self._stacks()
        out = {}
        for key in {groups[m][0] for m in wanted if m in groups}:
            wr0, wc0, wr1, wc1 = key[-1]
            ir0, ic0, ir1, ic1 = max(wr0, r0), max(wc0, c0), min(wr1, r0 + rows), min(wc1, c0 + cols)
            if ir1 <= ir0 or ic1 <= ic0:
                continue
            window = Window(ic0, ir0, ic1 - ic0, ir1 - ir0)
            try:
                data = self._stack(key).read(window=window)
            except RasterioIOError as exc:
                reason = str(exc).splitlines()[0] if str(exc) else "read error"
                names = ", ".join(self.items[k]["id"] for k, _ in self._members[key][:3])
                raise RasterioIOError(f"assets of items {names}...: {reason}") from None
            for i, (k, b) in enumerate(self._members[key]):
                nodata = parse_nodata(self.items[k]["assets"][b]["nodata"])
                band = data[i]
                valid = ~np.isnan(band) if isinstance(nodata, float) and math.isnan(nodata) else band != nodata
                out[(k, b)] = (band, valid, (ir0, ic0, ir1, ic1))
        return out

    def read(self, window: Window) -> np.ndarray:
        rows, cols = int(window.height), int(window.width)
        r0, c0 = int(window.row_off), int(window.col_off)
        out = np.empty((len(self.steps), len(self.bands), rows, cols), dtype=self.dtype)
        for b, fill in enumerate(self.fills):
            out[:, b] = fill
        touching = set(self.touching(window))
        stacked = self._read_stacked(
            [(k, b) for k in sorted(touching) for b in range(len(self.bands))], r0, c0, rows, cols
        )
        for t, members in enumerate(self.steps):
            members = [k for k in members if k in touching]
            for b in range(len(self.bands)):
                done = np.zeros((rows, cols), dtype=bool) if len(members) > 1 else None
                for k in members:
                    if (k, b) in stacked:
                        data, valid, (ir0, ic0, ir1, ic1) = stacked.pop((k, b))
                    else:
                        wr0, wc0, wr1, wc1 = self.items[k]["window"]
                        ir0, ic0 = max(wr0, r0), max(wc0, c0)
                        ir1, ic1 = min(wr1, r0 + rows), min(wc1, c0 + cols)
                        if ir1 <= ir0 or ic1 <= ic0:
                            continue
                        reader = self._asset(k, b)
                        try:
                            data, valid = reader.read_valid(Window(ic0, ir0, ic1 - ic0, ir1 - ir0))
                        except RasterioIOError as exc:
                            reason = str(exc).splitlines()[0] if str(exc) else "read error"
                            raise RasterioIOError(
                                f"asset {self.bands[b]} of item {self.items[k]['id']} ({reader.source['path']}): "
                                f"{reason}"
                            ) from None
                    target = out[t, b, ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0]
                    if done is None:
                        np.copyto(target, data, where=valid, casting="unsafe")
                        continue
                    seen = done[ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0]
                    np.copyto(target, data, where=valid & ~seen, casting="unsafe")
                    seen |= valid
        return out

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        for vrt in self._stack_vrts.values():
            vrt.close()
        self._readers.clear()
        self._stack_vrts.clear()


class GridReader:
    """All sources of a manifest, read onto its grid window by window."""

    def __init__(self, sources: Sequence[dict], grid: Grid):
        self.names = [s["name"] for s in sources]
        self.grid = grid
        self.readers = [
            CollectionReader(s, grid) if s.get("kind") == "collection" else SourceReader(s, grid) for s in sources
        ]

    def read(self, window: Window) -> Img:
        arrays = [r.read(window) for r in self.readers]
        transform = self.grid.transform @ Affine.translation(window.col_off, window.row_off)
        collections = [(n, r) for n, r in zip(self.names, self.readers, strict=True) if isinstance(r, CollectionReader)]
        times = {n: r.times.copy() for n, r in collections}
        bands = {n: list(r.bands) for n, r in collections}
        return Img(self.names, arrays, window, transform, times, bands)

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def __enter__(self) -> GridReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
