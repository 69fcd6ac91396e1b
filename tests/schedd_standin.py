"""A stand-in for ``htcondor2.Schedd``, for the tests only: the one piece allowed to be fake.

No HTCondor daemons can run on the development machines, so the tests stop at the schedd
boundary. :class:`ScheddStandIn` has the ``Schedd`` interface the backend uses (``submit``,
``act``, ``query``, ``history``) and records every call. It receives the real
``htcondor2.Submit`` and checks it with the real bindings (its text parses back to the same
commands, the item data are what ``Schedd.submit`` accepts), then does what a schedd and an
execute node would: writes the job event log in exactly the format of the logs a real
HTCondor 25.14 schedd wrote (``tests/data/htcondor-reference``; the writers are
``condormagic.rundir.eventlog``'s), and runs each job's real command line, expanded by the real
bindings from the description and its item data, in a scratch directory with the job's
environment (file transfer in and out, with ``transfer_output_remaps``, when asked for).

What happens when is up to the test: :meth:`negotiate` runs every idle job that fits a
slot, one after another; :meth:`start` starts one and leaves it running; :meth:`hold` and
:meth:`evict` are what the pool does to a job (a memory-limit hold, a machine going away).
Steering through ``act`` writes what the reference ``steering.log`` shows: a running job
is evicted, then held ("Reason unspecified") or aborted; a released job is idle again.

Things the reference logs do not show are refused rather than guessed: a job that would be
requeued by ``max_retries`` (the eviction event of a requeue is not in the references) makes
:meth:`negotiate` raise, so a test cannot pass on a made-up event.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import classad2
import htcondor2

from condormagic.backends.runner import rss_kb
from condormagic.backends.submitlang import split_arguments
from condormagic.rundir import eventlog as ev

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
USER = "cmtest"
_JOB_ID = re.compile(r"^\d+(\.\d+)?$")


class SubmitResult:
    """What ``Schedd.submit`` returns, as far as the backend reads it."""

    def __init__(self, cluster: int, num_procs: int):
        self._cluster, self._num_procs = cluster, num_procs

    def cluster(self) -> int:
        return self._cluster

    def first_proc(self) -> int:
        return 0

    def num_procs(self) -> int:
        return self._num_procs


@dataclass
class Submission:
    """One call of ``submit``: the description as received, and its item data."""

    cluster: int
    text: str
    commands: dict[str, str]
    items: list[dict[str, str]]
    cwd: str


@dataclass
class Job:
    cluster: int
    proc: int
    submission: Submission
    item: dict[str, str]
    status: int = IDLE
    hold_reason: str | None = None
    hold_code: int | None = None
    slot: str | None = None
    scratch: Path | None = None
    popen: subprocess.Popen | None = None
    started: float = 0.0
    wall_clock: float = 0.0
    rss_kb: int | None = None
    starts: int = 0
    completions: int = 0
    exit_code: int | None = None
    exit_signal: int | None = None
    last_rej: str | None = None
    left: float | None = None
    _submit: htcondor2.Submit | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[int, int]:
        return (self.cluster, self.proc)

    def expand(self, command: str) -> str:
        """A submit command's value for this job, macros expanded by the real bindings."""
        if self._submit is None:
            self._submit = htcondor2.Submit(self.submission.commands)
            for name, value in self.item.items():
                self._submit[name] = value
            self._submit["ClusterId"] = str(self.cluster)
            self._submit["ProcId"] = str(self.proc)
        if command not in self._submit:
            return ""
        return self._submit.expand(command)

    def path(self, command: str) -> Path:
        """A file named by a submit command, relative to the job's initial directory."""
        return self.iwd / self.expand(command)

    @property
    def iwd(self) -> Path:
        return Path(self.expand("initialdir") or self.submission.cwd)

    @property
    def transfers(self) -> bool:
        return self.expand("should_transfer_files").upper() == "YES"


