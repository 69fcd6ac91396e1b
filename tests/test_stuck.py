"""A run never hangs: a killed runner is taken over, a runner's own failure is said, jobs end whole.

All on the local backend's real runner and workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import condormagic as cm
from condormagic.rundir.layout import is_locked

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module

SIZE, TILE = 64, 32  # 4 tiles


@pytest.fixture
def src(tmp_path, runs_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", crs="EPSG:32633")
    with rasterio.open("a.tif", "w", transform=from_origin(500000, 5000000, 30, 30), **profile) as dst:
        dst.write(values, 1)
    return cm.sources(a="a.tif", tile=TILE), values


def processes(pattern: bytes) -> list[int]:
    """Pids whose command line holds ``pattern``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if pattern in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(condition, timeout=60, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def napping(img):
    import time

    time.sleep(1.5)
    return img["a"] + 1


def test_a_killed_runner_is_taken_over_and_the_run_completes(src):
    source, values = src
    run = cm.submit(napping, source, mem="300MB", tiles_per_job=1)
    wait_for(lambda: run.status()["running"] > 0, what="a running job")
    state = json.loads((run.path / "runner.json").read_text())
    runner, workers = state["runner"], list(state["procs"].values())
    os.kill(runner, signal.SIGKILL)  # the OOM killer, say: its jobs go on, orphaned
    wait_for(lambda: not is_locked(run.path / "runner.lock"), what="the runner's lock to be free")

    found = cm.run(run.id)  # a new runner takes over: the orphans are ended, their jobs run again
    wait_for(lambda: all(not Path(f"/proc/{pid}").exists() for pid in workers), what="the orphans to end")
    found.wait(timeout=120)
    assert found.complete and found.status()["completed"] == 4
    assert any(j.starts == 2 for j in found.jobs())  # the jobs it lost ran again
    with rasterio.open(found.output) as out:
        np.testing.assert_array_equal(out.read(1), values + 1)


def test_wait_notices_a_runner_killed_with_its_jobs_as_after_a_reboot(src):
    source, values = src
    run = cm.submit(napping, source, mem="300MB", tiles_per_job=2)
    wait_for(lambda: run.status()["running"] > 0, what="a running job")
    state = json.loads((run.path / "runner.json").read_text())
    os.kill(state["runner"], signal.SIGKILL)
    for pid in state["procs"].values():
        with contextlib.suppress(ProcessLookupError):  # it may have ended already
            os.killpg(pid, signal.SIGKILL)
    run.wait(timeout=120)  # would never return if nobody noticed
    assert run.complete


def forker(img):
    import subprocess

    with open(f"child-{int(img.window.col_off)}.pid", "w") as fh:
        fh.write(str(subprocess.Popen(["sleep", "300"]).pid))
    return img["a"]


def test_what_a_job_forks_ends_with_it(src):
    source, _ = src
    run = cm.submit(forker, source, mem="300MB", tiles_per_job=2, check=False).wait(timeout=120)
    assert run.complete
    pids = [int(p.read_text()) for p in Path(".").glob("child-*.pid")]
    assert len(pids) == 2
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), timeout=10, what="the children to end")


def test_many_hold_and_release_clicks_are_served_by_one_runner(src):
    source, _ = src
    run = cm.submit(napping, source, mem="300MB", tiles_per_job=1)
    pattern = b"condormagic.backends.runner " + str(run.path).encode()  # what ps shows for the run's runner
    wait_for(lambda: run.status()["running"] > 0, what="a running job")
    assert len(processes(pattern)) == 1
    most = 0
    for _ in range(30):
        run.hold()
        run.release()
        most = max(most, len(processes(pattern)))
    assert most <= 2, most  # the runner, and at most one about to take over as it exits
    run.wait(timeout=180)
    assert run.complete


