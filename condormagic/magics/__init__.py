"""``%load_ext condormagic``: the magics, which parse arguments and delegate to the API."""

from .core import CondorMagics, load_ipython_extension

__all__ = ["CondorMagics", "load_ipython_extension"]
