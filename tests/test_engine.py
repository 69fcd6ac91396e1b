"""The engine end to end: sources on one grid, tiles, the local backend's jobs, the mosaic.

Every run here goes through the real thing: GeoTIFFs written with rasterio (or the
rasterio project's CC0 test rasters in tests/data), ``cm.submit`` on the local backend
(a detached runner starting one worker process per job), and the mosaic read back with
rasterio. Each mosaic is compared with the same computation done on whole arrays.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import cloudpickle
import htcondor2
import numpy as np
import pytest
import rasterio
import scipy.ndimage
from affine import Affine
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points
from reference import hand_warped

import condormagic as cm

pytestmark = pytest.mark.usefixtures("runs_dir")
# The functions below are defined in this module, which the workers cannot import: send them
# by value, as cloudpickle sends a notebook's functions.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

WAIT = 90  # seconds a run may take before a test gives up on it
HEIGHT, WIDTH = 700, 1000  # odd sizes: tile 256 leaves 232-column and 188-row edge tiles


def read_mosaic(run: cm.Run):
    """The run's COG as (array of bands, dataset profile)."""
    assert run.output is not None, f"run has no output: {run.status()}"
    with rasterio.open(run.output) as ds:
        return ds.read(), ds.profile


def finished(run: cm.Run) -> cm.Run:
    run.wait(timeout=WAIT, poll=0.2)
    status = run.status()
    assert status["completed"] == run.n_jobs, (status, [(j.job, j.reason) for j in run.jobs() if j.reason])
    return run


# -- aligned sources --------------------------------------------------------------------


@pytest.fixture(scope="module")
def aligned(tmp_path_factory, write_raster):
    """polygon (uint8), dem1 and dem2 (float32) on one 1000 x 700 grid."""
    folder = tmp_path_factory.mktemp("aligned")
    rng = np.random.default_rng(7)
    polygon = scipy.ndimage.gaussian_filter(rng.random((HEIGHT, WIDTH)), 8) > 0.5
    polygon = polygon.astype(np.uint8) * rng.integers(1, 5, (HEIGHT, WIDTH), dtype=np.uint8)
    dem1 = rng.normal(300, 40, (HEIGHT, WIDTH)).astype(np.float32)
    dem2 = (dem1 + rng.normal(5, 12, (HEIGHT, WIDTH))).astype(np.float32)
    arrays = {"polygon": polygon, "dem1": dem1, "dem2": dem2}
    paths = {name: write_raster(folder / f"{name}.tif", a) for name, a in arrays.items()}
    return paths, arrays


def deforestation(img):
    polygon, dem1, dem2 = img[0], img["dem1"], img[2]
    out = np.logical_and(polygon > 0, (dem2 - dem1) > 10)
    rows, cols = polygon.shape
    return out.astype(np.uint8), {
        "deforested": int(out.sum()),
        "inside": int((polygon > 0).sum()),
        f"tile_{rows}x{cols}": 1,
    }


def test_aligned_sources_mosaic_equals_whole_array(aligned):
    paths, a = aligned
    src = cm.sources(polygon=paths["polygon"], dem1=paths["dem1"], dem2=paths["dem2"], grid="dem2", tile=256)
    run = finished(cm.submit(deforestation, src, cpus=1, mem="500MB", name="DEFORESTATION"))

    expected = np.logical_and(a["polygon"] > 0, (a["dem2"] - a["dem1"]) > 10).astype(np.uint8)
    mosaic, profile = read_mosaic(run)
    assert mosaic.shape == (1, HEIGHT, WIDTH)
    assert mosaic.dtype == np.uint8
    np.testing.assert_array_equal(mosaic[0], expected)
    with rasterio.open(paths["dem2"]) as grid:
        assert profile["crs"] == grid.crs
        assert profile["transform"] == grid.transform

    metrics = run.metrics
    assert metrics["deforested"] == int(expected.sum()) > 0
    assert metrics["inside"] == int((a["polygon"] > 0).sum())
    # 1000 x 700 in tiles of 256: columns 256, 256, 256, 232; rows 256, 256, 188.
    shapes = {k: v for k, v in metrics.items() if k.startswith("tile_")}
    assert shapes == {"tile_256x256": 6, "tile_256x232": 2, "tile_188x256": 3, "tile_188x232": 1}
    assert len(run.manifest.tiling) == 12
    assert sorted(t for job in run.manifest.jobs for t in job) == list(range(12))


