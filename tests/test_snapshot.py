"""The state snapshot: a new process reads only the events since, and sees what a full read sees."""

from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np

from condormagic.rundir import eventlog as ev
from condormagic.rundir.layout import RunDir
from condormagic.rundir.state import SNAPSHOT_EVERY
from condormagic.runhandle import Run

N_JOBS = 2200  # three events each: past SNAPSHOT_EVERY, so the first full read writes a snapshot


def make_run(path, n_jobs: int = N_JOBS):
    """A local run directory of one-tile jobs: all submitted and started, the first two thirds terminated."""
    for sub in ("clusters", "logs", "tiles", "metrics"):
        (path / sub).mkdir(parents=True)
    os.chmod(path, 0o700)
    manifest = {
        "manifest_version": 2,
        "id": path.name,
        "content_hash": "snapshot",
        "name": "SNAP",
        "created": time.time(),
        "grid": {"crs": None, "transform": [1, 0, 0, 0, -1, 0], "width": n_jobs * 8, "height": 8},
        "tile": [8, 8],
        "halo": 0,
        "sources": [],
        "jobs": [[j] for j in range(n_jobs)],
        "options": {"cpus": 1, "mem": 100, "backend": "local"},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    record = {"cluster": 1, "backend": "local", "jobs": list(range(n_jobs)), "itemdata": [], "description": {}}
    (path / "clusters" / "1.json").write_text(json.dumps(record))
    t0 = time.time() - 600
    with open(path / "events.log", "w") as log:
        for job in range(n_jobs):
            log.write(ev.submit_event(1, job, "SNAP", when=t0))
            log.write(ev.execute_event(1, job, "slot1_1", 1, 100, str(path), when=t0 + 1))
        for job in range(n_jobs * 2 // 3):
            log.write(ev.terminated_event(1, job, 0 if job % 7 else 3, seconds=5, when=t0 + 6))
            if job % 7:
                (path / "metrics" / f"{job:06d}.json").write_text("{}")


def finish(path, jobs):
    with open(path / "events.log", "a") as log:
        for job in jobs:
            log.write(ev.terminated_event(1, job, 0, seconds=9, when=time.time()))
            (path / "metrics" / f"{job:06d}.json").write_text("{}")


def summary(run: Run) -> tuple:
    return run.status(), [(j.state, j.reason, j.exit_code, j.starts) for j in run.jobs()]


def test_a_new_process_reads_only_what_the_snapshot_does_not_cover(tmp_path):
    path = tmp_path / "run"
    make_run(path)
    first = Run(path)
    first.status()  # reads the whole log, and writes the snapshot
    assert first.state.n_events >= SNAPSHOT_EVERY and RunDir(path).snapshot.exists()
    assert os.stat(RunDir(path).snapshot).st_mode & 0o777 == 0o600

    finish(path, range(N_JOBS * 2 // 3, N_JOBS * 2 // 3 + 50))
    resumed = Run(path)
    resumed.status()
    # It started from the snapshot: the procs it made objects of are only those the new events touched.
    assert len(resumed.state.reader.procs) == 50
    RunDir(path).snapshot.unlink()
    fresh = Run(path)
    assert summary(resumed) == summary(fresh)
    assert summary(resumed)[0] == {"idle": 0, "running": 684, "completed": 1306, "failed": 210, "held": 0, "removed": 0}


def test_a_snapshot_that_others_can_write_or_that_no_longer_fits_is_ignored(tmp_path):
    path = tmp_path / "run"
    make_run(path)
    Run(path).status()
    snapshot = RunDir(path).snapshot
    expected = summary(Run(path))

    # Someone who could write the file makes every job look completed: ignored.
    data = pickle.loads(snapshot.read_bytes())
    data["codes"] = np.full(N_JOBS, 2, dtype=np.int8).tobytes()
    snapshot.write_bytes(pickle.dumps(data))
    os.chmod(snapshot, 0o666)
    assert summary(Run(path)) == expected

    # The log was replaced (another inode): the snapshot says nothing about it.
    os.chmod(snapshot, 0o600)
    log = path / "events.log"
    text = log.read_text()
    log.unlink()
    log.write_text(text)
    assert summary(Run(path)) == expected
