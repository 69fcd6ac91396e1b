"""How long the explorer map takes to render one view of an 8192 x 8192 COG, and whether the kernel
still answers meanwhile.

A view is what the map shows in a 1000 x 700 pixel window: the whole raster (zoomed out), views in
between, and 1:1 (one screen pixel per raster pixel). Each is rendered as the map does on a pan or
zoom (read for the view from the right overview, warp to Web Mercator, 2-98 % stretch on the
displayed area, colour, PNG data URL), median of several. Compared with what a user would otherwise
write for the same picture: ``rasterio.warp.reproject`` of the same bounds at the same size from the
full-resolution raster (no overview chosen), then the same colouring.

Then the kernel's responsiveness: a small task (a 1,000-element NumPy sum and a dict update, a
"cell") is timed on the main thread while the render thread renders view after view, against the
same task idle.

Then a collection of 16 scenes (``examples/make_s2_data.py``'s catalog at full size, two 2048 x 2048
granules of 10 m either side of the UTM 32/33 boundary, the first eight passes): one date in RGB
(B04, B03, B02: its two scenes warped from their overviews and mosaicked), at the whole extent,
in between and at 1:1, against the same picture from the scenes' full resolution (no overview) and,
when odc-stac is installed (``pip install -e ".[bench]"``), ``odc.stac.load`` of the date's items on
the view's grid (``groupby="solar_day"``), coloured the same way; then the live NDVI composite of
``examples/composite.ipynb`` over all 16 scenes (each view reads every date: a 4-D array of 8
dates x 3 bands; at 1:1 exactly as a job reads it, coarser from the scenes' overviews), and the
kernel's responsiveness while the collection's views render.

    python bench/explorer.py [--size 8192] [--repeat 7] [--keep PATH] [--catalog FOLDER]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_bounds

from condormagic.display.explorer import Explorer, RasterLayer, Style
from condormagic.display.explorer.style import colour
from condormagic.display.explorer.view import View
from condormagic.display.images import data_url, png_bytes

WIDTH, HEIGHT = 1000, 700
TARGET_MS = 300
COLLECTION_TARGET_MS = 1000
HERE = Path(__file__).resolve().parent
RGB = ["B04", "B03", "B02"]
CLOUDY = (3, 8, 9, 10)


def make_cog(path: Path, size: int) -> None:
    """A float32 COG of ``size`` x ``size`` 10 m pixels in UTM 33N (deflate, 512 px blocks, overviews)."""
    y, x = np.mgrid[0:size, 0:size].astype("float32")
    array = np.sin(x / 300) * np.cos(y / 200) * 100 + x / 100 + np.random.default_rng(0).normal(0, 3, (size, size))
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="float32",
        crs="EPSG:32633",
        transform=from_origin(500000, 5200000, 10, 10),
        tiled=True,
        blockxsize=512,
        blockysize=512,
    )
    with rasterio.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(array.astype("float32"), 1)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", compress="DEFLATE", overview_resampling="average")


def views(path: Path) -> dict[str, View]:
    with rasterio.open(path) as ds:
        left, bottom, right, top = transform_bounds(ds.crs, "EPSG:3857", *ds.bounds)
        size = ds.width
    cx, cy = (left + right) / 2, (bottom + top) / 2
    metres_per_pixel = (right - left) / size  # of Web Mercator, per raster pixel

    def at(pixels_per_screen_pixel: float) -> View:
        w = WIDTH * metres_per_pixel * pixels_per_screen_pixel
        h = w * HEIGHT / WIDTH
        return View((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), WIDTH, HEIGHT)

    whole = size / WIDTH * 1.15
    return {
        f"whole raster (1:{whole:.1f})": at(whole),
        "1:4": at(4),
        "1:2.5": at(2.5),
        "1:1.5": at(1.5),
        "1:1": at(1),
    }


def baseline(path: Path, view: View) -> str:
    """What a user would otherwise write: the view's bounds warped from the full resolution."""
    out = np.full((1, view.height, view.width), np.nan, np.float32)
    with rasterio.open(path) as ds:
        reproject(
            rasterio.band(ds, 1),
            out,
            dst_transform=view.transform,
            dst_crs="EPSG:3857",
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
            num_threads=2,
        )
    rgba, _ = colour(out, Style(band="band 1"))
    return data_url(png_bytes(rgba, level=1))


def print_responsiveness(explorer, views: list, what: str) -> None:
    """How long a small cell takes on the main thread, idle and while ``explorer`` renders ``views``."""
    idle, busy, n = responsiveness(explorer, views)
    print(
        f"a small cell on the main thread: {idle:.3f} ms idle, {busy:.3f} ms while {what} "
        f"({n} views rendered meanwhile; ratio {busy / idle:.1f}x)"
    )


def cold_render(explorer) -> None:
    """Render the explorer's view as a new view is rendered: its cached reads dropped first."""
    explorer._cache.clear()
    explorer.render()


def timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def responsiveness(explorer: Explorer, all_views: list[View], seconds: float = 3.0) -> tuple[float, float, int]:
    """Median milliseconds of a small task on the main thread, idle and while the thread renders."""
    state = {}

    def task() -> None:
        state["x"] = float(np.arange(1000.0).sum())

    def sample(duration: float) -> list[float]:
        out, end = [], time.perf_counter() + duration
        while time.perf_counter() < end:
            start = time.perf_counter()
            task()
            out.append((time.perf_counter() - start) * 1000)
            time.sleep(0.005)  # a person types between cells
        return out

    idle = sample(1.0)
    stop = threading.Event()
    rendered = [0]

    def render_loop() -> None:
        i = 0
        while not stop.is_set():
            explorer.view = all_views[i % len(all_views)]
            cold_render(explorer)
            rendered[0] += 1
            i += 1

    thread = threading.Thread(target=render_loop, daemon=True)
    thread.start()
    busy = sample(seconds)
    stop.set()
    thread.join()
    return statistics.median(idle), statistics.median(busy), rendered[0]


# -- a collection of 16 scenes --------------------------------------------------------------------
def composite(img):
    """The NDVI median over each pixel's clear observations (examples/composite.ipynb's, one band)."""
    import warnings

    s2 = img["s2"].astype(np.float32)
    red, nir, scl = (s2[:, img.bands["s2"].index(b)] for b in ("B04", "B08", "SCL"))
    clear = (scl > 0) & ~np.isin(scl, CLOUDY)
    ndvi = np.where(clear, (nir - red) / (nir + red + 1e-6), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(ndvi, axis=0).astype(np.float32)


def collection_views(layer, pixel_m: float) -> dict[str, View]:
    """Views of the collection: all of it, in between, and 1:1 (one screen pixel per 10 m pixel) at its centre."""
    left, bottom, right, top = layer.footprint()
    cx, cy = (left + right) / 2, (bottom + top) / 2
    # metres of Web Mercator per metre on the ground, at the centre
    stretch = 1 / np.cos(np.radians(46.78))

    def at(metres_per_screen_pixel: float) -> View:
        w = WIDTH * metres_per_screen_pixel * stretch
        h = w * HEIGHT / WIDTH
        return View((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), WIDTH, HEIGHT)

    whole = (right - left) / stretch / WIDTH * 1.1
    return {
        f"whole ({whole:.0f} m/px)": at(whole),
        f"between ({pixel_m * 2.5:.0f} m/px)": at(pixel_m * 2.5),
        f"1:1 ({pixel_m:.0f} m/px)": at(pixel_m),
    }


def full_resolution_date(layer, step: int, view: View) -> str:
    """The date's picture from each scene's full resolution (no overview), mosaicked and coloured the same."""
    out = np.full((3, view.height, view.width), np.nan, np.float32)
    for b, band in enumerate(RGB):
        for k in layer.steps[step]:
            asset = layer.items[k]["assets"][layer.bands.index(band)]
            tmp = np.full((view.height, view.width), np.nan, np.float32)
            with rasterio.open(asset["path"]) as ds:
                reproject(
                    rasterio.band(ds, 1),
                    tmp,
                    src_nodata=ds.nodata,
                    dst_transform=view.transform,
                    dst_crs="EPSG:3857",
                    dst_nodata=np.nan,
                    resampling=Resampling.nearest,
                    num_threads=2,
                )
            np.copyto(out[b], tmp, where=np.isnan(out[b]) & ~np.isnan(tmp))
    rgba, _ = colour(out, Style(mode="rgb", rgb=tuple(RGB)))
    return data_url(png_bytes(rgba, level=1))


def odc_date(items: list, view: View) -> str | None:
    """The date's picture through ``odc.stac.load`` on the view's grid, coloured the same; ``None`` without odc-stac."""
    try:
        import odc.stac
        from odc.geo.geobox import GeoBox
    except ImportError:
        return None
    geobox = GeoBox((view.height, view.width), view.transform, "EPSG:3857")
    ds = odc.stac.load(items, bands=RGB, geobox=geobox, groupby="solar_day", resampling="nearest", dtype="float32")
    out = np.stack([ds[b].values[0] for b in RGB]).astype(np.float32)
    out[out == 0] = np.nan  # nodata
    rgba, _ = colour(out, Style(mode="rgb", rgb=tuple(RGB)))
    return data_url(png_bytes(rgba, level=1))


def collection_case(args) -> None:
    import condormagic as cm

    sys.path.insert(0, str(HERE.parent / "examples"))
    from make_s2_data import make

    folder = args.catalog or Path(tempfile.mkdtemp(prefix="bench-explorer-s2-"))
    start = time.perf_counter()
    catalog = make(folder, size=2048)
    print(f"\ncatalog {catalog} (two 2048 x 2048 granules of 10 m), {time.perf_counter() - start:.1f} s")
    s2 = cm.collection(
        catalog, bands=["B04", "B03", "B02", "B08", "SCL"], datetime="2020-08-16/2020-09-20", group_by="solar_day"
    )
    src = cm.sources(s2=s2, crs="EPSG:32632", res=20, tile=1024)
    explorer = cm.explore(src)
    layer = explorer.layers["s2"]
    step = 1
    print(f"{len(s2.items)} scenes on {len(s2.steps)} dates; the date {layer.times[step]} in RGB (its 2 scenes):")
    views = collection_views(layer, 10.0)
    has_odc = odc_date(list(s2.steps[step].items), next(iter(views.values()))) is not None
    heads = f"{'view':22} {'explorer':>9} {'full-res warp':>14} {'ratio':>7}"
    print(heads + (f" {'odc-stac':>9} {'ratio':>7}" if has_odc else "  (odc-stac not installed)"))
    explorer.styles["s2"] = explorer.styles["s2"].copy(time=step)
    worst, ratios = 0.0, []
    for name, view in views.items():
        explorer.view = view
        ours = timed(lambda: cold_render(explorer), args.repeat)
        full = timed(lambda view=view: full_resolution_date(layer, step, view), max(3, args.repeat // 2))
        line = f"{name:22} {ours:9.0f} {full:14.0f} {full / ours:7.1f}x"
        ratios.append(full / ours)
        if has_odc:
            odc = timed(lambda view=view: odc_date(list(s2.steps[step].items), view), max(3, args.repeat // 2))
            line += f" {odc:9.0f} {odc / ours:7.1f}x"
        worst = max(worst, ours)
        print(line)
    print(f"median ratio (full-resolution warp / explorer): {statistics.median(ratios):.1f}x")
    verdict = "met" if worst < COLLECTION_TARGET_MS else "NOT met"
    print(f"slowest view of a date {worst:.0f} ms: target under {COLLECTION_TARGET_MS} ms per view {verdict}")

    # The live composite on composite.ipynb's own sources: the bands it reads (B04, B08, SCL).
    three = cm.collection(catalog, bands=["B04", "B08", "SCL"], datetime="2020-08-16/2020-09-20", group_by="solar_day")
    live = cm.explore(cm.sources(s2=three, crs="EPSG:32632", res=20, tile=1024), composite)
    live.styles["s2"] = live.styles["s2"].copy(mode="band", band="B04", time=step)
    print(
        f"\nthe live NDVI composite over all {len(three.items)} scenes (B04, B08, SCL: composite.ipynb's sources), "
        "split against the date's B04 (ms per view; 1:1 reads every scene at full resolution, as a job does):"
    )
    preview = live.layers["composite"]
    calls = []
    inner = preview.func

    def timed_func(img):
        start = time.perf_counter()
        try:
            return inner(img)
        finally:
            calls.append(((time.perf_counter() - start) * 1000, img["s2"].shape))

    preview.func = timed_func
    worst = 0.0
    for name, view in views.items():
        live.view = view
        ours = timed(lambda: cold_render(live), args.repeat)
        func_ms, shape = statistics.median(c[0] for c in calls[-args.repeat :]), calls[-1][1]
        worst = max(worst, ours)
        print(f"{name:22} {ours:9.0f}   (the function itself {func_ms:.0f} ms, img['s2'] {shape})")
    verdict = "met" if worst < COLLECTION_TARGET_MS else "NOT met"
    print(f"slowest view with the live composite {worst:.0f} ms: under {COLLECTION_TARGET_MS} ms {verdict}")
    print_responsiveness(live, list(views.values()), "the collection renders")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="where to keep (and reuse) the COG")
    parser.add_argument("--catalog", type=Path, help="where to keep (and reuse) the example catalog")
    parser.add_argument("--only", choices=["cog", "collection"], help="run one of the two cases")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.only != "collection":
        cog_case(args)
    if args.only != "cog":
        collection_case(args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def cog_case(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as tmp:
        path = args.keep or Path(tmp) / f"cog{args.size}.tif"
        if not path.exists():
            start = time.perf_counter()
            make_cog(path, args.size)
            print(f"made {path} ({args.size} x {args.size} float32 COG) in {time.perf_counter() - start:.1f} s")
        explorer = Explorer([RasterLayer("cog", str(path))])
        all_views = views(path)
        print(f"\none view of {WIDTH} x {HEIGHT} px, median of {args.repeat} (ms):")
        print(f"{'view':26} {'explorer':>9} {'full-res warp':>14} {'ratio':>7}")
        ratios, worst = [], 0.0
        for name, view in all_views.items():
            explorer.view = view
            ours = timed(lambda: cold_render(explorer), args.repeat)
            theirs = timed(lambda view=view: baseline(path, view), max(3, args.repeat // 2))
            ratios.append(theirs / ours)
            worst = max(worst, ours)
            print(f"{name:26} {ours:9.0f} {theirs:14.0f} {theirs / ours:7.1f}x")
        restyle = []
        for stretch in ("minmax", "stddev", "percent") * 2:
            explorer.styles["cog"] = Style(band="band 1", stretch=stretch)
            start = time.perf_counter()
            explorer.render()  # same view: the cached read is recoloured
            restyle.append((time.perf_counter() - start) * 1000)
        print(f"a stretch change (same view, no read): {statistics.median(restyle):.0f} ms")
        print(f"median ratio (full-resolution warp / explorer): {statistics.median(ratios):.1f}x")
        verdict = "met" if worst < TARGET_MS else "NOT met"
        print(f"slowest view {worst:.0f} ms: target under {TARGET_MS} ms per view {verdict}")
        print()
        print_responsiveness(explorer, list(all_views.values()), "the map renders")


if __name__ == "__main__":
    main()