def test_offset_source_is_read_with_nodata_outside(tmp_path, write_raster):
    """A source on the grid's pixels but with another extent: shifted, nodata outside it."""
    rng = np.random.default_rng(3)
    grid = rng.normal(100, 10, (300, 410)).astype(np.float32)
    # 250 x 400 pixels starting 37 rows down and 53 columns right of the grid's corner:
    # it covers the grid only in part and reaches past its right edge.
    other = rng.normal(100, 10, (250, 400)).astype(np.float32)
    write_raster(tmp_path / "grid.tif", grid)
    write_raster(
        tmp_path / "other.tif",
        other,
        nodata=-9999.0,
        transform=from_origin(500000 + 53 * 30, 5000000 - 37 * 30, 30, 30),
    )

    def difference(img):
        return img["base"] - img["other"]

    src = cm.sources(base=tmp_path / "grid.tif", other=tmp_path / "other.tif", tile=128)
    assert [src[n].offset for n in src] == [(0, 0), (-37, -53)]
    run = finished(cm.submit(difference, src, mem="500MB", tiles_per_job=2))

    on_grid = np.full(grid.shape, -9999.0, np.float32)
    on_grid[37 : 37 + 250, 53:] = other[:, : 410 - 53]
    mosaic, _ = read_mosaic(run)
    np.testing.assert_array_equal(mosaic[0], grid - on_grid)


# -- a source in another CRS --------------------------------------------------------------


def nearest_by_hand(src_path, grid_path) -> np.ndarray:
    """Nearest-neighbour warp of band 1 of ``src_path`` onto ``grid_path``'s grid, pixel by pixel.

    Each grid pixel's centre is projected into the source's CRS with PROJ and takes the
    value of the source pixel it falls in (0, the nodata, outside the source).
    """
    with rasterio.open(grid_path) as g, rasterio.open(src_path) as s:
        rows, cols = np.mgrid[0 : g.height, 0 : g.width]
        xs, ys = g.transform @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
        sx, sy = transform_points(g.crs, s.crs, xs, ys)
        c, r = ~s.transform @ (np.asarray(sx), np.asarray(sy))
        c, r = np.floor(c).astype(int), np.floor(r).astype(int)
        inside = (c >= 0) & (c < s.width) & (r >= 0) & (r < s.height)
        values = s.read(1)
        out = np.zeros(g.height * g.width, values.dtype)
        out[inside] = values[r[inside], c[inside]]
        return out.reshape(g.height, g.width)


def warp_whole(src_path, grid_path, resampling: str, scale) -> np.ndarray:
    """Warp band 1 of ``src_path`` onto ``grid_path``'s grid in one go, with GDAL's exact
    transformer and the resampling scale fixed to ``scale`` (see :func:`reference.hand_warped`)."""
    with rasterio.open(grid_path) as g:
        return hand_warped(src_path, g.crs.to_wkt(), g.transform, g.width, g.height, resampling, scale, "Byte")


