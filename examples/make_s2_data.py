"""Make a static STAC catalog of Sentinel-2-L2A-like scenes: two granules either side of the UTM 32N/33N boundary.

The data of the collections examples, tests and benchmark, from a seeded generator and nothing
downloaded. ``catalog.json`` (pystac, ``CatalogType.SELF_CONTAINED``: every link and asset href is
relative, so the folder can be moved or copied whole) holds one item per granule and date:

granules
    Two MGRS granules in the Puster valley (Dolomites, 46.78 N), where the UTM zones 32 and 33 meet
    at 12 E: ``32TQS`` in EPSG:32632 just west of 12 E (near the eastern edge of zone 32) and
    ``33TTM`` in EPSG:32633 just east of it (near the western edge of zone 33). Each is ``size`` x
    ``size`` pixels of 10 m (2048 by default, 20.48 km a side), on its own zone's grid, and they
    overlap by about a tenth of their width, in a wedge: the two grids are rotated by some 4 degrees
    from each other there. The MGRS codes are those of the 100 km squares they lie in.
dates
    ``DATES``: twelve passes of relative orbit 22, descending, every 5 days from 2020-08-16 to
    2020-10-10, Sentinel-2A and 2B in turn (each satellite comes back every 10 days). Both granules
    of a pass are acquired on the same orbit a few seconds apart (the eastern one 2.6 s earlier).
assets
    ``B02``, ``B03``, ``B04``, ``B08`` (blue, green, red, near infrared; uint16 surface reflectance
    times 10000, as L2A products of 2020 (baseline 02.xx, no offset), nodata 0) at 10 m, and
    ``SCL`` (uint8, the scene classification: 3 cloud shadow, 4 vegetation, 5 not vegetated,
    6 water, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus, 11 snow; 0 is
    no data and does not occur) at 20 m: Cloud-Optimized GeoTIFFs (deflate, with overviews).

The land is a function of the ground position (longitude and latitude), so both granules show the
same valley, lakes, fields and forest where they overlap: a valley floor of mown meadows, maize and
cereal fields and villages, with a river and lakes (one astride 12 E); forest (conifer and
deciduous) on the slopes; alpine grassland, rock and, in October, some fresh snow above. Vegetation
follows the season (maize harvested in September and October, meadows mown, deciduous trees turning
in October), so the NDVI differs by class and slowly falls; slopes are lit by each date's sun.

The clouds are a function of the ground position too (one pass sees the same clouds in both
granules); their cover varies from none to over 60 % (``CLOUDS``); cloud pixels are bright in every
band (3000-8000); each cloud casts its shadow a fixed distance away from the sun, ``1800 m * size /
2048 / tan(view:sun_elevation)`` towards ``view:sun_azimuth + 180`` (cloud tops at 1.8 km, so the
shadows lengthen into the autumn). ``eo:cloud_cover`` is the percentage of the item's SCL pixels in
classes 8, 9 and 10, and the ``s2:*_percentage`` properties give every class's.

The scene scales with ``size``: a smaller granule covers less ground but shows the same landscape,
only coarser (fields become a pixel or two at 128). Everything is seeded: the same size and seed
give byte-identical files.

Layout (``--out``, default ``examples/data/s2/``)::

    catalog.json
    S2A_32TQS_20200816_0_L2A/S2A_32TQS_20200816_0_L2A.json
    S2A_32TQS_20200816_0_L2A/B02.tif, B03.tif, B04.tif, B08.tif, SCL.tif
    S2A_33TTM_20200816_0_L2A/...
    S2B_32TQS_20200821_0_L2A/...

Run ``python examples/make_s2_data.py [--out FOLDER] [--size N] [--seed S]``; the size defaults to
``CONDORMAGIC_DEMO_SIZE`` when set (at most 2048: it only makes the demo smaller) or 2048. A catalog
already there with the same size, seed and version, and all its files, is kept (``--force`` remakes
it), so a notebook can call ``make()`` every time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.shutil import copy
from rasterio.warp import transform as warp_transform

VERSION = "1"
DEFAULT_SIZE = 2048  # pixels of 10 m a side
DEFAULT_SEED = 2020
DEFAULT_FOLDER = Path(__file__).resolve().parent / "data" / "s2"
GENERATOR_KEY = "condormagic:generator"  # the catalog's extra field recording how it was made

LON0, LAT0 = 12.0, 46.78  # the zone boundary, in the Puster valley near Bruneck
RELATIVE_ORBIT = 22
EARTH_RADIUS = 6_371_008.8
OVERLAP = 0.1  # of the granule's width, where they meet at LAT0
CLOUD_TOP = 1800.0  # metres above the ground (of the scene at full size)

# The passes: every 5 days, Sentinel-2A and 2B in turn, a little after 10:07 UTC.
FIRST_PASS = datetime(2020, 8, 16, 10, 7, 29, 24000, tzinfo=UTC)
DATES = [FIRST_PASS + timedelta(days=5 * k, seconds=0.37 * k) for k in range(12)]
SEASON = (datetime(2020, 8, 1, tzinfo=UTC), datetime(2020, 10, 31, tzinfo=UTC))  # t = 0 .. 1
# Per pass: opaque cloud and thin cirrus cover (fractions of both granules together) and the size
# of the cloud cells (metres). Six nearly clear passes, four with 20-40 % of clouds, two above 60 %,
# both satellites having some of each.
CLOUDS = [
    (0.02, 0.0, 2500),
    (0.0, 0.0, 3000),
    (0.30, 0.0, 5000),
    (0.62, 0.10, 9000),
    (0.04, 0.0, 2000),
    (0.01, 0.0, 2500),
    (0.35, 0.0, 6000),
    (0.20, 0.08, 4000),
    (0.80, 0.05, 12000),
    (0.005, 0.0, 2000),
    (0.06, 0.20, 4000),
    (0.03, 0.0, 3000),
]
SNOW_FROM = 2020, 10, 1  # passes from this day on have snow on the peaks

BANDS = {  # asset: common name, centre wavelength and full width at half maximum (micrometres), title
    "B02": ("blue", 0.490, 0.098, "Band 2 - Blue - 10m"),
    "B03": ("green", 0.560, 0.045, "Band 3 - Green - 10m"),
    "B04": ("red", 0.665, 0.038, "Band 4 - Red - 10m"),
    "B08": ("nir", 0.842, 0.145, "Band 8 - NIR - 10m"),
}
SCL_CLASSES = {
    0: ("no_data", "No data"),
    1: ("saturated_or_defective", "Saturated or defective"),
    2: ("dark_area_pixels", "Dark area pixels"),
    3: ("cloud_shadows", "Cloud shadows"),
    4: ("vegetation", "Vegetation"),
    5: ("not_vegetated", "Not vegetated"),
    6: ("water", "Water"),
    7: ("unclassified", "Unclassified"),
    8: ("cloud_medium_probability", "Cloud medium probability"),
    9: ("cloud_high_probability", "Cloud high probability"),
    10: ("thin_cirrus", "Thin cirrus"),
    11: ("snow", "Snow or ice"),
}
CLOUD_CLASSES = (8, 9, 10)
S2_PERCENTAGES = {  # SCL class: the s2:*_percentage property of its share of the item's pixels
    0: "nodata_pixel",
    1: "saturated_defective_pixel",
    2: "dark_features",
    3: "cloud_shadow",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "medium_proba_clouds",
    9: "high_proba_clouds",
    10: "thin_cirrus",
    11: "snow_ice",
}


@dataclass(frozen=True)
class Granule:
    """One MGRS granule: ``size`` x ``size`` pixels of 10 m from (``x0``, ``y1``), its upper-left corner."""

    tile: str  # "32TQS"
    epsg: int
    x0: float
    y1: float
    size: int
    delay: float  # seconds after the pass's time

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    def transform(self, pixel: float = 10.0) -> Affine:
        return Affine(pixel, 0.0, self.x0, 0.0, -pixel, self.y1)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        side = self.size * 10.0
        return self.x0, self.y1 - side, self.x0 + side, self.y1


def granules(size: int) -> list[Granule]:
    """The two granules at ``size`` pixels: zone 32 ending just east of 12 E, zone 33 starting just west."""
    side = size * 10.0
    out = []
    for epsg, delay in ((32632, 2.6), (32633, 0.0)):
        (x,), (y,) = warp_transform("EPSG:4326", f"EPSG:{epsg}", [LON0], [LAT0])
        # The edge facing the other zone goes past 12 E by half the overlap; corners on 20 m.
        reach = OVERLAP * side / 2
        x0 = 20.0 * round((x + reach - side if epsg == 32632 else x - reach) / 20.0)
        y1 = 20.0 * round((y + side / 2) / 20.0)
        lon, lat = warp_transform(f"EPSG:{epsg}", "EPSG:4326", [x0 + side / 2], [y1 - side / 2])
        tile = _mgrs(epsg - 32600, x0 + side / 2, y1 - side / 2, lat[0])
        out.append(Granule(tile, epsg, x0, y1, size, delay))
    return out


def _mgrs(zone: int, easting: float, northing: float, lat: float) -> str:
    """The MGRS 100 km square of a UTM position (northern hemisphere, WGS 84), e.g. ``32TQS``."""
    band = "CDEFGHJKLMNPQRSTUVWX"[int((lat + 80) // 8)]
    column = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3][int(easting // 100_000) - 1]
    row = "ABCDEFGHJKLMNPQRSTUV"[(int(northing // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{column}{row}"


def item_id(date: datetime, granule: Granule, index: int) -> str:
    return f"S2{_platform(index)[-1].upper()}_{granule.tile}_{date:%Y%m%d}_0_L2A"


def _platform(index: int) -> str:
    return "sentinel-2a" if index % 2 == 0 else "sentinel-2b"


# -- the generator -----------------------------------------------------------------------------
def make(
    folder: str | os.PathLike | None = None, size: int | None = None, seed: int = DEFAULT_SEED, force: bool = False
) -> Path:
    """Write the catalog and its assets in ``folder``; return the path of ``catalog.json``.

    Parameters
    ----------
    folder : path, optional
        Created if missing; default ``data/s2/`` next to this script (``examples/data/s2/``).
    size : int, optional
        Pixels of 10 m a side of each granule (even, at least 64); default ``CONDORMAGIC_DEMO_SIZE``
        (at most 2048) or 2048.
    seed : int
        Seed of the generator: the same seed and size give the same files.
    force : bool
        Remake the files even if a catalog made with the same parameters is there.
    """
    # Absolute: pystac makes the asset hrefs relative to the items only from absolute ones.
    folder = Path(folder).absolute() if folder is not None else DEFAULT_FOLDER
    size = default_size() if size is None else int(size)
    if size < 64 or size % 2:
        raise ValueError(f"size must be an even number of pixels, at least 64, not {size}")
    catalog_path = folder / "catalog.json"
    parameters = {"script": "make_s2_data", "version": VERSION, "size": size, "seed": seed}
    layout = granules(size)
    if not force and _up_to_date(catalog_path, parameters, layout):
        return catalog_path
    folder.mkdir(parents=True, exist_ok=True)
    catalog_path.unlink(missing_ok=True)  # written last: present means complete

    # The two granules are independent once the sky of each pass is known: two threads (numpy and
    # GDAL release the GIL), each with its own random streams, so the files do not depend on the order.
    with ThreadPoolExecutor(max_workers=2) as pool:
        scenes = list(pool.map(lambda g: _Scene(g, seed), layout))
        skies = list(pool.map(lambda i: _Sky(i, DATES[i], seed, scenes), range(len(DATES))))

        def render(task):
            index, k = task
            item_dir = folder / item_id(DATES[index], layout[k], index)
            item_dir.mkdir(exist_ok=True)
            return scenes[k].render(index, DATES[index], skies[index], k, item_dir)

        tasks = [(index, k) for index in range(len(DATES)) for k in range(len(layout))]
        stats = list(pool.map(render, tasks))
    records = [(index, layout[k], skies[index].sun, st) for (index, k), st in zip(tasks, stats, strict=True)]
    _write_catalog(folder, parameters, records)
    return catalog_path


def default_size() -> int:
    """``CONDORMAGIC_DEMO_SIZE`` (made even, at most 2048) if it is set, else 2048."""
    env = os.environ.get("CONDORMAGIC_DEMO_SIZE")
    return min(DEFAULT_SIZE, int(env)) // 2 * 2 if env else DEFAULT_SIZE


def _up_to_date(catalog_path: Path, parameters: dict, layout: list[Granule]) -> bool:
    try:
        catalog = json.loads(catalog_path.read_text())
    except (OSError, ValueError):
        return False
    if catalog.get(GENERATOR_KEY) != parameters:
        return False
    folder = catalog_path.parent
    return all(
        (folder / item_id(date, g, i) / name).exists()
        for i, date in enumerate(DATES)
        for g in layout
        for name in (f"{item_id(date, g, i)}.json", *(f"{asset}.tif" for asset in (*BANDS, "SCL")))
    )


# -- ground coordinates and noise -------------------------------------------------------------
# Everything is a function of "scene" coordinates: metres east and north of (LON0, LAT0) on the
# ground (a local equirectangular projection, the same for both zones), divided by size / 2048 so
# that the scene scales with the granules. Smooth fields are evaluated on nodes every STRIDE
# pixels and interpolated bilinearly: the per-pixel work is then a few array operations.
STRIDE = 4


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """A float32 in [-1, 1) for every integer pair (i, j): the lattice values of the noise."""
    h = i.astype(np.uint32) * np.uint32(0x8DA6B343)
    h ^= j.astype(np.uint32) * np.uint32(0xD8163841)
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(2.0 / (1 << 24)) - np.float32(1.0)


def _value_noise(x: np.ndarray, y: np.ndarray, wavelength: float, salt: int) -> np.ndarray:
    u, v = x / wavelength, y / wavelength
    i, j = np.floor(u), np.floor(v)
    fu, fv = (u - i).astype(np.float32), (v - j).astype(np.float32)
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    i, j = i.astype(np.int64), j.astype(np.int64)
    a, b = _hash(i, j, salt), _hash(i + 1, j, salt)
    c, d = _hash(i, j + 1, salt), _hash(i + 1, j + 1, salt)
    return a + (b - a) * fu + (c - a) * fv + (a - b - c + d) * (fu * fv)


def _fbm(x: np.ndarray, y: np.ndarray, wavelength: float, octaves: int, salt: int, gain: float = 0.5) -> np.ndarray:
    """Fractal value noise, about -1 .. 1 (standard deviation ~0.3), features ``wavelength`` across."""
    total, norm, amp = 0.0, 0.0, 1.0
    for k in range(octaves):
        total = total + amp * _value_noise(x, y, wavelength / 2**k, salt * 1009 + k * 7919)
        norm += amp
        amp *= gain
    return total / np.float32(norm)


def _refine(nodes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear interpolation of values on the nodes (every STRIDE pixels from pixel 0) to every pixel."""
    cells = -(-size // STRIDE)  # node intervals covered
    weights = np.arange(STRIDE, dtype=np.float32) / STRIDE
    across = np.empty((nodes.shape[0], cells, STRIDE), dtype=np.float32)
    left, right = nodes[:, :cells], nodes[:, 1 : cells + 1]
    for p, w in enumerate(weights):
        across[:, :, p] = left * (1 - w) + right * w
    across = across.reshape(nodes.shape[0], cells * STRIDE)
    out = np.empty((cells, STRIDE, cells * STRIDE), dtype=np.float32)
    top, bottom = across[:cells], across[1 : cells + 1]
    for p, w in enumerate(weights):
        np.multiply(top, 1 - w, out=out[:, p])
        if w:
            out[:, p] += bottom * w
    out = out.reshape(cells * STRIDE, cells * STRIDE)
    return out if cells * STRIDE == size else np.ascontiguousarray(out[:size, :size])


# -- the land -------------------------------------------------------------------------------------
WATER, MEADOW, MAIZE, CEREAL, BUILT, CONIFER, DECIDUOUS, ALPINE, ROCK = range(9)
# Lakes on the valley floor: centre (east, north of the valley's middle) and half axes, metres.
LAKES = [(300, -150, 2000, 550), (-11000, 0, 1300, 420), (9500, 100, 1000, 350)]
# Reflectance x 10000 (B02, B03, B04, B08) of each class's background (soil, stubble, dry grass,
# senescent leaves, rock) and green vegetation; a pixel mixes them by its vegetation fraction.
BACKGROUND = np.array(
    [
        (520, 600, 320, 140),  # water
        (820, 1100, 1300, 2600),  # meadow: cut grass, hay
        (950, 1250, 1600, 2300),  # maize: bare soil once harvested
        (1050, 1400, 1800, 2700),  # cereal: stubble
        (1100, 1200, 1300, 1800),  # built
        (600, 750, 900, 1900),  # conifer: understorey
        (520, 760, 950, 2500),  # deciduous: autumn leaves
        (1300, 1500, 1750, 2500),  # alpine grassland: dry grass and stones
        (1900, 2150, 2400, 2750),  # rock: limestone and dolomite
    ],
    dtype=np.float32,
)
GREEN = np.array(
    [
        (520, 600, 320, 140),
        (280, 680, 330, 4300),
        (300, 650, 320, 4600),
        (320, 700, 380, 3900),
        (300, 650, 330, 4000),
        (180, 380, 200, 2500),
        (230, 560, 270, 3500),
        (300, 650, 400, 3600),
        (300, 650, 400, 3600),
    ],
    dtype=np.float32,
)
SNOW = np.array((8300, 8200, 8000, 7200), dtype=np.float32)


def _spectra() -> np.ndarray:
    """Reflectance by class (the 10th is snow) and green fraction in 256 steps: ``[band, class * 256 + step]``."""
    background = np.concatenate([BACKGROUND, SNOW[None]])
    green = np.concatenate([GREEN, SNOW[None]])
    steps = np.arange(256, dtype=np.float32)[None, :, None] / 255
    table = background[:, None, :] + steps * (green - background)[:, None, :]
    return np.ascontiguousarray(table.reshape(-1, 4).T)


SPECTRA = _spectra()
CLOUD = np.array((7000, 6900, 6700, 6900), dtype=np.float32)
CIRRUS = np.array((6200, 6000, 5800, 5900), dtype=np.float32)


class _Scene:
    """One granule's land: its class map and everything about it that does not change with the date."""

    def __init__(self, granule: Granule, seed: int):
        self.granule = granule
        self.seed = seed
        n = granule.size
        self.scale = n / DEFAULT_SIZE
        self.nodes_x, self.nodes_y = self.scene_xy(STRIDE)
        x, y = _refine(self.nodes_x, n), _refine(self.nodes_y, n)

        # The valley runs west-east along y ~ 0, meandering; the terrain rises to ridges either side.
        valley = self._valley_distance(self.nodes_x, self.nodes_y)
        elevation = self._elevation(self.nodes_x, self.nodes_y, valley)
        gx = self._elevation_at(self.nodes_x + 20, self.nodes_y) - self._elevation_at(self.nodes_x - 20, self.nodes_y)
        gy = self._elevation_at(self.nodes_x, self.nodes_y + 20) - self._elevation_at(self.nodes_x, self.nodes_y - 20)
        self.normal = np.stack([-gx / 40, -gy / 40, np.ones_like(gx)])
        self.normal /= np.sqrt((self.normal**2).sum(0))
        self.elevation = _refine(elevation, n)
        valley = _refine(valley, n)

        treeline = 1950 + 120 * _refine(_fbm(self.nodes_x, self.nodes_y, 1500, 3, seed + 11), n)
        rockline = 2500 + 150 * _refine(_fbm(self.nodes_x, self.nodes_y, 1200, 3, seed + 12), n)
        floor = (self.elevation < 1050) & (valley < 1500)
        cls = np.full((n, n), CONIFER, dtype=np.uint8)
        deciduous = _refine(_fbm(self.nodes_x, self.nodes_y, 1800, 3, seed + 13), n) - (self.elevation - 1300) / 2000
        cls[deciduous > 0.12] = DECIDUOUS
        clearing = _refine(_fbm(self.nodes_x, self.nodes_y, 900, 3, seed + 14), n)
        cls[(clearing > 0.3) & (self.elevation < treeline - 200)] = MEADOW  # pastures on the slopes
        cls[self.elevation > treeline] = ALPINE
        cls[self.elevation > rockline] = ROCK

        # Fields on the valley floor: strips across the valley, staggered, a crop each.
        parcel = self._parcels(x, y)
        crop = np.select([parcel < 0.50, parcel < 0.72, parcel < 0.90], [MEADOW, MAIZE, CEREAL], default=MEADOW).astype(
            np.uint8
        )
        village = _refine(_fbm(self.nodes_x, self.nodes_y, 1400, 2, seed + 15), n)
        crop[(village > 0.42) & (parcel > 0.2)] = BUILT
        cls = np.where(floor, crop, cls)
        self.parcel = np.where(
            floor, parcel, _refine(_fbm(self.nodes_x, self.nodes_y, 300, 2, seed + 16), n) * 0.5 + 0.5
        )

        # The river along the valley, and lakes on it, one astride the zone boundary.
        cls[np.abs(self._river_offset(x, y)) < 22] = WATER
        shore = 0.25 * _refine(_fbm(self.nodes_x, self.nodes_y, 600, 2, seed + 17), n)
        along = y - self._valley_centre(x)
        for east, north, length, width in LAKES:
            if self.nodes_x.min() < east + 1.5 * length and self.nodes_x.max() > east - 1.5 * length:
                cls[((x - east) / length) ** 2 + ((along - north) / width) ** 2 + shore < 1] = WATER
        self.cls = cls
        self.index = {c: np.flatnonzero(cls == c).astype(np.int32) for c in range(9)}
        # Texture that does not change: tree crowns, furrows (a few percent, granule-specific).
        rng = np.random.default_rng([seed, granule.epsg, 1])
        self.texture = 1 + 0.005 * rng.standard_normal((n, n), dtype=np.float32)
        self.texture *= 1 + 0.06 * _refine(_fbm(self.nodes_x, self.nodes_y, 150, 2, seed + 18), n)
        forest = (cls == CONIFER) | (cls == DECIDUOUS)
        self.texture[forest] *= 1 + 0.02 * rng.standard_normal(int(forest.sum()), dtype=np.float32)

    # Geometry ------------------------------------------------------------------------------------
    def scene_xy(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene coordinates of the nodes every ``step`` pixels (from the first pixel's centre), one past the end."""
        g = self.granule
        count = (g.size - 1) // step + 2
        centres = (np.arange(count) * step + 0.5) * 10.0
        xs, ys = np.meshgrid(g.x0 + centres, g.y1 - centres)
        lon, lat = warp_transform(g.crs, "EPSG:4326", xs.ravel(), ys.ravel())
        lon = np.asarray(lon).reshape(xs.shape)
        lat = np.asarray(lat).reshape(xs.shape)
        metres = math.pi / 180 * EARTH_RADIUS
        x = (lon - LON0) * metres * math.cos(math.radians(LAT0)) / self.scale
        y = (lat - LAT0) * metres / self.scale
        return x.astype(np.float32), y.astype(np.float32)

    def _valley_centre(self, x):
        return 900 * np.sin(x / 6000 + 0.7) + 350 * np.sin(x / 1900 + 2.0) - 300

    def _valley_distance(self, x, y):
        return np.abs(y - self._valley_centre(x))

    def _river_offset(self, x, y):
        return y - self._valley_centre(x) - 120 * np.sin(x / 430 + 1.3) - 60

    def _elevation(self, x, y, valley):
        rise = 1 - np.exp(-((np.maximum(valley - 700, 0) / 6000) ** 2))
        ridges = _fbm(x, y, 7000, 5, self.seed + 1)
        side = _fbm(x, y, 3000, 4, self.seed + 2)  # side valleys and spurs
        return 880 + x * 0.004 + rise * (1500 + 900 * ridges + 600 * side)

    def _elevation_at(self, x, y):
        return self._elevation(x, y, self._valley_distance(x, y))

    def _parcels(self, x, y):
        """A uniform random number per field: strips 120 m wide and 300-500 m long, tilted 20 degrees."""
        c, s = math.cos(0.35), math.sin(0.35)
        u = x * c + y * s
        v = -x * s + y * c
        i = np.floor(u / 120).astype(np.int64)
        shift = _hash(i, i, self.seed + 21) * 250
        j = np.floor((v + shift) / 400).astype(np.int64)
        return _hash(i, j, self.seed + 22) * 0.5 + 0.5

    # One date ------------------------------------------------------------------------------------
    def vegetation(self, t: float) -> np.ndarray:
        """The green vegetation fraction of every pixel at season time ``t`` (0 on 1 August, 1 on 31 October)."""
        v = np.empty(self.cls.shape, dtype=np.float32)
        flat = v.reshape(-1)
        p = self.parcel.reshape(-1)
        for c, idx in self.index.items():
            if c == MEADOW:
                q = p[idx]
                mown = 0.05 + 0.75 * ((q * 7.31) % 1)  # when the parcel is cut
                base = 0.9 - 0.25 * t
                after = np.minimum(base, 0.35 + 2.0 * (t - mown))
                flat[idx] = np.where((t >= mown) & (q < 0.85), after, base)
            elif c == MAIZE:
                harvest = 0.45 + 0.45 * ((p[idx] * 13.7) % 1)
                flat[idx] = np.where(t < harvest, 0.93 - 0.1 * t, 0.08)
            elif c == CEREAL:
                cover = (p[idx] * 5.3) % 1 < 0.5  # a cover crop sown after the harvest
                grow = 0.15 + 0.55 * np.clip((t - 0.2) / 0.6, 0, 1)
                flat[idx] = np.where(cover, grow, 0.12)
            else:
                flat[idx] = {
                    WATER: 0.0,
                    BUILT: 0.22,
                    CONIFER: 0.95 - 0.05 * t,
                    DECIDUOUS: 0.95 - 0.6 * np.clip((t - 0.55) / 0.45, 0, 1) ** 1.5,
                    ALPINE: 0.7 - 0.3 * t,
                    ROCK: 0.04,
                }[c]
        return v

    def illumination(self, sun: tuple[float, float]) -> np.ndarray:
        """Direct and diffuse light on the slopes relative to flat ground (the flat valley floor is 1)."""
        azimuth, elevation = (math.radians(a) for a in sun)
        to_sun = np.array(
            [math.sin(azimuth) * math.cos(elevation), math.cos(azimuth) * math.cos(elevation), math.sin(elevation)],
            dtype=np.float32,
        )
        direct = np.maximum(np.tensordot(to_sun, self.normal, 1), 0) / to_sun[2]
        return _refine(0.2 + 0.8 * direct, self.granule.size)

    def render(self, index: int, date: datetime, sky: _Sky, k: int, item_dir: Path) -> dict:
        """Write the date's four bands and SCL in ``item_dir``; return the SCL's class percentages."""
        n = self.granule.size
        t = (date - SEASON[0]) / (SEASON[1] - SEASON[0])
        v = self.vegetation(t)
        light = self.illumination(sky.sun)
        light *= self.texture
        opaque, core, shade, cirrus = sky.masks(self, k)
        np.multiply(light, np.float32(0.3), out=light, where=shade)
        snow = None
        if date >= datetime(*SNOW_FROM, tzinfo=UTC):
            snowline = 2650 + 100 * _refine(_fbm(self.nodes_x, self.nodes_y, 800, 3, self.seed + 31 + index), n)
            snow = self.elevation > snowline
        # Clouds are blended in where they are only (flat indices): most passes are mostly clear.
        alpha = np.zeros((n, n), dtype=np.float32)  # opacity of the opaque clouds
        if opaque is not None:
            cloudy = np.flatnonzero(opaque)
            alpha.reshape(-1)[cloudy] = 0.55 + 0.45 * core.reshape(-1)[cloudy]
            tops = _refine(_fbm(self.nodes_x, self.nodes_y, 400, 3, self.seed + 41 + index), n).reshape(-1)[cloudy]
            tops = 0.9 + 0.2 * tops  # the brightness of the cloud tops
            opacity = alpha.reshape(-1)[cloudy]
        thin = np.flatnonzero(cirrus) if cirrus is not None else None
        rng = np.random.default_rng([self.seed, self.granule.epsg, 2, index])

        lookup = self.cls.astype(np.uint16) * 256
        lookup += (v * 255 + 0.5).astype(np.uint16)
        if snow is not None:
            lookup[snow] = 9 * 256

        red = nir = None
        for b, asset in enumerate(BANDS):
            reflectance = SPECTRA[b][lookup]
            reflectance *= light
            flat = reflectance.reshape(-1)
            if thin is not None:
                below = flat[thin]
                flat[thin] = below + 0.5 * (CIRRUS[b] - below)
            if opaque is not None:
                below = flat[cloudy]
                flat[cloudy] = below + opacity * (CLOUD[b] * tops - below)
            # The sensor's noise: the sum of two uniform integers in -3 .. 3 (a standard deviation of
            # 2.8 in reflectance x 10000), far cheaper to draw than normal numbers.
            reflectance += rng.integers(-3, 4, (n, n), dtype=np.int8)
            reflectance += rng.integers(-3, 4, (n, n), dtype=np.int8)
            reflectance += np.float32(0.5)  # rounds, below
            np.clip(reflectance, 1, 10000, out=reflectance)
            data = reflectance.astype(np.uint16)
            _write_cog(item_dir / f"{asset}.tif", data, self.granule, 10.0, "average")
            if asset == "B04":
                red = _block_mean(data)
            elif asset == "B08":
                nir = _block_mean(data)

        scl = self.classify(red, nir, opaque, alpha, cirrus, shade, snow)
        _write_cog(item_dir / "SCL.tif", scl, self.granule, 20.0, "mode")
        counts = np.bincount(scl.ravel(), minlength=12)
        return {c: 100.0 * counts[c] / scl.size for c in range(12)}

    def classify(self, red, nir, opaque, alpha, cirrus, shade, snow) -> np.ndarray:
        """The 20 m scene classification: clouds and shadows from the sky, the rest from the reflectance.

        Like the real one, it errs on the safe side: a 20 m pixel is cloud (or else cirrus, or else
        shadow) if any of its four 10 m pixels is, so that masking those classes leaves no bright
        cloud edges behind.
        """
        ndvi = (nir - red) / np.maximum(nir + red, 1)
        scl = np.where(ndvi > 0.4, 4, 5).astype(np.uint8)
        scl[(ndvi < 0) & (nir < 800)] = 6
        if snow is not None:
            scl[_block_mean(snow) >= 0.5] = 11
        scl[_block_mean(shade) > 0] = 3
        if cirrus is not None:
            scl[_block_mean(cirrus) > 0] = 10
        if opaque is not None:
            cloudy = _block_mean(opaque) > 0
            scl[cloudy] = 8
            scl[cloudy & (_block_mean(alpha) >= 0.8)] = 9
        return scl


def _block_mean(a: np.ndarray) -> np.ndarray:
    """2 x 2 means: the 20 m pixel of a 10 m array (of a mask: the share of its 10 m pixels in the mask)."""
    if a.dtype == bool:
        a = a.view(np.uint8)
        total = a[0::2, 0::2] + a[1::2, 0::2]
        total += a[0::2, 1::2]
        total += a[1::2, 1::2]
        return total * np.float32(0.25)
    a = a.astype(np.float32, copy=False)
    total = a[0::2, 0::2] + a[1::2, 0::2]
    total += a[0::2, 1::2]
    total += a[1::2, 1::2]
    return total * np.float32(0.25)


# -- the sky --------------------------------------------------------------------------------------
class _Sky:
    """One pass's sun and clouds, for both granules: the cloud thresholds are set on both together."""

    def __init__(self, index: int, date: datetime, seed: int, scenes: list[_Scene]):
        self.index, self.seed = index, seed
        self.sun = sun_position(date, LON0, LAT0)
        self.opaque, self.cirrus, self.cell = CLOUDS[index]
        azimuth, elevation = (math.radians(a) for a in self.sun)
        reach = CLOUD_TOP / math.tan(elevation)  # a shadow lies this far from its cloud, away from the sun
        self.towards_sun = (reach * math.sin(azimuth), reach * math.cos(azimuth))
        self.opaque_nodes = [self._opaque(s.nodes_x, s.nodes_y) if self.opaque > 0 else None for s in scenes]
        self.cirrus_nodes = [self._cirrus(s.nodes_x, s.nodes_y) if self.cirrus > 0 else None for s in scenes]
        self.opaque_level = self._level(self.opaque_nodes, self.opaque)
        self.cirrus_level = self._level(self.cirrus_nodes, self.cirrus)

    @staticmethod
    def _level(fields: list[np.ndarray], cover: float) -> float | None:
        if cover <= 0:
            return None
        return float(np.quantile(np.concatenate([f.ravel() for f in fields]), 1 - cover))

    def _opaque(self, x, y):
        return _fbm(x, y, self.cell, 5, self.seed + 101 + self.index, gain=0.55)

    def _cirrus(self, x, y):
        angle = 0.6 + 0.5 * self.index
        c, s = math.cos(angle), math.sin(angle)
        return _fbm((x * c + y * s) / 5, -x * s + y * c, self.cell / 2, 4, self.seed + 201 + self.index)

    def masks(self, scene: _Scene, k: int):
        """Opaque cloud, its core (0 .. 1, 1 the thickest), cloud shadow and cirrus masks at 10 m of scene ``k``."""
        n = scene.granule.size
        opaque = core = cirrus = None
        shade = np.zeros((n, n), dtype=bool)
        if self.opaque_level is not None:
            field = _refine(self.opaque_nodes[k], n)
            opaque = field >= self.opaque_level
            core = np.clip((field - self.opaque_level) / 0.12, 0, 1)
            dx, dy = self.towards_sun
            cast = _refine(self._opaque(scene.nodes_x + dx, scene.nodes_y + dy), n)
            shade = (cast >= self.opaque_level) & ~opaque
        if self.cirrus_level is not None:
            cirrus = _refine(self.cirrus_nodes[k], n) >= self.cirrus_level
            if opaque is not None:
                cirrus &= ~opaque
            shade &= ~cirrus
        return opaque, core, shade, cirrus


def sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Sun azimuth (degrees clockwise from north) and elevation (degrees) at ``when`` (UTC): NOAA's formulas."""
    hours = when.hour + when.minute / 60 + (when.second + when.microsecond / 1e6) / 3600
    g = 2 * math.pi / 365 * (when.timetuple().tm_yday - 1 + (hours - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    hour_angle = math.radians((hours * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    elevation = 90 - math.degrees(math.acos(cos_zenith))
    azimuth = math.degrees(
        math.atan2(math.sin(hour_angle), math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    )
    return round((azimuth + 180) % 360, 4), round(elevation, 4)


# -- files ------------------------------------------------------------------------------------------
def _write_cog(path: Path, data: np.ndarray, granule: Granule, pixel: float, resampling: str) -> None:
    """A Cloud-Optimized GeoTIFF (deflate, 512-pixel tiles, overviews down to a tile), written atomically.

    The overviews are made on an uncompressed copy in memory, which the COG driver then copies
    compressed once: twice as fast as letting it make them (it compresses them twice).
    """
    n = data.shape[0]
    block = 512 if n >= 1024 else max(16, 1 << (n // 2).bit_length() - 1)  # small rasters get overviews too
    factors = [2]
    while n // (2 * factors[-1]) >= block:
        factors.append(2 * factors[-1])
    profile = {
        "width": n,
        "height": n,
        "count": 1,
        "dtype": data.dtype,
        "crs": granule.crs,
        "transform": granule.transform(pixel),
        "nodata": 0,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with MemoryFile() as memory:
            with memory.open(driver="GTiff", tiled=True, blockxsize=block, blockysize=block, **profile) as dst:
                dst.write(data, 1)
                dst.set_band_description(1, path.stem)
                dst.build_overviews(factors, Resampling[resampling])
            with memory.open() as src:
                copy(
                    src,
                    tmp,
                    driver="COG",
                    compress="deflate",
                    level=1,
                    predictor=2,
                    blocksize=block,
                    num_threads="all_cpus",
                )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def footprint(granule: Granule, per_side: int = 8) -> list[list[float]]:
    """The granule's outline in longitude and latitude, counter-clockwise, ``per_side`` points an edge."""
    west, south, east, north = granule.bounds
    steps = np.arange(per_side) / per_side
    xs = np.concatenate([np.full(per_side, west), west + steps * (east - west), np.full(per_side, east)])
    ys = np.concatenate([north - steps * (north - south), np.full(per_side, south), south + steps * (north - south)])
    xs = np.concatenate([xs, east - steps * (east - west), [west]])
    ys = np.concatenate([ys, np.full(per_side, north), [north]])
    lon, lat = warp_transform(granule.crs, "EPSG:4326", xs.tolist(), ys.tolist())
    return [[round(a, 7), round(b, 7)] for a, b in zip(lon, lat, strict=True)]


def _item(index: int, granule: Granule, sun: tuple[float, float], percentages: dict, folder: Path):
    import pystac
    from pystac.extensions.classification import Classification, ClassificationExtension
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.mgrs import MgrsExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension
    from pystac.extensions.sat import OrbitState, SatExtension
    from pystac.extensions.view import ViewExtension

    ring = footprint(granule)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    item = pystac.Item(
        id=item_id(DATES[index], granule, index),
        geometry={"type": "Polygon", "coordinates": [ring]},
        bbox=[min(lons), min(lats), max(lons), max(lats)],
        datetime=DATES[index] + timedelta(seconds=granule.delay),
        properties={},
    )
    item.common_metadata.platform = _platform(index)
    item.common_metadata.constellation = "sentinel-2"
    item.common_metadata.instruments = ["msi"]
    eo = EOExtension.ext(item, add_if_missing=True)
    eo.cloud_cover = round(sum(percentages[c] for c in CLOUD_CLASSES), 4)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = granule.epsg
    proj.bbox = list(granule.bounds)
    sat = SatExtension.ext(item, add_if_missing=True)
    sat.orbit_state = OrbitState.DESCENDING
    sat.relative_orbit = RELATIVE_ORBIT
    view = ViewExtension.ext(item, add_if_missing=True)
    view.sun_azimuth, view.sun_elevation = sun
    MgrsExtension.ext(item, add_if_missing=True).apply(
        latitude_band=granule.tile[2], grid_square=granule.tile[3:], utm_zone=int(granule.tile[:2])
    )
    item.properties.update(
        {
            "s2:mgrs_tile": granule.tile,
            "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": "02.14",
            "s2:datatake_type": "INS-NOBS",
        }
    )
    for code, name in S2_PERCENTAGES.items():
        item.properties[f"s2:{name}_percentage"] = round(percentages[code], 4)

    n = granule.size
    for key, (common, centre, width, title) in BANDS.items():
        asset = pystac.Asset(
            href=str(folder / item.id / f"{key}.tif"),
            title=title,
            media_type=pystac.MediaType.COG,
            roles=["data"],
        )
        item.add_asset(key, asset)
        asset.common_metadata.gsd = 10.0
        EOExtension.ext(asset).bands = [
            Band.create(name=key, common_name=common, center_wavelength=centre, full_width_half_max=width)
        ]
        aproj = ProjectionExtension.ext(asset)
        aproj.shape = [n, n]
        aproj.transform = list(granule.transform(10.0))[:6]
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(nodata=0, data_type=DataType.UINT16, spatial_resolution=10.0, scale=0.0001, offset=0.0)
        ]
    scl = pystac.Asset(
        href=str(folder / item.id / "SCL.tif"),
        title="Scene classification map (SCL) - 20m",
        media_type=pystac.MediaType.COG,
        roles=["data"],
    )
    item.add_asset("SCL", scl)
    scl.common_metadata.gsd = 20.0
    sproj = ProjectionExtension.ext(scl)
    sproj.shape = [n // 2, n // 2]
    sproj.transform = list(granule.transform(20.0))[:6]
    RasterExtension.ext(scl).bands = [RasterBand.create(nodata=0, data_type=DataType.UINT8, spatial_resolution=20.0)]
    ClassificationExtension.ext(scl, add_if_missing=True).classes = [
        Classification.create(value=code, name=name, description=text, nodata=code == 0 or None)
        for code, (name, text) in SCL_CLASSES.items()
    ]
    return item


def _write_catalog(folder: Path, parameters: dict, records: list) -> None:
    import pystac

    layout = {granule.tile: granule.epsg for _, granule, _, _ in records}
    tiles = " and ".join(f"{tile} (EPSG:{epsg})" for tile, epsg in layout.items())

    catalog = pystac.Catalog(
        id="sentinel-2-l2a-synthetic",
        title="Sentinel-2 L2A-like scenes either side of the UTM 32N/33N boundary (synthetic)",
        description=(
            f"Synthetic Sentinel-2 Level-2A granules {tiles} in the Puster valley, {len(DATES)} passes of "
            f"relative orbit {RELATIVE_ORBIT} from {DATES[0]:%Y-%m-%d} to {DATES[-1]:%Y-%m-%d}: B02, B03, B04, "
            "B08 at 10 m and SCL at 20 m, made by examples/make_s2_data.py."
        ),
        extra_fields={GENERATOR_KEY: parameters},
    )
    catalog.add_items([_item(index, granule, sun, pct, folder) for index, granule, sun, pct in records])
    catalog.normalize_hrefs(str(folder))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_FOLDER), help="folder of the catalog (default: examples/data/s2)")
    parser.add_argument("--size", type=int, default=None, help=f"pixels of 10 m a side (default {DEFAULT_SIZE})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="remake the files even if they are up to date")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = make(args.out, args.size, args.seed, args.force)
    print(f"{path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
