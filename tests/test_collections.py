"""Collections: scenes of a STAC catalog as one source, read onto the grid, tiled equals whole.

The catalog is the one ``examples/make_s2_data.py`` makes (two Sentinel-2-like granules either
side of the UTM 32N/33N boundary, twelve passes), at 128 pixels a side. The reference stack of
the acceptance tests is built here without condormagic's reader: each item's asset warped once
onto the whole grid (GDAL's exact transformer, the one resampling scale of the asset and grid),
then grouped by solar day and mosaicked by first valid pixel, from the catalog's own JSON. By
default condormagic reads an asset finer than the grid from its overview (as ``gdalwarp -ovr
AUTO``); the reference then warps the overview that gdalwarp's rule picks (:func:`gdalwarp_level`,
worked out here from the resolutions), and the full-resolution file for ``overviews=False``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cloudpickle
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window

import condormagic as cm
from condormagic.errors import SourceError
from condormagic.tiling import Grid, GridReader
from condormagic.tiling.reader import OPEN_HOOKS, exact_warped_vrt

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "make_s2_data.py"
SIZE = 128
BANDS = ["B04", "B08", "SCL"]
WAIT = 120


def load_script():
    spec = importlib.util.spec_from_file_location("make_s2_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return load_script().make(tmp_path_factory.mktemp("s2") / "s2", size=SIZE)


# -- the catalog's own JSON, read without pystac or condormagic ---------------------------------
def catalog_items(catalog: Path) -> list[dict]:
    """The items in the catalog's link order, each with ``_dir`` (its folder) added."""
    root = json.loads(catalog.read_text())
    out = []
    for link in root["links"]:
        if link["rel"] == "item":
            path = (catalog.parent / link["href"]).resolve()
            item = json.loads(path.read_text())
            item["_dir"] = path.parent
            out.append(item)
    return out


def when(item: dict) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00")).astimezone(UTC)


def local_solar_day(item: dict):
    west, _, east, _ = item["bbox"]
    return (when(item) + timedelta(hours=(west + east) / 2 / 15)).date()


def explicit(crs: str, res: float, bounds) -> Grid:
    left, bottom, right, top = bounds
    width, height = math.ceil((right - left) / res - 1e-9), math.ceil((top - bottom) / res - 1e-9)
    return Grid(CRS.from_user_input(crs).to_wkt(), rasterio.Affine(res, 0, left, 0, -res, top), width, height)


def gdalwarp_level(path: Path, grid: Grid) -> int | None:
    """The overview ``gdalwarp -ovr AUTO`` warps ``path`` from onto ``grid``: the coarsest whose
    decimation factor is less than the grid's pixel size in the file's pixels plus 0.1 (GDAL's
    tolerance); ``None`` (full resolution) when the grid is not coarser. The pixel-size ratio is
    taken from the resolutions, which is exact within the same CRS and close enough across these
    neighbouring UTM zones (the grids here are never near a level's edge)."""
    with rasterio.open(path) as ds:
        ratio = min(grid.res[0] / ds.res[0], grid.res[1] / ds.res[1])
        widths = []
        for level in range(len(ds.overviews(1))):
            with rasterio.open(path, overview_level=level) as ovr:
                widths.append(ovr.width)
        factors = [ds.width / w for w in widths]
    chosen = [k for k, f in enumerate(factors) if f < ratio + 0.1] if ratio > 1 else []
    return chosen[-1] if chosen else None


def warp_whole(path: Path, grid: Grid, resampling: str, overviews: bool = True) -> np.ndarray:
    """One asset on the whole grid: read at its offset when it is on the grid's pixels, else
    warped at once with the exact transformer and the asset's one scale over the grid; from the
    overview gdalwarp would pick, unless ``overviews`` is False."""
    level = gdalwarp_level(path, grid) if overviews else None
    with rasterio.open(path, overview_level=level) if level is not None else rasterio.open(path) as ds:
        same_crs = ds.crs == CRS.from_wkt(grid.crs)
        col, row = ~ds.transform @ (grid.transform.c, grid.transform.f)
        if same_crs and ds.res == grid.res and col == round(col) and row == round(row):
            window = Window(round(col), round(row), grid.width, grid.height)
            return ds.read(1, window=window, boundless=True, fill_value=ds.nodata or 0)
        left, bottom, right, top = transform_bounds(CRS.from_wkt(grid.crs), ds.crs, *grid.bounds)
        scale = (grid.width / ((right - left) / ds.res[0]), grid.height / ((top - bottom) / ds.res[1]))
        with rasterio.open(exact_warped_vrt(ds, grid, resampling, scale, overview=level)) as vrt:
            return vrt.read(1)