def ndvi(img):
    red, nir = img["rgb"][0].astype(np.float32), img["nir"].astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = np.where(red + nir > 0, (nir - red) / (nir + red), np.float32(np.nan)).astype(np.float32)
    return np.stack([nir, index])


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_source_in_another_crs_equals_whole_warp(testdata, resampling):
    grid_path, nir_path = testdata / "rgb1.tif", testdata / "rgb1_fake_nir_epsg3857.tif"
    src = cm.sources(rgb=grid_path, nir=nir_path, grid="rgb", tile=96, resampling={"nir": resampling})
    assert not src["rgb"].warp and src["nir"].warp
    run = finished(cm.submit(ndvi, src, mem="500MB", tiles_per_job=5, code=f"ndvi {resampling}"))

    scale = run.manifest.sources[1]["scale"]
    # Grid pixels of 300 m per source pixel of 200 Mercator metres (about 180 m at 25 degrees north).
    assert 0.5 < scale[0] < 0.75 and 0.5 < scale[1] < 0.75
    nir = warp_whole(nir_path, grid_path, resampling, scale)
    if resampling == "nearest":
        np.testing.assert_array_equal(nir, nearest_by_hand(nir_path, grid_path))
    with rasterio.open(grid_path) as g:
        red = g.read(1)
        crs, transform = g.crs, g.transform
    assert (nir > 0).mean() > 0.5  # the reference really overlaps the grid

    mosaic, profile = read_mosaic(run)
    assert mosaic.shape == (2, 400, 400)
    assert profile["crs"] == crs and profile["transform"] == transform
    np.testing.assert_array_equal(mosaic[0], nir.astype(np.float32))
    np.testing.assert_array_equal(mosaic[1], ndvi({"rgb": red[np.newaxis], "nir": nir})[1])


# -- halo ---------------------------------------------------------------------------------


def focal_mean(img):
    a = img["dem"].astype(np.float64)
    total = np.zeros((a.shape[0] - 2, a.shape[1] - 2))
    for dr in range(3):
        for dc in range(3):
            total = total + a[dr : dr + a.shape[0] - 2, dc : dc + a.shape[1] - 2]
    out = np.full(a.shape, np.nan)
    out[1:-1, 1:-1] = total / 9
    return out


@pytest.mark.parametrize("nodata", [None, -50.0])
def test_halo_focal_mean_equals_whole_array_filter(tmp_path, write_raster, nodata):
    rng = np.random.default_rng(11)
    dem = rng.normal(100, 30, (203, 317)).astype(np.float32)
    write_raster(tmp_path / "dem.tif", dem, nodata=nodata)
    src = cm.sources(dem=tmp_path / "dem.tif", tile=64, halo=1)
    run = finished(cm.submit(focal_mean, src, mem="500MB", tiles_per_job=4))
    mosaic, profile = read_mosaic(run)

    # Outside the grid the reader fills with the source's nodata, or 0 without one.
    fill = 0.0 if nodata is None else nodata
    padded = np.pad(dem, 1, constant_values=fill)
    np.testing.assert_array_equal(mosaic[0], focal_mean({"dem": padded})[1:-1, 1:-1])
    scipy_mean = scipy.ndimage.uniform_filter(dem.astype(np.float64), size=3, mode="constant", cval=fill)
    np.testing.assert_allclose(mosaic[0], scipy_mean, rtol=1e-12)
    assert profile["dtype"] == "float64"


# -- multi-band in and out ----------------------------------------------------------------


def bands(img):
    rgb = img["rgb"].astype(np.float32)
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected 3 bands, got {rgb.shape}")
    total = rgb.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        green = np.where(total > 0, rgb[1] / total, np.float32(np.nan)).astype(np.float32)
    return np.stack([rgb[2], rgb[1], rgb[0], green])


def test_multiband_in_and_out(testdata):
    path = testdata / "RGB.byte.tif"
    src = cm.sources(rgb=path, tile=200)
    # Two threads per job: each reads its tiles through its own datasets.
    run = finished(cm.submit(bands, src, cpus=2, mem="500MB", tiles_per_job=4))
    with rasterio.open(path) as ds:
        rgb = ds.read()
        crs, transform = ds.crs, ds.transform
    mosaic, profile = read_mosaic(run)
    assert mosaic.shape == (4, 718, 791)
    assert profile["crs"] == crs and profile["transform"] == transform
    np.testing.assert_array_equal(mosaic, bands({"rgb": rgb}))
    assert np.isnan(mosaic[3]).any() and np.isnan(profile["nodata"])


# -- mask ---------------------------------------------------------------------------------


