"""Raster sources declared by name, checked, and aligned onto one target grid."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import transform, transform_bounds

from .. import config
from ..errors import CondorMagicError, SourceError
from ..resources import check_count
from .grid import Grid, Tiling
from .identity import remote_identity
from .reader import open_raster

# The options of :func:`sources`: no source can have one of these names.
RESERVED = ("grid", "tile", "halo", "resampling", "mask", "crs", "res", "bounds", "overviews")
# Beyond these, a grid is a mistake (degrees given as metres, say), not an analysis.
MAX_TILES = 10_000_000
MAX_PIXELS_OVER_FINEST = 100
# gdalwarp's -ovr AUTO (GDAL 3.10, apps/gdalwarp_lib.cpp): the grid's pixel size in source pixels is
# measured on a lattice of this many points a side over the whole grid, and an overview whose
# decimation factor is within this of that ratio counts as matching it.
OVERVIEW_POINTS = 10
OVERVIEW_EPSILON = 0.1


@dataclass(frozen=True)
class Source:
    """One named raster, as it is on disk and as it will be read onto the grid."""

    name: str
    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None
    transform: Affine
    nodata: float | None
    resampling: str = "nearest"
    size: int | None = None
    mtime_ns: int | None = None
    warp: bool = False
    offset: tuple[int, int] = (0, 0)
    scale: tuple[float, float] | None = None
    overview: int | None = None  # read from this overview level (rasterio's overview_level): see pick_overview
    full_size: tuple[int, int] | None = None  # the file's width and height when an overview is read
    # rasterio's (rounded) decimation factors of the file's overviews, when described; not in the manifest
    overview_factors: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    kind = "file"

    @property
    def res(self) -> tuple[float, float]:
        return (math.hypot(self.transform.a, self.transform.d), math.hypot(self.transform.b, self.transform.e))

    remote: dict | None = None

    def identity(self) -> list:
        """What identifies this source's content for the run id: its path, and for a local file its
        size and modification time, for a remote one what the server says of it (ETag, Last-Modified)."""
        return [self.path, self.size, self.mtime_ns, self.remote]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtype": self.dtype,
            "crs": self.crs,
            "transform": list(self.transform)[:6],
            "nodata": _json_nodata(self.nodata),
            "resampling": self.resampling,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "warp": self.warp,
            "offset": list(self.offset),
            "scale": list(self.scale) if self.scale else None,
            "remote": self.remote,
            **({"overview": self.overview, "full_size": list(self.file_size)} if self.overview is not None else {}),
        }

    def changed(self) -> bool:
        """Whether the file's content changed since declared: a local file's size or modification
        time, a remote file's ETag or Last-Modified."""
        if self.remote is not None:
            try:
                return remote_identity(self.path, config.get("http_timeout")) != self.remote
            except TimeoutError:
                raise SourceError(_no_answer(self.name, self.path)) from None
        if self.size is None:
            return False
        try:
            stat = os.stat(self.path)
        except OSError:
            return True
        return (stat.st_size, stat.st_mtime_ns) != (self.size, self.mtime_ns)

    def row(self) -> dict:
        """The ``%condor_sources`` table's row: the file's size and resolution, and how it is read."""
        width, height = self.file_size
        xres, yres = self.file_res
        return {
            "name": self.name,
            "file": self.path,
            "size": f"{width} x {height}",
            "bands": self.count,
            "dtype": self.dtype,
            "crs": _crs_label(self.crs),
            "resolution": f"{xres:.6g} x {yres:.6g}",
            "warped": f"yes ({self.resampling}{self.overview_note(', ')})"
            if self.warp
            else f"no{self.overview_note(' (')}{')' if self.overview is not None else ''}",
        }

    @property
    def file_size(self) -> tuple[int, int]:
        """The file's width and height at full resolution (``width`` and ``height`` are what is read)."""
        return self.full_size or (self.width, self.height)

    @property
    def file_res(self) -> tuple[float, float]:
        """The file's resolution at full resolution (``res`` is that of what is read)."""
        width, height = self.file_size
        return (self.res[0] * self.width / width, self.res[1] * self.height / height)

    @property
    def overview_factor(self) -> float | None:
        """The decimation factor of the overview read (the file's width over the overview's), or ``None``."""
        if self.overview is None or not self.full_size:
            return None
        return self.full_size[0] / self.width

    def overview_note(self, before: str = "") -> str:
        """``"from its 2x overview"`` (after ``before``) when an overview is read, else ``""``."""
        factor = self.overview_factor
        return "" if factor is None else f"{before}from its {factor:.3g}x overview"


