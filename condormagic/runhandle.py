"""A run: a run directory, its state and its backend. Steering, waiting, the output; no display code.

Returned by :func:`condormagic.submit` and ``%%condor``; found again with :func:`condormagic.run`.
Only run directories this user owns, and nobody else can write, are ever opened as runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import config
from .backends import get_backend
from .backends.base import Backend
from .errors import CondorMagicError, RunNotFound, SchedulerError
from .resources import parse_resources
from .rundir import index
from .rundir.layout import DirLock, RunDir
from .rundir.manifest import Manifest
from .rundir.results import finalize, output_path, recorded_output, sum_metrics
from .rundir.state import (
    COMPLETED,
    HELD_STATE,
    IDLE,
    QUEUED,
    RETRYABLE,
    STATES,
    STEERABLE,
    JobState,
    RunState,
    is_settled,
)

# How often a waiting process makes sure the run's jobs are looked after (a runner that died).
WATCH_INTERVAL = 2.0
# How often the scheduler is asked why idle jobs wait (and so whether it answers), at most.
WAITING_INTERVAL = 5.0


class Run:
    """A run of a function over tiles: the handle to its directory.

    Parameters
    ----------
    path : str or path-like
        The run directory. It must belong to this user and be writable by nobody else.

    Raises
    ------
    CondorMagicError
        The folder is not a run directory, or is not this user's own.
    """

    def __init__(self, path: str | os.PathLike):
        self.layout = RunDir(path)
        self.manifest: Manifest = index.open_run_dir(self.layout.path)
        self.state = RunState(self.layout, self.manifest)
        self.attached = False
        self._last_watch = 0.0
        self._watch_note: str | None = None
        self._counts: dict[str, int] | None = None
        # Under Voilà, whether this run's jobs may be steered from the page (%%condor --allow-dashboard-submit).
        self.dashboard_steering = False
        self._engine: Backend | None = None
        self._waiting: dict[int, str] = {}
        self._waiting_at = -WAITING_INTERVAL
        # The scheduler's silence, in one sentence, while it lasts (see waiting_reasons).
        self.scheduler_problem: str | None = None

    # -- identity -------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.layout.path

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def options(self) -> dict:
        return self.manifest.options

    @property
    def backend(self) -> str:
        """The backend's name: ``local`` or ``htcondor``."""
        return self.options["backend"]

    @property
    def n_jobs(self) -> int:
        return self.manifest.n_jobs

    @property
    def clusters(self) -> list[int]:
        self.state.update()
        return sorted(self.state.clusters)

    @property
    def cluster_id(self) -> int | None:
        """The cluster the run was first submitted as (retries add clusters)."""
        clusters = self.clusters
        return clusters[0] if clusters else None

    @property
    def created(self) -> float:
        return self.manifest.created

    def reopen(self) -> Run:
        """A new handle on the same run directory, with its own state reader (for another thread)."""
        return Run(self.path)

    # -- state ----------------------------------------------------------------------
    def refresh(self) -> int:
        """Read what the event log gained since the last refresh; return the number of new events."""
        before = self.state.n_events
        self.state.update()
        return self.state.n_events - before

    def poll(self) -> set[int]:
        """Read what is new; return the jobs whose state may have changed since the last read."""
        return self.state.update()

    def jobs(self, refresh: bool = True, only=None) -> list[JobState]:
        """Every job of the run (or only the ``only`` job numbers), with the state of its latest attempt."""
        if refresh:
            self.state.update()
        jobs = self.state.jobs(only)
        if self._waiting:
            for j in jobs:
                if j.state == IDLE and j.job in self._waiting:
                    j.reason = self._waiting[j.job]
        return jobs

    def status(self) -> dict[str, int]:
        """Counts of jobs per state: idle, running, completed, failed, held, removed."""
        self.state.update()
        self._counts = self.state.counts()
        return dict(self._counts)

    @property
    def settled(self) -> bool:
        """No job is idle or running: the run waits for nothing but the user."""
        return is_settled(self.status())

    @property
    def complete(self) -> bool:
        return self.status()[COMPLETED] == self.n_jobs

    def timeline(self) -> tuple[float | None, float | None]:
        """When the run's first job was submitted and when its last job ended (``None`` when unknown)."""
        return self.state.timeline()

    def log_path(self, job: int, stream: str = "out") -> Path | None:
        """The ``out`` or ``err`` file of the latest attempt of ``job``."""
        key = self.state.latest(job)
        return None if key is None else self.layout.log(*key, stream)

    def logs(self, job: int) -> tuple[str, str]:
        """The stdout and stderr of the latest attempt of ``job``."""
        self.state.update()
        texts = []
        for stream in ("out", "err"):
            path = self.log_path(job, stream)
            texts.append(path.read_text(errors="replace") if path and path.exists() else "")
        return texts[0], texts[1]

    def query(self) -> dict[int, dict]:
        """Ask the scheduler what the event log cannot say about the run's queued jobs.

        One query for the whole run, made only when some job is idle, running or held:
        the hold reason, the host, the memory in use, why a job stays idle (HTCondor's
        ``HoldReason``, ``RemoteHost``, ``MemoryUsage``, ``LastRejMatchReason``...).
        Returns ``{job: {attribute: value}}``; empty for the local backend.
        """
        self.state.update()
        queued = set(self.state.in_states(STEERABLE).tolist())
        if not queued:
            return {}
        answers = self._backend().query(self.layout, self.manifest)
        out = {}
        for key, info in answers.items():
            job = self.state.job_of(key)
            if job in queued:
                out[job] = info
        return out

    def waiting_reasons(self) -> dict[int, str]:
        """Why idle jobs cannot start as they are, by job (``{0: "no slot in the pool has 3 CPUs (the
        largest has 2)"}``); a job that only waits for a free slot has none.

        The scheduler is asked (HTCondor: each cluster's request against the pool's slots) at most
        every :data:`WAITING_INTERVAL` seconds while jobs are queued, and the answer becomes the
        ``reason`` of those idle jobs in :meth:`jobs`. When it does not answer,
        :attr:`scheduler_problem` says so in one sentence and the last answer is kept; the next
        answer clears it. Never raises for the scheduler's sake. Reads no new events: call
        :meth:`status` (or :meth:`poll`) first.
        """
        now = time.monotonic()
        if now - self._waiting_at < WAITING_INTERVAL:
            return dict(self._waiting)
        self._waiting_at = now
        ask = getattr(self._backend(), "waiting", None)  # the local backend has nothing to add
        # What was read last (refreshing here would hide changes from a monitor's own poll).
        queued = [] if ask is None else self.state.in_states(QUEUED).tolist()
        if not queued:
            self._waiting, self.scheduler_problem = {}, None
            return {}
        idle: dict[int, list[int]] = {}
        for job in self.state.in_states((IDLE,)).tolist():
            key = self.state.latest(job)
            if key is not None:
                idle.setdefault(key[0], []).append(job)
        try:
            by_cluster = ask(self.layout, self.manifest, sorted(idle))
        except SchedulerError as exc:
            self.scheduler_problem = str(exc)
            return dict(self._waiting)
        self.scheduler_problem = None
        self._waiting = {job: by_cluster[c] for c, js in idle.items() if c in by_cluster for job in js}
        return dict(self._waiting)

    def watch(self) -> str | None:
        """Make sure the run's queued jobs are looked after (a local runner that was killed is
        replaced); return what was wrong, or ``None``."""
        if is_settled(self.status()):
            return None
        note = self._backend().watch(self.layout, self.manifest)
        if note:
            self._watch_note = note
        return note

    # -- results --------------------------------------------------------------------
    @property
    def output(self) -> str | None:
        """The Cloud-Optimized GeoTIFF mosaic, once every job has completed (else ``None``).

        Made on first use after the run completes, from the tiles the jobs wrote; ``None``
        also when the function returned only metrics.

        Raises
        ------
        CondorMagicError
            The tiles cannot make one output (they returned different bands).
        """
        done = recorded_output(self.layout)
        if done:
            return done
        if not self.complete:
            return None
        return finalize(self.layout, self.manifest, self._records())

    def to_xarray(self, chunks=None, masked: bool = True):
        """The output COG as a lazy ``xarray.DataArray`` (opened with rioxarray: nothing is read yet).

        Its ``band`` coordinate holds the band names when the function returned a dict of named
        arrays (else 1, 2, ...); ``x``, ``y`` and ``spatial_ref`` place it, as rioxarray does.

        Parameters
        ----------
        chunks : optional
            Passed to ``rioxarray.open_rasterio`` (``True`` or ``{"x": 1024, "y": 1024}``: dask
            arrays, which needs dask); default: lazily loaded NumPy.
        masked : bool
            Nodata as NaN (the default), as rioxarray's ``masked``.

        Raises
        ------
        CondorMagicError
            The run has no output: not complete yet, or its function returned only metrics.
        """
        output = self.output
        if output is None:
            why = "its function returned only metrics" if self.complete else f"it is not complete: {self.status()}"
            raise CondorMagicError(f"Run {self.name} ({self.id}) has no output to open: {why}.")
        import warnings

        import rioxarray

        with warnings.catch_warnings():
            # rioxarray composes affines with `*`, which affine 2.4 deprecates.
            warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)
            array = rioxarray.open_rasterio(output, chunks=chunks, masked=masked, cache=False)
        names = array.attrs.get("long_name")
        if isinstance(names, str):
            names = (names,)
        if names and len(names) == array.sizes["band"] and all(names):
            array = array.assign_coords(band=list(names))
        return array.rename(self.name)

    @property
    def output_path(self) -> Path:
        """Where the output goes when the run completes (``--output``, or ``output.tif`` in the run directory)."""
        return output_path(self.layout, self.manifest)

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics the function returned, summed over every completed job."""
        return sum_metrics(self._records())

    def _records(self) -> list[dict]:
        return [r for j in self.jobs() if j.state == COMPLETED and (r := self.state.record(j.job)) is not None]

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> Run:
        """Block until no job is idle or running (or ``timeout`` seconds); return the run.

        While waiting, a run whose local runner stopped (killed, or the machine restarted) is
        taken over by a new runner, so ``wait`` returns.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wait_submitted()
        while not self.settled:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.name} ({self.id}) is still running after {timeout} s: {self.status()}")
            if time.monotonic() - self._last_watch > WATCH_INTERVAL:
                self._last_watch = time.monotonic()
                self.watch()
            time.sleep(poll)
        if self.complete:
            _ = self.output
        return self

    def wait_submitted(self) -> None:
        """Wait until the process that made this run has submitted its jobs (a moment, usually)."""
        try:
            with DirLock(self.layout.submit_lock):
                pass
        except FileNotFoundError:  # the submission failed and its directory is gone
            pass

    # -- steering -------------------------------------------------------------------
    def _backend(self) -> Backend:
        if self._engine is None:
            self._engine = get_backend(self.backend)
        return self._engine

    def _procs(self, jobs, states) -> list[tuple[int, int]]:
        wanted = None if jobs is None else {int(j) for j in jobs}
        return [
            (j.cluster, j.proc)
            for j in self.jobs()
            if j.cluster is not None and j.state in states and (wanted is None or j.job in wanted)
        ]

    def _act(self, action: str, jobs, states) -> int:
        _refuse_in_dashboard(f"run.{action}()", self.dashboard_steering)
        if jobs is None:
            # Every job of the run the action applies to, as the scheduler sees them when it acts: the
            # log lags (a hold asked for a moment ago, or a held event that reaches it only once the job
            # is vacated), so the jobs are not picked from it.
            return self._backend().act(self.layout, self.manifest, action, None)
        procs = self._procs(jobs, states)
        return self._backend().act(self.layout, self.manifest, action, procs) if procs else 0

    def remove(self, jobs=None) -> int:
        """Remove the run's idle, running and held jobs (or only ``jobs``); return how many."""
        return self._act("remove", jobs, STEERABLE)

    def hold(self, jobs=None) -> int:
        """Hold the run's idle and running jobs (or only ``jobs``); return how many."""
        return self._act("hold", jobs, ("idle", "running"))

    def release(self, jobs=None) -> int:
        """Release the run's held jobs (or only ``jobs``); return how many."""
        return self._act("release", jobs, (HELD_STATE,))

    def retry(self, cpus=None, mem=None, disk=None) -> list[int]:
        """Submit the failed, held and removed jobs again, as a new cluster of the same run.

        ``cpus``, ``mem`` and ``disk`` change what the new jobs request (for a job held
        for going over its memory, say); they are recorded in the manifest's options.
        """
        _refuse_in_dashboard("run.retry()", self.dashboard_steering)
        changes = parse_resources(cpus=cpus, mem=mem, disk=disk)
        backend = self._backend()
        if changes:
            from .resources import Resources

            o = {**self.options, **changes}
            note = backend.check(Resources(o["cpus"], o["mem"], o.get("gpus", 0), o.get("disk")))
            if note:
                print(note)
            self.manifest.options.update(changes)
            self.manifest.save(self.layout.manifest)
        todo = [j for j in self.jobs() if j.state in RETRYABLE]
        held = [(j.cluster, j.proc) for j in todo if j.state == HELD_STATE]
        if held:
            backend.act(self.layout, self.manifest, "remove", held)
        jobs = [j.job for j in todo]
        if jobs:
            backend.submit(self.layout, self.manifest, jobs)
        return jobs

    # -- display --------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from .display.cards import run_card

        return run_card(self)

    def explore(self):
        """The output at full resolution on a map, split against the inputs (see ``cm.explore``)."""
        from .display.explorer import explore_run

        return explore_run(self)

    def _ipython_display_(self) -> None:
        from .display import show

        show(self)

    def __repr__(self) -> str:
        counts = (
            "" if self._counts is None else " (" + ", ".join(f"{k} {v}" for k, v in self._counts.items() if v) + ")"
        )
        return f"<Run {self.name} {self.id} on {self.backend}: {self.n_jobs} jobs{counts} at {self.path}>"


