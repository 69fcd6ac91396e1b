"""10,000 one-tile jobs on a real HTCondor pool: the submit, and the monitor's refresh.

One cluster of ``--jobs`` one-tile jobs is submitted with ``cm.submit`` in one transaction
(the schedd gets the description once and the jobs as item data), then a monitor is opened on
the run and refreshed. The jobs ask for a machine that is not in the pool, so they stay idle
and every refresh is the worst case: all jobs idle, and the schedd asked why they wait. Compared
with what a user would otherwise run: ``condor_submit`` of the run's own ``submit.sub`` (the same
jobs, from the same file), and ``condor_q`` of the run's jobs (what a refresh asks the schedd
for, all jobs at once, instead of one job's ad per cluster). Everything is removed at the end.

    python bench/htcondor_scale.py [--jobs 10000] [--submits 3] [--repeat 5] [--pool HOST:PORT]

Without ``--pool``, a one-machine pool is started from the HTCondor that the tests use
(``tests/htcondor_pool.py``: ``CONDORMAGIC_TEST_HTCONDOR``, ``condor_master`` on ``PATH``, or
``../shared/htcondor/*.tar.xz``) and stopped at the end; run as root, the submitting side runs as
its unprivileged user. With ``--pool``, that pool's collector is used as it is (``CONDOR_CONFIG``
must let this user submit there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TILE = 16


def Copy(img):
    return img[0]


def measure(folder: str, jobs: int, repeat: int, submits: int = 3, pool: str | None = None) -> dict:
    """Submit, monitor and remove ``jobs`` one-tile jobs; return the timings (seconds)."""
    import classad2
    import htcondor2
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    import condormagic as cm
    from condormagic.display.monitor import Monitor

    if pool:
        cm.configure(pool=pool)
    cm.configure(runs_dir=os.path.join(folder, "runs"))
    side = int(np.ceil(np.sqrt(jobs)))
    rows = -(-jobs // side)
    path = os.path.join(folder, "grid.tif")
    profile = dict(driver="GTiff", width=side * TILE, height=rows * TILE, count=1, dtype="uint8", crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(500000, 5000000, 30, 30), **profile) as ds:
        ds.write(np.ones((1, rows * TILE, side * TILE), np.uint8))
    src = cm.sources(band=path, tile=TILE)
    nowhere = 'Machine == "nowhere.example.org"'  # idle for ever: the pool runs none of them
    options = dict(name="SCALE", mem="128MB", tiles_per_job=1, backend="htcondor", requirements=nowhere, force=True)

    t = time.perf_counter()
    plan = cm.plan(Copy, src, **{k: v for k, v in options.items() if k != "force"})
    plan.graph  # noqa: B018 - built here, timed apart from the submission
    planned = time.perf_counter() - t
    schedd = htcondor2.Schedd(htcondor2.Collector(pool).locate(htcondor2.DaemonType.Schedd)) if pool else None
    schedd = schedd or htcondor2.Schedd()

    # Each round: cm.submit, then condor_submit of the same jobs from the run's own submit file
    # (what a user would otherwise do), each into an emptied queue.
    submitted, by_hand = [], []
    for round_ in range(submits):
        t = time.perf_counter()
        run = cm.submit(Copy, src, **options)
        submitted.append(time.perf_counter() - t)
        assert run.n_jobs >= jobs and len(run.clusters) == 1, (run.n_jobs, run.clusters)
        # The same file, but its own event log and run attribute: the run does not see these jobs.
        args = ["condor_submit", "-terse", str(run.path / "submit.sub"), "-append", f"log = {folder}/by-hand.log"]
        args += ["-append", 'My.CondormagicRun = "by-hand"']
        args += ["-pool", pool, "-name", run.options["schedd"]] if pool else []
        t = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, cwd=run.path, timeout=600)
        by_hand.append(time.perf_counter() - t)
        assert done.returncode == 0, done.stderr
        schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {int(done.stdout.split('.')[0])}")
        if round_ < submits - 1:
            run.remove()

    t = time.perf_counter()
    monitor = Monitor(run, autostart=False)
    opened = time.perf_counter() - t
    assert monitor.counts["idle"] == run.n_jobs, monitor.counts
    said = {j.reason for j in monitor.jobs_list}
    cached, asking = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        monitor.refresh()
        cached.append(time.perf_counter() - t)
        monitor._run._waiting_at = -1e9  # the next refresh asks the schedd again (every 5 s in use)
        t = time.perf_counter()
        monitor.refresh()
        asking.append(time.perf_counter() - t)

    queried = []
    for _ in range(repeat):
        t = time.perf_counter()
        ads = schedd.query(
            constraint=f"CondormagicRun == {classad2.quote(run.id)}",
            projection=["ClusterId", "ProcId", "JobStatus", "LastRejMatchReason"],
        )
        queried.append(time.perf_counter() - t)
    assert len(ads) == run.n_jobs

    t = time.perf_counter()
    removed = run.remove()
    removing = time.perf_counter() - t
    log_size = os.path.getsize(run.path / "events.log")
    return {
        "jobs": run.n_jobs,
        "plan": planned,
        "submit": statistics.median(submitted),
        "condor_submit": statistics.median(by_hand),
        "submit_ratio": statistics.median(a / b for a, b in zip(submitted, by_hand, strict=True)),
        "submits": submits,
        "monitor_open": opened,
        "refresh": statistics.median(cached),
        "refresh_asking": statistics.median(asking),
        "refresh_max": max(cached + asking),
        "condor_q": statistics.median(queried),
        "remove": removing,
        "removed": removed,
        "reasons": sorted(r for r in said if r),
        "log_mb": log_size / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="monitor refreshes and queries timed")
    parser.add_argument("--submits", type=int, default=3, help="rounds of cm.submit and condor_submit")
    parser.add_argument("--pool", help="HOST:PORT of an existing pool's collector (default: start one)")
    args = parser.parse_args()
    load = os.getloadavg()
    if args.pool:
        folder = tempfile.mkdtemp(prefix="condormagic-scale-")
        figures = measure(folder, args.jobs, args.repeat, args.submits, args.pool)
        started = None
    else:
        sys.path.insert(0, str(REPO / "tests"))
        from htcondor_pool import HTCondorPool, find_installation

        t = time.perf_counter()
        test_pool = HTCondorPool.start(find_installation())
        started = time.perf_counter() - t
        try:
            folder = test_pool.make_user_dir(Path(tempfile.mkdtemp(prefix="scale-", dir=test_pool.scratch)))
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import htcondor_scale  # this file by its name: the pool user's process imports it so

            figures = test_pool.call(
                htcondor_scale.measure,
                timeout=1800,
                folder=str(folder),
                jobs=args.jobs,
                repeat=args.repeat,
                submits=args.submits,
            )
        finally:
            test_pool.stop()
            test_pool.remove()
    f = figures
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start")
    if started is not None:
        print(f"pool: a one-machine HTCondor pool, started in {started:.1f} s")
    print(f"run: {f['jobs']:,} one-tile jobs in one cluster; event log {f['log_mb']:.1f} MB")
    print(
        f"cm.submit: median {f['submit']:.2f} s of {f['submits']} (planning the job graph alone: {f['plan']:.2f} s); "
        f"condor_submit of the run's own submit.sub: median {f['condor_submit']:.2f} s"
    )
    print(f"ratio: cm.submit takes {f['submit_ratio']:.2f}x the time of condor_submit (median of ratios)")
    print(f"monitor opened (every submit event read, first draw, the schedd asked): {f['monitor_open'] * 1000:.0f} ms")
    print(
        f"monitor refresh: median {f['refresh'] * 1000:.1f} ms; when it asks the schedd why jobs wait: "
        f"median {f['refresh_asking'] * 1000:.1f} ms (max of all {f['refresh_max'] * 1000:.1f} ms)"
    )
    print(f"condor_q of the run's {f['jobs']:,} jobs (Schedd.query): median {f['condor_q'] * 1000:.0f} ms")
    print(f"ratio: a refresh that asks the schedd takes {f['refresh_asking'] / f['condor_q']:.2f}x a condor_q")
    print(f"run.remove(): {f['removed']:,} jobs in {f['remove']:.2f} s")
    print(f"why they wait, as the monitor says: {f['reasons']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
