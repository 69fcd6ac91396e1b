"""Collections of scenes (STAC items) as one source: filtered, grouped into time steps, read onto the grid.

:func:`collection` reads a STAC catalog, collection or ItemCollection (a file or a URL, through
``pystac``) or takes any iterable of ``pystac.Item`` (a ``pystac-client`` search, say), keeps the
items of a time interval and under a cloud cover, and checks that every item has the bands asked
for (asset keys). Nothing is opened yet: a :class:`Collection` only knows its items' metadata.

Given to :func:`~condormagic.tiling.source.sources` with a grid, it is bound to that grid
(:meth:`Collection.bind`): items whose footprint does not touch the grid are dropped before any
file is opened; every asset of the others is opened once (so an asset that cannot be opened is
named at declaration) and aligned onto the grid exactly as a single-file source is (a pixel
offset, or a warp through GDAL's exact transformer with one resampling scale per asset, so any
tile reads the same pixels as one whole warp would). The function then receives a 4-D array
``(time, band, rows, cols)``.

Time steps
    ``group_by=None``: one step per item. ``group_by="solar_day"``: the items of one local solar
    day (the item's UTC time plus its longitude / 15 hours, as odc-stac and stackstac do) make one
    step; adjacent granules of one pass are then one image. Steps are sorted by time (the earliest
    acquisition of their items); ties keep the items' order.
Mosaic rule
    Within a step, each band of each pixel comes from the first item, in the items' order, that
    has a valid value there: not the asset's nodata (NaN-aware), and inside the asset (for assets
    without nodata). Where no item has one, the band's nodata (or 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from ..errors import SourceError
from .grid import Grid
from .source import Source, _align, _crs_label, _describe, _json_nodata, is_remote, on_overview, snap

GROUPINGS = ("solar_day",)
# Grid pixels added around an asset's footprint, besides its resampling kernel's reach: the
# footprint is a densified outline, so a few pixels keep the reads conservative.
FOOTPRINT_MARGIN = 2
# Source pixels a resampling kernel reaches beyond a pixel (lanczos: 3, cubic: 2, bilinear: 1), where
# the grid is finer than the source; where it is coarser GDAL widens the kernel to the same reach
# in grid pixels. (GDAL gives no value to a grid pixel whose centre falls outside the source, so
# the footprint alone would do; the pad is insurance against the outline's curvature.)
KERNEL_RADIUS = 3
OPEN_THREADS = 8


# -- the collection, before a grid -------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One time step: its time (the earliest of its items'), its solar day when grouped so, its items."""

    time: np.datetime64
    items: tuple  # of pystac.Item, in the items' order
    day: date | None = None

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