@dataclass
class Sources(Mapping):
    """Named raster sources on one target grid, cut into tiles.

    Build it with :func:`sources`. Iterating gives the names in declaration order,
    which is the order of the arrays the function receives.
    """

    by_name: dict[str, Source]
    grid: Grid
    tile: int
    halo: int = 0
    mask: str | None = None
    grid_from: str | None = None
    overviews: bool = True
    # The arguments of :func:`sources` that made this, to declare it again when a file changed.
    declaration: dict = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, name: str) -> Source:
        return self.by_name[name]

    def __iter__(self):
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def tiles(self) -> Tiling:
        """The grid's tiles, computed on demand (a grid of millions of tiles costs nothing)."""
        return Tiling(self.grid.width, self.grid.height, self.tile, self.halo)

    def to_dict(self) -> dict:
        return {
            "grid": self.grid.to_dict(),
            "grid_from": self.grid_from,
            "tile": self.tile,
            "halo": self.halo,
            "mask": self.mask,
            "overviews": self.overviews,
            "sources": [s.to_dict() for s in self.by_name.values()],
        }

    def identity(self) -> dict:
        """What of the sources determines a result: used in the run id."""
        return {
            "grid": self.grid.to_dict(),
            "tile": self.tile,
            "halo": self.halo,
            "mask": self.mask,
            # The overview level a source reads (None: full resolution) changes its pixels, so it counts;
            # overviews=True where no source is finer than the grid changes nothing, and does not.
            "sources": {
                n: s.identity() + [s.resampling, getattr(s, "overview", None)] for n, s in self.by_name.items()
            },
        }

    def changed(self) -> list[str]:
        """The names of the sources whose content changed since declared: a local file's size or modification
        time, a remote file's ETag or Last-Modified."""
        return [name for name, s in self.by_name.items() if s.changed()]

    def current(self) -> Sources:
        """These sources as they are now: the same object if no file changed, else declared anew
        (so a run reads and is identified by the files as they are when it is submitted)."""
        if not self.changed() or not self.declaration:
            return self
        return sources(**self.declaration)

    def table(self) -> list[dict]:
        """One row per source: what the ``%condor_sources`` table shows."""
        return [s.row() for s in self.by_name.values()]

    def collections(self) -> dict:
        """The collection sources, by name (:class:`~condormagic.tiling.collection.CollectionSource`)."""
        return {n: s for n, s in self.by_name.items() if s.kind == "collection"}

    def __repr__(self) -> str:
        names = ", ".join(self.by_name)
        g = self.grid
        return (
            f"<Sources [{names}] grid {g.width}x{g.height} {_crs_label(g.crs)}, "
            f"tile {self.tile}, halo {self.halo}, {len(self.tiles)} tiles>"
        )


