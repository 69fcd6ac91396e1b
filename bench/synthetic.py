"""A run directory of many one-tile jobs, without rasters, for the benchmarks that read run state."""

from __future__ import annotations

import json
import time
from pathlib import Path


def write_run_dir(path: Path, n_jobs: int, clusters: tuple[int, ...] = (1,), tile: int = 256) -> list[tuple]:
    """Write the manifest (a square-ish grid of ``n_jobs`` one-tile jobs) and one record per
    cluster (the jobs split evenly among ``clusters``); return ``(cluster, proc, job)`` for each job.
    The caller writes the event log."""
    for sub in ("clusters", "logs", "tiles", "metrics"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    cols = int(n_jobs**0.5)
    rows = -(-n_jobs // cols)
    manifest = {
        "manifest_version": 2,
        "id": path.name,
        "content_hash": "bench",
        "name": "BENCH",
        "code": "",
        "grid": {
            "crs": "EPSG:32633",
            "transform": [30, 0, 500000, 0, -30, 5000000],
            "width": cols * tile,
            "height": rows * tile,
        },
        "tile": tile,
        "halo": 0,
        "sources": [],
        "jobs": [[j] for j in range(n_jobs)],
        "skipped": [],
        "options": {"cpus": 1, "mem": 1024, "gpus": 0, "backend": "local", "created": time.time()},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    procs = []
    share = -(-n_jobs // len(clusters))
    for i, cluster in enumerate(clusters):
        jobs = list(range(i * share, min(n_jobs, (i + 1) * share)))
        record = {"cluster": cluster, "backend": "local", "jobs": jobs, "itemdata": [{"job": str(j)} for j in jobs]}
        (path / "clusters" / f"{cluster}.json").write_text(json.dumps(record))
        procs += [(cluster, proc, job) for proc, job in enumerate(jobs)]
    return procs
