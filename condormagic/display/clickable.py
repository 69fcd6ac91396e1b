"""HTML whose marked elements can be clicked: a job-table row, a tile of the tile map.

ipywidgets' ``HTML`` sends nothing back from the page, so this is a small anywidget (the
maintained way to write a widget's front end as one ES module, rendered by JupyterLab 4,
Notebook 7 and Voilà alike through anywidget's own extension): it draws ``value`` as HTML and
sends ``{"pick": VALUE}`` to the kernel when an element with ``data-pick="VALUE"`` is clicked
(or, focused, gets Enter or Space). Elements with ``data-pick`` show a pointer cursor.

One widget per table or map, whose ``value`` is rewritten, so a 10,000-job run still costs one
string per refresh, as with the ``HTML`` widget it replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import traitlets

_ESM = """
function render({ model, el }) {
  const draw = () => { el.innerHTML = model.get("value"); };
  draw();
  model.on("change:value", draw);
  const pick = (event) => {
    const target = event.target.closest ? event.target.closest("[data-pick]") : null;
    if (!target || !el.contains(target)) return false;
    model.send({ pick: target.getAttribute("data-pick") });
    return true;
  };
  el.addEventListener("click", pick);
  el.addEventListener("keydown", (event) => {
    if ((event.key === "Enter" || event.key === " ") && pick(event)) event.preventDefault();
  });
}
export default { render };
"""

_CSS = """
.cm-clickable [data-pick] { cursor: pointer; }
.cm-clickable tr[data-pick]:hover, .cm-clickable tr[data-pick]:focus { background: var(--jp-layout-color2, #eee); }
.cm-clickable tr[data-pick][aria-selected="true"] { background: var(--jp-brand-color3, #c6e2fb); }
.cm-clickable rect[data-pick]:hover { stroke: var(--jp-ui-font-color0, #111); stroke-width: 2; }
.jupyter-widgets-disconnected .cm-clickable [data-pick] { cursor: default; }
"""

PICK_LIMIT = 200  # characters of a pick value accepted from the page


class ClickableHTML(anywidget.AnyWidget):
    """``ClickableHTML(value)``: HTML in which a click on ``[data-pick]`` calls the ``on_pick`` callbacks
    with that attribute's value (a string)."""

    _esm = _ESM
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)

    def __init__(self, value: str = "", **kwargs):
        super().__init__(value=value, **kwargs)
        self._callbacks: list[Callable[[str], None]] = []
        self.add_class("cm-clickable")
        self.on_msg(self._handle)

    def on_pick(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(value)`` when an element with ``data-pick="value"`` is clicked."""
        self._callbacks.append(callback)

    def pick(self, value: str) -> None:
        """What a click on ``data-pick="value"`` does (as the page would send it)."""
        for callback in list(self._callbacks):
            callback(value)

    def _handle(self, _widget, content, _buffers) -> None:
        value = content.get("pick") if isinstance(content, dict) else None
        if isinstance(value, str) and len(value) <= PICK_LIMIT:
            self.pick(value)