def whole_stack(
    catalog: Path,
    grid: Grid,
    resampling: dict,
    items: list[dict] | None = None,
    by_day=True,
    overviews: bool = True,
):
    """(time, band, rows, cols): every item warped once (from gdalwarp's overview, unless
    ``overviews`` is False), grouped by solar day (or not), mosaicked by the first valid pixel
    in the items' order; and the times of the steps."""
    items = catalog_items(catalog) if items is None else items
    groups: dict = {}
    for item in items:
        groups.setdefault(local_solar_day(item) if by_day else item["id"], []).append(item)
    steps = sorted(groups.values(), key=lambda members: min(map(when, members)))
    stack = np.zeros((len(steps), len(BANDS), grid.height, grid.width), dtype="uint16")
    for t, members in enumerate(steps):
        for b, band in enumerate(BANDS):
            done = np.zeros((grid.height, grid.width), dtype=bool)
            for item in members:
                path = item["_dir"] / item["assets"][band]["href"]
                data = warp_whole(path, grid, resampling.get(band, resampling.get("*", "nearest")), overviews)
                valid = (data != 0) & ~done
                stack[t, b][valid] = data[valid]
                done |= data != 0
    times = [min(map(when, m)).replace(tzinfo=None) for m in steps]
    return stack, np.array(times, dtype="datetime64[ns]")