def dem_change(img):
    return (img["dem2"] - img["dem1"]) * (img["polygon"] > 0)


def rising(img):
    return (img["dem2"] > img["dem1"]).astype(np.uint8) * (img["polygon"] > 0)


@pytest.mark.parametrize(
    "func, nodata",
    [(dem_change, None), (rising, 255)],
    ids=["float output, NaN outside", "uint8 output, nodata=255 outside"],
)
def test_mask_skips_all_zero_tiles(tmp_path, write_raster, func, nodata):
    rng = np.random.default_rng(5)
    polygon = np.zeros((300, 500), np.uint8)
    polygon[20:90, 30:140] = 1  # in tiles 0 and 1 of the first row
    polygon[250:260, 420:430] = 3  # in the last tile
    dem1 = rng.normal(50, 5, polygon.shape).astype(np.float32)
    dem2 = rng.normal(50, 5, polygon.shape).astype(np.float32)
    for name, array in (("polygon", polygon), ("dem1", dem1), ("dem2", dem2)):
        write_raster(tmp_path / f"{name}.tif", array)
    src = cm.sources(
        polygon=tmp_path / "polygon.tif",
        dem1=tmp_path / "dem1.tif",
        dem2=tmp_path / "dem2.tif",
        tile=100,
        mask="polygon",
    )
    run = finished(cm.submit(func, src, mem="500MB", tiles_per_job=1, nodata=nodata))

    # 3 rows x 5 columns of 100-pixel tiles; the mask is non-zero in tiles 0, 1 and 14.
    tiles = [(r, c) for r in range(0, 300, 100) for c in range(0, 500, 100)]
    touched = [i for i, (r, c) in enumerate(tiles) if polygon[r : r + 100, c : c + 100].any()]
    assert touched == [0, 1, 14]
    m = run.manifest
    assert sorted(t for job in m.jobs for t in job) == touched
    assert m.skipped == [i for i in range(15) if i not in touched]
    assert run.n_jobs == 3

    mosaic, profile = read_mosaic(run)
    expected = func({"polygon": polygon, "dem1": dem1, "dem2": dem2})
    assert mosaic.dtype == expected.dtype
    with rasterio.open(run.output) as ds:
        valid = ds.read_masks(1) > 0
    for i, (r, c) in enumerate(tiles):
        window = (slice(r, r + 100), slice(c, c + 100))
        if i in touched:
            np.testing.assert_array_equal(mosaic[0][window], expected[window])
            assert valid[window].all()  # zeros computed inside a tile are data
        elif nodata is None:
            assert np.isnan(mosaic[0][window]).all()
            assert not valid[window].any()
        else:
            assert (mosaic[0][window] == nodata).all() and profile["nodata"] == nodata
            assert not valid[window].any()


# -- metrics only, and what a function prints ------------------------------------------------


def count_only(img):
    polygon = img["polygon"]
    print(f"tile at row {int(img.window.row_off)}, col {int(img.window.col_off)}: {int(polygon.sum())}")
    return {"sum": int(polygon.sum()), "pixels": polygon.size}


def test_metrics_only_function_and_its_printed_lines(aligned):
    paths, a = aligned
    src = cm.sources(polygon=paths["polygon"], tile=256)
    run = finished(cm.submit(count_only, src, mem="500MB", tiles_per_job=4))
    assert run.metrics == {"sum": int(a["polygon"].sum(dtype=np.int64)), "pixels": HEIGHT * WIDTH}
    assert run.output is None  # no arrays, no mosaic
    printed = "".join(run.logs(job)[0] for job in range(run.n_jobs))
    assert printed.count("tile at row") == 12
    assert f"tile at row 512, col 768: {int(a['polygon'][512:, 768:].sum())}" in printed


# -- rotated grid -------------------------------------------------------------------------


def double(img):
    return img["rot"].astype(np.uint16) * 2


