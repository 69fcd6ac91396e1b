"""Sources finer than the grid are read from their overviews, as ``gdalwarp -ovr AUTO`` picks them.

A single Cloud-Optimized GeoTIFF of 601 x 521 pixels of 10 m with three overviews (300, 150 and 75
pixels wide: factors 2.003, 4.007 and 8.013, not whole numbers) is declared onto grids of other
resolutions and CRSs. The level is chosen once per source and grid (recorded in the manifest),
so a tile reads the same pixels as one whole warp of that overview: the reference here is a
warped VRT written out by hand (GDAL's exact transformer, the overview's ``OVERVIEW_LEVEL`` open
option, one XSCALE/YSCALE for the grid), not condormagic's reader. The collection side of the
same guarantee is in ``test_collections.py``.
"""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from reference import hand_warped

import condormagic as cm
from condormagic import api
from condormagic.errors import SourceError
from condormagic.tiling import GridReader
from condormagic.tiling.source import pick_overview

cloudpickle.register_pickle_by_value(sys.modules[__name__])

WIDTH, HEIGHT = 601, 521
ORIGIN = (700000.0, 5190000.0)  # EPSG:32633, near the western edge of zone 33 (12.4 E)
WAIT = 120


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    """A float32 COG of 10 m pixels (nodata -9999 in one corner) with overviews 300, 150 and 75 px wide."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    rng = np.random.default_rng(13)
    data = 100 * np.sin(rows / 17) * np.cos(cols / 23) + rng.normal(0, 20, (HEIGHT, WIDTH)).astype(np.float32)
    data[:40, :50] = -9999
    profile = dict(driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="float32", crs="EPSG:32633", nodata=-9999)
    path = tmp_path_factory.mktemp("cog") / "field.tif"
    with MemoryFile() as memory:
        with memory.open(**profile, transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])) as dst:
            dst.write(data.astype(np.float32), 1)
        with memory.open() as src:
            rasterio.shutil.copy(
                src, path, driver="COG", blocksize=128, overview_count=3, overview_resampling="average"
            )
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and len(ds.overviews(1)) == 3
    assert widths(path) == [300, 150, 75]
    return path


def widths(path) -> list[int]:
    with rasterio.open(path) as ds:
        n = len(ds.overviews(1))
    out = []
    for level in range(n):
        with rasterio.open(path, overview_level=level) as ds:
            out.append(ds.width)
    return out


def declare(path, crs: str, res: float, shift=(0.0, 0.0), **options) -> cm.Sources:
    """``path`` on a grid of ``res`` in ``crs`` over its extent (less a margin), moved by ``shift``."""
    with rasterio.open(path) as ds:
        left, bottom, right, top = transform_bounds(ds.crs, crs, *ds.bounds)
    bounds = (left + 200 + shift[0], bottom + 200 + shift[1], right - 300 + shift[0], top - 100 + shift[1])
    return cm.sources(field=str(path), crs=crs, res=res, bounds=bounds, **options)


# -- which level: gdalwarp's rule --------------------------------------------------------------
def test_pick_overview_follows_gdalwarps_rule():
    """GDAL 3.10's apps/gdalwarp_lib.cpp: with the grid's pixel spanning ``ratio`` source pixels, the
    coarsest level whose factor (full width / level width) is below ``ratio + 0.1``; none when ratio <= 1."""
    levels = [2048, 1024, 512, 256]  # factors 2, 4, 8
    table = {0.5: None, 1.0: None, 1.5: None, 1.89: None, 1.91: 0, 2.0: 0, 3.0: 0, 3.89: 0, 3.95: 1, 4.0: 1}
    table |= {7.5: 1, 8.0: 2, 100.0: 2}
    assert {r: pick_overview(r, levels[1:], levels[0]) for r in table} == table
    assert pick_overview(5.0, [], 2048) is None  # no overviews: full resolution
    odd = [301, 151, 76]  # of 601 px: factors 1.997, 3.980, 7.908
    assert [pick_overview(r, odd, 601) for r in (1.8, 1.9, 2.1, 3.87, 3.89, 7.8, 7.81)] == [None, 0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize(
    "res,level",
    # same CRS: the ratio is res / 10 exactly; the factors are 2.003, 4.007 and 8.013
    [(10, None), (15, None), (19, None), (19.1, 0), (20, 0), (39, 0), (39.2, 1), (79, 1), (79.2, 2), (500, 2)],
)
def test_the_level_chosen_for_a_grid_is_gdalwarps(cog, res, level):
    src = declare(cog, "EPSG:32633", res, shift=(3.0, -7.0))
    chosen = src["field"]
    assert chosen.overview == level
    if level is None:
        assert chosen.width == WIDTH and chosen.full_size is None
        return
    with rasterio.open(cog, overview_level=level) as ovr:
        assert (chosen.width, chosen.height, chosen.transform) == (ovr.width, ovr.height, ovr.transform)
    assert chosen.full_size == (WIDTH, HEIGHT) and chosen.to_dict()["overview"] == level
    # the warp's one resampling scale is in the overview's pixels: grid pixels per overview pixel
    assert chosen.scale == pytest.approx((ovr.res[0] / res, ovr.res[1] / res), rel=1e-9)
    # the %condor_sources table shows the file as it is, and which overview is read
    row = chosen.row()
    assert f"from its {WIDTH / ovr.width:.3g}x overview" in row["warped"]
    assert (row["size"], row["resolution"]) == (f"{WIDTH} x {HEIGHT}", "10 x 10")


def test_across_crs_the_ratio_is_measured_over_the_whole_grid(cog):
    """Zone 33 onto zone 32: the grid's pixels span about res / 10 source pixels (not exactly)."""
    assert [declare(cog, "EPSG:32632", r)["field"].overview for r in (10, 20, 40, 80)] == [None, 0, 1, 2]


