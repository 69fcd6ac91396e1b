"""The job graph widget of ``%%condor --dry-run`` through a real kernel (nbclient)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from rasterio.transform import from_origin

WIDGET = "application/vnd.jupyter.widget-view+json"

FIND = """import json, re
from ipywidgets.widgets import widget
from condormagic.display.graphview import GraphView
def last_view():
    return [w for w in widget._instances.values() if isinstance(w, GraphView)][-1]
def highlighted(view):
    return [int(t) for t in re.findall(r'class="cm-highlight" data-tile="(\\d+)"', view.map.value)]"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    profile = dict(driver="GTiff", count=1, crs="EPSG:32633", transform=from_origin(500000, 5000000, 30, 30))
    for name in ("dem1", "dem2"):
        with rasterio.open(tmp_path / f"{name}.tif", "w", width=610, height=450, dtype="float32", **profile) as dst:
            dst.write(rng.normal(200, 8, (1, 450, 610)).astype("float32"))
    # 1000 x 1000 px in 10 px tiles: 10,000 tiles, one job each
    with rasterio.open(tmp_path / "big.tif", "w", width=1000, height=1000, dtype="uint8", **profile) as dst:
        dst.write(np.ones((1, 1000, 1000), "uint8"))
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    return tmp_path


def execute(folder, cells):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def shown(cell) -> dict:
    (out,) = [o for o in cell.outputs if o.output_type == "display_data" and WIDGET in o.data]
    return out.data


def lines(cell) -> list[str]:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream").splitlines()


def test_dry_run_shows_the_graph_widget_and_picking_a_job_highlights_its_tiles(folder):
    cells = [
        "%load_ext condormagic",
        "%condor_sources dem1=dem1.tif dem2=dem2.tif --tile 200 --halo 8",
        "%%condor --dry-run --name DRY --tiles-per-job 2\ndef change(img):\n    return img['dem2'] - img['dem1']",
        FIND,
        """v = last_view()
print(v.model_id)
print(type(v).__name__, v.n_jobs, len(v.picker.options), v.job, highlighted(v))
v.picker.value = 3
print(v.job, highlighted(v), v.graph.jobs[3], v.map.value.count('class="cm-read"'))
print("inputs", all(s in v.inputs.value for s in ('Job#3', 'img[0] <b>dem1</b>', 'dem2.tif', 'rows ', 'x 5', 'halo 8')))
print("details", v.inputs.value.count('<details class="cm-tile-inputs"'))
print("tiles", v.map.value.count('<rect class="cm-tile"'))""",
    ]
    nb = execute(folder, cells)
    data = shown(nb.cells[2])
    assert "Job#0" in data["text/html"]  # the fallback for frontends without widgets
    model, *out = lines(nb.cells[4])
    assert model == data[WIDGET]["model_id"]  # the widget the cell showed
    assert out[0] == "GraphView 6 6 0 [0, 1]"  # 12 tiles of 200 px, two per job
    assert out[1] == "3 [6, 7] [6, 7] 2"  # its two tiles highlighted, their halo read windows dashed
    assert out[2:] == ["inputs True", "details 2", "tiles 12"]
    assert not (folder / "runs").exists() or not any((folder / "runs").iterdir())  # a dry run makes no run


def test_a_ten_thousand_job_graph_is_summarised_and_paged(folder):
    cells = [
        "%load_ext condormagic",
        "import condormagic as cm\nbig = cm.sources(a='big.tif', tile=10)",
        "%%condor --dry-run --sources big --tiles-per-job 1 --name BIG\ndef one(img):\n    return img[0]",
        FIND,
        """v = last_view()
print(v.model_id)
print(json.dumps([v.n_jobs, len(v.picker.options), v.map.value.count('<rect class="cm-tile"'),
    v.map.value.count('<image class="cm-tiles-png"'), len(v.map.value) < 20000]))
v.goto.value = 9999
print(json.dumps([v.job, v.page, v.picker.value, highlighted(v), len(v.picker.options)]))
v.turn(-1)
print(json.dumps([v.page, v.picker.options[0][1], v.picker.value, v.job]))
print("Job#9999" in v.inputs.value, "of 10000" in v.page_label.value)""",
    ]
    nb = execute(folder, cells)
    data = shown(nb.cells[2])
    assert "Job#0" in data["text/html"] and "Job#9999" in data["text/html"]
    assert "Job#5000" not in data["text/html"]  # summarised: first and last jobs only
    model, *out = lines(nb.cells[4])
    assert model == data[WIDGET]["model_id"]
    assert json.loads(out[0]) == [10000, 50, 0, 1, True]  # one PNG of the tiles, not 10,000 rects
    assert json.loads(out[1]) == [9999, 199, 9999, [9999], 50]
    assert json.loads(out[2]) == [198, 9900, None, 9999]  # paging keeps the picked job
    assert out[3] == "True True"
