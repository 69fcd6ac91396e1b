"""condormagic: scale a NumPy function over big rasters from a notebook cell to HTCondor.

>>> import condormagic as cm
>>> src = cm.sources(dem1="dem_2015.tif", dem2="dem_2000.tif", grid="dem2", tile=1024)
>>> run = cm.submit(lambda img: img["dem2"] - img["dem1"], src, cpus=1, mem="2GB")
"""

__version__ = "0.1.0"

from .api import run, runs, submit
from .errors import CondorMagicError, RunNotFound, SourceError
from .graph import Img, Sources, sources
from .runs import Run

__all__ = [
    "CondorMagicError",
    "Img",
    "Run",
    "RunNotFound",
    "SourceError",
    "Sources",
    "__version__",
    "dashboard",
    "run",
    "runs",
    "sources",
    "submit",
]


def dashboard(root=None):
    """Every run in the runs directory as a table (ipywidgets); picking one opens its monitor."""
    from .widgets.dashboard import dashboard as make

    return make(root)


def load_ipython_extension(ipython) -> None:
    """``%load_ext condormagic``: register the magics."""
    from .magics import load_ipython_extension as load

    load(ipython)