# -- tiled equals whole, from the overview ------------------------------------------------------
def hand_warp(path, grid, resampling: str, level: int | None) -> np.ndarray:
    """``path`` (its overview ``level``) warped onto the whole of ``grid`` at once (see
    :func:`reference.hand_warped`), with one scale: grid pixels per pixel of what is read, over the
    whole grid."""
    with rasterio.open(path, overview_level=level) if level is not None else rasterio.open(path) as s:
        src_crs, res = s.crs, s.res
    left, bottom, right, top = transform_bounds(CRS.from_wkt(grid.crs), src_crs, *grid.bounds)
    scale = (grid.width / ((right - left) / res[0]), grid.height / ((top - bottom) / res[1]))
    return hand_warped(path, grid.crs, grid.transform, grid.width, grid.height, resampling, scale, level=level)


def stitched(src: cm.Sources) -> np.ndarray:
    grid = src.grid
    out = np.full((grid.height, grid.width), np.nan, np.float32)
    with GridReader([s.to_dict() for s in src.values()], grid) as reader:
        for tile in src.tiles:
            a, h = reader.read(tile.read_window)["field"], tile.halo
            assert a.shape == (tile.height + 2 * h, tile.width + 2 * h)
            out[tile.row_off : tile.row_off + tile.height, tile.col_off : tile.col_off + tile.width] = a[
                h : h + tile.height, h : h + tile.width
            ]
    return out


GRIDS = {
    # zone 33 onto zone 32 at 25 m: the 2x overview, bilinear
    "32632-25m-bilinear": ("EPSG:32632", 25, (0.0, 0.0), "bilinear", 0),
    # the same CRS at 43 m, off every pixel: the 4x overview, cubic
    "32633-43m-cubic": ("EPSG:32633", 43, (7.0, -3.0), "cubic", 1),
    # zone 32 at 90 m, average: the 8x overview
    "32632-90m-average": ("EPSG:32632", 90, (11.0, 5.0), "average", 2),
}


@pytest.mark.parametrize("grid_key", list(GRIDS))
@pytest.mark.parametrize("tile,halo", [(13, 0), (37, 3)])
def test_tiles_read_the_whole_warp_of_the_overview_bit_for_bit(cog, grid_key, tile, halo):
    crs, res, shift, resampling, level = GRIDS[grid_key]
    src = declare(cog, crs, res, shift, tile=tile, halo=halo, resampling={"field": resampling})
    assert src["field"].overview == level and src["field"].warp
    assert src.grid.width % tile and src.grid.height % tile and len(src.tiles) >= 4
    expected = hand_warp(cog, src.grid, resampling, level)
    got = stitched(src)
    assert np.array_equal(got, expected), f"{(got != expected).sum()} pixels differ"
    assert (expected != -9999).mean() > 0.8
    # overviews=False reads the full-resolution file, as before overviews were read: its own whole warp
    full = declare(cog, crs, res, shift, tile=tile, halo=halo, resampling={"field": resampling}, overviews=False)
    assert full["field"].overview is None and full["field"].width == WIDTH and full.grid == src.grid
    from_full = stitched(full)
    assert np.array_equal(from_full, hand_warp(cog, src.grid, resampling, None))
    assert not np.array_equal(from_full, got)