def test_rotated_grid_alone_works(testdata):
    path = testdata / "rotated.tif"
    src = cm.sources(rot=path, tile=4)
    run = finished(cm.submit(double, src, mem="500MB", tiles_per_job=3))
    with rasterio.open(path) as ds:
        array, transform = ds.read(1), ds.transform
    assert transform.b != 0 and transform.d != 0
    mosaic, profile = read_mosaic(run)
    assert profile["transform"] == transform
    np.testing.assert_array_equal(mosaic[0], array.astype(np.uint16) * 2)


def test_warping_onto_a_rotated_grid_is_refused(tmp_path, write_raster, testdata, runs_dir):
    rotated = Affine.translation(500000, 5000000) @ Affine.rotation(20) @ Affine.scale(30, -30)
    write_raster(tmp_path / "rotated.tif", np.ones((50, 60), np.uint8), transform=rotated)
    write_raster(tmp_path / "other.tif", np.ones((50, 60), np.uint8), crs="EPSG:3857")
    with pytest.raises(cm.SourceError) as info:
        cm.sources(rot=tmp_path / "rotated.tif", other=tmp_path / "other.tif")
    message = str(info.value)
    assert "rotated" in message and "other" in message and "\n" not in message
    # rotated.tif has no CRS at all: a source in a CRS cannot be placed on its grid.
    with pytest.raises(cm.SourceError) as info:
        cm.sources(rot=testdata / "rotated.tif", other=tmp_path / "other.tif", grid="rot")
    message = str(info.value)
    assert "'other'" in message and "the grid has no CRS" in message and "\n" not in message
    assert not runs_dir.exists()


# -- the event log --------------------------------------------------------------------------


def test_event_log_tells_the_same_story_as_status(aligned):
    paths, _ = aligned
    src = cm.sources(dem1=paths["dem1"], dem2=paths["dem2"], tile=350)  # 6 tiles
    run = finished(cm.submit(lambda img: img["dem2"] - img["dem1"], src, mem="500MB", tiles_per_job=2))
    assert run.n_jobs == 3

    events = list(htcondor2.JobEventLog(str(run.path / "events.log")).events(stop_after=0))
    by_proc: dict[tuple[int, int], list] = {}
    for event in events:
        by_proc.setdefault((event.cluster, event.proc), []).append(event)
    assert sorted(by_proc) == [(1, p) for p in range(run.n_jobs)]
    for proc_events in by_proc.values():
        # Image-size updates may come between execute and terminate, as HTCondor writes them.
        kinds = [e.type for e in proc_events if e.type != htcondor2.JobEventType.IMAGE_SIZE]
        assert kinds == [
            htcondor2.JobEventType.SUBMIT,
            htcondor2.JobEventType.EXECUTE,
            htcondor2.JobEventType.JOB_TERMINATED,
        ]
        assert proc_events[-1]["TerminatedNormally"] and proc_events[-1]["ReturnValue"] == 0
        assert proc_events[0]["StructuredNotes"]["JobBatchName"] == run.name
    terminated_ok = sum(1 for e in events if e.type == htcondor2.JobEventType.JOB_TERMINATED and e["ReturnValue"] == 0)
    assert run.status() == {
        "idle": 0,
        "running": 0,
        "completed": terminated_ok,
        "failed": 0,
        "held": 0,
        "removed": 0,
    }


# -- finding runs again, attaching, force -----------------------------------------------------


def change(img):
    return img["dem2"] - img["dem1"]


