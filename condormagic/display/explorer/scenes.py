"""The scene table of a collection layer: one row per scene, sortable; a click on a row shows that scene.

Columns as the presentation's Collections Explorer lists scenes (date, satellite, orbit, product
type, cloud cover, CRS (the UTM zone), MGRS tile) and the scene's size and id. A click on a column
heading sorts by it (again: the other way); a click on a row shows that scene alone on the map, and
on the same row again its whole date. The rows of the date on the map are marked, the scene shown
alone is selected.
"""

from __future__ import annotations

from html import escape

COLUMNS = (
    ("date", "date"),
    ("sat", "sat"),
    ("orbit", "orbit"),
    ("type", "type"),
    ("cloud", "cloud %"),
    ("crs", "CRS"),
    ("mgrs", "MGRS"),
    ("size", "size (px)"),
    ("id", "scene"),
)
CELL = "padding:1px 10px 1px 0;text-align:left;white-space:nowrap"
STYLE = """<style>
.cm-scenes { font:12px var(--jp-ui-font-family,sans-serif); color:var(--jp-ui-font-color1,#222);
  max-height:240px; overflow-y:auto; margin-top:4px; }
.cm-scenes table { border-collapse:collapse; }
.cm-scenes th { position:sticky; top:0; background:var(--jp-layout-color1,#fff); font-weight:600;
  border-bottom:1px solid var(--jp-border-color1,#bbb); }
.cm-scenes tr.cm-scene-date td { background:rgba(127,127,127,0.16); }
.cm-scenes tr.cm-scene[data-pick][aria-selected="true"] { background:none; }
.cm-scenes tr[aria-selected="true"] td { background:rgba(33,150,243,0.35); font-weight:600; }
.cm-scenes tr.cm-scene:hover td { background:rgba(127,127,127,0.28); }
</style>"""


def _key(column: str):
    def key(row: dict):
        value = row.get(column)
        if column == "date":
            value = row.get("datetime") or value
        return (value is None, value if value is not None else 0, row.get("datetime") or "", row["index"])

    return key


def _cell(column: str, row: dict) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if column == "cloud":
        return f"{value:.1f}"
    return str(value)


def sort_rows(rows: list[dict], column: str, descending: bool) -> list[dict]:
    """``rows`` sorted by ``column`` (missing values last, then by time)."""
    present = [r for r in rows if r.get(column) is not None or column == "date"]
    missing = [r for r in rows if r.get(column) is None and column != "date"]
    return sorted(present, key=_key(column), reverse=descending) + sorted(missing, key=_key("date"))


def scene_table_html(layer, time: int, item: str | None, column: str = "date", descending: bool = False) -> str:
    """The table of ``layer``'s scenes (:attr:`~.collection.CollectionLayer.scenes`), the date ``time``
    marked and the scene ``item`` selected."""
    rows = sort_rows(layer.scenes, column, descending)
    head = []
    for key, label in COLUMNS:
        arrow = (" ▼" if descending else " ▲") if key == column else ""
        sort = "descending" if key == column and descending else "ascending" if key == column else "none"
        head.append(
            f'<th data-pick="sort:{key}" aria-sort="{sort}" tabindex="0" style="{CELL}" '
            f'title="sort by {escape(label)}">{escape(label)}{arrow}</th>'
        )
    body = []
    for row in rows:
        classes = "cm-scene-date" if row.get("step") == time else ""
        selected = "true" if item is not None and row["id"] == item else "false"
        cells = "".join(f'<td style="{CELL}">{escape(_cell(key, row))}</td>' for key, _ in COLUMNS)
        body.append(
            f'<tr class="cm-scene {classes}" data-pick="item:{row["index"]}" data-id="{escape(row["id"])}" '
            f'data-step="{row.get("step")}" aria-selected="{selected}" tabindex="0" '
            f'title="show {escape(row["id"])} alone (click again: its whole date)">{cells}</tr>'
        )
    n_scenes, n_dates = len(rows), len(layer.times)
    if item is not None:
        where = (
            f'showing <b>{escape(item)}</b> alone · <span data-pick="date" style="text-decoration:underline" '
            f'tabindex="0">show the whole date</span>'
        )
    else:
        where = f"showing {escape(layer.times[time])}: its scenes are marked; click a scene to show it alone"
    caption = (
        f'<div class="cm-scenes-caption" style="margin:2px 0">Scenes of <b>{escape(layer.name)}</b>: '
        f"{n_scenes} scene{'s' if n_scenes != 1 else ''} on {n_dates} date{'s' if n_dates != 1 else ''} · "
        f"{where}</div>"
    )
    return (
        f'{STYLE}<div class="cm-scenes" data-layer="{escape(layer.name)}" data-sort="{column}" '
        f'data-item="{escape(item or "")}" data-time="{time}">{caption}'
        f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )
