"""A view of the map: the Web Mercator rectangle on screen and its size in pixels, and reading a raster for it.

Leaflet draws in EPSG:3857, so an image rendered on a 3857 grid whose bounds are the view's
lands pixel for pixel on the screen. :func:`read_view` reads only the visible part of a raster,
from the overview whose pixels are just finer than the screen's (a zoomed-out view of an
8192-pixel COG reads a few hundred thousand pixels, not 67 million), and warps it there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

R = 6378137.0  # the sphere of Web Mercator
HALF = math.pi * R  # x and y of Web Mercator run from -HALF to +HALF
WEB_MERCATOR = "EPSG:3857"


@dataclass(frozen=True)
class View:
    """``bounds`` (left, bottom, right, top) in EPSG:3857, drawn as ``width`` x ``height`` pixels."""

    bounds: tuple[float, float, float, float]
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        left, bottom, right, top = self.bounds
        return Affine((right - left) / self.width, 0, left, 0, -(top - bottom) / self.height, top)

    @property
    def resolution(self) -> float:
        """Metres of Web Mercator per screen pixel (along x)."""
        return (self.bounds[2] - self.bounds[0]) / self.width

    def latlon_bounds(self) -> list[list[float]]:
        """``[[south, west], [north, east]]``, as Leaflet places an image."""
        left, bottom, right, top = self.bounds
        (south, west), (north, east) = to_latlon(left, bottom), to_latlon(right, top)
        return [[south, west], [north, east]]

    @classmethod
    def from_pixel_bounds(cls, pixel_bounds, zoom: float, max_size: int = 2048) -> View | None:
        """The view Leaflet reports as global pixel bounds ``((left, top), (right, bottom))`` at ``zoom``.

        ``None`` before the map has a size. A view larger than ``max_size`` pixels is rendered
        at ``max_size`` (the image is then scaled by the browser).
        """
        try:
            (px0, py0), (px1, py1) = pixel_bounds
        except (TypeError, ValueError):
            return None
        width, height = px1 - px0, py1 - py0
        if not (0 < width < 1e6 and 0 < height < 1e6):
            return None
        world = 256 * 2.0**zoom
        left, right = (px0 / world - 0.5) * 2 * HALF, (px1 / world - 0.5) * 2 * HALF
        top, bottom = (0.5 - py0 / world) * 2 * HALF, (0.5 - py1 / world) * 2 * HALF
        scale = min(1.0, max_size / max(width, height))
        return cls((left, bottom, right, top), max(1, round(width * scale)), max(1, round(height * scale)))


def to_latlon(x: float, y: float) -> tuple[float, float]:
    """Latitude and longitude of a Web Mercator point."""
    lon = math.degrees(x / R)
    lat = math.degrees(2 * math.atan(math.exp(y / R)) - math.pi / 2)
    return lat, lon


def from_latlon(lat: float, lon: float) -> tuple[float, float]:
    """The Web Mercator point of a latitude and longitude (latitudes clamped to Web Mercator's +-85.05)."""
    lat = max(-85.05112878, min(85.05112878, lat))
    return R * math.radians(lon), R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


ZOOM_SNAP = 0.25  # the map zooms in quarter steps, so a first view can fit its layers closely


def fit_zoom(bounds_3857, width: int, height: int, padding: int = 10) -> float:
    """The largest zoom (in :data:`ZOOM_SNAP` steps) at which ``bounds_3857`` fits in ``width`` x ``height`` pixels."""
    left, bottom, right, top = bounds_3857
    span_x, span_y = max(right - left, 1e-6), max(top - bottom, 1e-6)
    scale = min((width - 2 * padding) / span_x, (height - 2 * padding) / span_y)  # pixels per metre
    zoom = math.log2(max(scale, 1e-12) * 2 * HALF / 256)
    return float(max(0, min(22, math.floor(zoom / ZOOM_SNAP + 1e-9) * ZOOM_SNAP)))


def overview_level(dataset, view_res_in_src: float) -> int | None:
    """The overview of ``dataset`` (index for rasterio's ``overview_level``) whose pixels are the
    coarsest still at least as fine as the screen's, or ``None`` for the full resolution."""
    factors = dataset.overviews(1) if dataset.count else []
    native = min(abs(dataset.transform.a), abs(dataset.transform.e)) or 1.0
    return overview_within(factors, native, view_res_in_src)


def overview_within(factors, native: float, target_res: float) -> int | None:
    """The index of the coarsest of the overview ``factors`` whose pixels (``native * factor``) are
    still no larger than ``target_res``, or ``None`` for the full resolution."""
    best = None
    for i, factor in enumerate(factors):
        if native * factor <= target_res * (1 + 1e-9):
            best = i
    return best


def view_resolution_in(crs, view: View) -> float:
    """The size of a screen pixel of ``view`` in ``crs`` units, at the view's centre."""
    from rasterio.warp import transform as warp_transform

    left, bottom, right, top = view.bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    step = view.resolution
    xs, ys = warp_transform(WEB_MERCATOR, crs, [cx, cx + step, cx], [cy, cy, cy + step])
    return min(math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0]))


