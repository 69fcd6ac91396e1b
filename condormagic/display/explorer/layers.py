"""What the explorer map shows: layers that render themselves for a view.

A layer is anything with

- ``name`` (str), ``bands`` (list of band names), ``times`` (a list of dates, or ``None``);
- ``render(bounds_3857, width, height, time=None, bands=None)`` returning a float32 array
  ``(len(bands), height, width)`` on the Web Mercator grid of those bounds, NaN where there is
  no data (``bands`` names the bands wanted, all when ``None``; ``time`` indexes ``times``);
- ``values_at(lat, lon, time=None)``: ``{band: value}`` at a point, read at full resolution
  (``None`` outside), or a sentence saying why there is none;
- ``footprint()``: ``(left, bottom, right, top)`` in EPSG:3857;
- ``integer`` (bool), ``units`` (str), ``classes`` (``{value: label}`` or ``None``), ``note``
  (shown with the layer, e.g. that it is a screen-resolution preview).

:class:`RasterLayer` is one file (a source, or a run's output); :class:`FunctionLayer` is a
function applied live to what is on screen. A collection (``cm.collection``) is a
:class:`~.collection.CollectionLayer` (made by :func:`source_layer`): it has ``times`` (one date
per time step), its ``render`` mosaics the scenes of ``times[time]`` for the view (or one scene,
``item=ID``), and the widget then shows a date slider and the scene table.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from affine import Affine

from .view import WEB_MERCATOR, View, overview_level, read_view, view_resolution_in

WGS84 = "EPSG:4326"
FINE = 1.01  # screen pixels at most this many grid pixels: 1:1 (or closer)


class RasterLayer:
    """One raster file on the map, read for each view from its overviews (see :func:`read_view`).

    Parameters
    ----------
    name : str
        What the layer is called on the map.
    path : str
        Any path or URI rasterio opens.
    kind : str
        ``"input"``, ``"output"``...: shown with the name.
    units, classes :
        Override what the file says (its band units) and name integer classes (``{4: "vegetation"}``).
    """

    times = None

    def __init__(self, name: str, path: str, kind: str = "input", units: str | None = None, classes=None, note=""):
        import rasterio
        from rasterio.warp import transform_bounds

        self.name, self.path, self.kind, self.note = name, str(path), kind, note
        with rasterio.open(self.path) as ds:
            if ds.crs is None:
                raise ValueError(f"{self.path} has no CRS: it cannot be placed on a map")
            self.crs = ds.crs
            self.bands = band_names(ds)
            self.integer = np.dtype(ds.dtypes[0]).kind in "iub"
            self.units = units if units is not None else next((u for u in ds.units if u), "")
            self._bounds = transform_bounds(ds.crs, WEB_MERCATOR, *ds.bounds, densify_pts=21)
            self.size = (ds.width, ds.height)
        self.classes = classes

    def footprint(self) -> tuple[float, float, float, float]:
        return self._bounds

    def _indexes(self, bands: Sequence[str] | None) -> list[int]:
        if bands is None:
            return list(range(1, len(self.bands) + 1))
        try:
            return [self.bands.index(b) + 1 for b in bands]
        except ValueError:
            raise KeyError(f"{self.name} has the bands {', '.join(self.bands)}, not {', '.join(bands)}") from None

    def render(self, bounds_3857, width: int, height: int, time=None, bands=None) -> np.ndarray:
        return read_view(self.path, View(tuple(bounds_3857), int(width), int(height)), self._indexes(bands))

    def values_at(self, lat: float, lon: float, time=None) -> dict[str, float | None]:
        import rasterio
        from rasterio.warp import transform
        from rasterio.windows import Window

        with rasterio.open(self.path) as ds:
            (x,), (y,) = transform(WGS84, ds.crs, [lon], [lat])
            row, col = ds.index(x, y)
            if not (0 <= row < ds.height and 0 <= col < ds.width):
                return dict.fromkeys(self.bands)
            data = ds.read(window=Window(col, row, 1, 1), masked=True)[:, 0, 0]
        mask = np.ma.getmaskarray(data)
        return {b: (None if mask[i] else data.data[i].item()) for i, b in enumerate(self.bands)}


def band_names(ds) -> list[str]:
    """A dataset's band names: its descriptions, else red/green/blue/... from the colour
    interpretation of a multi-band raster, else ``band 1``, ``band 2``..."""
    names = []
    for i in range(ds.count):
        desc = ds.descriptions[i]
        interp = ds.colorinterp[i].name if ds.count > 1 else ""
        if desc:
            names.append(desc)
        elif interp in ("red", "green", "blue", "alpha") and interp not in names:
            names.append(interp)
        else:
            names.append(f"band {i + 1}")
    return names


def source_layer(source):
    """The layer of one declared source (a :class:`~condormagic.tiling.Source` or
    :class:`~condormagic.tiling.collection.CollectionSource`, or its manifest dict): a
    :class:`RasterLayer` for a file, a :class:`~.collection.CollectionLayer` for a collection."""
    data = source if isinstance(source, dict) else source.to_dict()
    if data.get("kind") == "collection":
        from .collection import CollectionLayer

        return CollectionLayer(source)
    return RasterLayer(data["name"], data["path"], kind="input")


def _overview_path(path: str, view: View) -> str:
    """``path``, or a ``vrt://`` of its overview that is just finer than the view (GDAL >= 3.7)."""
    import rasterio

    if "?" in path or path.startswith("vrt://"):
        return path
    with rasterio.open(path) as ds:
        level = overview_level(ds, view_resolution_in(ds.crs, view)) if ds.crs else None
    return path if level is None else f"vrt://{path}?ovr={level}"


