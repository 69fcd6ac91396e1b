"""The job-graph widget where people see it: a Voila server on loopback, loaded in headless Chromium."""

from __future__ import annotations

import re

import pytest
from browser import ARTIFACTS, chromium_page, needs_chromium, voila_server, write_dems

import condormagic as cm

pytestmark = needs_chromium

NOTEBOOK = [
    """import condormagic as cm
from condormagic.display.graphview import GraphView
src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=150, halo=2)
def change(img):
    return img["dem2"] - img["dem1"]
plan = cm.plan(change, src, tiles_per_job=2)""",
    "GraphView(plan.graph, src, plan.name)",
]


def change(img):
    return img["dem2"] - img["dem1"]


@pytest.fixture(params=["light", "dark"])
def voila(request, tmp_path, monkeypatch):
    write_dems(tmp_path)
    monkeypatch.chdir(tmp_path)
    graph = cm.plan(change, cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=150, halo=2), tiles_per_job=2).graph
    with voila_server(tmp_path, NOTEBOOK, request.param) as url:
        yield url, request.param, graph


def highlighted(page) -> list[int]:
    rects = page.locator("svg.cm-tilemap rect.cm-highlight")
    return sorted(int(rects.nth(i).get_attribute("data-tile")) for i in range(rects.count()))


def test_graphview_in_voila_shows_tiles_picks_a_job_and_lists_its_inputs(voila):
    url, theme, graph = voila
    ARTIFACTS.mkdir(exist_ok=True)
    assert graph.n_jobs > 2 and len(graph.tiles) == 15  # 5 x 3 tiles of 150 px, two per job
    with chromium_page() as page:
        page.goto(url, timeout=120_000)
        page.locator(".cm-graphview svg.cm-tilemap").wait_for(timeout=120_000)
        # one rect per tile, each coloured by its job
        assert page.locator("svg.cm-tilemap rect.cm-tile").count() == len(graph.tiles)
        jobs_of_tiles = page.locator("svg.cm-tilemap rect.cm-tile").evaluate_all(
            "rs => rs.map(r => Number(r.dataset.job))"
        )
        assert sorted(set(jobs_of_tiles)) == list(range(graph.n_jobs))
        # job 0 is picked at first
        assert page.locator("g.cm-selection").get_attribute("data-job") == "0"
        assert highlighted(page) == sorted(graph.jobs[0])
        # pick another job: the highlight moves to its tiles
        job = 3
        picker = page.locator(".cm-graphview select")
        # the Select widget draws its options' spaces as no-break spaces
        labels = [t.replace("\xa0", " ") for t in picker.locator("option").all_inner_texts()]
        assert len(labels) == graph.n_jobs, labels
        picker.select_option(index=next(i for i, t in enumerate(labels) if t.startswith(f"Job#{job} ")))
        page.wait_for_selector(f'g.cm-selection[data-job="{job}"]', timeout=30_000)
        assert highlighted(page) == sorted(graph.jobs[job])
        assert page.locator(f'svg.cm-tilemap rect.cm-highlight[data-job="{job}"]').count() == len(graph.jobs[job])
        assert page.locator("svg.cm-tilemap rect.cm-read").count() == len(graph.jobs[job])  # halo 2
        inputs = page.locator(f'.cm-inputs[data-job="{job}"]')
        inputs.wait_for(timeout=30_000)
        # expand every section of the inputs
        for summary in inputs.locator("details:not([open]) > summary").all():
            summary.click()
        assert inputs.locator("details:not([open])").count() == 0
        text = inputs.inner_text()
        assert "dem1.tif" in text and "dem2.tif" in text
        assert re.search(r"rows \d+:\d+", text), text
        assert "read with halo 2" in text
        page.wait_for_timeout(300)
        page.locator(".cm-graphview").screenshot(path=str(ARTIFACTS / f"graphview-{theme}.png"))
