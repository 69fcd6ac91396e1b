"""The run directory: create it, find it again, and derive its state.

A run is a directory, readable without the process that made it::

    manifest.json   grid, sources, tiles, jobs, options, versions
    function.pkl    the function (cloudpickle)
    submit.sub      the submit description and its item data, for condor_submit
    clusters/       one JSON file per submitted cluster: which job each proc runs
    events.log      the HTCondor job event log
    logs/           each proc's stdout and stderr
    tiles/          one GeoTIFF per tile
    metrics/        one JSON file per completed job
    output.vrt      and the COG, when every job has completed

Its state is derived from ``events.log`` plus the files present.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import RunNotFound
from .eventlog import COMPLETED, FAILED, HELD_STATE, IDLE, REMOVED, RUNNING, STATES, EventLogReader
from .files import write_json_atomic


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


class Run:
    """A run of a function over tiles: the handle to its directory.

    Returned by :func:`condormagic.submit` and ``%%condor``; found again with
    :func:`condormagic.run`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / "manifest.json").exists():
            raise RunNotFound(f"{self.path} is not a condormagic run directory (it has no manifest.json).")
        with open(self.path / "manifest.json") as fh:
            self.manifest = json.load(fh)
        self._reader = EventLogReader(self.path / "events.log")
        self._clusters: dict[int, dict] = {}
        self._metrics: set[str] | None = None  # names of the metrics files seen (they are never removed)
        self.attached = False

    # -- identity -------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def options(self) -> dict:
        return self.manifest["options"]

    @property
    def backend(self) -> str:
        return self.options["backend"]

    @property
    def n_jobs(self) -> int:
        return len(self.manifest["jobs"])

    @property
    def clusters(self) -> list[int]:
        self._load_clusters()
        return sorted(self._clusters)

    @property
    def cluster_id(self) -> int | None:
        """The cluster the run was first submitted as (retries add clusters)."""
        clusters = self.clusters
        return clusters[0] if clusters else None

    @property
    def created(self) -> float:
        return self.options.get("created", 0.0)

    # -- state ----------------------------------------------------------------------
    def _load_clusters(self) -> None:
        folder = self.path / "clusters"
        if not folder.is_dir():
            return
        for entry in folder.glob("*.json"):
            number = int(entry.stem)
            if number not in self._clusters:
                with open(entry) as fh:
                    self._clusters[number] = json.load(fh)

    def refresh(self) -> int:
        """Read what the event log gained since the last refresh; return the number of new events."""
        self._load_clusters()
        return self._reader.update()

    def jobs(self, refresh: bool = True, only=None) -> list[JobState]:
        """Every job of the run (or only the ``only`` job numbers), with the state of its latest attempt."""
        if refresh:
            self.refresh()
        latest: dict[int, tuple[int, int]] = {}
        attempts: Counter = Counter()
        for cluster in sorted(self._clusters):
            for proc, job in enumerate(self._clusters[cluster]["jobs"]):
                latest[job] = (cluster, proc)
                attempts[job] += 1
        out = []
        all_jobs = self.manifest["jobs"]
        for job in range(len(all_jobs)) if only is None else sorted(set(only)):
            tiles = all_jobs[job]
            if job not in latest:
                out.append(JobState(job, tiles, REMOVED, reason="never submitted"))
                continue
            cluster, proc = latest[job]
            st = self._reader.procs.get((cluster, proc))
            js = JobState(job, tiles, IDLE, cluster, proc, attempts=attempts[job])
            if st is not None:
                js.state, js.host, js.peak_memory_mb = st.state, st.host, st.peak_memory_mb
                js.exit_code = st.exit_code
                js.runtime = st.runtime + (time.time() - st.started if st.state == RUNNING and st.started else 0)
                if st.state == HELD_STATE:
                    js.reason = st.hold_reason
                elif st.state == FAILED and st.signal:
                    # Killed from outside: the last line it printed is not why it ended.
                    js.reason = f"killed by signal {st.signal}{_signal_name(st.signal)}"
                elif st.state == FAILED:
                    js.reason = self._failure_reason(cluster, proc) or f"exited with code {st.exit_code}"
                elif st.state == COMPLETED and not self._has_metrics(job):
                    js.state, js.reason = FAILED, "the job exited 0 but its metrics file is missing"
            out.append(js)
        return out

    def status(self) -> dict[str, int]:
        """Counts of jobs per state: idle, running, completed, failed, held, removed."""
        counts = Counter(j.state for j in self.jobs())
        return {state: counts.get(state, 0) for state in STATES}

    @property
    def settled(self) -> bool:
        """No job is idle or running: the run waits for nothing but the user."""
        counts = self.status()
        return counts[IDLE] == 0 and counts[RUNNING] == 0

    @property
    def complete(self) -> bool:
        return self.status()[COMPLETED] == self.n_jobs

    def log_path(self, job: int, stream: str = "out") -> Path | None:
        (js,) = self.jobs(refresh=False, only=[job])
        return None if js.cluster is None else self.path / "logs" / f"{js.cluster}.{js.proc}.{stream}"

    def logs(self, job: int) -> tuple[str, str]:
        """The stdout and stderr of the latest attempt of ``job``."""
        self.refresh()
        texts = []
        for stream in ("out", "err"):
            path = self.log_path(job, stream)
            texts.append(path.read_text(errors="replace") if path and path.exists() else "")
        return texts[0], texts[1]

    def _failure_reason(self, cluster: int, proc: int) -> str | None:
        path = self.path / "logs" / f"{cluster}.{proc}.err"
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

    def _has_metrics(self, job: int) -> bool:
        """Whether the job's metrics file is there: the folder is listed once, then only new
        names are looked for (a status of 10,000 jobs makes no 10,000 stat calls)."""
        name = f"{job:06d}.json"
        if self._metrics is None:
            try:
                self._metrics = set(os.listdir(self.path / "metrics"))
            except OSError:
                self._metrics = set()
        if name not in self._metrics and (self.path / "metrics" / name).exists():
            self._metrics.add(name)
        return name in self._metrics

    def query(self) -> dict[int, dict]:
        """Ask the scheduler what the event log cannot say about the run's queued jobs.

        One query for the whole run, made only when some job is idle, running or held:
        the hold reason, the host, the memory in use, why a job stays idle (HTCondor's
        ``HoldReason``, ``RemoteHost``, ``MemoryUsage``, ``LastRejMatchReason``...).
        Returns ``{job: {attribute: value}}``; empty for the local backend.
        """
        queued = {(j.cluster, j.proc): j.job for j in self.jobs() if j.state in (IDLE, RUNNING, HELD_STATE)}
        backend = self._backend()
        if not queued or not hasattr(backend, "query"):
            return {}
        return {queued[key]: info for key, info in backend.query(self).items() if key in queued}

    # -- results --------------------------------------------------------------------
    @property
    def output(self) -> str | None:
        """The Cloud-Optimized GeoTIFF mosaic, once every job has completed (else ``None``)."""
        from .results import finalize, output_path

        path = output_path(self)
        if path.exists():
            return str(path)
        if self.complete:
            return finalize(self)
        return None

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics the function returned, summed over every completed job."""
        from .results import sum_metrics

        return sum_metrics(self)

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> Run:
        """Block until no job is idle or running (or ``timeout`` seconds); return the run."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.settled:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.name} ({self.id}) is still running after {timeout} s: {self.status()}")
            time.sleep(poll)
        if self.complete:
            _ = self.output
        return self

    # -- steering -------------------------------------------------------------------
    def _backend(self):
        from .backends import get_backend

        return get_backend(self.backend)

    def _procs(self, jobs, states) -> list[tuple[int, int]]:
        wanted = None if jobs is None else {int(j) for j in jobs}
        return [
            (j.cluster, j.proc)
            for j in self.jobs()
            if j.cluster is not None and j.state in states and (wanted is None or j.job in wanted)
        ]

    def remove(self, jobs=None) -> int:
        """Remove the run's idle, running and held jobs (or only ``jobs``); return how many."""
        procs = self._procs(jobs, (IDLE, RUNNING, HELD_STATE))
        if procs:
            self._backend().act(self, "remove", procs)
        return len(procs)

    def hold(self, jobs=None) -> int:
        procs = self._procs(jobs, (IDLE, RUNNING))
        if procs:
            self._backend().act(self, "hold", procs)
        return len(procs)

    def release(self, jobs=None) -> int:
        procs = self._procs(jobs, (HELD_STATE,))
        if procs:
            self._backend().act(self, "release", procs)
        return len(procs)

    def retry(self, cpus: int | None = None, mem: str | int | None = None, disk: str | int | None = None) -> list[int]:
        """Submit the failed, held and removed jobs again, as a new cluster of the same run.

        ``cpus``, ``mem`` and ``disk`` change what the new jobs request (for a job held
        for going over its memory, say); they are recorded in the manifest's options.
        """
        self._set_resources(cpus, mem, disk)
        todo = [j for j in self.jobs() if j.state in (FAILED, HELD_STATE, REMOVED)]
        held = [(j.cluster, j.proc) for j in todo if j.state == HELD_STATE]
        backend = self._backend()
        if held:
            backend.act(self, "remove", held)
        jobs = [j.job for j in todo]
        if jobs:
            backend.submit(self, jobs)
        return jobs

    def _set_resources(self, cpus, mem, disk) -> None:
        from .resources import check_count, parse_memory

        changes = {}
        if cpus is not None:
            changes["cpus"] = check_count(cpus, "--cpus")
        if mem is not None:
            changes["mem"] = parse_memory(mem, "--mem")
        if disk is not None:
            changes["disk"] = parse_memory(disk, "--disk")
        if not changes:
            return
        self.manifest["options"].update(changes)
        write_json_atomic(self.path / "manifest.json", self.manifest, indent=1)

    def _repr_html_(self) -> str:
        from .widgets.cards import run_card

        return run_card(self)

    def _ipython_display_(self) -> None:
        """In a kernel: the live monitor, with the run card as the HTML other frontends keep."""
        from IPython.display import display

        from .voila import in_voila

        if in_voila():  # a dashboard viewer gets no steering buttons
            from .widgets.readonly import dashboard_view

            display(dashboard_view(self))
            return
        from .widgets.monitor import display_bundle

        display(display_bundle(self), raw=True)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.status().items() if v)
        return f"<Run {self.name} {self.id} on {self.backend}: {self.n_jobs} jobs ({counts}) at {self.path}>"


