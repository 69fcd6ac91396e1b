"""The explorer's control panel: which layer, its bands, colours, stretch, opacity and date; the split.

A mixin of :class:`~condormagic.display.explorer.widget.Explorer`: the controls show the settings
of the layer picked at the top and change them through ``Explorer.set_style`` and ``set_split``.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from .style import COLORMAPS, STRETCHES, Style

DESCRIPTION_WIDTH = "56px"


class Controls:
    """The panel beside the map (``self.panel``), for a class with ``layers``, ``styles``, ``split``,
    ``left``, ``right``, ``set_style``, ``set_split`` and ``fit``."""

    def _make_panel(self) -> widgets.VBox:
        names = list(self.layers)

        def w() -> widgets.Layout:
            return widgets.Layout(width="240px")

        self.pick = widgets.Dropdown(options=names, value=names[-1], description="layer", layout=w())
        self.visible = widgets.Checkbox(description="shown", indent=False)
        self.opacity = widgets.FloatSlider(
            min=0, max=1, step=0.05, description="opacity", layout=w(), readout_format=".2f"
        )
        self.mode = widgets.ToggleButtons(
            options=[("one band", "band"), ("RGB", "rgb")], layout=widgets.Layout(width="240px")
        )
        self.mode.style.button_width = "110px"
        self.band = widgets.Dropdown(description="band", layout=w())
        self.red = widgets.Dropdown(description="red", layout=w())
        self.green = widgets.Dropdown(description="green", layout=w())
        self.blue = widgets.Dropdown(description="blue", layout=w())
        self.colormap = widgets.Dropdown(
            options=[(v, k) for k, v in COLORMAPS.items()], description="colours", layout=w()
        )
        self.stretch = widgets.Dropdown(
            options=[(v, k) for k, v in STRETCHES.items()], description="stretch", layout=w()
        )
        self.n_std = widgets.BoundedFloatText(value=2.0, min=0.1, max=10, step=0.5, description="N std", layout=w())
        self.time = widgets.SelectionSlider(options=["-"], description="date", layout=w())
        self.note = widgets.HTML(layout=widgets.Layout(width="240px"))
        self.split_box = widgets.Checkbox(value=self.split, description="split window", indent=False)
        self.left_pick = widgets.Dropdown(options=names, value=self.left, description="left", layout=w())
        self.right_pick = widgets.Dropdown(options=names, value=self.right, description="right", layout=w())
        self.fit_button = widgets.Button(description="fit", icon="expand", tooltip="show the whole of every layer")
        self.fit_button.layout.width = "80px"
        for control in (self.visible, self.opacity, self.mode, self.band, self.red, self.green, self.blue):
            control.observe(self._on_style, "value")
        for control in (self.colormap, self.stretch, self.n_std, self.time):
            control.observe(self._on_style, "value")
        self.pick.observe(lambda _: self._load_controls(), "value")
        self.split_box.observe(self._on_split, "value")
        self.left_pick.observe(self._on_sides, "value")
        self.right_pick.observe(self._on_sides, "value")
        self.fit_button.on_click(lambda _: self.fit())
        for control, name in (
            (self.pick, "layer"),
            (self.stretch, "stretch"),
            (self.colormap, "colormap"),
            (self.band, "band"),
            (self.opacity, "opacity"),
            (self.split_box, "split"),
            (self.left_pick, "left"),
            (self.right_pick, "right"),
            (self.time, "time"),
            (self.mode, "mode"),
        ):
            control.add_class(f"cm-control-{name}")
        for control in (self.pick, self.opacity, self.band, self.red, self.green, self.blue, self.colormap):
            control.style.description_width = DESCRIPTION_WIDTH
        for control in (self.stretch, self.n_std, self.time, self.left_pick, self.right_pick):
            control.style.description_width = DESCRIPTION_WIDTH
        self._load_controls()
        panel = widgets.VBox(
            [
                self.pick,
                self.note,
                widgets.HBox([self.visible, self.fit_button]),
                self.opacity,
                self.mode,
                self.band,
                self.red,
                self.green,
                self.blue,
                self.colormap,
                self.stretch,
                self.n_std,
                self.time,
                widgets.HTML('<hr style="margin:4px 0">'),
                self.split_box,
                self.left_pick,
                self.right_pick,
            ],
            layout=widgets.Layout(width="260px", padding="0 0 0 8px", flex="0 0 260px"),
        )
        panel.add_class("cm-explorer-controls")
        return panel

    def _load_controls(self) -> None:
        """Show the selected layer's settings in the controls."""
        layer, style = self.layers[self.pick.value], self.styles[self.pick.value]
        self._editing = True
        try:
            bands = list(layer.bands)
            for dropdown in (self.band, self.red, self.green, self.blue):
                dropdown.options = bands
            self.band.value = style.band if style.band in bands else bands[0]
            for dropdown, value in zip((self.red, self.green, self.blue), style.rgb, strict=True):
                dropdown.value = value if value in bands else bands[0]
            self.mode.value = style.mode
            self.mode.disabled = len(bands) < 2
            self.visible.value, self.opacity.value = style.visible, style.opacity
            self.colormap.value, self.stretch.value, self.n_std.value = style.colormap, style.stretch, style.n_std
            if layer.times:
                self.time.options = [str(t) for t in layer.times]
                self.time.index = style.time
            self.time.layout.display = "" if layer.times else "none"
            self.note.value = (
                f'<div style="font-size:11px;color:var(--jp-ui-font-color2,#666)">{escape(layer.note)}</div>'
                if getattr(layer, "note", "")
                else ""
            )
            self._show_modes(style)
        finally:
            self._editing = False

    def _show_modes(self, style: Style) -> None:
        rgb = style.mode == "rgb"
        for control in (self.red, self.green, self.blue):
            control.layout.display = "" if rgb else "none"
        for control in (self.band, self.colormap):
            control.layout.display = "none" if rgb else ""
        self.n_std.layout.display = "" if style.stretch == "stddev" else "none"

    def _on_style(self, _change) -> None:
        if self._editing:
            return
        name = self.pick.value
        layer = self.layers[name]
        old = self.styles[name]
        time = self.time.index if layer.times else 0
        style = old.copy(
            visible=self.visible.value,
            opacity=self.opacity.value,
            mode=self.mode.value,
            band=self.band.value,
            rgb=(self.red.value, self.green.value, self.blue.value),
            colormap=self.colormap.value,
            stretch=self.stretch.value,
            n_std=float(self.n_std.value),
            time=time,
            item=old.item if time == old.time else None,  # another date: its scenes, not the one scene
        )
        self.set_style(name, style)

    def _on_split(self, change) -> None:
        if self._syncing:
            return
        self.set_split(self.left_pick.value, self.right_pick.value) if change["new"] else self.set_split(None)

    def _on_sides(self, _change) -> None:
        if self.split and not self._syncing:
            self.set_split(self.left_pick.value, self.right_pick.value)
