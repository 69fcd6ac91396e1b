"""The local backend's runner: ``python -m condormagic.backends.runner RUN_DIR``.

It serves one run directory while that run has queued jobs or unread requests: it starts each
proc as its own process group within the machine's cores, kills what a proc leaves behind when
it ends, holds a proc that goes over ``request_memory`` (as HTCondor does, code 34) or, when
the description has ``retry_request_memory_increase`` (``--mem-retry``), evicts it and queues
it again with more memory up to ``retry_request_memory_max``, as HTCondor does; acts on
hold, release and remove requests, and writes every step to the run's event log in the format
a schedd writes. A runner that starts after one was killed re-queues the procs that were
running (an eviction, as when HTCondor loses a machine).

It imports the event log writer and the submit language only, so it starts in milliseconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..rundir import eventlog as ev
from ..rundir.layout import RunDir, UntrustedRunDir, check_owned, open_nofollow, read_json
from .submitlang import expand_macros, split_arguments

POLL = 0.05
MEMORY_POLL = 0.25
# A hold code of our own for a runner that failed: HTCondor's codes stop below 100.
RUNNER_FAILED_CODE = 1001


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
    files: list = field(default_factory=list)


class Runner:
    """Schedules the procs of every cluster of one run directory."""

    def __init__(self, layout: RunDir):
        self.layout = layout
        self.cores = cores()
        self.procs: dict[tuple[int, int], Proc] = {}
        self.clusters: dict[int, dict] = {}
        self.log = open_nofollow(layout.events, "a")
        self.last_memory_check = 0.0

    def write(self, text: str) -> None:
        self.log.write(text)
        self.log.flush()

    # -- start-up -----------------------------------------------------------------------
    def recover(self) -> None:
        """Take over from a runner that stopped: its running procs go back to idle."""
        reader = ev.EventLogReader(self.layout.events)
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
            self.clusters[cluster] = read_json(self.layout.cluster(cluster))
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
    def pending(self) -> list[Path]:
        try:
            return sorted(self.layout.control.glob("*.json"))
        except OSError:
            return []

    def handle_requests(self) -> bool:
        names = self.pending()
        for path in names:
            try:
                message = read_json(path)
            except (OSError, ValueError):
                message = None
            if isinstance(message, dict):
                self.handle(message)
            path.unlink(missing_ok=True)
        return bool(names)

    def handle(self, message: dict) -> None:
        action = message.get("action")
        if action == "submit":
            record = self._cluster(int(message["cluster"]))
            name = json.loads(record["description"]["My.JobBatchName"])
            for proc in range(len(record["jobs"])):
                if (record["cluster"], proc) in self.procs:
                    continue  # already in the log: a runner stopped before it could delete this request
                p = self._proc(record["cluster"], proc)
                self.write(ev.submit_event(p.cluster, p.proc, name))
            return
        for cluster, proc in message.get("procs", []):
            p = self._proc(int(cluster), int(proc))
            if p is None:
                continue
            if action == "hold" and p.state in (ev.IDLE, ev.RUNNING):
                if p.state == ev.RUNNING:
                    self.stop(p)
                self.write(ev.held_event(p.cluster, p.proc, "Held by the user with condormagic", 1))
                p.state = ev.HELD_STATE
            elif action == "release" and p.state == ev.HELD_STATE:
                self.write(ev.released_event(p.cluster, p.proc, "Released by the user with condormagic"))
                p.state = ev.IDLE
            elif action == "remove" and p.state in (ev.IDLE, ev.RUNNING, ev.HELD_STATE):
                if p.state == ev.RUNNING:
                    self.stop(p)
                self.write(ev.aborted_event(p.cluster, p.proc))
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
        env["_CONDOR_SCRATCH_DIR"] = str(self.layout.path)
        out = open(expand_macros(d["output"], macros), "ab")
        err = open(expand_macros(d["error"], macros), "ab")
        self.write(ev.execute_event(p.cluster, p.proc, f"slot1_{slot}", p.cpus, p.memory_mb, str(self.layout.path)))
        p.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=expand_macros(d.get("initialdir", str(self.layout.path)), macros),
            start_new_session=True,
        )
        p.files = [out, err]
        p.state, p.slot, p.started, p.peak_kb, p.reported_kb = ev.RUNNING, slot, time.time(), 0, 0

    def stop(self, p: Proc) -> None:
        """Kill a running proc's process group and write the eviction that precedes a hold or a removal."""
        _kill_group(p.popen.pid)
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
            # What the job forked and left running ends with it, as under HTCondor's starter.
            _kill_group(p.popen.pid)
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
                # The peak goes into the log first, so the job table and the hold reason agree.
                self.write(ev.image_size_event(p.cluster, p.proc, p.peak_kb))
                self.stop(p)
                more = retry_memory(self._cluster(p.cluster)["description"], p.memory_mb)
                if more is not None:
                    p.memory_mb, p.state = more, ev.IDLE  # evicted; it runs again with more memory
                    continue
                self.write(
                    ev.held_event(
                        p.cluster,
                        p.proc,
                        f"Error from slot1_{p.slot or 1}: Job has gone over memory limit of {p.memory_mb} megabytes. "
                        f"Peak usage: {p.peak_kb // 1024} megabytes. Consider resubmitting with a higher "
                        "request_memory.",
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

    def queued(self) -> bool:
        return any(p.state in (ev.IDLE, ev.RUNNING) for p in self.procs.values())

    # -- main loop --------------------------------------------------------------------------
    def serve(self) -> None:
        self.recover()
        while True:
            had_requests = self.handle_requests()
            self.reap()
            self.check_memory()
            self.schedule()
            if not had_requests and not self.queued():
                break
            time.sleep(POLL)

    def fail(self, reason: str) -> None:
        """The runner cannot go on: hold every queued proc with the reason, so status and monitor say it."""
        for p in list(self.procs.values()):
            if p.state == ev.RUNNING and p.popen is not None:
                self.stop(p)
                p.state = ev.IDLE
            if p.state == ev.IDLE:
                self.write(ev.held_event(p.cluster, p.proc, f"The local runner failed: {reason}", RUNNER_FAILED_CODE))
                p.state = ev.HELD_STATE


_INCREASE = re.compile(r"^\s*(int\()?\s*RequestMemory\s*(?P<op>[*+])\s*(?P<by>\d+(\.\d+)?)\s*\)?\s*$", re.I)


def retry_memory(description: dict, memory_mb: int) -> int | None:
    """The memory a proc that went over ``memory_mb`` runs again with, as HTCondor's
    ``retry_request_memory_increase`` (``RequestMemory * F`` or ``RequestMemory + MB``) and
    ``retry_request_memory_max`` (or ``retry_request_memory``, one retry) say; ``None``: hold it.
    """
    most = description.get("retry_request_memory_max")
    match = _INCREASE.match(description.get("retry_request_memory_increase", ""))
    if most is not None and match:
        by = float(match["by"])
        wanted = memory_mb * by if match["op"] == "*" else memory_mb + by
        more = min(int(wanted), int(most))
    elif str(description.get("retry_request_memory", "")).isdigit():
        more = int(description["retry_request_memory"])
    else:
        return None
    return more if more > memory_mb else None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
    argv = sys.argv[1:] if argv is None else argv
    layout = RunDir(argv[0])
    try:
        check_owned(layout.path)
    except UntrustedRunDir as exc:
        print(f"condormagic runner: {exc}", file=sys.stderr)
        return 1
    while True:
        # Blocking: a runner that is about to exit finishes first, then this one reads what it left.
        with open_nofollow(layout.runner_lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            runner = Runner(layout)
            try:
                runner.serve()
            except Exception as exc:  # noqa: BLE001 - whatever it was, the run must say so
                traceback.print_exc()
                runner.fail(f"{type(exc).__name__}: {exc} (see runner.log)")
            finally:
                runner.log.close()
        # A request left while the lock was held, after the last look, has no runner of its own.
        if not runner.pending():
            return 0


if __name__ == "__main__":
    sys.exit(main())
