"""A status refresh of a 10,000-job run after 100 new events: incremental read vs reading the log again.

Generates the event log of a 10,000-job run in three clusters (submit, execute, image-size
and terminated events, in the format a real HTCondor schedd writes), then, several times,
appends 100 events (jobs finishing) and times:

- ``incremental``: the reader condormagic keeps (``htcondor2.JobEventLog`` left open at its
  place), reading only the new events; and ``Run.status()`` on a run kept open;
- a new reader of the whole log (what a script polling the run would otherwise do), and a new
  ``Run(path).status()``, which starts from the state snapshot that the first reading wrote and
  reads only the events since.

Prints the medians and the ratio.

    python bench/eventlog.py [--jobs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from synthetic import write_run_dir

from condormagic.rundir.eventlog import (
    EventLogReader,
    execute_event,
    image_size_event,
    submit_event,
    terminated_event,
)
from condormagic.runhandle import Run

CLUSTERS = (42729, 42730, 42731)
NEW_EVENTS = 100


def make_run(root: Path, n_jobs: int, held_back: int) -> tuple[Path, list[tuple[int, int, int]]]:
    """A run directory whose log has every job submitted, started and sized, and all but
    ``held_back`` terminated; return it and the (cluster, proc, job) still to terminate."""
    path = root / "bench-eventlog"
    procs = write_run_dir(path, n_jobs, CLUSTERS)
    t0 = time.time() - 3600
    with open(path / "events.log", "w") as log:
        for cluster, proc, _ in procs:
            log.write(submit_event(cluster, proc, "BENCH", when=t0))
        for cluster, proc, _ in procs:
            log.write(execute_event(cluster, proc, f"slot1_{proc % 64 + 1}", 1, 2048, "/scratch", when=t0 + 10))
            log.write(image_size_event(cluster, proc, 5764, when=t0 + 15))
        for cluster, proc, job in procs[: len(procs) - held_back]:
            log.write(terminated_event(cluster, proc, 0, None, 1, 2048, 6, 30, when=t0 + 40))
            (path / "metrics" / f"{job:06d}.json").write_text("{}")
    return path, procs[len(procs) - held_back :]


def append(path: Path, batch: list[tuple[int, int, int]]) -> None:
    with open(path / "events.log", "a") as log:
        for cluster, proc, job in batch:
            log.write(terminated_event(cluster, proc, 0, None, 1, 2048, 6, 30))
            (path / "metrics" / f"{job:06d}.json").write_text("{}")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, pending = make_run(Path(tmp), args.jobs, NEW_EVENTS * args.repeat)
        log = path / "events.log"
        reader = EventLogReader(log)
        reader.update()
        run = Run(path)
        run.status()
        times: dict[str, list[float]] = {"reader+": [], "reader=": [], "status+": [], "status=": []}
        for i in range(args.repeat):
            append(path, pending[i * NEW_EVENTS : (i + 1) * NEW_EVENTS])
            times["reader+"].append(timed(reader.update))
            times["reader="].append(timed(lambda: EventLogReader(log).update()))
            times["status+"].append(timed(run.status))
            times["status="].append(timed(lambda: Run(path).status()))
        assert reader.n_events == EventLogReader(log).update()
        assert run.status() == Run(path).status()
        median = {k: statistics.median(v) for k, v in times.items()}
        size = os.path.getsize(log) / 1e6
        print(
            f"event log: {args.jobs:,} jobs in {len(CLUSTERS)} clusters, {reader.n_events:,} events, {size:.1f} MB; "
            f"{NEW_EVENTS} new events per refresh, median of {args.repeat}"
        )
        print(
            f"reader        incremental {median['reader+']:8.2f} ms   a new reader of the whole log "
            f"{median['reader=']:8.1f} ms   ratio {median['reader='] / median['reader+']:6.0f}x"
        )
        print(
            f"Run.status()  incremental {median['status+']:8.2f} ms (target < 10 ms)   a new process "
            f"(from the state snapshot) {median['status=']:8.1f} ms (target < 300 ms)   load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
