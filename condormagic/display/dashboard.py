"""Every run in the runs directory, newest first, with its jobs' states; click one (or pick it) to open its monitor."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from ..voila import in_voila
from .cards import FONT, runs_html
from .clickable import ClickableHTML
from .monitor import Monitor


class Dashboard(widgets.VBox):
    """``cm.dashboard()`` / ``%condor_dashboard``: the runs table, a run picker, and the picked run's monitor.

    ``list_runs`` gives the runs to show, newest first; it is called again by the reload button.
    """

    def __init__(self, list_runs: Callable[[], list]):
        self.list_runs = list_runs
        self.table = ClickableHTML()
        self.table.on_pick(self._on_click)
        self.picker = widgets.Dropdown(description="open", layout=widgets.Layout(width="420px"))
        self.reload_button = widgets.Button(description="reload", icon="refresh", tooltip="list the runs again")
        self.monitor_box = widgets.VBox()
        self.monitor: Monitor | None = None
        self.picker.observe(self._on_pick, "value")
        self.reload_button.on_click(lambda _: self.reload())
        super().__init__([self.table, widgets.HBox([self.picker, self.reload_button]), self.monitor_box])
        self.add_class("cm-dashboard")
        self.reload()

    def reload(self) -> None:
        self.runs = self.list_runs()
        if not self.runs:
            self.table.value = f'<div style="{FONT}">No runs yet.</div>'
        else:
            self.table.value = runs_html(self.runs)
        current = self.picker.value
        self.picker.options = [("(pick a run to open its monitor)", None)] + [
            (f"{r.name} · {r.id}", r.id) for r in self.runs
        ]
        self.picker.value = current if current in {r.id for r in self.runs} else None

    def show_run(self, run_id: str | None) -> Monitor | None:
        """Show the monitor of the run with this id (``None`` closes it)."""
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor = None
        run = next((r for r in self.runs if r.id == run_id), None)
        if run is None:
            self.monitor_box.children = ()
            return None
        if in_voila():  # a dashboard viewer may look, not steer
            self.monitor = Monitor(run, steering=False)
        else:
            self.monitor = Monitor(run)
        self.monitor_box.children = (self.monitor,)
        return self.monitor

    def _on_click(self, run_id: str) -> None:
        if run_id in {r.id for r in self.runs}:
            self.picker.value = run_id

    def _on_pick(self, change) -> None:
        self.show_run(change["new"])
