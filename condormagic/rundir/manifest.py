"""The run's manifest: what a run computes, over which tiles, with which options; and its content hash."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

from ..errors import CondorMagicError
from ..tiling.grid import Grid, Tile, Tiling
from .layout import read_json, write_atomic

MANIFEST_VERSION = 2

# Options that change what the output holds or where it is. The others (cpus, memory,
# backend, how tiles are grouped into jobs) change how the run is scheduled, not its result.
RESULT_OPTIONS = ("output", "nodata", "cwd", "container")


class ManifestError(CondorMagicError):
    """A run directory's manifest is missing, unreadable or not one condormagic wrote."""


def content_hash(function_fingerprint: str, sources_identity: dict, options: dict) -> str:
    """Hash of what determines a run's result: the function as pickled (with what it captures),
    the sources' identity and grid, and the result options."""
    payload = {
        "function": function_fingerprint,
        "sources": sources_identity,
        "options": {k: options.get(k) for k in RESULT_OPTIONS},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _jobs(jobs: list) -> list[list[int]]:
    """The manifest's jobs, checked to be lists of tile numbers (JSON gives them as such: no copy)."""
    if not all(isinstance(job, list) for job in jobs) or not all(isinstance(t, int) for job in jobs[:1] for t in job):
        raise TypeError("jobs")
    return jobs


def versions() -> dict[str, str]:
    """The versions recorded with a run (the package's is read without importing the package)."""
    from .._version import __version__

    return {"condormagic": __version__, "python": platform.python_version(), "executable": sys.executable}


@dataclass
class Manifest:
    """Everything about a run that is fixed when it is made; ``manifest.json`` in its directory.

    ``jobs[j]`` lists the tile indices job ``j`` computes; the tiles themselves follow from
    ``grid`` and ``tiling``. ``options`` holds the run's requests and settings (``cpus``,
    ``mem`` in MB, ``backend``, ``output``...), of which only ``cpus``, ``mem`` and ``disk``
    change later (a retry with more memory).
    """

    id: str
    content_hash: str
    name: str
    grid: Grid
    tiling: Tiling
    sources: list[dict]
    jobs: list[list[int]]
    options: dict[str, Any]
    created: float
    code: str = ""
    code_line: int = 1
    grid_from: str | None = None
    mask: str | None = None
    skipped: list[int] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=versions)

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    @property
    def halo(self) -> int:
        return self.tiling.halo

    def tile(self, index: int) -> Tile:
        return self.tiling[index]

    def job_tiles(self, job: int) -> list[Tile]:
        return [self.tiling[i] for i in self.jobs[job]]

    def source_names(self) -> list[str]:
        return [s["name"] for s in self.sources]

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "manifest_version": MANIFEST_VERSION,
            "id": self.id,
            "content_hash": self.content_hash,
            "name": self.name,
            "created": self.created,
            "code": self.code,
            "code_line": self.code_line,
            "grid": self.grid.to_dict(),
            "grid_from": self.grid_from,
            **self.tiling.to_dict(),
            "mask": self.mask,
            "sources": self.sources,
            "jobs": self.jobs,
            "skipped": self.skipped,
            "options": self.options,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "the manifest") -> Manifest:
        """Read a manifest (this version's, or the first one's); one sentence if it is not one."""
        try:
            grid = Grid.from_dict(data["grid"])
            tiling = Tiling(grid.width, grid.height, data["tile"], data.get("halo", 0))
            options = data["options"]
            if not isinstance(options, dict) or not isinstance(data["jobs"], list):
                raise TypeError("options or jobs")
            return cls(
                id=str(data["id"]),
                content_hash=str(data["content_hash"]),
                name=str(data["name"]),
                grid=grid,
                tiling=tiling,
                sources=list(data["sources"]),
                jobs=_jobs(data["jobs"]),
                options=options,
                created=float(data.get("created", options.get("created", 0.0))),
                code=data.get("code", ""),
                code_line=int(data.get("code_line", 1)),
                grid_from=data.get("grid_from"),
                mask=data.get("mask"),
                skipped=list(data.get("skipped", [])),
                versions=dict(data.get("versions", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where} is not a condormagic manifest (bad or missing {exc}).") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """Read ``manifest.json`` (not through a link)."""
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or "not valid JSON"
            raise ManifestError(f"{path} cannot be read ({reason}).") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{path} is not a condormagic manifest.")
        return cls.from_dict(data, str(path))

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``manifest.json`` atomically (after a retry changed the requests)."""
        write_atomic(path, self.dumps())