class Collection:
    """Scenes (STAC items) selected by time, cloud cover and bands, to be read as one source.

    Made by :func:`collection`. Its public attributes describe the selection without opening
    any file, so that it can be listed and mapped:

    - ``items``: the selected ``pystac.Item`` objects, in the collection's order;
    - ``bands``: the asset keys read, in order (``img.bands[name]``);
    - ``steps``: the time steps (:class:`Step`: ``time``, ``day``, ``items``), sorted by time;
      ``times``: their times as ``datetime64[ns]`` (UTC);
    - :meth:`table`: one dict per item (id, datetime, date, solar day, cloud cover, MGRS tile,
      CRS, size, platform, orbit);
    - :meth:`bounds`: the items' extent in any CRS; :meth:`read`: a window of one time step or one
      item, read onto any grid, at any resolution.
    """

    def __init__(
        self,
        items: Sequence,
        bands: Sequence[str],
        datetime_range: tuple[datetime | None, datetime | None] | None = None,
        max_cloud: float | None = None,
        group_by: str | None = None,
        href: str | None = None,
        overviews: bool | None = None,
    ):
        self.items = list(items)
        self.bands = list(bands)
        self.datetime_range = datetime_range
        self.max_cloud = max_cloud
        self.group_by = group_by
        self.href = href
        self.overviews = overviews  # None: as cm.sources(overviews=...) says
        self._steps: list[Step] | None = None

    # -- description ---------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """Where the items came from: the catalog's path or URL, or how many items were given."""
        return self.href or f"{len(self.items)} STAC items"

    @property
    def steps(self) -> list[Step]:
        if self._steps is None:
            self._steps = group(self.items, self.group_by)
        return self._steps

    @property
    def times(self) -> np.ndarray:
        return np.array([s.time for s in self.steps], dtype="datetime64[ns]")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def table(self) -> list[dict]:
        """One row per item, from its STAC properties (no file is opened): what a scene list shows."""
        rows = []
        for item in self.items:
            when = item_time(item)
            shape = _asset_shape(item, self.bands[0]) if self.bands else None
            rows.append(
                {
                    "id": item.id,
                    "datetime": when.isoformat().replace("+00:00", "Z"),
                    "date": when.date().isoformat(),
                    "solar_day": solar_day(item).isoformat(),
                    "cloud": item.properties.get("eo:cloud_cover"),
                    "mgrs": mgrs_tile(item),
                    "crs": item_crs(item),
                    "size": f"{shape[1]} x {shape[0]}" if shape else None,
                    "platform": item.properties.get("platform"),
                    "orbit": item.properties.get("sat:relative_orbit"),
                }
            )
        return rows

    def bounds(self, crs, step: int | None = None) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the items (or of time step ``step``'s) in ``crs``.

        From each item's ``proj:bbox`` in its own CRS when it has one (exact), else from its
        geometry in longitude and latitude.
        """
        target = CRS.from_user_input(crs)
        items = self.items if step is None else self.steps[step].items
        boxes = [_item_bounds(item, target) for item in items]
        boxes = [b for b in boxes if b is not None]
        if not boxes:
            raise SourceError(f"The items of {self.label} have no footprint (bbox or geometry) to place them.")
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def subset(self, ids: Iterable[str]) -> Collection:
        """The same collection with only the items named (in the collection's order)."""
        wanted = set(ids)
        unknown = wanted - {item.id for item in self.items}
        if unknown:
            raise SourceError(f"{', '.join(sorted(unknown))} {_is_are(unknown)} not in {self.label}.")
        items = [item for item in self.items if item.id in wanted]
        if not items:
            raise SourceError(f"No item of {self.label} was named: name at least one.")
        return Collection(
            items, self.bands, self.datetime_range, self.max_cloud, self.group_by, self.href, self.overviews
        )

    def __repr__(self) -> str:
        steps = len(self.steps)
        return (
            f"<Collection {self.label}: {len(self.items)} items, {steps} time step{'s' if steps != 1 else ''}"
            f" ({self.group_by or 'one per item'}), bands {', '.join(self.bands)}>"
        )

    def _repr_html_(self) -> str:
        from html import escape

        rows = self.table()
        cols = ["date", "id", "cloud", "mgrs", "crs", "size"]
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{escape(str(r[c]))}</td>" for c in cols) + "</tr>"
            for r in rows
        )
        return f"<table><caption style='text-align:left'>{escape(repr(self))}</caption><tr>{head}</tr>{body}</table>"

    # -- onto a grid ---------------------------------------------------------------------------
    def bind(
        self, name: str, grid: Grid, resampling: str | Mapping[str, str] = "nearest", overviews: bool = True
    ) -> CollectionSource:
        """This collection as source ``name`` of ``grid``: items that miss the grid dropped, every
        asset of the others opened and aligned (see the module's docstring); assets finer than the
        grid read from their overviews (unless this collection's ``overviews``, or else
        ``overviews``, is ``False``).

        Raises
        ------
        SourceError
            No item touches the grid, or an asset cannot be opened or has more than one band.
        """
        return bind(self, name, grid, resampling, overviews)

    def read(
        self,
        grid: Grid | None = None,
        *,
        crs=None,
        res: float | tuple[float, float] | None = None,
        bounds: tuple[float, float, float, float] | None = None,
        step: int | None = None,
        item: str | None = None,
        bands: Sequence[str] | None = None,
        resampling: str | Mapping[str, str] = "nearest",
        overviews: bool | None = None,
    ) -> np.ndarray:
        """Read one time step (``step``, an index into :attr:`steps`) or one item (``item``, its id)
        onto a grid, mosaicked by the collection's rule; return ``(bands, rows, cols)``.

        The grid is ``grid``, or ``crs``, ``res`` and ``bounds`` (``bounds`` defaults to the
        step's or item's extent). Any resolution works. Assets finer than the grid are read from
        their overviews as a run reads them (``gdalwarp -ovr AUTO``'s choice, see
        :func:`~condormagic.tiling.source.pick_overview`), unless ``overviews`` (default: the
        collection's own, else ``True``) is ``False``: then at full resolution.
        """
        if (step is None) == (item is None):
            raise SourceError("Read one time step (step=INDEX) or one item (item=ID) of the collection.")
        chosen = self.subset([item]) if item is not None else self._step(step)
        if bands is not None:
            missing = [b for b in bands if b not in self.bands]
            if missing:
                raise SourceError(f"{', '.join(missing)} {_is_are(missing)} not a band of the collection.")
            chosen = Collection(
                chosen.items, list(bands), group_by=self.group_by, href=self.href, overviews=chosen.overviews
            )
        if grid is None:
            if crs is None or res is None:
                raise SourceError("Give a grid, or crs and res (and bounds, or the extent of what is read).")
            from .source import _explicit_grid

            grid = _explicit_grid(crs, res, bounds or snap(chosen.bounds(crs), res))
        if overviews is not None:
            chosen.overviews = overviews
        bound = bind(chosen, "read", grid, resampling)
        from rasterio.windows import Window

        from .reader import CollectionReader

        reader = CollectionReader(bound.to_dict(), grid)
        try:
            return reader.read(Window(0, 0, grid.width, grid.height))[0]
        finally:
            reader.close()

    def _step(self, step: int) -> Collection:
        try:
            chosen = self.steps[step]
        except (IndexError, TypeError):
            raise SourceError(f"{step!r} is not a time step: the collection has {len(self.steps)}.") from None
        return Collection(
            chosen.items,
            self.bands,
            group_by="solar_day" if len(chosen.items) > 1 else None,
            overviews=self.overviews,
        )


def collection(
    source,
    bands: Sequence[str] | str | None = None,
    datetime: str | Sequence | None = None,  # noqa: A002 - the STAC name
    max_cloud: float | None = None,
    group_by: str | None = None,
    overviews: bool | None = None,
) -> Collection:
    """Declare a collection of scenes (STAC items) as one source of :func:`condormagic.sources`.

    Parameters
    ----------
    source : str, path, pystac object, or iterable of pystac.Item
        A STAC catalog, collection or ItemCollection (JSON file or ``http(s)`` URL, read with
        ``pystac``; catalogs are walked to every item below them), a ``pystac`` Catalog,
        Collection or ItemCollection, or any iterable of ``pystac.Item`` (such as
        ``pystac_client.Client.open(url).search(...).items()``).
    bands : list of str, or "B04,B08", optional
        Asset keys to read, in this order (``img.bands[name]``). Every item must have them.
        Default: the assets with the ``data`` role that every item has.
    datetime : str or (start, end), optional
        Keep items acquired in this interval: ``"2020-08-01/2020-10-31"`` (a date-only end
        means the whole day; ``..`` leaves an end open), one day ``"2020-08-16"``, or a pair of
        ``datetime``/``date``/strings/``None``. Times without a zone are UTC.
    max_cloud : float, optional
        Keep items whose ``eo:cloud_cover`` (percent) is at most this; items without it are dropped.
    group_by : {"solar_day", None}
        ``"solar_day"``: items of the same local solar day make one time step, mosaicked
        (first valid pixel in the items' order). ``None``: one time step per item.
    overviews : bool, optional
        ``True``: an asset finer than the grid is read from its overview, as ``gdalwarp -ovr
        AUTO`` and odc-stac read it (the coarsest overview still at least as fine as the grid,
        chosen once per asset and grid); ``False``: every asset at full resolution. Default:
        as :func:`condormagic.sources`' ``overviews`` (``True``). Part of the run id.

    Returns
    -------
    Collection

    Raises
    ------
    SourceError
        The catalog cannot be read, a band is missing from some items (they are named), or no
        item is left after a filter (the filter is named).
    """
    if overviews is not None and not isinstance(overviews, bool):
        raise SourceError(
            f"overviews={overviews!r} is not True or False: True reads assets finer than the grid from overviews."
        )
    items, href = _load(source)
    label = href or "the items given"
    if not items:
        raise SourceError(f"{label} holds no STAC item: check that it is the catalog of your scenes.")
    if group_by not in (None, *GROUPINGS):
        raise SourceError(f"group_by={group_by!r} is not a grouping: use 'solar_day', or None for one step per item.")
    interval = parse_interval(datetime)
    if interval is not None:
        kept = [item for item in items if _in_interval(item, interval)]
        if not kept:
            first, last = min(map(item_time, items)), max(map(item_time, items))
            raise SourceError(
                f"No item of {label} is left after the datetime filter {_interval_text(interval)}: its "
                f"{len(items)} items were acquired from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC."
            )
        items = kept
    if max_cloud is not None:
        try:
            max_cloud = float(max_cloud)
        except (TypeError, ValueError):
            raise SourceError(f"max_cloud={max_cloud!r} is not a number: give a percentage such as 30.") from None
        kept = [i for i in items if _cloud(i) is not None and _cloud(i) <= max_cloud]
        if not kept:
            known = [c for c in map(_cloud, items) if c is not None]
            detail = (
                f"the least cloudy of the {len(items)} items has {min(known):g} %"
                if known
                else f"none of the {len(items)} items has eo:cloud_cover"
            )
            after = " and the datetime filter" if interval is not None else ""
            raise SourceError(f"No item of {label} is left after max_cloud={max_cloud:g}{after}: {detail}.")
        items = kept
    bands = _check_bands(items, bands, label)
    return Collection(items, bands, interval, max_cloud, group_by, href, overviews)


# -- reading STAC ------------------------------------------------------------------------------
def _load(source) -> tuple[list, str | None]:
    """The items of ``source`` and, for a file or URL, its href."""
    import pystac

    if isinstance(source, Collection):
        return list(source.items), source.href
    if isinstance(source, (str, os.PathLike)):
        href = os.fspath(source)
        if not is_remote(href):
            if not os.path.exists(href):
                raise SourceError(f"The STAC file {href} does not exist; check the path.")
            href = os.path.abspath(href)
        try:
            obj = pystac.read_file(href)
        except Exception as exc:  # pystac raises JSON, schema, I/O and type errors alike
            raise SourceError(
                f"{href} cannot be read as STAC ({_reason(exc)}): give a STAC catalog, collection or "
                "ItemCollection as JSON."
            ) from None
        return _items_of(obj, href), href
    if isinstance(source, (pystac.Catalog, pystac.ItemCollection, pystac.Item)):
        return _items_of(source, source.get_self_href() if hasattr(source, "get_self_href") else None), (
            source.get_self_href() if isinstance(source, pystac.Catalog) else None
        )
    if hasattr(source, "items") and callable(source.items) and not isinstance(source, Mapping):
        source = source.items()  # a pystac-client ItemSearch
    try:
        items = list(source)
    except TypeError:
        raise SourceError(
            f"{type(source).__name__} is not a STAC source: give a catalog path or URL, or pystac Items."
        ) from None
    wrong = [type(i).__name__ for i in items if not isinstance(i, pystac.Item)]
    if wrong:
        raise SourceError(f"A collection takes pystac Items, but {len(wrong)} of those given are {wrong[0]}.")
    return items, None


def _items_of(obj, href: str | None) -> list:
    import pystac

    where = href or "the catalog"
    if isinstance(obj, pystac.Item):
        return [obj]
    if isinstance(obj, pystac.ItemCollection):
        return list(obj.items)
    if isinstance(obj, pystac.Catalog):
        try:
            return list(obj.get_items(recursive=True))
        except Exception as exc:
            raise SourceError(f"The catalog {where} links to a file that cannot be read ({_reason(exc)}).") from None
    raise SourceError(f"{where} is a {type(obj).__name__}, not a catalog, collection or ItemCollection.")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _check_bands(items: list, bands, label: str) -> list[str]:
    if isinstance(bands, str):
        bands = [b.strip() for b in bands.split(",") if b.strip()]
    if bands is None:
        common = [k for k, a in items[0].assets.items() if "data" in (a.roles or ["data"])]
        bands = [k for k in common if all(k in item.assets for item in items)]
        if not bands:
            raise SourceError(f"The items of {label} have no data asset in common: name the bands to read.")
        return bands
    bands = list(bands)
    if not bands or not all(isinstance(b, str) and b for b in bands):
        raise SourceError("bands must be asset keys, such as ['B04', 'B08'].")
    if len(set(bands)) != len(bands):
        raise SourceError(f"bands {', '.join(bands)} name a band twice: name each once.")
    for band in bands:
        lacking = [item.id for item in items if band not in item.assets]
        if lacking:
            some = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
            keys = ", ".join(sorted(next(i for i in items if i.id == lacking[0]).assets))
            raise SourceError(
                f"Band {band!r} is missing from {len(lacking)} of the {len(items)} items of {label} ({some}, whose "
                f"assets are {keys}): choose bands every item has, or filter those items out."
            )
    return bands


# -- item properties ---------------------------------------------------------------------------
def item_time(item) -> datetime:
    """The item's acquisition time (``datetime``, else ``start_datetime``), in UTC."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise SourceError(f"Item {item.id} has no datetime: a collection orders its items by time.")
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _item_span(item) -> tuple[datetime, datetime]:
    start = item.common_metadata.start_datetime
    end = item.common_metadata.end_datetime
    if item.datetime is not None or start is None or end is None:
        t = item_time(item)
        return t, t
    return _utc(start), _utc(end)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _centre_lon(item) -> float | None:
    if item.bbox:
        west, east = item.bbox[0], item.bbox[2 if len(item.bbox) == 4 else 3]
        if east < west:  # across the antimeridian
            east += 360
        return ((west + east) / 2 + 180) % 360 - 180
    return None


def solar_day(item) -> date:
    """The item's local solar day: its UTC time plus its centre's longitude / 15 hours."""
    lon = _centre_lon(item)
    when = item_time(item)
    return (when + timedelta(hours=lon / 15)).date() if lon is not None else when.date()


def _cloud(item) -> float | None:
    value = item.properties.get("eo:cloud_cover")
    return float(value) if isinstance(value, (int, float)) else None


def mgrs_tile(item) -> str | None:
    p = item.properties
    if p.get("s2:mgrs_tile"):
        return p["s2:mgrs_tile"]
    if "mgrs:utm_zone" in p:
        return f"{p['mgrs:utm_zone']}{p.get('mgrs:latitude_band', '')}{p.get('mgrs:grid_square', '')}"
    return None


def _epsg_of(props: Mapping) -> str | None:
    if props.get("proj:code"):
        return str(props["proj:code"])
    if props.get("proj:epsg"):
        return f"EPSG:{props['proj:epsg']}"
    return None


def item_crs(item) -> str | None:
    """The item's CRS from its projection extension (``EPSG:32632``), or ``None``."""
    return _epsg_of(item.properties) or next((c for a in item.assets.values() if (c := _epsg_of(a.extra_fields))), None)


def _asset_shape(item, band: str) -> list[int] | None:
    asset = item.assets.get(band)
    shape = (asset.extra_fields.get("proj:shape") if asset else None) or item.properties.get("proj:shape")
    return list(shape) if shape else None


def _item_bounds(item, target: CRS) -> tuple[float, float, float, float] | None:
    code, box = item_crs(item), item.properties.get("proj:bbox")
    if code and box and len(box) == 4:
        return transform_bounds(CRS.from_user_input(code), target, *box, densify_pts=21)
    ring = _geometry_points(item.geometry) if item.geometry else []
    if ring:
        from rasterio.warp import transform

        xs, ys = transform(CRS.from_epsg(4326), target, [p[0] for p in ring], [p[1] for p in ring])
        return min(xs), min(ys), max(xs), max(ys)
    if item.bbox:
        west, south, east, north = (
            item.bbox[0],
            item.bbox[1],
            item.bbox[-3 if len(item.bbox) == 6 else 2],
            item.bbox[-2 if len(item.bbox) == 6 else 3],
        )
        return transform_bounds(CRS.from_epsg(4326), target, west, south, east, north, densify_pts=21)
    return None


def _geometry_points(geometry: Mapping) -> list:
    coords = geometry.get("coordinates", [])

    def flatten(value):
        if value and isinstance(value[0], (int, float)):
            yield value[:2]
        else:
            for part in value:
                yield from flatten(part)

    return list(flatten(coords))


# -- the datetime filter -----------------------------------------------------------------------
def parse_interval(value) -> tuple[datetime | None, datetime | None] | None:
    """``"2020-08-01/2020-10-31"``, ``"2020-08-16"``, ``(start, end)`` as UTC datetimes (``None``: open)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if "/" in text:
            start, _, end = text.partition("/")
            parts = [start.strip(), end.strip()]
        else:
            parts = [text, text]
    elif isinstance(value, (datetime, date)):
        parts = [value, value]
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = []
        if len(parts) != 2:
            raise SourceError(f"datetime={value!r} is not an interval: write '2020-08-01/2020-10-31' or (start, end).")
    start, end = _when(parts[0], value, end=False), _when(parts[1], value, end=True)
    if start is not None and end is not None and end < start:
        raise SourceError(f"datetime={value!r} ends before it starts: write the earlier date first.")
    return start, end


def _when(part, whole, end: bool) -> datetime | None:
    if part is None or (isinstance(part, str) and part in ("", "..")):
        return None
    if isinstance(part, datetime):
        return _utc(part)
    if isinstance(part, date):
        return datetime.combine(part, time.max if end else time.min, tzinfo=UTC)
    text = str(part)
    try:
        if len(text) == 10:  # a date: the whole day
            return datetime.combine(date.fromisoformat(text), time.max if end else time.min, tzinfo=UTC)
        return _utc(datetime.fromisoformat(text.replace("z", "Z")))
    except ValueError:
        raise SourceError(
            f"datetime={whole!r}: {text!r} is not a date or time; write dates as 2020-08-01 and times as "
            "2020-08-01T10:00:00Z."
        ) from None


def _in_interval(item, interval) -> bool:
    start, end = interval
    first, last = _item_span(item)
    return (start is None or last >= start) and (end is None or first <= end)


def _interval_text(interval) -> str:
    start, end = interval

    def show(when, is_end):
        if when is None:
            return ".."
        if when.time() in (time.min, time.max):
            return when.date().isoformat()
        return when.isoformat().replace("+00:00", "Z")

    return f"{show(start, False)}/{show(end, True)}"


# -- grouping ----------------------------------------------------------------------------------
def _datetime64(when: datetime) -> np.datetime64:
    return np.datetime64(when.astimezone(UTC).replace(tzinfo=None), "ns")


def group(items: Sequence, group_by: str | None) -> list[Step]:
    """The time steps of ``items``: one per item, or per solar day; sorted by time, stable."""
    if group_by is None:
        order = sorted(range(len(items)), key=lambda k: item_time(items[k]))
        return [Step(_datetime64(item_time(items[k])), (items[k],)) for k in order]
    days: dict[date, list] = {}
    for item in items:
        days.setdefault(solar_day(item), []).append(item)
    steps = [Step(_datetime64(min(map(item_time, members))), tuple(members), day) for day, members in days.items()]
    return sorted(steps, key=lambda s: s.time)


# -- bound to a grid ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BoundItem:
    """One item on the grid: the window of the grid it may touch, and its assets aligned onto the grid."""

    id: str
    datetime: str
    window: tuple[int, int, int, int]  # row0, col0, row1, col1 on the grid (conservative)
    assets: tuple[Source, ...]  # one per band, in band order


@dataclass(frozen=True)
class CollectionSource:
    """A collection bound to a grid: what :func:`~condormagic.tiling.source.sources` keeps for it.

    ``items`` are the items that touch the grid, ``steps`` lists for each time step the indices
    of its items (in mosaic order) and ``times`` its time; :meth:`to_dict` is what the manifest
    holds and the worker reads.
    """

    name: str
    path: str
    bands: tuple[str, ...]
    group_by: str | None
    items: tuple[BoundItem, ...]
    steps: tuple[tuple[int, ...], ...]
    times: tuple[str, ...]
    dtype: str
    nodata: float | None
    resampling: str | dict = "nearest"
    collection: Collection | None = field(default=None, compare=False, repr=False)
    remote: dict | None = None
    size: int | None = None
    mtime_ns: int | None = None
    overviews: bool = True  # whether assets finer than the grid read their overviews (each asset's ``overview``)
    kind: str = "collection"

    # What a single-file source says of itself, for the tables and views that list sources.
    @property
    def count(self) -> int:
        return len(self.bands)

    @property
    def warp(self) -> bool:
        return any(a.warp for item in self.items for a in item.assets)

    @property
    def width(self) -> int:
        return max(a.file_size[0] for item in self.items for a in item.assets)

    @property
    def height(self) -> int:
        return max(a.file_size[1] for item in self.items for a in item.assets)

    @property
    def res(self) -> tuple[float, float]:
        return min((a.file_res for item in self.items for a in item.assets), key=lambda r: r[0] * r[1])

    @property
    def crs(self) -> str | None:
        return self.items[0].assets[0].crs

    @property
    def crs_labels(self) -> list[str]:
        return sorted({_crs_label(a.crs) for item in self.items for a in item.assets})

    @property
    def resolutions(self) -> list[str]:
        return sorted({f"{a.file_res[0]:.6g} x {a.file_res[1]:.6g}" for item in self.items for a in item.assets})

    @property
    def files(self) -> list[str]:
        return [a.path for item in self.items for a in item.assets]

    def identity(self) -> list:
        """The selection, for the run id: the items' ids and times, the asset files chosen (with a local
        file's size and modification time, and the overview level read) in band order, the time steps in
        order, the bands and grouping."""
        return [
            self.kind,
            self.path,
            list(self.bands),
            self.group_by,
            [
                [item.id, item.datetime, [[a.path, a.size, a.mtime_ns, a.overview] for a in item.assets]]
                for item in self.items
            ],
            [list(s) for s in self.steps],
        ]

    def changed(self) -> bool:
        """Whether a local asset file changed (size or modification time) since declared."""
        for item in self.items:
            for a in item.assets:
                if a.size is None:
                    continue
                try:
                    stat = os.stat(a.path)
                except OSError:
                    return True
                if (stat.st_size, stat.st_mtime_ns) != (a.size, a.mtime_ns):
                    return True
        return False

    def row(self) -> dict:
        """The ``%condor_sources`` table's row."""
        n_items, n_steps = len(self.items), len(self.steps)
        return {
            "name": self.name,
            "file": f"{self.path} ({n_items} item{'s' if n_items != 1 else ''}, {n_steps} time step"
            f"{'s' if n_steps != 1 else ''})",
            "size": f"{n_steps} x {self.count} x rows x cols",
            "bands": ", ".join(self.bands),
            "dtype": self.dtype,
            "crs": ", ".join(self.crs_labels),
            "resolution": ", ".join(self.resolutions),
            "warped": (f"yes ({_resampling_text(self.resampling)})" if self.warp else "no") + self._overviews_note(),
        }

    def _overviews_note(self) -> str:
        assets = [a for item in self.items for a in item.assets]
        read = [a for a in assets if a.overview is not None]
        if not read:
            return ""
        factors = sorted({f"{a.overview_factor:.3g}x" for a in read})
        return f"; {len(read)} of {len(assets)} assets from their {', '.join(factors)} overviews"

    def scenes(self, indices: Iterable[int] | None = None) -> list[dict]:
        """``{"date", "id", "files"}`` of the items (all, or those at ``indices``), for views."""
        chosen = range(len(self.items)) if indices is None else indices
        items = [self.items[k] for k in chosen]
        return [{"date": i.datetime[:10], "id": i.id, "files": [a.path for a in i.assets]} for i in items]

    def to_dict(self) -> dict:
        crss: list[str | None] = []
        assets_of = []
        for item in self.items:
            listed = []
            for a in item.assets:
                if a.crs not in crss:
                    crss.append(a.crs)
                d = a.to_dict()
                for key in ("name", "resampling", "remote", "size", "mtime_ns"):
                    d.pop(key)
                d["crs"] = crss.index(a.crs)
                d["resampling"] = a.resampling
                listed.append(d)
            assets_of.append(listed)
        fills = [_fill(self, b) for b in range(len(self.bands))]
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "bands": list(self.bands),
            "group_by": self.group_by,
            "count": self.count,
            "dtype": self.dtype,
            "nodata": _json_nodata(self.nodata),
            "fill": [_json_nodata(f) for f in fills],
            "resampling": self.resampling,
            "warp": self.warp,
            "overviews": self.overviews,
            "crs": crss,
            "items": [
                {"id": item.id, "datetime": item.datetime, "window": list(item.window), "assets": listed}
                for item, listed in zip(self.items, assets_of, strict=True)
            ],
            "steps": [list(s) for s in self.steps],
            "times": list(self.times),
        }