class FunctionLayer:
    """A function applied live to what is on screen: a screen-resolution preview of a run.

    For each view the sources are read onto a grid matching the view (EPSG:3857, one pixel per
    screen pixel, halo included) by the tiling reader, from their overviews, and the function
    gets the same ``img`` a job gets for a tile; what it returns is checked as a job's is.

    Parameters
    ----------
    func : callable
        ``func(img)``, as for ``cm.submit``.
    sources : Sources
        From ``cm.sources``.
    """

    times = None
    kind = "preview"
    classes = None

    def __init__(self, func: Callable, sources, name: str | None = None, units: str = ""):
        from ...tiling.contract import ContractError

        self.func, self.sources = func, sources
        self.name = name or getattr(func, "__name__", "function")
        self.units = units
        self.output = ""  # what the function printed for the latest view
        self.error: str | None = None
        self.grid = sources.grid
        self._bounds = _grid_footprint(self.grid)
        from .collection import Scenes

        self._scenes = {
            d["name"]: Scenes(d) for d in (s.to_dict() for s in sources.values()) if d.get("kind") == "collection"
        }
        try:
            probe = self._full_resolution(self._centre_window(32))
        except ContractError as exc:
            raise ValueError(f"{self.name} cannot be previewed: {exc}") from None
        if probe is None:
            raise ValueError(f"{self.name} returns no array (only metrics or None): there is nothing to map")
        array, names = probe
        self.bands = names or (["result"] if array.shape[0] == 1 else [f"band {i + 1}" for i in range(len(array))])
        self.integer = array.dtype.kind in "iub"
        self.note = "preview at screen resolution: computed on the pixels on screen, not the grid's"

    def footprint(self) -> tuple[float, float, float, float]:
        return self._bounds

    def _centre_window(self, size: int, col: int | None = None, row: int | None = None):
        from ...tiling.grid import Tile

        g = self.grid
        size_r, size_c = min(size, g.height), min(size, g.width)
        col = g.width // 2 if col is None else col
        row = g.height // 2 if row is None else row
        r0 = max(0, min(g.height - size_r, row - size_r // 2))
        c0 = max(0, min(g.width - size_c, col - size_c // 2))
        return Tile(0, r0, c0, size_r, size_c, self.sources.halo)

    def _call(self, img, tile):
        from ...tiling.contract import check_result

        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = self.func(img)
        self.output = out.getvalue()
        checked = check_result(result, tile)
        if checked.array is None:
            return None
        return checked.array, checked.names

    def _full_resolution(self, tile):
        from ...tiling.reader import GridReader

        with GridReader([s.to_dict() for s in self.sources.values()], self.grid) as reader:
            img = reader.read(tile.read_window)
        return self._call(img, tile)

    def view_grid(self, view: View):
        """The grid the function is computed on for ``view``: the part of the sources' grid on
        screen, one pixel per screen pixel: whole grid pixels, so at 1:1 and closer (up to 1:2) it
        is a window of the grid itself, read exactly as a job reads a tile; ``(grid, tile,
        decimation)`` (decimation 1: that window), or ``None`` when the grid is off screen.

        With a collection among the sources (its many scenes are costly to read exactly) only a view
        at 1:1 or closer is read so; a coarser one is computed at the screen's own resolution, the
        scenes read from their overviews."""
        from affine import Affine
        from rasterio.warp import transform_bounds

        from ...tiling.grid import Grid, Tile

        g = self.grid
        left, bottom, right, top = transform_bounds(WEB_MERCATOR, g.rasterio_crs(), *view.bounds, densify_pts=21)
        ratio = view_resolution_in(g.rasterio_crs(), view) / min(g.res)
        k = max(1, math.floor(ratio))
        if self._scenes and ratio > FINE:
            k = ratio  # not a whole number: the screen's own pixels
        inverse = ~g.transform
        cols, rows = zip(
            *(inverse @ xy for xy in ((left, top), (right, top), (left, bottom), (right, bottom))), strict=True
        )
        c0, c1 = max(0, math.floor(min(cols))), min(g.width, math.ceil(max(cols)))
        r0, r1 = max(0, math.floor(min(rows))), min(g.height, math.ceil(max(rows)))
        if c1 <= c0 or r1 <= r0:
            return None
        if k == int(k):
            c0, r0 = c0 - c0 % int(k), r0 - r0 % int(k)
        width, height = math.ceil((c1 - c0) / k - 1e-9), math.ceil((r1 - r0) / k - 1e-9)
        if k == 1:
            return g, Tile(0, r0, c0, height, width, self.sources.halo), 1
        transform = g.transform @ Affine.translation(c0, r0) @ Affine.scale(k)
        return Grid(g.crs, transform, width, height), Tile(0, 0, 0, height, width, self.sources.halo), k

    def render(self, bounds_3857, width: int, height: int, time=None, bands=None) -> np.ndarray:
        from rasterio.enums import Resampling
        from rasterio.warp import reproject

        from ...tiling.reader import GridReader

        view = View(tuple(bounds_3857), int(width), int(height))
        n_out = len(self.bands) if bands is None else len(bands)
        out = np.full((n_out, view.height, view.width), np.nan, np.float32)
        found = self.view_grid(view)
        if found is None:
            return out
        grid, tile, k = found
        dicts = [s.to_dict() for s in self.sources.values()]
        if k == 1:  # a window of the grid itself, read exactly as a job reads a tile
            with GridReader(dicts, grid) as reader:
                img = reader.read(tile.read_window)
        else:  # decimated: every source is warped onto the coarser grid, from its overviews
            img = self._read_coarse(dicts, grid, tile, view)
        try:
            done = self._call(img, tile)
            self.error = None
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        if done is None:
            return out
        array, names = done
        if names:
            self.bands = names
        wanted = range(len(array)) if bands is None else [self._band_index(b, len(array)) for b in bands]
        source = np.ascontiguousarray(array[list(wanted)], dtype=np.float32)
        transform = grid.transform @ Affine.translation(tile.col_off, tile.row_off)
        reproject(
            source,
            out,
            src_transform=transform,
            src_crs=grid.rasterio_crs(),
            dst_transform=view.transform,
            dst_crs=WEB_MERCATOR,
            src_nodata=np.nan,
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
            num_threads=2,
        )
        return out

    def _read_coarse(self, dicts: list[dict], grid, tile, view: View):
        """The ``img`` of ``tile`` of a coarse grid: files warped onto it from their overviews (through
        the tiling reader), collections read by :meth:`~.collection.Scenes.read_grid` (every time step,
        each mosaicked, from the scenes' overviews)."""
        from ...tiling.contract import Img
        from ...tiling.reader import GridReader

        window = tile.read_window
        transform = grid.transform @ Affine.translation(window.col_off, window.row_off)
        files = [
            # the view's own overview replaces the one the grid reads (cm.sources' overview choice)
            {**d, "path": _overview_path(d["path"], view), "warp": True, "offset": [0, 0], "scale": None}
            | {"overview": None}
            for d in dicts
            if d.get("kind") != "collection"
        ]
        read = {}
        if files:
            with GridReader(files, grid) as reader:
                img = reader.read(window)
            read = {name: img[name] for name in img.names}
        times, bands = {}, {}
        for d in dicts:
            scenes = self._scenes.get(d["name"])
            if scenes is None:
                continue
            crs = grid.rasterio_crs()
            read[d["name"]] = scenes.read_grid(crs, transform, int(window.width), int(window.height))
            times[d["name"]], bands[d["name"]] = scenes.datetimes.copy(), list(scenes.bands)
        names = [d["name"] for d in dicts]
        return Img(names, [read[n] for n in names], window, transform, times, bands)

    def _band_index(self, band: str, n: int) -> int:
        i = self.bands.index(band) if band in self.bands else 0
        return min(i, n - 1)

    def values_at(self, lat: float, lon: float, time=None) -> dict[str, float | None]:
        """The function's value at a point, computed at full resolution on a 32-pixel window around it."""
        from rasterio.warp import transform

        g = self.grid
        (x,), (y,) = transform(WGS84, g.rasterio_crs(), [lon], [lat])
        col, row = (math.floor(v) for v in ~g.transform @ (x, y))
        if not (0 <= row < g.height and 0 <= col < g.width):
            return dict.fromkeys(self.bands)
        tile = self._centre_window(32, col, row)
        done = self._full_resolution(tile)
        if done is None:
            return dict.fromkeys(self.bands)
        array, _ = done
        return {b: array[i, row - tile.row_off, col - tile.col_off].item() for i, b in enumerate(self.bands)}


def _grid_footprint(grid) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    return transform_bounds(grid.rasterio_crs(), WEB_MERCATOR, *grid.bounds, densify_pts=21)
