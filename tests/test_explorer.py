"""The explorer map, kernel side: rendered views against an independent rendering, the live function,
the pixel inspector, legends, the offline map, and the API and magics that open it."""

from __future__ import annotations

import base64
import io
import math
import time
import warnings

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from rasterio.warp import transform, transform_bounds
from reference import view_warped

import condormagic as cm
from condormagic import config
from condormagic.display.explorer import Explorer, FunctionLayer, RasterLayer, Style, explore
from condormagic.display.explorer.view import View, from_latlon, to_latlon


def write_cog(path, array, crs="EPSG:32633", origin=(500000, 5000000), res=30.0, nodata=None, units=None, names=None):
    """A Cloud-Optimized GeoTIFF of ``array`` (2-D or bands) with overviews 2, 4, 8..."""
    bands = array[np.newaxis] if array.ndim == 2 else array
    profile = dict(
        driver="GTiff",
        count=bands.shape[0],
        height=bands.shape[1],
        width=bands.shape[2],
        dtype=bands.dtype,
        crs=crs,
        transform=from_origin(*origin, res, res),
        nodata=nodata,
    )
    with rasterio.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(bands)
            if units:
                dst.units = units
            for i, name in enumerate(names or (), 1):
                dst.set_band_description(i, name)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", overview_resampling="average", blocksize=256)
    return str(path)


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    """A 1024 x 1024 float32 COG in UTM 33N with a nodata corner, and its array."""
    y, x = np.mgrid[0:1024, 0:1024]
    array = (np.sin(x / 37.0) * np.cos(y / 23.0) * 50 + x * 0.1 + y * 0.05).astype("float32")
    array[:100, :100] = -9999
    path = write_cog(tmp_path_factory.mktemp("cog") / "cog.tif", array, nodata=-9999, units=("m",))
    return path, array


def decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.MemoryFile(base64.b64decode(url.split(",", 1)[1])) as mem, mem.open() as png:
            return png.read()


def views_of(path) -> dict[str, View]:
    """Views of ``path``: its whole extent zoomed out, about 1:1 on a corner, and closer than 1:1."""
    with rasterio.open(path) as ds:
        left, bottom, right, top = transform_bounds(ds.crs, "EPSG:3857", *ds.bounds)
    cx, cy = (left + right) / 2, (bottom + top) / 2
    span = right - left  # about 1024 px of 30 m, about 42 m of Web Mercator each at 46 N

    def around(x, y, width_m, w=500, h=360):
        height_m = width_m * h / w
        return View((x - width_m / 2, y - height_m / 2, x + width_m / 2, y + height_m / 2), w, h)

    return {
        "whole, zoomed out": around(cx, cy, span * 1.3),
        "between": around(cx + span * 0.1, cy, span * 0.45),
        "1:1 at the nodata corner": around(left + span * 0.2, top - span * 0.15, span * 500 / 1024),
        "closer than 1:1": around(cx - span * 0.3, cy + span * 0.2, span * 0.1),
    }


def independent(path, view: View) -> tuple[np.ndarray, np.ndarray]:
    """The view rendered without the explorer: the overview GDAL would pick (the coarsest whose
    pixels are no larger than the screen's), rasterio.warp.reproject, a 2-98 % grey stretch."""
    out = view_warped(path, view)
    valid = np.isfinite(out)
    lo, hi = np.percentile(out[valid], [2, 98])
    grey = np.clip((out.astype(np.float64) - lo) * (255.0 / (hi - lo)), 0, 255)
    return np.nan_to_num(grey).astype(np.uint8), np.where(valid, 255, 0).astype(np.uint8)


def show(explorer: Explorer, view: View) -> None:
    explorer.view = view
    explorer.render()


VIEWS = ["whole, zoomed out", "between", "1:1 at the nodata corner", "closer than 1:1"]


@pytest.mark.parametrize("name", VIEWS)
def test_a_rendered_view_equals_an_independent_rendering(cog, name):
    path, _ = cog
    layer = RasterLayer("cog", path)
    explorer = Explorer([layer], styles={"cog": Style(band="band 1", colormap="greys", stretch="percent")})
    view = views_of(path)[name]
    show(explorer, view)
    overlay = explorer.overlays["cog"]
    png = decode(overlay.url)
    grey, alpha = independent(path, view)
    assert png.shape == (4, view.height, view.width)
    assert (png[3] == alpha).all()
    assert 0.05 < (alpha > 0).mean()
    np.testing.assert_array_equal(png[0][alpha > 0], grey[alpha > 0])
    # placed where the view is: the overlay's corners are the view's
    (south, west), (north, east) = overlay.bounds
    assert np.allclose(from_latlon(south, west), view.bounds[:2], atol=1e-3)
    assert np.allclose(from_latlon(north, east), view.bounds[2:], atol=1e-3)


def test_a_zoomed_out_view_reads_an_overview_not_the_whole_raster(cog):
    path, _ = cog
    view = views_of(path)["whole, zoomed out"]
    level = overview_level_for(path, view)
    with rasterio.open(path) as ds:
        assert level is not None and ds.overviews(1)[level] >= 2
    assert overview_level_for(path, views_of(path)["closer than 1:1"]) is None


def overview_level_for(path, view):
    from condormagic.display.explorer.view import overview_level, view_resolution_in

    with rasterio.open(path) as ds:
        return overview_level(ds, view_resolution_in(ds.crs, view))


def test_stretches_and_colour_maps_change_the_pixels(cog):
    path, array = cog
    explorer = Explorer([RasterLayer("cog", path)])
    show(explorer, views_of(path)["between"])
    first = decode(explorer.overlays["cog"].url)
    legends = []
    for style in (Style(band="band 1", stretch="minmax"), Style(band="band 1", stretch="stddev", n_std=1.0)):
        explorer.styles["cog"] = style
        explorer.render()
        image = decode(explorer.overlays["cog"].url)
        assert (image[:3] != first[:3]).any(), style
        legends.append(explorer.legends["cog"])
    valid = array[array != -9999]
    assert legends[0].lo >= valid.min() - 1e-3 and legends[0].hi <= valid.max() + 1e-3
    assert legends[1].hi - legends[1].lo < legends[0].hi - legends[0].lo
    assert legends[0].units == "m"  # the band's units, on the colour bar
    assert "(m)" in explorer.legend_widgets["stack"].value


def test_a_pan_and_a_zoom_change_the_pixels_and_read_only_the_view(cog):
    path, _ = cog
    explorer = Explorer([RasterLayer("cog", path)])
    view = views_of(path)["between"]
    show(explorer, view)
    before = explorer.overlays["cog"].url
    left, bottom, right, top = view.bounds
    shift = (right - left) / 5
    show(explorer, View((left + shift, bottom, right + shift, top), view.width, view.height))
    assert explorer.overlays["cog"].url != before
    panned = explorer.overlays["cog"].url
    show(explorer, views_of(path)["closer than 1:1"])
    assert explorer.overlays["cog"].url not in (before, panned)


def test_the_pixel_inspector_reads_the_file_at_the_point(cog):
    path, array = cog
    explorer = Explorer([RasterLayer("cog", path)])
    with rasterio.open(path) as ds:
        x, y = ds.xy(321, 500)  # row 321, col 500
        (lon,), (lat,) = transform(ds.crs, "EPSG:4326", [x], [y])
        expected = next(ds.sample([(x, y)]))[0]
    values = explorer.inspect(lat, lon)
    assert values["cog"]["band 1"] == float(expected) == float(array[321, 500])
    assert f'data-value="{float(expected)!r}"' in explorer.inspector.value
    # the nodata corner, and a point off the raster
    with rasterio.open(path) as ds:
        (lon,), (lat,) = transform(ds.crs, "EPSG:4326", [ds.xy(10, 10)[0]], [ds.xy(10, 10)[1]])
    assert explorer.inspect(lat, lon)["cog"]["band 1"] is None
    assert explorer.inspect(0.0, 0.0)["cog"]["band 1"] is None
    assert explorer.marker.location == [0.0, 0.0] and explorer.marker.opacity == 1.0


