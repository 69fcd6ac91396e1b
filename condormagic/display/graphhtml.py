"""The job graph as HTML: cluster, jobs, and each job's input windows (the seed's ``scaleGraph``)."""

from __future__ import annotations

import os
from html import escape

from ..tiling.jobs import JobGraph
from ..tiling.source import Sources
from .coords import format_bounds, format_grid_bounds

SHOW_FIRST, SHOW_LAST = 12, 3
SCENES_SHOWN = 8  # items of a collection listed under a job

STYLE = """
<style>
.cm-graph{font-family:var(--jp-ui-font-family,sans-serif);font-size:12px;line-height:1.45;
  color:var(--jp-ui-font-color1,#222)}
.cm-graph summary{cursor:pointer}
.cm-graph .cm-job{margin-left:1.2em}
.cm-graph .cm-img{margin-left:2.4em;font-family:var(--jp-code-font-family,monospace)}
.cm-graph .cm-muted{color:var(--jp-ui-font-color2,#777)}
.cm-graph code{background:none}
</style>
"""


def _job_html(job: int, tiles: list[int], graph: JobGraph, src: Sources, open_: bool) -> str:
    label = f"tile {tiles[0]}" if len(tiles) == 1 else f"tiles {tiles[0]}&ndash;{tiles[-1]} ({len(tiles)})"
    rows = []
    for t in tiles[:4]:
        tile = graph.tiles[t]
        win = tile.read_window
        where = (
            f"rows {int(win.row_off)}:{int(win.row_off + win.height)}, "
            f"cols {int(win.col_off)}:{int(win.col_off + win.width)}"
        )
        coords = format_bounds(src.grid, win)
        rows.append(f'<div class="cm-muted cm-img">tile {t}: {where} &middot; {coords}</div>')
        for i, (name, s) in enumerate(src.items()):
            if s.kind == "collection":
                continue
            how = " (warped)" if s.warp else ""
            rows.append(
                f'<div class="cm-img">img[{i}] <b>{escape(name)}</b> &larr; '
                f"{escape(os.path.basename(s.path))}{how}</div>"
            )
    if len(tiles) > 4:
        rows.append(f'<div class="cm-muted cm-img">&hellip; {len(tiles) - 4} more tiles</div>')
    for i, (name, s) in enumerate(src.items()):
        if s.kind != "collection":
            continue
        scenes = graph.job_scenes(src, name, job)
        rows.append(
            f'<div class="cm-img">img[{i}] <b>{escape(name)}</b> &larr; {escape(os.path.basename(s.path))}: '
            f"{len(scenes)} of {len(s.items)} items, {escape(', '.join(s.bands))}</div>"
        )
        for sc in scenes[:SCENES_SHOWN]:
            files = ", ".join(escape(os.path.basename(f)) for f in sc["files"])
            rows.append(
                f'<div class="cm-img cm-scene" style="margin-left:3.6em">{escape(sc["date"])} '
                f"<b>{escape(sc['id'])}</b> {files}</div>"
            )
        if len(scenes) > SCENES_SHOWN:
            more = len(scenes) - SCENES_SHOWN
            rows.append(f'<div class="cm-muted cm-img" style="margin-left:3.6em">&hellip; {more} more</div>')
    return (
        f'<details class="cm-job"{" open" if open_ else ""}><summary>Job#{job} &middot; {label}</summary>'
        + "".join(rows)
        + "</details>"
    )


def graph_html(graph: JobGraph, src: Sources, name: str, header: str = "") -> str:
    """HTML of a job graph; thousands of jobs are summarised, not all drawn."""
    g = src.grid
    n = graph.n_jobs
    n_tiles = sum(len(j) for j in graph.jobs)
    shown = list(range(n)) if n <= SHOW_FIRST + SHOW_LAST else [*range(SHOW_FIRST), *range(n - SHOW_LAST, n)]
    parts = [STYLE, '<div class="cm-graph"><details open><summary>']
    parts.append(
        f"<b>Cluster</b> {escape(name)} {header}&middot; {n} jobs, {n_tiles} tiles of {src.tile} px"
        + (f", halo {src.halo}" if src.halo else "")
        + f" &middot; grid {g.width} &times; {g.height}, {format_grid_bounds(g)}"
        + (
            f" &middot; {len(graph.skipped)} tiles skipped by mask <code>{escape(src.mask)}</code>"
            if graph.skipped
            else ""
        )
        + "</summary>"
    )
    for k, job in enumerate(shown):
        if k and shown[k - 1] != job - 1:
            parts.append(f'<div class="cm-job cm-muted">&hellip; {job - shown[k - 1] - 1} more jobs &hellip;</div>')
        parts.append(_job_html(job, graph.jobs[job], graph, src, open_=job < 3))
    parts.append("</details></div>")
    return "".join(parts)


def graph_text(graph: JobGraph, src: Sources, name: str) -> str:
    """A plain-text summary for terminals and ``text/plain`` outputs."""
    n_tiles = sum(len(j) for j in graph.jobs)
    g = src.grid
    lines = [
        f"Cluster {name}: {graph.n_jobs} jobs, {n_tiles} tiles of {src.tile} px",
        f"  grid {g.width} x {g.height}, {format_grid_bounds(g)}",
    ]
    for job in range(min(graph.n_jobs, 5)):
        tiles = graph.jobs[job]
        lines.append(
            f"  Job#{job}: tiles {tiles[0]}-{tiles[-1]}" if len(tiles) > 1 else f"  Job#{job}: tile {tiles[0]}"
        )
    if graph.n_jobs > 5:
        lines.append(f"  ... {graph.n_jobs - 5} more jobs")
    return "\n".join(lines)