def sources(
    grid: str | None = None,
    tile: int = 1024,
    halo: int = 0,
    resampling: Mapping[str, str] | None = None,
    mask: str | None = None,
    crs: str | None = None,
    res: float | tuple[float, float] | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    overviews: bool = True,
    **paths,
) -> Sources:
    """Declare named raster sources and the grid they are read onto.

    Parameters
    ----------
    grid : str, optional
        Name of the source whose grid is the target grid. Default: the first source,
        unless ``crs``, ``res`` and ``bounds`` give an explicit grid.
    tile : int
        Tile size in pixels (square).
    halo : int
        Pixels of context read around every tile; the worker crops them from the result.
    resampling : dict, optional
        Per-source resampling for sources warped onto the grid (``{"dem1": "bilinear"}``);
        nearest by default.
    mask : str, optional
        Name of a source whose all-zero (or all-nodata) tiles are skipped.
    crs, res, bounds : optional
        An explicit target grid: CRS (anything ``rasterio.crs.CRS.from_user_input``
        takes), resolution in CRS units, and ``(left, bottom, right, top)``.
    overviews : bool
        Read a source whose pixels are finer than the grid's from its overview, as ``gdalwarp``
        (``-ovr AUTO``) and odc-stac do: the coarsest overview still at least as fine as the grid,
        within GDAL's tolerance (see :func:`pick_overview`), chosen once per source (per asset of a collection) for the
        whole grid, so every tile reads the same level. ``False`` reads every source at full
        resolution. Part of the run id: it changes the pixels read. A collection's own
        ``overviews`` (``cm.collection(..., overviews=False)``) wins for its assets.
    **paths : str or Collection
        ``name=path`` for each source, in the order the function receives them. Any path
        or URI rasterio opens (``/vsicurl/...``, ``/vsizip/...``) works; or a collection of
        scenes from :func:`condormagic.collection`, which the function receives as a 4-D array
        ``(time, band, rows, cols)``. A collection needs an explicit grid (``crs`` and ``res``;
        without ``bounds`` the grid covers its items) or a file source to take the grid from;
        its ``resampling`` may be one method or one per band (``{"s2": {"SCL": "nearest",
        "*": "bilinear"}}``).

    Returns
    -------
    Sources

    Raises
    ------
    SourceError
        A file is missing or unreadable, a source does not overlap the grid, or
        an option names no declared source.
    """
    if not paths:
        raise SourceError('No sources were given: name each raster, as in cm.sources(dem="dem.tif").')
    for name in paths:
        if not name.isidentifier() or name in RESERVED:
            better = re.sub(r"\W", "_", name).strip("_") or "src"
            better = f"{better}_src" if better in RESERVED or better[0].isdigit() else better
            raise SourceError(
                f"{name!r} cannot name a source: use a Python identifier that is not one of "
                f"{', '.join(RESERVED)} (the options of cm.sources), such as {better}."
            )
    try:
        tile, halo = check_count(tile, "tile"), check_count(halo, "halo", minimum=0)
    except CondorMagicError as exc:
        raise SourceError(str(exc)) from None
    if not isinstance(overviews, bool):
        raise SourceError(
            f"overviews={overviews!r} is not True or False: True reads sources finer than the grid from overviews."
        )
    resampling = dict(resampling or {})
    for name in [grid, mask, *resampling]:
        if name is not None and name not in paths:
            raise SourceError(f"{name!r} is not a declared source: declared are {', '.join(paths)}.")
    collections = {name: value for name, value in paths.items() if _is_collection(value)}
    for name, method in resampling.items():
        if name in collections and isinstance(method, Mapping):
            continue  # per band: checked when the collection is bound
        if method not in Resampling.__members__:
            raise SourceError(
                f"Unknown resampling {method!r} for {name!r}: use one of nearest, bilinear, cubic, "
                "average, mode, min, max, med."
            )
    for option, name in (("grid", grid), ("mask", mask)):
        if name in collections:
            raise SourceError(
                f"{option}={name!r} names a collection, which has no grid or mask of its own: give crs, res and "
                f"bounds for the grid{', and a raster file as the mask' if option == 'mask' else ''}."
            )

    opened = {
        name: _describe(name, path, resampling.get(name, "nearest"))
        for name, path in paths.items()
        if name not in collections
    }
    explicit = [crs, res, bounds]
    if collections and crs is not None and res is not None and bounds is None and grid is None:
        # The grid covers the collections' items, on whole multiples of the resolution.
        boxes = [c.bounds(_checked_crs(crs)) for c in collections.values()]
        bounds = snap(
            (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)),
            res,
        )
        explicit = [crs, res, bounds]
    if any(v is not None for v in explicit):
        if grid is not None or any(v is None for v in explicit):
            raise SourceError(
                "An explicit grid needs all of crs, res and bounds (or crs and res alone with a collection, to cover "
                "its items), and no grid source name."
            )
        target = _explicit_grid(crs, res, bounds)
        grid_from = None
        _check_size(target, tile, opened.values())
    elif not opened:
        raise SourceError(
            "A collection needs a grid to be read onto: give crs and res (the grid then covers its items), and "
            "bounds to choose the area, or a raster file source whose grid is used."
        )
    else:
        grid_from = grid or next(iter(opened))
        g = opened[grid_from]
        target = Grid(g.crs, g.transform, g.width, g.height)
        _check_size(target, tile, ())
    if halo >= max(target.width, target.height) and halo > tile:
        raise SourceError(
            f"halo {halo} is wider than the grid ({target.width} x {target.height} px): a halo is the few pixels "
            "of context a tile needs, such as a filter's radius."
        )

    aligned = {
        name: (
            collections[name].bind(name, target, resampling.get(name, "nearest"), overviews=overviews)
            if name in collections
            else _align(on_overview(opened[name], target) if overviews else opened[name], target)
        )
        for name in paths
    }
    declaration = {
        "grid": grid,
        "tile": tile,
        "halo": halo,
        "resampling": resampling,
        "mask": mask,
        "crs": crs,
        "res": res,
        "bounds": bounds,
        "overviews": overviews,
        **paths,
    }
    return Sources(aligned, target, tile, halo, mask, grid_from, overviews, declaration)


