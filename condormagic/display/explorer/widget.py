"""The explorer map widget: ipyleaflet, with raster layers the kernel renders for what is on screen.

On every pan or zoom (debounced) a thread of the kernel renders each visible layer for the
view (see :mod:`.view`), colours it (:mod:`.style`) and sends it as the PNG data URL of one
``ImageOverlay`` per layer; the kernel answers other cells meanwhile. Nothing is fetched from
the network unless the ``basemap`` setting names a tile server.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from html import escape

import ipyleaflet
import ipywidgets as widgets
import numpy as np

from ... import config
from ..clickable import ClickableHTML
from ..images import data_url, png_bytes
from .chart import series_svg
from .controls import Controls
from .layers import WGS84
from .legend import BOX, legend_html, number, side_label_html
from .outline import graticule, outline_geojson, tiles_geojson
from .scenes import scene_table_html
from .style import Style, class_table, colour, default_style
from .view import WEB_MERCATOR, ZOOM_SNAP, View, fit_zoom, to_latlon

# Each side of a split map has a pane of its own: Leaflet's split control clips a tile layer's
# own container, but any other layer through its *pane*; two ImageOverlays in the shared overlay
# pane would get one clip (the last one set), and one side would vanish.
LEFT_PANE, RIGHT_PANE = "cmLeftPane", "cmRightPane"  # DOM classes leaflet-cmLeft-pane, leaflet-cmRight-pane
LINES_PANE = "cmLinesPane"  # the grid's outline and tiles, and the inspected point: over the images
CELL = "padding:0 10px 0 0;text-align:left"
BLANK = data_url(png_bytes(np.zeros((4, 1, 1), np.uint8)))
NO_FEATURES = {"type": "FeatureCollection", "features": []}
CSS = """<style>
.cm-explorer .leaflet-container { background: var(--jp-layout-color2, #e4e4e4); }
.cm-explorer img.leaflet-image-layer { image-rendering: pixelated; }
.cm-explorer .cm-control-time .widget-readout { max-width: none; min-width: 78px; }
.cm-explorer .leaflet-div-icon { font: 10px sans-serif; color: var(--jp-ui-font-color2, #555);
  white-space: nowrap; background: none !important; border: none !important; }
</style>"""


class Explorer(Controls, widgets.VBox):
    """A map of layers rendered for the current view, with per-layer display controls.

    Parameters
    ----------
    layers : list
        Layers (see :mod:`condormagic.display.explorer.layers`), bottom first.
    grid : Grid, optional
        Its outline (and ``tile`` grid) are drawn; without a basemap, with a graticule.
    tile : int, optional
        The tile size of the grid, for the tile grid.
    split : (str, str), optional
        Names of the layers on the left and on the right of a split map.
    styles : dict, optional
        ``{layer name: Style}`` to start with (default: RGB where the bands say so, else one band).
    """

    def __init__(
        self,
        layers,
        grid=None,
        tile: int | None = None,
        split: tuple[str, str] | None = None,
        styles: dict | None = None,
        height: str = "460px",
        debounce: float = 0.12,
        title: str = "",
    ):
        if not layers:
            raise ValueError("there is nothing to show: give the explorer at least one layer")
        self.layers = {layer.name: layer for layer in layers}
        self.styles = {layer.name: default_style(list(layer.bands)) for layer in layers}
        self.styles.update(styles or {})
        self.grid, self.tile, self.height, self.debounce = grid, tile, height, debounce
        self.split = split is not None and len(layers) > 1
        names = list(self.layers)
        self.left, self.right = split if self.split else (names[0], names[-1])
        self.view: View | None = None
        self.legends: dict[str, object] = {}
        self.n_renders = 0
        self.render_ms: list[float] = []
        self.errors: dict[str, str] = {}
        self._cache: dict[str, tuple[tuple, np.ndarray]] = {}
        self._cond = threading.Condition()
        self._pending = False
        self._due = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._fitted = False
        self._editing = False
        self._syncing = False

        self.status = widgets.HTML(layout=widgets.Layout(margin="2px 0"))
        self.inspector = widgets.HTML(layout=widgets.Layout(margin="2px 0"))
        self.map_box = widgets.Box(layout=widgets.Layout(flex="1 1 auto", min_width="300px"))
        self.panel = self._make_panel()
        # A collection's scenes, in a table under the map: a click on a row shows that scene.
        self.scene_layers = [name for name, layer in self.layers.items() if getattr(layer, "scenes", None)]
        self.scene_sort: tuple[str, bool] = ("date", False)
        self.scene_table = ClickableHTML()
        self.scene_table.on_pick(self._on_scene_pick)
        self.scene_table.layout.display = "" if self.scene_layers else "none"
        self.pick.observe(lambda _: self._show_scenes(), "value")
        self.series: dict[str, list] = {}
        header = [widgets.HTML(f'<b style="font-size:13px">{escape(title)}</b>')] if title else []
        body = widgets.HBox([self.map_box, self.panel], layout=widgets.Layout(width="100%", align_items="flex-start"))
        super().__init__([widgets.HTML(CSS), *header, body, self.status, self.scene_table, self.inspector])
        self.add_class("cm-explorer")
        self._rendered_view: View | None = None
        self._build_map()
        self._show_status()
        self._show_scenes()

    # -- the map ---------------------------------------------------------------------------------
    def _footprint(self) -> tuple[float, float, float, float]:
        boxes = [layer.footprint() for layer in self.layers.values()]
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def _build_map(self) -> None:
        """(Re)make the map: its overlays differ between a split map and a stack of layers."""
        old = getattr(self, "map", None)
        basemap = config.get("basemap")
        left, bottom, right, top = self._footprint()
        if old is not None:
            center, zoom = list(old.center), old.zoom
        else:
            center, zoom = (
                list(to_latlon((left + right) / 2, (bottom + top) / 2)),
                fit_zoom((left, bottom, right, top), 700, 460),
            )
        base = ()
        if basemap:
            base = (ipyleaflet.TileLayer(url=basemap, base=True, name="basemap", max_zoom=22),)
        m = ipyleaflet.Map(
            layers=base,
            center=center,
            zoom=zoom,
            scroll_wheel_zoom=True,
            zoom_snap=ZOOM_SNAP,
            zoom_delta=0.5,
            attribution_control=bool(basemap),
            max_zoom=24,
            panes={
                LEFT_PANE: {"zIndex": 410},
                RIGHT_PANE: {"zIndex": 420},
                LINES_PANE: {"zIndex": 430, "pointerEvents": "none"},
            },
            layout=widgets.Layout(height=self.height, width="100%"),
        )
        m.add_class("cm-map")
        self._add_context(m, with_graticule=not basemap)
        self.overlays: dict[str, ipyleaflet.ImageOverlay] = {}
        bounds = [[to_latlon(left, bottom)[0], to_latlon(left, bottom)[1]], list(to_latlon(right, top))]
        self.legend_widgets: dict[str, widgets.HTML] = {}
        if self.split:
            for side, pane in (("left", LEFT_PANE), ("right", RIGHT_PANE)):
                overlay = ipyleaflet.ImageOverlay(url=BLANK, bounds=bounds, name=side)
                overlay.pane = pane
                self.overlays[side] = overlay
            # the control adds both layers to the map itself (adding them too would draw them twice)
            m.add(ipyleaflet.SplitMapControl(left_layer=self.overlays["left"], right_layer=self.overlays["right"]))
            self.side_labels = {}
            for side, position in (("left", "topleft"), ("right", "topright")):
                label = widgets.HTML(side_label_html(getattr(self, side), side))
                self.side_labels[side] = label
                m.add(ipyleaflet.WidgetControl(widget=label, position=position, transparent_bg=True))
            for side, position in (("left", "bottomleft"), ("right", "bottomright")):
                self.legend_widgets[side] = widgets.HTML()
                m.add(
                    ipyleaflet.WidgetControl(widget=self.legend_widgets[side], position=position, transparent_bg=True)
                )
        else:
            for name in self.layers:
                style = self.styles[name]
                overlay = ipyleaflet.ImageOverlay(
                    url=BLANK, bounds=bounds, name=name, opacity=style.opacity, visible=style.visible
                )
                self.overlays[name] = overlay
                m.add(overlay)
            self.legend_widgets["stack"] = widgets.HTML()
            m.add(
                ipyleaflet.WidgetControl(
                    widget=self.legend_widgets["stack"], position="bottomright", transparent_bg=True
                )
            )
        m.add(ipyleaflet.ScaleControl(position="bottomleft", imperial=False))
        m.observe(self._on_move, names=["pixel_bounds", "bounds"])
        m.on_interaction(self._on_interaction)
        # Every layer is on the map from the start: the split control's overlays are not in the
        # map's list of layers, so any layer added later makes the frontend drop them.
        self.marker = ipyleaflet.CircleMarker(
            location=center, radius=5, color="#d81b60", opacity=0, fill_opacity=0, name="inspected point"
        )
        self.marker.pane = LINES_PANE
        m.add(self.marker)
        outline = getattr(self, "scene_outline", None)
        self.scene_outline = ipyleaflet.GeoJSON(
            data=outline.data if outline is not None else NO_FEATURES,
            name="scene outline",
            style={"color": "#d81b60", "weight": 2, "dashArray": "6 3", "fill": False},
        )
        self.scene_outline.pane = LINES_PANE
        m.add(self.scene_outline)
        self.map = m
        self._cache.clear()
        self.map_box.children = (m,)
        if old is not None:
            old.close()
        self._apply_opacity()

    def _add_context(self, m, with_graticule: bool) -> None:
        """The grid's outline and tile grid; without a basemap also a graticule, with labels."""
        if self.grid is None:
            return
        features = [outline_geojson(self.grid)]
        if self.tile:
            tiles = tiles_geojson(self.grid, self.tile)
            if tiles is not None:
                features.append(tiles)
        if with_graticule:
            from rasterio.warp import transform_bounds

            lonlat = transform_bounds(self.grid.rasterio_crs(), WGS84, *self.grid.bounds, densify_pts=21)
            lines, labels = graticule(lonlat)
            m.add(
                ipyleaflet.GeoJSON(
                    data=lines, name="graticule", style={"color": "#888", "weight": 0.6, "opacity": 0.7, "fill": False}
                )
            )
            for lat, lon, text in labels:
                # parallels labelled left of the grid, meridians under it
                anchor = [64, 7] if text[-1] in "NS" else [30, -4]
                icon = ipyleaflet.DivIcon(html=text, icon_size=[60, 14], icon_anchor=anchor)
                m.add(ipyleaflet.Marker(location=(lat, lon), icon=icon, draggable=False, name="graticule label"))
        for feature in features:
            kind = feature["properties"]["kind"]
            style = {"color": "#e65100", "weight": 2, "fill": False}
            if kind == "tiles":
                style = {"color": "#5c6bc0", "weight": 1, "opacity": 0.7, "dashArray": "4 4", "fill": False}
            layer = ipyleaflet.GeoJSON(
                data=feature, name="grid outline" if kind == "outline" else "tile grid", style=style
            )
            layer.pane = LINES_PANE
            m.add(layer)

    # -- view changes and rendering ----------------------------------------------------------------
    def _on_move(self, _change=None) -> None:
        m = self.map
        try:
            (px0, py0), (px1, py1) = m.pixel_bounds
            (south, west), (north, east) = m.bounds
        except (TypeError, ValueError):
            return
        width, height = px1 - px0, py1 - py0
        if not (0 < width < 1e6 and 0 < height < 1e6) or not north > south:
            return
        if not self._fitted:
            self._fitted = True
            if self._fit(width, height):
                return  # the new centre and zoom come back as another move
        from .view import from_latlon

        x0, y0 = from_latlon(south, west)
        x1, y1 = from_latlon(north, east)
        scale = min(1.0, 2048 / max(width, height))
        self.view = View((x0, y0, x1, y1), max(1, round(width * scale)), max(1, round(height * scale)))
        self.request()

    def _fit(self, width: float, height: float) -> bool:
        """Fit the map to the layers' footprint, once its size is known; whether it moved."""
        left, bottom, right, top = self._footprint()
        zoom = fit_zoom((left, bottom, right, top), int(width), int(height))
        center = list(to_latlon((left + right) / 2, (bottom + top) / 2))
        same = all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(center, self.map.center, strict=True))
        if zoom == self.map.zoom and same:
            return False
        with self.map.hold_sync():
            self.map.center = center
            self.map.zoom = zoom
        return True

    def fit(self) -> None:
        """Show the whole of every layer."""
        try:
            (px0, py0), (px1, py1) = self.map.pixel_bounds
        except (TypeError, ValueError):
            return
        self._fit(px1 - px0, py1 - py0)

    def request(self) -> None:
        """Ask for a render of the current view (several requests in a short while make one)."""
        with self._cond:
            self._pending = True
            self._due = time.monotonic() + self.debounce
            self._cond.notify_all()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="condormagic-explorer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    if not self._cond.wait(timeout=60):
                        return  # idle for a minute: a new request starts another thread
                if self._closed:
                    return
                while (delay := self._due - time.monotonic()) > 0:
                    self._cond.wait(timeout=delay)
                self._pending = False
            try:
                self.render()
            except Exception:  # the map must never kill the kernel: say what went wrong
                self.status.value = f'<pre class="cm-explorer-error">{escape(traceback.format_exc(limit=3))}</pre>'

    def targets(self) -> list[tuple[str, str]]:
        """``(overlay key, layer name)`` of what the current view shows."""
        if self.split:
            return [("left", self.left), ("right", self.right)]
        return [(name, name) for name, style in self.styles.items() if style.visible]

    def render(self) -> None:
        """Render every shown layer for the current view now (the thread calls this)."""
        view = self.view
        if view is None:
            return
        started = time.perf_counter()
        legends = {}
        for key, name in self.targets():
            layer, style = self.layers[name], self.styles[name]
            try:
                data = self._data(key, layer, style, view)
                rgba, legend = colour(
                    data,
                    style.copy(opacity=1.0),
                    layer.integer,
                    _classes(layer, style),
                    layer.units,
                    self._title(layer, style),
                )
                self.errors.pop(name, None)
            except Exception as exc:
                self.errors[name] = f"{type(exc).__name__}: {exc}"
                rgba, legend = np.zeros((4, 1, 1), np.uint8), None
            legends[key] = legend
            url = data_url(png_bytes(rgba, level=1))
            overlay = self.overlays.get(key)
            if overlay is not None:
                with overlay.hold_sync():
                    overlay.url = url
                    overlay.bounds = view.latlon_bounds()
        self.legends = legends
        self._rendered_view = view
        self._show_legends()
        self.n_renders += 1
        self.render_ms.append((time.perf_counter() - started) * 1000)
        self._show_status()

    def _data(self, key: str, layer, style: Style, view: View) -> np.ndarray:
        """The layer's values for the view (cached, so a new stretch or colour map reads nothing)."""
        bands = style.bands_needed()
        time_index = style.time if layer.times else None
        ident = (view, tuple(bands), time_index, style.item, id(layer))
        cached = self._cache.get(key)
        if cached is not None and cached[0] == ident:
            return cached[1]
        scene = {"item": style.item} if style.item is not None else {}
        data = layer.render(view.bounds, view.width, view.height, time=time_index, bands=bands, **scene)
        self._cache[key] = (ident, data)
        return data

    @staticmethod
    def _title(layer, style: Style) -> str:
        what = "" if style.mode == "rgb" or len(layer.bands) == 1 else f" · {style.band}"
        when = ""
        if layer.times:
            when = f" · {layer.times[style.time]}"
        if style.item is not None:
            when += f" · {style.item}"
        return f"{layer.name}{what}{when}"

    def _show_legends(self) -> None:
        if self.split:
            for side in ("left", "right"):
                self.legend_widgets[side].value = legend_html(self.legends.get(side), side)
                self.side_labels[side].value = side_label_html(getattr(self, side), side)
        else:
            shown = [legend_html(self.legends.get(key)) for key, _ in self.targets()]
            self.legend_widgets["stack"].value = "".join(reversed([s for s in shown if s]))

    def _show_status(self) -> None:
        view = self.view
        where = ""
        if view is not None:
            lat = to_latlon((view.bounds[0] + view.bounds[2]) / 2, (view.bounds[1] + view.bounds[3]) / 2)[0]
            where = f" · 1 screen px ≈ {number(view.resolution * math.cos(math.radians(lat)))} m on the ground"
        timing = f" · last render {self.render_ms[-1]:.0f} ms" if self.render_ms else ""
        notes = [
            f'<span style="color:#c62828">{escape(name)}: {escape(err)}</span>' for name, err in self.errors.items()
        ]
        for _, name in self.targets():
            layer = self.layers[name]
            if getattr(layer, "note", ""):
                notes.append(f"{escape(name)}: {escape(layer.note)}")
            printed = getattr(layer, "output", "").strip()
            if printed:  # what the function printed for this view
                lines = printed.splitlines()
                more = f" (and {len(lines) - 3} more lines)" if len(lines) > 3 else ""
                notes.append(f"{escape(name)} printed: <code>{escape(' / '.join(lines[:3])[:300])}</code>{more}")
        shown = self._rendered_view
        placed = (
            "" if shown is None else ",".join(repr(float(v)) for v in shown.bounds) + f",{shown.width},{shown.height}"
        )
        self.status.value = (
            f'<div class="cm-explorer-status" data-renders="{self.n_renders}" data-view="{placed}" '
            f'style="font-size:12px;color:var(--jp-ui-font-color2,#555)">'
            f"{len(self.layers)} layer{'s' if len(self.layers) > 1 else ''}{where}{timing}"
            + "".join(f"<br>{n}" for n in notes)
            + "</div>"
        )

    # -- the pixel inspector -----------------------------------------------------------------------
    def _on_interaction(self, **event) -> None:
        if event.get("type") != "click":
            return
        lat, lon = event["coordinates"]
        self.inspect(lat, lon)

    def inspect(self, lat: float, lon: float) -> dict[str, dict]:
        """Every layer's values at a point, read at full resolution; shown under the map and returned.

        A collection's values are those of the date (or the scene) on the map; its time series
        there (every date, each mosaicked as on the map) is charted beside them and kept in
        ``self.series``.
        """
        values, series = {}, {}
        for name, layer in self.layers.items():
            style = self.styles[name]
            try:
                if hasattr(layer, "series_at"):
                    series[name] = layer.series_at(lat, lon)
                    if style.item is not None:
                        values[name] = layer.values_at(lat, lon, item=style.item)
                    else:
                        values[name] = series[name][style.time]
                else:
                    values[name] = layer.values_at(lat, lon, time=style.time if layer.times else None)
            except Exception as exc:
                values[name] = f"{type(exc).__name__}: {exc}"
        self.series = series
        rows = []
        for name, vals in values.items():
            if isinstance(vals, str):
                cells = f'<td colspan="2" style="{CELL}">{escape(vals)}</td>'
                rows.append(
                    f'<tr data-layer="{escape(name)}"><td style="{CELL}"><b>{escape(name)}</b></td>{cells}</tr>'
                )
                continue
            layer, style = self.layers[name], self.styles[name]
            for band, value in vals.items():
                labels = class_table(_classes(layer, style.copy(mode="band", band=band)))[0]
                shown = "outside / no data" if value is None else _value(value)
                if value is not None and float(value).is_integer() and int(value) in labels:
                    shown += f" ({labels[int(value)]})"
                raw = "" if value is None else repr(value)
                rows.append(
                    f'<tr data-layer="{escape(name)}" data-band="{escape(band)}" data-value="{escape(raw)}">'
                    f'<td style="{CELL}"><b>{escape(name)}</b></td><td style="{CELL}">{escape(band)}</td>'
                    f'<td style="{CELL}">{escape(shown)}</td></tr>'
                )
        charts = "".join(self._series_chart(name, steps) for name, steps in series.items())
        ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        self.inspector.value = (
            f'<div class="cm-inspector" data-lat="{lat!r}" data-lon="{lon!r}" style="{BOX};max-width:none;padding:0">'
            f"<div>at {abs(lat):.5f}°{ns} {abs(lon):.5f}°{ew} (read from the files, full resolution)</div>"
            '<div style="display:flex;flex-wrap:wrap;gap:6px 18px;align-items:flex-start">'
            f'<table style="border-collapse:collapse">{"".join(rows)}</table>{charts}</div></div>'
        )
        with self.marker.hold_sync():
            self.marker.location = (lat, lon)
            self.marker.opacity, self.marker.fill_opacity = 1.0, 0.2
        return values

    def _series_chart(self, name: str, steps: list[dict]) -> str:
        """The chart of a collection's time series at the inspected point: the bands shown on the map."""
        layer, style = self.layers[name], self.styles[name]
        bands = list(style.rgb) if style.mode == "rgb" else [style.band]
        bands = list(dict.fromkeys(b for b in bands if b in layer.bands)) or [layer.bands[0]]
        data = {band: [step.get(band) for step in steps] for band in bands}
        classes = _classes(layer, style) if style.mode == "band" else None
        if classes is None and style.mode == "band" and style.colormap == "categorical":
            classes = {}
        current = None if style.item is not None else style.time
        title = f"{name} · {', '.join(bands)} at this point, date by date"
        svg = series_svg(title, layer.times, layer.datetimes, data, current, classes, rgb=style.mode == "rgb")
        return f'<div class="cm-series" data-layer="{escape(name)}">{svg}</div>'

    # -- a collection's scenes ---------------------------------------------------------------------
    def _table_layer(self) -> str | None:
        """The collection whose scenes the table lists: the one picked in the panel, else the first."""
        if not self.scene_layers:
            return None
        return self.pick.value if self.pick.value in self.scene_layers else self.scene_layers[0]

    def _show_scenes(self) -> None:
        name = self._table_layer()
        if name is None:
            return
        style = self.styles[name]
        column, descending = self.scene_sort
        self.scene_table.value = scene_table_html(self.layers[name], style.time, style.item, column, descending)

    def _on_scene_pick(self, value: str) -> None:
        name = self._table_layer()
        if name is None:
            return
        layer, style = self.layers[name], self.styles[name]
        kind, _, arg = value.partition(":")
        if kind == "sort" and arg:
            column, descending = self.scene_sort
            self.scene_sort = (arg, not descending if arg == column else False)
            self._show_scenes()
        elif kind == "item" and arg.isdigit() and int(arg) < len(layer.scenes):
            item = layer.scenes[int(arg)]["id"]
            self.show_scene(None if item == style.item else item, name)
        elif kind == "date":
            self.show_scene(None, name)

    def show_scene(self, item: str | None, layer: str | None = None) -> None:
        """Show a collection's scene ``item`` (its id) alone on the map, at its date; ``None``: the date's
        scenes mosaicked again. The layer is shown (on the left of a split map), and the map moves to
        the scene when none of it is on screen."""
        name = layer or self._table_layer()
        if name is None:
            raise ValueError("there is no collection on this map: it has no scenes to show")
        target, style = self.layers[name], self.styles[name]
        if item is None:
            self.scene_outline.data = NO_FEATURES
            self.set_style(name, style.copy(item=None))
            return
        index = target.index(item)
        if self.split and name not in (self.left, self.right):
            self.set_split(name, self.right)
        self.scene_outline.data = target.outline(item)
        self.set_style(name, style.copy(item=item, time=target.step_of[index], visible=True))
        box = target.item_footprint(item)
        view = self.view
        if view is not None and not (
            box[0] < view.bounds[2] and box[2] > view.bounds[0] and box[1] < view.bounds[3] and box[3] > view.bounds[1]
        ):
            self._fit_to(box)

    def _fit_to(self, box) -> None:
        try:
            (px0, py0), (px1, py1) = self.map.pixel_bounds
        except (TypeError, ValueError):
            return
        left, bottom, right, top = box
        with self.map.hold_sync():
            self.map.center = list(to_latlon((left + right) / 2, (bottom + top) / 2))
            self.map.zoom = fit_zoom(box, int(px1 - px0), int(py1 - py0))

    def set_style(self, name: str, style: Style) -> None:
        """Change how a layer is shown (the controls call this; so can a notebook)."""
        old = self.styles[name]
        self.styles[name] = style
        self._show_modes(style)
        if name == self.pick.value and not self._editing:
            self._editing = True
            try:
                self.visible.value, self.opacity.value = style.visible, style.opacity
                self.stretch.value, self.colormap.value, self.mode.value = style.stretch, style.colormap, style.mode
                if self.layers[name].times:
                    self.time.index = style.time
            finally:
                self._editing = False
        self._apply_opacity()
        if name == self._table_layer() and (old.time, old.item) != (style.time, style.item):
            self._show_scenes()
            if style.item is None:
                self.scene_outline.data = NO_FEATURES
        if old.copy(opacity=style.opacity) != style:
            self.request()

    def _apply_opacity(self) -> None:
        if self.split:
            for side in ("left", "right"):
                style = self.styles[getattr(self, side)]
                self.overlays[side].opacity = style.opacity
            return
        for name, overlay in self.overlays.items():
            style = self.styles[name]
            overlay.opacity, overlay.visible = style.opacity, style.visible

    def set_split(self, left: str | None, right: str | None = None) -> None:
        """Show ``left`` and ``right`` either side of a split; ``set_split(None)`` stacks the layers again."""
        was = self.split
        self.split = left is not None
        if self.split:
            self.left, self.right = left, right or left
        if not self._syncing:  # the panel shows the split a notebook asked for (without asking again)
            self._syncing = True
            try:
                self.split_box.value = self.split
                if self.split:
                    self.left_pick.value, self.right_pick.value = self.left, self.right
            finally:
                self._syncing = False
        if was != self.split:
            self._build_map()
        else:
            self._cache.clear()
        self._on_move()
        self.request()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        super().close()


def _classes(layer, style: Style):
    """The classes of what ``style`` shows of ``layer``: a band's own (a collection's classified band), else
    the layer's; none for RGB."""
    if style.mode == "rgb":
        return None
    per_band = getattr(layer, "classes_for", None)
    return per_band(style.band) if per_band is not None else layer.classes


def _value(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    return str(value)


__all__ = ["Explorer", "WEB_MERCATOR"]
