"""The explorer map: inputs, a live preview of the function, and results at full resolution.

``cm.explore(src)``, ``cm.explore(src, func)``, ``run.explore()``, ``%condor_explore`` and
``%%condor --preview`` all build an :class:`Explorer` from layers:

- :mod:`.view`: the view on screen, and reading a raster for it from its overviews;
- :mod:`.layers`: what can be shown (a file, a function applied live); :mod:`.collection`: a collection
  of scenes, a time step at a time, and :mod:`.scenes` its scene table; :mod:`.chart` its time series;
- :mod:`.style`: band combination, stretch on the displayed area, colour maps;
- :mod:`.legend`, :mod:`.outline`: legends and side labels; grid outline, tile grid, graticule;
- :mod:`.widget`: the ipyleaflet map, the render thread and the pixel inspector; :mod:`.controls`: the panel.
"""

from __future__ import annotations

import os

from ...errors import CondorMagicError
from .collection import CollectionLayer
from .layers import FunctionLayer, RasterLayer, source_layer
from .style import Style
from .widget import Explorer


def _grid_of(path: str):
    import rasterio

    from ...tiling.grid import Grid

    with rasterio.open(path) as ds:
        return Grid(ds.crs.to_wkt() if ds.crs else None, ds.transform, ds.width, ds.height)


def explore(
    obj,
    func=None,
    name: str | None = None,
    height: str = "460px",
    units: dict | None = None,
    classes: dict | None = None,
) -> Explorer:
    """A map of ``obj`` (declared sources, a raster's path, or a run), with ``func`` applied live.

    Parameters
    ----------
    obj : Sources, str or Run
        ``cm.sources(...)``: every source (and the grid's outline and tiles); a path: that raster;
        a run: its inputs and its output (as ``run.explore()``).
    func : callable, optional
        ``func(img)`` as for ``cm.submit``, computed for the pixels on screen (a preview at
        screen resolution) and shown split against the first source.
    name : str, optional
        The function layer's name (default: the function's).
    units : dict, optional
        ``{layer name: units}`` for the legends, where the files do not say.
    classes : dict, optional
        ``{layer name: {value: label}}``: the names of an integer layer's classes, for its legend.
    """
    units, classes = units or {}, classes or {}
    if hasattr(obj, "manifest") and hasattr(obj, "output"):
        if func is not None:
            raise CondorMagicError("A run is shown with its own output: explore(run) takes no function.")
        return explore_run(obj, height=height)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi"):
            raise CondorMagicError(f"{path} does not exist: give the path of a raster.")
        base = os.path.basename(path)
        layer = RasterLayer(base, path, units=units.get(base), classes=classes.get(base))
        return Explorer([layer], grid=_grid_of(path), height=height, title=path)
    from ...tiling import Sources

    if not isinstance(obj, Sources):
        raise TypeError(
            f"cm.explore shows sources (cm.sources(...)), a raster's path or a run, not {type(obj).__name__}"
        )
    layers = [source_layer(s) for s in obj.values()]
    for layer in layers:
        if layer.name in units:
            layer.units = units[layer.name]
        if layer.name in classes:
            if hasattr(layer, "set_classes"):  # a collection: {value: label}, or {band: {value: label}}
                layer.set_classes(classes[layer.name])
            else:
                layer.classes = classes[layer.name]
    split = None
    if func is not None:
        preview = FunctionLayer(func, obj, name=name, units=units.get(name or getattr(func, "__name__", ""), ""))
        layers.append(preview)
        split = (layers[0].name, preview.name)
    return Explorer(layers, grid=obj.grid, tile=obj.tile, split=split, height=height)


def explore_run(run, height: str = "460px", input_name: str | None = None) -> Explorer:
    """A run's output at full resolution beside its inputs, split against ``input_name`` (default the first)."""
    output = run.output
    if not output:
        raise CondorMagicError(f"Run {run.name} has no output to show yet: it has one once every job has completed.")
    from ...tiling.grid import Grid

    manifest = run.manifest
    layers = []
    for source in manifest.sources:
        try:
            layers.append(source_layer(source))
        except (NotImplementedError, ValueError, OSError):
            continue  # an input that cannot be mapped (gone, no CRS) leaves the output on its own
    out = RasterLayer(f"{run.name} (output)", output, kind="output")
    layers.append(out)
    grid = manifest.grid if isinstance(manifest.grid, Grid) else Grid.from_dict(manifest.grid)
    tiling = getattr(manifest, "tiling", None)
    tile = getattr(tiling, "tile_cols", None)
    inputs = [layer.name for layer in layers[:-1]]
    left = input_name if input_name in inputs else (inputs[0] if inputs else None)
    split = (left, out.name) if left else None
    return Explorer(layers, grid=grid, tile=tile, split=split, height=height, title=f"{run.name}: output and inputs")


__all__ = [
    "CollectionLayer",
    "Explorer",
    "FunctionLayer",
    "RasterLayer",
    "Style",
    "explore",
    "explore_run",
    "source_layer",
]
