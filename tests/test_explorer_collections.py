"""The explorer map of a collection, kernel side, on the example Sentinel-2-like catalog (examples/make_s2_data.py).

A time step's view against an independent rendering (``rasterio.warp.reproject`` of each of its
scenes onto the view, from the overview GDAL would pick, mosaicked first valid, the same stretch);
one scene alone; the date slider; the scene table (the catalog's own properties, sorting, a pick);
the classes STAC declares; the pixel inspector's time series against the files; the live function
receiving the 4-D array; a run's collection input beside its output; the example notebook.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform, transform_bounds
from rasterio.windows import Window
from reference import view_warped
from test_explorer import decode

import condormagic as cm
from condormagic.display.explorer import CollectionLayer, Explorer, Style
from condormagic.display.explorer.view import View
from condormagic.tiling import GridReader

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZE = 256  # pixels of 10 m a side of each granule
BANDS = ["B04", "B03", "B02", "B08", "SCL"]


def load_script():
    spec = importlib.util.spec_from_file_location("make_s2_data", EXAMPLES / "make_s2_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_s2_data", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return load_script().make(tmp_path_factory.mktemp("s2") / "s2", size=SIZE)


@pytest.fixture(scope="module")
def s2(catalog):
    return cm.collection(str(catalog), bands=BANDS, group_by="solar_day")


@pytest.fixture(scope="module")
def src(s2):
    return cm.sources(s2=s2, crs="EPSG:32632", res=20, tile=128)


# -- an independent rendering ------------------------------------------------------------------
def independent(items: list, bands: list[str], view: View) -> np.ndarray:
    """``items`` (pystac, in mosaic order) on the view: ``(bands, rows, cols)``, first valid value wins."""
    out = np.full((len(bands), view.height, view.width), np.nan, np.float32)
    for b, band in enumerate(bands):
        for item in items:
            values = view_warped(item.assets[band].get_absolute_href(), view)
            np.copyto(out[b], values, where=np.isnan(out[b]) & ~np.isnan(values))
    return out


def stretched(data: np.ndarray) -> np.ndarray:
    """The 2-98 % stretch of each band over its finite values on screen, as bytes; alpha where all bands have data."""
    out = np.zeros((4, *data.shape[1:]), np.uint8)
    for b, band in enumerate(data):
        finite = band[np.isfinite(band)]
        lo, hi = np.percentile(finite, [2, 98])
        scaled = np.clip((band.astype(np.float64) - lo) * (255.0 / (hi - lo)), 0, 255)
        out[b] = np.nan_to_num(scaled).astype(np.uint8)
    out[3] = np.where(np.all(np.isfinite(data), axis=0), 255, 0)
    return out


def sample(item, band: str, lat: float, lon: float):
    """The value of an item's asset at a point, read by rasterio (``None`` outside or nodata)."""
    with rasterio.open(item.assets[band].get_absolute_href()) as ds:
        (x,), (y,) = transform("EPSG:4326", ds.crs, [lon], [lat])
        row, col = ds.index(x, y)
        if not (0 <= row < ds.height and 0 <= col < ds.width):
            return None
        value = ds.read(1, window=((row, row + 1), (col, col + 1)))[0, 0].item()
        return None if value == ds.nodata else value


def views(layer) -> dict[str, View]:
    left, bottom, right, top = layer.footprint()
    cx, cy = (left + right) / 2, (bottom + top) / 2
    span = right - left

    def around(x, y, width_m, w=420, h=300):
        height_m = width_m * h / w
        return View((x - width_m / 2, y - height_m / 2, x + width_m / 2, y + height_m / 2), w, h)

    return {
        "zoomed out (overviews)": around(cx, cy, span * 1.4, 150, 110),
        "both granules": around(cx, cy, span * 1.05),
        "the overlap, about 1:1": around(cx, cy, span * 0.28),
        "closer than 1:1": around(cx + span * 0.05, cy - span * 0.1, span * 0.08),
    }


def show(explorer: Explorer, view: View) -> None:
    explorer.view = view
    explorer.render()


RGB = Style(mode="rgb", band="B04", rgb=("B04", "B03", "B02"), stretch="percent")


