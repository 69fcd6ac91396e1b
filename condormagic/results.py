"""A run's results: the mosaic of its tiles (VRT and Cloud-Optimized GeoTIFF) and its metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.dtypes import _gdal_typename

from .files import write_atomic
from .runs import DirLock, Run
from .worker import tile_path


def output_path(run: Run) -> Path:
    """Where the COG goes: ``--output``, else ``output.tif`` in the run directory."""
    chosen = run.options.get("output")
    return Path(chosen) if chosen else run.path / "output.tif"


def sum_metrics(run: Run) -> dict[str, float]:
    totals: dict[str, float] = {}
    for job in range(run.n_jobs):
        path = run.path / "metrics" / f"{job:06d}.json"
        if not path.exists():
            continue
        with open(path) as fh:
            for key, value in json.load(fh)["metrics"].items():
                totals[key] = totals.get(key, 0) + value
    return totals


def finalize(run: Run) -> str | None:
    """Write ``output.vrt`` and the COG once every job has completed; return the COG's path.

    Idempotent and safe to call from several processes at once. Returns ``None`` when
    the function returned no arrays (metrics only).
    """
    cog = output_path(run)
    with DirLock(run.path / "finalize.lock"):
        if cog.exists():
            return str(cog)
        vrt = build_vrt(run)
        if vrt is None:
            return None
        tmp = cog.with_name(f".{cog.name}.tmp-{os.getpid()}")
        with rasterio.open(vrt) as src:
            kind = np.dtype(src.dtypes[0]).kind
        options = {
            "driver": "COG",
            "compress": "deflate",
            "blocksize": 512,
            "num_threads": "all_cpus",
            "overview_resampling": "average" if kind == "f" else "nearest",
            "bigtiff": "if_safer",
        }
        if kind == "f":
            options["predictor"] = 3
        try:
            cog.parent.mkdir(parents=True, exist_ok=True)
            rasterio.shutil.copy(str(vrt), str(tmp), **options)
            os.replace(tmp, cog)
        finally:
            if tmp.exists():
                tmp.unlink()
        return str(cog)


def build_vrt(run: Run) -> Path | None:
    """``output.vrt``: every tile GeoTIFF placed on the grid; areas without a tile are nodata."""
    m = run.manifest
    tiles = [i for job in m["jobs"] for i in job]
    present = [i for i in tiles if os.path.exists(tile_path(str(run.path), i))]
    if not present:
        return None
    with rasterio.open(tile_path(str(run.path), present[0])) as first:
        count, dtype = first.count, first.dtypes[0]
    nodata = run.options.get("nodata")
    if nodata is None and np.dtype(dtype).kind == "f":
        nodata = "nan"
    if nodata is None and m["skipped"]:
        nodata = 0
    grid = m["grid"]
    t = grid["transform"]
    geo = f"{t[2]!r}, {t[0]!r}, {t[1]!r}, {t[5]!r}, {t[3]!r}, {t[4]!r}"
    parts = [f'<VRTDataset rasterXSize="{grid["width"]}" rasterYSize="{grid["height"]}">']
    if grid["crs"]:
        parts.append(f"  <SRS>{escape(grid['crs'])}</SRS>")
    parts.append(f"  <GeoTransform>{geo}</GeoTransform>")
    gdal_type = _gdal_typename(dtype)
    for band in range(1, count + 1):
        parts.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{band}">')
        if nodata is not None:
            parts.append(f"    <NoDataValue>{nodata}</NoDataValue>")
        for i in present:
            row, col, h, w = m["tiles"][i]
            parts.append(
                "    <SimpleSource>"
                f'<SourceFilename relativeToVRT="1">tiles/{i:06d}.tif</SourceFilename>'
                f"<SourceBand>{band}</SourceBand>"
                f'<SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="{gdal_type}"/>'
                f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                f'<DstRect xOff="{col}" yOff="{row}" xSize="{w}" ySize="{h}"/>'
                "</SimpleSource>"
            )
        parts.append("  </VRTRasterBand>")
    parts.append("</VRTDataset>")
    path = run.path / "output.vrt"
    write_atomic(path, "\n".join(parts) + "\n")
    return path
