"""Every file name of a run directory, its ownership check, locks and atomic writes.

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

Run directories may sit in a folder that others can write (a project space), so a run
directory is only used when this user owns it and no one else can write it
(:func:`check_owned`), and no file in it is followed through a symbolic link.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import CondorMagicError

SUBDIRS = ("clusters", "logs", "tiles", "metrics")


class UntrustedRunDir(CondorMagicError):
    """A run directory that another user owns or can write: never attached to, steered or run from."""


class RunDir:
    """The paths of one run directory's files, spelled here and nowhere else."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def function(self) -> Path:
        return self.path / "function.pkl"

    @property
    def events(self) -> Path:
        return self.path / "events.log"

    @property
    def clusters(self) -> Path:
        return self.path / "clusters"

    def cluster(self, number: int) -> Path:
        return self.clusters / f"{number}.json"

    def submit_file(self, cluster: int) -> Path:
        """``submit.sub`` for the first cluster, ``submit.N.sub`` for the clusters of retries."""
        return self.path / (
            "submit.sub" if cluster == 1 or not (self.path / "submit.sub").exists() else f"submit.{cluster}.sub"
        )

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def log(self, cluster: int, proc: int, stream: str) -> Path:
        """A proc's ``out`` or ``err``."""
        return self.logs / f"{cluster}.{proc}.{stream}"

    @property
    def tiles(self) -> Path:
        return self.path / "tiles"

    def tile(self, index: int) -> Path:
        return self.tiles / tile_name(index)

    @property
    def metrics(self) -> Path:
        return self.path / "metrics"

    def job_metrics(self, job: int) -> Path:
        return self.metrics / metrics_name(job)

    @property
    def vrt(self) -> Path:
        return self.path / "output.vrt"

    @property
    def cog(self) -> Path:
        """Where the COG goes when the run has no ``--output``."""
        return self.path / "output.tif"

    @property
    def result(self) -> Path:
        """The record of the COG this run wrote (its path, size and time), written after it."""
        return self.path / "result.json"

    @property
    def snapshot(self) -> Path:
        """What a process read of the run's state, and the log offset it covers (a cache: safe to delete)."""
        return self.path / "state.pickle"

    @property
    def control(self) -> Path:
        """Requests to the local backend's runner."""
        return self.path / "control"

    @property
    def control_fifo(self) -> Path:
        """A named pipe the runner listens on: a byte written there wakes it for a new request."""
        return self.path / "control.fifo"

    @property
    def runner_lock(self) -> Path:
        return self.path / "runner.lock"

    @property
    def runner_pids(self) -> Path:
        """The local runner's process id and those of the jobs it runs, for a runner that takes over."""
        return self.path / "runner.json"

    @property
    def runner_log(self) -> Path:
        return self.path / "runner.log"

    @property
    def finalize_lock(self) -> Path:
        return self.path / "finalize.lock"

    @property
    def submit_lock(self) -> Path:
        return self.path / "submit.lock"

    @property
    def transfer_manifest(self) -> Path:
        """The manifest as a job without a shared file system sees it (sources by base name)."""
        return self.path / "transfer" / "manifest.json"


def tile_name(index: int) -> str:
    return f"{index:06d}.tif"


def metrics_name(job: int) -> str:
    return f"{job:06d}.json"


# -- who may use a run directory --------------------------------------------------------------
def check_owned(path: str | os.PathLike) -> None:
    """Refuse a run directory this user does not own, that others can write, or that is a link.

    Raises
    ------
    UntrustedRunDir
        With one sentence naming the folder and what is wrong with it.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UntrustedRunDir(f"{path} cannot be read ({exc.strerror}): it is not used.") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UntrustedRunDir(f"{path} is a link or not a directory: it is not used as a run directory.")
    if st.st_uid != os.getuid():
        raise UntrustedRunDir(f"{path} belongs to another user: it is not used as one of your runs.")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedRunDir(f"{path} can be written by other users: it is not used as a run directory.")


def open_nofollow(path: str | os.PathLike, mode: str = "r"):
    """``open(path, mode)`` that refuses to follow a symbolic link at ``path``."""
    flags = {"r": os.O_RDONLY, "rb": os.O_RDONLY, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND}[mode.rstrip("b+")]
    if "+" in mode:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, mode)


def read_json(path: str | os.PathLike):
    """A JSON file of a run directory, not followed through a link."""
    with open_nofollow(path) as fh:
        return json.load(fh)


# -- writing -----------------------------------------------------------------------------------
def write_atomic(path: str | os.PathLike, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a new temporary file beside ``path``, then rename it over ``path``.

    A reader sees the old file or the new one, never half of one; the temporary file is made
    with ``O_EXCL``, so a link planted at its name is not followed, and the rename replaces
    a link at ``path`` rather than writing through it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data, indent: int | None = None) -> None:
    """:func:`write_atomic` of ``data`` as JSON."""
    write_atomic(path, json.dumps(data, indent=indent))


@contextlib.contextmanager
def creating(root: Path, run_id: str, manifest_json: str, function_bytes: bytes) -> Iterator[Path]:
    """Write a run directory (mode 0700) whole under ``root``, move it into place as ``run_id``, and
    hold its ``submit.lock`` while the block submits its jobs; remove it if the block fails.

    A process that attaches to the run meanwhile waits on that lock, so it never sees a run
    whose jobs are not submitted yet. Raises ``FileExistsError`` if ``root/run_id`` exists.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=root))  # mkdtemp creates it 0700
    lock = None
    try:
        for sub in SUBDIRS:
            (tmp / sub).mkdir()
        layout = RunDir(tmp)
        write_atomic(layout.function, function_bytes, mode=0o600)
        write_atomic(layout.manifest, manifest_json)
        lock = open_nofollow(layout.submit_lock, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)  # held on the file itself, across the rename
        final = root / run_id
        if final.exists() or final.is_symlink():
            raise FileExistsError(final)
        os.rename(tmp, final)
        tmp = final
        yield final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.close()


class DirLock:
    """An exclusive ``flock`` on a file of a run directory, held while in the ``with`` block."""

    def __init__(self, path: str | os.PathLike):
        self.path, self.fh = path, None

    def __enter__(self) -> DirLock:
        self.fh = open_nofollow(self.path, "a")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some process holds the ``flock`` of ``path`` (a runner holds its run's lock)."""
    try:
        fh = open_nofollow(path, "a")
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()
    return False
