"""The job graph: which tiles each job computes, and which tiles a mask skips."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .grid import Tiling
from .reader import SourceReader
from .source import Sources


@dataclass(frozen=True)
class JobGraph:
    """Tiles grouped into jobs; ``skipped`` holds the indices of tiles a mask left out.

    ``reads[name][job]`` lists, for each collection source, the items (indices into its
    ``items``) whose footprint touches the job's tiles, halo included: the only items the job reads.
    """

    tiles: Tiling
    jobs: list[list[int]]
    skipped: list[int]
    reads: dict[str, list[list[int]]] = field(default_factory=dict)

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    def to_dict(self) -> dict:
        return {
            "jobs": self.jobs,
            "skipped": self.skipped,
            "reads": self.reads,
        }

    def job_scenes(self, src: Sources, name: str, job: int) -> list[dict]:
        """What job ``job`` reads of collection ``name``: ``{"date", "id", "files"}`` per item."""
        return src[name].scenes(self.reads.get(name, [[]] * self.n_jobs)[job])


def manifest_sources(src: Sources, graph: JobGraph) -> list[dict]:
    """The sources as the manifest records them: a collection's entry also lists, per job, the
    items that job reads (``"jobs"``), so the run directory says which files each job reads."""
    out = []
    for name, s in src.items():
        d = s.to_dict()
        if name in graph.reads:
            d["jobs"] = graph.reads[name]
        out.append(d)
    return out


# A new worker process spends about a third of a second starting (Python, numpy, rasterio) before
# its first tile, and a scheduler more. A job should have enough pixels to make that small: the
# seed's deforestation function (three sources) takes about 1.3 s over 16 Mpx. Backends whose
# jobs start faster (the local backend forks them from a warm server) ask for less.
MIN_JOB_PIXELS = 16 * 1024 * 1024


def default_tiles_per_job(
    n_tiles: int, slots: int, tile_pixels: int | None = None, min_job_pixels: int = MIN_JOB_PIXELS
) -> int:
    """Tiles per job: about four jobs per slot, so that cores stay busy to the end; with
    small tiles (``tile_pixels`` each), more per job, up to ``min_job_pixels`` pixels
    as long as every slot still gets a job, so that each job's start-up is amortised."""
    per_job = math.ceil(n_tiles / max(1, 4 * slots))
    if tile_pixels:
        enough = math.ceil(min_job_pixels / tile_pixels)
        per_job = max(per_job, min(enough, math.ceil(n_tiles / max(1, slots))))
    return max(1, per_job)


def build_graph(
    src: Sources, tiles_per_job: int | None = None, slots: int = 1, min_job_pixels: int = MIN_JOB_PIXELS
) -> JobGraph:
    """Group the tiles of ``src`` into jobs, leaving out tiles the mask source zeroes.

    Parameters
    ----------
    src : Sources
    tiles_per_job : int, optional
        Default: :func:`default_tiles_per_job` for ``slots`` concurrent jobs.
    slots : int
        How many jobs can run at once (used only for the default).
    min_job_pixels : int
        Pixels that make a job's start-up cost small (used only for the default).
    """
    tiles = src.tiles
    skipped = _masked_out(src) if src.mask else []
    skip = set(skipped)
    todo = [i for i in range(len(tiles)) if i not in skip]
    if tiles_per_job:
        jobs = [todo[i : i + tiles_per_job] for i in range(0, len(todo), tiles_per_job)]
    else:
        per_job = default_tiles_per_job(len(todo), slots, (src.tile + 2 * src.halo) ** 2, min_job_pixels)
        jobs = balanced(todo, tiles.array(todo), src.halo, -(-len(todo) // per_job)) if todo else []
    reads = {name: job_items(s, tiles, jobs) for name, s in src.collections().items()}
    return JobGraph(tiles, jobs, skipped, reads)


def balanced(todo: list[int], boxes: np.ndarray, halo: int, n_jobs: int) -> list[list[int]]:
    """``todo`` cut into ``n_jobs`` runs of neighbouring tiles with about as many pixels each (edge tiles
    are smaller: cut by count, the last job of a grid would hold its thin strips)."""
    pixels = (boxes[:, 2] + 2 * halo) * (boxes[:, 3] + 2 * halo)
    prefix = np.concatenate([[0.0], np.cumsum(pixels, dtype=np.float64)])
    cuts, start = [], 0
    for k in range(1, n_jobs):
        target = prefix[-1] * k / n_jobs
        at = int(np.searchsorted(prefix, target))
        if at > 0 and (at == len(prefix) or target - prefix[at - 1] <= prefix[at] - target):
            at -= 1  # the boundary nearest the target
        at = min(max(at, start + 1), len(todo) - (n_jobs - k))  # every job gets a tile
        cuts.append(at)
        start = at
    edges = [0, *cuts, len(todo)]
    return [todo[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def job_items(collection, tiles: Tiling, jobs: list[list[int]]) -> list[list[int]]:
    """For each job, the items of a collection source whose footprint window touches one of the
    job's read windows (tile plus halo): the same test the reader makes, tile by tile."""
    windows = np.array([item.window for item in collection.items], dtype=np.int64).reshape(-1, 4)
    halo = tiles.halo
    out = []
    for job in jobs:
        boxes = tiles.array(job)  # row_off, col_off, height, width
        r0, c0 = boxes[:, 0:1] - halo, boxes[:, 1:2] - halo
        r1, c1 = r0 + boxes[:, 2:3] + 2 * halo, c0 + boxes[:, 3:4] + 2 * halo
        hit = (windows[:, 0] < r1) & (windows[:, 2] > r0) & (windows[:, 1] < c1) & (windows[:, 3] > c0)
        out.append(np.flatnonzero(hit.any(axis=0)).tolist())
    return out


def _masked_out(src: Sources) -> list[int]:
    """Tiles whose mask pixels are all zero or nodata (the halo is not looked at)."""
    mask = src[src.mask]
    reader = SourceReader(mask.to_dict(), src.grid)
    try:
        out = []
        for tile in src.tiles:
            values = reader.read(tile.window)
            valid = values != 0
            if reader.nodata is not None:
                valid &= ~(np.isnan(values) if np.isnan(reader.nodata) else values == reader.nodata)
            if not valid.any():
                out.append(tile.index)
        return out
    finally:
        reader.close()