class ScheddStandIn:
    """Records ``submit``/``act``/``query``/``history`` calls and plays schedd and execute node.

    Parameters
    ----------
    root : path
        Where the stand-in's execute directories go (``root/execute/dir_N/scratch``).
    first_cluster : int
        The id of the first cluster (the seed's screenshot shows 42729).
    slot_cpus, slot_memory : int
        The largest slot of the pool: a job asking for more stays idle, and a query
        says ``LastRejMatchReason = "no match found"``, as the reference shows.
    """

    def __init__(self, root, first_cluster: int = 42729, slot_cpus: int = 8, slot_memory: int = 32768):
        self.root = Path(root)
        self.next_cluster = first_cluster
        self.slot_cpus, self.slot_memory = slot_cpus, slot_memory
        self.calls: list[tuple] = []
        self.submissions: list[Submission] = []
        self.jobs: dict[tuple[int, int], Job] = {}
        self.refuse: str | None = None  # a message: the next submit fails with it
        self.deny: bool = False  # every call fails as an authentication failure does
        self._dirs = 0
        self._slots = 0

    # -- the Schedd interface ---------------------------------------------------------------
    def submit(self, description, count: int = 0, spool: bool = False, itemdata=None, queue=None) -> SubmitResult:
        self._check_access()
        assert isinstance(description, htcondor2.Submit), "submit takes the real htcondor2.Submit"
        assert count == 0 and not spool and queue is None, "the backend submits with item data only"
        text = str(description)
        commands = dict(description)
        assert description.getQArgs() == "", "the description has no queue statement of its own"
        assert dict(htcondor2.Submit(text)) == commands, "str(submit) parses back to the same commands"
        items = list(itemdata)
        assert items, "item data holds at least one job"
        keys = list(items[0])
        for item in items:
            assert isinstance(item, dict) and list(item) == keys, "every item has the same variables"
            assert all(isinstance(v, str) and "\n" not in v and "\x1f" not in v for v in item.values())
        # What Schedd.submit sends: the commands, then one queue statement over the items.
        full = text.rsplit("queue", 1)[0] + f"queue {','.join(keys)} from (\n"
        full += "".join(" ".join(item.values()) + "\n" for item in items) + ")\n"
        parsed = htcondor2.Submit(full)
        assert dict(parsed) == commands and list(parsed.itemdata()) == items
        int(commands["request_memory"])  # a whole number of MB, as condormagic writes it
        if self.refuse:
            message, self.refuse = self.refuse, None
            raise htcondor2.HTCondorException(message)

        cluster, self.next_cluster = self.next_cluster, self.next_cluster + 1
        submission = Submission(cluster, text, commands, items, os.getcwd())
        self.submissions.append(submission)
        self.calls.append(("submit", cluster, len(items)))
        for proc, item in enumerate(items):
            job = self.jobs[(cluster, proc)] = Job(cluster, proc, submission, item)
            batch = classad2.ExprTree(job.expand("My.JobBatchName")).eval()
            self._log(job, ev.submit_event(cluster, proc, batch))
        return SubmitResult(cluster, len(items))

    def act(self, action, job_spec, reason: str | None = None):
        self._check_access()
        assert isinstance(action, htcondor2.JobAction)
        jobs = self._select(job_spec)
        self.calls.append(("act", action.name, [j.key for j in jobs], reason))
        done = 0
        for job in jobs:
            if action == htcondor2.JobAction.Hold and job.status in (IDLE, RUNNING):
                self._stop(job)
                # The reason given to act reaches the job ad, not the log (see steering.log).
                self._log(job, ev.held_event(job.cluster, job.proc, "", 1))
                job.status, job.hold_reason, job.hold_code = HELD, reason or "Python-initiated action", 1
            elif action == htcondor2.JobAction.Release and job.status == HELD:
                self._log(job, ev.released_event(job.cluster, job.proc, f"Python-initiated action (by user {USER})"))
                job.status, job.hold_reason, job.hold_code = IDLE, None, None
            elif action == htcondor2.JobAction.Remove and job.status in (IDLE, RUNNING, HELD):
                self._stop(job)
                self._log(job, ev.aborted_event(job.cluster, job.proc))
                job.status, job.left = REMOVED, time.time()
            else:
                continue
            done += 1
        return classad2.ClassAd({"TotalSuccess": done, "TotalError": 0, "TotalNotFound": 0})

    def query(self, constraint="True", projection=(), callback=None, limit=-1, opts=None):
        self._check_access()
        self.calls.append(("query", str(constraint), list(projection)))
        queued = [j for j in self.jobs.values() if j.status in (IDLE, RUNNING, HELD)]
        return self._matching(queued, constraint, projection)

    def history(self, constraint=None, projection=(), match=-1, since=None):
        self._check_access()
        self.calls.append(("history", str(constraint), list(projection)))
        gone = sorted((j for j in self.jobs.values() if j.left is not None), key=lambda j: -j.left)
        return self._matching(gone, constraint or "True", projection)

    # -- what the pool does -----------------------------------------------------------------
    def negotiate(self) -> list[tuple[int, int]]:
        """Run every idle job that fits a slot, to its end, one after another; return them."""
        ran = []
        for job in sorted(self.jobs.values(), key=lambda j: j.key):
            if job.status != IDLE:
                continue
            if not self._fits(job):
                job.last_rej = "no match found"
                continue
            self.start(*job.key)
            self.finish(*job.key)
            ran.append(job.key)
        return ran

    def start(self, cluster: int, proc: int) -> Job:
        """Match one idle job to a slot and start it; it keeps running until finished or stopped."""
        job = self.jobs[(cluster, proc)]
        assert job.status == IDLE and self._fits(job), job
        self._dirs += 1
        self._slots += 1
        job.slot = f"slot1_{self._slots}"
        job.scratch = self.root / "execute" / f"dir_{self._dirs}" / "scratch"
        job.scratch.mkdir(parents=True, mode=0o700)
        cpus, memory = int(job.expand("request_cpus") or 1), int(job.expand("request_memory"))
        self._log(job, ev.execute_event(cluster, proc, job.slot, cpus, _allocated(memory), str(job.scratch)))
        job.status, job.started, job.starts, job.rss_kb, job.last_rej = RUNNING, time.time(), job.starts + 1, 0, None
        if job.transfers and not self._transfer_in(job):
            return job
        env = {"_CONDOR_SCRATCH_DIR": str(job.scratch), "_CONDOR_SLOT": job.slot, "TMPDIR": str(job.scratch)}
        for pair in split_arguments(job.expand("environment") or '""'):
            name, _, value = pair.partition("=")
            env[name] = value
        if job.transfers:
            out, err = job.scratch / "_condor_stdout", job.scratch / "_condor_stderr"
        else:
            out, err = job.path("output"), job.path("error")
        argv = [job.expand("executable"), *split_arguments(job.expand("arguments"))]
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            job.popen = subprocess.Popen(
                argv,
                cwd=job.scratch if job.transfers else job.iwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        return job

    def finish(self, cluster: int, proc: int) -> Job:
        """Wait for a running job to exit and write what its exit causes."""
        job = self.jobs[(cluster, proc)]
        assert job.status == RUNNING and job.popen is not None, job
        _, status, usage = os.wait4(job.popen.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        job.popen.returncode, job.popen = code, None
        job.rss_kb = max(job.rss_kb or 0, usage.ru_maxrss)
        seconds = self._stopped(job)
        self._log(job, ev.image_size_event(cluster, proc, job.rss_kb))
        if job.transfers and not self._transfer_out(job):
            return job
        job.completions += 1
        if code != 0 and not self._final(job, code):
            raise AssertionError(
                f"job {cluster}.{proc} exited {code} and max_retries would requeue it; the reference logs hold no "
                "requeue event, so the stand-in does not make one up"
            )
        cpus, memory = int(job.expand("request_cpus") or 1), int(job.expand("request_memory"))
        used = (job.rss_kb + 1023) // 1024
        if code >= 0:
            text = ev.terminated_event(
                cluster, proc, code, None, cpus, memory, used, seconds, allocated_mb=_allocated(memory)
            )
            job.exit_code = code
        else:
            text = ev.terminated_event(
                cluster, proc, None, -code, cpus, memory, used, seconds, allocated_mb=_allocated(memory)
            )
            job.exit_signal = -code
        self._log(job, text)
        job.status, job.left = COMPLETED, time.time()
        return job

    def hold(self, cluster: int, proc: int, reason: str, code: int, subcode: int = 0) -> Job:
        """The pool holds a job (a memory limit, a transfer failure): evicted first if it runs."""
        job = self.jobs[(cluster, proc)]
        self._stop(job)
        self._log(job, ev.held_event(cluster, proc, reason, code, subcode))
        job.status, job.hold_reason, job.hold_code = HELD, reason, code
        return job

    def evict(self, cluster: int, proc: int) -> Job:
        """The pool takes a running job's slot away (preemption, a draining machine): idle again."""
        job = self.jobs[(cluster, proc)]
        assert job.status == RUNNING, job
        self._stop(job)
        job.status = IDLE
        return job

    def close(self) -> None:
        """Kill whatever still runs (end of a test)."""
        for job in self.jobs.values():
            if job.popen is not None:
                _kill(job.popen)
                job.popen = None

    # -- inside ---------------------------------------------------------------------------------
    def _check_access(self) -> None:
        if self.deny:
            raise htcondor2.HTCondorException(
                f'SECMAN:2010:Received "DENIED" from server for user {USER} using method IDTOKENS.'
            )

    def _fits(self, job: Job) -> bool:
        return (
            int(job.expand("request_cpus") or 1) <= self.slot_cpus
            and int(job.expand("request_memory")) <= self.slot_memory
        )

    def _final(self, job: Job, code: int) -> bool:
        """Whether the job leaves the queue after exiting ``code``, as max_retries/retry_until decide."""
        if job.completions > int(job.expand("max_retries") or 0):
            return True
        until = job.expand("retry_until")
        if not until:
            return False
        if until.strip().isdigit():
            return code == int(until)
        ad = classad2.ClassAd({"ExitCode": code, "ExitBySignal": code < 0})
        return classad2.ExprTree(until).eval(ad) is True

    def _stop(self, job: Job) -> None:
        """Kill a running job and write the eviction that comes before a hold or a removal."""
        if job.status != RUNNING:
            return
        if job.popen is not None:
            _kill(job.popen)
            job.popen = None
        seconds = self._stopped(job)
        cpus, memory = int(job.expand("request_cpus") or 1), int(job.expand("request_memory"))
        used = ((job.rss_kb or 0) + 1023) // 1024
        self._log(
            job,
            ev.evicted_event(job.cluster, job.proc, cpus, memory, used, seconds, allocated_mb=_allocated(memory)),
        )

    def _stopped(self, job: Job) -> int:
        seconds = time.time() - job.started
        job.wall_clock += seconds
        return int(round(seconds))

    def _transfer_in(self, job: Job) -> bool:
        for name in _names(job.expand("transfer_input_files")):
            source = job.iwd / name
            if not source.exists():
                self.hold(*job.key, f"Transfer input files failure at access point: {source} does not exist", 13, 2)
                return False
            if source.is_dir():
                shutil.copytree(source, job.scratch / source.name, dirs_exist_ok=True)
            else:
                shutil.copy2(source, job.scratch / source.name)
        return True

    def _transfer_out(self, job: Job) -> bool:
        remaps = _remaps(job.expand("transfer_output_remaps"))
        for name in _names(job.expand("transfer_output_files")):
            source = job.scratch / name
            if not source.exists():
                job.status = IDLE  # it has exited: held without an eviction
                self.hold(
                    *job.key,
                    f"Transfer output files failure at execution point {job.slot}@{ev._HOST} while sending files "
                    f"to access point: reading from file {source}: (errno 2) No such file or directory",
                    12,
                    2,
                )
                return False
            target = job.iwd / _remap(name, remaps)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        shutil.copy2(job.scratch / "_condor_stdout", job.path("output"))
        shutil.copy2(job.scratch / "_condor_stderr", job.path("error"))
        return True

    def _select(self, job_spec) -> list[Job]:
        if isinstance(job_spec, int):
            return [j for j in self.jobs.values() if j.cluster == job_spec]
        if isinstance(job_spec, str) and _JOB_ID.match(job_spec):
            job_spec = [job_spec]
        if isinstance(job_spec, list):
            wanted = []
            for spec in job_spec:
                cluster, _, proc = spec.partition(".")
                wanted += [
                    j for j in self.jobs.values() if j.cluster == int(cluster) and (not proc or j.proc == int(proc))
                ]
            return wanted
        expr = job_spec if isinstance(job_spec, classad2.ExprTree) else classad2.ExprTree(job_spec)
        return [j for j in self.jobs.values() if expr.eval(self._ad(j)) is True]

    def _matching(self, jobs: list[Job], constraint, projection) -> list:
        expr = constraint if isinstance(constraint, classad2.ExprTree) else classad2.ExprTree(str(constraint))
        out = []
        for job in jobs:
            ad = self._ad(job)
            if expr.eval(ad) is not True:
                continue
            if projection:
                ad = classad2.ClassAd({k: ad[k] for k in projection if k in ad} | {"ServerTime": ad["ServerTime"]})
            out.append(ad)
        return out

    def _ad(self, job: Job) -> classad2.ClassAd:
        """The job's ClassAd, with the attributes the reference query and history show."""
        ad = classad2.ClassAd(
            {
                "ClusterId": job.cluster,
                "ProcId": job.proc,
                "JobStatus": job.status,
                "JobBatchName": classad2.ExprTree(job.expand("My.JobBatchName")).eval(),
                "RequestCpus": int(job.expand("request_cpus") or 1),
                "RequestMemory": int(job.expand("request_memory")),
                "NumJobStarts": job.starts,
                "ServerTime": int(time.time()),
                "Owner": USER,
            }
        )
        run_id = job.expand("My.CondormagicRun")
        if run_id:
            ad["CondormagicRun"] = classad2.ExprTree(run_id).eval()
        if job.status == RUNNING and job.popen is not None:
            job.rss_kb = max(job.rss_kb or 0, rss_kb(job.popen.pid))
        if job.rss_kb is not None:
            ad["ResidentSetSize"] = job.rss_kb
            ad["MemoryUsage"] = classad2.ExprTree("((ResidentSetSize + 1023) / 1024)")
        if job.status == RUNNING:
            ad["RemoteHost"] = f"{job.slot}@{ev._HOST}"
        if job.status == HELD:
            ad["HoldReason"], ad["HoldReasonCode"], ad["HoldReasonSubCode"] = job.hold_reason, job.hold_code, 0
        if job.last_rej and job.status == IDLE:
            ad["LastRejMatchReason"] = job.last_rej
        if job.left is not None:
            ad["ExitBySignal"] = job.exit_signal is not None or job.status == REMOVED
            ad["RemoteWallClockTime"] = float(round(job.wall_clock))
            if job.exit_code is not None:
                ad["ExitCode"] = job.exit_code
        return ad

    def _log(self, job: Job, text: str) -> None:
        with open(job.path("log"), "a") as fh:
            fh.write(text)


def _allocated(memory_mb: int) -> int:
    """The memory a partitionable slot gives a request (rounded up to 128 MB, as in the references)."""
    return int(math.ceil(memory_mb / 128) * 128)


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def _remaps(value: str) -> dict[str, str]:
    """``"a = b; c = d"``, with ``\\;`` and ``\\=`` escapes, as HTCondor's filename_remap_find reads it."""
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    rules = {}
    for rule in re.split(r"(?<!\\);", value):
        parts = re.split(r"(?<!\\)=", rule, maxsplit=1)
        if len(parts) == 2 and parts[0].strip():
            rules[parts[0].strip().replace("\\=", "=")] = parts[1].strip().replace("\\;", ";")
    return rules


def _remap(name: str, rules: dict[str, str]) -> str:
    """Where an output lands: its own rule, else under its remapped parent, else by base name."""
    return _remap_find(name, rules) or os.path.basename(name)


def _remap_find(name: str, rules: dict[str, str]) -> str | None:
    if name in rules:
        return rules[name]
    parent, _, entry = name.rpartition("/")
    mapped = _remap_find(parent, rules) if parent else None
    return f"{mapped}/{entry}" if mapped else None


def _kill(popen: subprocess.Popen) -> None:
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    popen.wait()
