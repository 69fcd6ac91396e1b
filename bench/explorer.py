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

    python bench/explorer.py [--size 8192] [--repeat 7] [--keep PATH]

The 16-scene collection view of issue 14 waits for collections (``tiling/collection.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
            explorer._cache.clear()
            explorer.render()
            rendered[0] += 1
            i += 1

    thread = threading.Thread(target=render_loop, daemon=True)
    thread.start()
    busy = sample(seconds)
    stop.set()
    thread.join()
    return statistics.median(idle), statistics.median(busy), rendered[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="where to keep (and reuse) the COG")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
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

            def render() -> None:
                explorer._cache.clear()  # a new view: read again
                explorer.render()

            ours = timed(render, args.repeat)
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
        idle, busy, n = responsiveness(explorer, list(all_views.values()))
        print(
            f"\na small cell on the main thread: {idle:.3f} ms idle, {busy:.3f} ms while the map renders "
            f"({n} views rendered meanwhile; ratio {busy / idle:.1f}x)"
        )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
