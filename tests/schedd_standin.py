"""A stand-in for ``htcondor2.Schedd``, for what a real one-machine pool cannot show.

Everything a schedd does that the test pool can do is tested on the pool
(``test_htcondor_pool*.py``). What is left here: a schedd that refuses who the user is (an
authentication failure, which the pool's host-based security never gives), and a submission
that must not reach any schedd at all. :class:`ScheddStandIn` has the ``Schedd`` interface the
backend uses (``submit``, ``act``, ``query``) and records every call; it checks the real
``htcondor2.Submit`` it receives with the real bindings, and writes the submit events of the
jobs it queues in the format of the logs a real HTCondor 25.14 schedd wrote
(``tests/data/htcondor-reference``). It runs no job.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import classad2
import htcondor2

from condormagic.rundir import eventlog as ev

IDLE, REMOVED, HELD = 1, 3, 5
USER = "cmtest"


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
class Job:
    cluster: int
    proc: int
    commands: dict[str, str]
    item: dict[str, str]
    status: int = IDLE

    def expand(self, command: str) -> str:
        """A submit command's value for this job, macros expanded by the real bindings."""
        submit = htcondor2.Submit(self.commands)
        for name, value in self.item.items():
            submit[name] = value
        submit["ClusterId"], submit["ProcId"] = str(self.cluster), str(self.proc)
        return submit.expand(command) if command in submit else ""

    def ad(self) -> classad2.ClassAd:
        ad = classad2.ClassAd({"ClusterId": self.cluster, "ProcId": self.proc, "JobStatus": self.status})
        ad["CondormagicRun"] = classad2.ExprTree(self.expand("My.CondormagicRun")).eval()
        ad["ServerTime"] = int(time.time())
        return ad


class ScheddStandIn:
    """Records ``submit``/``act``/``query`` calls; with ``deny``, every call fails as an authentication failure does."""

    def __init__(self, first_cluster: int = 42729):
        self.next_cluster = first_cluster
        self.calls: list[tuple] = []
        self.jobs: dict[tuple[int, int], Job] = {}
        self.deny = False

    def submit(self, description, count: int = 0, spool: bool = False, itemdata=None, queue=None) -> SubmitResult:
        self._check_access()
        assert isinstance(description, htcondor2.Submit), "submit takes the real htcondor2.Submit"
        assert count == 0 and not spool and queue is None, "the backend submits with item data only"
        commands = dict(description)
        assert dict(htcondor2.Submit(str(description))) == commands, "str(submit) parses back to the same commands"
        items = list(itemdata)
        assert items and all(isinstance(i, dict) and list(i) == list(items[0]) for i in items)
        cluster, self.next_cluster = self.next_cluster, self.next_cluster + 1
        self.calls.append(("submit", cluster, len(items)))
        for proc, item in enumerate(items):
            job = self.jobs[(cluster, proc)] = Job(cluster, proc, commands, item)
            batch = classad2.ExprTree(job.expand("My.JobBatchName")).eval()
            with open(job.expand("log"), "a") as log:
                log.write(ev.submit_event(cluster, proc, batch))
        return SubmitResult(cluster, len(items))

    def act(self, action, job_spec, reason: str | None = None):
        self._check_access()
        expr = classad2.ExprTree(str(job_spec))
        jobs = [j for j in self.jobs.values() if expr.eval(j.ad()) is True]
        self.calls.append(("act", action.name, [(j.cluster, j.proc) for j in jobs], reason))
        return classad2.ClassAd({"TotalSuccess": len(jobs), "TotalError": 0, "TotalNotFound": 0})

    def query(self, constraint="True", projection=(), callback=None, limit=-1, opts=None):
        self._check_access()
        self.calls.append(("query", str(constraint), list(projection)))
        expr = classad2.ExprTree(str(constraint))
        return [j.ad() for j in self.jobs.values() if expr.eval(j.ad()) is True]

    def _check_access(self) -> None:
        if self.deny:
            raise htcondor2.HTCondorException(
                f'SECMAN:2010:Received "DENIED" from server for user {USER} using method IDTOKENS.'
            )


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
