"""Benchmark: a cloud-free NDVI median composite over the example Sentinel-2 catalog, two ways.

1. condormagic's local backend, end to end: ``cm.collection`` + ``cm.sources`` (read the catalog,
   open and align every asset) + ``cm.submit`` + ``run.wait()`` + ``run.output`` (the COG);
2. odc-stac + dask, as a user would write it: ``odc.stac.load`` (``groupby="solar_day"``, the
   items' own order within a day, chunks of the same size on the same grid: a ``GeoBox`` made from
   condormagic's grid), the same function on the lazy arrays with ``nanmedian`` over time, computed
   by dask's threads, and written to a COG with the same creation options as condormagic's.

The catalog is ``examples/make_s2_data.py``'s at full size (two 2048 x 2048 granules of 10 m,
twelve passes; B04 and B08 at 10 m and SCL at 20 m are read): the grid is 20 m in EPSG:32632 and
covers both granules, so the zone-33 granule is warped across zones and the 10 m bands are
resampled. Like with like: by default both read a 10 m band from its COG's 2x overview for the 20 m
grid (condormagic's default ``overviews=True``, gdalwarp's ``-ovr AUTO``; odc-stac's default
``use_overviews=True``); with ``--full-resolution`` both read every asset at full resolution
(``overviews=False``; ``use_overviews=False``). Both ways run ``--repeat`` times, interleaved (the
order rotates every round); it prints every time with the machine's load, the median of the
per-round ratios, and how many pixels of the two outputs differ, and why (the inputs each way puts
on the grid are compared band by band).

Target of issue 13 on a 2-core machine: condormagic at most 1.0x odc-stac + dask, end to end.
Run ``python bench/composite.py [--repeat 3] [--tile 1024] [--full-resolution] [--tiles-per-job N]``
(``pip install -e ".[bench]"``); condormagic groups the tiles into jobs as it does by default unless
``--tiles-per-job`` says otherwise (each round prints how many tiles each job had).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

from make_s2_data import make  # noqa: E402

BANDS = ["B04", "B08", "SCL"]
CLOUDY = (3, 8, 9, 10)
CRS, RES = "EPSG:32632", 20


def composite(img):
    """The NDVI median over each pixel's clear observations, and their count."""
    s2 = img["s2"].astype(np.float32)
    red, nir, scl = s2[:, 0], s2[:, 1], s2[:, 2]
    clear = (scl > 0) & ~np.isin(scl, CLOUDY)
    ndvi = np.where(clear, (nir - red) / (nir + red + 1e-6), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels never clear
        median = np.nanmedian(ndvi, axis=0)
    return {"ndvi_median": median.astype(np.float32), "clear_count": clear.sum(axis=0).astype(np.uint8)}


# -- the two ways -------------------------------------------------------------------------------
def run_condormagic(
    catalog: Path, work: Path, tile: int, cpus: int, overviews: bool, tiles_per_job: int | None
) -> tuple[str, dict]:
    import condormagic as cm

    os.environ["CONDORMAGIC_RUNS_DIR"] = str(work / "runs")
    t0 = time.perf_counter()
    s2 = cm.collection(catalog, bands=BANDS, group_by="solar_day")
    src = cm.sources(s2=s2, crs=CRS, res=RES, tile=tile, resampling={"s2": "nearest"}, overviews=overviews)
    t1 = time.perf_counter()
    run = cm.submit(
        composite, src, cpus=cpus, mem="2GB", name="COMPOSITE_BENCH", force=True, tiles_per_job=tiles_per_job
    )
    t2 = time.perf_counter()
    run.wait()
    output = run.output
    t3 = time.perf_counter()
    if output is None:
        raise SystemExit(f"condormagic run {run.path} did not complete: {run.status()}")
    jobs = [len(tiles) for tiles in run.manifest.jobs]
    return output, {"declare": t1 - t0, "submit": t2 - t1, "wait+output": t3 - t2, "n_jobs": run.n_jobs, "jobs": jobs}


def geobox_of(catalog: Path):
    """condormagic's grid for this catalog, as an odc-geo GeoBox (the same pixels)."""
    from odc.geo.geobox import GeoBox

    import condormagic as cm

    grid = cm.sources(s2=cm.collection(catalog, bands=BANDS), crs=CRS, res=RES).grid
    return GeoBox((grid.height, grid.width), grid.transform, CRS), grid


def odc_dataset(catalog: Path, geobox, chunk: int, overviews: bool):
    import odc.stac
    import pystac

    items = list(pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))
    return odc.stac.load(
        items,
        bands=BANDS,
        geobox=geobox,
        chunks={"x": chunk, "y": chunk},
        groupby="solar_day",
        resampling="nearest",
        preserve_original_order=True,  # first valid pixel in the catalog's order, as condormagic
        use_overviews=overviews,  # odc-stac's default is True
    )


