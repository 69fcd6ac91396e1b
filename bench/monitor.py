"""How much one refresh of a 10,000-job run's monitor costs, after 100 new events.

Generates a run directory (manifest of 10,000 one-tile jobs, event log with every job
submitted, half started, 40 % finished), opens a Monitor on it, then appends 100 events at a
time (starts and terminations) and times ``monitor.refresh()``: read the new events, derive
every job's state, redraw header, progress bar, tile map and the visible table page.
Compared with what a script polling the run would otherwise do: read the whole log again.

    python bench/monitor.py [--jobs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from synthetic import write_run_dir

from condormagic.rundir.eventlog import execute_event, submit_event, terminated_event


def make_run(root: Path, n_jobs: int, tile: int = 256) -> tuple[Path, list[str]]:
    """A run directory with ``n_jobs`` jobs on a square-ish grid; return it and the events still to come."""
    path = root / "bench-monitor"
    write_run_dir(path, n_jobs, tile=tile)
    t0 = time.time() - 3600
    started, finished = n_jobs // 2, n_jobs * 2 // 5
    with open(path / "events.log", "w") as log:
        for job in range(n_jobs):
            log.write(submit_event(1, job, "BENCH", when=t0))
        for job in range(started):
            log.write(execute_event(1, job, f"slot{job % 64}", 1, 1024, "/tmp", when=t0 + 1))
        for job in range(finished):
            log.write(terminated_event(1, job, 0, seconds=30, when=t0 + 31))
            (path / "metrics" / f"{job:06d}.json").write_text("{}")
    # The events to come: the running jobs finish, the idle ones start, in that order.
    todo = []
    for job in range(finished, started):
        todo.append(("end", job))
    for job in range(started, n_jobs):
        todo.append(("start", job))
    return path, todo


def append(path: Path, todo: list, n: int) -> None:
    with open(path / "events.log", "a") as log:
        for _ in range(n):
            kind, job = todo.pop(0)
            if kind == "end":
                log.write(terminated_event(1, job, 0, seconds=30))
                (path / "metrics" / f"{job:06d}.json").write_text("{}")
            else:
                log.write(execute_event(1, job, f"slot{job % 64}", 1, 1024, "/tmp"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from condormagic.display.monitor import Monitor
    from condormagic.runhandle import Run

    with tempfile.TemporaryDirectory() as tmp:
        path, todo = make_run(Path(tmp), args.jobs)
        size = os.path.getsize(path / "events.log")
        t = time.perf_counter()
        monitor = Monitor(Run(path), autostart=False)
        first = time.perf_counter() - t
        incremental, reopened, full = [], [], []
        snapshot = path / "state.pickle"
        for _ in range(args.repeat):
            append(path, todo, 100)
            t = time.perf_counter()
            new = monitor.refresh()
            incremental.append(time.perf_counter() - t)
            assert new == 100, new
            t = time.perf_counter()
            Monitor(Run(path), autostart=False)  # another process: from the snapshot, then the events since
            reopened.append(time.perf_counter() - t)
        for _ in range(min(3, args.repeat)):  # without the snapshot, what every new process paid before
            kept = snapshot.read_bytes()
            snapshot.unlink()
            t = time.perf_counter()
            Run(path).status()
            full.append(time.perf_counter() - t)
            snapshot.write_bytes(kept)
        counts = ", ".join(f"{k} {v}" for k, v in monitor.counts.items() if v)
        inc, again, whole = (statistics.median(v) * 1000 for v in (incremental, reopened, full))
        load = os.getloadavg()[0]
        print(f"run: {args.jobs:,} jobs, event log {size / 1e6:.1f} MB ({counts}); load {load:.1f}")
        print(f"monitor opened by the process that read the whole log first: {first * 1000:.0f} ms")
        print(
            f"monitor refresh after 100 new events: median {inc:.1f} ms of {args.repeat} "
            f"(min {min(incremental) * 1000:.1f}, max {max(incremental) * 1000:.1f}; target < 20 ms)"
        )
        print(f"monitor opened in another process (from the state snapshot): median {again:.0f} ms")
        print(f"the state alone without a snapshot (the whole log read again): median {whole:.0f} ms")
        print(f"ratio: the incremental refresh is {whole / inc:.0f}x faster than reading the whole log again")


if __name__ == "__main__":
    sys.exit(main())
