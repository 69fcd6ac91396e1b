"""A snapshot of a run's state, so that a new process opens a run of 100,000 jobs in milliseconds.

Reading the event log of a big run from its start takes seconds. A process that has read it
writes what it derived (every proc's state, the clusters, each job's state) with the position
in the log it covers, atomically, now and then; the next process to open the run loads it and
reads only the events that arrived since. It is a cache: deleted or stale (the log was
replaced), it is ignored, and the log is read from the start.

It is a pickle, so it is loaded only from a run directory already checked to be this user's
own, and only if the file itself belongs to this user and nobody else can write it.
"""

from __future__ import annotations

import os
import pickle
import stat
from typing import TYPE_CHECKING

import numpy as np

from .clusters import ClusterRecord
from .layout import write_atomic

if TYPE_CHECKING:
    from .state import RunState

VERSION = 1


def save(state: RunState) -> None:
    """Write the snapshot of ``state`` (skipped, silently, where the run directory cannot be written)."""
    try:
        log = os.stat(state.layout.events)
    except OSError:
        return
    data = {
        "version": VERSION,
        "run": state.manifest.id,
        "log": (log.st_dev, log.st_ino),
        "reader": state.reader.getstate(),
        # What the state needs of each cluster: which job each proc runs (not its description).
        "clusters": {n: {"cluster": n, "backend": r.backend, "jobs": r.jobs} for n, r in state.clusters.items()},
        "codes": state.codes.tobytes(),
        "metrics": sorted(state._metrics) if state._metrics is not None else None,
    }
    try:
        write_atomic(state.layout.snapshot, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), mode=0o600)
    except OSError:
        pass


def restore(state: RunState) -> bool:
    """Load the snapshot into a fresh ``state``, if there is one that is this user's and still fits the log."""
    path = state.layout.snapshot
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        try:
            data = pickle.load(fh)
        except Exception:  # noqa: BLE001 - a cache that cannot be read is ignored
            return False
    try:
        log = os.stat(state.layout.events)
        fits = (
            data.get("version") == VERSION
            and data.get("run") == state.manifest.id
            and tuple(data["log"]) == (log.st_dev, log.st_ino)
            and len(data["codes"]) == len(state.codes)
        )
    except (OSError, KeyError, TypeError):
        fits = False
    if not fits:
        return False
    state.reader.setstate(data["reader"])
    state.clusters = {int(n): ClusterRecord.from_dict(r) for n, r in data["clusters"].items()}
    state._index_clusters()
    state.codes = np.frombuffer(data["codes"], dtype=np.int8).copy()
    state._metrics = set(data["metrics"]) if data["metrics"] is not None else None
    state._snapshot_events = state.reader.n_events
    return True
