"""The job's entry point on the execute node: ``python -m condormagic.worker RUN_DIR JOB [OUT_DIR]``.

Reads the job's tiles from the run directory's manifest, calls the user's function on each
(``request_cpus`` threads), checks what it returns (:mod:`condormagic.tiling.contract`), and
writes one GeoTIFF per tile and the job's metrics record, each atomically. What the function
prints goes to stdout, each line marked with its tile. On failure the worker prints the
user's own traceback and a last line starting with ``condormagic:`` that names the cause, and
exits with a code that says what kind of failure it was (:mod:`condormagic.rundir.exitcodes`).

It imports the tiling and run-directory layers only: no IPython, no widgets, no bindings, not
the API, so that a job starts in a fraction of a second.
"""

from __future__ import annotations

import functools
import io
import linecache
import os
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

from .rundir import function as function_file
from .rundir.exitcodes import (
    EXIT_FUNCTION,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT,
    EXIT_READ,
    EXIT_SETUP,
    EXIT_SYSEXIT,
    EXIT_WRITE,
)
from .rundir.layout import RunDir, UntrustedRunDir, check_owned, write_json_atomic
from .rundir.manifest import Manifest, ManifestError
from .tiling.contract import ContractError, check_result
from .tiling.grid import Grid, Tile
from .tiling.reader import GridReader

TILE_PROFILE = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256}
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


class TileOutput(io.TextIOBase):
    """``sys.stdout`` while tiles are computed: what a tile prints is kept per thread and written
    whole when the tile ends, each line marked with the tile, so lines of tiles computed at once
    never run together."""

    def __init__(self, stream):
        self.stream = stream
        self.local = threading.local()
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        buffer = getattr(self.local, "buffer", None)
        if buffer is None:
            with self.lock:
                self.stream.write(text)
        else:
            buffer.append(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def begin(self) -> None:
        self.local.buffer = []

    def end(self, tile: Tile) -> None:
        text, self.local.buffer = "".join(self.local.buffer or ()), None
        if text:
            lines = text.splitlines()
            with self.lock:
                self.stream.write("".join(f"[tile {tile.index}] {line}\n" for line in lines))
                self.stream.flush()


def open_run(run_dir: str) -> tuple[Manifest, object]:
    """The manifest and the function of a run directory this user owns (and nobody else can write)."""
    try:
        check_owned(run_dir)
        layout = RunDir(run_dir)
        manifest = Manifest.load(layout.manifest)
        dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            func = function_file.load("function.pkl", dir_fd=dir_fd, shown=str(layout.function))
        finally:
            os.close(dir_fd)
    except (UntrustedRunDir, ManifestError) as exc:
        raise JobFailure(f"{str(exc).rstrip('.')}: refusing to load the function from it", EXIT_SETUP) from None
    except (OSError, EOFError, ImportError, AttributeError) as exc:
        raise JobFailure(f"cannot load the function ({type(exc).__name__}: {exc})", EXIT_SETUP) from None
    return manifest, func


def run_job(run_dir: str, job: int, out_dir: str | None = None) -> dict:
    """Compute every tile of ``job``; return its metrics record."""
    began = time.time()
    manifest, func = open_run(run_dir)
    out = RunDir(out_dir or run_dir)
    _show_source_in_tracebacks(func, manifest)
    grid = manifest.grid
    tiles = manifest.job_tiles(job)
    # As many threads as the job asked CPUs for, but no more than it has tiles or the machine cores.
    threads = max(1, min(int(manifest.options.get("cpus", 1)), len(tiles), os.cpu_count() or 1))
    try:
        for folder in (out.tiles, out.metrics):
            folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise JobFailure(f"cannot write tile {tiles[0].index if tiles else 0}: {exc}", EXIT_WRITE) from None

    local = threading.local()
    readers: list[GridReader] = []
    lock = threading.Lock()
    output = TileOutput(sys.stdout)

    def reader() -> GridReader:
        if not hasattr(local, "reader"):
            local.reader = GridReader(manifest.sources, grid)
            with lock:
                readers.append(local.reader)
        return local.reader

    # Once a tile has failed, the job has failed: the other threads start no new tile.
    failed = threading.Event()

    def one(tile: Tile) -> tuple[dict, dict, dict | None]:
        if failed.is_set():
            return {}, {}, None
        try:
            return compute(tile)
        except JobFailure:
            failed.set()
            raise

    def compute(tile: Tile) -> tuple[dict, dict, dict | None]:
        t0 = time.perf_counter()
        img = _read(reader(), tile, manifest.sources)
        t1 = time.perf_counter()
        output.begin()
        try:
            result = func(img)
        except BaseException as exc:  # noqa: BLE001 - every way out of the function is reported
            output.end(tile)
            raise _function_failure(exc, tile, failed, lock) from None
        output.end(tile)
        t2 = time.perf_counter()
        try:
            checked = check_result(result, tile)
        except ContractError as exc:
            raise JobFailure(str(exc), EXIT_OUTPUT) from None
        written = None
        if checked.array is not None:
            _write_tile(out, tile, checked.array, grid, checked.names)
            written = {"dtype": str(checked.array.dtype), "bands": int(checked.array.shape[0]), "names": checked.names}
        t3 = time.perf_counter()
        return checked.metrics, {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2}, written

    started = time.perf_counter()
    totals: dict[str, float] = {}
    timing_totals = {"read": 0.0, "compute": 0.0, "write": 0.0}
    written: dict[str, dict] = {}
    sys.stdout = output

    def add(tile: Tile, metrics: dict, timing: dict, info: dict | None) -> None:
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0) + v
        for k, v in timing.items():
            timing_totals[k] += v
        if info is not None:
            written[str(tile.index)] = info

    try:
        if threads == 1:  # one tile at a time: no pool to start, and the first failure stops the job
            for tile in tiles:
                add(tile, *one(tile))
        else:
            with ThreadPoolExecutor(threads) as pool:
                futures = {pool.submit(one, t): t for t in tiles}
                _, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for f in pending:
                    f.cancel()
                for f, tile in futures.items():
                    if not f.cancelled():
                        add(tile, *f.result())
    finally:
        sys.stdout = output.stream
        for r in readers:
            r.close()
    record = {
        "job": job,
        "tiles": [t.index for t in tiles],
        "written": written,
        "metrics": totals,
        "seconds": time.perf_counter() - started,  # on the tiles
        "began": began,  # when the job's process began its work, and when it ended it (epoch seconds)
        "ended": time.time(),
        "timing": timing_totals,
    }
    try:
        write_json_atomic(out.job_metrics(job), record)
    except OSError as exc:
        raise JobFailure(f"cannot write the job's metrics record: {exc}", EXIT_WRITE) from None
    return record