def composite(img):
    s2 = img["s2"].astype("float32")
    red, nir, scl = s2[:, 0], s2[:, 1], s2[:, 2]
    clear = (scl > 0) & ~np.isin(scl, (3, 8, 9, 10))
    ndvi = np.where(clear, (nir - red) / (nir + red + 1e-6), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        median = np.nanmedian(ndvi, axis=0)
    return {"ndvi_median": median.astype("float32"), "clear_count": clear.sum(axis=0).astype("uint8")}


def stitched(src: cm.Sources, name: str = "s2") -> tuple[np.ndarray, list]:
    """The collection read tile by tile (halo cropped) and put together, with each tile's times."""
    grid = src.grid
    out = None
    times = []
    with GridReader([s.to_dict() for s in src.values()], grid) as reader:
        for tile in src.tiles:
            img = reader.read(tile.read_window)
            a, h = img[name], tile.halo
            assert a.shape[-2:] == (tile.height + 2 * h, tile.width + 2 * h)
            if out is None:
                out = np.empty(a.shape[:2] + (grid.height, grid.width), dtype=a.dtype)
            out[..., tile.row_off : tile.row_off + tile.height, tile.col_off : tile.col_off + tile.width] = a[
                ..., h : h + tile.height, h : h + tile.width
            ]
            times.append(img.times[name])
    return out, times


GRIDS = {
    # 20 m in zone 32, covering both granules (bounds from the items, on 20 m multiples).
    "32632-20m": ("EPSG:32632", 20, None, {"*": "nearest"}),
    # 10 m in zone 33, an odd cut of both granules; reflectance bilinear, the classes nearest.
    "33633-10m": ("EPSG:32633", 10, (-7.0, 33.0, -190.0, -61.0), {"SCL": "nearest", "*": "bilinear"}),
    # 30 m in zone 32, off every granule's pixels: every asset is warped, cubic.
    "32632-30m": ("EPSG:32632", 30, (13.0, -7.0, 0.0, 0.0), {"SCL": "nearest", "*": "cubic"}),
}


def declare(catalog: Path, grid_key: str, tile: int, halo: int = 0, **options):
    crs, res, cut, resampling = GRIDS[grid_key]
    coll = cm.collection(str(catalog), bands=BANDS, group_by="solar_day", **options)
    if cut is None:
        return cm.sources(s2=coll, crs=crs, res=res, tile=tile, halo=halo, resampling={"s2": resampling})
    left, bottom, right, top = coll.bounds(crs)
    bounds = (left + cut[0], bottom + cut[1], right + cut[2], top + cut[3])
    return cm.sources(s2=coll, crs=crs, res=res, bounds=bounds, tile=tile, halo=halo, resampling={"s2": resampling})


# -- acceptance: tiled equals whole -------------------------------------------------------------
@pytest.mark.parametrize("grid_key", list(GRIDS))
@pytest.mark.parametrize("tile,halo", [(13, 0), (31, 3), (37, 0)])
def test_tiles_read_the_whole_warp_bit_for_bit(catalog, grid_key, tile, halo):
    src = declare(catalog, grid_key, tile, halo)
    resampling = GRIDS[grid_key][3]
    expected, times = whole_stack(catalog, src.grid, resampling)
    # both zones on this grid, cut by tiles at odd places
    assert src.grid.width % tile and src.grid.height % tile and len(src.tiles) >= 4
    assert len(src["s2"].items) == 24 and len(times) == 12
    got, tile_times = stitched(src)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert np.array_equal(got, expected), f"{(got != expected).sum()} pixels differ"
    assert all(np.array_equal(t, times) for t in tile_times)
    # Both granules give pixels in every step: the zone boundary runs through the grid.
    covered = (expected[:, 0] > 0).mean(axis=(1, 2))
    assert covered.min() > 0.5
    # Each asset reads the overview gdalwarp's rule picks, recorded once in the manifest for all tiles;
    # on the 20 and 30 m grids the 10 m bands come from their 2x overviews.
    levels = recorded_levels(src)
    assert levels == {
        (i["id"], b): gdalwarp_level(i["_dir"] / i["assets"][b]["href"], src.grid) for i, b in assets_of(catalog)
    }
    assert any(level is not None for level in levels.values()) == (GRIDS[grid_key][1] > 10)


def recorded_levels(src: cm.Sources, name: str = "s2") -> dict:
    """``{(item id, band): overview level or None}`` as the manifest records them."""
    d = src[name].to_dict()
    return {
        (item["id"], band): a.get("overview")
        for item in d["items"]
        for band, a in zip(d["bands"], item["assets"], strict=True)
    }


def assets_of(catalog: Path) -> list[tuple[dict, str]]:
    return [(item, band) for item in catalog_items(catalog) for band in BANDS]


@pytest.mark.parametrize("grid_key", ["32632-20m", "32632-30m"])
def test_overviews_false_reads_the_full_resolution_warp_bit_for_bit(catalog, grid_key):
    """``overviews=False`` gives what condormagic read before it read overviews: every asset at full
    resolution, tiled equal to the whole full-resolution warp (and different from the overviews')."""
    src = declare(catalog, grid_key, 31, 3, overviews=False)
    assert (
        set(recorded_levels(src).values()) == {None} and src.identity() != declare(catalog, grid_key, 31, 3).identity()
    )
    expected, _ = whole_stack(catalog, src.grid, GRIDS[grid_key][3], overviews=False)
    got, _ = stitched(src)
    assert np.array_equal(got, expected), f"{(got != expected).sum()} pixels differ"
    from_overviews, _ = whole_stack(catalog, src.grid, GRIDS[grid_key][3])
    assert not np.array_equal(got[:, :2], from_overviews[:, :2])  # the 10 m bands differ
    # the same from cm.sources(overviews=False), for every source of the declaration
    coll = cm.collection(str(catalog), bands=BANDS, group_by="solar_day")
    crs, res, _, resampling = GRIDS[grid_key]
    alike = cm.sources(
        s2=coll,
        crs=crs,
        res=res,
        bounds=src.grid.bounds,
        tile=31,
        halo=3,
        resampling={"s2": resampling},
        overviews=False,
    )
    assert alike.identity() == src.identity() and alike["s2"].to_dict() == src["s2"].to_dict()


@pytest.mark.parametrize("resampling", ["lanczos", "average", "bilinear"])
def test_coarse_grids_with_wide_kernels_read_the_whole_warp(catalog, resampling):
    """At 70 m, a lanczos kernel reaches 21 source pixels: tiles that skip an item must lose nothing."""
    coll = cm.collection(catalog, bands=BANDS, group_by="solar_day")
    methods = {"SCL": "nearest", "*": resampling}
    src = cm.sources(s2=coll, crs="EPSG:32633", res=70, tile=6, halo=1, resampling={"s2": methods})
    expected, _ = whole_stack(catalog, src.grid, methods)
    got, _ = stitched(src)
    assert len(src.tiles) > 12 and np.array_equal(got, expected)


@pytest.mark.usefixtures("runs_dir")
@pytest.mark.parametrize("grid_key,tile,halo", [("32632-20m", 17, 0), ("33633-10m", 29, 2)])
def test_composite_run_equals_the_function_on_the_whole_stack(catalog, grid_key, tile, halo):
    src = declare(catalog, grid_key, tile, halo)
    run = cm.submit(composite, src, cpus=1, mem="1GB", name=f"composite_{tile}")
    run.wait(timeout=WAIT)
    assert run.complete, [(j.job, j.reason) for j in run.jobs() if j.reason]
    stack, _ = whole_stack(catalog, src.grid, GRIDS[grid_key][3])
    expected = composite({"s2": stack})
    with rasterio.open(run.output) as ds:
        assert ds.descriptions == ("ndvi_median", "clear_count")
        ndvi, clear = ds.read(1), ds.read(2)
    assert np.array_equal(ndvi, expected["ndvi_median"], equal_nan=True)
    assert np.array_equal(clear, expected["clear_count"])
    assert np.isfinite(ndvi).mean() > 0.5 and clear.max() >= 8
    # the output opens lazily in xarray with its bands named
    array = run.to_xarray()
    assert list(array.band.values) == ["ndvi_median", "clear_count"]
    assert np.array_equal(array.sel(band="ndvi_median").values, ndvi, equal_nan=True)


# -- filters, grouping and order, against the catalog's properties -------------------------------
def test_datetime_and_cloud_filters_keep_what_the_properties_say(catalog):
    items = catalog_items(catalog)
    start, end = datetime(2020, 8, 20, tzinfo=UTC), datetime(2020, 9, 30, 23, 59, 59, 999999, tzinfo=UTC)
    expected = [i["id"] for i in items if start <= when(i) <= end and i["properties"]["eo:cloud_cover"] <= 30]
    coll = cm.collection(catalog, bands=BANDS, datetime="2020-08-20/2020-09-30", max_cloud=30)
    assert [i.id for i in coll.items] == expected
    assert 4 <= len(expected) < len(items)
    assert [r["cloud"] for r in coll.table()] == [
        i["properties"]["eo:cloud_cover"] for i in items if i["id"] in expected
    ]
    # open ends, a single day, pairs of datetimes
    assert len(cm.collection(catalog, datetime="../2020-08-16")) == 2
    assert len(cm.collection(catalog, datetime="2020-10-10/..")) == 2
    assert len(cm.collection(catalog, datetime="2020-09-05")) == 2
    assert len(cm.collection(catalog, datetime=(datetime(2020, 9, 5, 10), datetime(2020, 9, 5, 11)))) == 2
    # the default bands: the data assets every item has
    assert cm.collection(catalog).bands == ["B02", "B03", "B04", "B08", "SCL"]


def test_grouping_and_order_follow_the_catalog(catalog):
    items = catalog_items(catalog)
    by_day = cm.collection(catalog, bands=BANDS, group_by="solar_day")
    days: dict = {}
    for item in items:
        days.setdefault(local_solar_day(item), []).append(item["id"])
    expected = [days[d] for d in sorted(days)]
    assert [s.ids for s in by_day.steps] == expected  # steps by date; in each, the catalog's order
    assert all(len(ids) == 2 and ids[0][4:9] != ids[1][4:9] for ids in expected)  # both granules of a pass
    assert [s.day for s in by_day.steps] == sorted(days)
    assert list(by_day.times) == [
        np.datetime64(min(when(i) for i in items if i["id"] in ids).replace(tzinfo=None)) for ids in expected
    ]
    single = cm.collection(catalog, bands=BANDS)
    ordered = sorted(items, key=when)
    assert [s.ids for s in single.steps] == [[i["id"]] for i in ordered]
    assert np.all(np.diff(single.times) > np.timedelta64(0))
    # solar day, not UTC day: a pass at 23:30 UTC at 12 E is the next local day
    late = pystac.Item.from_dict(json.loads(json.dumps({k: v for k, v in items[0].items() if k != "_dir"})))
    late.datetime = datetime(2020, 8, 16, 23, 30, tzinfo=UTC)
    from condormagic.tiling.collection import solar_day

    assert str(solar_day(late)) == "2020-08-17"


def test_the_first_item_of_a_day_wins_where_granules_overlap(catalog):
    """Reversing the items' order changes which granule gives the overlap's pixels, and nothing else."""
    items = catalog_items(catalog)
    day = [i for i in items if when(i).date().isoformat() == "2020-08-16"]
    pystac_items = list(pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))
    chosen = [i for i in pystac_items if i.id in {d["id"] for d in day}]
    src_a = cm.sources(s2=cm.collection(chosen, bands=BANDS, group_by="solar_day"), crs="EPSG:32632", res=20)
    src_b = cm.sources(s2=cm.collection(chosen[::-1], bands=BANDS, group_by="solar_day"), crs="EPSG:32632", res=20)
    a, _ = stitched(src_a)
    b, _ = stitched(src_b)
    expected_a, _ = whole_stack(catalog, src_a.grid, {"*": "nearest"}, items=day)
    expected_b, _ = whole_stack(catalog, src_a.grid, {"*": "nearest"}, items=day[::-1])
    assert np.array_equal(a, expected_a) and np.array_equal(b, expected_b)
    both = (warp_whole(day[0]["_dir"] / "B04.tif", src_a.grid, "nearest") > 0) & (
        warp_whole(day[1]["_dir"] / "B04.tif", src_a.grid, "nearest") > 0
    )
    assert both.sum() > 100  # the granules overlap
    assert (a[0, 0][both] != b[0, 0][both]).any()  # ... and there the first item wins
    assert np.array_equal(a[0, 0][~both], b[0, 0][~both])
    # the hash follows the order
    assert src_a.identity() != src_b.identity()


