"""The monitor where people see it: a Voila server on loopback, loaded in headless Chromium (Playwright)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import rasterio
from nbformat.v4 import new_code_cell, new_notebook
from rasterio.transform import from_origin

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium")

NOTEBOOK = """import condormagic as cm
from condormagic.widgets.monitor import Monitor
src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=300)
def change(img):
    print("hello from the tile at", img.window.row_off, img.window.col_off)
    return img["dem2"] - img["dem1"]
run = cm.submit(change, src, cpus=1, mem="500MB", name="BROWSER", tiles_per_job=1)
monitor = Monitor(run, interval=0.5)
monitor"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila(tmp_path):
    rng = np.random.default_rng(3)
    for name in ("dem1", "dem2"):
        array = rng.normal(200, 8, (450, 610)).astype("float32")
        profile = dict(driver="GTiff", width=610, height=450, count=1, dtype="float32", crs="EPSG:32633")
        profile["transform"] = from_origin(500000, 5000000, 30, 30)
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
            dst.write(array, 1)
    nbformat.write(new_notebook(cells=[new_code_cell(NOTEBOOK)]), tmp_path / "notebook.ipynb")
    port = free_port()
    env = {**os.environ, "CONDORMAGIC_RUNS_DIR": str(tmp_path / "runs"), "CONDORMAGIC_BACKEND": "local"}
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen(
        [os.path.join(bindir, "voila"), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", "notebook.ipynb"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    try:
        yield f"http://127.0.0.1:{port}/", tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_monitor_in_voila_shows_every_job_completed_logs_and_the_map(voila):
    from playwright.sync_api import sync_playwright

    url, folder = voila
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
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
            jobs = page.locator("select").filter(has_text="pick a job")
            jobs.select_option(label="Job#0 · completed")
            stdout = page.locator("pre.cm-stdout")
            stdout.wait_for(timeout=30_000)
            assert "hello from the tile at 0 0" in stdout.inner_text()
            page.locator(".leaflet-container").wait_for(timeout=60_000)
            page.locator(".leaflet-container").scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.locator(".cm-monitor").screenshot(path=str(ARTIFACTS / "monitor.png"))
            page.locator(".leaflet-container").screenshot(path=str(ARTIFACTS / "map.png"))
            assert page.locator(".leaflet-image-layer").count() >= 1
            assert page.locator(".leaflet-sbs-range").count() == 1  # the split control's slider
        finally:
            browser.close()
