"""Make the air-quality example's data: monthly NO2 columns over Europe for 2019 and 2020, and regions.

A stand-in for the Sentinel-5P TROPOMI tropospheric NO2 monthly means that showed the spring 2020
lockdowns from space, made from a seeded generator and nothing downloaded. Three GeoTIFFs on one
grid (EPSG:4326, 10 W - 30 E, 35 N - 60 N):

``no2_2019.tif``, ``no2_2020.tif``
    float32, 12 bands (January to December), tropospheric NO2 column in micromol/m2: a rural
    background plus plumes over the big cities and industrial basins (Po valley, Ruhr, Benelux,
    Paris, London, Madrid, Barcelona, Upper Silesia...), higher in winter, with weather noise.
    In 2020 the plumes drop from March to May by what each country's lockdown did (about -45 %
    in Italy and Spain, -40 % in France, -20 % in Germany and Poland, little in Sweden).
``regions.tif``
    uint8, the region each pixel belongs to: the country of the nearest capital (an approximation
    of the borders, good enough for a chart); the names are in ``REGIONS``.

Run ``python examples/make_air_quality_data.py [FOLDER] [--width N]``; files already there with the
same width and seed are kept.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_bounds

BOUNDS = (-10.0, 35.0, 30.0, 60.0)  # west, south, east, north
VERSION = "1"

# region id -> (name, capital lon, lat, lockdown factor on the plumes, March-May 2020)
REGIONS = {
    1: ("Portugal", -9.14, 38.72, 0.60),
    2: ("Spain", -3.70, 40.42, 0.55),
    3: ("France", 2.35, 48.86, 0.60),
    4: ("United Kingdom", -0.13, 51.51, 0.65),
    5: ("Ireland", -6.26, 53.35, 0.70),
    6: ("Belgium & Netherlands", 4.60, 51.50, 0.70),
    7: ("Germany", 10.0, 51.0, 0.80),
    8: ("Switzerland & Austria", 10.5, 47.3, 0.70),
    9: ("Italy", 12.0, 43.5, 0.55),
    10: ("Denmark", 12.57, 55.68, 0.80),
    11: ("Poland", 19.5, 52.0, 0.82),
    12: ("Czechia & Slovakia", 16.5, 49.5, 0.78),
    13: ("Hungary & the Balkans", 20.0, 45.0, 0.85),
    14: ("Sweden & Norway", 15.0, 59.0, 0.92),
}

# plumes: lon, lat, amplitude (micromol/m2 above background), width (degrees)
PLUMES = [
    (9.19, 45.46, 120, 1.4),  # Milan and the Po valley
    (11.3, 45.0, 70, 1.6),
    (12.50, 41.90, 55, 0.5),  # Rome
    (14.27, 40.85, 45, 0.4),  # Naples
    (-3.70, 40.42, 95, 0.45),  # Madrid
    (2.17, 41.39, 70, 0.4),  # Barcelona
    (-9.14, 38.72, 45, 0.35),  # Lisbon
    (2.35, 48.86, 100, 0.55),  # Paris
    (4.84, 45.76, 45, 0.35),  # Lyon
    (-0.13, 51.51, 105, 0.55),  # London
    (-2.24, 53.48, 60, 0.6),  # Manchester and Leeds
    (-6.26, 53.35, 35, 0.3),  # Dublin
    (4.40, 51.90, 110, 0.8),  # Rotterdam, Antwerp, Brussels
    (7.00, 51.45, 130, 0.7),  # the Ruhr
    (8.68, 50.11, 60, 0.45),  # Frankfurt
    (13.40, 52.52, 55, 0.45),  # Berlin
    (11.58, 48.14, 45, 0.35),  # Munich
    (16.37, 48.21, 45, 0.35),  # Vienna
    (8.54, 47.37, 35, 0.3),  # Zurich
    (18.8, 50.2, 90, 0.6),  # Upper Silesia
    (21.01, 52.23, 50, 0.4),  # Warsaw
    (14.42, 50.08, 45, 0.35),  # Prague
    (19.04, 47.50, 45, 0.4),  # Budapest
    (20.46, 44.79, 40, 0.4),  # Belgrade
    (12.57, 55.68, 30, 0.3),  # Copenhagen
    (18.07, 59.33, 25, 0.3),  # Stockholm
    (10.75, 59.91, 25, 0.3),  # Oslo
]


def _grid(width: int):
    height = max(1, round(width * (BOUNDS[3] - BOUNDS[1]) / (BOUNDS[2] - BOUNDS[0])))
    transform = from_bounds(*BOUNDS, width, height)
    lon = BOUNDS[0] + (np.arange(width) + 0.5) * (BOUNDS[2] - BOUNDS[0]) / width
    lat = BOUNDS[3] - (np.arange(height) + 0.5) * (BOUNDS[3] - BOUNDS[1]) / height
    return transform, *np.meshgrid(lon, lat)


def regions(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The id of the nearest capital's region, distances in km-like units (longitude shrunk by latitude)."""
    ids = np.array(list(REGIONS), dtype=np.uint8)
    best = np.full(lon.shape, np.inf)
    out = np.zeros(lon.shape, dtype=np.uint8)
    for rid in ids:
        _, clon, clat, _ = REGIONS[int(rid)]
        d = ((lon - clon) * np.cos(np.radians(lat))) ** 2 + (lat - clat) ** 2
        out = np.where(d < best, rid, out)
        best = np.minimum(best, d)
    return out


