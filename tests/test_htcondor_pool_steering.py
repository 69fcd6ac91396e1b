"""Steering runs on a real HTCondor pool: hold and release, remove, eviction, a schedd that restarts.

As in ``test_htcondor_pool.py``, the submitting side runs as the pool user (``pool.call``) and
returns what it saw; HTCondor's own tools (``condor_vacate_job``, ``condor_off``) are run by
that side too, as the pool's user or administrator would.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_htcondor_pool import Deforestation, _queue, _sources, mosaic, runs_env, seed  # noqa: F401

pytestmark = pytest.mark.htcondor_pool

FLAG = ""  # a file that the jobs below wait on while it exists (set in the submitting process)
LIMIT = 0.0  # ...and the time after which they stop waiting anyway


def Waiting(img):
    """The seed's function, waiting while the flag file exists (at most until LIMIT)."""
    import os
    import time

    while os.path.exists(FLAG) and time.time() < LIMIT:
        time.sleep(0.1)
    return Deforestation(img)


def _hold_jobs_on(flag: str, seconds: float = 90) -> None:
    global FLAG, LIMIT
    import time

    FLAG, LIMIT = flag, time.time() + seconds
    open(flag, "w").close()


def _until(condition, timeout: float = 30, every: float = 0.2):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def _story(run) -> dict[tuple[int, int], list[str]]:
    """Each cluster.proc's states as the run's event log tells them, read with HTCondor's own reader."""
    import htcondor2

    states = {0: "idle", 1: "running", 4: "idle", 9: "removed", 12: "held", 13: "idle"}
    story: dict[tuple[int, int], list[str]] = {}
    for event in htcondor2.JobEventLog(str(run.path / "events.log")).events(0):
        kind = int(event.type)
        if kind == 5:
            state = "completed" if event.get("TerminatedNormally") and event.get("ReturnValue") == 0 else "failed"
        elif kind in states:
            state = states[kind]
        else:
            continue
        told = story.setdefault((event.cluster, event.proc), [])
        if not told or told[-1] != state:
            told.append(state)
    return story


def _tool(*argv: str) -> str:
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- hold, then release within a second, while jobs run ---------------------------------------------
# Jobs that take three seconds to stop, as a job that cleans up on its way out does: they ignore
# the signal HTCondor stops them with, and are killed after job_max_vacate_time.
SLOW_TO_STOP = ["kill_sig=SIGWINCH", "job_max_vacate_time=3"]


def on_pool_hold_release(paths: dict, flag: str) -> dict:
    import time

    import condormagic as cm

    _hold_jobs_on(flag)
    src = _sources(paths)
    run = cm.submit(
        Waiting, src, mem="256MB", tiles_per_job=1, backend="htcondor", check=False, submit_commands=SLOW_TO_STOP
    )
    _until(lambda: run.status()["running"] == 2)
    running = run.status()
    held = run.hold()
    time.sleep(0.3)
    t = time.monotonic()
    released = run.release()  # the two running jobs are still being stopped
    releasing = time.monotonic() - t
    queue = _queue(run)
    time.sleep(1)
    seen = run.status()
    os.remove(flag)
    run.wait(timeout=120)
    histories = {proc: told for (_, proc), told in _story(run).items()}
    return {
        "running": running,
        "held": held,
        "released": released,
        "releasing": releasing,
        "queue": queue,
        "seen": seen,
        "status": run.status(),
        "histories": histories,
        "output": run.output,
    }


def test_hold_then_release_within_a_second_leaves_no_job_held(htcondor_pool, pool_tmp, seed):  # noqa: F811
    out = htcondor_pool.call(
        on_pool_hold_release, paths=seed["paths"], flag=str(pool_tmp / "f"), env=runs_env(pool_tmp)
    )
    assert out["running"]["running"] == 2 and out["running"]["idle"] == 4, out
    # Every job the schedd saw was held, then released: the two running ones once they had stopped.
    assert out["held"] == 6 and out["released"] == 6, out
    assert 1.5 < out["releasing"] < 20, out
    assert out["queue"] and all(j["JobStatus"] in (1, 2) for j in out["queue"]), out
    assert out["seen"]["held"] == 0, out
    # The log tells it in order: the running jobs were stopped, held, released, and ran again.
    was_running = [h for h in out["histories"].values() if h[:2] == ["idle", "running"]]
    assert len(was_running) == 2, out["histories"]
    for history in was_running:
        assert history == ["idle", "running", "idle", "held", "idle", "running", "completed"], history
    # ...and all of them ran to the end: none was left idle and forgotten by the schedd.
    assert out["status"]["completed"] == 6, out
    np.testing.assert_array_equal(mosaic(out["output"]), seed["expected"])