def test_items_off_the_grid_are_dropped_before_any_file_is_opened(catalog):
    coll = cm.collection(catalog, bands=BANDS)
    west = [i for i in coll.items if i.properties["s2:mgrs_tile"] == "32TQS"]
    left, bottom, right, top = coll.bounds("EPSG:32632")
    opened: list[str] = []
    OPEN_HOOKS.append(opened.append)
    try:
        # the western third of the western granule: the eastern granule's items are not opened
        src = cm.sources(s2=coll, crs="EPSG:32632", res=20, bounds=(left, bottom, left + 400, top))
    finally:
        OPEN_HOOKS.remove(opened.append)
    assert [i.id for i in src["s2"].items] == [i.id for i in west]
    paths = {a.path for item in src["s2"].items for a in item.assets}
    assert all("32TQS" in p for p in paths) and len(paths) == len(west) * len(BANDS)
    assert set(opened) == paths  # every asset of the items kept is opened once, and nothing else


# -- which items a job reads --------------------------------------------------------------------
@pytest.mark.usefixtures("runs_dir")
def test_a_job_reads_only_the_files_of_the_items_it_needs(catalog, tmp_path):
    from condormagic import api
    from condormagic.worker import run_job

    coll = cm.collection(catalog, bands=BANDS, group_by="solar_day", max_cloud=40)
    src = cm.sources(s2=coll, crs="EPSG:32632", res=20, tile=40)
    p = api.plan(composite, src, cpus=1, mem="1GB", tiles_per_job=1)
    run = api.submit_plan(p)
    run.wait(timeout=WAIT)
    assert run.complete
    manifest = json.loads((run.path / "manifest.json").read_text())
    source = manifest["sources"][0]
    reads = source["jobs"]
    assert len(reads) == len(manifest["jobs"]) > 4
    sizes = {len(r) for r in reads}
    # some jobs need both granules, some only one (the grid is wider than either)
    n = len(source["items"])
    assert n in sizes and any(0 < s < n for s in sizes), sizes
    for job in range(len(reads)):
        opened: list[str] = []
        OPEN_HOOKS.append(opened.append)
        try:
            (tmp_path / f"job{job}").mkdir()
            run_job(str(run.path), job, str(tmp_path / f"job{job}"))
        finally:
            OPEN_HOOKS.remove(opened.append)
        files = sorted(a["path"] for k in reads[job] for a in source["items"][k]["assets"])
        assert sorted(set(opened)) == files, job
        # the granules with pixels in the job's tiles (from the whole warp) are among those it reads
        granules = {(i["id"][4:9], i["_dir"]) for i in catalog_items(catalog) if i["id"].endswith("0816_0_L2A")}
        listed = {source["items"][k]["id"][4:9] for k in reads[job]}
        for granule, folder in granules:
            data = warp_whole(folder / "B04.tif", src.grid, "nearest")
            tiles = [src.tiles[t] for t in manifest["jobs"][job]]
            has = any(
                (data[t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] > 0).any() for t in tiles
            )
            assert not has or granule in listed, (job, granule)
    assert any(len({source["items"][k]["id"][4:9] for k in r}) == 1 for r in reads)