def _plumes(lon, lat) -> np.ndarray:
    field = np.zeros(lon.shape)
    for plon, plat, amp, width in PLUMES:
        d2 = ((lon - plon) * np.cos(np.radians(plat))) ** 2 + (lat - plat) ** 2
        field += amp * np.exp(-d2 / (2 * width**2))
    return field


def _up_to_date(path: Path, tags: dict) -> bool:
    if not path.exists():
        return False
    with rasterio.open(path) as src:
        return {k: src.tags().get(k) for k in tags} == tags


def make(folder: str | os.PathLike = "data", width: int = 800, seed: int = 2020) -> dict[str, Path]:
    """Write ``no2_2019.tif``, ``no2_2020.tif`` and ``regions.tif`` (``width`` pixels wide) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {n: folder / f"{n}.tif" for n in ("no2_2019", "no2_2020", "regions")}
    tags = {"GENERATOR": "make_air_quality_data", "VERSION": VERSION, "SEED": str(seed), "WIDTH": str(width)}
    if all(_up_to_date(p, tags) for p in paths.values()):
        return paths
    transform, lon, lat = _grid(width)
    rng = np.random.default_rng(seed)
    region = regions(lon, lat)
    plumes = _plumes(lon, lat)
    lockdown = np.ones(lon.shape)
    for rid, (_, _, _, factor) in REGIONS.items():
        lockdown[region == rid] = factor
    background = 18 + 6 * np.exp(-((lat - 50) ** 2) / 60)
    months = np.arange(12)
    season = 1 + 0.35 * np.cos(2 * np.pi * months / 12)  # winter high, summer low
    profile = dict(
        driver="GTiff",
        width=width,
        height=lon.shape[0],
        crs="EPSG:4326",
        transform=transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    for year in (2019, 2020):
        data = np.empty((12, *lon.shape), dtype=np.float32)
        for m in months:
            factor = np.ones(lon.shape)
            if year == 2020 and m in (2, 3, 4):  # March, April, May
                depth = {2: 0.7, 3: 1.0, 4: 0.6}[int(m)]
                factor = 1 - depth * (1 - lockdown)
            weather = 1 + 0.06 * rng.standard_normal()  # the month's weather, Europe-wide
            noise = rng.normal(0, 2.0, lon.shape)  # retrieval noise
            data[m] = np.clip(background * season[m] + plumes * season[m] * factor * weather + noise, 1, None)
        path = paths[f"no2_{year}"]
        with rasterio.open(path, "w", count=12, dtype="float32", nodata=None, **profile) as dst:
            dst.write(data)
            dst.update_tags(**tags, UNITS="micromol/m2", YEAR=str(year))
            for m in months:
                dst.set_band_description(int(m) + 1, f"{year}-{m + 1:02d} monthly mean")
    with rasterio.open(paths["regions"], "w", count=1, dtype="uint8", nodata=0, **profile) as dst:
        dst.write(region, 1)
        dst.update_tags(**tags, **{f"REGION_{k}": v[0] for k, v in REGIONS.items()})
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).parent / "data"))
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    for name, path in make(args.folder, args.width, args.seed).items():
        print(f"{name}: {path}")