# -- remove: this run's idle, running and held jobs, and no other run's ---------------------------
def on_pool_remove(paths: dict, flag: str) -> dict:
    import classad2
    import htcondor2

    import condormagic as cm

    _hold_jobs_on(flag)
    src = _sources(paths)
    other = cm.submit(
        Waiting,
        src,
        name="OTHER",
        mem="256MB",
        tiles_per_job=6,
        backend="htcondor",
        check=False,
        requirements='Machine == "nowhere.example.org"',  # idle for ever: it takes no slot
        submit_commands=['+ProjectName="EO-maps"', "accounting_group=group_eo"],
    )
    # force: the same function and sources would attach to the other run
    run = cm.submit(
        Waiting, src, name="THIS", mem="256MB", tiles_per_job=1, backend="htcondor", check=False, force=True
    )
    _until(lambda: run.status()["running"] == 2)
    run.hold([5])
    _until(lambda: run.status()["held"] == 1)
    before = {"this": run.status(), "other": other.status(), "queue": _queue(run)}
    removed = run.remove()
    gone = _until(lambda: not _queue(run), timeout=30)
    settled = _until(lambda: run.status()["removed"] == 6, timeout=30)
    ads = htcondor2.Schedd().query(
        constraint=f"CondormagicRun == {classad2.quote(other.id)}",
        projection=["JobStatus", "ProjectName", "AcctGroup", "Requirements"],
    )
    out = {
        **before,
        "removed": removed,
        "gone": gone,
        "settled": settled,
        "after": run.status(),
        "other_after": [int(ad["JobStatus"]) for ad in ads],
        "other_ad": {k: str(ads[0].get(k)) for k in ("ProjectName", "AcctGroup", "Requirements")},
    }
    other.remove()
    os.remove(flag)
    return out


def test_remove_empties_the_queue_of_its_run_only(htcondor_pool, pool_tmp, seed):  # noqa: F811
    out = htcondor_pool.call(on_pool_remove, paths=seed["paths"], flag=str(pool_tmp / "f"), env=runs_env(pool_tmp))
    assert out["this"]["running"] == 2 and out["this"]["idle"] == 3 and out["this"]["held"] == 1, out
    assert sorted(j["JobStatus"] for j in out["queue"]) == [1, 1, 1, 2, 2, 5]
    assert out["removed"] == 6 and out["gone"] and out["settled"], out
    assert out["after"]["removed"] == 6
    # The other run's job is still there, as it was submitted (its site options reached the schedd).
    assert out["other"]["idle"] == 1 and out["other_after"] == [1], out
    assert out["other_ad"]["ProjectName"] == "EO-maps" and out["other_ad"]["AcctGroup"] == "group_eo"
    assert 'Machine == "nowhere.example.org"' in out["other_ad"]["Requirements"]


# -- eviction: the pool stops a job; it runs again, and its tile is written once ------------------
def on_pool_eviction(paths: dict, flag: str) -> dict:
    import time

    import htcondor2

    import condormagic as cm
    from condormagic.display.monitor import Monitor

    _hold_jobs_on(flag)
    run = cm.submit(Waiting, _sources(paths, tile=512), mem="256MB", backend="htcondor", check=False)
    _until(lambda: run.status()["running"] == 1)
    (cluster,) = run.clusters
    vacated = _tool("condor_vacate_job", f"{cluster}.0")
    idle_again = _until(lambda: run.status()["idle"] == 1, timeout=30)
    os.remove(flag)  # the second start computes at once
    run.wait(timeout=120)
    (job,) = run.jobs()
    monitor = Monitor(run, autostart=False)
    events = [(e.type, e.timestamp) for e in htcondor2.JobEventLog(str(run.path / "events.log")).events(0)]
    starts = [t for kind, t in events if kind == 1]
    tiles = sorted(os.listdir(run.path / "tiles"))
    schedd = htcondor2.Schedd()
    ads = _until(lambda: list(schedd.history(f"ClusterId == {cluster}", ["NumJobStarts"], match=1)), timeout=20)
    return {
        "vacated": vacated,
        "idle_again": idle_again,
        "status": run.status(),
        "starts": job.starts,
        "history": _story(run)[(cluster, 0)],
        "table": monitor.table.value,
        "tiles": tiles,
        "tile_written": os.stat(run.path / "tiles" / tiles[0]).st_mtime,
        "second_start": starts[-1],
        "NumJobStarts": int(ads[0]["NumJobStarts"]),
        "now": time.time(),
        "output": run.output,
    }