def _function_failure(exc: BaseException, tile: Tile, failed: threading.Event, lock: threading.Lock) -> JobFailure:
    """The job's failure when the function did not return: its own traceback goes to stderr once."""
    if isinstance(exc, SystemExit):
        return JobFailure(
            f"the function called sys.exit({exc.code!r}) on tile {tile.index} ({tile.where()})", EXIT_SYSEXIT
        )
    if isinstance(exc, KeyboardInterrupt):
        return JobFailure(
            f"the function raised KeyboardInterrupt on tile {tile.index} ({tile.where()})", EXIT_INTERRUPTED
        )
    with lock:
        if not failed.is_set():
            failed.set()
            # The user's traceback, without the worker's own frame.
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next, file=sys.stderr)
    return JobFailure(
        f"the function raised {type(exc).__name__}: {exc} on tile {tile.index} ({tile.where()})", EXIT_FUNCTION
    )


def _show_source_in_tracebacks(func, manifest: Manifest) -> None:
    """Let tracebacks quote the user's lines: a function pickled by value has no file to read."""
    code = getattr(func, "__code__", None)
    if code is None or os.path.exists(code.co_filename) or not manifest.code:
        return
    lines = ["\n"] * (manifest.code_line - 1) + manifest.code.splitlines(keepends=True)
    linecache.cache[code.co_filename] = (len("".join(lines)), None, lines, code.co_filename)


def _read(reader: GridReader, tile: Tile, sources: list[dict]):
    try:
        return reader.read(tile.read_window)
    except RasterioIOError as exc:
        name = _failing_source(reader, tile) or "a source"
        path = next((s["path"] for s in sources if s["name"] == name), "")
        reason = str(exc).splitlines()[0] if str(exc) else "read error"
        raise JobFailure(
            f"cannot read source {name!r} ({path}) at tile {tile.index} ({tile.where()}): {reason}", EXIT_READ
        ) from None


def _failing_source(reader: GridReader, tile: Tile) -> str | None:
    for name, r in zip(reader.names, reader.readers, strict=True):
        try:
            r.read(tile.read_window)
        except RasterioIOError:
            return name
    return None


def _write_tile(out: RunDir, tile: Tile, array: np.ndarray, grid: Grid, names: list[str] | None) -> None:
    path = str(out.tile(tile.index))
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
    try:
        with warnings.catch_warnings():
            # A grid without a CRS (or with the identity transform) is what the user declared.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", crs=grid.rasterio_crs(), transform=transform, nodata=nodata, **profile) as dst:
                dst.write(array)
                if names:
                    dst.descriptions = tuple(names)
        os.replace(tmp, path)
    except (OSError, RasterioIOError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise JobFailure(f"cannot write tile {tile.index} to {path}: {exc}", EXIT_WRITE) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or not argv[1].isdigit():
        print("usage: python -m condormagic.worker RUN_DIR JOB [OUT_DIR]", file=sys.stderr)
        return EXIT_SETUP
    run_dir, job = argv[0], int(argv[1])
    out_dir = argv[2] if len(argv) == 3 else None
    try:
        if out_dir is not None:
            # HTCondor transfers these back even when the job fails early; missing, they would hold it.
            for sub in ("tiles", "metrics"):
                try:
                    os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
                except OSError as exc:
                    raise JobFailure(f"cannot write the job's tiles to {out_dir}: {exc}", EXIT_WRITE) from None
        record = run_job(run_dir, job, out_dir)
    except JobFailure as failure:
        sys.stdout.flush()
        print(f"condormagic: job {job}: {failure}", file=sys.stderr)
        return failure.code
    print(f"condormagic: job {job}: {len(record['tiles'])} tiles in {record['seconds']:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