def _fill(src: CollectionSource, band: int):
    """What a band holds where no item has a value: its first asset's nodata, or 0."""
    value = src.items[0].assets[band].nodata
    return 0 if value is None else value


def _resampling_text(resampling) -> str:
    if isinstance(resampling, Mapping):
        return ", ".join(f"{k} {v}" for k, v in resampling.items())
    return str(resampling)


def bind(
    coll: Collection,
    name: str,
    grid: Grid,
    resampling: str | Mapping[str, str] = "nearest",
    overviews: bool = True,
) -> CollectionSource:
    """See :meth:`Collection.bind`."""
    overviews = overviews if coll.overviews is None else coll.overviews
    if grid.crs is None:
        raise SourceError(f"Collection {name!r} needs a grid with a CRS to be warped onto: give crs, res and bounds.")
    if not grid.is_rectilinear:
        raise SourceError(f"Collection {name!r} cannot be warped onto a rotated grid: choose a north-up grid.")
    target = CRS.from_wkt(grid.crs)
    # Items whose footprint misses the grid are dropped before any file is opened.
    items = [item for item in coll.items if _may_touch(item, target, grid)]
    if not items:
        raise SourceError(
            f"No item of collection {name!r} ({coll.label}) touches the grid, after the datetime, cloud and band "
            f"filters: its {len(coll.items)} items lie elsewhere; check the grid's bounds and CRS."
        )
    methods = _methods(resampling, coll.bands, name)
    tasks = [(item, band) for item in items for band in coll.bands]
    with ThreadPoolExecutor(min(OPEN_THREADS, len(tasks))) as pool:
        opened = list(pool.map(lambda t: _open_asset(name, t[0], t[1], methods[t[1]], grid, overviews), tasks))
    per_item: dict[str, list] = {item.id: [] for item in items}
    for (item, _), opened_asset in zip(tasks, opened, strict=True):
        per_item[item.id].append(opened_asset)
    bound: list[BoundItem] = []
    kept = []
    for item in items:
        assets = [a for a, _ in per_item[item.id]]
        window = _union([w for _, w in per_item[item.id]])
        if window is None:
            continue
        kept.append(item)
        bound.append(BoundItem(item.id, _iso(item_time(item)), window, tuple(assets)))
    if not bound:
        raise SourceError(
            f"No item of collection {name!r} ({coll.label}) touches the grid: their assets lie outside it; check the "
            "grid's bounds and CRS."
        )
    index = {item.id: k for k, item in enumerate(kept)}
    steps = group(kept, coll.group_by)
    dtypes = [np.dtype(a.dtype) for item in bound for a in item.assets]
    fills = [bound[0].assets[b].nodata for b in range(len(coll.bands))]
    dtype = np.result_type(*dtypes)
    for value in fills:
        dtype = _holding(dtype, value)
    nodata = fills[0] if len(set(map(str, fills))) == 1 else None
    stat = _stat(coll.href)
    return CollectionSource(
        name=name,
        path=coll.label,
        bands=tuple(coll.bands),
        group_by=coll.group_by,
        items=tuple(bound),
        steps=tuple(tuple(index[i.id] for i in s.items) for s in steps),
        times=tuple(str(s.time) for s in steps),
        dtype=str(dtype),
        nodata=nodata,
        resampling=dict(resampling) if isinstance(resampling, Mapping) else resampling,
        collection=coll,
        size=stat[0],
        mtime_ns=stat[1],
        overviews=overviews,
    )


