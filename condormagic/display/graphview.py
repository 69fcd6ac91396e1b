"""The job graph as a widget: cluster, jobs and each job's inputs, drawn over the tile map.

``%%condor`` (and ``--dry-run``) shows it in a kernel; frontends without widgets keep the
HTML of :func:`condormagic.display.graphhtml.graph_html`. Everything that grows with the graph is
drawn once (the tile map: one SVG rect per tile, or one PNG pixel per tile above
:data:`~condormagic.display.tilemap.SVG_MAX_TILES`) or paged (the job picker); picking a job
redraws only a small overlay and that job's inputs, so 10,000 jobs cost milliseconds.
"""

from __future__ import annotations

import os
from html import escape
from itertools import chain

import ipywidgets as widgets
import numpy as np
from rasterio.windows import Window

from ..tiling.jobs import JobGraph
from ..tiling.source import Sources
from .cards import FONT, MUTED
from .clickable import ClickableHTML
from .coords import format_bounds, format_grid_bounds
from .graphhtml import graph_html, graph_text
from .tilemap import MAP_WIDTH, SVG_MAX_TILES, Lattice, tile_rects, tilemap_svg, tiles_png

PAGE_SIZE = 50  # jobs listed in the picker at a time
TILES_LISTED = 20  # tiles of one job listed with their windows
SCENES_LISTED = 24  # items of a collection listed under a job
TILES_DRAWN = 2000  # tiles of one job highlighted on the map
# Jobs take turns through a qualitative palette, so neighbouring jobs read apart in light and dark themes.
PALETTE = ("#4e79a7", "#f28e2b", "#76b7b2", "#b07aa1", "#59a14f", "#edc948", "#9c755f", "#ff9da7")
INK = "var(--jp-ui-font-color0,#111)"


def _rgba(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)] + [255]


