"""The job graph: which tiles each job computes, and which tiles a mask skips."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .grid import Tiling
from .reader import SourceReader
from .sources import Sources


@dataclass(frozen=True)
class JobGraph:
    """Tiles grouped into jobs; ``skipped`` holds the indices of tiles a mask left out."""

    tiles: Tiling
    jobs: list[list[int]]
    skipped: list[int]

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    def to_dict(self) -> dict:
        return {
            "jobs": self.jobs,
            "skipped": self.skipped,
        }


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
    per_job = tiles_per_job or default_tiles_per_job(len(todo), slots, (src.tile + 2 * src.halo) ** 2, min_job_pixels)
    jobs = [todo[i : i + per_job] for i in range(0, len(todo), per_job)]
    return JobGraph(tiles, jobs, skipped)


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