def _stat(href: str | None) -> tuple[int | None, int | None]:
    if href and not is_remote(href) and os.path.exists(href):
        st = os.stat(href)
        return st.st_size, st.st_mtime_ns
    return None, None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat()


def _holding(dtype: np.dtype, value) -> np.dtype:
    """``dtype``, widened if it cannot hold the fill ``value``."""
    if value is None:
        return dtype
    from .reader import _needs_wider, _wider_dtype

    return _wider_dtype(value, dtype) if _needs_wider(value, dtype) else dtype


def _methods(resampling, bands: Sequence[str], name: str) -> dict[str, str]:
    from rasterio.enums import Resampling

    if isinstance(resampling, Mapping):
        unknown = [b for b in resampling if b not in bands and b != "*"]
        if unknown:
            raise SourceError(
                f"Resampling names {', '.join(unknown)}, not a band of collection {name!r} ({', '.join(bands)})."
            )
        default = resampling.get("*", "nearest")
        methods = {b: resampling.get(b, default) for b in bands}
    else:
        methods = {b: resampling for b in bands}
    for method in methods.values():
        if method not in Resampling.__members__:
            raise SourceError(
                f"Unknown resampling {method!r} for {name!r}: use one of nearest, bilinear, cubic, average, mode, "
                "min, max, med."
            )
    return methods


