"""How long the job graph widget of ``%%condor`` takes to build for 10,000 jobs, and to pick a job.

Makes a 1000 x 1000 px GeoTIFF cut into 10 px tiles (10,000 tiles, one job each, as
``--tiles-per-job 1`` would), builds the graph once, then times ``GraphView(graph, sources)``
(tile map drawn once, first page of the picker, first job's overlay and inputs) and
``view.select(job)`` (overlay and inputs of a random job, often on another page). Compared
with what a view that draws everything would cost: the graph's HTML with every job listed.

    python bench/graphview.py [--size 1000] [--tile 10] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="raster width and height in pixels")
    parser.add_argument("--tile", type=int, default=10, help="tile size in pixels")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import condormagic as cm
    from condormagic.display import graphhtml as html
    from condormagic.display.graphview import GraphView
    from condormagic.tiling.jobs import build_graph

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.tif"
        profile = dict(driver="GTiff", width=args.size, height=args.size, count=1, dtype="uint8", crs="EPSG:32633")
        with rasterio.open(path, "w", transform=from_origin(500000, 5000000, 30, 30), **profile) as dst:
            dst.write(np.ones((1, args.size, args.size), "uint8"))
        src = cm.sources(a=str(path), b=str(path), tile=args.tile, halo=2)
        graph = build_graph(src, tiles_per_job=1)
        builds, picks = [], []
        rng = np.random.default_rng(0)
        for _ in range(args.repeat):
            t = time.perf_counter()
            view = GraphView(graph, src, "BENCH")
            builds.append(time.perf_counter() - t)
            for job in rng.integers(0, graph.n_jobs, 5).tolist():
                t = time.perf_counter()
                view.select(job)
                picks.append(time.perf_counter() - t)
        t = time.perf_counter()
        first, last = html.SHOW_FIRST, html.SHOW_LAST
        html.SHOW_FIRST, html.SHOW_LAST = graph.n_jobs, 0
        try:
            everything = html.graph_html(graph, src, "BENCH")
        finally:
            html.SHOW_FIRST, html.SHOW_LAST = first, last
        full = time.perf_counter() - t
        build, pick = statistics.median(builds) * 1000, statistics.median(picks) * 1000
        print(f"graph: {graph.n_jobs} jobs, {len(graph.tiles)} tiles of {args.tile} px, 2 sources, halo 2")
        print(
            f"GraphView build: median {build:.1f} ms of {args.repeat} "
            f"(min {min(builds) * 1000:.1f}, max {max(builds) * 1000:.1f}); map {len(view.map.value) / 1e3:.1f} kB"
        )
        print(f"picking a job (overlay + inputs): median {pick:.2f} ms of {len(picks)}")
        print(
            f"drawing every job as HTML instead: {full * 1000:.0f} ms, {len(everything) / 1e6:.1f} MB "
            f"to send to the browser; ratio {full * 1000 / build:.1f}x the widget's build"
        )


if __name__ == "__main__":
    sys.exit(main())
