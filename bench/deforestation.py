"""Benchmark: the seed's deforestation function over three 8192 x 8192 rasters, three ways.

1. condormagic's local backend, end to end: ``cm.sources`` + ``cm.submit`` (graph, run
   directory, submit) + every job + ``run.output`` (the mosaic COG);
2. a plain single-process rasterio script: read the whole arrays, compute, write the COG;
3. rioxarray with dask: ``open_rasterio`` in chunks, the same function on the lazy
   arrays, computed by dask's threads, written as the COG.

All three write the same product: a Cloud-Optimized GeoTIFF with overviews, through GDAL's COG
driver with condormagic's own options (deflate, 512-pixel blocks, all cores); every round checks
that the three files are equal, full resolution and every overview, so the figures cannot come
from different work. Each way is repeated ``--repeat`` times, interleaved (the order rotates
every round). It prints every time with the machine's load, condormagic's time until every tile
is written (the results readable through ``output.vrt``) apart from its time to the COG, the
median of the per-round ratios, the worker's cold start (the HTCondor path: a new Python) and
the local backend's per-job overhead. Targets of issue 15 on a 2-core machine: condormagic at
most 1.0x rioxarray+dask and at most 0.6x the plain script at 8192, at most 0.85x
rioxarray+dask at 16384; per-job overhead under 0.03 s; worker cold start at most 0.25 s.

Run ``python bench/deforestation.py [--size 8192] [--repeat 3]``. The inputs are made by
``examples/make_deforestation_data.py`` once, into ``--data`` (default: a folder in the
temporary directory), and kept for the next time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

from make_deforestation_data import make  # noqa: E402

COLD_START_RUNS = 7


def deforestation(img):
    """The seed's function (its print left out: the three ways would print differently)."""
    polygon, dem1, dem2 = img[0], img[1], img[2]
    difference = dem2 - dem1
    deforested = np.logical_and(polygon > 0, difference > 10)
    return deforested.astype(np.uint8)


# -- the three ways ----------------------------------------------------------------------------
def run_condormagic(paths: dict, work: Path, tile: int, cpus: int, tiles_per_job: int | None) -> tuple[str, dict]:
    """condormagic's local backend end to end; returns the COG's path and a breakdown."""
    import condormagic as cm

    os.environ["CONDORMAGIC_RUNS_DIR"] = str(work / "runs")
    t0 = time.perf_counter()
    src = cm.sources(polygon=paths["polygon"], dem1=paths["dem_2015"], dem2=paths["dem_2000"], grid="dem2", tile=tile)
    run = cm.submit(deforestation, src, cpus=cpus, mem="2GB", name="BENCH", tiles_per_job=tiles_per_job, force=True)
    t1 = time.perf_counter()
    while not run.settled:
        time.sleep(0.02)
    t2 = time.perf_counter()
    output = run.output
    t3 = time.perf_counter()
    if output is None:
        raise SystemExit(f"condormagic run {run.path} did not complete: {run.status()}")
    _wait_for_runner(run.path)
    timing = {"read": 0.0, "compute": 0.0, "write": 0.0, "jobs": 0.0}
    for record in (run.path / "metrics").glob("*.json"):
        data = json.loads(record.read_text())
        for key in ("read", "compute", "write"):
            timing[key] += data["timing"][key]
        timing["jobs"] += data["seconds"]
    breakdown = {"submit": t1 - t0, "tiles": t2 - t0, "cog": t3 - t2, "n_jobs": run.n_jobs, "in_jobs": timing}
    return output, breakdown


def _wait_for_runner(run_dir: Path) -> None:
    """Block until the run's detached runner has exited (it holds ``runner.lock`` while alive)."""
    from condormagic.rundir.layout import DirLock

    with DirLock(run_dir / "runner.lock"):
        pass


