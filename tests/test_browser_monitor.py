"""The monitor where people see it: a Voila server on loopback, loaded in headless Chromium (Playwright)."""

from __future__ import annotations

import pytest
import rasterio
from browser import ARGS, ARTIFACTS, CHROMIUM, chromium_page, free_port, needs_chromium, voila_server, write_dems

__all__ = ["ARGS", "ARTIFACTS", "CHROMIUM", "free_port"]  # also used by the other browser tests

pytestmark = needs_chromium

NOTEBOOK = """import condormagic as cm
from condormagic.display.monitor import Monitor
cm.configure(dashboard_submit=True)  # this page submits its own run, as a test
src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=300)
def change(img):
    print("hello from the tile at", img.window.row_off, img.window.col_off)
    return img["dem2"] - img["dem1"]
run = cm.submit(change, src, cpus=1, mem="500MB", name="BROWSER", tiles_per_job=1)
monitor = Monitor(run, interval=0.5)
monitor"""


@pytest.fixture(params=["light", "dark"])
def voila(request, tmp_path):
    write_dems(tmp_path)
    with voila_server(tmp_path, NOTEBOOK, request.param) as url:
        yield url, request.param


def test_monitor_in_voila_shows_every_job_completed_logs_and_the_map(voila):
    url, theme = voila
    suffix = "" if theme == "light" else f"-{theme}"
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.goto(url, timeout=120_000)
        tiles = page.locator('svg.cm-tilemap rect[data-state="completed"]')
        page.wait_for_function(
            "document.querySelectorAll('svg.cm-tilemap rect.cm-tile').length > 0 && "
            "document.querySelectorAll('svg.cm-tilemap rect.cm-tile').length === "
            "document.querySelectorAll('svg.cm-tilemap rect[data-state=\"completed\"]').length",
            timeout=180_000,
        )
        n_tiles = page.locator("svg.cm-tilemap rect.cm-tile").count()
        assert n_tiles == 6 and tiles.count() == 6  # one job per tile here
        assert "completed <b>6</b>" in page.locator(".cm-progress").inner_html()
        page.locator('table.cm-jobs tr[data-job="0"]').click()  # a row opens its job's log
        stdout = page.locator("pre.cm-stdout")
        stdout.wait_for(timeout=30_000)
        assert "[tile 0] hello from the tile at 0 0" in stdout.inner_text()
        page.locator(".leaflet-container").wait_for(timeout=60_000)
        page.locator(".leaflet-container").scroll_into_view_if_needed()
        # the map fits itself to the image once shown: wait for the image to sit in the middle
        page.wait_for_function(
            """() => {
                const map = document.querySelector('.leaflet-container').getBoundingClientRect();
                const img = document.querySelector('.leaflet-image-layer');
                if (!img) return false;
                const r = img.getBoundingClientRect();
                const dx = Math.abs(r.x + r.width / 2 - (map.x + map.width / 2));
                const dy = Math.abs(r.y + r.height / 2 - (map.y + map.height / 2));
                return dx < map.width * 0.05 && dy < map.height * 0.05 && r.height > map.height * 0.6;
            }""",
            timeout=30_000,
        )
        page.wait_for_timeout(500)
        page.locator(".cm-monitor").screenshot(path=str(ARTIFACTS / f"monitor{suffix}.png"))
        page.locator(".leaflet-container").screenshot(path=str(ARTIFACTS / f"map{suffix}.png"))
        assert page.locator(".leaflet-image-layer").count() == 2  # the input and the output
        assert page.locator(".leaflet-sbs-range").count() == 1  # the split control's slider
        # Each image lies in the map's viewport with a real size, in its own (clipped) pane.
        box = page.locator(".leaflet-container").bounding_box()
        for pane in (".leaflet-cmLeft-pane", ".leaflet-cmRight-pane"):
            img = page.locator(f"{pane} img.leaflet-image-layer").bounding_box()
            assert img and img["width"] > 50 and img["height"] > 50, pane
            assert img["x"] < box["x"] + box["width"] and img["x"] + img["width"] > box["x"], pane
            assert img["y"] < box["y"] + box["height"] and img["y"] + img["height"] > box["y"], pane
        divider = page.locator(".leaflet-sbs-divider").bounding_box()
        split = round(divider["x"] + divider["width"] / 2 - box["x"])
    # What the user sees: colour (the quicklooks' ramp) on both sides of the divider, not the
    # blank grey base (no tiles offline). The bug showed the input nowhere and the output only
    # right of the divider.
    with rasterio.open(ARTIFACTS / f"map{suffix}.png") as png:
        rgb = png.read()[:3].astype(int)
    coloured = (rgb.max(axis=0) - rgb.min(axis=0)) > 40
    left, right = coloured[:, max(0, split - 150) : split - 5], coloured[:, split + 5 : split + 150]
    assert left.mean() > 0.3 and right.mean() > 0.3, (left.mean(), right.mean())
    # and the map is fitted to the image: coloured across the middle of the map
    rows, cols = coloured.shape
    assert coloured[rows // 2 - 20 : rows // 2 + 20, cols // 2 - 40 : cols // 2 + 40].mean() > 0.5