def test_legends_classes_for_integer_classes_and_diverging_for_changes(tmp_path):
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 3, (300, 400)).astype("uint8")
    change = rng.normal(0, 5, (300, 400)).astype("float32")
    a = RasterLayer(
        "mask", write_cog(tmp_path / "mask.tif", classes), classes={1: ("deforested", "#ff0000"), 2: "kept"}
    )
    b = RasterLayer("change", write_cog(tmp_path / "change.tif", change))
    explorer = Explorer([a, b], split=("mask", "change"))
    left, bottom, right, top = a.footprint()
    show(explorer, View((left, bottom, right, top), 400, 300))
    mask_legend, change_legend = explorer.legends["left"], explorer.legends["right"]
    assert mask_legend.kind == "classes"
    assert [v for v, _, _ in mask_legend.classes] == [0, 1, 2]
    assert [(label, colour) for _, label, colour in mask_legend.classes][1:] == [
        ("deforested", (255, 0, 0)),  # the colour given
        ("kept", (31, 119, 180)),  # the palette's
    ]
    assert change_legend.kind == "colorbar" and change_legend.colormap == "diverging"
    assert change_legend.lo == -change_legend.hi  # centred on zero
    html = explorer.legend_widgets["left"].value + explorer.legend_widgets["right"].value
    assert 'data-kind="classes"' in html and 'data-kind="diverging"' in html and "deforested" in html
    # each side of the split says which layer it shows, on the map
    assert "mask" in explorer.side_labels["left"].value and "change" in explorer.side_labels["right"].value
    # the inspector names the class
    row, col = np.argwhere(classes == 1)[0]
    with rasterio.open(a.path) as ds:
        (lon,), (lat,) = transform(ds.crs, "EPSG:4326", *[[v] for v in ds.xy(row, col)])
    assert explorer.inspect(lat, lon)["mask"]["band 1"] == 1
    assert "1 (deforested)" in explorer.inspector.value
    # a class keeps its colour whatever the view: the same value, the same colour
    png = decode(explorer.overlays["left"].url)
    colours = {tuple(png[:3, r, c]) for r in range(0, 300, 7) for c in range(0, 400, 7) if png[3, r, c]}
    assert len(colours) == 3


def test_rgb_from_named_bands(tmp_path):
    rng = np.random.default_rng(2)
    bands = rng.integers(0, 3000, (4, 200, 200)).astype("uint16")
    path = tmp_path / "rgbn.tif"
    write_cog(path, bands, names=("B02", "B03", "B04", "B08"))
    layer = RasterLayer("s2", str(path))
    explorer = Explorer([layer])
    assert explorer.styles["s2"].mode == "rgb" and explorer.styles["s2"].rgb == ("B04", "B03", "B02")
    left, bottom, right, top = layer.footprint()
    show(explorer, View((left, bottom, right, top), 200, 200))
    assert explorer.legends["s2"].kind == "rgb"
    first = decode(explorer.overlays["s2"].url)
    explorer.styles["s2"] = explorer.styles["s2"].copy(rgb=("B08", "B04", "B03"))
    explorer.render()
    assert (decode(explorer.overlays["s2"].url)[0] != first[0]).any()


@pytest.fixture
def dems(tmp_path):
    """Two 300 x 200 rasters already in Web Mercator (so a 1:1 view is a window of the grid), and one in UTM."""
    rng = np.random.default_rng(3)
    a = rng.normal(100, 10, (200, 300)).astype("float32")
    b = (a + rng.normal(2, 3, a.shape)).astype("float32")
    origin = (1_669_792.0, 5_621_521.0)
    pa = write_cog(tmp_path / "a.tif", a, crs="EPSG:3857", origin=origin, res=20.0)
    pb = write_cog(tmp_path / "b.tif", b, crs="EPSG:3857", origin=origin, res=20.0)
    return pa, pb, a, b, origin


