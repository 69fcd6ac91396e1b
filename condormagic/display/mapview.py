"""The result on a map: quicklooks read from a raster's overviews, on ipyleaflet with a split control.

A quicklook is the raster read at a few hundred pixels (GDAL takes the COG's overviews for
that), stretched to 2-98 %, warped to Web Mercator and sent as a PNG data URL in an
``ImageOverlay`` whose bounds are in EPSG:4326. Nothing is fetched from the network except
the base layer's tiles, so the map works offline (the base layer then stays blank).
"""

from __future__ import annotations

import base64

import numpy as np

from .images import png_bytes, stretch

# A perceptual ramp (dark blue -> teal -> yellow), readable on light and dark base maps.
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def _colour(grey: np.ndarray) -> np.ndarray:
    x = grey.astype(np.float64) / 255 * (len(_RAMP) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(_RAMP) - 2)
    f = (x - i)[..., None]
    rgb = _RAMP[i] * (1 - f) + _RAMP[i + 1] * f
    return rgb.astype(np.uint8).transpose(2, 0, 1)


def quicklook(path: str, max_size: int = 512) -> tuple[str, tuple[tuple[float, float], tuple[float, float]]]:
    """A PNG data URL of ``path`` warped to Web Mercator, and its ((south, west), (north, east)) bounds."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds
    from rasterio.warp import calculate_default_transform, reproject, transform_bounds

    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / max_size
        h, w = max(1, round(src.height / max(scale, 1))), max(1, round(src.width / max(scale, 1)))
        data = src.read(1, out_shape=(h, w), resampling=Resampling.average, masked=True).astype("float64")
        crs = src.crs
        transform = from_bounds(*src.bounds, w, h)
        bounds = src.bounds
    valid = ~np.ma.getmaskarray(data) & np.isfinite(data.filled(np.nan))
    grey = stretch(data.filled(0), valid)
    alpha = np.where(valid, 255, 0).astype(np.uint8)
    rgba = np.concatenate([_colour(grey), alpha[None]])
    if crs is None:
        raise ValueError(f"{path} has no CRS: it cannot be placed on a map")
    dst_crs = "EPSG:3857"
    dst_transform, dw, dh = calculate_default_transform(crs, dst_crs, w, h, *bounds)
    out = np.zeros((4, dh, dw), dtype=np.uint8)
    for band in range(4):
        reproject(
            rgba[band],
            out[band],
            src_transform=transform,
            src_crs=crs,
            dst_transform=dst_transform,
            dst_crs=dst_crs,
            resampling=Resampling.nearest,
        )
    left, top = dst_transform @ (0, 0)
    right, bottom = dst_transform @ (dw, dh)
    west, south, east, north = transform_bounds(dst_crs, "EPSG:4326", left, bottom, right, top)
    url = "data:image/png;base64," + base64.b64encode(png_bytes(out)).decode()
    return url, ((south, west), (north, east))


LEFT_PANE, RIGHT_PANE = "cmLeftPane", "cmRightPane"  # DOM classes leaflet-cmLeft-pane, leaflet-cmRight-pane


def _fit_when_shown(m, bounds) -> None:
    """Fit ``m`` to ``bounds`` once the browser has drawn it (``Map.fit_bounds`` needs its size).

    The frontend reports the map's view bounds when it first renders; until then the map has no
    size, so the centre and zoom chosen in Python are a guess for a 600 px wide map.
    """

    def fit(change) -> None:
        if change["new"]:
            m.unobserve(fit, "bounds")
            m.fit_bounds([list(bounds[0]), list(bounds[1])])

    m.observe(fit, "bounds")


def result_map(run, input_name: str | None = None, height: str = "360px"):
    """An ipyleaflet Map: the run's output over a base layer, split against one of its inputs."""
    import ipyleaflet
    import ipywidgets as widgets

    output = run.output
    if not output:
        raise ValueError("the run has no output yet")
    out_url, bounds = quicklook(output)
    sources = [s for s in run.manifest.sources if s.get("kind") != "collection"]  # one raster file each
    source = next((s for s in sources if s["name"] == input_name), sources[0] if sources else None)
    (south, west), (north, east) = bounds
    span = max(east - west, (north - south) * 1.5, 1e-6)
    zoom = int(max(1, min(18, np.floor(np.log2(600 * 360 / (256 * span))))))
    # Leaflet's split control clips a tile layer's own container, but any other layer through its
    # *pane*: two ImageOverlays in the shared overlay pane get one clip (the last one set, the
    # right side's), so the input vanished and the output showed only right of the divider. Each
    # quicklook therefore gets a pane of its own, which the control clips on its side only.
    m = ipyleaflet.Map(
        center=((south + north) / 2, (west + east) / 2),
        zoom=zoom,
        scroll_wheel_zoom=True,
        panes={LEFT_PANE: {"zIndex": 410}, RIGHT_PANE: {"zIndex": 420}},
        layout=widgets.Layout(height=height, width="100%", max_width="720px"),
    )
    out_layer = ipyleaflet.ImageOverlay(url=out_url, bounds=bounds, name=f"output: {run.name}")
    if source is not None:
        in_url, in_bounds = quicklook(source["path"])
        in_layer = ipyleaflet.ImageOverlay(url=in_url, bounds=in_bounds, name=f"input: {source['name']}")
        in_layer.pane, out_layer.pane = LEFT_PANE, RIGHT_PANE
        # the control adds both layers to the map itself (adding them too would draw them twice)
        m.add(ipyleaflet.SplitMapControl(left_layer=in_layer, right_layer=out_layer))
        (s2, w2), (n2, e2) = in_bounds
        bounds = ((min(south, s2), min(west, w2)), (max(north, n2), max(east, e2)))
    else:
        m.add(out_layer)
    _fit_when_shown(m, bounds)
    m.add(ipyleaflet.LayersControl(position="topright"))
    m.add_class("cm-map")
    return m
