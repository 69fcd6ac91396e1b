"""A run's results: the mosaic of its tiles (VRT and Cloud-Optimized GeoTIFF) and its metrics.

Each job's metrics record says which tiles it wrote, with their dtype, band count and band
names. The mosaic is made only from those tiles, after checking that they agree: band counts
and names must be the same everywhere (else one sentence names the tiles that differ);
dtypes may differ only where NumPy would promote them (uint8 and float32 give float32), which
``result.json`` notes. Tiles the function returned nothing for, and tiles a mask skipped, are
nodata in the mosaic.

The COG is written to a temporary file and renamed into place, and ``result.json`` records
the file this run wrote (path, size, time), so a run never reports a file that it did not write.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CondorMagicError
from .layout import DirLock, RunDir, read_json, tile_name, write_atomic, write_json_atomic
from .manifest import Manifest

COG_OPTIONS = {
    "driver": "COG",
    "compress": "deflate",
    "blocksize": 512,
    "num_threads": "all_cpus",
    "bigtiff": "if_safer",
}


class ResultError(CondorMagicError):
    """The tiles of a completed run cannot be put together into one output."""


@dataclass(frozen=True)
class Mosaic:
    """What the tiles of a run make together: which tiles, one dtype, the bands and their names."""

    tiles: list[int]
    dtype: np.dtype
    count: int
    names: list[str] | None
    notes: list[str]


def output_path(layout: RunDir, manifest: Manifest) -> Path:
    """Where the COG goes: ``--output`` (stored absolute), else ``output.tif`` in the run directory."""
    chosen = manifest.options.get("output")
    return Path(chosen) if chosen else layout.cog


def sum_metrics(records: list[dict]) -> dict[str, float]:
    """The metrics of the jobs' records, summed per name."""
    totals: dict[str, float] = {}
    for record in records:
        for key, value in record.get("metrics", {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def plan_mosaic(records: list[dict]) -> Mosaic | None:
    """Check that the tiles the jobs wrote agree; ``None`` when no job wrote a tile.

    Raises
    ------
    ResultError
        Tiles with different band counts or band names, or dtypes NumPy does not promote safely.
    """
    written: dict[int, dict] = {}
    for record in records:
        for tile, info in record.get("written", {}).items():
            written[int(tile)] = info
    if not written:
        return None
    shapes: dict[tuple, list[int]] = {}
    for tile, info in sorted(written.items()):
        names = tuple(info.get("names") or ())
        shapes.setdefault((int(info["bands"]), names), []).append(tile)
    if len(shapes) > 1:
        parts = [
            f"{'tiles' if len(tiles) > 1 else 'tile'} {_some(tiles)} "
            f"{count} band{'s' if count > 1 else ''}" + (f" ({', '.join(names)})" if names else "")
            for (count, names), tiles in shapes.items()
        ]
        raise ResultError(
            "The function returned different bands for different tiles (" + "; ".join(parts) + "), so they make no "
            "one output: return the same bands for every tile, then retry with --force."
        )
    ((count, names),) = shapes
    dtypes: dict[str, list[int]] = {}
    for tile, info in sorted(written.items()):
        dtypes.setdefault(info["dtype"], []).append(tile)
    dtype = np.result_type(*[np.dtype(d) for d in dtypes])
    notes = []
    if len(dtypes) > 1:
        if dtype.kind not in "uif" or dtype == np.float16:
            raise ResultError(
                f"The tiles have dtypes {', '.join(dtypes)} that make no common GeoTIFF type: return one dtype "
                "(for example with .astype('float32')) and retry with --force."
            )
        notes.append(
            f"tiles returned {' and '.join(dtypes)}; the output is {dtype} (as NumPy promotes them): "
            + "; ".join(f"{d} in {'tiles' if len(t) > 1 else 'tile'} {_some(t)}" for d, t in dtypes.items())
        )
    return Mosaic(sorted(written), dtype, count, list(names) or None, notes)


def _some(tiles: list[int]) -> str:
    return ", ".join(map(str, tiles[:5])) + (f" and {len(tiles) - 5} more" if len(tiles) > 5 else "")


def output_nodata(manifest: Manifest, mosaic: Mosaic, holes: bool) -> float | None:
    """The output's nodata.

    ``--nodata`` if given; else NaN for floats; else, for integers, the grid source's nodata when
    the output has that source's dtype (a function that passes pixels through keeps their nodata);
    else, where areas have no tile (skipped by a mask, or the function returned nothing), the grid
    source's nodata if it fits the dtype, or 0; else none.
    """
    chosen = manifest.options.get("nodata")
    if chosen is not None:
        return float("nan") if chosen == "nan" else chosen
    if mosaic.dtype.kind == "f":
        return float("nan")
    source = next((s for s in manifest.sources if s["name"] == manifest.grid_from), None)
    if source is None and manifest.sources:
        source = manifest.sources[0]
    value = source.get("nodata") if source else None
    usable = value not in (None, "nan") and _fits(value, mosaic.dtype)
    if usable and np.dtype(source["dtype"]) == mosaic.dtype:
        return value
    if holes:
        return value if usable else 0
    return None


def _fits(value, dtype: np.dtype) -> bool:
    if dtype.kind == "f":
        return True
    if not float(value).is_integer():
        return False
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def build_vrt(layout: RunDir, manifest: Manifest, mosaic: Mosaic, nodata) -> Path:
    """``output.vrt``: every tile GeoTIFF placed on the grid; areas without a tile are nodata."""
    from rasterio.dtypes import _gdal_typename

    grid = manifest.grid
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    if grid.crs:
        ET.SubElement(root, "SRS").text = grid.crs
    t = grid.transform
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    gdal_type = _gdal_typename(mosaic.dtype.name)
    boxes = manifest.tiling.array(mosaic.tiles)
    for band in range(1, mosaic.count + 1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(band))
        if mosaic.names:
            ET.SubElement(element, "Description").text = mosaic.names[band - 1]
        if nodata is not None:
            ET.SubElement(element, "NoDataValue").text = "nan" if _isnan(nodata) else repr(nodata)
        for index, (row, col, h, w) in zip(mosaic.tiles, boxes.tolist(), strict=True):
            source = ET.SubElement(element, "SimpleSource")
            ET.SubElement(source, "SourceFilename", relativeToVRT="1").text = f"tiles/{tile_name(index)}"
            ET.SubElement(source, "SourceBand").text = str(band)
            ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
            ET.SubElement(source, "DstRect", xOff=str(col), yOff=str(row), xSize=str(w), ySize=str(h))
    ET.indent(root)
    write_atomic(layout.vrt, ET.tostring(root, encoding="unicode") + "\n")
    return layout.vrt


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def recorded_output(layout: RunDir) -> str | None:
    """The COG this run wrote, if it is still the file at that path (else ``None``)."""
    try:
        result = read_json(layout.result)
    except (OSError, ValueError):
        return None
    path = result.get("path")
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return path if (st.st_size, st.st_mtime_ns) == (result.get("size"), result.get("mtime_ns")) else None


def finalize(layout: RunDir, manifest: Manifest, records: list[dict]) -> str | None:
    """Write ``output.vrt`` and the COG of a completed run, and record them; return the COG's path.

    Safe to call from several processes at once (one builds, the others wait and read its
    record). Returns ``None`` when the function returned no arrays (metrics only).

    Raises
    ------
    ResultError
        The tiles disagree (see :func:`plan_mosaic`).
    """
    with DirLock(layout.finalize_lock):
        done = recorded_output(layout)
        if done:
            return done
        mosaic = plan_mosaic(records)
        if mosaic is None:
            write_json_atomic(layout.result, {"path": None, "notes": ["the function returned no arrays"]})
            return None
        holes = len(mosaic.tiles) < len(manifest.tiling)
        nodata = output_nodata(manifest, mosaic, holes)
        vrt = build_vrt(layout, manifest, mosaic, nodata)
        cog = output_path(layout, manifest)
        write_cog(vrt, cog, mosaic.dtype)
        st = os.stat(cog)
        write_json_atomic(
            layout.result,
            {
                "path": str(cog),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "dtype": str(mosaic.dtype),
                "bands": mosaic.count,
                "names": mosaic.names,
                "nodata": "nan" if _isnan(nodata) else nodata,
                "notes": mosaic.notes,
            },
        )
        return str(cog)


def write_cog(vrt: Path, cog: Path, dtype: np.dtype) -> None:
    """Copy the mosaic to a Cloud-Optimized GeoTIFF at ``cog``, through a temporary file renamed into place."""
    import rasterio.shutil

    options = dict(COG_OPTIONS, overview_resampling="average" if dtype.kind == "f" else "nearest")
    if dtype.kind == "f":
        options["predictor"] = 3
    import tempfile

    cog.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{cog.stem}.", suffix=".tmp.tif", dir=cog.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        rasterio.shutil.copy(str(vrt), str(tmp), **options)
        os.replace(tmp, cog)
    finally:
        tmp.unlink(missing_ok=True)
