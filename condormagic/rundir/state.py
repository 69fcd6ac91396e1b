"""A run's state, derived from its event log and the files its jobs left; nothing else is kept in sync.

Each job's state is that of its latest attempt (the proc of the newest cluster that holds it).
A proc that exited 0 is completed only if its job left what it promised: its metrics record,
and every tile the record says it wrote; otherwise the job is failed, with that reason, so a
retry redoes it and no mosaic is made with a hole.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import snapshot
from .clusters import ClusterRecord, load_clusters
from .eventlog import COMPLETED, FAILED, HELD_STATE, IDLE, REMOVED, RUNNING, STATES, EventLogReader
from .exitcodes import meaning
from .layout import RunDir, metrics_name, read_json, tile_name
from .manifest import Manifest

__all__ = ["COMPLETED", "FAILED", "HELD_STATE", "IDLE", "REMOVED", "RUNNING", "STATES", "JobState", "RunState"]

CODE = {state: i for i, state in enumerate(STATES)}
# A snapshot of the state is written after this many new events (or a fifth more than the last).
SNAPSHOT_EVERY = 5000
# What a job in each state waits for; the monitor and the status say it.
QUEUED = (IDLE, RUNNING)
STEERABLE = (IDLE, RUNNING, HELD_STATE)
RETRYABLE = (FAILED, HELD_STATE, REMOVED)


def is_settled(counts: dict[str, int]) -> bool:
    """No job is idle or running: the run waits for nothing but the user."""
    return counts.get(IDLE, 0) == 0 and counts.get(RUNNING, 0) == 0


@dataclass
class JobState:
    """One job of a run, as its latest attempt left it."""

    job: int
    tiles: list[int]
    state: str
    cluster: int | None = None
    proc: int | None = None
    host: str | None = None
    runtime: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    peak_memory_mb: int | None = None
    attempts: int = 0
    starts: int = 0


class RunState:
    """Follows one run directory: its clusters, its event log, its jobs' records and tiles.

    :meth:`update` reads only what is new and re-derives the state of the jobs it touched; the
    state of every job is kept as one small integer per job (:attr:`codes`), so counting a run
    of 100,000 jobs costs a fraction of a millisecond. What was read is kept in a snapshot
    (``state.pickle``, with the log offset it covers), rewritten now and then, so that another
    process opening the run reads only the events that arrived since.
    """

    def __init__(self, layout: RunDir, manifest: Manifest):
        self.layout = layout
        self.manifest = manifest
        self.clusters: dict[int, ClusterRecord] = {}
        self.reader = EventLogReader(layout.events)
        self._latest: dict[int, tuple[int, int]] = {}
        self._proc_job: dict[tuple[int, int], int] = {}
        self._attempts: Counter = Counter()
        self._metrics: set[str] | None = None  # names in metrics/ (they are never removed)
        self._tiles: set[str] | None = None  # names in tiles/
        self._records: dict[int, dict] = {}
        # The folders looked in for every job that completes (strings: pathlib costs more than the stat).
        self._metrics_dir, self._tiles_dir = str(layout.metrics), str(layout.tiles)
        # The derived state of each job, as an index into STATES; never-submitted jobs are "removed".
        self.codes = np.full(manifest.n_jobs, CODE[REMOVED], dtype=np.int8)
        self._snapshot_events = 0
        self._started = False

    # -- reading ------------------------------------------------------------------------------
    def update(self) -> set[int]:
        """Read the new clusters and events; return the jobs whose state may have changed."""
        if not self._started:
            self._started = True
            snapshot.restore(self)
        changed: set[int] = set()
        known = len(self.clusters)
        self.clusters = load_clusters(self.layout, self.clusters)
        if len(self.clusters) != known:
            self._index_clusters()
            changed.update(self._latest)
        self.reader.update()
        changed.update(self._proc_job[key] for key in self.reader.touched if key in self._proc_job)
        self.reader.touched.clear()
        if changed:
            self._derive(changed)
        if self._latest and self.count(COMPLETED) == len(self.codes):
            # Every job is done: the tiles are what the mosaic is made of, so look at them afresh
            # (one listing), in case one went missing after its job ended.
            self._tiles = None
            every = set(range(len(self.codes)))
            self._derive(every)
            changed = every
        if self.reader.n_events - self._snapshot_events >= max(SNAPSHOT_EVERY, self._snapshot_events // 5):
            self._snapshot_events = self.reader.n_events
            snapshot.save(self)
        return changed

    def _index_clusters(self) -> None:
        """Which proc is each job's latest attempt, and how many attempts each job had."""
        latest: dict[int, tuple[int, int]] = {}
        for number in sorted(self.clusters):
            jobs = self.clusters[number].jobs
            latest.update(zip(jobs, zip(itertools.repeat(number), range(len(jobs))), strict=True))
        self._latest = latest
        self._proc_job = {key: job for job, key in latest.items()}
        self._attempts = Counter(itertools.chain.from_iterable(c.jobs for c in self.clusters.values()))

    def _derive(self, jobs) -> None:
        for js in self.jobs(jobs):
            self.codes[js.job] = CODE[js.state]

    def latest(self, job: int) -> tuple[int, int] | None:
        """``(cluster, proc)`` of the job's latest attempt, or ``None`` if it was never submitted."""
        return self._latest.get(job)

    def job_of(self, key: tuple[int, int]) -> int | None:
        """The job whose latest attempt is ``(cluster, proc)``, or ``None`` (an earlier attempt, or not this run's)."""
        return self._proc_job.get(key)

    def in_states(self, states) -> np.ndarray:
        """The numbers of the jobs in any of ``states``, as of the last :meth:`update`."""
        return np.flatnonzero(np.isin(self.codes, [CODE[s] for s in states]))

    @property
    def n_events(self) -> int:
        return self.reader.n_events

    # -- deriving ------------------------------------------------------------------------------
    def jobs(self, only=None) -> list[JobState]:
        """Every job of the run (or only the ``only`` job numbers), with the state of its latest attempt."""
        out = []
        all_jobs = self.manifest.jobs
        numbers = range(len(all_jobs)) if only is None else sorted(set(only))
        now = time.time()
        for job in numbers:
            tiles = all_jobs[job]
            key = self._latest.get(job)
            if key is None:
                out.append(JobState(job, tiles, REMOVED, reason="never submitted"))
                continue
            cluster, proc = key
            st = self.reader.proc(key)
            js = JobState(job, tiles, IDLE, cluster, proc, attempts=self._attempts[job])
            if st is not None:
                js.state, js.host, js.peak_memory_mb = st.state, st.host, st.peak_memory_mb
                js.exit_code, js.starts = st.exit_code, st.starts
                if st.starts:
                    js.runtime = st.runtime + (now - st.started if st.state == RUNNING and st.started else 0)
                if st.state == HELD_STATE:
                    js.reason = st.hold_reason
                elif st.state == FAILED and st.signal:
                    # Killed from outside: the last line it printed is not why it ended.
                    js.reason = f"killed by signal {st.signal}{_signal_name(st.signal)}"
                elif st.state == FAILED:
                    js.reason = self._failure_reason(cluster, proc) or meaning(st.exit_code)
                elif st.state == COMPLETED:
                    missing = self._missing_output(job)
                    if missing:
                        js.state, js.reason = FAILED, missing
            out.append(js)
        return out

    def count(self, state: str) -> int:
        return int(np.count_nonzero(self.codes == CODE[state]))

    def counts(self) -> dict[str, int]:
        """Jobs per state, as of the last :meth:`update`: idle, running, completed, failed, held, removed."""
        found = np.bincount(self.codes, minlength=len(STATES)) if len(self.codes) else [0] * len(STATES)
        return {state: int(found[i]) for i, state in enumerate(STATES)}

    def timeline(self) -> tuple[float | None, float | None]:
        """When the first proc was submitted and when the last one ended (``None`` when unknown)."""
        return self.reader.first_submitted, self.reader.last_ended

    # -- what a job left -------------------------------------------------------------------------
    def record(self, job: int) -> dict | None:
        """The metrics record a completed job wrote (what it computed, its timing), or ``None``."""
        if job in self._records:
            return self._records[job]
        if not self._has(job):
            return None
        try:
            record = read_json(os.path.join(self._metrics_dir, metrics_name(job)))
        except (OSError, ValueError):
            return None
        self._records[job] = record
        return record

    def _has(self, job: int) -> bool:
        """Whether the job's metrics file is there: the folder is listed once, then only new names
        are looked for (a status of 10,000 jobs makes no 10,000 stat calls)."""
        name = metrics_name(job)
        if self._metrics is None:
            self._metrics = _listdir(self.layout.metrics)
        if name not in self._metrics and os.path.exists(os.path.join(self._metrics_dir, name)):
            self._metrics.add(name)
        return name in self._metrics

    def _missing_output(self, job: int) -> str | None:
        record = self.record(job)
        if record is None:
            return "the job exited 0 but its metrics record is missing"
        written = record.get("written", {})
        if not written:
            return None
        if self._tiles is None:
            self._tiles = _listdir(self.layout.tiles)
        missing = [int(t) for t in written if tile_name(int(t)) not in self._tiles]
        for t in list(missing):  # the folder was listed before the job ended, perhaps
            if os.path.exists(os.path.join(self._tiles_dir, tile_name(t))):
                self._tiles.add(tile_name(t))
                missing.remove(t)
        if missing:
            return (
                f"the job completed but its tile file{'s' if len(missing) > 1 else ''} "
                f"{', '.join(tile_name(t) for t in missing[:3])}{' ...' if len(missing) > 3 else ''} "
                "is missing from tiles/: retry redoes it"
            )
        return None

    def _failure_reason(self, cluster: int, proc: int) -> str | None:
        """The reason a failed proc gave: the last ``condormagic:`` line of its stderr, or its last line."""
        path = self.layout.log(cluster, proc, "err")
        try:
            with open(path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(path) - 4096))
                tail = fh.read().decode(errors="replace").splitlines()
        except OSError:
            return None
        for line in reversed(tail):
            if line.startswith("condormagic: "):
                return line.split(": ", 2)[-1]
        return tail[-1] if tail else None


def _listdir(path) -> set[str]:
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def _signal_name(number: int) -> str:
    try:
        return f" ({signal.Signals(int(number)).name})"
    except (ValueError, TypeError):
        return ""