def test_the_live_function_at_1_to_1_is_what_a_job_computes(dems):
    pa, pb, a, b, (x0, y0) = dems
    src = cm.sources(a=pa, b=pb, tile=128)
    shapes = []

    def change(img):
        shapes.append(img["a"].shape)
        return img["b"] - img["a"]

    layer = FunctionLayer(change, src)
    assert layer.bands == ["result"] and not layer.integer
    # a view on grid pixels, one screen pixel per grid pixel: rows 20-170, cols 30-250
    view = View((x0 + 30 * 20, y0 - 170 * 20, x0 + 250 * 20, y0 - 20 * 20), 220, 150)
    out = layer.render(view.bounds, view.width, view.height)
    np.testing.assert_array_equal(out[0], (b - a)[20:170, 30:250])
    assert shapes[-1] == (150, 220)
    # zoomed out: the function sees the grid decimated to the screen, not the whole grid
    wide = View((x0 - 6000, y0 - 8000, x0 + 12000, y0 + 2000), 90, 50)
    out = layer.render(wide.bounds, wide.width, wide.height)
    assert shapes[-1][0] * shapes[-1][1] < 200 * 300 / 4
    assert np.isfinite(out).any() and np.isnan(out).any()  # off the grid is no data
    assert "screen resolution" in layer.note
    # the inspector computes the function at full resolution around the point
    lat, lon = to_latlon(x0 + 77.5 * 20, y0 - 33.5 * 20)
    assert layer.values_at(lat, lon)["result"] == pytest.approx(float(b[33, 77] - a[33, 77]))


def test_explore_with_a_function_splits_source_and_preview(dems):
    pa, pb, a, b, _ = dems
    src = cm.sources(a=pa, b=pb, tile=128)
    explorer = cm.explore(src, lambda img: {"diff": img["b"] - img["a"], "ratio": img["b"] / img["a"]})
    assert explorer.split and explorer.left == "a"
    preview = explorer.layers[explorer.right]
    assert preview.bands == ["diff", "ratio"]
    left, bottom, right, top = preview.footprint()
    show(explorer, View((left, bottom, right, top), 150, 100))
    assert explorer.legends["right"].title.endswith("diff")
    assert not explorer.errors


def test_a_function_that_fails_says_so_and_the_map_goes_on(dems):
    pa, pb, *_ = dems
    src = cm.sources(a=pa, b=pb, tile=128)
    calls = []

    def flaky(img):
        calls.append(1)
        if len(calls) > 1:
            raise ZeroDivisionError("no")
        return img["a"]

    explorer = cm.explore(src, flaky)
    left, bottom, right, top = explorer.layers["a"].footprint()
    show(explorer, View((left, bottom, right, top), 150, 100))
    assert "ZeroDivisionError: no" in explorer.errors["flaky"]
    assert "ZeroDivisionError" in explorer.status.value
    assert decode(explorer.overlays["left"].url)[3].any()  # the source still shows


def test_offline_no_basemap_but_outline_tiles_and_graticule_and_a_basemap_setting(dems, monkeypatch):
    import ipyleaflet

    pa, pb, *_ = dems
    src = cm.sources(a=pa, b=pb, tile=128)
    monkeypatch.delitem(config._overrides, "basemap", raising=False)
    monkeypatch.delenv("CONDORMAGIC_BASEMAP", raising=False)
    explorer = cm.explore(src)
    layers = explorer.map.layers
    assert not any(isinstance(layer, ipyleaflet.TileLayer) for layer in layers)  # nothing to fetch
    names = [layer.name for layer in layers]
    assert "grid outline" in names and "tile grid" in names and "graticule" in names
    tiles = next(layer for layer in layers if layer.name == "tile grid")
    # 300 x 200 px in tiles of 128: 3 x 2 tiles, so 2 inner edges across and 1 down
    assert len(tiles.data["geometry"]["coordinates"]) == 3
    monkeypatch.setenv("CONDORMAGIC_BASEMAP", "https://tiles.example.org/{z}/{x}/{y}.png")
    explorer = cm.explore(src)
    base = [layer for layer in explorer.map.layers if isinstance(layer, ipyleaflet.TileLayer)]
    assert [b.url for b in base] == ["https://tiles.example.org/{z}/{x}/{y}.png"]
    assert "graticule" not in [layer.name for layer in explorer.map.layers]