@pytest.mark.parametrize(
    "name", ["zoomed out (overviews)", "both granules", "the overlap, about 1:1", "closer than 1:1"]
)
def test_a_date_of_a_collection_renders_as_its_scenes_warped_and_mosaicked(src, s2, name):
    explorer = cm.explore(src, classes=None)
    layer = explorer.layers["s2"]
    assert isinstance(layer, CollectionLayer) and layer.times[0] == "2020-08-16"
    assert explorer.styles["s2"].mode == "rgb" and explorer.styles["s2"].rgb == ("B04", "B03", "B02")
    step = 2  # two granules, some clouds
    explorer.styles["s2"] = RGB.copy(time=step)
    view = views(layer)[name]
    show(explorer, view)
    assert not explorer.errors
    png = decode(explorer.overlays["s2"].url)
    items = list(s2.steps[step].items)
    assert len(items) == 2
    expected = stretched(independent(items, ["B04", "B03", "B02"], view))
    assert png.shape == (4, view.height, view.width)
    np.testing.assert_array_equal(png, expected)
    assert 0.05 < (png[3] > 0).mean()
    if name == "the overlap, about 1:1":
        # where the granules overlap, the first item's pixels win: the other order differs there
        other = stretched(independent(items[::-1], ["B04", "B03", "B02"], view))
        assert (other[:3] != png[:3]).any()


def test_one_scene_alone_and_the_date_slider(src, s2):
    explorer = cm.explore(src)
    layer = explorer.layers["s2"]
    view = views(layer)["both granules"]
    explorer.styles["s2"] = RGB
    show(explorer, view)
    first = explorer.overlays["s2"].url
    # the slider: another date, other pixels, its date on the legend
    explorer.time.index = 5
    assert explorer.styles["s2"].time == 5
    explorer.render()
    assert explorer.overlays["s2"].url != first
    assert explorer.legends["s2"].title == f"s2 · {layer.times[5]}"
    expected = stretched(independent(list(s2.steps[5].items), ["B04", "B03", "B02"], view))
    np.testing.assert_array_equal(decode(explorer.overlays["s2"].url), expected)
    # one scene alone: only its granule
    scene = s2.steps[5].items[1]
    explorer.show_scene(scene.id)
    explorer.render()
    assert explorer.styles["s2"].item == scene.id and explorer.styles["s2"].time == 5
    alone = decode(explorer.overlays["s2"].url)
    np.testing.assert_array_equal(alone, stretched(independent([scene], ["B04", "B03", "B02"], view)))
    assert (alone[3] > 0).sum() < (expected[3] > 0).sum()
    assert scene.id in explorer.legends["s2"].title
    assert explorer.scene_outline.data["properties"]["id"] == scene.id
    # moving the slider shows a date's scenes again
    explorer.time.index = 4
    assert explorer.styles["s2"].item is None and explorer.scene_outline.data["features"] == []


