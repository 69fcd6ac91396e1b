"""Sources, their alignment onto one grid, tiles, the job graph and its manifest."""

from .grid import Grid, Tile, tile_grid
from .jobs import JobGraph, build_graph, default_tiles_per_job
from .reader import GridReader, Img
from .sources import Source, Sources, sources

__all__ = [
    "Grid",
    "GridReader",
    "Img",
    "JobGraph",
    "Source",
    "Sources",
    "Tile",
    "build_graph",
    "default_tiles_per_job",
    "sources",
    "tile_grid",
]
