"""Collections through a real kernel (nbclient): ``%condor_sources NAME=stac:...``, its help, its
one-line errors, and the job graph listing the items each job reads."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from kernel import execute, usage_error
from kernel import text_of as text

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "make_s2_data.py"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder with the example catalog at 96 pixels in data/s2/."""
    spec = importlib.util.spec_from_file_location("make_s2_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("magics")
    module.make(root / "data" / "s2", size=96)
    return root


def html(cell) -> str:
    return "".join(o.data.get("text/html", "") for o in cell.outputs if "data" in o)


SOURCES = (
    "%condor_sources s2=stac:data/s2/catalog.json --bands s2=B04,B08,SCL --datetime 2020-08-01/2020-09-30 "
    "--max-cloud 30 --group-by solar_day --crs EPSG:32632 --res 20 --tile 32"
)
FUNCTION = """%%condor --dry-run --name NDVI --tiles-per-job 1
def ndvi(img):
    s2 = img["s2"].astype("float32")
    return np.nanmedian((s2[:, 1] - s2[:, 0]) / (s2[:, 1] + s2[:, 0] + 1e-6), axis=0)"""
VIEW = """from ipywidgets.widgets import widget
from condormagic.display.graphview import GraphView
v = [w for w in widget._instances.values() if isinstance(w, GraphView)][-1]
import re
def scenes(v):
    return re.findall(r'class="cm-scene" data-item="([^"]+)"', v.inputs.value)
first = scenes(v)
v.select(v.n_jobs - 1)
last = scenes(v)
print(json.dumps([v.n_jobs, first, last, "B04.tif" in v.inputs.value, "reads " in v.inputs.value]))"""


def test_condor_sources_declares_a_stac_collection_and_the_graph_lists_each_jobs_items(folder, tmp_path):
    env = {"CONDORMAGIC_RUNS_DIR": str(tmp_path / "runs"), "CONDORMAGIC_BACKEND": "local"}
    cells = execute(
        folder,
        [
            "%load_ext condormagic",
            "import json, numpy as np",
            SOURCES,
            "with_overviews = get_ipython().magics_manager.registry['CondorMagics'].sources",
            FUNCTION,
            VIEW,
            "print(get_ipython().find_line_magic('condor_sources').__doc__)",  # what %condor_sources? pages
            SOURCES + " --no-overviews",
            LEVELS,
        ],
        env,
    ).cells
    load, _, declared, _, dry, view, help_, full, levels = cells
    shown = text(declared)
    assert "s2" in shown and "EPSG:32632, EPSG:32633" in shown and "B04, B08, SCL" in shown, shown
    # the catalog's own properties say which items are left, and how many passes
    catalog = folder / "data" / "s2"
    kept = []
    for path in sorted(catalog.glob("*/*.json")):
        item = json.loads(path.read_text())
        day = item["properties"]["datetime"][:10]
        if "2020-08-01" <= day <= "2020-09-30" and item["properties"]["eo:cloud_cover"] <= 30:
            kept.append(item["id"])
    days = {i.split("_")[2] for i in kept}
    assert f"({len(kept)} items, {len(days)} time steps)" in shown, shown
    assert "Job#0" in html(dry) and "cm-scene" in html(dry)  # the HTML fallback lists items too
    n_jobs, first, last, files, reads = json.loads(text(view).strip().splitlines()[-1])
    assert files and reads and n_jobs >= 4
    assert set(first) <= set(kept) and set(last) <= set(kept)
    # the grid's west edge is in zone 32, its east edge in zone 33: the first and last jobs read different granules
    assert {i[4:9] for i in first} == {"32TQS"} and {i[4:9] for i in last} == {"33TTM"}
    helped = text(help_)
    for needle in ("NAME=stac:CATALOG", "--bands NAME=B1,B2", "--datetime", "--max-cloud", "--group-by", "solar_day"):
        assert needle in helped, helped
    # the 10 m bands are read from their 2x overviews on the 20 m grid, unless --no-overviews says otherwise
    assert "--no-overviews" in helped and "gdalwarp -ovr AUTO" in helped
    assert "from their 2x overviews" in shown and "overviews" not in text(full), text(full)
    flags, first_levels, last_levels = json.loads(text(levels).strip().splitlines()[-1])
    assert flags == [True, False] and set(first_levels) == {None, 0} and set(last_levels) == {None}


LEVELS = """m = get_ipython().magics_manager.registry["CondorMagics"]
def levels(src):
    return sorted({a.get("overview") for i in src["s2"].to_dict()["items"] for a in i["assets"]}, key=str)
print(json.dumps([[with_overviews.overviews, m.sources.overviews], levels(with_overviews), levels(m.sources)]))"""


def test_bad_collections_are_one_line_usage_errors(folder, tmp_path):
    env = {"CONDORMAGIC_RUNS_DIR": str(tmp_path / "runs"), "CONDORMAGIC_BACKEND": "local"}
    cells = execute(
        folder,
        [
            "%load_ext condormagic",
            "%condor_sources s2=stac:data/s2/missing.json --crs EPSG:32632 --res 20",
            "%condor_sources s2=stac:data/s2/catalog.json --bands s2=B04,B99 --crs EPSG:32632 --res 20",
            "%condor_sources s2=stac:data/s2/catalog.json --datetime 2019-01-01/2019-02-01 --crs EPSG:32632 --res 20",
            "%condor_sources s2=stac:data/s2/catalog.json --bands dem=B04 --crs EPSG:32632 --res 20",
            "%condor_sources s2=stac:data/s2/catalog.json",
        ],
        env,
    ).cells
    _, missing, band, dates, wrong_name, no_grid = cells
    assert "missing.json does not exist" in usage_error(missing)
    assert "Band 'B99' is missing from 24 of the 24 items" in usage_error(band)
    assert "after the datetime filter 2019-01-01/2019-02-01" in usage_error(dates)
    assert "dem is not a collection" in usage_error(wrong_name)
    assert "needs a grid" in usage_error(no_grid)
    assert not (tmp_path / "runs").exists()