def snap(bounds: tuple[float, float, float, float], res) -> tuple[float, float, float, float]:
    """``bounds`` widened to whole multiples of the resolution (so grids of one CRS and resolution align)."""
    xres, yres = (res, res) if isinstance(res, (int, float)) else res
    left, bottom, right, top = bounds
    return (
        math.floor(left / xres) * xres,
        math.floor(bottom / yres) * yres,
        math.ceil(right / xres) * xres,
        math.ceil(top / yres) * yres,
    )


def _is_collection(value) -> bool:
    """Whether a source's value is a collection (``cm.collection(...)``) rather than a path."""
    return not isinstance(value, (str, os.PathLike)) and callable(getattr(value, "bind", None))


def _checked_crs(crs) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except Exception:
        raise SourceError(f"{crs!r} is not a CRS: use an EPSG code such as EPSG:3035, or WKT.") from None


def _check_size(grid: Grid, tile: int, sources) -> None:
    """Refuse a grid whose size is a mistake: too many tiles, or far finer than every source."""
    n_tiles = Tiling(grid.width, grid.height, tile).__len__()
    pixels = grid.width * grid.height
    if n_tiles > MAX_TILES:
        raise SourceError(
            f"The grid is {grid.width:,} x {grid.height:,} pixels, {n_tiles:,} tiles of {tile} px, more than "
            f"{MAX_TILES:,}: check its resolution and units (metres or degrees), or use bigger tiles."
        )
    finest = max((s.width * s.height for s in sources), default=0)
    if finest and pixels > MAX_PIXELS_OVER_FINEST * finest:
        raise SourceError(
            f"The grid is {grid.width:,} x {grid.height:,} pixels, {pixels / finest:,.0f} times the pixels of the "
            f"largest source: check its resolution and units (metres or degrees)."
        )


def is_remote(path: str) -> bool:
    """Whether GDAL reads ``path`` through a virtual file system or a URL, not a local file."""
    return path.startswith("/vsi") or "://" in path


def gdal_http_options() -> dict[str, str]:
    """GDAL's HTTP time-outs from the ``http_timeout`` setting, so a silent server cannot hang a read."""
    seconds = config.get("http_timeout")
    return {
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(seconds))),
        "GDAL_HTTP_TIMEOUT": str(max(1, round(seconds))),
        "GDAL_HTTP_MAX_RETRY": "0",
    }


def _describe(name: str, path: str, resampling: str, identify: bool = True) -> Source:
    """Open ``path`` and describe it; ``identify=False`` asks a remote server nothing more."""
    path = os.fspath(path)
    size = mtime = remote = None
    if not is_remote(path):
        if not os.path.exists(path):
            raise SourceError(f"Source {name!r}: the file {path} does not exist; check the path.")
        path = os.path.abspath(path)
        stat = os.stat(path)
        size, mtime = stat.st_size, stat.st_mtime_ns
    elif identify:
        try:
            remote = remote_identity(path, config.get("http_timeout"))
        except TimeoutError:
            raise SourceError(_no_answer(name, path)) from None
    try:
        with rasterio.Env(**gdal_http_options()), open_raster(path) as ds:
            return Source(
                name=name,
                path=path,
                width=ds.width,
                height=ds.height,
                count=ds.count,
                dtype=ds.dtypes[0],
                crs=ds.crs.to_wkt() if ds.crs else None,
                transform=ds.transform,
                nodata=ds.nodata,
                resampling=resampling,
                size=size,
                mtime_ns=mtime,
                remote=remote,
                overview_factors=tuple(ds.overviews(1)) if ds.count else (),
            )
    except RasterioIOError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unknown error"
        if is_remote(path) and re.search(r"timed? ?out|timeout", reason, re.IGNORECASE):
            raise SourceError(_no_answer(name, path)) from None
        raise SourceError(
            f"Source {name!r}: {path} is not a raster GDAL can read ({reason}); check that it is a GeoTIFF "
            "or another GDAL format."
        ) from None


