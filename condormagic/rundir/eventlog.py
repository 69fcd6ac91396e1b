"""The HTCondor job event log: written by the local backend, read for every run.

The writer produces the text a real schedd writes (see the recorded logs in the
project's tests) and needs no bindings; the reader goes through ``htcondor2.JobEventLog``
(imported on its first read) and keeps its place, so a refresh reads only the events
that arrived since the last one.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field, fields

# Event type numbers, as in htcondor2.JobEventType, so that writing needs no bindings.
SUBMIT, EXECUTE, EVICTED, TERMINATED, IMAGE_SIZE, ABORTED, HELD, RELEASED = 0, 1, 4, 5, 6, 9, 12, 13

IDLE, RUNNING, COMPLETED, FAILED, HELD_STATE, REMOVED = "idle", "running", "completed", "failed", "held", "removed"
STATES = (IDLE, RUNNING, COMPLETED, FAILED, HELD_STATE, REMOVED)

_HOST = socket.gethostname().split(".")[0] or "localhost"
_USAGE = "Usr 0 00:00:00, Sys 0 00:00:00"


def _addr(kind: str) -> str:
    return f"<127.0.0.1:0?addrs=127.0.0.1-0&alias={_HOST}&noUDP&sock={kind}_{os.getpid()}>"


def _head(code: int, cluster: int, proc: int, text: str, when: float | None) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when if when is not None else time.time()))
    return f"{code:03d} ({cluster:03d}.{proc:03d}.000) {stamp} {text}\n"


def _resources(
    cpus: int, disk_kb: int, memory_mb: int, used_mb: int, seconds: int, allocated_mb: int | None = None
) -> str:
    allocated_mb = memory_mb if allocated_mb is None else allocated_mb
    return (
        "\tPartitionable Resources :    Usage  Request Allocated \n"
        f"\t   Cpus                 :        0 {cpus:>8} {cpus:>9} \n"
        f"\t   Disk (KB)            :        0 {disk_kb:>8} {disk_kb:>9} \n"
        "\t   GPUs                 :                           0 \n"
        f"\t   Memory (MB)          : {used_mb:>8} {memory_mb:>8} {allocated_mb:>9} \n"
        f"\t   TimeExecute (s)      : {seconds:>8}                    \n"
        f"\t   TimeSlotBusy (s)     : {seconds:>8}                    \n"
    )


def submit_event(cluster: int, proc: int, batch_name: str, when: float | None = None) -> str:
    return (
        _head(SUBMIT, cluster, proc, f"Job submitted from host: {_addr('schedd')}", when)
        + f'    [ JobBatchName = "{_escape(batch_name)}" ]\n...\n'
    )


def execute_event(
    cluster: int, proc: int, slot: str, cpus: int, memory_mb: int, scratch: str, when: float | None = None
) -> str:
    return (
        _head(EXECUTE, cluster, proc, f"Job executing on host: {_addr('startd')}", when)
        + f"\tSlotName: {slot}@{_HOST}\n"
        + f'\tCondorScratchDir = "{_escape(scratch)}"\n'
        + f"\tCpus = {cpus}\n\tDisk = 1048576\n\tGPUs = 0\n\tMemory = {memory_mb}\n...\n"
    )


def image_size_event(cluster: int, proc: int, rss_kb: int, when: float | None = None) -> str:
    return (
        _head(IMAGE_SIZE, cluster, proc, f"Image size of job updated: {rss_kb}", when)
        + f"\t{(rss_kb + 1023) // 1024}  -  MemoryUsage of job (MB)\n"
        + f"\t{rss_kb}  -  ResidentSetSize of job (KB)\n...\n"
    )


def terminated_event(
    cluster: int,
    proc: int,
    return_value: int | None,
    signal: int | None = None,
    cpus: int = 1,
    memory_mb: int = 0,
    used_mb: int = 0,
    seconds: int = 0,
    when: float | None = None,
    allocated_mb: int | None = None,
) -> str:
    if signal is None:
        how = f"\t(1) Normal termination (return value {return_value})\n"
    else:
        how = f"\t(0) Abnormal termination (signal {signal})\n\t(0) No core file\n"
    usage = "".join(
        f"\t\t{_USAGE}  -  {what}\n"
        for what in ("Run Remote Usage", "Run Local Usage", "Total Remote Usage", "Total Local Usage")
    )
    transfer = "".join(
        f"\t0  -  {what}\n"
        for what in (
            "Run Bytes Sent By Job",
            "Run Bytes Received By Job",
            "Total Bytes Sent By Job",
            "Total Bytes Received By Job",
        )
    )
    return (
        _head(TERMINATED, cluster, proc, "Job terminated.", when)
        + how
        + usage
        + transfer
        + _resources(cpus, 1048576, memory_mb, used_mb, seconds, allocated_mb)
        + "...\n"
    )


def evicted_event(
    cluster: int,
    proc: int,
    cpus: int = 1,
    memory_mb: int = 0,
    used_mb: int = 0,
    seconds: int = 0,
    when: float | None = None,
    allocated_mb: int | None = None,
) -> str:
    return (
        _head(EVICTED, cluster, proc, "Job was evicted. Code 1009 Subcode 0", when)
        + "\t(0) CPU times\n"
        + f"\t\t{_USAGE}  -  Run Remote Usage\n\t\t{_USAGE}  -  Run Local Usage\n"
        + "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n"
        + "\tReason: Claim deactivated\n"
        + _resources(cpus, 1048576, memory_mb, used_mb, seconds, allocated_mb)
        + "...\n"
    )


def held_event(cluster: int, proc: int, reason: str, code: int, subcode: int = 0, when: float | None = None) -> str:
    reason = " ".join(reason.split()) or "Reason unspecified"
    return _head(HELD, cluster, proc, "Job was held.", when) + f"\t{reason}\n\tCode {code} Subcode {subcode}\n...\n"


def released_event(cluster: int, proc: int, reason: str, when: float | None = None) -> str:
    return _head(RELEASED, cluster, proc, "Job was released.", when) + f"\t{' '.join(reason.split())}\n...\n"


def aborted_event(cluster: int, proc: int, reason: str | None = None, when: float | None = None) -> str:
    text = _head(ABORTED, cluster, proc, "Job was aborted.", when)
    if reason:
        text += f"\t{' '.join(reason.split())}\n"
    return text + "...\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


@dataclass
class ProcState:
    """What the event log says about one job attempt (one cluster.proc)."""

    cluster: int
    proc: int
    state: str = IDLE
    host: str | None = None
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None
    runtime: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    hold_reason: str | None = None
    hold_code: int | None = None
    peak_memory_mb: int | None = None
    starts: int = 0
    history: list[str] = field(default_factory=list)


# The fields of a ProcState kept in a snapshot (its history is not: a proc read from a snapshot
# starts its history with the state it had), by kind.
_COLUMNS = tuple(f.name for f in fields(ProcState) if f.name != "history")
_TEXT = ("host", "hold_reason")
_FLOATS = ("submitted", "started", "ended", "runtime")
_STATE_CODE = {state: i for i, state in enumerate(STATES)}


class EventLogReader:
    """Follows one event log and keeps the state of every cluster.proc in it.

    Each :meth:`update` reads only what was appended since the previous call.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.procs: dict[tuple[int, int], ProcState] = {}
        self.n_events = 0
        # The procs that gained events since the caller last emptied this set.
        self.touched: set[tuple[int, int]] = set()
        self.first_submitted: float | None = None
        self.last_ended: float | None = None
        self._columns: dict | None = None  # procs of a snapshot, made into ProcState on first use
        self._log = None

    def update(self) -> int:
        """Read new events; return how many there were."""
        if self._log is None:
            if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
                return 0  # nothing yet (a new run's runner starts without the bindings)
            import htcondor2

            self._log = htcondor2.JobEventLog(self.path)
        count = 0
        for event in self._log.events(stop_after=0):
            self._apply(event)
            count += 1
        self.n_events += count
        return count

    def _apply(self, event) -> None:
        key = (event.cluster, event.proc)
        st = self.proc(key)
        if st is None:
            st = self.procs[key] = ProcState(event.cluster, event.proc)
        kind = int(event.type)
        when = float(event.timestamp)
        if kind == SUBMIT:
            st.state, st.submitted = IDLE, when
        elif kind == EXECUTE:
            st.state, st.started, st.ended = RUNNING, when, None
            st.host = event.get("SlotName") or event.get("ExecuteHost")
            st.starts += 1
            st.hold_reason = st.hold_code = None
        elif kind == IMAGE_SIZE:
            mem = event.get("MemoryUsage")
            if mem is not None:
                st.peak_memory_mb = max(st.peak_memory_mb or 0, int(mem))
        elif kind == EVICTED:
            self._stop(st, when)
            st.state = IDLE
        elif kind == TERMINATED:
            self._stop(st, when)
            st.ended = when
            if event.get("TerminatedNormally"):
                st.exit_code, st.signal = int(event.get("ReturnValue")), None
            else:
                st.exit_code, st.signal = None, event.get("TerminatedBySignal")
            st.state = COMPLETED if st.exit_code == 0 else FAILED
            mem = event.get("MemoryUsage")
            if mem is not None:
                st.peak_memory_mb = max(st.peak_memory_mb or 0, int(mem))
        elif kind == HELD:
            self._stop(st, when)
            st.state = HELD_STATE
            st.hold_code = event.get("HoldReasonCode")
            # A hold asked for with condor_hold or Schedd.act logs no reason, only code 1 (UserRequest).
            unspecified = "held by a user" if st.hold_code == 1 else "Reason unspecified"
            st.hold_reason = event.get("HoldReason") or unspecified
        elif kind == RELEASED:
            st.state = IDLE
            st.hold_reason = st.hold_code = None
        elif kind == ABORTED:
            self._stop(st, when)
            st.state, st.ended = REMOVED, when
        else:
            return  # types a reader does not use (file transfer, shadow exceptions...)
        st.history.append(st.state)
        self.touched.add(key)
        if kind == SUBMIT and (self.first_submitted is None or when < self.first_submitted):
            self.first_submitted = when
        if st.ended is not None and (self.last_ended is None or st.ended > self.last_ended):
            self.last_ended = st.ended

    def proc(self, key: tuple[int, int]) -> ProcState | None:
        """The state of one cluster.proc (read from a snapshot's columns on first use), or ``None``."""
        st = self.procs.get(key)
        if st is None and self._columns is not None:
            st = self._from_columns(key)
        return st

    # -- a snapshot of what was read, so that another process need not read it again ----------
    def getstate(self) -> dict:
        """What was read so far, in columns, and where the reading stands (the bindings' reader pickles its offset)."""
        import pickle

        import numpy as np  # not at the top: the local runner reads logs without numpy

        if self._columns is not None:  # what a snapshot gave and nothing has touched since
            for key in zip(self._columns["cluster"].tolist(), self._columns["proc"].tolist(), strict=True):
                self.proc(key)
        procs = list(self.procs.values())
        columns = {}
        for name in _COLUMNS:
            values = [getattr(st, name) for st in procs]
            if name == "state":
                columns[name] = np.array([_STATE_CODE[v] for v in values], dtype=np.int8)
            elif name in _TEXT:
                columns[name] = values
            else:
                columns[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return {
            "log": pickle.dumps(self._log) if self._log is not None else None,
            "n_events": self.n_events,
            "columns": columns,
            "first_submitted": self.first_submitted,
            "last_ended": self.last_ended,
        }

    def setstate(self, state: dict) -> None:
        """Resume from :meth:`getstate`; procs are made from the columns only when asked for."""
        import pickle

        import numpy as np

        self._log = pickle.loads(state["log"]) if state["log"] is not None else None
        self.n_events = state["n_events"]
        self.first_submitted, self.last_ended = state["first_submitted"], state["last_ended"]
        self.procs = {}
        columns = state["columns"]
        keys = columns["cluster"].astype(np.int64) * (1 << 32) + columns["proc"].astype(np.int64)
        order = np.argsort(keys)
        self._columns, self._keys, self._order = columns, keys[order], order

    def _from_columns(self, key: tuple[int, int]) -> ProcState | None:
        import numpy as np

        wanted = key[0] * (1 << 32) + key[1]
        at = int(np.searchsorted(self._keys, wanted))
        if at >= len(self._keys) or self._keys[at] != wanted:
            return None
        row = int(self._order[at])
        c = self._columns
        values = {}
        for name in _COLUMNS:
            value = c[name][row]
            if name == "state":
                value = STATES[int(value)]
            elif name not in _TEXT:
                value = None if np.isnan(value) else (float(value) if name in _FLOATS else int(value))
            values[name] = value
        st = self.procs[key] = ProcState(**values, history=[values["state"]])
        return st

    @staticmethod
    def _stop(st: ProcState, when: float) -> None:
        if st.state == RUNNING and st.started is not None:
            st.runtime += max(0.0, when - st.started)
