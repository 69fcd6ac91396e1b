"""The embedded local backend: a run's jobs as OS processes on this machine.

A runner process, detached from the kernel that submitted (so a run outlives it),
takes the same submit description and item data as HTCondor, starts each job as its
own process while cores are free, enforces ``request_memory``, and writes the HTCondor
job event log. It is started by ``python -m condormagic.backends.local RUN_DIR``; one
runner at most serves a run directory at a time (an ``flock`` on ``runner.lock``).

Steering (hold, release, remove, a new cluster for a retry) is asked for by dropping
a JSON request into ``control/`` and making sure a runner is there to read it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .. import eventlog as ev
from ..files import write_atomic, write_json_atomic
from .description import expand_macros, split_arguments

POLL = 0.05
RUNNER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
MEMORY_POLL = 0.25


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LocalBackend:
    """Runs jobs on this machine; the default where no HTCondor schedd is found."""

    name = "local"

    def describe(self) -> str:
        return f"local ({cores()} cores)"

    def slots(self, cpus: int) -> int:
        return max(1, cores() // max(1, cpus))

    def submit(self, run, jobs: list[int]) -> int:
        """Queue ``jobs`` of ``run`` as one new cluster; return its number."""
        from ..runs import DirLock
        from .description import build_description, build_submit

        description = build_description(str(run.path), run.id, run.name, run.options, run.options.get("python"))
        build_submit(description)  # the same object HTCondor would get; fails here if invalid
        with DirLock(run.path / "clusters" / ".lock"):
            numbers = [int(p.stem) for p in (run.path / "clusters").glob("*.json")]
            cluster = max(numbers, default=0) + 1
            record_cluster(run.path, cluster, self.name, description, jobs)
        write_submit_file(run.path, description, jobs, cluster)
        request(run.path, {"action": "submit", "cluster": cluster})
        return cluster

    def act(self, run, action: str, procs: list[tuple[int, int]]) -> None:
        request(run.path, {"action": action, "procs": [list(p) for p in procs]})


def record_cluster(run_dir: Path, cluster: int, backend: str, description: dict, jobs: list[int]) -> None:
    """Write ``clusters/N.json``: the cluster's description, item data and which job each proc runs."""
    from .description import itemdata

    record = {
        "cluster": cluster,
        "backend": backend,
        "description": description,
        "itemdata": itemdata(jobs),
        "jobs": jobs,
        "submitted": time.time(),
    }
    write_json_atomic(Path(run_dir) / "clusters" / f"{cluster}.json", record)


def write_submit_file(run_dir: Path, description: dict, jobs: list[int], cluster: int) -> None:
    from .description import submit_file_text

    name = "submit.sub" if cluster == 1 or not (run_dir / "submit.sub").exists() else f"submit.{cluster}.sub"
    write_atomic(run_dir / name, submit_file_text(description, jobs))