class GraphView(widgets.VBox):
    """``GraphView(graph, sources, name)``: the job graph of a ``%%condor`` cell, before it runs.

    ``view.select(job)`` picks a job: its tiles are highlighted on the map (``rect.cm-highlight``,
    with its halo read windows dashed) and its inputs listed (``view.inputs``). The picker pages
    through the jobs ``page_size`` at a time; ``view.goto`` jumps to any job.
    """

    def __init__(
        self,
        graph: JobGraph,
        src: Sources,
        name: str,
        header: str = "",
        page_size: int = PAGE_SIZE,
        width: int = MAP_WIDTH,
    ):
        self.graph, self.src, self.name = graph, src, name
        self.page_size = page_size
        self.n_jobs = graph.n_jobs
        n = len(graph.tiles)
        self.tiles = graph.tiles.array()
        self.tile_job = np.full(n, -1, dtype=np.int64)
        sizes = np.fromiter(map(len, graph.jobs), dtype=np.int64, count=self.n_jobs)
        flat = np.fromiter(chain.from_iterable(graph.jobs), dtype=np.int64, count=int(sizes.sum()))
        self.tile_job[flat] = np.repeat(np.arange(self.n_jobs), sizes)
        self._sizes = sizes
        g = src.grid
        self.lattice = Lattice.of(g.width, g.height, graph.tiles, width)
        self.width, self.height = self.lattice.width, self.lattice.height
        self._base = self._draw_base()
        self.job: int | None = None
        self.page = 0

        self.header = widgets.HTML(self._header_html(header))
        self.map = ClickableHTML()
        self.map.on_pick(self._on_tile)
        self.picker = widgets.Select(options=[], rows=12, layout=widgets.Layout(width="300px"))
        self.prev_button = widgets.Button(description="◀", layout=widgets.Layout(width="36px"), tooltip="previous jobs")
        self.next_button = widgets.Button(description="▶", layout=widgets.Layout(width="36px"), tooltip="next jobs")
        self.goto = widgets.BoundedIntText(
            value=0,
            min=0,
            max=max(0, self.n_jobs - 1),
            description="job",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="110px"),
        )
        self.page_label = widgets.HTML()
        self.inputs = widgets.HTML()

        self.prev_button.on_click(lambda _: self.turn(-1))
        self.next_button.on_click(lambda _: self.turn(+1))
        self.picker.observe(self._on_pick, "value")
        self.goto.observe(lambda change: self.select(change["new"]), "value")

        pager = widgets.HBox([self.prev_button, self.next_button, self.goto, self.page_label])
        heading = widgets.HTML(
            f'<div style="{FONT};font-weight:bold">Pick a job <span style="{MUTED};font-weight:normal">'
            "(or click a tile) to highlight its tiles and list its inputs</span></div>"
        )
        side = widgets.VBox([heading, pager, self.picker, self.inputs])
        body = widgets.HBox(
            [widgets.VBox([self.map], layout=widgets.Layout(margin="0 16px 0 0")), side],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        super().__init__([self.header, body], layout=widgets.Layout(padding="4px"))
        self.add_class("cm-graphview")
        if self.n_jobs:
            self.select(0)
        else:
            self.map.value = tilemap_svg(self._base, self.width, self.height, len(self.tiles))
            self.inputs.value = f'<div style="{FONT}">No jobs: every tile was skipped.</div>'

    # -- drawing ---------------------------------------------------------------------------------
    def _header_html(self, header: str) -> str:
        graph, src, g = self.graph, self.src, self.src.grid
        n_tiles = int((self.tile_job >= 0).sum())
        per_job = (int(self._sizes.min()), int(self._sizes.max())) if self.n_jobs else (0, 0)
        crs = ""
        if g.crs:
            try:
                crs = f" &middot; {escape(g.rasterio_crs().to_string())}"
            except Exception:
                crs = ""
        return (
            f'<div class="cm-graph-header" style="{FONT};line-height:1.6">'
            f'<b style="font-size:14px">Cluster {escape(self.name)}</b> {header}&middot; '
            f'<b class="cm-njobs">{self.n_jobs}</b> jobs, {n_tiles} tiles of {src.tile} px'
            + (f" ({per_job[0]}&ndash;{per_job[1]} per job)" if per_job[0] != per_job[1] else "")
            + (f", halo {src.halo}" if src.halo else "")
            + (
                f" &middot; {len(graph.skipped)} skipped by mask <code>{escape(src.mask)}</code>"
                if graph.skipped
                else ""
            )
            + f'<br><span style="{MUTED}">grid</span> {g.width} &times; {g.height} px{crs} &middot; '
            f'<span class="cm-grid-bounds">{format_grid_bounds(g)}</span> &middot; '
            + ", ".join(
                f"img[{i}] <b>{escape(n)}</b> &larr; {escape(os.path.basename(s.path))}"
                + (f" ({len(s.items)} items, {len(s.steps)} time steps)" if s.kind == "collection" else "")
                for i, (n, s) in enumerate(src.items())
            )
            + "</div>"
        )

    def _draw_base(self) -> str:
        """Every tile coloured by its job: SVG rects, or for many tiles one PNG pixel per tile."""
        n = len(self.tiles)
        if n == 0:
            return ""
        jobs = self.tile_job.tolist()
        if n <= SVG_MAX_TILES:
            return tile_rects(
                self.tiles,
                self.lattice,
                [PALETTE[j % len(PALETTE)] if j >= 0 else "none" for j in jobs],
                [f'data-tile="{i}" data-job="{j}"' + (f' data-pick="{j}"' * (j >= 0)) for i, j in enumerate(jobs)],
                [f"tile {i} &#183; Job#{j}" if j >= 0 else f"tile {i} &#183; skipped" for i, j in enumerate(jobs)],
            )
        palette = np.array([_rgba(c) for c in PALETTE] + [[0, 0, 0, 0]], dtype=np.uint8)
        codes = np.where(self.tile_job >= 0, self.tile_job % len(PALETTE), len(PALETTE))
        size = (self.graph.tiles.tile_rows, self.graph.tiles.tile_cols)
        data, (rows, cols) = tiles_png(self.tiles, size, palette[codes])
        # The lattice's full extent: each PNG pixel falls exactly on its tile (edge tiles are cut by the SVG).
        w, h = cols * self.lattice.cell, rows * self.lattice.cell
        return (
            f'<image class="cm-tiles-png" href="data:image/png;base64,{data}" x="0" y="0" width="{w:.2f}" '
            f'height="{h:.2f}" preserveAspectRatio="none" style="image-rendering:pixelated"><title>{n} tiles, '
            f"{self.n_jobs} jobs: pick a job to see its tiles</title></image>"
        )

    def _overlay(self, job: int) -> str:
        """The picked job over the map: the rest dimmed, its tiles outlined, its read windows dashed."""
        tiles = self.graph.jobs[job][:TILES_DRAWN]
        colour = PALETTE[job % len(PALETTE)]
        parts = [
            f'<g class="cm-selection" data-job="{job}">',
            '<rect width="100%" height="100%" fill="var(--jp-layout-color0,#fff)" opacity="0.6" '
            'pointer-events="none"/>',
        ]
        halo = self.src.halo
        boxes = self.lattice.boxes(self.tiles[tiles]).tolist()
        read = self.lattice.boxes(self.tiles[tiles] + [-halo, -halo, 2 * halo, 2 * halo]).tolist() if halo else []
        for k, t in enumerate(tiles):
            x, y, w, h = boxes[k]
            parts.append(
                f'<rect class="cm-highlight" data-tile="{t}" data-job="{job}" data-pick="{job}" '
                f'x="{x:.2f}" y="{y:.2f}" '
                f'width="{w:.2f}" height="{h:.2f}" fill="{colour}" stroke="{INK}" stroke-width="1.5">'
                f"<title>Job#{job} &#183; tile {t}</title></rect>"
            )
            if halo:
                x, y, w, h = read[k]
                parts.append(
                    f'<rect class="cm-read" data-tile="{t}" x="{x:.2f}" y="{y:.2f}" '
                    f'width="{w:.2f}" height="{h:.2f}" fill="none" '
                    f'stroke="{INK}" stroke-width="1" stroke-dasharray="3 2" pointer-events="none"/>'
                )
        parts.append("</g>")
        return "".join(parts)

    def _inputs_html(self, job: int) -> str:
        """What the picked job reads: each source (img[i], file), each tile's window and coordinates."""
        src, grid = self.src, self.src.grid
        tiles = self.graph.jobs[job]
        sources = "".join(
            _collection_inputs(i, name, s, self.graph.job_scenes(src, name, job))
            if s.kind == "collection"
            else (
                f'<div class="cm-input" data-img="{i}" style="margin-left:1.2em">img[{i}] <b>{escape(name)}</b> '
                f'&larr; <span title="{escape(s.path)}">{escape(os.path.basename(s.path))}</span>'
                f'<span style="{MUTED}"> &middot; {s.count} band{"s" if s.count > 1 else ""} {escape(s.dtype)}'
                + (f" &middot; warped ({escape(s.resampling)})" if s.warp else "")
                + "</span></div>"
            )
            for i, (name, s) in enumerate(src.items())
        )
        rows = []
        for k, t in enumerate(tiles[:TILES_LISTED]):
            row, col, h, w = self.tiles[t].tolist()
            where = f"rows {row}:{row + h}, cols {col}:{col + w}"
            read = ""
            if src.halo:
                hr, hc, hh, hw = row - src.halo, col - src.halo, h + 2 * src.halo, w + 2 * src.halo
                read = (
                    f'<div class="cm-read-window" style="margin-left:1.2em">read with halo {src.halo}: '
                    f"rows {hr}:{hr + hh}, cols {hc}:{hc + hw} &middot; "
                    f'<span style="white-space:nowrap">{format_bounds(grid, Window(hc, hr, hw, hh))}</span></div>'
                )
            place = format_bounds(grid, Window(col, row, w, h))
            rows.append(
                f'<details class="cm-tile-inputs" data-tile="{t}"{" open" if k < 3 else ""}>'
                f"<summary>tile {t} &middot; {where}</summary>"
                f'<div style="margin-left:1.2em">window {where} ({h} &times; {w} px)</div>'
                f'<div style="margin-left:1.2em">map {place}</div>{read}</details>'
            )
        if len(tiles) > TILES_LISTED:
            rows.append(f'<div style="{MUTED}">&hellip; {len(tiles) - TILES_LISTED} more tiles</div>')
        label = f"tile {tiles[0]}" if len(tiles) == 1 else f"{len(tiles)} tiles, {tiles[0]}&ndash;{tiles[-1]}"
        return (
            f'<div class="cm-inputs" data-job="{job}" style="{FONT};line-height:1.45;max-width:520px">'
            f'<span class="cm-swatch" style="display:inline-block;width:11px;height:11px;vertical-align:-1px;'
            f'margin-right:4px;background:{PALETTE[job % len(PALETTE)]};outline:1px solid {INK}"></span>'
            f'<b>Job#{job}</b> &middot; {label} &middot; <span style="{MUTED}">ProcId {job}</span>'
            f'<details class="cm-sources" open><summary>inputs ({len(src)})</summary>{sources}</details>'
            f'<details class="cm-windows" open><summary>windows and coordinates</summary>{"".join(rows)}</details>'
            "</div>"
        )

    def _draw_page(self) -> None:
        pages = max(1, -(-self.n_jobs // self.page_size))
        self.page = min(max(0, self.page), pages - 1)
        first = self.page * self.page_size
        shown = range(first, min(self.n_jobs, first + self.page_size))
        options = []
        for j in shown:
            tiles = self.graph.jobs[j]
            label = f"tile {tiles[0]}" if len(tiles) == 1 else f"tiles {tiles[0]}–{tiles[-1]}"
            options.append((f"Job#{j} · {label}", j))
        self._updating = True
        try:
            self.picker.options = options
            self.picker.rows = min(12, max(2, len(options)))  # no blank box under a few jobs
            self.picker.value = self.job if self.job in shown else None
        finally:
            self._updating = False
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        self.page_label.value = (
            f'<span class="cm-page" style="{FONT}">jobs {first}&ndash;{max(first, shown.stop - 1)} '
            f"of {self.n_jobs} &middot; page {self.page + 1}/{pages}</span>"
        )

    # -- picking -----------------------------------------------------------------------------------
    def select(self, job: int | None) -> None:
        """Pick ``job``: highlight its tiles on the map and list its inputs."""
        if job is None or not self.n_jobs:
            return
        job = int(min(max(0, job), self.n_jobs - 1))
        if job == self.job:
            return
        self.job = job
        page = job // self.page_size
        if page != self.page or not self.picker.options:
            self.page = page
            self._draw_page()
        elif self.picker.value != job:
            self._updating = True
            try:
                self.picker.value = job
            finally:
                self._updating = False
        if self.goto.value != job:
            self.goto.value = job  # observed: select(job) again, which finds nothing to change
        self.map.value = tilemap_svg(self._base, self.width, self.height, len(self.tiles), self._overlay(job))
        self.inputs.value = self._inputs_html(job)

    def turn(self, step: int) -> None:
        """Show the previous (-1) or next (+1) page of jobs in the picker."""
        self.page += step
        self._draw_page()

    def _on_tile(self, value: str) -> None:
        """A tile of the map was clicked: pick its job."""
        if value.isdigit() and int(value) < self.n_jobs:
            self.select(int(value))

    def _on_pick(self, change) -> None:
        if not getattr(self, "_updating", False) and change["new"] is not None:
            self.select(change["new"])


def _collection_inputs(i: int, name: str, s, scenes: list[dict]) -> str:
    """A collection under a job: img[i], its bands and time steps, then each item the job reads
    (date, item id, files)."""
    head = (
        f'<div class="cm-input cm-collection" data-img="{i}" style="margin-left:1.2em">img[{i}] <b>{escape(name)}</b> '
        f'&larr; <span title="{escape(s.path)}">{escape(os.path.basename(s.path))}</span>'
        f'<span style="{MUTED}"> &middot; {len(s.steps)} time steps &times; {escape(", ".join(s.bands))} '
        f"{escape(s.dtype)}" + (" &middot; warped" if s.warp else "") + "</span>"
    )
    rows = [
        f'<div class="cm-scene" data-item="{escape(sc["id"])}" style="margin-left:1.2em">{escape(sc["date"])} '
        f"<b>{escape(sc['id'])}</b> "
        + ", ".join(f'<span title="{escape(f)}">{escape(os.path.basename(f))}</span>' for f in sc["files"])
        + "</div>"
        for sc in scenes[:SCENES_LISTED]
    ]
    if len(scenes) > SCENES_LISTED:
        rows.append(f'<div style="{MUTED};margin-left:1.2em">&hellip; {len(scenes) - SCENES_LISTED} more items</div>')
    summary = f"reads {len(scenes)} of {len(s.items)} items"
    return (
        head
        + f'<details class="cm-scenes" open><summary style="{MUTED}">{summary}</summary>{"".join(rows)}</details>'
        + "</div>"
    )


def graph_bundle(graph: JobGraph, src: Sources, name: str, header: str = "") -> dict:
    """What ``%%condor`` displays for its graph: in a kernel, the widget, with the HTML and text as fallbacks."""
    from IPython import get_ipython

    bundle = {"text/html": graph_html(graph, src, name, header), "text/plain": graph_text(graph, src, name)}
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        view = GraphView(graph, src, name, header)
        bundle.update({k: v for k, v in (view._repr_mimebundle_() or {}).items() if k not in bundle})
    return bundle
