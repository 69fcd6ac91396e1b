"""Sources, their alignment onto one grid, tiles, the job graph, and the function contract.

Everything here is about what is computed where; nothing here writes a file or knows a scheduler.
"""

from .contract import ContractError, Img, TileResult, check_result
from .grid import Grid, Tile, Tiling, tile_grid
from .jobs import JobGraph, build_graph, default_tiles_per_job
from .reader import GridReader
from .sources import Source, Sources, sources

__all__ = [
    "ContractError",
    "Grid",
    "GridReader",
    "Img",
    "JobGraph",
    "Source",
    "Sources",
    "Tile",
    "TileResult",
    "Tiling",
    "build_graph",
    "check_result",
    "default_tiles_per_job",
    "sources",
    "tile_grid",
]
