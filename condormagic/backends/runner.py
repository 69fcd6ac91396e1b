"""The local backend's runner: one process per run directory, serving its jobs (see ``main``).

It serves one run directory while that run has queued jobs or unread requests: it starts each
proc as its own process group within the machine's cores, kills what a proc leaves behind when
it ends, holds a proc that goes over ``request_memory`` (as HTCondor does, code 34) or, when
the description has ``retry_request_memory_increase`` (``--mem-retry``), evicts it and queues
it again with more memory up to ``retry_request_memory_max``, as HTCondor does; acts on
hold, release and remove requests, and writes every step to the run's event log in the format
a schedd writes. A runner that starts after one was killed re-queues the procs that were
running (an eviction, as when HTCondor loses a machine).

It imports the event log writer and the submit language only, so it starts in milliseconds.
Started as ``python -c`` by :func:`condormagic.backends.local.start_runner` (``main(RUN_DIR, LOCK_FD)``).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import multiprocessing.connection
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..rundir import eventlog as ev
from ..rundir.clusters import load_clusters
from ..rundir.layout import RunDir, UntrustedRunDir, check_owned, open_nofollow, read_json, write_json_atomic
from .submitlang import expand_macros, split_arguments

MEMORY_POLL = 0.25  # how often a running job's memory is looked at (and the longest a wait lasts)
# A hold code of our own for a runner that failed: HTCondor's codes stop below 100.
RUNNER_FAILED_CODE = 1001


class Forked:
    """A job forked from the fork server (a ``multiprocessing`` process), with the interface of ``Popen``."""

    def __init__(self, process):
        self.process = process
        self.pid = process.pid
        self.sentinel = process.sentinel

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self) -> int:
        self.process.join()
        return self.process.exitcode


class Spawned:
    """A job started as a new process (an interpreter other than the runner's), woken on by its pidfd."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid
        try:
            self.sentinel = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self.sentinel = None

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            self.close()
        return code

    def wait(self) -> int:
        code = self.popen.wait()
        self.close()
        return code

    def close(self) -> None:
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


# What a forked job runs (the worker, imported once by the fork server).
JOB_MODULE = "condormagic.forkedjob"
_fork_context = None


def fork_context():
    """The ``forkserver`` context whose server has the worker imported (started on first use)."""
    global _fork_context
    if _fork_context is None:
        import multiprocessing

        _fork_context = multiprocessing.get_context("forkserver")
        # The job's code, and this module, whose _run_forked each job unpickles as its target.
        _fork_context.set_forkserver_preload([JOB_MODULE, __name__])
    return _fork_context


def forks_the_worker(argv: list[str]) -> bool:
    """Whether a job's command line is this interpreter running the worker (then it is forked, not started)."""
    return (
        len(argv) >= 5
        and argv[1:3] == ["-m", "condormagic.worker"]
        and os.path.realpath(argv[0]) == os.path.realpath(sys.executable)
    )


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
    popen: Forked | Spawned | None = None
    slot: int | None = None
    started: float = 0.0
    peak_kb: int = 0
    reported_kb: int = 0
    reported_at: float = 0.0


class Runner:
    """Schedules the procs of every cluster of one run directory."""

    def __init__(self, layout: RunDir):
        self.layout = layout
        self.cores = cores()
        self.procs: dict[tuple[int, int], Proc] = {}
        self.clusters: dict[int, dict] = {}
        self.log = open_nofollow(layout.events, "a")
        self.last_memory_check = 0.0
        self.wake = _listen(layout.control_fifo)

    def write(self, text: str) -> None:
        self.log.write(text)
        self.log.flush()

    # -- start-up -----------------------------------------------------------------------
    def recover(self) -> None:
        """Take over from a runner that stopped (killed, or the machine restarted): the job processes
        it left are ended, and its running procs go back to idle, to run again."""
        self._end_orphans()
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
        # A cluster recorded by a submission whose request was lost (its runner was killed first).
        for cluster in sorted(load_clusters(self.layout)):
            if self.layout.cluster(cluster).exists() and not any(c == cluster for c, _ in self.procs):
                self.submitted(cluster)

    def submitted(self, cluster: int) -> None:
        """Queue the procs of a recorded cluster that the event log does not have yet."""
        record = self._cluster(cluster)
        name = json.loads(record["description"]["My.JobBatchName"])
        for proc in range(len(record["jobs"])):
            if (cluster, proc) in self.procs:
                continue  # already in the log
            p = self._proc(cluster, proc)
            self.write(ev.submit_event(p.cluster, p.proc, name))

    def _end_orphans(self) -> None:
        """Kill the process groups of the jobs a stopped runner left (checked to be this run's workers)."""
        try:
            left = read_json(self.layout.runner_pids).get("procs", {})
        except (OSError, ValueError, AttributeError):
            return
        for pid in left.values():
            if _is_job_of(int(pid), self.layout):
                _kill_group(int(pid))

    def note_pids(self) -> None:
        """Record this runner's pid and its jobs' (read by a runner that takes over after a kill)."""
        procs = {f"{p.cluster}.{p.proc}": p.popen.pid for p in self.running()}
        write_json_atomic(self.layout.runner_pids, {"runner": os.getpid(), "procs": procs})

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
        """Act on the requests waiting in ``control/``, oldest first; a request that cannot be read or
        acted on is said in ``runner.log`` and dropped (the clusters' records, not the requests, say
        what is submitted)."""
        names = self.pending()
        for path in names:
            try:
                message = read_json(path)
            except (OSError, ValueError):
                message = None
            path.unlink(missing_ok=True)
            if not isinstance(message, dict):
                print(f"condormagic runner: ignored the unreadable request {path.name}", file=sys.stderr)
                continue
            try:
                self.handle(message)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"condormagic runner: ignored the request {message!r}: {exc!r}", file=sys.stderr)
        return bool(names)

    def handle(self, message: dict) -> None:
        action = message.get("action")
        if action == "submit":
            self.submitted(int(message["cluster"]))
            return
        chosen = message.get("procs")
        keys = list(self.procs) if chosen is None else [(int(c), int(p)) for c, p in chosen]
        for cluster, proc in keys:
            p = self._proc(cluster, proc)
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
        out_path, err_path = expand_macros(d["output"], macros), expand_macros(d["error"], macros)
        cwd = expand_macros(d.get("initialdir", str(self.layout.path)), macros)
        try:
            if forks_the_worker(argv):
                title = f"condormagic.worker {argv[3]} {' '.join(argv[4:])} ({p.cluster}.{p.proc})"
                process = fork_context().Process(
                    target=_run_forked, args=(argv[3:], env, cwd, out_path, err_path, title, p.cpus), daemon=False
                )
                process.start()
                p.popen = Forked(process)
            else:
                with open(out_path, "ab") as out, open(err_path, "ab") as err:
                    popen = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        env=env,
                        cwd=cwd,
                        start_new_session=True,
                    )
                p.popen = Spawned(popen)
        except OSError as exc:
            # As HTCondor holds a job whose executable cannot be run (code 6, the errno as subcode).
            reason = f"Error from slot1_{slot}: Failed to execute '{argv[0]}': {exc.strerror or exc}"
            self.write(ev.held_event(p.cluster, p.proc, reason, 6, exc.errno or 0))
            p.state = ev.HELD_STATE
            return
        self.write(ev.execute_event(p.cluster, p.proc, f"slot1_{slot}", p.cpus, p.memory_mb, str(self.layout.path)))
        p.state, p.slot, p.started, p.peak_kb, p.reported_kb = ev.RUNNING, slot, time.time(), 0, 0
        self.note_pids()

    def stop(self, p: Proc) -> None:
        """Kill a running proc's process group and write the eviction that precedes a hold or a removal."""
        _kill_group(p.popen.pid)
        p.popen.wait()
        self._close(p)
        self.write(ev.evicted_event(p.cluster, p.proc, p.cpus, p.memory_mb, p.peak_kb // 1024, self._seconds(p)))

    def _close(self, p: Proc) -> None:
        p.popen, p.slot = None, None

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
                        f"Peak usage: {(p.peak_kb + 1023) // 1024} megabytes. Consider resubmitting with a higher "
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
            if p.state == ev.RUNNING:
                running.append(p)
                busy.add(slot)
                used += p.cpus

    def queued(self) -> bool:
        return any(p.state in (ev.IDLE, ev.RUNNING) for p in self.procs.values())

    # -- main loop --------------------------------------------------------------------------
    def serve(self) -> None:
        if self.queued_on_disk():
            from multiprocessing import forkserver

            fork_context()
            forkserver.ensure_running()  # the server imports the worker while the log is read
        self.recover()
        while True:
            had_requests = self.handle_requests()
            self.reap()
            self.check_memory()
            self.schedule()
            if not had_requests and not self.queued():
                break
            self.sleep()

    def sleep(self) -> None:
        """Wait until a job ends, a request arrives, or it is time to look at the jobs' memory."""
        waits = [self.wake[0]] + [p.popen.sentinel for p in self.running() if p.popen.sentinel is not None]
        ready = multiprocessing.connection.wait(waits, timeout=MEMORY_POLL)
        if self.wake[0] in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake[0], 4096)

    def queued_on_disk(self) -> bool:
        """Whether there is anything to run: a request, or a cluster (before the log is read)."""
        return bool(self.pending()) or any(self.layout.clusters.glob("*.json"))

    def close(self) -> None:
        self.log.close()
        for fd in self.wake:
            os.close(fd)

    def fail(self, reason: str) -> None:
        """The runner cannot go on: hold every queued proc with the reason, so status and monitor say it,
        and the procs of recorded clusters that never reached the log (the status would wait for them)."""
        held = " ".join(f"The local runner failed: {reason}".split())
        for p in list(self.procs.values()):
            if p.state == ev.RUNNING and p.popen is not None:
                self.stop(p)
                p.state = ev.IDLE
            if p.state == ev.IDLE:
                self.write(ev.held_event(p.cluster, p.proc, held, RUNNER_FAILED_CODE))
                p.state = ev.HELD_STATE
        for cluster, record in load_clusters(self.layout).items():
            for proc in range(len(record.jobs)):
                if (cluster, proc) not in self.procs:
                    self.write(ev.held_event(cluster, proc, held, RUNNER_FAILED_CODE))


def _set_title(title: str) -> None:
    """What ps shows for the runner (it is started with ``python -c``)."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return
    setproctitle(title)


def _listen(fifo: Path) -> tuple[int, int]:
    """The read end of the run's wake-up pipe (and a write end kept open, so it never reads as closed)."""
    with contextlib.suppress(FileExistsError):
        os.mkfifo(fifo, 0o600)
    flags = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    reader = os.open(fifo, os.O_RDONLY | flags)
    writer = os.open(fifo, os.O_WRONLY | flags)
    return reader, writer


def wake(layout: RunDir) -> None:
    """Wake the run's runner, if one listens, to read a request now."""
    try:
        fd = os.open(layout.control_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # no runner listens (ENXIO), or none ever did (ENOENT)
        return
    try:
        os.write(fd, b".")
    except OSError:  # its pipe is full: it has been woken already
        pass
    finally:
        os.close(fd)


def _run_forked(*args) -> None:
    """The target of a forked job, in the fork server's child, where :data:`JOB_MODULE` is imported.

    The job's code is named, not imported here, as ``-m condormagic.worker`` names it for HTCondor:
    the runner schedules jobs and never loads what they run.
    """
    importlib.import_module(JOB_MODULE).run(*args)


def _is_job_of(pid: int, layout: RunDir) -> bool:
    """Whether ``pid`` is a worker of this run (a pid can be reused once its process is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    return b"condormagic.worker" in cmdline and str(layout.path).encode() in cmdline


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
    """``RUN_DIR [LOCK_FD]``: serve the run; ``LOCK_FD`` is ``runner.lock``, already locked by whoever started
    this runner (see :func:`condormagic.backends.local.start_runner`), so that only one runner ever starts."""
    argv = sys.argv[1:] if argv is None else argv
    layout = RunDir(argv[0])
    _set_title(f"condormagic.backends.runner {layout.path}")
    try:
        check_owned(layout.path)
    except UntrustedRunDir as exc:
        print(f"condormagic runner: {exc}", file=sys.stderr)
        return 1
    lock = os.fdopen(int(argv[1]), "a") if len(argv) > 1 else open_nofollow(layout.runner_lock, "a")
    if len(argv) == 1:
        fcntl.flock(lock, fcntl.LOCK_EX)
    while True:
        runner = Runner(layout)
        try:
            runner.serve()
        except Exception as exc:  # noqa: BLE001 - whatever it was, the run must say so
            traceback.print_exc()
            runner.fail(f"{type(exc).__name__}: {exc} (see runner.log)")
        finally:
            runner.close()
        lock.close()  # lets the lock go
        # A request left after the last look, while the lock was held, found a runner and started
        # none: serve it, unless another runner has taken the lock since.
        if not runner.pending():
            return 0
        lock = open_nofollow(layout.runner_lock, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return 0


if __name__ == "__main__":
    sys.exit(main())