# -- bad input: one sentence each, at declaration -------------------------------------------------
def copy_catalog(catalog: Path, to: Path) -> Path:
    shutil.copytree(catalog.parent, to)
    return to / "catalog.json"


def test_bad_catalogs_bands_filters_and_assets_are_named(catalog, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "Catalog", "id": ')
    with pytest.raises(SourceError, match=r"broken\.json cannot be read as STAC \(.*\): give a STAC catalog"):
        cm.collection(broken)
    with pytest.raises(SourceError, match="does not exist"):
        cm.collection(tmp_path / "nowhere.json")
    not_stac = tmp_path / "not_stac.json"
    not_stac.write_text('{"hello": 1}')
    with pytest.raises(SourceError, match="cannot be read as STAC"):
        cm.collection(not_stac)

    copied = copy_catalog(catalog, tmp_path / "lacking")
    lacking = ["S2A_32TQS_20200816_0_L2A", "S2B_33TTM_20200920_0_L2A"]
    for item_id in lacking:
        path = copied.parent / item_id / f"{item_id}.json"
        data = json.loads(path.read_text())
        del data["assets"]["B08"]
        path.write_text(json.dumps(data))
    with pytest.raises(SourceError) as info:
        cm.collection(copied, bands=BANDS)
    message = str(info.value)
    assert "Band 'B08' is missing from 2 of the 24 items" in message and all(i in message for i in lacking)
    assert message.count(".") <= 3 and "\n" not in message

    with pytest.raises(SourceError, match=r"after the datetime filter 2021-01-01/2021-02-01: its 24 items were"):
        cm.collection(catalog, datetime="2021-01-01/2021-02-01")
    cloudy = [i for i in catalog_items(catalog) if when(i).date().isoformat() == "2020-08-31"]
    least = min(i["properties"]["eo:cloud_cover"] for i in cloudy)
    assert least > 40
    with pytest.raises(
        SourceError,
        match=rf"after max_cloud=40 and the datetime filter: the least cloudy of the 2 items "
        rf"has {least:g} %",
    ):
        cm.collection(catalog, max_cloud=40, datetime="2020-08-31")
    no_cover = [
        pystac.Item.from_dict({**i.to_dict(), "properties": {"datetime": i.to_dict()["properties"]["datetime"]}})
        for i in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True)
    ]
    with pytest.raises(SourceError, match=r"after max_cloud=30: none of the 24 items has eo:cloud_cover"):
        cm.collection(no_cover, max_cloud=30)
    with pytest.raises(SourceError, match="not an interval|not a date"):
        cm.collection(catalog, datetime="last week")
    with pytest.raises(SourceError, match="No item of collection 's2' .* touches the grid"):
        cm.sources(s2=cm.collection(catalog), crs="EPSG:32632", res=20, bounds=(100000, 100000, 101000, 101000))

    corrupt = copy_catalog(catalog, tmp_path / "corrupt")
    bad = corrupt.parent / "S2A_33TTM_20200826_0_L2A" / "SCL.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(SourceError) as info:
        cm.sources(s2=cm.collection(corrupt, bands=BANDS), crs="EPSG:32632", res=20)
    assert "asset SCL of item S2A_33TTM_20200826_0_L2A" in str(info.value) and str(bad) in str(info.value)
    assert "cannot be opened" in str(info.value)

    coll = cm.collection(catalog, bands=BANDS)
    with pytest.raises(SourceError, match="needs a grid"):
        cm.sources(s2=coll)
    with pytest.raises(SourceError, match="names a collection"):
        cm.sources(s2=coll, grid="s2")
    with pytest.raises(SourceError, match="not a band of collection 's2'"):
        cm.sources(s2=coll, crs="EPSG:32632", res=20, resampling={"s2": {"B99": "bilinear"}})


