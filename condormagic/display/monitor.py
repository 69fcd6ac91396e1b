"""The live monitor of a run (ipywidgets): header, progress by state, tile map, job table, logs, steering.

Every part that can grow with the run (the tile map, the table) is one HTML widget whose
value is rewritten, never one widget per job or tile, so a 10,000-job run costs milliseconds
to refresh. A daemon thread refreshes the monitor from the event log and stops when the run
settles; widget updates from a thread reach the browser through ipykernel's iopub channel.
"""

from __future__ import annotations

import threading
import time
import traceback
from html import escape

import ipywidgets as widgets
import numpy as np

from ..errors import CondorMagicError
from ..rundir.state import COMPLETED, FAILED, HELD_STATE, IDLE, REMOVED, RUNNING, STATES, is_settled
from .advice import Advice, next_step
from .cards import COLOURS, FONT, MUTED, cut, progress_html, where
from .clickable import ClickableHTML
from .metrics import metrics_html
from .tilemap import TileMap

PAGE_SIZE = 15
LOG_LIMIT = 20000  # characters of a log shown (its tail)
REASON_LIMIT = 80  # characters of a reason in the job table (the whole reason is its tooltip)
QUERY_EVERY = 30.0  # seconds between asking the scheduler about idle jobs
# ipywidgets marks the view of a model whose kernel connection is gone (a restarted or dead kernel,
# or widget state restored with the notebook) with this class: the header then says so.
LIVENESS_CSS = (
    "<style>.cm-header .cm-gone{display:none}"
    ".jupyter-widgets-disconnected .cm-header .cm-gone,.jupyter-widgets-disconnected.cm-header .cm-gone"
    "{display:inline}"
    ".jupyter-widgets-disconnected .cm-header .cm-live,.jupyter-widgets-disconnected.cm-header .cm-live"
    "{display:none}</style>"
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {(seconds % 3600) // 60:02.0f} min"


class Monitor(widgets.VBox):
    """A live view of a run: ``Monitor(run)``; shown by ``%%condor``, ``%condor_status NAME`` and ``run``.

    ``monitor.counts`` holds the counts per state of the latest refresh, ``monitor.refresh()``
    refreshes once, ``monitor.stop()`` ends the background refresh.
    """

    def __init__(
        self,
        run,
        interval: float = 1.0,
        page_size: int = PAGE_SIZE,
        autostart: bool = True,
        steering: bool = True,
    ):
        self.run = run
        self.steering = steering
        # Its own handle on the run directory: the refresh thread never shares an event-log reader
        # with the kernel's Run, which the user may be waiting on in another cell.
        self._run = run.reopen()
        self.interval = interval
        self.page_size = page_size
        self.counts: dict[str, int] = {s: 0 for s in STATES}
        self.codes = self._run.state.codes
        self._tiles_per_job = np.fromiter(map(len, run.manifest.jobs), dtype=np.int64, count=run.manifest.n_jobs)
        self.page = 0
        self.n_refreshes = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished_shown = False
        self._started = time.time()
        self.tilemap = TileMap(run.manifest)

        self.header = widgets.HTML()
        self.progress = widgets.HTML()
        self.advice_view = widgets.HTML()
        self.advice: Advice | None = None
        self.selected: int | None = None
        self.idle_info: dict = {}
        self._queried = 0.0
        self.tiles_view = ClickableHTML()
        self.sort = widgets.Dropdown(
            options=[("job", "job"), ("state", "state"), ("longest runtime", "runtime")],
            value="job",
            description="sort by",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto"),
        )
        self.state_filter = widgets.Dropdown(
            options=[("all", "all"), *[(s, s) for s in STATES]],
            value="all",
            description="show",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto"),
        )
        self.prev_button = widgets.Button(description="◀", layout=widgets.Layout(width="36px"), tooltip="previous page")
        self.next_button = widgets.Button(description="▶", layout=widgets.Layout(width="36px"), tooltip="next page")
        self.page_label = widgets.HTML()
        self.table = ClickableHTML()
        self.hint = widgets.HTML(
            f'<div class="cm-hint" style="{FONT};{MUTED}">Click a row, or a tile of the map, to see its job\'s '
            "output, errors and reason.</div>"
        )
        self.log_view = widgets.HTML()
        self.remove_button = widgets.Button(description="remove", icon="times", tooltip="remove unfinished jobs")
        self.hold_button = widgets.Button(description="hold", icon="pause", tooltip="hold idle and running jobs")
        self.release_button = widgets.Button(description="release", icon="play", tooltip="release held jobs")
        self.retry_button = widgets.Button(
            description="retry", icon="redo", tooltip="submit failed, held and removed jobs again"
        )
        self.message = widgets.HTML()
        self.result = widgets.VBox()

        self.sort.observe(self._on_table_option, "value")
        self.state_filter.observe(self._on_table_option, "value")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        self.table.on_pick(self._on_pick)
        self.tiles_view.on_pick(self._on_pick)
        steering_buttons = (
            (self.remove_button, "remove"),
            (self.hold_button, "hold"),
            (self.release_button, "release"),
            (self.retry_button, "retry"),
        )
        for button, action in steering_buttons:
            if steering:
                button.on_click(lambda _, a=action: self.act(a))
            else:
                button.close()  # closed, not only hidden: no message from a page can reach it

        controls = widgets.HBox([self.sort, self.state_filter, self.prev_button, self.next_button, self.page_label])
        table_box = widgets.VBox([controls, self.hint, self.table, self.log_view])
        body = widgets.HBox(
            [widgets.VBox([self.tiles_view], layout=widgets.Layout(margin="0 16px 0 0")), table_box],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        rows = [self.header, self.progress, self.advice_view, body]
        if steering:
            rows.append(widgets.HBox([button for button, _ in steering_buttons]))
        super().__init__([*rows, self.message, self.result], layout=widgets.Layout(padding="4px"))
        self.add_class("cm-monitor")
        if not steering:
            self.add_class("cm-read-only")
        self.refresh()
        if autostart:
            self.start()

    # -- refreshing ------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Read new events and redraw; return the number of new events.

        Costs what the new events cost: the state keeps every job's state as a number, the counts,
        the tile map and the header are computed from those numbers, and only the jobs of the
        visible table page (and a few of each state the next step names) are made into objects.
        """
        with self._lock:
            before = self._run.state.n_events
            self._run.poll()
            new = self._run.state.n_events - before
            self.codes = self._run.state.codes
            self.counts = self._run.state.counts()
            if not is_settled(self.counts):
                self._run.waiting_reasons()  # why idle jobs wait, asked every few seconds; jobs() applies it
            self.n_refreshes += 1
            self._ask_about_idle()
            self._draw()
        return new

    @property
    def job_states(self) -> list[str]:
        """Every job's state, by job number (made from :attr:`codes` on each call)."""
        return [STATES[c] for c in self.codes.tolist()]

    @property
    def jobs_list(self) -> list:
        """Every job, as ``JobState`` s (made on each call: for a big run, use :attr:`codes`)."""
        return self._run.jobs(refresh=False)

    def _some(self, states, limit: int = 200) -> list:
        """Up to ``limit`` jobs in each of ``states``, as ``JobState`` s."""
        picked = [np.flatnonzero(self.codes == STATES.index(s))[:limit] for s in states]
        numbers = np.concatenate(picked).tolist() if picked else []
        return self._run.jobs(refresh=False, only=numbers) if numbers else []

    def _ask_about_idle(self) -> None:
        """Every ``QUERY_EVERY`` s while jobs are idle, what the scheduler says about them (why they
        wait); the next step uses it. Nothing for the local backend, whose query is empty."""
        if not self.counts[IDLE]:
            self.idle_info = {}
            return
        now = time.time()
        if now - self._queried < QUERY_EVERY:
            return
        self._queried = now
        try:
            self.idle_info = self._run.query()
        except Exception:  # the scheduler not answering must not stop the monitor
            self.idle_info = {}

    @property
    def settled(self) -> bool:
        return is_settled(self.counts)

    @property
    def complete(self) -> bool:
        return self.counts[COMPLETED] == len(self.codes)

    def start(self) -> None:
        """Refresh in a background thread until the run settles."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"condormagic-monitor-{self.run.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                if self.settled:
                    # A last look a moment later catches a retry submitted in between.
                    if self._stop.wait(min(self.interval, 0.5)):
                        break
                    self.refresh()
                    if self.settled:
                        self._show_result()
                        break
            except Exception as exc:  # the monitor must never kill the kernel; say what went wrong
                self.message.value = (
                    f'<span style="color:{COLOURS[FAILED]}">monitor stopped: {escape(repr(exc))}</span>'
                )
                traceback.print_exc()
                break
            self._stop.wait(self.interval)

    # -- drawing -----------------------------------------------------------------------------------
    def _draw(self) -> None:
        self.header.value = self._header_html()
        self.progress.value = progress_html(self.counts)
        self._draw_advice()
        self.tiles_view.value = self.tilemap.html(self.codes)
        self._draw_table()

    def _draw_advice(self) -> None:
        """The next step for the run's state, and its button highlighted (none in a read-only view)."""
        jobs = self._some((HELD_STATE, FAILED, REMOVED, IDLE))
        self.advice = next_step(self._run.name, jobs, self._run.options, self.idle_info, self.counts)
        if not self.steering or self.advice is None:
            self.advice_view.value = ""
        else:
            self.advice_view.value = (
                f'<div class="cm-advice" data-action="{self.advice.action or ""}" style="{FONT};line-height:1.6;'
                f'margin:4px 0;padding:3px 8px;border-left:3px solid var(--jp-brand-color1,#1e88e5)">'
                f"<b>Next:</b> {self.advice.html}</div>"
            )
        action = self.advice.action if self.advice is not None else None
        mem = self.advice.mem if self.advice is not None else None
        self.retry_button.description = f"retry with {mem[:-2]} {mem[-2:]}" if mem else "retry"
        for button, name in (
            (self.remove_button, "remove"),
            (self.hold_button, "hold"),
            (self.release_button, "release"),
            (self.retry_button, "retry"),
        ):
            button.button_style = "primary" if name == action else ""

    def _header_html(self) -> str:
        run = self._run
        opts = run.options
        resources = f"{opts.get('cpus')} cpu, {opts.get('mem')} MB" + (
            f", {opts['gpus']} gpu" if opts.get("gpus") else ""
        )
        first, last = run.timeline()
        end = (last or time.time()) if self.settled else time.time()
        begin = first or run.created or self._started
        elapsed = max(0.0, end - begin)
        sizes, codes = self._tiles_per_job, self.codes
        all_tiles = int(sizes.sum())
        done_tiles = int(sizes[codes == STATES.index(COMPLETED)].sum())
        left = int(sizes[(codes == STATES.index(IDLE)) | (codes == STATES.index(RUNNING))].sum())
        rate = done_tiles / elapsed if elapsed > 0 else 0.0
        if self.settled:
            eta = "done" if self.complete else "waiting for you"
        elif rate > 0:
            eta = _duration(left / rate)
        else:
            eta = "&ndash;"
        cluster = ", ".join(map(str, sorted(run.state.clusters))) or "&ndash;"
        state = "settled" if self.settled else '<span class="cm-live">running</span>'
        live = (
            ""
            if self.settled
            else ' <span class="cm-live" style="color:#1e88e5">&#9679; live</span>'
            f'<span class="cm-gone" style="color:{COLOURS[HELD_STATE]}"> &#9675; not live: the kernel that ran this '
            "monitor has stopped, so it no longer follows the run; "
            f"<code>cm.run({escape(repr(run.name))})</code> in a running kernel shows it again</span>"
        )
        problem = None if self.settled else run.scheduler_problem
        silent = (
            f'<br><span class="cm-scheduler" style="color:{COLOURS[HELD_STATE]}">{escape(problem)}</span>'
            if problem
            else ""
        )
        return (
            f'{LIVENESS_CSS}<div class="cm-header" style="{FONT};line-height:1.6">'
            f'<b style="font-size:14px">{escape(run.name)}</b> <code>{escape(run.id)}</code>{live}<br>'
            f"cluster <b>{cluster}</b> &middot; backend <b>{escape(where(run))}</b> &middot; {resources} &middot; "
            f"{len(codes):,} jobs, {all_tiles:,} tiles<br>"
            f'<span style="{MUTED}">elapsed</span> <b class="cm-elapsed">{_duration(elapsed)}</b> &middot; '
            f'<span style="{MUTED}">tiles/s</span> <b>{rate:.2f}</b> &middot; '
            f'<span style="{MUTED}">ETA</span> <b>{eta}</b> &middot; <span style="{MUTED}">{state}</span>'
            f"{silent}</div>"
        )

    def _rows(self) -> np.ndarray:
        """The job numbers the table lists, in its order (filtered, sorted), from the state codes."""
        codes = self.codes
        jobs = np.arange(len(codes))
        if self.state_filter.value != "all":
            jobs = jobs[codes == STATES.index(self.state_filter.value)]
        if self.sort.value == "state":
            rank = np.array([(FAILED, HELD_STATE, RUNNING, IDLE, REMOVED, COMPLETED).index(s) for s in STATES])
            jobs = jobs[np.argsort(rank[codes[jobs]], kind="stable")]
        elif self.sort.value == "runtime":  # the only order that needs every job's object: asked for
            runtimes = {j.job: j.runtime or 0.0 for j in self._run.jobs(refresh=False, only=jobs.tolist())}
            jobs = np.array(sorted(jobs.tolist(), key=lambda j: (-runtimes[j], j)), dtype=np.int64)
        return jobs

    def _draw_table(self) -> None:
        rows = self._rows()
        pages = max(1, -(-len(rows) // self.page_size))
        self.page = min(self.page, pages - 1)
        page = rows[self.page * self.page_size : (self.page + 1) * self.page_size].tolist()
        by_job = {j.job: j for j in self._run.jobs(refresh=False, only=page)} if page else {}
        shown = [by_job[j] for j in page]
        listed = f"page {self.page + 1} of {pages} &middot; {len(rows):,} jobs"
        self.page_label.value = f'<span style="{FONT}">{listed}</span>'
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        cell = "padding:1px 8px;text-align:left;white-space:nowrap"
        head = "".join(
            f'<th style="{cell}">{h}</th>'
            for h in ("job", "tiles", "state", "host", "runtime", "exit", "peak MB", "reason")
        )
        body = []
        for j in shown:
            tiles = f"{j.tiles[0]}" if len(j.tiles) == 1 else f"{j.tiles[0]}&ndash;{j.tiles[-1]}"
            short, full = cut(j.reason or "", REASON_LIMIT)
            reason = f'<span title="{escape(full)}">{escape(short)}</span>' if short != full else escape(full)
            # A job that never started has no runtime (nor a host, nor an exit code).
            runtime = _duration(j.runtime) if j.starts and j.runtime is not None else "&ndash;"
            selected = "true" if j.job == self.selected else "false"
            # A job the pool stopped and ran again (evicted, or retried with more memory) says so.
            restarts = f' <span class="cm-starts">({j.starts} starts)</span>' if j.starts > 1 else ""
            body.append(
                f'<tr data-job="{j.job}" data-pick="{j.job}" data-state="{j.state}" tabindex="0" '
                f'aria-selected="{selected}" title="Job#{j.job}: click to see its output and errors">'
                f'<td style="{cell}">Job#{j.job}</td>'
                f'<td style="{cell}">{tiles}</td>'
                f'<td style="{cell}"><span style="color:{COLOURS[j.state]}">&#9632;</span> {j.state}{restarts}</td>'
                f'<td style="{cell}">{escape(j.host or "")}</td>'
                f'<td class="cm-runtime" style="{cell}">{runtime}</td>'
                f'<td style="{cell}">{"" if j.exit_code is None else j.exit_code}</td>'
                f'<td style="{cell}">{"" if j.peak_memory_mb is None else f"{j.peak_memory_mb:,}"}</td>'
                f'<td class="cm-reason" style="{cell};white-space:normal;min-width:160px;max-width:320px">{reason}</td>'
                "</tr>"
            )
        self.table.value = (
            f'<table class="cm-jobs" style="{FONT};border-collapse:collapse"><thead><tr '
            f'style="border-bottom:1px solid var(--jp-border-color1,#bbb)">{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def _on_table_option(self, _change) -> None:
        self.page = 0
        with self._lock:
            self._draw_table()

    def _turn(self, step: int) -> None:
        self.page = max(0, self.page + step)
        with self._lock:
            self._draw_table()

    def _on_pick(self, value: str) -> None:
        """A row or a tile was clicked: show its job's log (a second click on it closes the log)."""
        try:
            job = int(value)
        except ValueError:
            return
        if not 0 <= job < len(self.codes):
            return
        self.show_log(None if job == self.selected else job)

    def show_log(self, job: int | None) -> None:
        """Show the stdout, stderr and reason of a job's latest attempt (``None`` closes it)."""
        self.selected = job
        with self._lock:
            self._draw_table()
        if job is None:
            self.log_view.value = ""
            return
        with self._lock:
            out, err = self._run.logs(job)
            (js,) = self._run.jobs(refresh=False, only=[job])
        pre = (
            "margin:2px 0 6px;padding:4px 6px;max-height:220px;overflow:auto;white-space:pre-wrap;line-height:1.35;"
            "background:var(--jp-layout-color2,#f3f3f3);color:var(--jp-content-font-color1,#222);"
            "font-family:var(--jp-code-font-family,monospace);font-size:11px"
        )

        def tail(text: str) -> str:
            return ("…" + text[-LOG_LIMIT:]) if len(text) > LOG_LIMIT else text

        reason = (
            f'<div><b style="color:{COLOURS[js.state]}">{js.state}</b>: {escape(js.reason)}</div>' if js.reason else ""
        )
        self.log_view.value = (
            f'<div class="cm-log" data-job="{job}" style="{FONT};max-width:640px">'
            f"<b>Job#{job}</b> &middot; {js.state} &middot; attempt {js.attempts}{reason}"
            f'<div style="{MUTED}">stdout</div>'
            f'<pre class="cm-stdout" style="{pre}">{escape(tail(out)) or "(empty)"}</pre>'
            f'<div style="{MUTED}">stderr</div>'
            f'<pre class="cm-stderr" style="{pre}">{escape(tail(err)) or "(empty)"}</pre>'
            "</div>"
        )

    # -- steering ----------------------------------------------------------------------------------
    def act(self, action: str) -> str:
        """Remove, hold, release or retry (the failed, held and removed jobs); report what was done."""
        if not self.steering:
            raise PermissionError("This dashboard is read-only: its jobs cannot be steered from the page.")
        run = self._run
        try:
            with self._lock:
                if action == "retry":
                    mem = self.advice.mem if self.advice is not None else None
                    jobs = run.retry(mem=mem) if mem else run.retry()
                    text = (
                        f"Resubmitted {len(jobs)} job(s){f' with {mem}' if mem else ''}: "
                        + ", ".join(f"Job#{j}" for j in jobs[:10])
                        + (" …" if len(jobs) > 10 else "")
                        if jobs
                        else "Nothing to retry: no job failed, is held or was removed."
                    )
                else:
                    n = getattr(run, action)()
                    what = {"remove": "removed", "hold": "held", "release": "released"}[action]
                    text = f"{n} job(s) {what}." if n else f"No job could be {what}."
        except Exception as exc:
            text = f"{action} failed: {exc}"
        self.message.value = f'<div class="cm-message" style="{FONT}">{escape(text)}</div>'
        self.result.children = ()
        self._finished_shown = False
        self.refresh()
        self.start()
        return text

    # -- the result ----------------------------------------------------------------------------------
    def _show_result(self) -> None:
        if self._finished_shown:
            return
        self._finished_shown = True
        if not self.complete:
            failed = self.counts[FAILED] + self.counts[HELD_STATE] + self.counts[REMOVED]
            self.result.children = (
                widgets.HTML(
                    f'<div class="cm-settled" style="{FONT}">The run settled with {failed} job(s) failed, held or '
                    "removed; what to do next is said above.</div>"
                ),
            )
            return
        run = self._run
        try:
            output = run.output
        except CondorMagicError as exc:
            self.result.children = (
                widgets.HTML(f'<div style="{FONT};color:{COLOURS[FAILED]}">{escape(str(exc))}</div>'),
            )
            return
        metrics = run.metrics
        lines = [f"<b>Completed.</b> output <code>{escape(str(output))}</code>"]
        if metrics:
            lines.append(metrics_html(metrics))
        children = [widgets.HTML(f'<div class="cm-result" style="{FONT};line-height:1.6">' + "".join(lines) + "</div>")]
        try:
            from .explorer import explore_run

            children.append(explore_run(run))
        except Exception as exc:
            children.append(widgets.HTML(f'<div style="{FONT};{MUTED}">no map: {escape(str(exc))}</div>'))
        self.result.children = tuple(children)


def display_bundle(run) -> dict:
    """What ``display`` sends for a run: in a kernel, the monitor, with the HTML card and text as fallbacks.

    Frontends that render widgets (JupyterLab, Voila) show the monitor; others (nbconvert,
    nbclient outputs, GitHub) keep the card.
    """
    from IPython import get_ipython

    from .cards import run_card

    bundle = {"text/html": run_card(run), "text/plain": repr(run)}
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        monitor = Monitor(run)
        bundle.update(monitor._repr_mimebundle_() or {})
        bundle["text/html"], bundle["text/plain"] = run_card(run), repr(run)
    return bundle
