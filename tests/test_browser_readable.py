"""What a person sees, in Voila and headless Chromium, light and dark: a run with failures followed
from the monitor to its result by clicks, a monitor whose kernel dies, the runs dashboard.

One page per theme: the monitor of a run whose thin last column of tiles fails on purpose (long
reasons, a next step, clicks on rows and tiles, then the retry), the monitor of a slow run (live,
then not live once the kernel is killed) and ``cm.dashboard()``. It writes the screenshots that
docs/ keeps to artifacts/.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from browser import ARTIFACTS, chromium_page, needs_chromium, voila_server, write_dems
from playwright.sync_api import expect

pytestmark = needs_chromium

REASON = "this tile refuses to compute while fail.flag exists in the notebook's folder, on purpose, for the test"

NOTEBOOK = [
    f"""import os
import condormagic as cm
from condormagic.display.monitor import Monitor
from IPython.display import HTML, display
cm.configure(dashboard_submit=True)  # this page submits its own runs, as a test
display(HTML(f'<div id="kernel-pid">{{os.getpid()}}</div>'))
src = cm.sources(dem1="dem1.tif", dem2="dem2.tif", tile=300)
def change(img):
    print("tile at", img.window.row_off, img.window.col_off)
    if img.window.col_off == 600 and os.path.exists("fail.flag"):
        raise RuntimeError({REASON!r})
    d = img["dem2"] - img["dem1"]
    metrics = {{"area_km2": d.size * 0.0009, "before_1": 1.0, "before_10": 2.0, "before_2": 3.0}}
    metrics.update({{"after_1": 1.0, "after_10": 2.0, "after_2": -0.0000001}})
    return d, metrics
run = cm.submit(change, src, cpus=1, mem="500MB", name="READABLE", tiles_per_job=1, check=False)
Monitor(run, interval=0.5)""",
    """def slow(img):
    import time
    time.sleep(600)
    return img[0]
