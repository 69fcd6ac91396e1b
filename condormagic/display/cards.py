"""A run as text and as compact HTML: the card a notebook keeps, the CLI's lines, the runs table.

Plain strings only (no widgets), so the command line and frontends without widgets use them too.
"""

from __future__ import annotations

import time
from html import escape

from ..errors import CondorMagicError
from ..rundir.state import STATES
from ..voila import NOT_COMPUTED
from .metrics import metrics_html, metrics_text

COLOURS = {
    "idle": "#9e9e9e",
    "running": "#1e88e5",
    "completed": "#43a047",
    "failed": "#e53935",
    "held": "#fb8c00",
    "removed": "#6d4c41",
}


FONT = "font-family:var(--jp-ui-font-family,sans-serif);font-size:12px;color:var(--jp-ui-font-color1,#222)"
MUTED = "color:var(--jp-ui-font-color2,#666)"
TRACK = "var(--jp-layout-color3,#d6d6d6)"


def cut(text: str, limit: int = 80) -> tuple[str, str]:
    """``(short, full)``: ``text`` cut at the last word boundary before ``limit`` characters, with an
    ellipsis (the full text goes in a tooltip); ``short == full`` when it fits."""
    full = " ".join(text.split())
    if len(full) <= limit:
        return full, full
    head = full[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:.-") + "…", full


def counts_text(counts: dict[str, int]) -> str:
    """``completed 5 · failed 1``: the states a run's jobs are in, with their counts."""
    return " &middot; ".join(
        f'<span class="cm-count" data-state="{s}"><span style="color:{COLOURS[s]}">&#9632;</span> {s} <b>{n}</b></span>'
        for s, n in counts.items()
        if n
    )


def status_bar(counts: dict[str, int], width: int = 320, height: int = 10) -> str:
    """A stacked bar with one segment per state."""
    total = sum(counts.values()) or 1
    segments = "".join(
        f'<div data-state="{s}" title="{s}: {n}" style="flex:0 0 {100 * n / total:.4f}%;background:{COLOURS[s]}"></div>'
        for s, n in counts.items()
        if n
    )
    return (
        f'<div style="display:flex;width:{width}px;max-width:100%;height:{height}px;border-radius:3px;'
        f'overflow:hidden;background:{TRACK}">{segments}</div>'
    )


def progress_html(counts: dict[str, int], width: int = 420) -> str:
    """The stacked bar, and the count of every state under it."""
    legend = " ".join(
        f'<span class="cm-count" data-state="{s}" style="margin-right:8px{"" if counts.get(s) else ";opacity:.45"}">'
        f'<span style="color:{COLOURS[s]}">&#9632;</span> {s} <b>{counts.get(s, 0)}</b></span>'
        for s in STATES
    )
    return (
        f'<div class="cm-progress" style="{FONT}">{status_bar(counts, width, 14)}'
        f'<div style="margin-top:3px">{legend}</div></div>'
    )


def where(run) -> str:
    """The backend a run went to; for HTCondor with its schedd and pool: ``htcondor (schedd NAME, pool HOST)``."""
    opts = run.options
    if run.backend != "htcondor":
        return run.backend
    parts = [f"schedd {opts['schedd']}"] if opts.get("schedd") else []
    pool = opts.get("pool") or opts.get("collector")
    if pool:
        parts.append(f"pool {pool}")
    return f"htcondor ({', '.join(parts)})" if parts else "htcondor"


def waiting_lines(run) -> list[str]:
    """Why idle jobs wait (grouped by reason), and the scheduler's silence: one line each."""
    reasons = run.waiting_reasons()
    by_reason: dict[str, list[int]] = {}
    for job, reason in sorted(reasons.items()):
        by_reason.setdefault(reason, []).append(job)
    lines = []
    for reason, jobs in by_reason.items():
        who = f"Job#{jobs[0]}" if len(jobs) == 1 else f"{len(jobs)} jobs"
        lines.append(f"{who} idle: {reason}")
    if run.scheduler_problem:
        lines.append(run.scheduler_problem)
    return lines


def runs_html(runs) -> str:
    """Every run as a table row: name, id, backend, jobs, a small bar of their states, age."""
    cell = "padding:2px 8px;text-align:left;white-space:nowrap"
    head = "".join(f'<th style="{cell}">{h}</th>' for h in ("name", "id", "backend", "jobs", "state", "made"))
    rows = []
    for r in runs:
        counts = r.status()
        summary = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
        rows.append(
            f'<tr class="cm-run-row" data-run="{escape(r.id)}" data-pick="{escape(r.id)}" tabindex="0">'
            f'<td style="{cell}"><b>{escape(r.name)}</b></td>'
            f'<td style="{cell}"><code>{escape(r.id)}</code></td><td style="{cell}">{escape(where(r))}</td>'
            f'<td style="{cell}">{r.n_jobs}</td><td class="cm-state" style="{cell}" title="{summary}">'
            f'{status_bar(counts, 140)}<div style="margin-top:2px">{counts_text(counts)}</div></td>'
            f'<td style="{cell}">{age(r.created)}</td></tr>'
        )
    return (
        f'<table class="cm-dashboard" style="{FONT};border-collapse:collapse"><thead><tr '
        f'style="border-bottom:1px solid var(--jp-border-color1,#bbb)">{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def run_card(run, note: str | None = None) -> str:
    counts = run.status()
    legend = " ".join(f'<span style="color:{COLOURS[s]}">&#9632;</span> {s} {counts[s]}' for s in STATES if counts[s])
    cluster = f" &middot; cluster {', '.join(map(str, run.clusters))}" if run.clusters else ""
    opts = run.options
    resources = f"{opts['cpus']} cpu, {opts['mem']} MB" + (f", {opts['gpus']} gpu" if opts.get("gpus") else "")
    output, problem = output_or_problem(run)
    metrics = run.metrics
    rows = [
        f"<b>{escape(run.name)}</b> <code>{escape(run.id)}</code> on <b>{escape(where(run))}</b>{cluster}"
        f" &middot; {run.n_jobs} jobs &middot; {resources}",
        status_bar(counts) + f'<div style="margin-top:2px">{legend}</div>',
    ]
    if note:
        rows.insert(0, f"<i>{escape(note)}</i>")
    if output:
        rows.append(f"output <code>{escape(output)}</code>")
    elif problem:
        rows.append(f'<span style="color:{COLOURS["failed"]}">{escape(problem)}</span>')
    else:
        rows.append(f'<span style="opacity:.7">run directory <code>{escape(str(run.path))}</code></span>')
    if metrics:
        rows.append(metrics_html(metrics))
    problems = [j for j in run.jobs(refresh=False) if j.state in ("failed", "held") and j.reason]
    for j in problems[:3]:
        short, full = cut(j.reason, 160)
        rows.append(
            f'<span class="cm-reason" style="color:{COLOURS[j.state]}" title="{escape(full)}">'
            f"Job#{j.job} {j.state}: {escape(short)}</span>"
        )
    if len(problems) > 3:
        rows.append(f"&hellip; {len(problems) - 3} more jobs failed or held")
    for line in waiting_lines(run):
        rows.append(f'<span class="cm-waiting" style="color:{COLOURS["held"]}">{escape(line)}</span>')
    return (
        '<div class="cm-run" style="font-family:var(--jp-ui-font-family,sans-serif);font-size:12px;'
        'line-height:1.6;color:var(--jp-ui-font-color1,#222)">' + "<br>".join(rows) + "</div>"
    )


def run_text(run, note: str | None = None) -> str:
    counts = run.status()
    parts = [f"{note}\n" if note else ""]
    cluster = f" cluster {', '.join(map(str, run.clusters))}" if run.clusters else ""
    parts.append(f"{run.name} ({run.id}) on {where(run)}{cluster}: {run.n_jobs} jobs")
    parts.append("  " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    output, problem = output_or_problem(run)
    parts.append(f"  output: {output}" if output else f"  run directory: {run.path}")
    if problem:
        parts.append(f"  {problem}")
    if run.metrics:
        parts.append("  " + metrics_text(run.metrics).replace("\n", "\n  "))
    for j in run.jobs(refresh=False):
        if j.state in ("failed", "held") and j.reason:
            parts.append(f"  Job#{j.job} {j.state}: {j.reason}")
    parts.extend(f"  {line}" for line in waiting_lines(run))
    return "\n".join(p for p in parts if p)


def output_or_problem(run) -> tuple[str | None, str | None]:
    """The run's output, or the sentence saying why its tiles make none."""
    try:
        return run.output, None
    except CondorMagicError as exc:
        return None, str(exc)


def age(seconds_since_epoch: float) -> str:
    """``3 min ago``; a time ahead of this machine's clock says so rather than ``0 s ago``."""
    delta = time.time() - seconds_since_epoch
    if delta < -60:
        return f"in {_span(-delta)} (its clock is ahead of this machine's)"
    return f"{_span(max(0.0, delta))} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def not_computed_html() -> str:
    """The one friendly sentence a dashboard shows for a result nobody has computed yet (the
    reason, which may name files and magics, is not shown to the viewer)."""
    return (
        '<div class="cm-not-computed" style="font-family:var(--jp-ui-font-family,sans-serif);'
        "font-size:14px;padding:12px 16px;border-left:4px solid #9e9e9e;"
        f'background:var(--jp-layout-color2,#f3f3f3);color:var(--jp-ui-font-color1,#222)">{NOT_COMPUTED}</div>'
    )
