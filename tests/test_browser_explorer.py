"""The explorer map where people see it: a Voila page in headless Chromium, light and dark.

Zooming, panning and changing the stretch change the overlay's pixels; the split shows different
layers either side, each labelled; a click shows the value rasterio reads at that point; the page
submits nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import rasterio
from browser import ARTIFACTS, chromium_page, needs_chromium, serving, voila_server, write_dems
from rasterio.warp import transform

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


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_example_explorer_page_in_condormagic_voila(tmp_path, theme):
    """examples/explorer.ipynb as viewers see it: no code, the map, RGB and classes legends; pan, zoom,
    stretch and split work; nothing is submitted."""
    for name in ("explorer.ipynb", "make_s2_data.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    command = os.path.join(os.path.dirname(sys.executable), "condormagic")
    argv = lambda port: [command, "voila", "explorer.ipynb", "--port", str(port), "--theme", theme]  # noqa: E731
    runs = tmp_path / "runs"
    suffix = "" if theme == "light" else f"-{theme}"
    with serving(argv, tmp_path, runs, {"CONDORMAGIC_DEMO_SIZE": "256"}, "voila.log") as url:
        with chromium_page(1200, 1000) as page:
            page.goto(url, timeout=180_000)
            page.wait_for_selector(".cm-explorer-status:not([data-renders='0'])", timeout=180_000)
            text = page.inner_text("body")
            for code in ("def ndvi_change", "cm.explore", "make_s2_data", "import"):
                assert code not in text, code
            assert page.locator(".cm-legend[data-side='left'][data-kind='rgb']").count() == 1  # August in RGB
            assert "NDVI" in page.inner_text(".cm-legend[data-side='right']")  # the change, with its units
            right = src(page, RIGHT)
            page.click(".leaflet-control-zoom-in")
            right = wait_for_change(page, RIGHT, right)
            page.select_option(".cm-control-stretch select", label="mean ± N std")
            right = wait_for_change(page, RIGHT, right)
            left = src(page, LEFT)
            page.select_option(".cm-control-left select", label="scl")
            wait_for_change(page, LEFT, left)
            page.wait_for_selector(".cm-legend[data-side='left'][data-kind='classes']", timeout=30_000)
            assert "vegetation" in page.inner_text(".cm-legend[data-side='left']")
            page.wait_for_timeout(500)
            page.locator(".cm-explorer").screenshot(path=str(ARTIFACTS / f"explorer-example{suffix}.png"))
    assert not runs.exists() or not any(runs.iterdir()), "the page made a run"