def test_the_scene_table_lists_the_catalog_sorts_and_a_pick_shows_that_scene(src, s2, catalog):
    explorer = cm.explore(src)
    layer = explorer.layers["s2"]
    html = explorer.scene_table.value
    # every scene, with what the catalog says of it
    catalog_items = {i.id: i for i in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True)}
    assert len(layer.scenes) == len(catalog_items) == 24
    for row in layer.scenes:
        item = catalog_items[row["id"]]
        assert row["cloud"] == item.properties["eo:cloud_cover"]
        assert row["mgrs"] == item.properties["s2:mgrs_tile"]
        assert row["crs"] == f"EPSG:{item.properties['proj:code'].split(':')[1]}"
        assert row["orbit"] == item.properties["sat:relative_orbit"]
        assert row["sat"] == item.properties["platform"].replace("sentinel-", "S").upper()
        assert row["type"] == "S2MSI2A" and row["size"] == f"{SIZE} x {SIZE}"
        assert row["date"] == item.datetime.date().isoformat()
        assert f'data-id="{row["id"]}"' in html
    for heading in ("date", "sat", "orbit", "type", "cloud %", "CRS", "MGRS"):
        assert f">{heading}" in html
    # sorted by date first; a click on "cloud %" sorts by cloud cover, again the other way
    order = [r.split('"')[0] for r in html.split('data-id="')[1:]]
    assert order == sorted(order, key=lambda i: (catalog_items[i].datetime, order.index(i)))
    explorer.scene_table.pick("sort:cloud")
    order = [r.split('"')[0] for r in explorer.scene_table.value.split('data-id="')[1:]]
    clouds = [catalog_items[i].properties["eo:cloud_cover"] for i in order]
    assert clouds == sorted(clouds) and clouds[0] < clouds[-1]
    explorer.scene_table.pick("sort:cloud")
    order = [r.split('"')[0] for r in explorer.scene_table.value.split('data-id="')[1:]]
    assert [catalog_items[i].properties["eo:cloud_cover"] for i in order] == sorted(clouds, reverse=True)
    # a click on a row shows that scene alone, at its date; the same row again its whole date
    view = views(layer)["both granules"]
    show(explorer, view)
    cloudiest = next(r for r in layer.scenes if r["id"] == order[0])
    explorer.scene_table.pick(f"item:{cloudiest['index']}")
    assert explorer.styles["s2"].item == cloudiest["id"]
    assert explorer.styles["s2"].time == cloudiest["step"] and explorer.time.index == cloudiest["step"]
    assert f'data-item="{cloudiest["id"]}"' in explorer.scene_table.value
    assert 'aria-selected="true"' in explorer.scene_table.value
    explorer.render()
    expected = stretched(independent([catalog_items[cloudiest["id"]]], list(explorer.styles["s2"].rgb), view))
    np.testing.assert_array_equal(decode(explorer.overlays["s2"].url), expected)
    explorer.scene_table.pick(f"item:{cloudiest['index']}")
    assert explorer.styles["s2"].item is None and explorer.styles["s2"].time == cloudiest["step"]
    # nonsense from the page changes nothing
    for junk in ("item:999", "item:x", "sort:", "nothing"):
        explorer.scene_table.pick(junk)
    assert explorer.styles["s2"].item is None


def test_a_classified_band_shows_the_classes_stac_declares(src, catalog):
    explorer = cm.explore(src)
    layer = explorer.layers["s2"]
    assert layer.band_classes["SCL"][4] == "Vegetation" and layer.band_classes["SCL"][9] == "Cloud high probability"
    assert 0 not in layer.band_classes["SCL"]  # the nodata class
    explorer.styles["s2"] = Style(mode="band", band="SCL", rgb=("B04", "B03", "B02"), time=2)
    show(explorer, views(layer)["both granules"])
    legend = explorer.legends["s2"]
    assert legend.kind == "classes"
    labels = {v: label for v, label, _ in legend.classes}
    assert labels[4] == "Vegetation" and set(labels) <= set(layer.band_classes["SCL"])
    # a reflectance band alone is a colour bar, not classes
    explorer.styles["s2"] = Style(mode="band", band="B08", rgb=("B04", "B03", "B02"), time=2)
    explorer.render()
    assert explorer.legends["s2"].kind == "colorbar"
    # the author's classes (with colours) win, per band
    explorer = cm.explore(src, classes={"s2": {"SCL": {4: ("veg", "#00a000")}}})
    assert explorer.layers["s2"].band_classes["SCL"] == {4: ("veg", "#00a000")}


def test_the_inspector_charts_the_time_series_read_from_the_files(src, s2):
    explorer = cm.explore(src)
    layer = explorer.layers["s2"]
    explorer.styles["s2"] = RGB.copy(time=3)
    # a point in the overlap of the two granules
    granules = {}
    for item in s2.items:
        granules.setdefault(item.properties["s2:mgrs_tile"], item)
    west, east = (granules[t] for t in sorted(granules))
    with rasterio.open(east.assets["B04"].get_absolute_href()) as ds:
        (lon,), (lat,) = transform(ds.crs, "EPSG:4326", [ds.bounds.left + 60], [(ds.bounds.bottom + ds.bounds.top) / 2])
    values = explorer.inspect(lat, lon)
    series = explorer.series["s2"]
    assert len(series) == len(s2.steps)

    for t, step in enumerate(s2.steps):
        for band in BANDS:
            found = [v for v in (sample(item, band, lat, lon) for item in step.items) if v is not None]
            assert series[t][band] == (found[0] if found else None), (t, band)
    assert values["s2"] == series[3]
    assert len({s["B04"] for s in series}) > 3  # it changes with the clouds
    html = explorer.inspector.value
    assert html.count('class="cm-series-chart"') == 1
    for t, label in enumerate(layer.times):
        for band in ("B04", "B03", "B02"):
            assert f'data-time="{label}" data-band="{band}" data-value="{series[t][band]!r}"' in html
    assert 'class="cm-series-now"' in html
    # the SCL band alone: a strip of classes, named
    explorer.styles["s2"] = explorer.styles["s2"].copy(mode="band", band="SCL")
    explorer.inspect(lat, lon)
    assert 'data-class="Vegetation"' in explorer.inspector.value or 'data-class="Water"' in explorer.inspector.value
    # outside every scene: no data on any date
    explorer.inspect(0.0, 0.0)
    assert all(v is None for s in explorer.series["s2"] for v in s.values())
    assert "outside / no data" in explorer.inspector.value and 'data-class="' not in explorer.inspector.value