def _may_touch(item, target: CRS, grid: Grid) -> bool:
    """Whether the item's footprint (from its STAC metadata) may touch the grid; ``True`` when unknown."""
    try:
        box = _item_bounds(item, target)
    except Exception:  # a footprint that cannot be transformed is judged from its assets
        return True
    if box is None or not all(math.isfinite(v) for v in box):
        return True
    left, bottom, right, top = grid.bounds
    margin = 2 * max(grid.res)
    return not (box[2] < left - margin or box[0] > right + margin or box[3] < bottom - margin or box[1] > top + margin)


def _asset_href(item, band: str) -> str:
    asset = item.assets[band]
    href = asset.get_absolute_href() or asset.href
    if href.startswith("file://"):
        href = href[len("file://") :]
    if not is_remote(href):
        href = os.path.abspath(href)
    return href


def _open_asset(
    name: str, item, band: str, resampling: str, grid: Grid, overviews: bool
) -> tuple[Source, tuple[int, int, int, int] | None]:
    """Open one asset, check it, align it onto the grid; with the grid window it can give values in."""
    href = _asset_href(item, band)
    what = f"asset {band} of item {item.id} ({href})"
    if not is_remote(href) and not os.path.exists(href):
        raise SourceError(f"Collection {name!r}: {what} does not exist; check the catalog's hrefs.")
    try:
        # A remote asset is identified by its href and its item, not by a request to its server.
        source = _describe(name, href, resampling, identify=False)
    except SourceError as exc:
        raise SourceError(f"Collection {name!r}: {what} cannot be opened: {_after_colon(str(exc))}") from None
    if source.count != 1:
        raise SourceError(
            f"Collection {name!r}: {what} has {source.count} bands; a collection reads one band per asset key."
        )
    if source.nodata is None:
        source = replace(source, nodata=_stac_nodata(item.assets[band]))
    if is_remote(href):
        source = replace(source, remote={"updated": item.properties.get("updated")})
    if overviews:
        source = on_overview(source, grid)  # chosen once for the whole grid: every tile reads this level
    try:
        aligned = _align(source, grid)
    except SourceError as exc:
        if "does not overlap" not in str(exc):
            raise SourceError(f"Collection {name!r}: {what}: {_after_colon(str(exc))}") from None
        return replace(source, warp=not _same_crs(source, grid)), None
    return aligned, _footprint(aligned, grid)