def test_resubmit_attaches_force_makes_a_new_run_and_a_new_process_finds_them(aligned, runs_dir):
    paths, _ = aligned
    src = cm.sources(dem1=paths["dem1"], dem2=paths["dem2"], tile=350)
    first = finished(cm.submit(change, src, mem="500MB", name="CHANGE", tiles_per_job=3))
    assert not first.attached and first.clusters == [1]

    again = cm.submit(change, src, mem="500MB", name="CHANGE", tiles_per_job=3)
    assert again.attached and again.id == first.id and again.path == first.path
    assert again.clusters == [1]  # nothing new was submitted
    assert sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith(".")) == [first.id]

    forced = cm.submit(change, src, mem="500MB", name="CHANGE", tiles_per_job=3, force=True)
    forced_again = cm.submit(change, src, mem="500MB", name="CHANGE", tiles_per_job=3, force=True)
    assert not forced.attached and not forced_again.attached
    assert len({first.id, forced.id, forced_again.id}) == 3
    for run in (forced, forced_again):
        finished(run)
        np.testing.assert_array_equal(read_mosaic(run)[0], read_mosaic(first)[0])

    # Forced runs keep the content hash at the start of their id: a prefix of it is ambiguous.
    with pytest.raises(cm.RunNotFound, match="start of 3 run ids"):
        cm.run(first.id[:8])

    # A new Python process, with nothing but the runs directory, finds them by name, id and id prefix.
    script = (
        "import json, sys, condormagic as cm\n"
        "runs = [cm.run(arg) for arg in sys.argv[1:]]\n"
        "print(json.dumps([[r.id, r.status()['completed'], r.output] for r in runs] + [len(cm.runs())]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "CHANGE", first.id, forced_again.id[:-2]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONDORMAGIC_RUNS_DIR": str(runs_dir)},
        cwd=runs_dir.parent,
    )
    assert result.returncode == 0, result.stderr
    by_name, by_id, by_prefix, count = json.loads(result.stdout)
    newest = max((forced, forced_again), key=lambda r: r.created)
    assert by_name == [newest.id, newest.n_jobs, newest.output]  # the newest run of that name
    assert by_id == [first.id, first.n_jobs, first.output]
    assert by_prefix == [forced_again.id, forced_again.n_jobs, forced_again.output]
    assert count == 3


def test_a_run_outlives_the_process_that_submitted_it(aligned, runs_dir):
    paths, a = aligned
    script = (
        "import sys, condormagic as cm\n"
        "def slow_change(img):\n"
        "    import time\n"
        "    time.sleep(0.3)\n"
        "    return img['dem2'] - img['dem1']\n"
        "src = cm.sources(dem1=sys.argv[1], dem2=sys.argv[2], tile=350)\n"
        "run = cm.submit(slow_change, src, mem='500MB', tiles_per_job=1)\n"
        "print(run.id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(paths["dem1"]), str(paths["dem2"])],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONDORMAGIC_RUNS_DIR": str(runs_dir)},
    )
    assert result.returncode == 0, result.stderr
    run = cm.run(result.stdout.strip())
    assert not run.complete  # the submitting process is gone and its jobs are not done yet
    finished(run)
    np.testing.assert_array_equal(read_mosaic(run)[0][0], a["dem2"] - a["dem1"])


# -- the run directory's permissions ----------------------------------------------------------


def test_run_dir_is_private_and_worker_refuses_a_writable_one(aligned, tmp_path):
    paths, _ = aligned
    src = cm.sources(dem1=paths["dem1"], dem2=paths["dem2"], tile=350)
    run = finished(cm.submit(change, src, mem="500MB", tiles_per_job=2))
    assert stat.S_IMODE(os.stat(run.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(run.path / "function.pkl").st_mode) & 0o077 == 0

    out = tmp_path / "worker-out"

    def worker(job: int = 0):
        return subprocess.run(
            [sys.executable, "-m", "condormagic.worker", str(run.path), str(job), str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = worker()  # the run directory as it was made: the worker computes the tile
    assert result.returncode == 0, result.stderr
    assert (out / "tiles" / "000000.tif").exists()

    for path, mode in ((run.path, 0o770), (run.path, 0o702), (run.path / "function.pkl", 0o622)):
        original = stat.S_IMODE(os.stat(path).st_mode)
        os.chmod(path, mode)
        try:
            (out / "tiles" / "000001.tif").unlink(missing_ok=True)
            result = worker(1)
        finally:
            os.chmod(path, original)
        assert result.returncode != 0
        assert "refusing to load the function" in result.stderr and str(path) in result.stderr
        assert not (out / "tiles" / "000001.tif").exists()
    assert run.status()["completed"] == run.n_jobs == 3  # the run itself is untouched