def test_the_first_view_fits_the_layers(cog):
    path, _ = cog
    explorer = explore(path)
    m = explorer.map
    # what the frontend reports when it first shows a 720 x 360 map at zoom 3 over the equator
    world = 256 * 2.0**3
    for key, value in dict(
        left=world / 2 - 360, right=world / 2 + 360, top=world / 2 - 180, bottom=world / 2 + 180
    ).items():
        m.set_trait(key, value)
    m.set_trait("south", -10.0)
    m.set_trait("north", 10.0)
    m.set_trait("west", -20.0)
    m.set_trait("east", 20.0)
    left, bottom, right, top = explorer._footprint()
    world = 256 * 2.0**m.zoom
    span_px = (right - left) / (2 * math.pi * 6378137) * world, (top - bottom) / (2 * math.pi * 6378137) * world
    assert span_px[0] <= 720 and span_px[1] <= 360  # all of it in the map
    assert span_px[0] > 360 or span_px[1] > 180  # and as large as a whole zoom allows
    assert to_latlon((left + right) / 2, (bottom + top) / 2) == pytest.approx(tuple(m.center))


def test_bad_input_is_one_sentence(tmp_path, dems):
    with pytest.raises(cm.CondorMagicError, match="does not exist"):
        cm.explore(tmp_path / "nowhere.tif")
    with pytest.raises(cm.CondorMagicError, match="cm.explore shows sources"):
        cm.explore(42)
    pa, pb, *_ = dems
    with pytest.raises(cm.CondorMagicError, match="returns no array"):
        cm.explore(cm.sources(a=pa), lambda img: {"n": 1})


def test_run_explore_shows_the_output_beside_the_inputs(runs_dir, dems):
    pa, pb, a, b, _ = dems
    src = cm.sources(a=pa, b=pb, tile=128)

    def diff(img):
        return img["b"] - img["a"]

    run = cm.submit(diff, src, cpus=1, mem="500MB").wait(timeout=120)
    explorer = run.explore()
    assert list(explorer.layers) == ["a", "b", "diff (output)"]
    assert (explorer.left, explorer.right) == ("a", "diff (output)")
    out = explorer.layers["diff (output)"]
    lat, lon = to_latlon(*rasterio.open(run.output).xy(10, 20))
    assert explorer.inspect(lat, lon)["diff (output)"]["band 1"] == pytest.approx(float((b - a)[10, 20]))
    left, bottom, right, top = out.footprint()
    show(explorer, View((left, bottom, right, top), 300, 200))
    assert decode(explorer.overlays["right"].url)[3].mean() > 200  # the whole output, opaque


def test_render_runs_in_a_thread_and_debounces(cog):
    path, _ = cog
    explorer = Explorer([RasterLayer("cog", path)], debounce=0.05)
    explorer.view = views_of(path)["between"]
    for _ in range(5):
        explorer.request()
    deadline = time.monotonic() + 20
    while explorer.n_renders == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert explorer.n_renders == 1  # five requests in a row make one render
    assert explorer._thread.name == "condormagic-explorer"
    explorer.close()


