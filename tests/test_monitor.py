"""The monitor through a real kernel (nbclient): it follows a run with a failure and a retry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from rasterio.transform import from_origin


@pytest.fixture
def folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    for name in ("dem1", "dem2"):
        array = rng.normal(200, 8, (450, 610)).astype("float32")
        profile = dict(driver="GTiff", width=610, height=450, count=1, dtype="float32", crs="EPSG:32721")
        profile["transform"] = from_origin(300000, 8900000, 30, 30)
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as d:
            d.write(array, 1)
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    (tmp_path / "fail.flag").write_text("1")
    return tmp_path


SETUP = """import os, time
import condormagic as cm
from condormagic.display.monitor import Monitor
src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=300)
def flaky(img):
    print("tile at", img.window.row_off, img.window.col_off)
    if img.window.row_off == 0 and img.window.col_off == 0 and os.path.exists("fail.flag"):
        raise RuntimeError("first tile refused on purpose")
    return (img["dem2"] - img["dem1"] > 10).astype("uint8"), {"tiles": 1}
run = cm.submit(flaky, src, cpus=1, mem="500MB", name="FLAKY", tiles_per_job=1, check=False)
def settle(m, timeout=120):
    t = time.time()
    while m.running and time.time() - t < timeout:
        time.sleep(0.1)
m = Monitor(run, interval=0.2)
m"""

FIRST = """settle(m)
print(json.dumps(m.counts))
print("running", m.running)
print("tiles", m.tiles_view.value.count('data-state="completed"'), m.tiles_view.value.count('data-state="failed"'))
print("progress", "failed <b>1</b>" in m.progress.value)
m.sort.value = "state"
print("first row", m.table.value.split("<tbody>")[1][:60])
m.show_log(0)
print("log", "first tile refused on purpose" in m.log_view.value, "tile at 0 0" in m.log_view.value)
print("result", [type(c).__name__ for c in m.result.children])"""

RETRY = """os.remove("fail.flag")
print(m.act("retry"))
settle(m)
print(json.dumps(m.counts))
print("tiles", m.tiles_view.value.count('data-state="completed"'))
print("result", [type(c).__name__ for c in m.result.children])
print("output", "output.tif" in m.result.children[0].value, "tiles <b>6</b>" in m.result.children[0].value)
print("header", "done" in m.header.value)
m2 = Monitor(cm.run("FLAKY"), autostart=False)
print("reattached", json.dumps(m2.counts))
print(m.act("remove"))"""


def test_monitor_follows_a_failure_and_a_retry(folder):
    nb = new_notebook(
        cells=[new_code_cell("import json"), new_code_cell(SETUP), new_code_cell(FIRST), new_code_cell(RETRY)]
    )
    client = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
    shown = nb.cells[1].outputs[0]
    assert "application/vnd.jupyter.widget-view+json" in shown.data
    first = "".join(o.text for o in nb.cells[2].outputs if o.output_type == "stream").splitlines()
    counts = json.loads(first[0])
    assert counts["failed"] == 1 and counts["completed"] == 5 and counts["idle"] == counts["running"] == 0
    assert first[1:] == [
        "running False",
        "tiles 5 1",
        "progress True",
        *first[4:5],
        "log True True",
        "result ['HTML']",
    ]
    assert 'data-state="failed"' in first[4]  # sorted by state: the failed job comes first
    retry = "".join(o.text for o in nb.cells[3].outputs if o.output_type == "stream").splitlines()
    assert retry[0] == "Resubmitted 1 job(s): Job#0"
    assert json.loads(retry[1])["completed"] == 6
    assert retry[2:] == [
        "tiles 6",
        "result ['HTML', 'Explorer']",  # the explorer map of the output
        "output True True",
        "header True",
        retry[6],
        "No job could be removed.",
    ]
    assert json.loads(retry[6].removeprefix("reattached "))["completed"] == 6


def test_run_as_last_expression_shows_the_monitor_and_keeps_the_card(folder):
    cells = [
        "import condormagic as cm\nsrc = cm.sources(dem1='dem1.tif', tile=400)\n"
        "run = cm.submit(lambda img: img[0] * 2, src, cpus=1, mem='500MB', name='TWICE')\nrun.wait(timeout=120)\nrun",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    (out,) = [o for o in nb.cells[0].outputs if o.output_type in ("execute_result", "display_data")]
    assert "application/vnd.jupyter.widget-view+json" in out.data
    assert "TWICE" in out.data["text/html"] and "completed" in out.data["text/html"]
    assert out.data["text/plain"].startswith("<Run TWICE")


def test_tile_map_of_thousands_of_tiles_is_one_image():
    from types import SimpleNamespace

    from condormagic.display.tilemap import TileMap
    from condormagic.tiling.grid import Tiling

    manifest = SimpleNamespace(
        grid=SimpleNamespace(width=100 * 120, height=100 * 100),
        tiling=Tiling(100 * 120, 100 * 100, 100),
        jobs=[[t] for t in range(12000)],
    )
    tm = TileMap(manifest)
    html = tm.html(["completed"] * 6000 + ["running"] * 6000)
    assert html.startswith('<img class="cm-tilemap"') and "running 6000, completed 6000" in html
    assert tm.html(["completed"] * 6000 + ["running"] * 6000) is html  # unchanged states: no redraw


def test_dashboard_lists_runs_newest_first_and_opens_a_monitor(folder):
    cells = [
        "%load_ext condormagic",
        "import condormagic as cm\nsrc = cm.sources(dem1='dem1.tif', tile=400)\n"
        "a = cm.submit(lambda img: img[0] * 2, src, cpus=1, mem='500MB', name='FIRST')\n"
        "b = cm.submit(lambda img: img[0] * 3, src, cpus=1, mem='500MB', name='SECOND')\n"
        "a.wait(timeout=120); b.wait(timeout=120)",
        "d = %condor_dashboard\nd",
        "import re\nprint(re.findall(r'<b>(FIRST|SECOND)</b>', d.table.value))\n"
        "d.picker.value = a.id\n"
        "print(type(d.monitor).__name__, d.monitor.run.name, d.monitor_box.children[0] is d.monitor)",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in nb.cells[2].outputs)
    text = "".join(o.text for o in nb.cells[3].outputs if o.output_type == "stream").splitlines()
    assert text == ["['SECOND', 'FIRST']", "Monitor FIRST True"]
