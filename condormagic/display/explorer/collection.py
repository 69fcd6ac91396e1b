"""A collection of scenes on the explorer map: a time step's scenes mosaicked for the view, its scenes listed.

A collection source (``cm.collection(...)`` in ``cm.sources``, or its entry in a run's manifest)
is read for a view the way a single file is (:func:`~.view.warp_onto`): each scene's asset from
the overview whose pixels are just finer than the screen's, warped with
``rasterio.warp.reproject`` onto the view, only where the scene reaches the view. The scenes of a
time step are then mosaicked by the collection's rule, the first valid pixel in the items' order
(see :mod:`condormagic.tiling.collection`). Reads of several assets run on two threads.

:class:`Scenes` reads a collection source for any grid (the view, or the coarse grid a live
function is computed on); :class:`CollectionLayer` is the layer of the explorer map (with
``times`` for the date slider, the scene table's rows, the classes STAC declares, and the time
series at a point for the pixel inspector).
"""

from __future__ import annotations

import math
import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from .view import WEB_MERCATOR, View, overview_within, pixel_size_in, view_resolution_in, warp_onto

WGS84 = "EPSG:4326"
READ_THREADS = 2


def _quiet() -> None:
    """Silence one spurious warning of concurrent reprojections.

    rasterio (1.4) silences the ``NotGeoreferencedWarning`` of the in-memory dataset it makes for
    a NumPy destination (before it sets its transform) with ``warnings.catch_warnings``, which is
    not thread-safe: when two threads reproject at once, one of them warns. The data are not
    affected. Only that message, from ``reproject``, is silenced (again before each threaded
    read, as a ``catch_warnings`` block elsewhere may have dropped the filter).
    """
    warnings.filterwarnings(
        "ignore", message="Dataset has no geotransform", category=NotGeoreferencedWarning, module="rasterio.warp"
    )


_quiet()

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="condormagic-explorer-read")
        return _pool


def _map(function, tasks: list) -> list:
    """``[function(t) for t in tasks]``, on the reading threads when there are several."""
    if len(tasks) <= 1:
        return [function(t) for t in tasks]
    _quiet()
    return list(_threads().map(function, tasks))


def _nodata(value):
    return float("nan") if value == "nan" else value


def _crs_label(wkt: str | None) -> str | None:
    if not wkt:
        return None
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _at_file_resolution(asset: dict) -> dict:
    """An asset as its file is, whichever overview the run's grid reads it from: the explorer picks
    each view's own overview (and the inspector reads the file's own pixels)."""
    if asset.get("overview") is None:
        return asset
    full = asset.get("full_size")
    if full is None:  # a manifest written before the file's size was listed beside its overview
        import rasterio

        with rasterio.open(asset["path"]) as ds:
            full = [ds.width, ds.height]
    t = Affine(*asset["transform"][:6]) @ Affine.scale(asset["width"] / full[0], asset["height"] / full[1])
    return {**asset, "overview": None, "width": full[0], "height": full[1], "transform": list(t)[:6]}


