"""A run's status as a compact HTML card: what a notebook shows for a ``Run``."""

from __future__ import annotations

import time
from html import escape

from ..eventlog import STATES

COLOURS = {
    "idle": "#9e9e9e",
    "running": "#1e88e5",
    "completed": "#43a047",
    "failed": "#e53935",
    "held": "#fb8c00",
    "removed": "#6d4c41",
}


def status_bar(counts: dict[str, int], width: int = 320) -> str:
    """A stacked bar with one segment per state."""
    total = sum(counts.values()) or 1
    segments = "".join(
        f'<span title="{state}: {n}" style="display:inline-block;height:10px;width:{100 * n / total:.3f}%;'
        f'background:{COLOURS[state]}"></span>'
        for state, n in counts.items()
        if n
    )
    return (
        f'<div style="width:{width}px;max-width:100%;background:#e0e0e0;border-radius:3px;overflow:hidden;'
        f'line-height:0;white-space:nowrap">{segments}</div>'
    )


def run_card(run, note: str | None = None) -> str:
    counts = run.status()
    legend = " ".join(f'<span style="color:{COLOURS[s]}">&#9632;</span> {s} {counts[s]}' for s in STATES if counts[s])
    cluster = f" &middot; cluster {', '.join(map(str, run.clusters))}" if run.clusters else ""
    opts = run.options
    resources = f"{opts['cpus']} cpu, {opts['mem']} MB" + (f", {opts['gpus']} gpu" if opts.get("gpus") else "")
    output = run.output
    metrics = run.metrics
    rows = [
        f"<b>{escape(run.name)}</b> <code>{escape(run.id)}</code> on <b>{escape(run.backend)}</b>{cluster}"
        f" &middot; {run.n_jobs} jobs &middot; {resources}",
        status_bar(counts) + f'<div style="margin-top:2px">{legend}</div>',
    ]
    if note:
        rows.insert(0, f"<i>{escape(note)}</i>")
    if output:
        rows.append(f"output <code>{escape(output)}</code>")
    else:
        rows.append(f'<span style="opacity:.7">run directory <code>{escape(str(run.path))}</code></span>')
    if metrics:
        rows.append("metrics " + ", ".join(f"{escape(k)} = {v:,.6g}" for k, v in metrics.items()))
    problems = [j for j in run.jobs(refresh=False) if j.state in ("failed", "held") and j.reason]
    for j in problems[:3]:
        rows.append(f'<span style="color:{COLOURS[j.state]}">Job#{j.job} {j.state}: {escape(j.reason)}</span>')
    if len(problems) > 3:
        rows.append(f"&hellip; {len(problems) - 3} more jobs failed or held")
    return (
        '<div class="cm-run" style="font-family:var(--jp-ui-font-family,sans-serif);font-size:12px;'
        'line-height:1.6;color:var(--jp-ui-font-color1,#222)">' + "<br>".join(rows) + "</div>"
    )


def run_text(run, note: str | None = None) -> str:
    counts = run.status()
    parts = [f"{note}\n" if note else ""]
    cluster = f" cluster {', '.join(map(str, run.clusters))}" if run.clusters else ""
    parts.append(f"{run.name} ({run.id}) on {run.backend}{cluster}: {run.n_jobs} jobs")
    parts.append("  " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    output = run.output
    parts.append(f"  output: {output}" if output else f"  run directory: {run.path}")
    for j in run.jobs(refresh=False):
        if j.state in ("failed", "held") and j.reason:
            parts.append(f"  Job#{j.job} {j.state}: {j.reason}")
    return "\n".join(p for p in parts if p)


def age(seconds_since_epoch: float) -> str:
    delta = max(0, time.time() - seconds_since_epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            return f"{delta / size:.0f} {unit} ago"
    return f"{delta:.0f} s ago"