def _refuse_in_dashboard(what: str, allowed: bool = False) -> None:
    """Under Voilà, the author's jobs are not steered from a page unless the author allowed it."""
    from .voila import refuse_in_dashboard

    if not allowed:
        refuse_in_dashboard(what)


# -- finding runs ------------------------------------------------------------------------------
def _root(root) -> Path:
    return Path(root) if root else config.runs_dir()


def _warn(skipped: list[str]) -> None:
    for message in skipped:
        print(f"condormagic: skipped {message}", file=sys.stderr)


def list_runs(root: str | os.PathLike | None = None, warn: bool = True) -> list[Run]:
    """Every usable run in the runs directory, newest first; a line on stderr for each folder skipped."""
    found, skipped = index.scan(_root(root))
    if warn:
        _warn(skipped)
    runs = []
    for path, _ in found:
        try:
            runs.append(Run(path))
        except CondorMagicError as exc:
            if warn:
                _warn([str(exc)])
    return sorted(runs, key=lambda r: r.created, reverse=True)


def find_run(name_or_id: str, root: str | os.PathLike | None = None) -> Run:
    """The run with this id (or unique id prefix), else the newest run with this name."""
    root = _root(root)
    direct = root / name_or_id
    if name_or_id and "/" not in name_or_id and (direct / "manifest.json").exists():
        return Run(direct)
    runs = list_runs(root)
    by_prefix = [r for r in runs if r.id.startswith(name_or_id)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    by_name = [r for r in runs if r.name == name_or_id]
    if by_name:
        return by_name[0]
    if by_prefix:
        raise RunNotFound(
            f"{name_or_id!r} is the start of {len(by_prefix)} run ids ({', '.join(r.id for r in by_prefix[:3])}"
            f"{', ...' if len(by_prefix) > 3 else ''}): give more of the id."
        )
    raise RunNotFound(f"No run is named or numbered {name_or_id!r} in {root}: `condormagic runs` lists them.")


def find_by_content(content_hash: str, root: str | os.PathLike | None = None) -> Run | None:
    """The newest usable run whose result is determined by the same content, once it is submitted.

    Folders that another user could have made or changed are never attached to.
    """
    root = _root(root)
    if not root.is_dir():
        return None
    candidates = []
    for path in root.glob(f"{content_hash}*"):
        try:
            run = Run(path)
        except CondorMagicError as exc:
            _warn([str(exc)])  # someone else's folder with this run's name: never attached to
            continue
        if run.manifest.content_hash != content_hash:
            continue
        run.wait_submitted()
        if run.path.exists() and run.clusters:
            candidates.append(run)
    return max(candidates, key=lambda r: r.created) if candidates else None


__all__ = ["STATES", "Run", "find_by_content", "find_run", "list_runs"]
