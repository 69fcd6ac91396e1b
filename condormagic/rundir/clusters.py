"""The clusters of a run: one record per submission (the first, and one per retry).

``clusters/N.json`` holds the cluster's submit description, its item data and which job
each proc runs; ``submit.sub`` (``submit.N.sub`` for retries) the same in the submit
language, for ``condor_submit`` by hand. Both backends write them the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .layout import RunDir, read_json, write_atomic, write_json_atomic


@dataclass(frozen=True)
class ClusterRecord:
    """One submitted cluster: its number, backend, description, item data, and the job of each proc."""

    cluster: int
    backend: str
    description: dict[str, str]
    itemdata: list[dict[str, str]]
    jobs: list[int]
    submitted: float

    def to_dict(self) -> dict:
        return {
            "cluster": self.cluster,
            "backend": self.backend,
            "description": self.description,
            "itemdata": self.itemdata,
            "jobs": self.jobs,
            "submitted": self.submitted,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClusterRecord:
        return cls(
            int(data["cluster"]),
            str(data["backend"]),
            dict(data.get("description", {})),
            list(data.get("itemdata", [])),
            [int(j) for j in data["jobs"]],
            float(data.get("submitted", 0.0)),
        )


def itemdata(jobs: list[int]) -> list[dict[str, str]]:
    """The item data of a cluster: one ``job`` value per proc."""
    return [{"job": str(j)} for j in jobs]


def record_cluster(layout: RunDir, cluster: int, backend: str, description: dict, jobs: list[int]) -> ClusterRecord:
    """Write ``clusters/N.json`` and the submit file of a cluster just submitted."""
    record = ClusterRecord(cluster, backend, description, itemdata(jobs), list(jobs), time.time())
    write_json_atomic(layout.cluster(cluster), record.to_dict())
    write_atomic(layout.submit_file(cluster), submit_file_text(description, jobs))
    return record


def load_clusters(layout: RunDir, known: dict[int, ClusterRecord] | None = None) -> dict[int, ClusterRecord]:
    """Every cluster record of a run, reading only those not in ``known``; a record that cannot be
    read (half-written by a crash, or not one of ours) is left out, not fatal."""
    out = dict(known or {})
    try:
        names = [p.name for p in layout.clusters.iterdir()]
    except OSError:
        return out
    for name in names:
        stem, _, ext = name.partition(".")
        if ext != "json" or not stem.isdigit() or int(stem) in out:
            continue
        try:
            out[int(stem)] = ClusterRecord.from_dict(read_json(layout.clusters / name))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def next_cluster_number(layout: RunDir) -> int:
    """The number of a new local cluster: one more than the highest recorded."""
    return max(load_clusters(layout), default=0) + 1


def submit_file_text(description: dict[str, str], jobs: list[int]) -> str:
    """The description in the submit language, with its item data, for ``condor_submit``."""
    lines = [f"{k} = {v}" for k, v in description.items()]
    lines.append("queue job from (")
    lines.extend(str(j) for j in jobs)
    lines.append(")")
    return "\n".join(lines) + "\n"
