"""examples/dashboard.ipynb as the public sees it: Voila with the condormagic template, in headless Chromium.

The deforestation example runs first (nbclient, local backend, small rasters); the dashboard
then attaches to its run on every page load and creates nothing. With no run, the page says so
in one sentence.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from browser import ARGS, ARTIFACTS, CHROMIUM, serving
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZE = "512"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A copy of the examples where deforestation.ipynb has run: data/ and runs/ with one run."""
    folder = tmp_path_factory.mktemp("dashboard")
    for name in ("deforestation.ipynb", "dashboard.ipynb", "make_deforestation_data.py"):
        shutil.copy(EXAMPLES / name, folder / name)
    env = {"CONDORMAGIC_RUNS_DIR": str(folder / "runs"), "CONDORMAGIC_BACKEND": "local", "CONDORMAGIC_DEMO_SIZE": SIZE}
    with mock.patch.dict(os.environ, env):
        nb = nbformat.read(folder / "deforestation.ipynb", as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return folder


def run_dirs(runs: Path) -> dict[str, int]:
    """Each run directory and how many jobs were ever submitted in it."""
    if not runs.exists():
        return {}
    out = {}
    for run in runs.iterdir():
        clusters = run / "clusters"
        out[run.name] = sum(len(json.loads(p.read_text())["jobs"]) for p in clusters.glob("*.json"))
    return out


def condormagic_voila(folder: Path, runs: Path, log_name: str):
    """``condormagic voila dashboard.ipynb`` on a free loopback port; yields the URL."""
    command = os.path.join(os.path.dirname(sys.executable), "condormagic")
    return serving(
        lambda port: [command, "voila", "dashboard.ipynb", "--port", str(port)], folder, runs, None, log_name
    )


def code_lines() -> list[str]:
    nb = nbformat.read(EXAMPLES / "dashboard.ipynb", as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines += [line.strip() for line in cell.source.splitlines() if len(line.strip()) > 6]
    return lines


def load(page, url: str) -> None:
    page.goto(url, timeout=180_000)
    page.wait_for_selector("#rendered_cells", state="visible", timeout=180_000)
    page.wait_for_load_state("networkidle", timeout=60_000)


def check_no_code(page) -> str:
    text = page.inner_text("body")
    for magic in ("%load_ext", "%condor", "%%condor", "condor_sources", "load_ext"):
        assert magic not in text, magic
    for line in code_lines():
        assert line not in text, line
    assert page.locator(".jp-CodeCell .jp-InputArea:visible, .jp-InputPrompt:visible").count() == 0
    return text


def test_dashboard_shows_map_and_headline_without_code_and_creates_nothing(folder):
    from playwright.sync_api import sync_playwright

    runs = folder / "runs"
    before = run_dirs(runs)
    assert len(before) == 1 and sum(before.values()) >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    with condormagic_voila(folder, runs, "voila.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                for attempt in (1, 2):
                    load(page, url)
                    page.locator(".leaflet-container").wait_for(timeout=60_000)
                    headline = page.locator(".cm-headline")
                    headline.wait_for(timeout=60_000)
                    assert re.match(r"\d+\.\d%", headline.inner_text()), headline.inner_text()
                    text = check_no_code(page)
                    assert "Where did the protected forest lose its canopy?" in text
                    assert "1 of 1 jobs completed" in text
                    assert page.locator(".leaflet-sbs-range").count() == 1  # the split comparison
                    assert page.locator(".leaflet-image-layer").count() == 2
                    # no trace of the magic cells: 3 markdown cells, the %%condor cell (tagged
                    # condormagic-show) and the headline; nothing else, not even empty
                    cells = page.locator("#rendered_cells .jp-Cell")
                    assert cells.count() == 5, cells.count()
                    heights = page.eval_on_selector_all(
                        "#rendered_cells .jp-Cell", "cells => cells.map(c => c.getBoundingClientRect().height)"
                    )
                    assert all(h > 10 for h in heights), heights
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(ARTIFACTS / f"dashboard-load{attempt}.png"), full_page=True)
                    # no steering from the page
                    assert page.get_by_role("button", name=re.compile("remove|hold|release|retry")).count() == 0
                    assert run_dirs(runs) == before, "a page load created a run or submitted jobs"
            finally:
                browser.close()
    assert run_dirs(runs) == before


def test_dashboard_without_a_run_says_not_computed_and_creates_nothing(folder, tmp_path):
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "no-runs"
    with condormagic_voila(folder, runs, "voila-empty.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 700})
                load(page, url)
                page.locator(".cm-not-computed").wait_for(timeout=60_000)
                text = check_no_code(page)
                assert text.count("These results have not been computed yet.") == 1
                for word in ("Error", "Traceback", "UsageError"):
                    assert word not in text
                page.screenshot(path=str(ARTIFACTS / "dashboard-not-computed.png"), full_page=True)
            finally:
                browser.close()
    assert not runs.exists() or not any(runs.iterdir())
