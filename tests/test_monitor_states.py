"""Each state says its own next step, on real runs of the local backend: held by the user (release),
held for going over its memory (retry with more, which the highlighted button does), and jobs
that never ran show no runtime. Failed runs are covered in the browser (test_browser_readable)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import write_raster

import condormagic as cm
from condormagic.display.advice import more_memory, next_step
from condormagic.display.monitor import Monitor
from condormagic.rundir.state import JobState


@pytest.fixture
def src(tmp_path, runs_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_raster(tmp_path / "a.tif", np.ones((200, 300), "float32"))
    return cm.sources(a="a.tif", tile=100)


def settle(run, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        counts = run.status()
        if not counts["running"] and not counts["idle"]:
            return counts
        time.sleep(0.2)
    raise AssertionError(run.status())


def runtime_cells(monitor: Monitor) -> dict[int, str]:
    import re

    rows = re.findall(r'<tr data-job="(\d+)".*?<td class="cm-runtime"[^>]*>(.*?)</td>', monitor.table.value)
    return {int(job): cell for job, cell in rows}


def sleepy(img):
    import time

    time.sleep(1.5)
    return img[0]


def test_held_jobs_suggest_release_and_jobs_that_never_ran_show_no_runtime(src):
    run = cm.submit(sleepy, src, cpus=1, mem="300MB", name="HELD", tiles_per_job=1, check=False)
    try:
        run.hold()
        settle(run)
        monitor = Monitor(run, autostart=False)
        assert monitor.advice.action == "release" and "release" in monitor.advice_view.value
        assert monitor.release_button.button_style == "primary" and monitor.retry_button.button_style == ""
        jobs = {j.job: j for j in run.jobs()}
        cells = runtime_cells(monitor)
        never = [j for j, js in jobs.items() if js.starts == 0]
        assert never, "some jobs were held before they started"
        assert all(cells[j] == "&ndash;" for j in never), cells
        assert all(cells[j].endswith(" s") for j, js in jobs.items() if js.starts), cells
    finally:
        run.remove()


def hungry(img):
    import time

    import numpy as np

    block = np.ones(60_000_000)  # 480 MB
    time.sleep(3)
    return img[0] + block[0]


def test_a_memory_hold_suggests_more_memory_and_its_button_retries_with_it(src):
    run = cm.submit(hungry, src, cpus=1, mem="256MB", name="HUNGRY", tiles_per_job=6, check=False)
    monitor = None
    try:
        counts = settle(run, 90)
        assert counts["held"] == 1, counts
        monitor = Monitor(run, autostart=False)
        advice = monitor.advice
        (job,) = [j for j in run.jobs() if j.state == "held"]
        assert advice.action == "retry" and advice.mem == more_memory(256, [job.peak_memory_mb]), advice
        assert f"peak {job.peak_memory_mb} MB of 256 MB requested" in advice.html
        assert f"%condor_retry HUNGRY --mem {advice.mem}" in advice.html
        assert monitor.retry_button.description == f"retry with {advice.mem[:-2]} {advice.mem[-2:]}"
        assert monitor.retry_button.button_style == "primary"
        said = monitor.act("retry")
        assert said.startswith(f"Resubmitted 1 job(s) with {advice.mem}"), said
        assert cm.run("HUNGRY").options["mem"] == int(advice.mem[:-2]) * (1024 if advice.mem.endswith("GB") else 1)
    finally:
        if monitor is not None:
            monitor.stop()
        run.remove()


def test_idle_jobs_no_machine_matches_suggest_asking_for_less():
    """What HTCondor says of a job no machine matches (its ``LastRejMatchReason``)."""
    jobs = [JobState(0, [0], "idle", 12, 0), JobState(1, [1], "idle", 12, 1)]
    options = {"cpus": 64, "mem": 512000, "gpus": 0}
    assert next_step("BIG", jobs, options, {}) is None  # waiting, nothing said yet: nothing to do
    advice = next_step("BIG", jobs, options, {0: {"LastRejMatchReason": "no match found"}})
    assert advice.action == "remove"
    assert "64 cpu, 512000 MB" in advice.html and "no match found" in advice.html
    assert "%condor_rm BIG" in advice.html and "--mem" in advice.html


def test_more_memory_is_comfortably_above_the_peak():
    assert more_memory(256, [480]) == "768MB"
    assert more_memory(2048, [2100]) == "4GB"
    assert more_memory(None, []) == "256MB"