def request(run_dir: Path, message: dict) -> None:
    """Leave a request for the run's runner and make sure one is running."""
    control = Path(run_dir) / "control"
    control.mkdir(exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    write_json_atomic(control / name, message)
    start_runner(Path(run_dir))


def start_runner(run_dir: Path) -> None:
    """Start a runner, detached from this process; it exits at once if another one holds the run."""
    log = open(run_dir / "runner.log", "ab")
    # The runner does no arithmetic: one BLAS/OpenMP thread halves its numpy import, which
    # is on the way to the first job. Jobs get these variables from their description.
    env = dict(os.environ, **dict.fromkeys(RUNNER_THREAD_VARIABLES, "1"))
    subprocess.Popen(
        [sys.executable, "-m", "condormagic.backends.local", str(run_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    log.close()


@dataclass
class Proc:
    cluster: int
    proc: int
    job: int
    cpus: int
    memory_mb: int
    state: str = ev.IDLE
    popen: subprocess.Popen | None = None
    slot: int | None = None
    started: float = 0.0
    peak_kb: int = 0
    reported_kb: int = 0
    reported_at: float = 0.0
    stopping: str | None = None
    files: list = field(default_factory=list)


class Runner:
    """Schedules the procs of every cluster of one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.cores = cores()
        self.procs: dict[tuple[int, int], Proc] = {}
        self.clusters: dict[int, dict] = {}
        self.log = open(run_dir / "events.log", "a")
        self.last_memory_check = 0.0

    # -- event log ----------------------------------------------------------------------
    def write(self, text: str) -> None:
        self.log.write(text)
        self.log.flush()

    # -- start-up -----------------------------------------------------------------------
    def recover(self) -> None:
        """Take over from a runner that died: its running procs go back to idle."""
        reader = ev.EventLogReader(self.run_dir / "events.log")
        reader.update()
        for (cluster, proc), st in reader.procs.items():
            p = self._proc(cluster, proc)
            if p is None:
                continue
            if st.state == ev.RUNNING:
                self.write(ev.evicted_event(cluster, proc, p.cpus, p.memory_mb))
                p.state = ev.IDLE
            else:
                p.state = st.state

    def _cluster(self, cluster: int) -> dict:
        if cluster not in self.clusters:
            with open(self.run_dir / "clusters" / f"{cluster}.json") as fh:
                self.clusters[cluster] = json.load(fh)
        return self.clusters[cluster]

    def _proc(self, cluster: int, proc: int) -> Proc | None:
        key = (cluster, proc)
        if key not in self.procs:
            try:
                record = self._cluster(cluster)
            except FileNotFoundError:
                return None
            d = record["description"]
            self.procs[key] = Proc(
                cluster, proc, record["jobs"][proc], int(d.get("request_cpus", 1)), int(d["request_memory"])
            )
        return self.procs[key]

    # -- requests -------------------------------------------------------------------------
    def handle_requests(self) -> bool:
        control = self.run_dir / "control"
        if not control.is_dir():
            return False
        names = sorted(p for p in control.glob("*.json"))
        for path in names:
            try:
                message = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            self.handle(message)
            path.unlink(missing_ok=True)
        return bool(names)

    def handle(self, message: dict) -> None:
        action = message["action"]
        if action == "submit":
            record = self._cluster(message["cluster"])
            name = json.loads(record["description"]["My.JobBatchName"])
            for proc in range(len(record["jobs"])):
                if (record["cluster"], proc) in self.procs:
                    continue  # already in the log: a runner died before it could delete this request
                p = self._proc(record["cluster"], proc)
                self.write(ev.submit_event(p.cluster, p.proc, name))
            return
        for cluster, proc in message.get("procs", []):
            p = self._proc(cluster, proc)
            if p is None:
                continue
            if action == "hold" and p.state in (ev.IDLE, ev.RUNNING):
                if p.state == ev.RUNNING:
                    self.stop(p, "hold")
                self.write(ev.held_event(cluster, proc, "Held by the user with condormagic", 1))
                p.state = ev.HELD_STATE
            elif action == "release" and p.state == ev.HELD_STATE:
                self.write(ev.released_event(cluster, proc, "Released by the user with condormagic"))
                p.state = ev.IDLE
            elif action == "remove" and p.state in (ev.IDLE, ev.RUNNING, ev.HELD_STATE):
                if p.state == ev.RUNNING:
                    self.stop(p, "remove")
                self.write(ev.aborted_event(cluster, proc))
                p.state = ev.REMOVED

    # -- processes -------------------------------------------------------------------------
    def start(self, p: Proc, slot: int) -> None:
        record = self._cluster(p.cluster)
        d = record["description"]
        macros = {"ClusterId": str(p.cluster), "ProcId": str(p.proc), "DOLLAR": "$", **record["itemdata"][p.proc]}
        argv = [expand_macros(d["executable"], macros)] + [
            expand_macros(a, macros) for a in split_arguments(d["arguments"])
        ]
        env = dict(os.environ)
        for pair in split_arguments(d.get("environment", '""')):
            key, _, value = pair.partition("=")
            env[key] = expand_macros(value, macros)
        env["_CONDOR_SCRATCH_DIR"] = str(self.run_dir)
        out = open(expand_macros(d["output"], macros), "ab")
        err = open(expand_macros(d["error"], macros), "ab")
        self.write(ev.execute_event(p.cluster, p.proc, f"slot1_{slot}", p.cpus, p.memory_mb, str(self.run_dir)))
        p.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=expand_macros(d.get("initialdir", str(self.run_dir)), macros),
            start_new_session=True,
        )
        p.files = [out, err]
        p.state, p.slot, p.started, p.peak_kb, p.reported_kb = ev.RUNNING, slot, time.time(), 0, 0

    def stop(self, p: Proc, why: str) -> None:
        """Kill a running proc and write the eviction that precedes a hold or a removal."""
        try:
            os.killpg(p.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.popen.wait()
        self._close(p)
        self.write(ev.evicted_event(p.cluster, p.proc, p.cpus, p.memory_mb, p.peak_kb // 1024, self._seconds(p)))

    def _close(self, p: Proc) -> None:
        for fh in p.files:
            fh.close()
        p.files, p.popen, p.slot = [], None, None

    def _seconds(self, p: Proc) -> int:
        return int(round(time.time() - p.started))

    def reap(self) -> None:
        for p in self.running():
            code = p.popen.poll()
            if code is None:
                continue
            used = max(p.peak_kb, p.reported_kb) // 1024
            seconds = self._seconds(p)
            self._close(p)
            if code < 0:
                self.write(ev.terminated_event(p.cluster, p.proc, None, -code, p.cpus, p.memory_mb, used, seconds))
                p.state = ev.FAILED
            else:
                self.write(ev.terminated_event(p.cluster, p.proc, code, None, p.cpus, p.memory_mb, used, seconds))
                p.state = ev.COMPLETED if code == 0 else ev.FAILED

    def check_memory(self) -> None:
        now = time.time()
        if now - self.last_memory_check < MEMORY_POLL:
            return
        self.last_memory_check = now
        for p in self.running():
            rss = rss_kb(p.popen.pid)
            p.peak_kb = max(p.peak_kb, rss)
            if rss > p.memory_mb * 1024:
                self.stop(p, "memory")
                self.write(
                    ev.held_event(
                        p.cluster,
                        p.proc,
                        f"Error from slot1_{p.slot or 1}: Job has gone over memory limit of {p.memory_mb} megabytes. "
                        f"Peak usage: {rss // 1024} megabytes. Consider resubmitting with a higher request_memory.",
                        34,
                    )
                )
                p.state = ev.HELD_STATE
            elif p.peak_kb > p.reported_kb * 1.1 and now - p.reported_at > 2:
                self.write(ev.image_size_event(p.cluster, p.proc, p.peak_kb))
                p.reported_kb, p.reported_at = p.peak_kb, now

    def running(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.state == ev.RUNNING and p.popen is not None]

    def schedule(self) -> None:
        running = self.running()
        used = sum(p.cpus for p in running)
        busy = {p.slot for p in running}
        for p in sorted(self.procs.values(), key=lambda q: (q.cluster, q.proc)):
            if p.state != ev.IDLE:
                continue
            if running and used + p.cpus > self.cores:
                break
            slot = next(i for i in range(1, len(busy) + 2) if i not in busy)
            self.start(p, slot)
            running.append(p)
            busy.add(slot)
            used += p.cpus

    # -- main loop --------------------------------------------------------------------------
    def serve(self) -> None:
        self.recover()
        while True:
            had_requests = self.handle_requests()
            self.reap()
            self.check_memory()
            self.schedule()
            if not had_requests and not any(p.state in (ev.IDLE, ev.RUNNING) for p in self.procs.values()):
                break
            time.sleep(POLL)
        self.log.close()
        self.finish()

    def finish(self) -> None:
        from ..results import finalize
        from ..runs import Run

        run = Run(self.run_dir)
        if run.complete:
            finalize(run)


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..runs import DirLock

    argv = sys.argv[1:] if argv is None else argv
    run_dir = Path(argv[0])
    # Blocking: a runner that is about to exit finishes first, then this one reads what it left.
    with DirLock(run_dir / "runner.lock"):
        (run_dir / "runner.pid").write_text(str(os.getpid()))
        Runner(run_dir).serve()
        # Requests that arrived while finishing are served by the runner their sender started.
    return 0


if __name__ == "__main__":
    sys.exit(main())