def _bounds_of(asset: dict) -> tuple[float, float, float, float]:
    t = Affine(*asset["transform"][:6])
    xs, ys = zip(*(t @ (c, r) for c in (0, asset["width"]) for r in (0, asset["height"])), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def _intersects(a, b, margin: float = 0.0) -> bool:
    return not (a[2] < b[0] - margin or a[0] > b[2] + margin or a[3] < b[1] - margin or a[1] > b[3] + margin)


class Scenes:
    """The items of a collection source (its manifest dict), read for any grid.

    ``items``, ``steps``, ``bands``, ``times`` are the source's; ``footprints`` each item's extent
    in EPSG:3857 (from its assets' geometry, no file opened).
    """

    def __init__(self, source: dict):
        if source.get("kind") != "collection":
            raise ValueError(f"source {source.get('name')!r} is not a collection")
        from rasterio.warp import transform_bounds

        self.source = source
        self.name = source["name"]
        self.bands = list(source["bands"])
        self.items = [{**item, "assets": [_at_file_resolution(a) for a in item["assets"]]} for item in source["items"]]
        self.steps = [list(s) for s in source["steps"]]
        self.crss = list(source["crs"])
        self.dtype = np.dtype(source["dtype"])
        self.fills = [_nodata(f) for f in source["fill"]]
        self.datetimes = np.array(source["times"], dtype="datetime64[ns]")
        self.step_of = {k: t for t, members in enumerate(self.steps) for k in members}
        self.footprints = []
        for item in self.items:
            boxes = {
                (a["crs"], tuple(_bounds_of(a))): transform_bounds(
                    self.crss[a["crs"]], WEB_MERCATOR, *_bounds_of(a), densify_pts=21
                )
                for a in item["assets"]
            }
            self.footprints.append(
                (
                    min(b[0] for b in boxes.values()),
                    min(b[1] for b in boxes.values()),
                    max(b[2] for b in boxes.values()),
                    max(b[3] for b in boxes.values()),
                )
            )
        self._overviews: dict[str, tuple[list[int], float]] = {}

    def footprint(self) -> tuple[float, float, float, float]:
        boxes = self.footprints
        return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)

    def index(self, item_id: str) -> int:
        for k, item in enumerate(self.items):
            if item["id"] == item_id:
                return k
        raise KeyError(f"{item_id} is not a scene of {self.name}")

    def _band_index(self, band: str) -> int:
        try:
            return self.bands.index(band)
        except ValueError:
            raise KeyError(f"{self.name} has the bands {', '.join(self.bands)}, not {band}") from None

    def _overview_factors(self, asset: dict) -> tuple[list[int], float]:
        """The asset's overview factors and pixel size (opened once, then remembered)."""
        path = asset["path"]
        known = self._overviews.get(path)
        if known is None:
            import rasterio

            with rasterio.open(path) as ds:
                known = (ds.overviews(1), min(abs(ds.transform.a), abs(ds.transform.e)) or 1.0)
            self._overviews[path] = known
        return known

    def _levels(self, reach: list[int], bands: list[int], pixel_in) -> dict[tuple[int, int], int | None]:
        """The overview (``None``: full resolution) each asset ``(item, band)`` is read from for a grid
        whose pixel size in a CRS is ``pixel_in(crs)``: the coarsest one still finer than it."""
        sizes: dict[int, float] = {}
        levels = {}
        for k in reach:
            for b in bands:
                asset = self.items[k]["assets"][b]
                if asset["crs"] not in sizes:
                    sizes[asset["crs"]] = pixel_in(self.crss[asset["crs"]])
                factors, native = self._overview_factors(asset)
                levels[(k, b)] = overview_within(factors, native, sizes[asset["crs"]])
        return levels

    def warp(
        self,
        members: list[int],
        bands: list[int],
        dst_crs,
        dst_transform: Affine,
        width: int,
        height: int,
        pixel_in=None,
        dtype="float32",
    ) -> dict[tuple[int, int], np.ndarray]:
        """Each asset ``(item, band)`` of ``members`` x ``bands`` warped onto the grid (NaN where it has
        no data), from its overview just finer than the grid's pixels; only items that reach the grid.

        ``pixel_in(crs)`` gives the grid's pixel size in a CRS (default: measured at the grid's centre).
        """
        reach = self._reaching(members, dst_crs, dst_transform, width, height)
        if pixel_in is None:

            def pixel_in(crs):
                return pixel_size_in(crs, dst_crs, dst_transform, width, height)

        levels = self._levels(reach, bands, pixel_in)
        tasks = list(levels)
        threads = 2 if len(tasks) == 1 else 1

        def read(task):
            k, b = task
            asset = self.items[k]["assets"][b]
            level = levels[task]
            return warp_onto(
                asset["path"],
                [1],
                dst_crs,
                dst_transform,
                width,
                height,
                num_threads=threads,
                nodata=_nodata(asset["nodata"]),
                level=level,
                dtype=dtype,
            )[0]

        return dict(zip(tasks, _map(read, tasks), strict=True))

    def warp_stacked(
        self,
        members: list[int],
        bands: list[int],
        dst_crs,
        dst_transform: Affine,
        width: int,
        height: int,
        dtype="float32",
        chunk: int = 32,
    ) -> dict[tuple[int, int], np.ndarray]:
        """:meth:`warp` for many assets: those that share their pixels' geometry and overview (a granule's
        bands of one resolution over the dates) are warped together, up to ``chunk`` at once, from a VRT
        stacking them (GDAL then transforms each pixel once for all of them; each keeps its own nodata)."""
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.warp import reproject

        from ...tiling.reader import stacked_vrt

        reach = self._reaching(members, dst_crs, dst_transform, width, height)
        levels = self._levels(reach, bands, lambda crs: pixel_size_in(crs, dst_crs, dst_transform, width, height))
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for (k, b), level in levels.items():
            a = self.items[k]["assets"][b]
            key = (a["crs"], tuple(a["transform"][:6]), a["width"], a["height"], a["dtype"], str(a["nodata"]))
            groups.setdefault((*key, level), []).append((k, b))
        tasks = [(key, ms[i : i + chunk]) for key, ms in groups.items() for i in range(0, len(ms), chunk)]

        def read(task):
            key, ms = task
            level = key[-1]
            first = self.items[ms[0][0]]["assets"][ms[0][1]]
            paths = [self.items[k]["assets"][b]["path"] for k, b in ms]
            if level is not None:
                paths = [f"vrt://{p}?ovr={level}" for p in paths]
            with rasterio.open(paths[0]) as ds:
                like = {
                    "width": ds.width,
                    "height": ds.height,
                    "crs": self.crss[first["crs"]],
                    "transform": list(ds.transform)[:6],
                    "nodata": first["nodata"],
                    "dtype": first["dtype"],
                }
            out = np.full((len(ms), height, width), np.nan, dtype=dtype)
            with rasterio.open(stacked_vrt(paths, like)) as ds:
                reproject(
                    rasterio.band(ds, list(range(1, len(ms) + 1))),
                    out,
                    src_nodata=_nodata(first["nodata"]),
                    dst_transform=dst_transform,
                    dst_crs=dst_crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.nearest,
                    num_threads=1,
                    UNIFIED_SRC_NODATA="NO",
                )
            return out

        found = {}
        for (_, ms), out in zip(tasks, _map(read, tasks), strict=True):
            for i, member in enumerate(ms):
                found[member] = out[i]
        return found

    def _reaching(self, members: list[int], dst_crs, dst_transform: Affine, width: int, height: int) -> list[int]:
        """The items of ``members`` whose footprint reaches the grid (with a margin)."""
        from rasterio.warp import transform_bounds

        left, top = dst_transform @ (0, 0)
        right, bottom = dst_transform @ (width, height)
        box = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
        if str(dst_crs) != WEB_MERCATOR:
            box = transform_bounds(dst_crs, WEB_MERCATOR, *box, densify_pts=21)
        margin = 0.02 * max(box[2] - box[0], box[3] - box[1])
        return [k for k in members if _intersects(self.footprints[k], box, margin)]

    @staticmethod
    def mosaic(layers: list[np.ndarray], shape: tuple[int, int], dtype="float32") -> np.ndarray:
        """The first valid (not NaN) value of ``layers``, in order; NaN where none has one."""
        if not layers:
            return np.full(shape, np.nan, dtype=dtype)
        out = layers[0].copy()
        for layer in layers[1:]:
            np.copyto(out, layer, where=np.isnan(out) & ~np.isnan(layer))
        return out

    def read_grid(self, dst_crs, dst_transform: Affine, width: int, height: int) -> np.ndarray:
        """Every time step and band onto a grid: ``(time, band, rows, cols)`` of the source's dtype, each
        step mosaicked, the band's fill where no item has a value (what a job's ``img[name]`` holds,
        read from overviews and warped approximately: a preview)."""
        wide = self.dtype.itemsize > 4 or (self.dtype.kind in "iu" and self.dtype.itemsize > 2)
        work = np.float64 if wide else np.float32
        everything = list(range(len(self.items)))
        bands = list(range(len(self.bands)))
        warped = self.warp_stacked(everything, bands, dst_crs, dst_transform, width, height, dtype=work)
        out = np.empty((len(self.steps), len(self.bands), height, width), dtype=self.dtype)
        for b, fill in enumerate(self.fills):
            out[:, b] = fill
        for t, members in enumerate(self.steps):
            for b in bands:
                found = [warped[(k, b)] for k in members if (k, b) in warped]
                if found:
                    values = self.mosaic(found, (height, width), work)
                    np.copyto(out[t, b], values, where=~np.isnan(values), casting="unsafe")
        return out

    # -- values at a point, at full resolution ----------------------------------------------------
    def pixels(self, members: list[int], bands: list[int], lat: float, lon: float) -> dict[tuple[int, int], float]:
        """The value of each asset ``(item, band)`` at a point, read from the file at its own resolution;
        absent where the asset does not reach or has no data there."""
        from rasterio.warp import transform

        x, y = transform(WGS84, WEB_MERCATOR, [lon], [lat])
        point = (x[0], y[0], x[0], y[0])
        reach = [k for k in members if _intersects(self.footprints[k], point)]
        where: dict[int, tuple[float, float]] = {}
        tasks = []
        for k in reach:
            for b in bands:
                asset = self.items[k]["assets"][b]
                c = asset["crs"]
                if c not in where:
                    xs, ys = transform(WGS84, self.crss[c], [lon], [lat])
                    where[c] = (xs[0], ys[0])
                col, row = (math.floor(v) for v in ~Affine(*asset["transform"][:6]) @ where[c])
                if 0 <= row < asset["height"] and 0 <= col < asset["width"]:
                    tasks.append((k, b, row, col))

        def read(task):
            import rasterio
            from rasterio.windows import Window

            k, b, row, col = task
            asset = self.items[k]["assets"][b]
            with rasterio.open(asset["path"]) as ds:
                value = ds.read(1, window=Window(col, row, 1, 1))[0, 0].item()
            nodata = _nodata(asset["nodata"])
            if isinstance(value, float) and math.isnan(value):
                return None
            return None if nodata is not None and value == nodata else value

        values = _map(read, tasks)
        return {(k, b): v for (k, b, _, _), v in zip(tasks, values, strict=True) if v is not None}