def run_odc(catalog: Path, work: Path, geobox, chunk: int, threads: int, overviews: bool) -> str:
    import dask

    out_path = work / "odc.tif"
    ds = odc_dataset(catalog, geobox, chunk, overviews)
    red, nir, scl = (ds[b].astype("float32") for b in BANDS)
    clear = (scl > 0) & ~scl.isin(CLOUDY)
    ndvi = ((nir - red) / (nir + red + 1e-6)).where(clear)
    median = ndvi.chunk(time=-1).median("time", skipna=True).astype("float32")
    count = clear.sum("time").astype("uint8")
    with warnings.catch_warnings(), dask.config.set(scheduler="threads", num_workers=threads):
        warnings.simplefilter("ignore", RuntimeWarning)
        median, count = dask.compute(median.data, count.data)
    write_cog(out_path, {"ndvi_median": median, "clear_count": count}, geobox)
    return str(out_path)


def write_cog(path: Path, bands: dict, geobox) -> None:
    """A two-band COG as condormagic writes it: float32 (the uint8 band promoted), NaN nodata."""
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy

    from condormagic.rundir.results import COG_OPTIONS

    # condormagic's options for a float output: its creation options, predictor 3, averaged overviews
    options = dict(COG_OPTIONS, predictor=3, overview_resampling="average")

    stack = np.stack([b.astype(np.float32) for b in bands.values()])
    profile = dict(
        driver="GTiff",
        width=stack.shape[2],
        height=stack.shape[1],
        count=len(bands),
        dtype="float32",
        crs=CRS,
        transform=geobox.affine,
        nodata=float("nan"),
    )
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(stack)
            dst.descriptions = tuple(bands)
        with memory.open() as src:
            copy(src, str(path), **options)


# -- why the outputs differ ----------------------------------------------------------------------
def explain(catalog: Path, geobox, grid, chunk: int, overviews: bool) -> None:
    """The inputs each way puts on the grid, compared band by band and step by step."""
    import dask
    from rasterio.windows import Window

    import condormagic as cm
    from condormagic.tiling.reader import GridReader

    coll = cm.collection(catalog, bands=BANDS, group_by="solar_day")
    src = cm.sources(s2=coll, crs=CRS, res=RES, overviews=overviews)
    levels = {band: {} for band in BANDS}
    for item in src["s2"].items:
        for band, asset in zip(BANDS, item.assets, strict=True):
            note = asset.overview_note() or "full resolution"
            levels[band][note] = levels[band].get(note, 0) + 1
    read = "; ".join(f"{b} {', '.join(f'{n} ({k} assets)' for n, k in levels[b].items())}" for b in BANDS)
    print(f"what condormagic reads: {read}")
    with GridReader([s.to_dict() for s in src.values()], grid) as reader:
        ours = reader.read(Window(0, 0, grid.width, grid.height))["s2"]
    ds = odc_dataset(catalog, geobox, chunk, overviews)
    with dask.config.set(scheduler="threads"):
        theirs = np.stack([ds[b].values for b in BANDS], axis=1)
    print(f"inputs on the grid: condormagic {ours.shape}, odc-stac {theirs.shape}")
    if ours.shape != theirs.shape:
        return
    for b, band in enumerate(BANDS):
        differ = ours[:, b] != theirs[:, b]
        only_ours = (ours[:, b] > 0) & (theirs[:, b] == 0)
        only_theirs = (theirs[:, b] > 0) & (ours[:, b] == 0)
        print(
            f"  {band}: {differ.sum():,} of {differ.size:,} pixel-steps differ ({100 * differ.mean():.3f} %); "
            f"valid only in condormagic's {only_ours.sum():,}, only in odc-stac's {only_theirs.sum():,}"
        )
    # Where do they differ: along the granules' edges (the footprint), or inside?
    edge = np.zeros(ours.shape[-2:], dtype=bool)
    valid = ours[:, 0] > 0
    for t in range(valid.shape[0]):
        v = valid[t]
        inner = v.copy()
        inner[1:] &= v[:-1]
        inner[:-1] &= v[1:]
        inner[:, 1:] &= v[:, :-1]
        inner[:, :-1] &= v[:, 1:]
        edge |= v & ~inner
    differ = (ours != theirs).any(axis=(0, 1))
    print(f"  pixels with any difference: {differ.sum():,}, of which on a granule's edge {np.sum(differ & edge):,}")
    # Per granule: odc-stac pastes a zone-32 overview onto the grid (same pixels) and warps the
    # zone-33 granule chunk by chunk (odc-geo's own transform, not GDAL's exact one per grid).
    zone = np.full(ours.shape[-2:], "", dtype=object)
    for item in src["s2"].items:
        r0, c0, r1, c1 = item.window
        zone[r0:r1, c0:c1] = np.where(zone[r0:r1, c0:c1] == "", item.id.split("_")[1], zone[r0:r1, c0:c1])
    for b, band in enumerate(BANDS):
        first = (ours[0, b] > 0) | (theirs[0, b] > 0)
        same = ours[0, b] == theirs[0, b]
        parts = ", ".join(f"{z} {100 * same[first & (zone == z)].mean():.1f} %" for z in sorted({*zone[first]} - {""}))
        print(f"  {band}, first date: the two ways agree on {100 * same[first].mean():.1f} % of the pixels ({parts})")


