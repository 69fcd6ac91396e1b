"""What a scheduler must do for a run: the :class:`Backend` protocol both backends follow.

A backend is given a run directory and its manifest; it submits jobs as a new cluster
(recording it in ``clusters/``), steers them, answers what the event log cannot say, and
says how many jobs can run at once. It never derives job state: that is the run
directory's (:mod:`condormagic.rundir.state`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # only named in annotations: the local runner imports this package and must start light
    from ..resources import Resources
    from ..rundir.layout import RunDir
    from ..rundir.manifest import Manifest

ACTIONS = ("hold", "release", "remove")


@runtime_checkable
class Backend(Protocol):
    """A scheduler that runs a run's jobs: ``local`` or ``htcondor``."""

    name: str
    # Pixels a job should have so that its start-up cost is small beside its work.
    min_job_pixels: int

    def describe(self) -> str:
        """Where the jobs go, in a few words (``local (2 cores)``, ``htcondor (schedd NAME)``)."""

    def slots(self, cpus: int) -> int:
        """How many jobs of ``cpus`` CPUs can run at once (for the default tiles per job)."""

    def check(self, resources: Resources) -> str | None:
        """Refuse, with one sentence, a request no job could ever start with here; or return a note
        on how the request will be served, when that differs from what was asked."""

    def submit(self, layout: RunDir, manifest: Manifest, jobs: list[int]) -> int:
        """Queue ``jobs`` as one new cluster, record it, and return its number."""

    def act(self, layout: RunDir, manifest: Manifest, action: str, procs: list[tuple[int, int]] | None) -> int:
        """Hold, release or remove the run's procs (``None``: all of the run's procs the action applies to,
        as the scheduler sees them now); return how many were acted on."""

    def query(self, layout: RunDir, manifest: Manifest) -> dict[tuple[int, int], dict]:
        """What the scheduler knows of the run's queued procs that the event log does not say."""

    def watch(self, layout: RunDir, manifest: Manifest) -> str | None:
        """Make sure the run's queued jobs are looked after (restart what stopped); say what is wrong, or ``None``."""
