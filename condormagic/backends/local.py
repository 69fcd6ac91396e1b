"""The embedded local backend: a run's jobs as OS processes on this machine.

A runner process (:mod:`condormagic.backends.runner`), detached from the kernel that submitted
so that a run outlives it, takes the same submit description and item data as HTCondor, starts
each job as its own process while cores are free, enforces ``request_memory``, and writes the
HTCondor job event log. One runner at most serves a run directory (an ``flock`` on
``runner.lock``).

Steering (hold, release, remove, a new cluster for a retry) is asked for by dropping a JSON
request into ``control/`` and making sure a runner is there to read it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
import uuid

from ..errors import CondorMagicError
from ..resources import Resources
from ..rundir.clusters import next_cluster_number, record_cluster
from ..rundir.layout import DirLock, RunDir, open_nofollow, write_json_atomic
from ..rundir.manifest import Manifest
from .runner import cores, wake

# The runner does no arithmetic: one BLAS/OpenMP thread keeps its imports light. Jobs get
# their own values of these from their description.
# The runner's command line: -c rather than -m, so the jobs it forks do not run its module again as
# their __main__ (what multiprocessing does for a main module run with -m: 20 ms a job).
RUNNER = "import sys; from condormagic.backends.runner import main; sys.exit(main(sys.argv[1:]))"
RUNNER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def memory_mb() -> int:
    """This machine's memory in MB (what a job may at most ask for)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return 0


class LocalBackend:
    """Runs jobs on this machine; the default where no HTCondor schedd is found."""

    name = "local"
    # Jobs are forked from a server with the worker imported: a few hundredths of a second each.
    min_job_pixels = 4 * 1024 * 1024

    def describe(self) -> str:
        return f"local ({cores()} cores)"

    def slots(self, cpus: int) -> int:
        return max(1, cores() // max(1, cpus))

    def check(self, resources: Resources) -> str | None:
        """Refuse what no job could start with on this machine (HTCondor would leave it idle for ever).

        More CPUs than the machine has is not refused: the notebook's ``--cpus 3`` should run on a
        two-core laptop too. Each such job runs alone, with every core; the returned note says so.
        """
        have_mem = memory_mb()
        problems = []
        if have_mem and resources.mem > have_mem:
            problems.append(f"{resources.mem:,} MB of memory (it has {have_mem:,} MB)")
        if resources.gpus:
            problems.append(f"{resources.gpus} GPUs (the local backend runs no GPU jobs)")
        if problems:
            raise CondorMagicError(
                f"No job can start on this machine: each asks for {' and '.join(problems)}; ask for less, "
                "or use an HTCondor pool (--backend htcondor)."
            )
        if resources.cpus > cores():
            return (
                f"Each job asks for {resources.cpus} CPUs and this machine has {cores()}: the local backend runs "
                f"them one at a time, each with all {cores()} cores."
            )
        return None

    def submit(self, layout: RunDir, manifest: Manifest, jobs: list[int]) -> int:
        """Queue ``jobs`` as one new cluster; return its number."""
        from .description import build_submit, describe_run

        description = describe_run(layout, manifest)
        build_submit(description)  # the same object HTCondor would get; fails here if invalid
        with DirLock(layout.clusters / ".lock"):
            cluster = next_cluster_number(layout)
            record_cluster(layout, cluster, self.name, description, jobs)
        request(layout, {"action": "submit", "cluster": cluster})
        return cluster

    def act(self, layout: RunDir, manifest: Manifest, action: str, procs: list[tuple[int, int]] | None) -> int:
        """Ask the runner to act on ``procs``, or on all the run's procs the action applies to when it reads
        the request (``None``); the runner checks each one's state. Returns how many the log says it
        applies to now."""
        if procs is None:
            from ..rundir.state import RunState

            state = RunState(layout, manifest)
            state.update()
            wanted = {"hold": ("idle", "running"), "release": ("held",), "remove": ("idle", "running", "held")}
            count = sum(1 for j in state.jobs() if j.state in wanted[action])
            request(layout, {"action": action, "procs": None})
            return count
        if not procs:
            return 0
        request(layout, {"action": action, "procs": [list(p) for p in procs]})
        return len(procs)

    def query(self, layout: RunDir, manifest: Manifest) -> dict[tuple[int, int], dict]:
        return {}  # the runner writes everything it knows into the event log

    def watch(self, layout: RunDir, manifest: Manifest) -> str | None:
        """Start a runner if the run has queued jobs and none serves it (it was killed, or the machine
        restarted): the new one re-queues the jobs the old one lost."""
        if start_runner(layout):
            return "the local runner had stopped; a new one took over the run's queued jobs"
        return None


def request(layout: RunDir, message: dict) -> None:
    """Leave a request for the run's runner and make sure one is running.

    The request is written before a runner is looked for, and a runner looks at ``control/``
    again after it lets its lock go, so no request is ever left unread.
    """
    layout.control.mkdir(exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    write_json_atomic(layout.control / name, message)
    wake(layout)
    start_runner(layout)


def start_runner(layout: RunDir) -> bool:
    """Start a runner, detached from this process, unless one serves the run; return whether one was started.

    The runner's lock is taken here and handed to the new process (it inherits the locked file),
    so that many requests at once start one runner, not one each.
    """
    lock = open_nofollow(layout.runner_lock, "a")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a runner holds the run: it reads the request
        env = dict(os.environ, **dict.fromkeys(RUNNER_THREAD_VARIABLES, "1"))
        with open(layout.runner_log, "ab") as log:
            subprocess.Popen(
                [sys.executable, "-c", RUNNER, str(layout.path), str(lock.fileno())],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=(lock.fileno(),),
            )
        return True
    finally:
        lock.close()  # the runner holds the lock through its own copy of the file