def write_cog(path: str, array: np.ndarray, profile: dict) -> None:
    """The product every way makes: GDAL's COG driver, with condormagic's options for this dtype."""
    from condormagic.rundir.results import COG_OPTIONS

    options = dict(COG_OPTIONS, overview_resampling="nearest")
    options.pop("driver")
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=array.dtype,
        crs=profile["crs"],
        transform=profile["transform"],
        **options,
    ) as dst:
        dst.write(array, 1)


def run_plain(paths: dict, work: Path) -> str:
    """What a user writes without condormagic: whole arrays in one process."""
    out_path = str(work / "plain.tif")
    with (
        rasterio.open(paths["polygon"]) as polygon,
        rasterio.open(paths["dem_2015"]) as dem1,
        rasterio.open(paths["dem_2000"]) as dem2,
    ):
        profile = dem2.profile
        result = deforestation([polygon.read(1), dem1.read(1), dem2.read(1)])
    write_cog(out_path, result, profile)
    return out_path


def run_rioxarray(paths: dict, work: Path, chunk: int) -> str:
    """rioxarray + dask: lazy chunked arrays, the same function computed by dask's threads, the COG written."""
    import rioxarray

    out_path = str(work / "rioxarray.tif")
    chunks = {"band": 1, "y": chunk, "x": chunk}
    arrays = [
        rioxarray.open_rasterio(paths[name], chunks=chunks, lock=False).squeeze("band", drop=True)
        for name in ("polygon", "dem_2015", "dem_2000")  # img[1] = dem1 (2015), img[2] = dem2 (2000)
    ]
    result = deforestation(arrays)
    # The COG driver writes a whole raster at once (its overviews need all of it): computed in
    # parallel by dask, then written as the other ways write it.
    write_cog(out_path, result.compute().values, {"crs": result.rio.crs, "transform": result.rio.transform()})
    for a in arrays:
        a.close()
    return out_path