def _no_answer(name: str, path: str) -> str:
    return (
        f"Source {name!r}: {path} did not answer within {config.get('http_timeout'):g} s; check the URL, "
        "or raise the time-out with %condor_config http_timeout=SECONDS."
    )


def _explicit_grid(crs, res, bounds) -> Grid:
    try:
        wkt = CRS.from_user_input(crs).to_wkt()
    except Exception:
        raise SourceError(f"{crs!r} is not a CRS: use an EPSG code such as EPSG:3035, or WKT.") from None
    xres, yres = (res, res) if isinstance(res, (int, float)) else res
    left, bottom, right, top = bounds
    if xres <= 0 or yres <= 0 or right <= left or top <= bottom:
        raise SourceError(
            "The explicit grid needs a positive resolution and bounds with left < right and bottom < top."
        )
    width, height = math.ceil((right - left) / xres - 1e-9), math.ceil((top - bottom) / yres - 1e-9)
    return Grid(wkt, Affine(xres, 0, left, 0, -yres, top), width, height)


def _align(src: Source, grid: Grid) -> Source:
    """Decide how ``src`` is read onto ``grid``: a pixel offset, or a warp."""
    same_crs = src.crs == grid.crs or (src.crs and grid.crs and CRS.from_wkt(src.crs) == CRS.from_wkt(grid.crs))
    if same_crs:
        # Source pixel (col, row) of the grid's pixel (0, 0): whole numbers mean no resampling is needed.
        col, row = ~src.transform @ (grid.transform.c, grid.transform.f)
        same_axes = all(_close(getattr(src.transform, k), getattr(grid.transform, k)) for k in "abde")
        if same_axes and _whole(col) and _whole(row):
            offset = (round(row), round(col))
            _check_overlap(src, grid, offset)
            return replace(src, warp=False, offset=offset)
    if src.crs is None:
        raise SourceError(
            f"Source {src.name!r} ({src.path}) has no CRS and is not on the grid's pixels, so it cannot be "
            "aligned: give it a CRS or declare sources that share its grid."
        )
    if grid.crs is None:
        raise SourceError(
            f"Source {src.name!r} ({src.path}) is not on the grid's pixels and the grid has no CRS to warp it to: "
            "choose a grid with a CRS, or declare sources that share the grid's pixels."
        )
    if not grid.is_rectilinear or src.transform.b or src.transform.d:
        raise SourceError(
            f"Source {src.name!r} ({src.path}) would need warping to or from a rotated grid, which condormagic "
            "does not do: warp it to a north-up grid first (gdalwarp) or declare sources that share its grid."
        )
    left, bottom, right, top = transform_bounds(CRS.from_wkt(src.crs), CRS.from_wkt(grid.crs), *_src_bounds(src))
    g_left, g_bottom, g_right, g_top = grid.bounds
    if right <= g_left or left >= g_right or top <= g_bottom or bottom >= g_top:
        raise SourceError(
            f"Source {src.name!r} ({src.path}) does not overlap the grid: check that it covers the same area."
        )
    return replace(src, warp=True, offset=(0, 0), scale=_warp_scale(src, grid))


def _warp_scale(src: Source, grid: Grid) -> tuple[float, float]:
    """Grid pixels per source pixel, along x and y, over the whole grid.

    GDAL's warper works this ratio out for each chunk it warps, so with resampling other
    than nearest a tile read on its own would differ from the same pixels of a whole warp;
    the reader passes this one ratio (GDAL's XSCALE and YSCALE) to every tile instead.
    """
    left, bottom, right, top = transform_bounds(CRS.from_wkt(grid.crs), CRS.from_wkt(src.crs), *grid.bounds)
    src_cols = (right - left) / src.res[0]
    src_rows = (top - bottom) / src.res[1]
    return (grid.width / src_cols, grid.height / src_rows)


