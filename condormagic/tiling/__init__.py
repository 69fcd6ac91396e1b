"""Sources, their alignment onto one grid, tiles, the job graph, and the function contract.

Everything here is about what is computed where; nothing here writes a file or knows a scheduler.
The names below load on first use, so that a job (which needs the grid, the reader and the
contract) does not import what only declaring sources needs (STAC, HTTP).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ContractError": "contract",
    "Img": "contract",
    "TileResult": "contract",
    "check_result": "contract",
    "Grid": "grid",
    "Tile": "grid",
    "Tiling": "grid",
    "tile_grid": "grid",
    "JobGraph": "jobs",
    "build_graph": "jobs",
    "default_tiles_per_job": "jobs",
    "GridReader": "reader",
    "Source": "source",
    "Sources": "source",
    "sources": "source",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'condormagic.tiling' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