def test_a_runner_that_fails_says_so_in_the_status(src):
    source, values = src
    run = cm.submit(napping, source, mem="300MB", tiles_per_job=1)
    wait_for(lambda: run.status()["running"] > 0, what="a running job")
    os.kill(json.loads((run.path / "runner.json").read_text())["runner"], signal.SIGKILL)
    wait_for(lambda: not is_locked(run.path / "runner.lock"), what="the runner's lock to be free")
    # A cluster record the next runner cannot use (half-written by a crash, say).
    broken = {"cluster": 2, "backend": "local", "jobs": [0], "itemdata": [{"job": "0"}], "description": {}}
    (run.path / "clusters" / "2.json").write_text(json.dumps(broken))
    run.wait(timeout=120)  # the next runner fails: it must say so, not leave the jobs idle for ever
    held = [j for j in run.jobs() if j.state == "held"]
    assert held and all(j.reason.startswith("The local runner failed: KeyError") for j in held), run.jobs()
    assert "see runner.log" in held[0].reason
    assert "KeyError" in (run.path / "runner.log").read_text()
    from condormagic.display.cards import run_card, run_text

    assert "held: The local runner failed: KeyError" in run_text(run) and "The local runner failed" in run_card(run)


def test_a_job_whose_interpreter_is_missing_is_held_with_the_reason(src, monkeypatch):
    source, _ = src
    monkeypatch.setenv("CONDORMAGIC_PYTHON", "/nonexistent/bin/python")
    run = cm.submit(napping, source, mem="300MB", tiles_per_job=4)
    wait_for(lambda: run.settled, what="the run to settle")
    (job,) = run.jobs()
    assert job.state == "held"
    assert job.reason == "Error from slot1_1: Failed to execute '/nonexistent/bin/python': No such file or directory"


def exiting(img):
    import sys

    sys.exit(5)


def interrupted(img):
    raise KeyboardInterrupt


def test_each_way_out_of_the_function_has_its_own_reason(src):
    source, _ = src
    for func, reason, code in (
        (exiting, "the function called sys.exit(5) on tile 0", 7),
        (interrupted, "the function raised KeyboardInterrupt on tile 0", 6),
    ):
        run = cm.submit(func, source, mem="300MB", tiles_per_job=4, check=False).wait(timeout=120)
        (job,) = run.jobs()
        assert job.state == "failed" and job.exit_code == code and reason in job.reason, job


def test_a_tile_that_cannot_be_written_is_not_the_functions_fault(src, tmp_path):
    source, _ = src
    run = cm.submit(lambda img: img["a"], source, mem="300MB", tiles_per_job=4).wait(timeout=120)
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "tiles").write_text("a file where the tiles folder should be")
    done = subprocess.run(
        [sys.executable, "-m", "condormagic.worker", str(run.path), "0", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5, done.stderr  # EXIT_WRITE: a retry elsewhere may work, unlike exit 1
    assert "cannot write the job's tiles" in done.stderr.splitlines()[-1]


def test_steering_that_the_local_backend_cannot_honour_is_refused_at_submit(src):
    source, _ = src
    for pair, option in (
        ("request_memory=6GB", "--mem"),
        ("+JobBatchName=foo", "--name"),
        ("request_cpus=abc", "--cpus"),
    ):
        with pytest.raises(cm.CondorMagicError, match=f"is set by condormagic itself: use {option}, not --submit"):
            cm.submit(napping, source, submit_commands=[pair])
    assert not cm.runs()


def hungry(img):
    import time

    import numpy as np

    ballast = np.ones(400 * 2**20 // 8)  # 400 MB, every page touched
    time.sleep(5)
    return img["a"] + ballast[0]


def test_the_peak_memory_shown_is_the_one_the_hold_reason_gives(src):
    source, _ = src
    run = cm.submit(hungry, source, mem="200MB", tiles_per_job=4, check=False)
    wait_for(lambda: run.settled, timeout=60, what="the hold")
    (job,) = run.jobs()
    assert job.state == "held" and "gone over memory limit of 200 megabytes" in job.reason
    peak = int(job.reason.split("Peak usage: ")[1].split()[0])
    assert job.peak_memory_mb == peak > 200