def grid_ratio(src: Source, grid: Grid) -> float:
    """How many of ``src``'s pixels one pixel of ``grid`` spans, as gdalwarp measures it to pick an
    overview: a lattice of points over the whole grid (pixel corners, its edges included) taken into
    the source's pixel coordinates; the extent they span over the grid's size, along columns and
    rows; the smaller of the two. 0 when it cannot be measured (the grid lies outside the source's
    CRS's domain)."""
    n = OVERVIEW_POINTS
    steps = np.arange(n) / (n - 1)
    cols, rows = np.meshgrid(steps * grid.width, steps * grid.height)
    xs, ys = grid.transform @ (cols.ravel(), rows.ravel())
    if src.crs != grid.crs and not (src.crs and grid.crs and CRS.from_wkt(src.crs) == CRS.from_wkt(grid.crs)):
        try:
            xs, ys = transform(CRS.from_wkt(grid.crs), CRS.from_wkt(src.crs), xs, ys)
        except Exception:  # a CRS pair PROJ cannot transform between: no overview
            return 0.0
    px, py = ~src.transform @ (np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    ok = np.isfinite(px) & np.isfinite(py)
    if not ok.any():
        return 0.0
    px, py = px[ok], py[ok]
    ratio_x = (px.max() - px.min()) / grid.width if px.max() > px.min() else 0.0
    ratio_y = (py.max() - py.min()) / grid.height if py.max() > py.min() else 0.0
    return float(min(ratio_x, ratio_y))


def pick_overview(ratio: float, widths: Sequence[int], width: int) -> int | None:
    """The overview level ``gdalwarp -ovr AUTO`` warps from, or ``None`` for full resolution.

    GDAL's documentation says AUTO takes "the overview level whose resolution is the closest to
    the target resolution"; what its code does (``apps/gdalwarp_lib.cpp``, GDAL 3.10, the one
    rasterio's wheels ship) is: when the grid's pixel spans more than one source pixel (``ratio``
    > 1, see :func:`grid_ratio`), the coarsest level whose decimation factor (``width`` over the
    level's width, from ``widths``, finest first) is less than ``ratio + 0.1``; the 0.1 forgives
    numerical noise (a 19.9 m grid still reads the 2x overview of a 10 m file), so a level is
    never much coarser than the grid.
    """
    if ratio <= 1.0:
        return None
    best, best_factor = None, 1.0
    for level, level_width in enumerate(widths):
        factor = width / level_width
        if factor >= ratio + OVERVIEW_EPSILON or factor <= best_factor:
            continue
        best, best_factor = level, factor
        if abs(ratio - factor) < OVERVIEW_EPSILON:
            break
    return best


def on_overview(src: Source, grid: Grid) -> Source:
    """``src`` as read from the overview ``gdalwarp -ovr AUTO`` would warp from onto ``grid``: the
    level's size and transform, so that the alignment and the resampling scale are the overview's;
    ``src`` itself when the grid is not coarser than it or the file has no overviews."""
    if src.overview is not None or src.crs is None or grid.crs is None:
        return src
    ratio = grid_ratio(src, grid)
    if ratio <= 1.0:
        return src
    with rasterio.Env(**gdal_http_options()):
        factors = src.overview_factors
        if factors is None:
            with open_raster(src.path) as ds:
                factors = tuple(ds.overviews(1))
        widths, shapes = [], []
        for level, rounded in enumerate(factors):  # finest first, as GDAL lists a GeoTIFF's overviews
            if rounded >= ratio + OVERVIEW_EPSILON + 1:
                break  # too coarse, whatever the exact factor (rasterio's is rounded): so are the levels after
            with open_raster(src.path, level) as ds:
                widths.append(ds.width)
                shapes.append((ds.width, ds.height, ds.transform))
            if src.width / ds.width >= ratio + OVERVIEW_EPSILON:
                break  # this level and all coarser ones are too coarse
    level = pick_overview(ratio, widths, src.width)
    if level is None:
        return src
    width, height, transform_ = shapes[level]
    return replace(
        src, width=width, height=height, transform=transform_, overview=level, full_size=(src.width, src.height)
    )


def _check_overlap(src: Source, grid: Grid, offset: tuple[int, int]) -> None:
    row, col = offset
    if row >= src.height or col >= src.width or row + grid.height <= 0 or col + grid.width <= 0:
        raise SourceError(
            f"Source {src.name!r} ({src.path}) does not overlap the grid: check that it covers the same area."
        )


def _src_bounds(src: Source) -> tuple[float, float, float, float]:
    left, top = src.transform @ (0, 0)
    right, bottom = src.transform @ (src.width, src.height)
    return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


def _crs_label(wkt: str | None) -> str:
    if not wkt:
        return "none"
    crs = CRS.from_wkt(wkt)
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    name = wkt.split('"')[1] if '"' in wkt else "custom"
    return name


def _json_nodata(value: float | None):
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    return value
