"""A Voila page reattaches to a run another process started (here the test, as JupyterLab would).

The test submits a run with ``cm.submit`` (one job fails on purpose), waits for it to settle, then
serves a notebook that does ``cm.run(NAME)`` and shows it (under Voila, a settled run is the
read-only status card) and its monitor (read-only, as a dashboard shows a running run); headless
Chromium must show the same counts and the same state on every tile as ``run.status()`` and
``run.jobs()`` in the test process.
"""

from __future__ import annotations

import re

from browser import ARTIFACTS, chromium_page, needs_chromium, voila_server, write_dems

pytestmark = needs_chromium

NOTEBOOK = [
    'import condormagic as cm\nrun = cm.run("REATTACH")\nrun',
    "from condormagic.display.readonly import read_only_monitor\nread_only_monitor(run, interval=0.5)",
]


def test_voila_page_reattaches_to_a_run_started_elsewhere(tmp_path, runs_dir, monkeypatch):
    import condormagic as cm

    monkeypatch.chdir(tmp_path)
    write_dems(tmp_path, seed=11)
    src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=300)

    def change(img):
        if img.window.row_off == 0 and img.window.col_off == 300:
            raise RuntimeError("this tile fails on purpose")
        return img["dem2"] - img["dem1"]

    run = cm.submit(change, src, cpus=1, mem="500MB", name="REATTACH", tiles_per_job=1)
    run.wait(timeout=120)
    status = run.status()
    states = {tile: job.state for job in run.jobs() for tile in job.tiles}
    assert status["completed"] == 5 and status["failed"] == 1, status  # the state the page must show

    with voila_server(tmp_path, NOTEBOOK, env={"CONDORMAGIC_RUNS_DIR": str(runs_dir)}) as url, chromium_page() as page:
        page.goto(url, timeout=120_000)
        try:
            page.locator("svg.cm-tilemap rect.cm-tile").first.wait_for(state="attached", timeout=60_000)
        except Exception:
            (tmp_path / "page.html").write_text(page.content())
            raise
        page.locator(".cm-run-status").wait_for(timeout=30_000)
        shown = {
            int(rect.get_attribute("data-tile")): rect.get_attribute("data-state")
            for rect in page.locator("svg.cm-tilemap rect.cm-tile").all()
        }
        progress = [p.inner_html() for p in page.locator(".cm-progress").all()]
        counts = [
            {s: int(n) for s, n in re.findall(r'class="cm-count" data-state="(\w+)".*?<b>(\d+)</b>', p)}
            for p in progress
        ]
        card = page.locator(".cm-run-status").inner_text()
        header = page.locator(".cm-monitor .cm-header").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator(".cm-monitor").screenshot(path=str(ARTIFACTS / "monitor-reattached.png"))
    assert shown == states
    assert counts == [status, status]  # the card's bar and the monitor's
    assert "5 of 6 jobs completed" in card
    assert "REATTACH" in header and run.id in header
    assert run.status() == status  # the page neither submitted nor changed anything
    assert [p.name for p in runs_dir.iterdir() if not p.name.startswith(".")] == [run.id]
