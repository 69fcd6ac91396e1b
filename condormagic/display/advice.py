"""What to do next, for the state a run is in: release after a hold, retry after a failure, more
memory after a memory hold, a smaller request when no machine matches it.

:func:`next_step` returns one :class:`Advice`: a sentence (HTML) with the command that does it,
and the monitor's button that does it, which the monitor highlights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape

from ..rundir.exitcodes import PERMANENT
from ..rundir.state import FAILED, HELD_STATE, IDLE, REMOVED

# HTCondor's and the local runner's words for a job held for going over its memory (hold code 34).
_MEMORY = re.compile(r"memory limit|over memory|memory usage exceeded|request_memory", re.IGNORECASE)
_PEAK = re.compile(r"(?:peak|usage)[^0-9]{0,30}(\d+)\s*(?:megabytes|MB)", re.IGNORECASE)
_BY_USER = re.compile(r"\b(by (?:the )?user|condor_hold|via condor_hold)", re.IGNORECASE)


@dataclass(frozen=True)
class Advice:
    """``html``: the sentence; ``action``: the button that does it (``release``, ``retry``,
    ``remove``) or ``None``; ``mem``: the memory a retry should ask for, if it should."""

    html: str
    action: str | None = None
    mem: str | None = None


def held_for_memory(reason: str | None) -> bool:
    return bool(reason and _MEMORY.search(reason))


def more_memory(requested_mb: int | None, peaks_mb: list[int]) -> str:
    """A memory request comfortably above what the jobs used: half again the peak (or twice the
    request), rounded up to a whole GB (or 256 MB under 1 GB)."""
    need = max([int(1.5 * p) for p in peaks_mb] + [2 * int(requested_mb or 0), 256])
    if need < 1024:
        return f"{math.ceil(need / 256) * 256}MB"
    return f"{math.ceil(need / 1024)}GB"


def _jobs(jobs: list, limit: int = 3, total: int | None = None) -> str:
    """``Job#1, Job#4, Job#9 and 12 more``: ``total`` counts the jobs when ``jobs`` lists only some."""
    total = len(jobs) if total is None else total
    names = ", ".join(f"Job#{j.job}" for j in jobs[:limit])
    return names + (f" and {total - min(limit, len(jobs))} more" if total > limit else "")


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def next_step(
    name: str, jobs: list, options: dict, idle_info: dict | None = None, counts: dict[str, int] | None = None
) -> Advice | None:
    """The next step for a run named ``name`` whose jobs are ``jobs`` (``JobState`` s), requested
    with ``options`` (``cpus``, ``mem`` in MB, ``gpus``); ``idle_info`` is the scheduler's answer
    about queued jobs (``run.query()``), when known. ``None`` when there is nothing to do.

    A big run may pass only some of its jobs in each state, with ``counts`` (jobs per state) for
    the totals the sentences give."""
    by_state: dict[str, list] = {}
    for j in jobs:
        by_state.setdefault(j.state, []).append(j)

    def total(state: str) -> int:
        listed = len(by_state.get(state, []))
        return max(listed, (counts or {}).get(state, listed))

    held = by_state.get(HELD_STATE, [])
    memory = [j for j in held if held_for_memory(j.reason)]
    if memory:
        peaks = [j.peak_memory_mb for j in memory if j.peak_memory_mb]
        peaks += [int(m[1]) for j in memory if (m := _PEAK.search(j.reason or ""))]
        mem = more_memory(options.get("mem"), peaks)
        peak = f" (peak {max(peaks):,} MB of {options.get('mem')} MB requested)" if peaks else ""
        one = len(memory) == 1
        return Advice(
            f"{_jobs(memory)} {'was' if one else 'were'} held for going over {'its' if one else 'their'} "
            f"memory{peak}: <b>retry with {mem}</b>, or {_code(f'%condor_retry {name} --mem {mem}')} "
            f"({_code(f'run.retry(mem={mem!r})')}).",
            "retry",
            mem,
        )
    if held:
        by_user = [j for j in held if _BY_USER.search(j.reason or "") or not j.reason]
        if len(by_user) == len(held):
            return Advice(
                f"{_jobs(held, total=total(HELD_STATE))} {'is' if total(HELD_STATE) == 1 else 'are'} held: "
                f"<b>release</b> to let {'it' if total(HELD_STATE) == 1 else 'them'} go on ({_code('run.release()')}).",
                "release",
            )
        return Advice(
            f"{_jobs(held, total=total(HELD_STATE))} {'is' if total(HELD_STATE) == 1 else 'are'} held: click a job "
            "to read why, put that right, "
            f"then <b>release</b> ({_code('run.release()')}).",
            "release",
        )
    failed = by_state.get(FAILED, [])
    if failed:
        own = [j for j in failed if j.exit_code in PERMANENT]
        if len(own) == len(failed):
            return Advice(
                f"{_jobs(failed, total=total(FAILED))} failed in the function: click a job to see its error, fix "
                "the function and run the cell again (a changed function is a new run). "
                f"<b>retry</b> ({_code(f'%condor_retry {name}')}) "
                "runs the same function again: it helps when the cause was outside it (a file, a machine).",
                "retry",
            )
        return Advice(
            f"{_jobs(failed, total=total(FAILED))} failed: click a job to see why, then <b>retry</b> "
            f"({_code(f'%condor_retry {name}')}).",
            "retry",
        )
    removed = by_state.get(REMOVED, [])
    if removed and not by_state.get(IDLE) and not by_state.get("running"):
        return Advice(
            f"{_jobs(removed, total=total(REMOVED))} {'was' if total(REMOVED) == 1 else 'were'} removed: "
            f"<b>retry</b> submits {'it' if total(REMOVED) == 1 else 'them'} again ({_code(f'%condor_retry {name}')}).",
            "retry",
        )
    idle = by_state.get(IDLE, [])
    unmatched = [j for j in idle if _unmatchable((idle_info or {}).get(j.job))]
    if unmatched:
        asked = f"{options.get('cpus', 1)} cpu, {options.get('mem')} MB" + (
            f", {options['gpus']} gpu" if options.get("gpus") else ""
        )
        said = next(_unmatchable((idle_info or {}).get(j.job)) for j in unmatched)
        return Advice(
            f"No machine of the pool matches what {_jobs(unmatched)} request ({asked}; the scheduler says "
            f"&ldquo;{escape(said)}&rdquo;): <b>remove</b> the run ({_code(f'%condor_rm {name}')}) and run the cell "
            "again asking for less (<code>--cpus</code>, <code>--mem</code>, <code>--gpus</code>), or ask the pool's "
            "administrators what its machines offer.",
            "remove",
        )
    return None


def _unmatchable(info: dict | None) -> str | None:
    """The scheduler's reason when a queued job matches no machine, else ``None``."""
    if not info:
        return None
    for key in ("LastRejMatchReason", "idle_reason", "IdleReason"):
        text = info.get(key)
        if text and re.search(r"no match|match(?:es)? no|no machine|cannot match|rejected", str(text), re.I):
            return str(text)
    return None