def test_an_evicted_job_runs_again_and_writes_its_tile_once(htcondor_pool, pool_tmp, seed):  # noqa: F811
    out = htcondor_pool.call(on_pool_eviction, paths=seed["paths"], flag=str(pool_tmp / "f"), env=runs_env(pool_tmp))
    assert "vacated" in out["vacated"] and out["idle_again"], out
    assert out["status"]["completed"] == 1 and out["starts"] == 2 and out["NumJobStarts"] == 2, out
    assert out["history"] == ["idle", "running", "idle", "running", "completed"], out
    assert 'completed <span class="cm-starts">(2 starts)</span>' in out["table"]
    # One tile, written by the second start (the first was stopped before it wrote anything), no leftovers.
    assert out["tiles"] == ["000000.tif"]
    assert out["tile_written"] >= out["second_start"] - 1
    np.testing.assert_array_equal(mosaic(out["output"]), seed["expected"])


# -- the schedd stops mid-run and starts again -----------------------------------------------------
def on_pool_schedd_restart(paths: dict, flag: str) -> dict:
    import html
    import re
    import threading
    import time

    import condormagic as cm
    from condormagic.display.monitor import Monitor

    _hold_jobs_on(flag, seconds=120)
    run = cm.submit(Waiting, _sources(paths), mem="256MB", tiles_per_job=1, backend="htcondor", check=False)
    (cluster,) = run.clusters
    monitor = Monitor(run, interval=0.5)
    _until(lambda: run.status()["running"] == 2)
    waited = {}

    def wait():
        try:
            waited["status"] = run.reopen().wait(timeout=150).status()
        except Exception as exc:  # the test reports it
            waited["error"] = repr(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    _tool("condor_off", "-schedd")
    silent = _until(lambda: "does not answer" in monitor.header.value, timeout=40)
    line = re.search(r'class="cm-scheduler"[^>]*>([^<]*)<', monitor.header.value)
    said = html.unescape(line[1]) if line else monitor.header.value
    time.sleep(1)
    _tool("condor_on", "-schedd")
    os.remove(flag)
    back = _until(lambda: "does not answer" not in monitor.header.value, timeout=60)
    waiter.join(timeout=150)
    _until(lambda: not monitor.running, timeout=10)
    return {
        "silent": silent,
        "said": said,
        "back": back,
        "waited": waited,
        "message": monitor.message.value,
        "clusters": run.clusters,
        "submitted": sorted(_story(run)),
        "status": run.status(),
        "output": run.output,
        "cluster": cluster,
        "now": time.time(),
    }


def test_a_schedd_restart_is_one_line_in_the_monitor_and_nothing_is_resubmitted(
    htcondor_pool,
    pool_tmp,
    seed,  # noqa: F811
):
    pool = htcondor_pool
    try:
        out = pool.call(
            on_pool_schedd_restart, paths=seed["paths"], flag=str(pool_tmp / "f"), env=runs_env(pool_tmp), timeout=240
        )
    finally:
        pool.tool("condor_on", "-schedd", check=False)  # whatever happened, the next tests get their schedd
    assert out["silent"], out
    said = out["said"]
    assert said.startswith(f"The schedd {pool.schedd_name} does not answer (") and "Traceback" not in said, said
    assert "asks again" in said
    assert out["back"] and out["message"] == "", out
    # wait() carried on through it, and the run completed with the one cluster it was submitted as.
    assert out["waited"] == {"status": out["status"]} and out["status"]["completed"] == 6, out
    assert out["clusters"] == [out["cluster"]] and out["submitted"] == [[out["cluster"], p] for p in range(6)]
    np.testing.assert_array_equal(mosaic(out["output"]), seed["expected"])