def pixel_size_in(crs, dst_crs, dst_transform: Affine, width: int, height: int) -> float:
    """The size of a pixel of a grid (``dst_crs``, ``dst_transform``, ``width`` x ``height``) in
    ``crs`` units, at the grid's centre (``crs`` may be ``dst_crs``)."""
    from rasterio.warp import transform as warp_transform

    cx, cy = dst_transform @ (width / 2, height / 2)
    dx, dy = abs(dst_transform.a), abs(dst_transform.e)
    xs, ys = warp_transform(dst_crs, crs, [cx, cx + dx, cx], [cy, cy, cy + dy])
    return min(math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0]))


FROM_FILE = object()  # read_view's default for nodata and level: what the file declares


def read_view(
    path: str,
    view: View,
    bands: list[int],
    resampling: str = "nearest",
    num_threads: int = 2,
    nodata=FROM_FILE,
    level=FROM_FILE,
) -> np.ndarray:
    """Read ``bands`` (1-based) of the raster at ``path`` for ``view``: ``(bands, rows, cols)`` float32,
    NaN where the raster has no data or does not reach.

    The overview chosen by :func:`overview_level` (or ``level``, when the caller knows it) is
    warped with ``rasterio.warp.reproject`` onto the view's grid; GDAL reads only the part of it
    the view covers. ``nodata`` overrides the file's (a STAC item may give one the file lacks).
    """
    if level is FROM_FILE:
        import rasterio

        with rasterio.open(path) as full:
            if full.crs is None:
                raise ValueError(f"{path} has no CRS: it cannot be placed on a map")
            level = overview_level(full, view_resolution_in(full.crs, view))
            nodata = full.nodata if nodata is FROM_FILE else nodata
    return warp_onto(
        path, bands, WEB_MERCATOR, view.transform, view.width, view.height, resampling, num_threads, nodata, level
    )


def warp_onto(
    path: str,
    bands: list[int],
    dst_crs,
    dst_transform: Affine,
    width: int,
    height: int,
    resampling: str = "nearest",
    num_threads: int = 2,
    nodata=FROM_FILE,
    level=FROM_FILE,
    dtype="float32",
) -> np.ndarray:
    """:func:`read_view` onto any grid: ``(bands, height, width)`` of ``dtype`` (a float), NaN where no data."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full((len(bands), height, width), np.nan, dtype=dtype)
    if level is FROM_FILE or nodata is FROM_FILE:
        with rasterio.open(path) as full:
            if full.crs is None:
                raise ValueError(f"{path} has no CRS: it cannot be placed on a map")
            if level is FROM_FILE:
                level = overview_level(full, pixel_size_in(full.crs, dst_crs, dst_transform, width, height))
            if nodata is FROM_FILE:
                nodata = full.nodata
    opened = rasterio.open(path) if level is None else rasterio.open(path, overview_level=level)
    with opened as ds:
        reproject(
            rasterio.band(ds, bands),
            out,
            src_nodata=nodata,
            dst_transform=dst_transform,
            dst_crs=dst_crs,
            dst_nodata=np.nan,
            resampling=Resampling[resampling],
            num_threads=num_threads,
        )
    return out