def read(path: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="pixels of 10 m a side of each granule (default 2048)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the two ways (default 3)")
    parser.add_argument("--tile", type=int, default=1024, help="condormagic's tile size and odc-stac's chunk")
    parser.add_argument("--cpus", type=int, default=1, help="request_cpus of each condormagic job (default 1)")
    parser.add_argument("--data", default=None, help="folder of the catalog (made once, then kept)")
    parser.add_argument("--tiles-per-job", type=int, default=None, help="condormagic's (default: its own default)")
    parser.add_argument(
        "--full-resolution",
        action="store_true",
        help="both read every asset at full resolution (condormagic overviews=False, odc-stac use_overviews=False)",
    )
    args = parser.parse_args(argv)
    overviews = not args.full_resolution

    data = Path(args.data or Path(tempfile.gettempdir()) / f"condormagic-bench-s2-{args.size}")
    t0 = time.perf_counter()
    catalog = make(data, size=args.size)
    print(f"catalog: {catalog} ({time.perf_counter() - t0:.1f} s to make or check)")
    cores = len(os.sched_getaffinity(0))
    print(f"cores: {cores}, Python {sys.version.split()[0]}, GDAL {rasterio.__gdal_version__}")
    import odc.stac  # noqa: F401 - imports once per kernel, before any way is timed

    import condormagic  # noqa: F401

    geobox, grid = geobox_of(catalog)
    print(f"grid: {grid.width} x {grid.height} px of {RES} m in {CRS}; tile and chunk {args.tile}")
    if overviews:
        print(
            "both read overviews where the grid is coarser than an asset: condormagic overviews=True (gdalwarp's "
            "-ovr AUTO, chosen once per asset and grid), odc-stac use_overviews=True (chosen per chunk)"
        )
    else:
        print("both read every asset at full resolution: condormagic overviews=False, odc-stac use_overviews=False")
    ways = {
        "condormagic": lambda w: run_condormagic(catalog, w, args.tile, args.cpus, overviews, args.tiles_per_job),
        "odc-stac": lambda w: (run_odc(catalog, w, geobox, args.tile, cores, overviews), None),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    root = Path(tempfile.mkdtemp(prefix="condormagic-bench-composite-"))
    kept: dict[str, np.ndarray] = {}
    try:
        for round_ in range(args.repeat):
            work = root / f"round{round_}"
            work.mkdir()
            outputs = {}
            for name in order:
                t = time.perf_counter()
                outputs[name], extra = ways[name](work)
                seconds = time.perf_counter() - t
                times[name].append(seconds)
                detail = ""
                if extra:
                    detail = (
                        f"  (declare {extra['declare']:.2f} s, submit {extra['submit']:.2f} s, "
                        f"wait+output {extra['wait+output']:.2f} s, {extra['n_jobs']} jobs of "
                        f"{'+'.join(map(str, extra['jobs']))} tiles)"
                    )
                print(f"round {round_ + 1}: {name:<12} {seconds:6.2f} s  (load {os.getloadavg()[0]:.1f}){detail}")
            kept = {name: read(path) for name, path in outputs.items()}
            shutil.rmtree(work)
            order = order[1:] + order[:1]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    ours, theirs = kept["condormagic"], kept["odc-stac"]
    same_nan = np.isnan(ours) & np.isnan(theirs)
    differ = ~same_nan & (ours != theirs)
    print("outputs (2 bands):")
    for b, band in enumerate(("ndvi_median", "clear_count")):
        d = differ[b]
        print(f"  {band}: {d.sum():,} of {d.size:,} pixels differ ({100 * d.mean():.3f} %)")
    explain(catalog, geobox, grid, args.tile, overviews)
    print("medians:")
    for name, values in times.items():
        print(f"  {name:<12} {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    ratio = statistics.median(c / o for c, o in zip(times["condormagic"], times["odc-stac"], strict=True))
    verdict = "met" if ratio <= 1.0 else "MISSED"
    print(f"median ratio condormagic / odc-stac+dask  {ratio:.3f}x  (target <= 1.00x: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
