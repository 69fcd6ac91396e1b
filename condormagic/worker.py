"""The job's entry point on the execute node: ``python -m condormagic.worker RUN_DIR JOB``.

Reads the job's tiles from the run directory's manifest, calls the user's function
on each (``request_cpus`` threads), checks what it returns, and writes one GeoTIFF
per tile and the job's metrics, each atomically. On failure it prints the user's own
traceback and a last line starting with ``condormagic:`` that names the cause, and
exits non-zero.

Imports nothing from IPython, ipywidgets or the magics, so that it starts fast.
"""

from __future__ import annotations

import functools
import json
import linecache
import math
import os
import pickle
import stat
import sys
import threading
import time
import traceback
import warnings
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import MemoryFile

from .files import write_json_atomic
from .graph.grid import Grid, Tile
from .graph.reader import GridReader

EXIT_FUNCTION, EXIT_OUTPUT, EXIT_READ, EXIT_SETUP = 1, 2, 3, 4
TILE_PROFILE = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
}
# Tiles are intermediate files, written once and read once by the mosaic: ZSTD level 1
# writes them about four times faster than deflate level 1, at the same size or smaller,
# and reads faster too. Deflate where this GDAL was built without ZSTD.
TILE_CODECS = ({"compress": "zstd", "zstd_level": 1}, {"compress": "deflate", "zlevel": 1})


@functools.cache
def tile_codec() -> dict:
    """The first of :data:`TILE_CODECS` that this GDAL writes (checked once, in memory)."""
    for codec in TILE_CODECS[:-1]:
        try:
            with warnings.catch_warnings(), MemoryFile() as mem:
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with mem.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8", **codec) as ds:
                    ds.write(np.zeros((1, 1, 1), np.uint8))
                with mem.open() as ds:
                    if ds.compression is not None and ds.compression.name.lower() == codec["compress"]:
                        return codec
        except Exception:  # any failure means: not this codec
            continue
    return TILE_CODECS[-1]


class JobFailure(Exception):
    """A failure the worker reports in one line, with an exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def check_run_dir(run_dir: str) -> None:
    """Refuse a run directory that someone else could have written a pickle into."""
    for path in (run_dir, os.path.join(run_dir, "function.pkl")):
        st = os.stat(path)
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise JobFailure(
                f"{path} is not owned by this user or is writable by others; refusing to load the function from it.",
                EXIT_SETUP,
            )


def tile_path(out_dir: str, index: int) -> str:
    return os.path.join(out_dir, "tiles", f"{index:06d}.tif")


def run_job(run_dir: str, job: int, out_dir: str | None = None) -> dict:
    """Compute every tile of ``job``; return its metrics record."""
    out_dir = out_dir or run_dir
    check_run_dir(run_dir)
    with open(os.path.join(run_dir, "manifest.json")) as fh:
        manifest = json.load(fh)
    with open(os.path.join(run_dir, "function.pkl"), "rb") as fh:
        func = pickle.load(fh)
    _show_source_in_tracebacks(func, manifest)
    grid = Grid.from_dict(manifest["grid"])
    halo = manifest["halo"]
    tiles = [Tile(i, *manifest["tiles"][i], halo) for i in manifest["jobs"][job]]
    threads = max(1, int(manifest["options"].get("cpus", 1)))
    os.makedirs(os.path.join(out_dir, "tiles"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "metrics"), exist_ok=True)

    local = threading.local()
    readers: list[GridReader] = []
    lock = threading.Lock()

    def reader() -> GridReader:
        if not hasattr(local, "reader"):
            local.reader = GridReader(manifest["sources"], grid)
            with lock:
                readers.append(local.reader)
        return local.reader

    # Once a tile has failed, the job has failed: the other threads start no new tile.
    failed = threading.Event()

    def one(tile: Tile) -> tuple[dict, dict]:
        if failed.is_set():
            return {}, {}
        try:
            return compute(tile)
        except JobFailure:
            failed.set()
            raise

    def compute(tile: Tile) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        img = _read(reader(), tile, manifest["sources"])
        t1 = time.perf_counter()
        try:
            result = func(img)
        except Exception as exc:
            with lock:
                if not failed.is_set():
                    failed.set()
                    # The user's traceback, without the worker's own frame.
                    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next, file=sys.stderr)
            raise JobFailure(
                f"the function raised {type(exc).__name__}: {exc} on tile {tile.index} ({_where(tile)})",
                EXIT_FUNCTION,
            ) from None
        t2 = time.perf_counter()
        array, metrics = split_result(result, tile)
        if array is not None:
            _write_tile(out_dir, tile, crop_result(array, tile), grid)
        t3 = time.perf_counter()
        return metrics, {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2}

    started = time.perf_counter()
    totals: dict[str, float] = {}
    timing_totals = {"read": 0.0, "compute": 0.0, "write": 0.0}
    try:
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(one, t) for t in tiles]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.cancelled():
                    continue
                metrics, timing = f.result()
                for k, v in metrics.items():
                    totals[k] = totals.get(k, 0) + v
                for k, v in timing.items():
                    timing_totals[k] += v
    finally:
        for r in readers:
            r.close()
    record = {
        "job": job,
        "tiles": [t.index for t in tiles],
        "metrics": totals,
        "seconds": time.perf_counter() - started,
        "timing": timing_totals,
    }
    write_json_atomic(os.path.join(out_dir, "metrics", f"{job:06d}.json"), record)
    return record


def _show_source_in_tracebacks(func, manifest: dict) -> None:
    """Let tracebacks quote the user's lines: a function pickled by value has no file to read."""
    code = getattr(func, "__code__", None)
    if code is None or os.path.exists(code.co_filename) or not manifest.get("code"):
        return
    lines = ["\n"] * (manifest.get("code_line", 1) - 1) + manifest["code"].splitlines(keepends=True)
    linecache.cache[code.co_filename] = (len("".join(lines)), None, lines, code.co_filename)


