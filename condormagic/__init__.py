"""condormagic: scale a NumPy function over big rasters from a notebook cell to HTCondor.

>>> import condormagic as cm
>>> src = cm.sources(dem1="dem_2015.tif", dem2="dem_2000.tif", grid="dem2", tile=1024)
>>> run = cm.submit(lambda img: img["dem2"] - img["dem1"], src, cpus=1, mem="2GB")

The names below are loaded on first use (PEP 562), so that ``python -m condormagic.worker``
on an execute node imports neither the API, nor IPython, nor the bindings.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# public name -> module that defines it
_LAZY = {
    "submit": "api",
    "plan": "api",
    "run": "api",
    "runs": "api",
    "configure": "api",
    "dashboard": "api",
    "collection": "api",
    "explore": "api",
    "Run": "runhandle",
    "sources": "tiling",
    "Sources": "tiling",
    "Img": "tiling",
    "CondorMagicError": "errors",
    "RunNotFound": "errors",
    "SourceError": "errors",
}

__all__ = ["__version__", "load_ipython_extension", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'condormagic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython) -> None:
    """``%load_ext condormagic``: register the magics."""
    from .magics import load_ipython_extension as load

    load(ipython)