def test_the_live_function_gets_the_4d_array_of_the_view(src, s2):
    seen = []

    def composite(img):
        stack = img["s2"]
        seen.append((stack.shape, stack.dtype, list(img.bands["s2"]), img.times["s2"].copy()))
        red, nir = stack[:, 0].astype(np.float32), stack[:, 3].astype(np.float32)
        clear = (stack[:, 4] > 0) & ~np.isin(stack[:, 4], (3, 8, 9, 10))
        ndvi = np.where(clear, (nir - red) / (nir + red + 1e-6), np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # never clear: NaN
            return np.nanmax(ndvi, axis=0).astype(np.float32)

    explorer = cm.explore(src, composite)
    preview = explorer.layers["composite"]
    assert (explorer.left, explorer.right) == ("s2", "composite")
    grid = src.grid
    # closer than 1:1 (two screen pixels a grid pixel): the view is a window of the grid, read exactly as a
    # job reads a tile; the result equals the whole grid's computed at once, where the overlay samples it
    x0, y0 = grid.transform.c, grid.transform.f
    left, top = x0 + 30 * 20, y0 - 20 * 20
    right, bottom = left + 75 * 20, top - 45 * 20
    box = transform_bounds(grid.rasterio_crs(), "EPSG:3857", left, bottom, right, top)
    out = preview.render(box, 150, 90)
    shape, dtype, bands, times = seen[-1]
    # the grid's window under the view (the view's rectangle is a little turned in the grid's CRS)
    assert shape[:2] == (len(s2.steps), len(BANDS)) and dtype == np.uint16 and bands == BANDS
    assert 45 <= shape[2] < 45 * 1.3 and 75 <= shape[3] < 75 * 1.3
    np.testing.assert_array_equal(times, s2.times)
    with GridReader([src["s2"].to_dict()], grid) as reader:  # the whole grid, as one job would read it
        expected = composite(reader.read(Window(0, 0, grid.width, grid.height)))
    # the rendered overlay is the result warped (nearest) onto the view: compare where it samples
    assert np.isfinite(out).mean() > 0.5
    view = View(box, 150, 90)
    cols, rows = np.meshgrid(np.arange(150) + 0.5, np.arange(90) + 0.5)
    xs, ys = view.transform @ (cols.ravel(), rows.ravel())
    gx, gy = transform("EPSG:3857", grid.rasterio_crs(), list(xs), list(ys))
    gc, gr = ~grid.transform @ (np.array(gx), np.array(gy))
    gc, gr = np.floor(gc).astype(int), np.floor(gr).astype(int)
    inside = (gc >= 0) & (gc < grid.width) & (gr >= 0) & (gr < grid.height)
    got = out[0].ravel()[inside]
    want = expected[gr[inside], gc[inside]]
    agree = (got == want) | (np.isnan(got) & np.isnan(want))
    assert agree.mean() > 0.98  # nearest resampling at pixel edges may pick the neighbour
    # a little coarser than 1:1: the grid's own pixels, the scenes read from their overviews
    right, bottom = left + 150 * 20, top - 90 * 20
    box = transform_bounds(grid.rasterio_crs(), "EPSG:3857", left, bottom, right, top)
    out = preview.render(box, 150, 90)
    shape = seen[-1][0]
    assert shape[:2] == (len(s2.steps), len(BANDS)) and 90 <= shape[2] < 90 * 1.3 and 150 <= shape[3] < 150 * 1.3
    assert np.isfinite(out).mean() > 0.5
    # zoomed out: the whole grid at a few screen pixels, the same 4-D array, smaller
    wide = views(explorer.layers["s2"])["zoomed out (overviews)"]
    out = preview.render(wide.bounds, wide.width, wide.height)
    shape, dtype, bands, _ = seen[-1]
    assert shape[:2] == (len(s2.steps), len(BANDS)) and dtype == np.uint16 and bands == BANDS
    assert shape[2] <= math.ceil(grid.height / 2) and shape[3] <= math.ceil(grid.width / 2)  # decimated
    assert np.isfinite(out).any() and np.isnan(out).any()
    show(explorer, wide)
    assert not explorer.errors
    assert "screen resolution" in preview.note


def test_the_zoomed_out_4d_array_is_each_scene_warped_onto_the_coarse_grid(src, s2):
    """What the live function gets zoomed out: each scene's asset from its overview onto the coarse grid,
    each date mosaicked first valid, nodata (0) where no scene has a value."""
    from condormagic.display.explorer.collection import Scenes

    scenes = Scenes(src["s2"].to_dict())
    grid = src.grid
    k = 3
    transform_ = grid.transform @ Affine.scale(k)
    width, height = math.ceil(grid.width / k), math.ceil(grid.height / k)
    got = scenes.read_grid(grid.rasterio_crs(), transform_, width, height)
    assert got.shape == (len(s2.steps), len(BANDS), height, width) and got.dtype == np.uint16
    for t in (0, 3):
        for b, band in enumerate(BANDS):
            expected = np.zeros((height, width), np.uint16)
            done = np.zeros((height, width), bool)
            for item in s2.steps[t].items:
                href = item.assets[band].get_absolute_href()
                with rasterio.open(href) as ds:
                    cx, cy = transform_ @ (width / 2, height / 2)
                    dx, dy = abs(transform_.a), abs(transform_.e)
                    xs, ys = transform(grid.rasterio_crs(), ds.crs, [cx, cx + dx, cx], [cy, cy, cy + dy])
                    screen = min(math.dist((xs[0], ys[0]), (xs[1], ys[1])), math.dist((xs[0], ys[0]), (xs[2], ys[2])))
                    factors = [f for f in ds.overviews(1) if ds.res[0] * f <= screen]
                    level = len(factors) - 1 if factors else None
                tmp = np.full((height, width), np.nan, np.float32)
                with rasterio.open(href) if level is None else rasterio.open(href, overview_level=level) as ds:
                    reproject(
                        rasterio.band(ds, 1),
                        tmp,
                        src_nodata=0,
                        dst_transform=transform_,
                        dst_crs=grid.rasterio_crs(),
                        dst_nodata=np.nan,
                        resampling=Resampling.nearest,
                    )
                new = ~np.isnan(tmp) & ~done
                expected[new] = tmp[new]
                done |= ~np.isnan(tmp)
            np.testing.assert_array_equal(got[t, b], expected, err_msg=f"step {t} band {band}")


def test_run_explore_shows_the_collection_input_beside_the_output(runs_dir, src, s2):
    def ndvi_max(img):
        stack = img["s2"].astype(np.float32)
        red, nir = stack[:, 0], stack[:, 3]
        with np.errstate(all="ignore"):
            return np.nanmax((nir - red) / (nir + red + 1e-6), axis=0)

    run = cm.submit(ndvi_max, src, cpus=1, mem="1GB").wait(timeout=300)
    explorer = run.explore()
    assert list(explorer.layers) == ["s2", "ndvi_max (output)"]
    assert (explorer.left, explorer.right) == ("s2", "ndvi_max (output)")
    layer = explorer.layers["s2"]
    assert isinstance(layer, CollectionLayer) and layer.times == cm.explore(src).layers["s2"].times
    # the manifest's items, with the catalog's properties (read again from its file)
    assert [r["id"] for r in layer.scenes] == [i.id for i in s2.items]
    assert all(r["cloud"] is not None and r["mgrs"] for r in layer.scenes)
    assert "SCL" in layer.band_classes
    view = views(layer)["both granules"]
    show(explorer, view)
    assert not explorer.errors
    expected = stretched(independent(list(s2.steps[0].items), ["B04", "B03", "B02"], view))
    np.testing.assert_array_equal(decode(explorer.overlays["left"].url), expected)
    assert "Scenes of <b>s2</b>" in explorer.scene_table.value


def test_a_manifest_without_its_catalog_still_lists_its_scenes(src, s2, tmp_path):
    data = src["s2"].to_dict()
    data["path"] = str(tmp_path / "gone.json")
    layer = CollectionLayer(data)
    row = layer.scenes[0]
    assert row["id"] == s2.items[0].id and row["crs"] == "EPSG:32632" and row["size"] == f"{SIZE} x {SIZE}"
    assert row["cloud"] is None and layer.band_classes == {}
    html = Explorer([layer]).scene_table.value
    assert f'data-id="{row["id"]}"' in html


def test_the_map_knows_each_file_as_it_is_whichever_overview_the_grid_reads(src):
    """The 20 m grid reads the 10 m bands from their 2x overviews; the map and the inspector
    still see each file at its own size and pixels, also from a manifest that does not list it."""
    data = src["s2"].to_dict()
    b04 = data["items"][0]["assets"][0]
    assert b04["overview"] == 0 and b04["width"] == SIZE // 2
    without = {**data, "items": [{**i, "assets": [dict(a) for a in i["assets"]]} for i in data["items"]]}
    for item in without["items"]:
        for asset in item["assets"]:
            asset.pop("full_size", None)
    for listed in (data, without):
        asset = CollectionLayer(listed).items[0]["assets"][0]
        with rasterio.open(asset["path"]) as ds:
            assert (asset["width"], asset["height"]) == (ds.width, ds.height) == (SIZE, SIZE)
            assert Affine(*asset["transform"]).almost_equals(ds.transform)
        assert asset["overview"] is None


def test_the_example_explorer_notebook_in_a_kernel(tmp_path, catalog):
    """examples/explorer.ipynb through a kernel: with the composite run it shows the collection and the
    run's NDVI; in dashboard mode without a run it says the composite is not computed and submits nothing."""
    import nbformat
    from nbclient import NotebookClient

    for name in ("explorer.ipynb", "composite.ipynb", "make_s2_data.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    env = {
        "CONDORMAGIC_RUNS_DIR": str(tmp_path / "runs"),
        "CONDORMAGIC_BACKEND": "local",
        "CONDORMAGIC_DEMO_SIZE": "128",
    }

    def execute(name, **more):
        nb = nbformat.read(tmp_path / name, as_version=4)
        with mock.patch.dict(os.environ, {**env, **more}):
            NotebookClient(
                nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
            ).execute()
        return nb

    def html_of(nb):
        return "\n".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))

    widget = "application/vnd.jupyter.widget-view+json"
    nb = execute("explorer.ipynb", CONDORMAGIC_DASHBOARD="1")
    assert "not been computed yet" in html_of(nb)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert any(widget in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    execute("composite.ipynb")
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    nb = execute("explorer.ipynb", CONDORMAGIC_DASHBOARD="1")
    assert "not been computed yet" not in html_of(nb)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs  # attached, nothing submitted
    # in JupyterLab the same cells attach to composite.ipynb's run too (the same sources and function)
    nb = execute("explorer.ipynb")
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
    assert "Attached to run NDVI_2020" in text and "not been computed yet" not in html_of(nb)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs


def test_one_step_per_item_gets_a_label_per_scene(catalog):
    """group_by=None: the two granules of a pass, seconds apart, are two steps, each labelled with its time."""
    s2 = cm.collection(str(catalog), bands=["B04", "SCL"], datetime="2020-08-16/2020-08-21")
    src = cm.sources(s2=s2, crs="EPSG:32632", res=20, tile=128)
    explorer = cm.explore(src)
    layer = explorer.layers["s2"]
    assert len(layer.times) == len(s2.items) == 4 and len(set(layer.times)) == 4
    assert all(t.startswith(("2020-08-16 10:07", "2020-08-21 10:07")) for t in layer.times)
    assert list(explorer.time.options) == layer.times
    # each scene is its own date: a pick moves the slider to it and shows that scene alone
    row = layer.scenes[3]
    explorer.scene_table.pick(f"item:{row['index']}")
    assert explorer.time.index == row["step"] and explorer.styles["s2"].item == row["id"]
    explorer.styles["s2"] = Style(mode="band", band="B04", rgb=("B04", "B04", "B04"), time=row["step"])
    view = views(layer)["both granules"]
    show(explorer, view)
    png = decode(explorer.overlays["s2"].url)
    data = independent([next(i for i in s2.items if i.id == row["id"])], ["B04"], view)
    assert (png[3] > 0).sum() == np.isfinite(data[0]).sum() > 0