def test_png_round_trip():
    from condormagic.display.images import png_bytes

    rng = np.random.default_rng(0)
    for count in (1, 2, 3, 4):
        array = rng.integers(0, 256, (count, 17, 23)).astype("uint8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.MemoryFile(io.BytesIO(png_bytes(array, level=1)).read()) as mem, mem.open() as png:
                np.testing.assert_array_equal(png.read(), array)


def test_condor_explore_magic_in_a_kernel(dems, tmp_path, runs_dir):
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    pa, pb, *_ = dems
    cells = [
        "%load_ext condormagic",
        f"%condor_sources a={pa} b={pb} --tile 128",
        "%condor_explore",
        "def diff(img):\n    return img['b'] - img['a']",
        "%condor_explore diff",
        f"path = {pa!r}\n%condor_explore path",
        "%condor_explore NO_SUCH_RUN",
        "x = 3\n%condor_explore x",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute(cwd=str(tmp_path))
    widget = "application/vnd.jupyter.widget-view+json"
    for cell in (nb.cells[2], nb.cells[4], nb.cells[5]):
        assert [o.output_type for o in cell.outputs] == ["execute_result"], cell.outputs
        assert widget in cell.outputs[0].data
    from test_magics import usage_error

    assert "No run is named or numbered 'NO_SUCH_RUN'" in usage_error(nb.cells[6])
    assert "it holds int" in usage_error(nb.cells[7])


def test_legend_numbers_read_as_a_person_reads_them():
    from condormagic.display.explorer.legend import number

    assert [number(v) for v in (2410.4, 191.2, 0.327, -23.3, -0.0, 1e-13, 0.0004)] == [
        "2,410",
        "191",
        "0.327",
        "-23.3",
        "0",
        "0",
        "0.0004",
    ]


def test_split_off_stacks_every_shown_layer_and_on_again(dems):
    pa, pb, *_ = dems
    explorer = cm.explore(cm.sources(a=pa, b=pb, tile=128), lambda img: img["b"] - img["a"], name="d")
    view = View(explorer.layers["a"].footprint(), 150, 100)
    explorer.set_split(None)
    assert not explorer.split and set(explorer.overlays) == {"a", "b", "d"}
    assert explorer.map.controls and not any(type(c).__name__ == "SplitMapControl" for c in explorer.map.controls)
    explorer.set_style("b", explorer.styles["b"].copy(visible=False))
    assert explorer.overlays["b"].visible is False
    show(explorer, view)
    assert [key for key, _ in explorer.targets()] == ["a", "d"]
    assert decode(explorer.overlays["a"].url)[3].any() and decode(explorer.overlays["d"].url)[3].any()
    assert decode(explorer.overlays["b"].url).shape[1:] == (1, 1)  # a hidden layer is not rendered
    explorer.set_split("b", "a")
    assert explorer.split and (explorer.left, explorer.right) == ("b", "a")
    show(explorer, view)
    assert decode(explorer.overlays["left"].url)[3].any()


class TimeStack:
    """A layer with time steps, as a collection's layer will be: one file per date (the hook of layers.py)."""

    def __init__(self, name, paths, times):
        self.name, self.times = name, list(times)
        self._steps = [RasterLayer(name, p) for p in paths]
        first = self._steps[0]
        self.bands, self.integer, self.units, self.classes, self.note = first.bands, first.integer, "", None, ""

    def footprint(self):
        return self._steps[0].footprint()

    def render(self, bounds_3857, width, height, time=None, bands=None):
        return self._steps[time or 0].render(bounds_3857, width, height, bands=bands)

    def values_at(self, lat, lon, time=None):
        return self._steps[time or 0].values_at(lat, lon)


def test_a_layer_with_time_steps_gets_a_date_slider(dems):
    pa, pb, a, b, (x0, y0) = dems
    layer = TimeStack("stack", [pa, pb], ["2020-08-21", "2020-10-10"])
    explorer = Explorer([layer])
    assert explorer.time.layout.display != "none" and list(explorer.time.options) == ["2020-08-21", "2020-10-10"]
    show(explorer, View(layer.footprint(), 150, 100))
    first = explorer.overlays["stack"].url
    explorer.time.value = "2020-10-10"  # what the slider does
    assert explorer.styles["stack"].time == 1
    explorer.render()
    assert explorer.overlays["stack"].url != first
    assert explorer.legends["stack"].title == "stack · 2020-10-10"
    lat, lon = to_latlon(x0 + 5.5 * 20, y0 - 7.5 * 20)
    assert explorer.inspect(lat, lon)["stack"]["band 1"] == float(b[7, 5])


def test_what_the_function_prints_shows_under_the_map(dems):
    pa, pb, *_ = dems

    def noisy(img):
        print("mean of a:", float(img["a"].mean()))
        return img["a"]

    explorer = cm.explore(cm.sources(a=pa, b=pb), noisy)
    show(explorer, View(explorer.layers["a"].footprint(), 150, 100))
    assert "noisy printed: <code>mean of a:" in explorer.status.value
    assert "m on the ground" in explorer.status.value