def _first(values: dict, members: list[int], band: int):
    return next((values[(k, band)] for k in members if (k, band) in values), None)


class CollectionLayer(Scenes):
    """A collection on the explorer map: one time step (or one scene) at a time, mosaicked for the view.

    Parameters
    ----------
    source : CollectionSource or dict
        The collection bound to a grid (``cm.sources(s2=cm.collection(...))["s2"]``), or its entry in a
        run's manifest.
    collection : Collection, optional
        Its STAC items (cloud cover, MGRS tile, platform...: the scene table's columns, and the classes
        of a classified band); by default the source's own, or its catalog read again.
    units : str, optional
    classes : dict, optional
        ``{value: label}`` for every band, or ``{band: {value: label}}``; by default the classes a band's
        STAC asset declares (``classification:classes``).
    """

    kind = "input"

    def __init__(self, source, collection=None, units: str | None = None, classes: dict | None = None):
        if not isinstance(source, dict):
            collection = collection if collection is not None else getattr(source, "collection", None)
            source = source.to_dict()
        super().__init__(source)
        self.integer = self.dtype.kind in "iub"
        self.units = units or ""
        self.times = _labels(self.datetimes)
        stac = _stac_items(source, collection)
        self.scenes = [_row(k, item, self, stac.get(item["id"])) for k, item in enumerate(self.items)]
        self.band_classes = _declared_classes(self.bands, list(stac.values()))
        self.classes = None
        if classes:
            self.set_classes(classes)
        n, t = len(self.items), len(self.steps)
        grouped = " (scenes of a day mosaicked, first valid pixel first)" if self.source.get("group_by") else ""
        self.note = f"{n} scene{'s' if n != 1 else ''} on {t} date{'s' if t != 1 else ''}{grouped}"

    def set_classes(self, classes: dict) -> None:
        """``{value: label}`` for the whole layer, or ``{band: {value: label}}`` per band."""
        if classes and all(key in self.bands for key in classes):
            self.band_classes.update(classes)
        else:
            self.classes = classes

    def classes_for(self, band: str | None):
        """The classes of one band shown alone (``None`` for RGB)."""
        if band is None:
            return None
        return self.band_classes.get(band, self.classes)

    def item_footprint(self, item_id: str) -> tuple[float, float, float, float]:
        return self.footprints[self.index(item_id)]

    def outline(self, item_id: str) -> dict:
        """The scene's outline (its first asset's rectangle) as a GeoJSON feature in degrees."""
        from rasterio.warp import transform

        k = self.index(item_id)
        asset = self.items[k]["assets"][0]
        t = Affine(*asset["transform"][:6])
        w, h = asset["width"], asset["height"]
        steps = np.linspace(0, 1, 17)[:-1]
        cols = np.concatenate([steps * w, np.full(16, w), (1 - steps) * w, np.zeros(16)])
        rows = np.concatenate([np.zeros(16), steps * h, np.full(16, h), (1 - steps) * h])
        xs, ys = t @ (cols, rows)
        lons, lats = transform(self.crss[asset["crs"]], WGS84, list(xs), list(ys))
        ring = [[round(a, 7), round(b, 7)] for a, b in zip(lons, lats, strict=True)]
        ring.append(ring[0])
        return {
            "type": "Feature",
            "properties": {"kind": "scene", "id": item_id},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    def render(self, bounds_3857, width: int, height: int, time=None, bands=None, item: str | None = None):
        view = View(tuple(bounds_3857), int(width), int(height))
        wanted = list(range(len(self.bands))) if bands is None else [self._band_index(b) for b in bands]
        members = [self.index(item)] if item is not None else self.steps[time or 0]
        warped = self.warp(
            members,
            wanted,
            WEB_MERCATOR,
            view.transform,
            view.width,
            view.height,
            pixel_in=lambda crs: view_resolution_in(crs, view),
        )
        shape = (view.height, view.width)
        return np.stack([self.mosaic([warped[(k, b)] for k in members if (k, b) in warped], shape) for b in wanted])

    def values_at(self, lat: float, lon: float, time=None, item: str | None = None) -> dict[str, float | None]:
        members = [self.index(item)] if item is not None else self.steps[time or 0]
        bands = list(range(len(self.bands)))
        values = self.pixels(members, bands, lat, lon)
        return {name: _first(values, members, b) for b, name in enumerate(self.bands)}

    def series_at(self, lat: float, lon: float) -> list[dict[str, float | None]]:
        """Every time step's values at a point (each step mosaicked as on the map): the time series."""
        bands = list(range(len(self.bands)))
        values = self.pixels(list(range(len(self.items))), bands, lat, lon)
        return [{name: _first(values, members, b) for b, name in enumerate(self.bands)} for members in self.steps]


def _labels(times: np.ndarray) -> list[str]:
    """A label per time step: its date, or date and time where two steps share a date."""
    for width in (10, 16, 19, 29):
        labels = [str(t)[:width].replace("T", " ") for t in times]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label} ({i + 1})" for i, label in enumerate(labels)]