def _signal_name(number: int) -> str:
    try:
        return f" ({signal.Signals(int(number)).name})"
    except (ValueError, TypeError):
        return ""


def runs_dir() -> Path:
    return config.runs_dir()


def list_runs(root: str | os.PathLike | None = None) -> list[Run]:
    """Every run in the runs directory, newest first."""
    root = Path(root) if root else runs_dir()
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or not (entry / "manifest.json").exists():
            continue
        try:
            found.append(Run(entry))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: r.created, reverse=True)


def find_run(name_or_id: str, root: str | os.PathLike | None = None) -> Run:
    """The run with this id (or unique id prefix), else the newest run with this name."""
    root = Path(root) if root else runs_dir()
    if (root / name_or_id / "manifest.json").exists():
        return Run(root / name_or_id)
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


def find_by_content(content_hash: str, root: Path) -> Run | None:
    """The newest run whose result is determined by the same content."""
    if not root.is_dir():
        return None
    candidates = [Run(p) for p in root.glob(f"{content_hash}*") if (p / "manifest.json").exists()]
    candidates = [r for r in candidates if r.manifest.get("content_hash") == content_hash]
    return max(candidates, key=lambda r: r.created) if candidates else None


def create_run_dir(root: Path, run_id: str, manifest: dict, function_bytes: bytes) -> Path:
    """Write a run directory (mode 0700) whole, then move it into place."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=root))  # mkdtemp creates it 0700
    try:
        for sub in ("clusters", "logs", "tiles", "metrics"):
            (tmp / sub).mkdir()
        with open(tmp / "function.pkl", "wb") as fh:
            fh.write(function_bytes)
        os.chmod(tmp / "function.pkl", 0o600)
        final = root / run_id
        manifest = dict(manifest)
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class DirLock:
    """An exclusive ``flock`` on a file in a run directory."""

    def __init__(self, path: str | os.PathLike, blocking: bool = True):
        self.path, self.blocking, self.fh = path, blocking, None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        flags = fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fh, flags)
        except BlockingIOError:
            self.fh.close()
            self.fh = None
        return self

    @property
    def acquired(self) -> bool:
        return self.fh is not None

    def __exit__(self, *exc):
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