def _same_crs(source: Source, grid: Grid) -> bool:
    return bool(source.crs and grid.crs and CRS.from_wkt(source.crs) == CRS.from_wkt(grid.crs))


def _after_colon(message: str) -> str:
    return message.split(": ", 1)[1] if ": " in message else message


def _stac_nodata(asset) -> float | None:
    bands = asset.extra_fields.get("raster:bands") or asset.extra_fields.get("bands") or []
    if bands and isinstance(bands[0], Mapping) and isinstance(bands[0].get("nodata"), (int, float)):
        return bands[0]["nodata"]
    return None


def _footprint(source: Source, grid: Grid) -> tuple[int, int, int, int] | None:
    """The grid window ``(row0, col0, row1, col1)`` an aligned asset can give values in, or ``None``.

    For an asset on the grid's pixels, its rectangle. For a warped one, its bounds in the grid's
    CRS (densified), widened by the resampling kernel's reach and a margin: conservative, so a
    tile that skips an item there would have read only nodata from it.
    """
    if not source.warp:
        row, col = source.offset
        r0, c0 = -row, -col
        return _clip(r0, c0, r0 + source.height, c0 + source.width, grid)
    from .source import _src_bounds

    try:
        left, bottom, right, top = transform_bounds(
            CRS.from_wkt(source.crs), CRS.from_wkt(grid.crs), *_src_bounds(source), densify_pts=51
        )
    except Exception:
        return (0, 0, grid.height, grid.width)
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        return (0, 0, grid.height, grid.width)
    inverse = ~grid.transform
    corners = [inverse @ xy for xy in ((left, top), (right, top), (left, bottom), (right, bottom))]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    scale = max(source.scale) if source.scale else 1.0
    pad = math.ceil(KERNEL_RADIUS * max(scale, 1.0)) + FOOTPRINT_MARGIN
    r0, c0 = math.floor(min(rows)) - pad, math.floor(min(cols)) - pad
    return _clip(r0, c0, math.ceil(max(rows)) + pad, math.ceil(max(cols)) + pad, grid)


def _clip(r0: int, c0: int, r1: int, c1: int, grid: Grid) -> tuple[int, int, int, int] | None:
    r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, grid.height), min(c1, grid.width)
    return (r0, c0, r1, c1) if r1 > r0 and c1 > c0 else None


def _union(windows: list) -> tuple[int, int, int, int] | None:
    windows = [w for w in windows if w is not None]
    if not windows:
        return None
    return (
        min(w[0] for w in windows),
        min(w[1] for w in windows),
        max(w[2] for w in windows),
        max(w[3] for w in windows),
    )


def _is_are(values) -> str:
    return "is" if len(values) == 1 else "are"


__all__ = ["BoundItem", "Collection", "CollectionSource", "Step", "collection", "group", "parse_interval", "solar_day"]