def _stac_items(source: dict, collection) -> dict:
    """``{item id: pystac.Item}`` of the source's items: from ``collection``, else its catalog read again
    (a local file only: an explorer asks no server anything), else none."""
    if collection is None:
        path = source.get("path") or ""
        if not path.lower().endswith(".json") or "://" in path or not os.path.isfile(path):
            return {}
        try:
            from ...tiling.collection import collection as load

            collection = load(path, bands=list(source["bands"]))
        except Exception:  # a catalog moved or changed since the run: the table keeps what the manifest says
            return {}
    wanted = {item["id"] for item in source["items"]}
    return {item.id: item for item in getattr(collection, "items", []) if item.id in wanted}


def _platform(name: str | None) -> str | None:
    """``sentinel-2a`` as ``S2A``; other platforms as they are."""
    if not name:
        return None
    match = re.fullmatch(r"sentinel-(\d)([a-z])", name.lower())
    return f"S{match.group(1)}{match.group(2).upper()}" if match else name


def _row(k: int, item: dict, layer: Scenes, stac) -> dict:
    """One line of the scene table: from the STAC item when there is one, else from the manifest."""
    first = item["assets"][0]
    row = {
        "index": k,
        "id": item["id"],
        "datetime": item["datetime"],
        "date": item["datetime"][:10],
        "step": layer.step_of.get(k),
        "sat": None,
        "orbit": None,
        "type": None,
        "cloud": None,
        "crs": _crs_label(layer.crss[first["crs"]]),
        "mgrs": None,
        "size": f"{first['width']} x {first['height']}",
    }
    if stac is not None:
        from ...tiling.collection import item_crs, mgrs_tile

        p = stac.properties
        cloud = p.get("eo:cloud_cover")
        row.update(
            sat=_platform(p.get("platform")),
            orbit=p.get("sat:relative_orbit"),
            type=p.get("s2:product_type") or p.get("product:type") or p.get("processing:level"),
            cloud=float(cloud) if isinstance(cloud, (int, float)) else None,
            mgrs=mgrs_tile(stac),
            crs=item_crs(stac) or row["crs"],
        )
        if stac.datetime is not None:
            when = stac.datetime
            row["datetime"] = when.isoformat()
    return row


def _declared_classes(bands: list[str], items: list) -> dict[str, dict]:
    """``{band: {value: (label, colour)}}`` from the assets' ``classification:classes`` (STAC)."""
    found: dict[str, dict] = {}
    for band in bands:
        for item in items:
            asset = item.assets.get(band)
            listed = asset.extra_fields.get("classification:classes") if asset is not None else None
            if not listed:
                continue
            classes = {}
            for entry in listed:
                if not isinstance(entry, dict) or not isinstance(entry.get("value"), int) or entry.get("nodata"):
                    continue
                label = entry.get("title") or entry.get("description") or str(entry.get("name", entry["value"]))
                if not entry.get("title") and len(label) > 40 and entry.get("name"):
                    label = str(entry["name"]).replace("_", " ")
                hint = entry.get("color_hint")
                classes[entry["value"]] = (label, f"#{hint}") if isinstance(hint, str) and len(hint) == 6 else label
            if classes:
                found[band] = classes
            break
    return found


__all__ = ["CollectionLayer", "Scenes"]