def test_the_run_id_follows_the_selection(catalog, tmp_path):
    def declare_with(**options):
        coll = cm.collection(catalog, bands=options.pop("bands", BANDS), **options)
        return cm.sources(s2=coll, crs="EPSG:32632", res=20).identity()

    base = declare_with(group_by="solar_day")
    assert declare_with(group_by="solar_day") == base
    assert declare_with(group_by=None) != base
    assert declare_with(group_by="solar_day", max_cloud=30) != base
    assert declare_with(group_by="solar_day", bands=["B08", "B04", "SCL"]) != base
    # reading overviews or not changes the pixels: a new run id
    full = declare_with(group_by="solar_day", overviews=False)
    assert full != base and declare_with(group_by="solar_day", overviews=True) == base
    assert (
        cm.sources(
            s2=cm.collection(catalog, bands=BANDS, group_by="solar_day"), crs="EPSG:32632", res=20, overviews=False
        ).identity()
        != base
    )
    # a changed asset file gives a new identity (and Sources.current() declares it anew)
    copied = copy_catalog(catalog, tmp_path / "changed")
    src = cm.sources(s2=cm.collection(copied, bands=BANDS), crs="EPSG:32632", res=20)
    before = src.identity()
    assert src.changed() == []
    path = copied.parent / "S2A_32TQS_20200816_0_L2A" / "B04.tif"
    path.write_bytes(path.read_bytes() + b"\0")
    assert src.changed() == ["s2"]
    assert src.current().identity() != before