def test_the_read_is_what_rasterio_reproject_gives_from_the_same_overview(cog):
    """Nearest, in the source's CRS, off its pixels: GDAL's warp of the chosen overview, pixel for pixel,
    and not the warp of the full-resolution file."""
    src = declare(cog, "EPSG:32633", 30, shift=(7.0, -13.0))
    assert src["field"].overview == 0
    grid = src.grid
    with GridReader([s.to_dict() for s in src.values()], grid) as reader:
        ours = reader.read(Window(0, 0, grid.width, grid.height))["field"]

    def reprojected(level):
        out = np.full((grid.height, grid.width), -9999, np.float32)
        with rasterio.open(cog, overview_level=level) if level is not None else rasterio.open(cog) as ds:
            reproject(
                rasterio.band(ds, 1),
                out,
                dst_transform=grid.transform,
                dst_crs=grid.rasterio_crs(),
                dst_nodata=-9999,
                resampling=Resampling.nearest,
            )
        return out

    assert np.array_equal(ours, reprojected(0))
    assert (ours != reprojected(None)).mean() > 0.5


# -- through a run ---------------------------------------------------------------------------
def smooth(img):
    a = img["field"]
    out = a.copy()
    out[1:-1, 1:-1] = (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] + a[1:-1, 1:-1]) / 5
    return out


@pytest.mark.usefixtures("runs_dir")
def test_a_run_reads_the_level_recorded_in_its_manifest_and_its_id_says_so(cog):
    src = declare(cog, "EPSG:32632", 25, tile=29, halo=1, resampling={"field": "bilinear"})
    run = cm.submit(smooth, src, cpus=1, mem="1GB", name="overview_run", tiles_per_job=3)
    run.wait(timeout=WAIT)
    assert run.complete, [(j.job, j.reason) for j in run.jobs() if j.reason]
    assert run.manifest.sources[0]["overview"] == 0
    whole = hand_warp(cog, src.grid, "bilinear", 0)
    expected = smooth({"field": np.pad(whole, 1, constant_values=-9999)})[1:-1, 1:-1]
    with rasterio.open(run.output) as ds:
        assert np.array_equal(ds.read(1), expected)
    # reading full resolution changes the pixels: another run id
    full = declare(cog, "EPSG:32632", 25, tile=29, halo=1, resampling={"field": "bilinear"}, overviews=False)
    plans = [api.plan(smooth, s, cpus=1, mem="1GB") for s in (src, full)]
    assert plans[0].content_hash == run.manifest.content_hash != plans[1].content_hash
    assert full.identity() != src.identity() and full.to_dict()["overviews"] is False


def test_overviews_must_be_true_or_false(cog):
    with pytest.raises(SourceError, match="overviews='no' is not True or False"):
        declare(cog, "EPSG:32633", 20, overviews="no")
    with pytest.raises(SourceError, match="overviews=1 is not True or False"):
        cm.sources(s2=cm.collection([], overviews=1), crs="EPSG:32632", res=20)


def test_the_explorer_previews_a_source_read_from_its_overview(cog):
    """Zoomed out, the live function reads each source from the overview of the view, not the grid's."""
    from condormagic.display.explorer.layers import FunctionLayer

    src = declare(cog, "EPSG:32632", 20)
    assert src["field"].overview == 0
    layer = FunctionLayer(lambda img: img["field"], src)
    bounds = transform_bounds(CRS.from_wkt(src.grid.crs), "EPSG:3857", *src.grid.bounds)
    out = layer.render(bounds, 48, 40)  # about 25 grid pixels per screen pixel
    assert out.shape == (1, 40, 48) and np.isfinite(out).mean() > 0.5 and layer.error is None
