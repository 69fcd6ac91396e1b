"""Make the deforestation example's data: a forest-reserve polygon raster and two surface models.

Writes three tiled, deflate-compressed GeoTIFFs on one grid (UTM zone 21S, EPSG:32721,
30 m pixels, along a BR-163-like highway in Pará, Brazil), from a seeded generator and
nothing downloaded:

``polygon.tif``
    uint8, 1 inside a few irregular forest-reserve polygons, 0 outside.
``dem_2000.tif``, ``dem_2015.tif``
    float32 metres: digital *surface* models (the top of the canopy where there is forest,
    the ground elsewhere) of the years 2000 and 2015, each with ~1.5 m of measurement noise.
    Between them, lots along new side roads ("fishbone" clearing) lose their 15-35 m canopy,
    less so inside the reserves; land along the main highway was cleared before 2000.

Which way round
---------------
The seed's function flags deforestation where ``dem2 - dem1 > 10``. Clearing a forest
*lowers* the surface model by the height of its canopy, so ``dem2`` is the earlier model
and ``dem1`` the later one: the notebooks declare
``dem1=data/dem_2015.tif dem2=data/dem_2000.tif``, and ``difference`` is the height lost
between 2000 and 2015. The seed's cell, unchanged, then reports about 10 % of the reserves
deforested (6-10 % with other seeds).

Heights are metres above the EGM96 geoid (tags ``VERTICAL_AXIS=up``, ``UNITS=metre``).
``positive="down"`` writes them measured downwards instead (the north-east-down
convention), for which ``dem1=dem_2000.tif dem2=dem_2015.tif`` is the right order.

Run ``python examples/make_deforestation_data.py [FOLDER] [--size N] [--seed S]``; files
already there with the same size, seed and convention are kept, so a demo can call it
every time.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.features import rasterize

CRS = "EPSG:32721"  # WGS 84 / UTM zone 21S
PIXEL = 30.0
ORIGIN = (640_020.0, 9_240_000.0)  # upper-left corner, 55.7 W 6.9 S, near Novo Progresso
FORMAT_VERSION = "1"
NAMES = ("polygon", "dem_2000", "dem_2015")
DEFAULT_FOLDER = Path(__file__).resolve().parent / "data"


def make(folder: str | os.PathLike | None = None, size: int = 4096, seed: int = 2015, positive: str = "up"):
    """Write ``polygon.tif``, ``dem_2000.tif`` and ``dem_2015.tif`` (``size`` x ``size`` pixels).

    Parameters
    ----------
    folder : path, optional
        Created if missing; default ``data/`` next to this script (``examples/data/``).
    size : int
        Pixels a side (30 m each); the scene's features scale with it.
    seed : int
        Seed of the generator: the same seed gives the same files.
    positive : {"down", "up"}
        The vertical axis of the surface models (see the module's docstring).

    Returns
    -------
    dict
        ``{"polygon": path, "dem_2000": path, "dem_2015": path}``.
    """
    if positive not in ("down", "up"):
        raise ValueError(f"positive must be 'down' or 'up', not {positive!r}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, not {size}")
    folder = Path(folder) if folder is not None else DEFAULT_FOLDER
    paths = {name: str(folder / f"{name}.tif") for name in NAMES}
    tags = {"GENERATOR": "make_deforestation_data", "VERSION": FORMAT_VERSION, "SEED": str(seed)}
    dem_tags = dict(tags, VERTICAL_AXIS=positive, UNITS="metre")
    if all(_up_to_date(paths[n], size, dem_tags if n != "polygon" else tags) for n in NAMES):
        return paths
    folder.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    reserves = _reserves(rng, size)
    terrain = _upsample(_terrain(rng), size)
    canopy = _upsample(_canopy(rng), size)  # 15-35 m
    roads, cleared_before, cleared_after = _clearing(rng, size, reserves)

    transform = Affine.translation(*ORIGIN) * Affine.scale(PIXEL, -PIXEL)
    _write(paths["polygon"], reserves, transform, tags, nodata=None)
    canopy[cleared_before | roads] = 0
    sign = np.float32(-1.0 if positive == "down" else 1.0)
    for name in ("dem_2000", "dem_2015"):
        if name == "dem_2015":
            canopy[cleared_after] = 0
        surface = rng.standard_normal((size, size), dtype=np.float32)
        surface *= 1.5
        surface += terrain
        surface += canopy
        surface *= sign
        _write(paths[name], surface, transform, dem_tags, nodata=-9999.0)
        del surface
    return paths


# -- the scene ---------------------------------------------------------------------------------
# Smooth fields are summed on a coarse grid and upsampled once: full-size temporaries are
# what makes numpy slow here.
COARSE = 512


def _upsample(coarse: np.ndarray, rows: int, cols: int | None = None) -> np.ndarray:
    """Bilinear upsampling of a small float32 grid to ``rows`` x ``cols`` (pixel centres aligned)."""

    def axis(n_in: int, n_out: int):
        pos = (np.arange(n_out, dtype=np.float32) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        i0 = np.minimum(pos.astype(np.int64), n_in - 2)
        return i0, (pos - i0).astype(np.float32)

    r0, wr = axis(coarse.shape[0], rows)
    c0, wc = axis(coarse.shape[1], rows if cols is None else cols)
    # Columns first, on the small grid; then whole rows, which are cheap to gather.
    across = coarse[:, c0] * (1 - wc) + coarse[:, c0 + 1] * wc
    out = across[r0]
    out *= (1 - wr)[:, None]
    out += across[r0 + 1] * wr[:, None]
    return out


def _noise(rng: np.random.Generator, cells: int, grid: int = COARSE) -> np.ndarray:
    """Smooth noise in about [-1, 1] on a ``grid`` x ``grid`` coarse grid, ``cells`` features across."""
    return _upsample(rng.uniform(-1, 1, (cells + 2, cells + 2)).astype(np.float32), grid)


def _terrain(rng: np.random.Generator) -> np.ndarray:
    """Rolling lowland, 120-260 m above the geoid, gently rising to the south (coarse grid)."""
    slope = np.linspace(0, 40, COARSE, dtype=np.float32)[:, None]
    return 180 + slope + 45 * _noise(rng, 6) + 20 * _noise(rng, 24) + 6 * _noise(rng, 96)


def _canopy(rng: np.random.Generator) -> np.ndarray:
    """Canopy height of the standing forest: 15-35 m, patchy (coarse grid)."""
    return np.clip(25 + 6 * _noise(rng, 32) + 3 * _noise(rng, 256), 15, 35)


def _reserves(rng: np.random.Generator, size: int) -> np.ndarray:
    """Four irregular reserve polygons, rasterized: 1 inside, 0 outside."""
    shapes = []
    centres = [(0.27, 0.3), (0.72, 0.25), (0.3, 0.75), (0.75, 0.7)]
    theta = np.linspace(0, 2 * math.pi, 160, endpoint=False)
    for cx, cy in centres:
        radius = rng.uniform(0.13, 0.19)
        wobble = sum(
            rng.uniform(0.04, 0.14) / k**0.7 * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in range(2, 9)
        )
        r = radius * (1 + wobble)
        x = (cx + rng.uniform(-0.04, 0.04) + r * np.cos(theta)) * size
        y = (cy + rng.uniform(-0.04, 0.04) + r * np.sin(theta)) * size
        ring = list(zip(x.tolist(), y.tolist(), strict=True))
        shapes.append({"type": "Polygon", "coordinates": [ring + ring[:1]]})
    return rasterize(((s, 1) for s in shapes), out_shape=(size, size), dtype=np.uint8)


def _road(rng: np.random.Generator, start, heading: float, length: float, step: float = 0.01) -> np.ndarray:
    """A wandering road: ``length`` (fraction of the scene) from ``start`` (x, y fractions)."""
    n = max(2, int(length / step))
    turns = np.cumsum(rng.normal(0, 0.08, n))
    angles = heading + turns - turns.mean() * 0.5
    xy = np.cumsum(np.stack([np.cos(angles), np.sin(angles)], 1) * step, 0) + np.asarray(start)
    return np.vstack([start, xy])


def _clearing(rng: np.random.Generator, size: int, reserves: np.ndarray):
    """Roads, land cleared before 2000 (along the highway) and in 2000-2015 (along side roads)."""
    highway = _road(rng, (0.52, -0.02), math.pi / 2, 1.1)
    side_roads = []
    for i in range(26):
        t = rng.uniform(0.05, 0.95)
        k = int(t * (len(highway) - 1))
        side = 1 if i % 2 else -1
        heading = math.pi / 2 + side * math.pi / 2 + rng.normal(0, 0.2)
        side_roads.append(_road(rng, highway[k], heading, rng.uniform(0.08, 0.3)))

    # Distances to the roads (in scene fractions) on the coarse grid.
    d_highway = _distance([highway], COARSE // 2)
    d_side = _distance(side_roads, COARSE // 2)
    near_highway = _upsample(d_highway - 0.02 * _noise(rng, 40, COARSE // 2), size)
    lots = _lots(rng, size, lot=max(4, size // 256))  # uniform 0-1 per lot of land
    old = (near_highway < 0.03) & (lots < 0.7)
    del near_highway
    # Clearing after 2000: likely near side roads, less likely inside reserves (protected),
    # by whole lots; the 13 % of the land under the most pressure is cleared.
    score = _upsample(np.exp(-d_side / 0.025), size)
    score *= np.where(reserves > 0, np.float32(0.55), np.float32(1.0))
    lots *= 0.4
    lots += 0.6
    score *= lots
    del lots
    score += _upsample(0.05 * _noise(rng, 64, COARSE // 2), size)
    score[old] = -1
    new = score > np.quantile(score[::7, ::7], 0.87)
    del score

    lines = [{"type": "LineString", "coordinates": (r * size).tolist()} for r in [highway, *side_roads]]
    roads = rasterize(((g, 1) for g in lines), out_shape=(size, size), dtype=np.uint8) > 0
    new &= ~roads
    return roads, old, new


def _distance(roads: list[np.ndarray], cells: int) -> np.ndarray:
    """Distance (in scene fractions) from each cell centre of a ``cells`` grid to the nearest road."""
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    x, y = np.meshgrid(centres, centres)
    best = np.full((cells, cells), np.inf, dtype=np.float32)
    for road in roads:
        for (x0, y0), (x1, y1) in zip(road[:-1], road[1:], strict=True):
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
            np.minimum(best, np.hypot(x - (x0 + t * dx), y - (y0 + t * dy)), out=best)
    return best


def _lots(rng: np.random.Generator, size: int, lot: int) -> np.ndarray:
    """Rectangular properties ``lot`` pixels across (twice as long), each a uniform random number."""
    n_rows, n_cols = -(-size // lot), -(-size // (2 * lot))
    grid = rng.uniform(0, 1, (n_rows, n_cols)).astype(np.float32)
    return np.repeat(np.repeat(grid, lot, 0), 2 * lot, 1)[:size, :size]


# -- files -------------------------------------------------------------------------------------
def _up_to_date(path: str, size: int, tags: dict) -> bool:
    if not os.path.exists(path):
        return False
    try:
        with rasterio.open(path) as ds:
            found = ds.tags()
            return (ds.width, ds.height) == (size, size) and all(found.get(k) == v for k, v in tags.items())
    except rasterio.errors.RasterioIOError:
        return False


def _write(path: str, array: np.ndarray, transform: Affine, tags: dict, nodata) -> None:
    """Write a tiled, deflate-compressed GeoTIFF atomically (temporary name, then rename)."""
    profile = {
        "driver": "GTiff",
        "height": array.shape[0],
        "width": array.shape[1],
        "count": 1,
        "dtype": array.dtype,
        "crs": CRS,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "predictor": 3 if array.dtype.kind == "f" else 2,
        "num_threads": "all_cpus",
    }
    tmp = f"{path}.tmp-{os.getpid()}.tif"
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array, 1)
            dst.update_tags(**tags)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER), help="default: examples/data")
    parser.add_argument("--size", type=int, default=4096, help="pixels a side (default 4096)")
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--positive", choices=("down", "up"), default="up", help="vertical axis of the DEMs")
    args = parser.parse_args(argv)
    for path in make(args.folder, args.size, args.seed, args.positive).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