# -- the public API the explorer uses -------------------------------------------------------------
def test_collection_lists_scenes_and_reads_a_step_or_an_item_onto_any_grid(catalog):
    coll = cm.collection(catalog, bands=BANDS, group_by="solar_day")
    rows = coll.table()
    assert len(rows) == 24 and set(rows[0]) >= {"id", "date", "cloud", "mgrs", "crs", "size", "datetime"}
    assert {r["mgrs"] for r in rows} == {"32TQS", "33TTM"} and {r["crs"] for r in rows} == {"EPSG:32632", "EPSG:32633"}
    assert rows[0]["size"] == f"{SIZE} x {SIZE}"
    # one time step, both granules, at 40 m in zone 32: the mosaic of the whole warp at that grid, from
    # the overviews a run would read, or at full resolution
    step = coll.read(crs="EPSG:32632", res=40, step=3)
    grid = explicit("EPSG:32632", 40, cm_snap(coll.bounds("EPSG:32632", step=3), 40))
    day = [i for i in catalog_items(catalog) if i["id"] in coll.steps[3].ids]
    expected, _ = whole_stack(catalog, grid, {"*": "nearest"}, items=day)
    assert step.shape == expected.shape[1:] and np.array_equal(step, expected[0])
    full = coll.read(crs="EPSG:32632", res=40, step=3, overviews=False)
    assert np.array_equal(full, whole_stack(catalog, grid, {"*": "nearest"}, items=day, overviews=False)[0][0])
    assert not np.array_equal(full, step) and np.corrcoef(full[0].ravel(), step[0].ravel())[0, 1] > 0.5
    # a collection declared with overviews=False reads so by default
    alike = cm.collection(catalog, bands=BANDS, group_by="solar_day", overviews=False)
    assert np.array_equal(alike.read(crs="EPSG:32632", res=40, step=3), full)
    # one item, one band, onto a given grid in zone 33 at 25 m
    item = coll.steps[5].ids[0]
    g33 = explicit("EPSG:32633", 25, coll.bounds("EPSG:32633"))
    one = coll.read(g33, item=item, bands=["B08"])
    only = [i for i in catalog_items(catalog) if i["id"] == item]
    assert np.array_equal(one[0], whole_stack(catalog, g33, {"*": "nearest"}, items=only)[0][0, 1])
    assert coll.subset([item]).items[0].id == item
    with pytest.raises(SourceError, match="not in"):
        coll.subset(["nope"])


def cm_snap(bounds, res):
    from condormagic.tiling.collection import snap

    return snap(bounds, res)
