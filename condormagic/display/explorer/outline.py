"""Where the data lies without a basemap: the grid's outline, its tiles, and a graticule (GeoJSON in degrees)."""

from __future__ import annotations

import math

import numpy as np

WGS84 = "EPSG:4326"
MAX_TILE_LINES = 400  # more tile edges than this would hide the data: the tile grid is left out
STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30]


def _to_lonlat(crs, xs, ys) -> list[list[float]]:
    from rasterio.warp import transform

    lons, lats = transform(crs, WGS84, list(xs), list(ys))
    return [[round(lon, 7), round(lat, 7)] for lon, lat in zip(lons, lats, strict=True)]


def _segment(grid, c0, r0, c1, r1, n: int = 16):
    t = np.linspace(0, 1, n)
    cols, rows = c0 + (c1 - c0) * t, r0 + (r1 - r0) * t
    xs, ys = grid.transform @ (cols, rows)
    return xs, ys


def outline_geojson(grid) -> dict:
    """The grid's boundary as a GeoJSON polygon (densified, so a warped grid's curved edges show)."""
    w, h = grid.width, grid.height
    xs, ys = [], []
    for c0, r0, c1, r1 in ((0, 0, w, 0), (w, 0, w, h), (w, h, 0, h), (0, h, 0, 0)):
        x, y = _segment(grid, c0, r0, c1, r1, 32)
        xs += list(x[:-1])
        ys += list(y[:-1])
    ring = _to_lonlat(grid.rasterio_crs(), xs, ys)
    ring.append(ring[0])
    return {
        "type": "Feature",
        "properties": {"kind": "outline"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def tiles_geojson(grid, tile: int) -> dict | None:
    """The inner tile edges as one GeoJSON multi-line, or ``None`` for a single tile or too many edges."""
    n_cols, n_rows = math.ceil(grid.width / tile), math.ceil(grid.height / tile)
    if n_cols + n_rows - 2 > MAX_TILE_LINES or n_cols * n_rows <= 1:
        return None
    crs, lines = grid.rasterio_crs(), []
    for k in range(1, n_cols):
        lines.append(_to_lonlat(crs, *_segment(grid, k * tile, 0, k * tile, grid.height)))
    for k in range(1, n_rows):
        lines.append(_to_lonlat(crs, *_segment(grid, 0, k * tile, grid.width, k * tile)))
    return {
        "type": "Feature",
        "properties": {"kind": "tiles"},
        "geometry": {"type": "MultiLineString", "coordinates": lines},
    }


def graticule(bounds_lonlat) -> tuple[dict, list[tuple[float, float, str]]]:
    """Meridians and parallels around ``(west, south, east, north)``, some 4 to 8 across it, over
    five times its extent; and labels ``(lat, lon, text)`` at the south-west edge of the bounds."""
    west, south, east, north = bounds_lonlat
    span = max(east - west, north - south, 1e-6)
    step = next((s for s in STEPS if span / s <= 8), STEPS[-1])
    lo_lon, hi_lon = max(-180, west - 2 * span), min(180, east + 2 * span)
    lo_lat, hi_lat = max(-85, south - 2 * span), min(85, north + 2 * span)
    lons = np.arange(math.ceil(lo_lon / step) * step, hi_lon + step / 2, step)
    lats = np.arange(math.ceil(lo_lat / step) * step, hi_lat + step / 2, step)
    lines = [[[round(lon, 7), round(lat, 7)] for lat in np.linspace(lo_lat, hi_lat, 24)] for lon in lons]
    lines += [[[round(lon, 7), round(lat, 7)] for lon in np.linspace(lo_lon, hi_lon, 24)] for lat in lats]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step in (0.25, 0.002, 0.02, 0.2, 0.005, 0.05, 0.5) and decimals < 3:
        decimals = len(f"{step:g}".split(".")[-1])
    labels = []
    for lon in lons:
        if west - step / 2 <= lon <= east + step / 2:
            labels.append((south, float(lon), f"{abs(lon):.{decimals}f}°{'E' if lon >= 0 else 'W'}"))
    for lat in lats:
        if south - step / 2 <= lat <= north + step / 2:
            labels.append((float(lat), west, f"{abs(lat):.{decimals}f}°{'N' if lat >= 0 else 'S'}"))
    feature = {
        "type": "Feature",
        "properties": {"kind": "graticule"},
        "geometry": {"type": "MultiLineString", "coordinates": lines},
    }
    return feature, labels
