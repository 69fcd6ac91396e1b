"""The example notebooks, executed through a real kernel (nbclient) on the local backend, on small data.

Also the dashboard mode of %%condor through a kernel (CONDORMAGIC_DASHBOARD=1 stands for Voila's
environment): it attaches, never submits, and says "not computed yet" when there is no run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from unittest import mock

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def execute(folder: Path, name: str, **env) -> nbformat.NotebookNode:
    nb = nbformat.read(folder / name, as_version=4)
    base = {"CONDORMAGIC_RUNS_DIR": str(folder / "runs"), "CONDORMAGIC_BACKEND": "local"}
    with mock.patch.dict(os.environ, {**base, **env}):
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def outputs(nb, kind: str = "text/plain") -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                parts.append(out.data.get(kind, ""))
    return "\n".join(parts)


def copy(folder: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def runs_in(folder: Path) -> list[str]:
    runs = folder / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []


def test_air_quality_notebook_maps_the_change_and_charts_it_per_region(tmp_path):
    folder = copy(tmp_path, "air_quality.ipynb", "make_air_quality_data.py")
    nb = execute(folder, "air_quality.ipynb", CONDORMAGIC_DEMO_SIZE="240")
    import condormagic as cm

    with mock.patch.dict(os.environ, {"CONDORMAGIC_RUNS_DIR": str(folder / "runs")}):
        run = cm.run("NO2_LOCKDOWN")
        import rasterio

        with rasterio.open(run.output) as out:
            assert out.count == 1 and out.dtypes[0] == "float32" and out.crs.to_epsg() == 4326
    import sys

    sys.path.insert(0, str(folder))
    from make_air_quality_data import REGIONS

    changes = {}
    for region, (name, *_) in REGIONS.items():
        before, after = run.metrics.get(f"before_{region}", 0), run.metrics.get(f"after_{region}", 0)
        if before > 0:
            changes[name] = 100 * (after - before) / before
    assert len(changes) >= 10, changes
    assert changes["Italy"] < -15 and changes["Spain"] < -15  # the strictest lockdowns
    assert changes["Italy"] < changes["Germany"] < changes["Sweden & Norway"] < 5
    # The chart: one bar per region labelled with its change rounded, never "-0%"; no text table
    # printed under it (the table is only its text/plain, for where HTML cannot be shown).
    chart = nb.cells[8]
    (shown,) = [o for o in chart.outputs if o.output_type == "display_data"]
    assert not [o for o in chart.outputs if o.output_type == "stream"]
    labels = re.findall(r'text-anchor="(?:start|end)">([^<]*%)</text>', shown.data["text/html"])
    assert sorted(labels) == sorted((f"{round(v):+d}%" if round(v) else "0%") for v in changes.values())
    assert "-0%" not in shown.data["text/html"] + shown.data["text/plain"]
    assert "Italy" in shown.data["text/plain"]
    # The run's card: the 2 x 14 metrics as one table, a column per prefix, regions in natural order.
    card = next(o.data["text/html"] for o in nb.cells[7].outputs if "text/html" in o.get("data", {}))
    table = re.search(r'<table class="cm-metric-table".*?</table>', card, re.S)[0]
    assert re.findall(r"<th[^>]*>(\w+)</th>", table) == ["before", "after"]
    rows = [int(r) for r in re.findall(r'data-metric="(\d+)"', card)]
    assert rows == sorted(rows) and len(rows) == len(changes)


def test_composite_notebook_maps_a_cloud_free_ndvi_over_both_zones_and_charts_clear_dates(tmp_path):
    folder = copy(tmp_path, "composite.ipynb", "make_s2_data.py")
    nb = execute(folder, "composite.ipynb", CONDORMAGIC_DEMO_SIZE="128")
    text = outputs(nb)
    assert not any(o.output_type == "error" for c in nb.cells for o in c.get("outputs", [])), text
    assert "EPSG:32632, EPSG:32633" in text  # the collection spans both zones
    shares = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(2020-\d\d-\d\d)\s+([\d.]+)% clear", text, re.M)}
    catalog = json.loads((folder / "data" / "s2" / "catalog.json").read_text())
    covers: dict[str, list[float]] = {}
    for link in catalog["links"]:
        if link["rel"] == "item":
            item = json.loads((folder / "data" / "s2" / link["href"]).read_text())
            covers.setdefault(item["properties"]["datetime"][:10], []).append(item["properties"]["eo:cloud_cover"])
    kept = sorted(day for day, c in covers.items() if min(c) <= 70)  # --max-cloud 70 keeps items, not passes
    assert sorted(shares) == kept and len(kept) >= 8
    # the clearest and the cloudiest passes, by the catalog's own cloud cover, agree with the chart
    by_cover = sorted(kept, key=lambda d: sum(covers[d]))
    assert shares[by_cover[0]] > 85 and shares[by_cover[-1]] < shares[by_cover[0]] - 20
    assert '<svg class="cm-chart"' in outputs(nb, "text/html")
    assert "bands: ['ndvi_median', 'clear_count']" in text
    import condormagic as cm

    with mock.patch.dict(os.environ, {"CONDORMAGIC_RUNS_DIR": str(folder / "runs")}):
        run = cm.run("NDVI_2020")
        import rasterio

        with rasterio.open(run.output) as out:
            assert out.descriptions == ("ndvi_median", "clear_count") and out.crs.to_epsg() == 32632
            ndvi = out.read(1)
        valid = ndvi[np.isfinite(ndvi)]
        assert valid.size > 0.8 * ndvi.size and 0.3 < np.median(valid) < 0.9  # a green valley in August


@pytest.fixture(scope="module")
def deforested(tmp_path_factory):
    """deforestation.ipynb executed on 512-pixel rasters: a folder with data/ and one run."""
    folder = copy(tmp_path_factory.mktemp("examples"), "deforestation.ipynb", "dashboard.ipynb")
    shutil.copy(EXAMPLES / "make_deforestation_data.py", folder)
    nb = execute(folder, "deforestation.ipynb", CONDORMAGIC_DEMO_SIZE="512")
    assert "Deforestation inside the forest polygons" in outputs(nb)
    assert len(runs_in(folder)) == 1
    return folder


def test_dashboard_notebook_runs_in_a_kernel_and_attaches_to_the_deforestation_run(deforested):
    before = runs_in(deforested)
    nb = execute(deforested, "dashboard.ipynb")
    html = outputs(nb, "text/html")
    assert re.search(r'class="cm-headline".*?\d+\.\d%', html, re.S)
    assert "Attached to run DEFORESTATION" in outputs(nb)
    assert runs_in(deforested) == before


def test_dashboard_mode_attaches_and_never_submits(deforested, tmp_path):
    before = runs_in(deforested)
    nb = execute(deforested, "dashboard.ipynb", CONDORMAGIC_DASHBOARD="1")
    text, html = outputs(nb), outputs(nb, "text/html")
    assert "Attached" not in text and "not been computed" not in html
    assert re.search(r'class="cm-headline".*?\d+\.\d%', html, re.S)
    assert runs_in(deforested) == before
    # the same page with no run anywhere: one friendly sentence, nothing created
    empty = tmp_path / "runs"
    nb = execute(deforested, "dashboard.ipynb", CONDORMAGIC_DASHBOARD="1", CONDORMAGIC_RUNS_DIR=str(empty))
    html = outputs(nb, "text/html")
    assert html.count("These results have not been computed yet.") == 1
    assert not any(o.output_type == "error" for c in nb.cells for o in c.get("outputs", []))
    assert not empty.exists()


def test_dashboard_mode_submits_only_when_the_author_allows_it(deforested, tmp_path):
    nb = nbformat.read(deforested / "dashboard.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("%%condor"))
    first, rest = cell.source.split("\n", 1)
    cell.source = first + " --allow-dashboard-submit --wait\n" + rest
    nbformat.write(nb, deforested / "allowed.ipynb")
    runs = tmp_path / "runs"
    nb = execute(deforested, "allowed.ipynb", CONDORMAGIC_DASHBOARD="1", CONDORMAGIC_RUNS_DIR=str(runs))
    assert len(list(runs.iterdir())) == 1
    assert re.search(r'class="cm-headline".*?\d+\.\d%', outputs(nb, "text/html"), re.S)


def test_dashboard_views_have_no_steering_buttons(deforested):
    import ipywidgets as widgets

    import condormagic as cm
    from condormagic.display.readonly import dashboard_view, read_only_monitor

    def buttons(widget) -> list[str]:
        found = [widget.description] if isinstance(widget, widgets.Button) else []
        for child in getattr(widget, "children", ()):
            found += buttons(child)
        return found

    with mock.patch.dict(os.environ, {"CONDORMAGIC_RUNS_DIR": str(deforested / "runs")}):
        run = cm.run("DEFORESTATION")
        assert buttons(dashboard_view(run)) == ["fit"]  # the result map's "show all"; no steering
        monitor = read_only_monitor(run)
        try:
            assert not {"remove", "hold", "release", "retry failed"} & set(buttons(monitor))
            with pytest.raises(PermissionError):
                monitor.act("remove")
            assert monitor.remove_button.comm is None  # closed: the page cannot click it
        finally:
            monitor.stop()
        assert "remove" in buttons(dashboard_view(run, actions=True))


def test_runs_dashboard_under_voila_opens_read_only_monitors(deforested):
    import ipywidgets as widgets

    import condormagic as cm

    env = {"CONDORMAGIC_RUNS_DIR": str(deforested / "runs"), "CONDORMAGIC_DASHBOARD": "1"}
    with mock.patch.dict(os.environ, env):
        board = cm.dashboard()
        monitor = board.show_run(board.runs[0].id)
        try:
            assert "cm-read-only" in monitor._dom_classes
            shown = [w for w in monitor.children if isinstance(w, widgets.Box)]
            assert all(monitor.remove_button not in box.children for box in shown)
        finally:
            monitor.stop()


def test_steering_magics_do_nothing_under_voila(deforested):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(c)
            for c in ("%load_ext condormagic", "%condor_rm DEFORESTATION", "%condor_retry DEFORESTATION")
        ]
    )
    nbformat.write(nb, deforested / "steer.ipynb")
    before = (deforested / "runs").stat().st_mtime_ns, sorted(p.name for p in (deforested / "runs").rglob("*"))
    nb = execute(deforested, "steer.ipynb", CONDORMAGIC_DASHBOARD="1")
    assert [o for c in nb.cells[1:] for o in c.outputs] == []
    assert before == (
        (deforested / "runs").stat().st_mtime_ns,
        sorted(p.name for p in (deforested / "runs").rglob("*")),
    )
