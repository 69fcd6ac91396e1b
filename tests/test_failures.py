"""What goes wrong: failing jobs (and retrying them), unreadable blocks, and bad input.

The failing jobs are real worker processes on the local backend: one raises, one returns
the wrong shape, one allocates far more than its memory request, and one is killed with
SIGKILL from outside while it runs. The other jobs of the same run must still finish, and
``run.retry()`` must re-run only what failed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import htcondor2
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import condormagic as cm

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module

WAIT = 90
TILE = 100  # the failure run: 200 x 300 pixels, 2 rows x 3 columns of tiles, one tile per job


def check_elevation(dem):
    if dem.min() < 1000:
        raise ValueError(f"elevation below sea level: {dem.min():.1f}")
    return dem


def make_troublesome(flags: Path):
    """A function that misbehaves on tiles 0-3 while ``flags/broken`` exists."""

    def troublesome(img):
        dem = img["dem"]
        tile = int(img.window.row_off) // TILE * 3 + int(img.window.col_off) // TILE
        if (flags / "broken").exists():
            if tile == 0:
                return check_elevation(dem)
            if tile == 1:
                return dem[:-1]
            if tile == 2:
                ballast = np.ones(600 * 2**20 // 8)  # 600 MB, every page touched
                time.sleep(60)
                return dem + ballast[0]
            if tile == 3:
                print("tile 3: waiting", file=sys.stderr, flush=True)  # before the pid: the kill follows it
                (flags / "pid").write_text(str(os.getpid()))
                time.sleep(60)
        return dem * 2

    return troublesome


def kill_when_waiting(pid_file: Path, timeout: float = 60) -> int:
    """SIGKILL the worker that wrote ``pid_file``, from outside, as soon as it has written it."""
    deadline = time.monotonic() + timeout
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job of tile 3 never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"condormagic.worker" in cmdline, cmdline  # what ps shows names the job
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.fixture(scope="module")
def failures(tmp_path_factory, write_raster):
    """The failure run, settled after its first cluster, and what each job looked like then."""
    folder = tmp_path_factory.mktemp("failures")
    flags = folder / "flags"
    flags.mkdir()
    (flags / "broken").touch()
    rng = np.random.default_rng(1)
    dem = rng.normal(0, 50, (2 * TILE, 3 * TILE)).astype(np.float32)
    write_raster(folder / "dem.tif", dem)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONDORMAGIC_RUNS_DIR", str(folder / "runs"))
        mp.setenv("CONDORMAGIC_BACKEND", "local")
        src = cm.sources(dem=folder / "dem.tif", tile=TILE)
        run = cm.submit(make_troublesome(flags), src, mem="200MB", tiles_per_job=1, name="TROUBLE", check=False)
        try:
            kill_when_waiting(flags / "pid")
            run.wait(timeout=WAIT, poll=0.2)
            jobs = {j.job: j for j in run.jobs()}
            logs = {job: run.logs(job) for job in jobs}
            yield {"run": run, "jobs": jobs, "logs": logs, "flags": flags, "dem": dem}
        finally:
            run.remove()


def test_other_jobs_finish(failures):
    run, jobs = failures["run"], failures["jobs"]
    assert run.n_jobs == 6
    assert [jobs[j].state for j in (4, 5)] == ["completed", "completed"]
    assert run.status() == {"idle": 0, "running": 0, "completed": 2, "failed": 3, "held": 1, "removed": 0}
    assert run.output is None  # no mosaic while jobs are missing


def test_function_that_raises(failures):
    job = failures["jobs"][0]
    assert job.state == "failed" and job.exit_code != 0
    assert "ValueError" in job.reason and "elevation below sea level" in job.reason
    assert "rows 0:100, cols 0:100" in job.reason
    stderr = failures["logs"][0][1]
    traceback = stderr[stderr.index("Traceback (most recent call last):") :]
    frames = re.findall(r'File "[^"]+", line (\d+), in (\w+)', traceback)
    # The user's own frames, at the lines of this file that called and raised, and nothing of
    # the worker's above or around them. (cloudpickle names the file "<dynamic-code>".)
    lines = Path(__file__).read_text().splitlines()
    call = lines.index("                return check_elevation(dem)") + 1
    raised = lines.index('        raise ValueError(f"elevation below sea level: {dem.min():.1f}")') + 1
    assert frames == [(str(call), "troublesome"), (str(raised), "check_elevation")]
    assert "worker.py" not in stderr and "concurrent" not in stderr
    assert "ValueError: elevation below sea level" in traceback
    # The user's line is quoted under its frame, as in the notebook, and printed once.
    assert "\n    return check_elevation(dem)\n" in traceback
    assert stderr.count("Traceback (most recent call last):") == 1


def test_function_returning_the_wrong_shape(failures):
    job = failures["jobs"][1]
    assert job.state == "failed"
    assert "(99, 100)" in job.reason and "100 x 100" in job.reason


def test_job_over_its_memory_request_is_held(failures):
    job = failures["jobs"][2]
    assert job.state == "held"
    assert "memory" in job.reason and "200 megabytes" in job.reason


def test_job_killed_from_outside(failures):
    job = failures["jobs"][3]
    assert job.state == "failed"
    assert "tile 3: waiting" in failures["logs"][3][1]  # it did start...
    assert "signal 9 (SIGKILL)" in job.reason  # ...and the reason is how it ended, not what it printed last


def test_event_log_tells_the_same_story(failures):
    run, jobs = failures["run"], failures["jobs"]
    latest: dict[tuple[int, int], object] = {}
    for event in htcondor2.JobEventLog(str(run.path / "events.log")).events(stop_after=0):
        if event.type != htcondor2.JobEventType.IMAGE_SIZE:
            latest[(event.cluster, event.proc)] = event
    assert sorted(latest) == [(1, p) for p in range(6)]
    told = {}
    for (_, proc), event in latest.items():
        if event.type == htcondor2.JobEventType.JOB_TERMINATED:
            normal = event["TerminatedNormally"]
            told[proc] = "completed" if normal and event["ReturnValue"] == 0 else "failed"
        elif event.type == htcondor2.JobEventType.JOB_HELD:
            told[proc] = "held"
            assert event["HoldReason"] == jobs[proc].reason
        else:
            told[proc] = event.type.name
    # Cluster 1 runs job i as proc i.
    assert told == {job: j.state for job, j in jobs.items()}


def test_retry_reruns_only_what_failed(failures):
    run, flags = failures["run"], failures["flags"]
    (flags / "broken").unlink()  # the cause is gone
    retried = run.retry()
    assert sorted(retried) == [0, 1, 2, 3]
    assert run.clusters == [1, 2]
    run.wait(timeout=WAIT, poll=0.2)
    assert run.status()["completed"] == 6, [(j.job, j.reason) for j in run.jobs()]

    submitted = [
        (e.cluster, e.proc)
        for e in htcondor2.JobEventLog(str(run.path / "events.log")).events(stop_after=0)
        if e.type == htcondor2.JobEventType.SUBMIT
    ]
    assert submitted.count((2, 0)) == 1 and [c for c, _ in submitted].count(2) == 4
    jobs = {j.job: j for j in run.jobs()}
    assert {job: (j.cluster, j.attempts) for job, j in jobs.items()} == {
        0: (2, 2),
        1: (2, 2),
        2: (2, 2),
        3: (2, 2),
        4: (1, 1),
        5: (1, 1),
    }
    with rasterio.open(run.output) as ds:
        np.testing.assert_array_equal(ds.read(1), failures["dem"] * 2)


def hungry_on_the_first_tile(img):
    dem = img["dem"]
    if img.window.col_off == 0:
        ballast = np.ones(400 * 2**20 // 8)  # 400 MB, every page touched
        time.sleep(1.5)
        return dem + ballast[0]
    return dem + 1


def test_a_job_held_for_memory_is_retried_with_a_bigger_request(tmp_path, runs_dir, write_raster):
    dem = np.arange(100 * 200, dtype=np.float32).reshape(100, 200)
    src = cm.sources(dem=write_raster(tmp_path / "dem.tif", dem), tile=100)
    run = cm.submit(hungry_on_the_first_tile, src, mem="200MB", tiles_per_job=1, check=False)
    run.wait(timeout=WAIT, poll=0.2)
    assert [j.state for j in run.jobs()] == ["held", "completed"]
    assert run.retry(mem="1GB") == [0]
    record = json.loads((run.path / "clusters" / "2.json").read_text())
    assert record["description"]["request_memory"] == "1024"
    assert json.loads((run.path / "manifest.json").read_text())["options"]["mem"] == 1024
    run.wait(timeout=WAIT, poll=0.2)
    assert run.status()["completed"] == 2, [(j.job, j.reason) for j in run.jobs()]
    with rasterio.open(run.output) as ds:
        np.testing.assert_array_equal(ds.read(1), dem + 1)


# -- blocks that cannot be decoded ----------------------------------------------------------


def first_band(img):
    return img["bad"][0]


def test_undecodable_blocks_fail_the_jobs_that_touch_them(testdata, runs_dir):
    path = testdata / "corrupt.tif"
    src = cm.sources(bad=path, tile=384)  # it opens: the trouble is in its pixels
    assert src["bad"].count == 3
    run = cm.submit(first_band, src, mem="500MB", tiles_per_job=2)
    run.wait(timeout=WAIT, poll=0.2)

    # Which tiles rasterio itself cannot read, window by window.
    readable = {}
    with rasterio.open(path) as ds:
        for i, (row, col, h, w) in enumerate(run.manifest.tiling.array().tolist()):
            try:
                readable[i] = ds.read(1, window=Window(col, row, w, h))
            except rasterio.errors.RasterioIOError:
                readable[i] = None
    bad_tiles = [i for i, a in readable.items() if a is None]
    assert 0 < len(bad_tiles) < len(readable)

    for job in run.jobs():
        bad_here = [i for i in job.tiles if i in bad_tiles]
        if not bad_here:
            assert job.state == "completed", job.reason
            for i in job.tiles:
                with rasterio.open(run.path / "tiles" / f"{i:06d}.tif") as tile:
                    np.testing.assert_array_equal(tile.read(1), readable[i])
            continue
        assert job.state == "failed"
        assert str(path) in job.reason and "'bad'" in job.reason
        windows = []
        for i in bad_here:
            row, col, h, w = run.manifest.tiling[i].to_list()
            windows.append(f"rows {row}:{row + h}, cols {col}:{col + w}")
        assert any(w in job.reason for w in windows), (job.reason, windows)


# -- bad input ------------------------------------------------------------------------------


def plain(img):
    return img["dem"]


def closes_over_a_lock():
    lock = threading.Lock()

    def locked(img):
        with lock:
            return img["dem"]

    return locked


def bad_input(kind: str, folder: Path, write_raster):
    """Do the wrong thing ``kind``; return the exception it raises."""
    dem = write_raster(folder / "dem.tif", np.ones((40, 50), np.float32))
    calls = {
        "missing file": lambda: cm.sources(dem=folder / "no-such-dem.tif"),
        "not a raster": lambda: cm.sources(dem=dem, notes=_text_file(folder / "notes.txt")),
        "memory in parsecs": lambda: cm.submit(plain, cm.sources(dem=dem), mem="6 parsecs"),
        "unpicklable function": lambda: cm.submit(closes_over_a_lock(), cm.sources(dem=dem)),
        "zero cpus": lambda: cm.submit(plain, cm.sources(dem=dem), cpus=0),
        "no overlap on the same pixels": lambda: cm.sources(
            dem=dem,
            far=write_raster(
                folder / "far.tif",
                np.ones((40, 50), np.float32),
                transform=rasterio.transform.from_origin(0, 0, 30, 30),
            ),
        ),
        "no overlap in another crs": lambda: cm.sources(
            dem=dem,
            far=write_raster(
                folder / "far.tif",
                np.ones((40, 50), np.float32),
                crs="EPSG:4326",
                transform=rasterio.transform.from_origin(-120, 40, 0.01, 0.01),
            ),
        ),
    }
    with pytest.raises(cm.CondorMagicError) as info:
        calls[kind]()
    return info.value


def _text_file(path: Path) -> Path:
    path.write_text("elevation,year\n100,2000\n")
    return path


@pytest.mark.parametrize(
    "kind, error, words",
    [
        ("missing file", cm.SourceError, ["no-such-dem.tif", "does not exist"]),
        ("not a raster", cm.SourceError, ["notes.txt", "not a raster"]),
        ("memory in parsecs", cm.CondorMagicError, ["6 parsecs", "not a memory size"]),
        ("unpicklable function", cm.CondorMagicError, ["locked", "cannot be sent", "lock"]),
        ("zero cpus", cm.CondorMagicError, ["--cpus", "at least 1"]),
        ("no overlap on the same pixels", cm.SourceError, ["far.tif", "does not overlap"]),
        ("no overlap in another crs", cm.SourceError, ["far.tif", "does not overlap"]),
    ],
)
def test_bad_input_is_refused_in_one_sentence_leaving_nothing(tmp_path, runs_dir, write_raster, kind, error, words):
    if kind == "unpicklable function":
        with pytest.raises(TypeError):  # make sure the function really cannot be pickled
            cloudpickle.dumps(closes_over_a_lock())
    exc = bad_input(kind, tmp_path, write_raster)
    assert type(exc) is error
    message = str(exc)
    for word in words:
        assert word in message, message
    assert "\n" not in message and message.endswith(".") and not re.search(r"\.\s+[A-Z]", message), message
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
