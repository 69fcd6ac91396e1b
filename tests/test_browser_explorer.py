"""The explorer map where people see it: a Voila page in headless Chromium, light and dark.

Zooming, panning and changing the stretch change the overlay's pixels; the split shows different
layers either side, each labelled; a click shows the value rasterio reads at that point; the page
submits nothing. The Collections Explorer example (examples/explorer.ipynb, served by ``condormagic
voila``): the date slider, a scene picked in the scene table (the overlay is that scene as rasterio
warps it), the classes of the scene classification, and the time series at a clicked point.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import rasterio
from browser import ARTIFACTS, chromium_page, needs_chromium, serving, voila_server, write_dems
from rasterio.warp import transform

import condormagic as cm

pytestmark = needs_chromium

NOTEBOOK = """import condormagic as cm
src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=300)
def change(img):
    return img["dem2"] - img["dem1"]
explorer = cm.explore(src, change)
explorer"""

LEFT = ".leaflet-cmLeft-pane img.leaflet-image-layer"
RIGHT = ".leaflet-cmRight-pane img.leaflet-image-layer"


@pytest.fixture(params=["light", "dark"])
def page(request, tmp_path):
    write_dems(tmp_path)
    with voila_server(tmp_path, NOTEBOOK, request.param) as url:
        with chromium_page(1200, 900) as page:
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".cm-explorer-status:not([data-renders='0'])", timeout=90_000)
            yield page, tmp_path, request.param, requests
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "the page made a run"


def renders(page) -> int:
    return int(page.get_attribute(".cm-explorer-status", "data-renders"))


def src(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.src")


def wait_for_change(page, selector: str, before: str, timeout: int = 30_000) -> str:
    page.wait_for_function(
        "([sel, before]) => { const e = document.querySelector(sel); return e && e.src !== before; }",
        arg=[selector, before],
        timeout=timeout,
    )
    page.wait_for_timeout(300)  # a render may have been followed by another of the settled view
    return src(page, selector)


def map_box(page) -> dict:
    return page.locator(".cm-explorer .leaflet-container").bounding_box()


def test_zoom_pan_stretch_split_and_inspect(page):
    page, folder, theme, requests = page
    suffix = "" if theme == "light" else f"-{theme}"
    ARTIFACTS.mkdir(exist_ok=True)
    # first view: fitted, both sides drawn and labelled, a legend each, nothing fetched from outside
    left, right = src(page, LEFT), src(page, RIGHT)
    assert left.startswith("data:image/png") and right.startswith("data:image/png") and left != right
    assert page.inner_text(".cm-side-label[data-side='left']").strip().endswith("dem1")
    assert "change" in page.inner_text(".cm-side-label[data-side='right']")
    assert page.locator(".cm-legend[data-side='right'][data-kind='diverging']").count() == 1
    assert page.locator(".cm-legend[data-side='left'] .cm-colorbar").count() == 1
    box = map_box(page)
    image = page.locator(LEFT).bounding_box()
    assert abs(image["x"] + image["width"] / 2 - (box["x"] + box["width"] / 2)) < 2
    page.screenshot(path=str(ARTIFACTS / f"explorer{suffix}.png"))
    outside = [u for u in requests if not u.startswith(("http://127.0.0.1", "data:"))]
    assert not [u for u in outside if "tile" in u or "openstreetmap" in u], outside

    # zoom in: the kernel renders the new view
    n = renders(page)
    page.click(".leaflet-control-zoom-in")
    zoomed = wait_for_change(page, RIGHT, right)
    assert renders(page) > n

    # pan: drag the map (above the split slider, which lies across the middle)
    y = box["y"] + box["height"] * 0.25
    page.mouse.move(box["x"] + box["width"] * 0.7, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * 0.7 - 20 * step, y + 5 * step)
    page.mouse.up()
    panned = wait_for_change(page, RIGHT, zoomed)
    assert panned != zoomed

    # a stretch on the right-hand layer (the controls edit the "change" layer first)
    lo_before = page.inner_text(".cm-legend[data-side='right'] .cm-lo")
    page.select_option(".cm-control-stretch select", label="min-max")
    stretched = wait_for_change(page, RIGHT, panned)
    assert stretched != panned
    assert page.inner_text(".cm-legend[data-side='right'] .cm-lo") != lo_before

    # another layer on the left: its pixels and its label change, the right side's stay
    left_now = src(page, LEFT)
    page.select_option(".cm-control-left select", label="dem2")
    wait_for_change(page, LEFT, left_now)
    assert page.inner_text(".cm-side-label[data-side='left']").strip().endswith("dem2")
    assert src(page, LEFT) != src(page, RIGHT)

    # the pixel inspector: the value rasterio reads where the click landed
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.7)
    page.wait_for_selector(".cm-inspector tr[data-layer='dem1']", timeout=30_000)
    lat = float(page.get_attribute(".cm-inspector", "data-lat"))
    lon = float(page.get_attribute(".cm-inspector", "data-lon"))
    shown = {}
    for name in ("dem1", "dem2"):
        value = page.get_attribute(f".cm-inspector tr[data-layer='{name}']", "data-value")
        shown[name] = float(value)
    for name in ("dem1", "dem2"):
        with rasterio.open(folder / f"{name}.tif") as ds:
            (x,), (y,) = transform("EPSG:4326", ds.crs, [lon], [lat])
            expected = float(next(ds.sample([(x, y)]))[0])
        assert shown[name] == expected, name
    change = float(page.get_attribute(".cm-inspector tr[data-layer='change']", "data-value"))
    assert change == pytest.approx(shown["dem2"] - shown["dem1"], abs=1e-4)
    assert re.search(r"\d+\.\d+°N", page.inner_text(".cm-inspector"))
    page.screenshot(path=str(ARTIFACTS / f"explorer-inspected{suffix}.png"))


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_SIZE = "256"


@pytest.fixture(scope="module")
def composite_folder(tmp_path_factory):
    """A folder with the example catalog and the NDVI composite run, made by composite.ipynb in a kernel."""
    import nbformat
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("collections-explorer")
    for name in ("explorer.ipynb", "composite.ipynb", "make_s2_data.py"):
        shutil.copy(EXAMPLES / name, folder / name)
    env = {
        "CONDORMAGIC_RUNS_DIR": str(folder / "runs"),
        "CONDORMAGIC_BACKEND": "local",
        "CONDORMAGIC_DEMO_SIZE": DEMO_SIZE,
    }
    nb = nbformat.read(folder / "composite.ipynb", as_version=4)
    with mock.patch.dict(os.environ, env):
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return folder


def runs_of(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "runs").iterdir())


def decode_png(url: str):
    from test_explorer import decode

    return decode(url)


def shown_view(page):
    """The view the kernel last rendered (the status says it): a View."""
    from condormagic.display.explorer.view import View

    *bounds, width, height = page.get_attribute(".cm-explorer-status", "data-view").split(",")
    return View(tuple(float(v) for v in bounds), int(width), int(height))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_collections_explorer_page_in_condormagic_voila(composite_folder, theme):
    """examples/explorer.ipynb as viewers see it: no code; the scenes of a date in RGB beside the composite run;
    the date slider, a scene picked in the table (the overlay is that scene alone, as rasterio warps it), the
    classes of SCL, and a click's time series; nothing is submitted."""
    from test_explorer_collections import independent, sample, stretched

    folder = composite_folder
    before = runs_of(folder)
    command = os.path.join(os.path.dirname(sys.executable), "condormagic")
    argv = lambda port: [command, "voila", "explorer.ipynb", "--port", str(port), "--theme", theme]  # noqa: E731
    suffix = "" if theme == "light" else f"-{theme}"
    s2 = cm.collection(
        str(folder / "data" / "s2" / "catalog.json"),
        bands=["B04", "B03", "B02", "B08", "SCL"],
        datetime="2020-08-01/2020-10-31",
        max_cloud=70,
        group_by="solar_day",
    )
    dates = [str(t)[:10] for t in s2.times]
    with serving(argv, folder, folder / "runs", {"CONDORMAGIC_DEMO_SIZE": DEMO_SIZE}, "voila.log") as url:
        with chromium_page(1200, 1300) as page:
            page.goto(url, timeout=180_000)
            page.wait_for_selector(".cm-explorer-status:not([data-renders='0'])", timeout=180_000)
            text = page.inner_text("body")
            for code in ("def composite", "cm.explore", "make_s2_data", "import", "%%condor"):
                assert code not in text, code
            assert "not been computed" not in text
            # the scenes of the first date in RGB on the left, the composite on the right
            page.wait_for_selector(".cm-legend[data-side='left'][data-kind='rgb']", timeout=30_000)
            assert dates[0] in page.inner_text(".cm-legend[data-side='left']")
            assert "NDVI_2020" in page.inner_text(".cm-side-label[data-side='right']")
            assert "ndvi_median" in page.inner_text(".cm-legend[data-side='right']")
            # the scene table: every scene of the collection, with its cloud cover
            rows = page.locator(".cm-scenes tr.cm-scene")
            assert rows.count() == len(s2.items)
            assert page.locator(".cm-scenes tr.cm-scene-date").count() == len(s2.steps[0].items)

            # the date slider of the scenes' layer: another date, other pixels, its date on the legend
            page.select_option(".cm-control-layer select", label="s2")
            # the kernel gives the slider s2's dates: move it only once it shows them, as a person would
            page.wait_for_function(
                "d => { const r = document.querySelector('.cm-control-time .widget-readout');"
                " return r && r.offsetParent !== null && r.innerText.includes(d); }",
                arg=dates[0],
                timeout=30_000,
            )
            left = src(page, LEFT)
            page.focus(".cm-control-time .noUi-handle")
            page.keyboard.press("ArrowRight")
            left = wait_for_change(page, LEFT, left)
            page.wait_for_function(
                "d => document.querySelector(\".cm-legend[data-side='left']\").innerText.includes(d)", arg=dates[1]
            )
            assert page.locator(".cm-scenes tr.cm-scene-date").count() == len(s2.steps[1].items)

            # a scene picked in the table (sorted by cloud cover, the cloudiest): that scene alone on the left
            page.click(".cm-scenes th[data-pick='sort:cloud']")
            page.click(".cm-scenes th[data-pick='sort:cloud']")
            page.wait_for_selector(".cm-scenes th[aria-sort='descending']")
            cloudiest = max(s2.items, key=lambda i: i.properties["eo:cloud_cover"])
            assert page.get_attribute(".cm-scenes tr.cm-scene >> nth=0", "data-id") == cloudiest.id
            page.click(f".cm-scenes tr[data-id='{cloudiest.id}']")
            left = wait_for_change(page, LEFT, left)
            page.wait_for_selector(f".cm-scenes tr[data-id='{cloudiest.id}'][aria-selected='true']")
            assert cloudiest.id in page.inner_text(".cm-legend[data-side='left']")
            view = shown_view(page)
            expected = stretched(independent([cloudiest], ["B04", "B03", "B02"], view))
            np.testing.assert_array_equal(decode_png(left), expected)
            page.wait_for_timeout(300)
            page.locator(".cm-explorer").screenshot(path=str(ARTIFACTS / f"explorer-scene{suffix}.png"))

            # the scene classification of that scene, with its classes
            page.click(".cm-control-mode button:has-text('one band')")
            page.select_option(".cm-control-band select", label="SCL")
            page.wait_for_selector(".cm-legend[data-side='left'][data-kind='classes']", timeout=30_000)
            assert "vegetation" in page.inner_text(".cm-legend[data-side='left']")

            # a click on the map: every layer's value there, and the scenes' time series
            box = map_box(page)
            page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
            page.wait_for_selector(".cm-inspector .cm-series-chart", timeout=30_000)
            lat = float(page.get_attribute(".cm-inspector", "data-lat"))
            lon = float(page.get_attribute(".cm-inspector", "data-lon"))
            cells = page.locator(".cm-series rect[data-band='SCL']")
            assert cells.count() == len(dates)
            for t, step in enumerate(s2.steps):
                found = [v for v in (sample(item, "SCL", lat, lon) for item in step.items) if v is not None]
                cell = page.locator(f".cm-series rect[data-time='{dates[t]}']")
                assert cell.get_attribute("data-value") == (repr(found[0]) if found else ""), dates[t]
            assert page.locator(".cm-inspector tr[data-layer='NDVI_2020'][data-band='ndvi_median']").count() == 1
            page.wait_for_timeout(300)
            page.locator(".cm-explorer").screenshot(path=str(ARTIFACTS / f"explorer-example{suffix}.png"))
    assert runs_of(folder) == before, "the page made a run"
