"""The run's manifest (JSON) and the content hash that names a run."""

from __future__ import annotations

import hashlib
import json
import platform
import sys

from .jobs import JobGraph
from .sources import Sources

MANIFEST_VERSION = 1

# Options that change what the tiles contain; the others (cpus, memory, backend)
# change how the run is scheduled, not its result.
RESULT_OPTIONS = ("tiles_per_job", "output", "nodata", "func")


def content_hash(code: str, src: Sources, options: dict) -> str:
    """Hash of what determines a run's result: code, sources' identity, result options."""
    payload = {
        "code": code,
        "sources": src.identity(),
        "options": {k: options.get(k) for k in RESULT_OPTIONS},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_manifest(
    run_id: str, content: str, name: str, code: str, src: Sources, graph: JobGraph, options: dict
) -> dict:
    from .. import __version__

    return {
        "manifest_version": MANIFEST_VERSION,
        "id": run_id,
        "content_hash": content,
        "name": name,
        "code": code,
        **src.to_dict(),
        **graph.to_dict(),
        "options": options,
        "versions": {
            "condormagic": __version__,
            "python": platform.python_version(),
            "executable": sys.executable,
        },
    }