def _where(tile: Tile) -> str:
    return f"rows {tile.row_off}:{tile.row_off + tile.height}, cols {tile.col_off}:{tile.col_off + tile.width}"


def _read(reader: GridReader, tile: Tile, sources: list[dict]):
    try:
        return reader.read(tile.read_window)
    except RasterioIOError as exc:
        name = _failing_source(reader, tile) or "a source"
        path = next((s["path"] for s in sources if s["name"] == name), "")
        reason = str(exc).splitlines()[0] if str(exc) else "read error"
        raise JobFailure(
            f"cannot read source {name!r} ({path}) at tile {tile.index} ({_where(tile)}): {reason}", EXIT_READ
        ) from None


def _failing_source(reader: GridReader, tile: Tile) -> str | None:
    for name, r in zip(reader.names, reader.readers, strict=True):
        try:
            r.read(tile.read_window)
        except RasterioIOError:
            return name
    return None


def split_result(result, tile: Tile) -> tuple[np.ndarray | None, dict]:
    """Separate the array and the metrics of what the function returned, and check both."""
    array, metrics = None, {}
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        array, metrics = result
    elif isinstance(result, dict):
        metrics = result
    elif result is not None:
        array = result
    if array is not None and not isinstance(array, np.ndarray):
        raise JobFailure(
            f"the function returned {type(array).__name__} for tile {tile.index}; return a NumPy array, "
            "(array, metrics), a metrics dict or None",
            EXIT_OUTPUT,
        )
    for key, value in metrics.items():
        ok = (
            isinstance(key, str)
            and isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool)
        )
        if not ok or not math.isfinite(float(value)):
            raise JobFailure(
                f"the metrics returned for tile {tile.index} must map names to finite numbers; "
                f"{key!r}: {value!r} is not",
                EXIT_OUTPUT,
            )
    metrics = {k: (int(v) if isinstance(v, (int, np.integer)) else float(v)) for k, v in metrics.items()}
    return array, metrics


def crop_result(array: np.ndarray, tile: Tile) -> np.ndarray:
    """Check an array the function returned for ``tile`` and crop its halo; 3-D (bands, rows, cols)."""
    h = tile.halo
    expected = (tile.height + 2 * h, tile.width + 2 * h)
    if array.ndim not in (2, 3) or array.shape[-2:] != expected:
        raise JobFailure(
            f"the function returned an array of shape {array.shape} for tile {tile.index}, but the tile's arrays are "
            f"{expected[0]} x {expected[1]} pixels: return (rows, cols) or (bands, rows, cols) of that size",
            EXIT_OUTPUT,
        )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "uif" or array.dtype == np.float16:
        raise JobFailure(
            f"the function returned an array of dtype {array.dtype} for tile {tile.index}; GeoTIFF needs an integer "
            "or float32/float64 array",
            EXIT_OUTPUT,
        )
    if h:
        array = array[..., h : h + tile.height, h : h + tile.width]
    return array if array.ndim == 3 else array[np.newaxis]


def _write_tile(out_dir: str, tile: Tile, array: np.ndarray, grid: Grid) -> None:
    path = tile_path(out_dir, tile.index)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}.tif"
    transform = grid.transform @ Affine.translation(tile.col_off, tile.row_off)
    profile = dict(
        TILE_PROFILE, **tile_codec(), count=array.shape[0], height=tile.height, width=tile.width, dtype=array.dtype
    )
    if tile.width < 256 or tile.height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    nodata = float("nan") if array.dtype.kind == "f" else None
    with rasterio.open(tmp, "w", crs=grid.rasterio_crs(), transform=transform, nodata=nodata, **profile) as dst:
        dst.write(array)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print("usage: python -m condormagic.worker RUN_DIR JOB [OUT_DIR]", file=sys.stderr)
        return EXIT_SETUP
    run_dir, job = argv[0], int(argv[1])
    out_dir = argv[2] if len(argv) == 3 else None
    if out_dir is not None:
        # HTCondor transfers these back even when the job fails early; missing, they would hold it.
        for sub in ("tiles", "metrics"):
            os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    try:
        record = run_job(run_dir, job, out_dir)
    except JobFailure as failure:
        sys.stdout.flush()
        print(f"condormagic: job {job}: {failure}", file=sys.stderr)
        return failure.code
    print(f"condormagic: job {job}: {len(record['tiles'])} tiles in {record['seconds']:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