slow_run = cm.submit(slow, cm.sources(dem1="dem1.tif", tile=1000), cpus=1, mem="500MB", name="SLOW", check=False)
Monitor(slow_run, interval=0.5)""",
    "cm.dashboard()",
]


@pytest.fixture(params=["light", "dark"])
def page_and_folder(request, tmp_path, monkeypatch):
    write_dems(tmp_path)
    (tmp_path / "fail.flag").write_text("1")
    try:
        with voila_server(tmp_path, NOTEBOOK, request.param) as url, chromium_page(1400, 1800) as page:
            page.goto(url, timeout=120_000)
            yield page, tmp_path, request.param
    finally:
        import condormagic as cm

        monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(tmp_path / "runs"))
        for run in cm.runs():
            run.remove()  # the slow run's job, and anything left


def visible(locator) -> bool:
    return locator.count() > 0 and locator.first.is_visible()


def test_monitor_read_and_steered_by_clicks_and_says_when_its_kernel_is_gone(page_and_folder):
    page, folder, theme = page_and_folder
    ARTIFACTS.mkdir(exist_ok=True)
    monitor = page.locator(".cm-monitor").filter(has_text="READABLE").first
    # The run settles with its two thin-column jobs failed; the next step is a retry, highlighted.
    advice = monitor.locator('.cm-advice[data-action="retry"]')
    advice.wait_for(timeout=180_000)
    page.wait_for_function(
        "document.querySelectorAll('.cm-monitor svg.cm-tilemap rect[data-state=\"failed\"]').length === 2",
        timeout=60_000,
    )
    assert "failed" in advice.inner_text() and "Job#2" in advice.inner_text()
    # the advice and the buttons' styles reach the page in separate messages: expect() waits for the style
    expect(monitor.locator("button", has_text="retry")).to_have_class(re.compile(r"\bmod-primary\b"))
    expect(monitor.locator("button", has_text="release")).not_to_have_class(re.compile(r"\bmod-primary\b"))

    # 8. the reason: cut at a word, an ellipsis, the whole of it in the tooltip
    reason = monitor.locator('tr[data-job="2"] td.cm-reason span[title]')
    full, short = reason.get_attribute("title"), reason.inner_text()
    assert REASON in full and short.endswith("…") and len(short) <= 80
    assert full.startswith(short[:-1]) and full[len(short) - 1] == " ", (short, full)
    # the sort menu's label shows whole
    sort = monitor.locator("select").filter(has_text="longest runtime")
    sort.select_option(label="longest runtime")
    fits = sort.evaluate(
        """s => { const c = document.createElement('canvas').getContext('2d');
                  c.font = getComputedStyle(s).font;
                  return c.measureText(s.options[s.selectedIndex].text).width + 24 <= s.clientWidth; }"""
    )
    assert fits
    sort.select_option(label="job")
    # the tile map: 3 x 2 tiles of at most 64 px, its thin last column (10 of 610 px) not a sliver
    svg = monitor.locator("svg.cm-tilemap").bounding_box()
    assert 100 < svg["width"] <= 3 * 64 and svg["height"] <= 2 * 64, svg
    thin = monitor.locator('svg.cm-tilemap rect[data-tile="2"]').bounding_box()
    assert thin["width"] >= 0.4 * 64 - 1, thin

    # 3. a row and a tile open their job's log, with a pointer cursor
    row = monitor.locator('tr[data-job="2"]')
    tile = monitor.locator('svg.cm-tilemap rect[data-tile="4"]')
    # expect() retries: the monitor re-renders its table while it refreshes, detaching the old row
    expect(row).to_have_css("cursor", "pointer")
    expect(tile).to_have_css("cursor", "pointer")
    row.click()
    log = monitor.locator('.cm-log[data-job="2"]')
    log.wait_for(timeout=30_000)
    assert "[tile 2] tile at 0 600" in log.locator("pre.cm-stdout").inner_text()
    assert REASON in log.locator("pre.cm-stderr").inner_text()
    assert monitor.locator('tr[data-job="2"]').get_attribute("aria-selected") == "true"
    monitor.locator(".cm-header").scroll_into_view_if_needed()
    monitor.screenshot(path=str(ARTIFACTS / f"monitor-failed-{theme}.png"))
    tile.click()
    monitor.locator('.cm-log[data-job="4"]').wait_for(timeout=30_000)
    assert "[tile 4] tile at 300 300" in monitor.locator("pre.cm-stdout").inner_text()

    # 7. the highlighted step does it: the cause gone, retry completes the run
    (folder / "fail.flag").unlink()
    monitor.locator("button", has_text="retry").click()
    result = monitor.locator(".cm-result")
    result.wait_for(timeout=120_000)
    # 12. metrics: units from the names, groups as one table, natural order, no "-0"
    metrics = result.locator(".cm-metrics")
    assert re.search(r"area\s+247\.05 km²", metrics.inner_text()), metrics.inner_text()
    table = metrics.locator("table.cm-metric-table")
    assert table.locator("th").all_inner_texts()[1:] == ["before", "after"]
    assert [r.get_attribute("data-metric") for r in table.locator("tbody tr").all()] == ["1", "2", "10"]
    assert "-0" not in metrics.inner_text()
    assert monitor.locator(".cm-advice").count() == 0
    page.locator(".leaflet-container").first.wait_for(timeout=60_000)
    page.wait_for_timeout(800)
    monitor.locator(".cm-header").scroll_into_view_if_needed()
    monitor.screenshot(path=str(ARTIFACTS / f"monitor-{theme}.png"))

    # 8. the dashboard: every run with its states counted; a click opens its monitor
    dashboard = page.locator(".cm-dashboard").filter(has=page.locator("table.cm-dashboard")).first
    dashboard.locator("button", has_text="reload").click()  # it was listed while the run ran
    state = dashboard.locator('tr.cm-run-row:has-text("READABLE") td.cm-state')
    state.locator('.cm-count[data-state="completed"]').wait_for(timeout=30_000)
    assert "completed 6" in state.inner_text().replace("\xa0", " ")
    assert "running 1" in dashboard.locator('tr.cm-run-row:has-text("SLOW") td.cm-state').inner_text()
    dashboard.locator('tr.cm-run-row:has-text("SLOW")').click()
    dashboard.locator(".cm-monitor .cm-header", has_text="SLOW").wait_for(timeout=30_000)
    dashboard.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    dashboard.locator("table.cm-dashboard").screenshot(path=str(ARTIFACTS / f"runs-dashboard-{theme}.png"))

    # 9. the slow run's monitor is live; once its kernel is gone it says so
    slow = page.locator(".cm-monitor .cm-header").filter(has_text="SLOW").first
    assert visible(slow.locator(".cm-live")) and not visible(slow.locator(".cm-gone"))
    os.kill(int(page.locator("#kernel-pid").inner_text()), signal.SIGKILL)  # the kernel this page's server started
    slow.locator(".cm-gone").wait_for(state="visible", timeout=60_000)
    assert not visible(slow.locator(".cm-live"))
    assert "not live" in slow.inner_text() and "cm.run('SLOW')" in slow.inner_text()
    slow.screenshot(path=str(ARTIFACTS / f"monitor-gone-{theme}.png"))
