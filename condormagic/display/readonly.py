"""A run as a dashboard viewer sees it: its status and result, and no way to steer it.

Under Voilà a viewer must not remove, hold, release or retry the author's jobs, so the views
made here have no such buttons: a settled run is a compact card (status bar, metrics, the
result map with its split comparison), a running one a monitor without its steering row,
whose button widgets are closed so no message from the page can reach them.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from ..rundir.state import COMPLETED
from .cards import FONT, MUTED, age, progress_html
from .metrics import metrics_html
from .monitor import Monitor


def read_only_monitor(run, interval: float = 1.0) -> Monitor:
    """The live monitor without its steering buttons (closed, not only hidden)."""
    return Monitor(run, interval=interval, steering=False)


def status_html(run) -> str:
    counts = run.status()
    done = counts[COMPLETED]
    state = "completed" if done == run.n_jobs else ("running" if not run.settled else "stopped")
    metrics = run.metrics
    lines = [
        f'<div class="cm-run-status" data-state="{state}" style="{FONT};line-height:1.6">'
        f"<b>{escape(run.name)}</b> &middot; {done} of {run.n_jobs} jobs completed"
        f' <span style="{MUTED}">&middot; started {age(run.created)} on {escape(run.backend)}</span></div>',
        progress_html(counts),
    ]
    if metrics:
        lines.append(metrics_html(metrics, FONT))
    return "".join(lines)


def dashboard_view(run, actions: bool = False):
    """What ``%%condor`` shows under Voilà: compact status and result; steering only if ``actions``."""
    if actions:
        return Monitor(run)
    if not run.settled:
        return read_only_monitor(run)
    children = [widgets.HTML(status_html(run))]
    if run.complete:
        try:
            from .explorer import explore_run

            children.append(explore_run(run))
        except Exception as exc:  # a dashboard shows what it can
            children.append(widgets.HTML(f'<div style="{FONT};{MUTED}">no map: {escape(str(exc))}</div>'))
    box = widgets.VBox(children, layout=widgets.Layout(padding="4px"))
    box.add_class("cm-dashboard-run")
    return box