# -- start-up and per-job overhead -------------------------------------------------------------
def _median_seconds(argv: list[str], runs: int, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold_start(paths: dict, work: Path) -> dict:
    """The interpreter alone, the worker's imports, and a whole 1-tile job as its own process."""
    import condormagic as cm
    from condormagic.backends.description import THREAD_VARIABLES

    python = sys.executable
    env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, "1"))  # as a 1-cpu job has them
    bare = _median_seconds([python, "-c", "pass"], COLD_START_RUNS, env)
    imports = _median_seconds([python, "-c", "import condormagic.worker"], COLD_START_RUNS, env)

    # A run of one job of one 512 x 512 tile, on a corner of the bench's own inputs.
    small = work / "small"
    small.mkdir(parents=True, exist_ok=True)
    corner = {}
    for name, path in paths.items():
        corner[name] = str(small / f"{name}.tif")
        with rasterio.open(path) as ds:
            window = Window(0, 0, 512, 512)
            profile = dict(ds.profile, width=512, height=512, transform=ds.window_transform(window))
            with rasterio.open(corner[name], "w", **profile) as dst:
                dst.write(ds.read(window=window))
    os.environ["CONDORMAGIC_RUNS_DIR"] = str(small / "runs")
    src = cm.sources(polygon=corner["polygon"], dem1=corner["dem_2015"], dem2=corner["dem_2000"], grid="dem2", tile=512)
    run = cm.submit(deforestation, src, cpus=1, mem="2GB", name="COLD", force=True)
    run.wait()
    _wait_for_runner(run.path)
    walls, inside = [], []
    for i in range(COLD_START_RUNS):
        out = small / f"out{i}"
        t0 = time.perf_counter()
        subprocess.run(
            [python, "-m", "condormagic.worker", str(run.path), "0", str(out)],
            check=True,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        walls.append(time.perf_counter() - t0)
        inside.append(json.loads((out / "metrics" / "000000.json").read_text())["seconds"])
    job = statistics.median(walls)
    return {
        "python": bare,
        "import": imports,
        "job": job,
        "overhead": statistics.median(w - s for w, s in zip(walls, inside, strict=True)),
    }


def local_overhead(paths: dict, work: Path, n_jobs: int = 48) -> dict:
    """The local backend's cost per job: many one-tile jobs of a 256-pixel corner, from submit to done,
    against the time the workers spent on their tiles (``cores x wall - time on tiles``, per job)."""
    import condormagic as cm

    small = work / "overhead"
    small.mkdir(parents=True, exist_ok=True)
    os.environ["CONDORMAGIC_RUNS_DIR"] = str(small / "runs")
    side = 256 * int(n_jobs**0.5 + 1)
    corner = {}
    for name, path in paths.items():
        corner[name] = str(small / f"{name}.tif")
        with rasterio.open(path) as ds:
            window = Window(0, 0, side, side)
            profile = dict(ds.profile, width=side, height=side, transform=ds.window_transform(window))
            with rasterio.open(corner[name], "w", **profile) as dst:
                dst.write(ds.read(window=window))
    src = cm.sources(polygon=corner["polygon"], dem1=corner["dem_2015"], dem2=corner["dem_2000"], grid="dem2", tile=256)
    t0, submitted = time.perf_counter(), time.time()
    run = cm.submit(deforestation, src, cpus=1, mem="1GB", name="OVERHEAD", tiles_per_job=1, force=True)
    while not run.settled:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    records = [json.loads(p.read_text()) for p in (run.path / "metrics").glob("*.json")]
    on_tiles = sum(r["seconds"] for r in records)
    cores = len(os.sched_getaffinity(0))
    # From the first job's start to the last one's end: what the jobs cost beyond their tiles (forking,
    # reaping, loading the function, opening the sources), without the run's one start (runner, fork server).
    span = max(r["ended"] for r in records) - min(r["began"] for r in records)
    return {
        "jobs": run.n_jobs,
        "wall": wall,
        "first": min(r["began"] for r in records) - submitted,
        "per_job": (cores * span - on_tiles) / run.n_jobs,
        "per_job_with_start": (cores * wall - on_tiles) / run.n_jobs,
    }


# -- main --------------------------------------------------------------------------------------
def read_levels(path: str) -> list[np.ndarray]:
    """The COG at full resolution and at each of its overview levels."""
    with rasterio.open(path) as ds:
        levels = [ds.read(1)]
        n = len(ds.overviews(1))
    for level in range(n):
        with rasterio.open(path, overview_level=level) as ds:
            levels.append(ds.read(1))
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="pixels a side of the inputs (default 8192)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the three ways (default 3)")
    parser.add_argument("--tile", type=int, default=1024, help="condormagic's tile size (default 1024)")
    parser.add_argument("--cpus", type=int, default=1, help="request_cpus of each condormagic job (default 1)")
    parser.add_argument("--tiles-per-job", type=int, default=None, help="default: condormagic's own default")
    parser.add_argument("--chunk", type=int, default=1024, help="rioxarray's chunk size (default 1024)")
    parser.add_argument("--data", default=None, help="folder of the inputs (made once, then kept)")
    args = parser.parse_args(argv)

    data = Path(args.data or Path(tempfile.gettempdir()) / f"condormagic-bench-{args.size}")
    t0 = time.perf_counter()
    paths = make(data, size=args.size)
    print(f"inputs: {args.size} x {args.size} in {data} ({time.perf_counter() - t0:.1f} s to make or check)")
    for name, path in paths.items():
        with rasterio.open(path) as ds:
            print(f"  {name}: {ds.dtypes[0]}, {ds.profile.get('compress')}, {os.path.getsize(path) / 1e6:.0f} MB")
    print(f"cores: {len(os.sched_getaffinity(0))}, Python {sys.version.split()[0]}, GDAL {rasterio.__gdal_version__}")

    # Imports happen once per kernel, before any of the ways: keep them out of the first round.
    import rioxarray  # noqa: F401

    import condormagic  # noqa: F401

    ways = {
        "condormagic": lambda w: run_condormagic(paths, w, args.tile, args.cpus, args.tiles_per_job),
        "plain": lambda w: (run_plain(paths, w), None),
        "rioxarray": lambda w: (run_rioxarray(paths, w, args.chunk), None),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    root = Path(tempfile.mkdtemp(prefix="condormagic-bench-"))
    try:
        for round_ in range(args.repeat):
            outputs = {}
            work = root / f"round{round_}"
            work.mkdir()
            for name in order:
                t = time.perf_counter()
                outputs[name], extra = ways[name](work)
                seconds = time.perf_counter() - t
                times[name].append(seconds)
                detail = ""
                if extra:
                    j = extra["in_jobs"]
                    detail = (
                        f"  (submit {extra['submit']:.2f} s, every tile written at {extra['tiles']:.2f} s, "
                        f"the COG {extra['cog']:.2f} s more; "
                        f"{extra['n_jobs']} jobs, inside them: read {j['read']:.2f}, compute {j['compute']:.2f}, "
                        f"write {j['write']:.2f}, total {j['jobs']:.2f} s)"
                    )
                load = os.getloadavg()[0]
                print(f"round {round_ + 1}: {name:<12} {seconds:6.2f} s  (load {load:.1f}){detail}", flush=True)
            levels = {name: read_levels(path) for name, path in outputs.items()}
            reference = levels["plain"]
            for name, arrays in levels.items():
                if len(arrays) != len(reference) or not all(
                    np.array_equal(a, b) for a, b in zip(arrays, reference, strict=True)
                ):
                    print(f"MISMATCH: the {name} COG differs from the plain script's", file=sys.stderr)
                    return 1
            share = 100.0 * reference[0].mean()
            print(
                f"round {round_ + 1}: the three COGs are equal, with {len(reference) - 1} overviews "
                f"({share:.2f} % of the pixels flagged)",
                flush=True,
            )
            shutil.rmtree(work)
            order = order[1:] + order[:1]
        print(f"cold start (median of {COLD_START_RUNS}):", flush=True)
        cold = cold_start(paths, root)
        local = local_overhead(paths, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"  python -c pass                              {cold['python']:.3f} s")
    print(f"  python -c 'import condormagic.worker'       {cold['import']:.3f} s")
    print(f"  python -m condormagic.worker (1-tile job)   {cold['job']:.3f} s")
    print(f"  per-job overhead of that new Python (process wall - time on tiles) {cold['overhead']:.3f} s")
    print(
        f"local backend, {local['jobs']} one-tile jobs: {local['wall']:.2f} s from submit to done; per-job overhead "
        f"(cores x time from the first job's start to the last's end - time on tiles, per job) "
        f"{local['per_job']:.3f} s (target < 0.03 s: {_verdict(local['per_job'] < 0.03)}); with the run's start "
        f"(runner and fork server) shared among the jobs {local['per_job_with_start']:.3f} s; the first job began "
        f"{local['first']:.2f} s after cm.submit"
    )
    print("medians:")
    for name, values in times.items():
        print(f"  {name:<12} {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    cm_times = times["condormagic"]
    vs_plain = statistics.median(c / p for c, p in zip(cm_times, times["plain"], strict=True))
    vs_rx = statistics.median(c / r for c, r in zip(cm_times, times["rioxarray"], strict=True))
    rx_target = 0.85 if args.size >= 16384 else 1.0
    print(f"median ratio condormagic / plain      {vs_plain:.3f}x  (target <= 0.60x: {_verdict(vs_plain <= 0.6)})")
    print(
        f"median ratio condormagic / rioxarray  {vs_rx:.3f}x  "
        f"(target <= {rx_target:.2f}x: {_verdict(vs_rx <= rx_target)})"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
