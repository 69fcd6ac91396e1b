"""The Python API: ``cm.submit``, ``cm.run``, ``cm.runs``."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass

import cloudpickle

from . import config
from .backends import get_backend, resolve
from .backends.description import site_options
from .errors import CondorMagicError
from .graph import JobGraph, Sources, build_graph
from .graph.manifest import build_manifest, content_hash
from .resources import check_count, check_name, parse_memory
from .runs import Run, create_run_dir, find_by_content, find_run, list_runs


@dataclass
class Plan:
    """Everything a run needs, checked, before anything is written: see :func:`plan`."""

    func: Callable
    function_bytes: bytes
    sources: Sources
    name: str
    code: str
    options: dict
    content_hash: str
    engine: object
    code_line: int = 1
    _graph: JobGraph | None = None

    @property
    def graph(self) -> JobGraph:
        if self._graph is None:
            slots = self.engine.slots(self.options["cpus"])
            self._graph = build_graph(self.sources, self.options["tiles_per_job"], slots)
            if not self._graph.jobs:
                raise CondorMagicError("The mask leaves no tile to compute: check the mask source, or drop --mask.")
        return self._graph

    def existing(self) -> Run | None:
        """The run this plan would attach to: same code, sources and result options."""
        return find_by_content(self.content_hash, config.runs_dir())


def plan(
    func: Callable,
    sources: Sources,
    cpus: int | None = None,
    mem: str | int | None = None,
    gpus: int = 0,
    disk: str | int | None = None,
    name: str | None = None,
    tiles_per_job: int | None = None,
    output: str | None = None,
    backend: str | None = None,
    nodata: float | None = None,
    code: str | None = None,
    transfer: bool = False,
    requirements: str | None = None,
    container: str | None = None,
    submit_commands: dict[str, str] | list[str] | None = None,
) -> Plan:
    """Check a run's arguments and build its job graph without submitting anything.

    Takes the arguments of :func:`submit` (but ``force``); ``%%condor --dry-run``
    shows the result. Raises :class:`CondorMagicError` with one sentence on bad input.
    """
    if not callable(func):
        raise CondorMagicError(f"{func!r} is not a function: pass the function to run on each tile.")
    if not isinstance(sources, Sources):
        raise CondorMagicError("sources must come from cm.sources(...) (or %condor_sources).")
    cpus = check_count(cpus if cpus is not None else int(config.get("cpus")), "--cpus")
    mem_mb = parse_memory(mem if mem is not None else config.get("mem"), "--mem")
    gpus = check_count(gpus or 0, "--gpus", minimum=0)
    disk_mb = parse_memory(disk, "--disk") if disk is not None else None
    if tiles_per_job is not None:
        tiles_per_job = check_count(tiles_per_job, "--tiles-per-job")
    name = check_name(name or _default_name(func))
    try:
        function_bytes = _dumps(func)
    except Exception as exc:
        raise CondorMagicError(
            f"The function {name} cannot be sent to the jobs ({type(exc).__name__}: {exc}); "
            "make it use only picklable objects (open files and connections inside the function)."
        ) from None
    site = site_options(transfer, requirements, container, submit_commands)
    backend_name, backend_reason = _resolve_backend(backend or str(config.get("backend")))
    engine = get_backend(backend_name)
    code_line = 1  # the line of the function's file where ``code`` starts, for tracebacks
    if code is None:
        try:
            lines, code_line = inspect.getsourcelines(func)
            code, code_line = "".join(lines), max(code_line, 1)
        except (OSError, TypeError):
            code = hashlib.sha256(function_bytes).hexdigest()
    options = {
        "cpus": cpus,
        "mem": mem_mb,
        "gpus": gpus,
        "disk": disk_mb,
        "tiles_per_job": tiles_per_job,
        "output": str(output) if output else None,
        "nodata": nodata,
        "backend": backend_name,
        "backend_reason": backend_reason,
        "schedd": config.get("schedd"),
        "pool": config.get("pool"),
        "python": config.get("python"),
        **site,
        "cwd": os.getcwd(),
    }
    content = content_hash(code, sources, options)
    return Plan(func, function_bytes, sources, name, code, options, content, engine, code_line=code_line)


def submit(func: Callable, sources: Sources, force: bool = False, **kwargs) -> Run:
    """Run ``func`` over every tile of ``sources`` as a cluster of jobs.

    Parameters
    ----------
    func : callable
        ``func(img)``, where ``img`` holds one array per source (see the README's
        function contract). Returns an array of the tile's rows and cols, ``(array,
        metrics)``, a metrics dict, or ``None``.
    sources : Sources
        From :func:`condormagic.sources`.
    force : bool
        Submit again even if a run of the same code and sources exists.
    cpus, mem, gpus, disk :
        Resources each job requests; ``mem`` and ``disk`` as HTCondor reads them
        (``"6GB"``, ``"6000MB"``, or a number of MB).
    name : str, optional
        The run's name (HTCondor's ``JobBatchName``); default: the function's name.
    tiles_per_job : int, optional
        Default: jobs of up to 16 million pixels, at least one per slot and about four per
        slot for big tiles, so that cores stay busy and start-up is shared.
    output : str, optional
        Path of the Cloud-Optimized GeoTIFF; default ``output.tif`` in the run directory.
    backend : {"local", "htcondor", "auto"}, optional
    nodata : float, optional
        Nodata of the output; default NaN for float outputs, none for integers
        (0 where a mask skipped tiles).
    code : str, optional
        The source text that identifies the run (``%%condor`` passes the cell);
        default the function's source.
    transfer : bool
        For pools without a shared file system (HTCondor): send the function and the
        local sources with each job, bring its tiles back.
    requirements : str, optional
        A ClassAd expression the HTCondor slots must satisfy.
    container : str, optional
        Run each job in this image (HTCondor's container universe).
    submit_commands : dict or list of ``"KEY=VALUE"``, optional
        Any other HTCondor submit commands your site needs (``accounting_group``...).

    Returns
    -------
    Run
        The new run, or the existing run of the same content (``run.attached`` is True).
    """
    return submit_plan(plan(func, sources, **kwargs), force=force)


def submit_plan(p: Plan, force: bool = False) -> Run:
    """Submit a checked :class:`Plan`, or attach to the run it already made."""
    if not force:
        existing = p.existing()
        if existing is not None:
            existing.attached = True
            return existing
    graph = p.graph
    # A forced run gets its own id: the time, and random digits for two submissions in one second.
    run_id = p.content_hash if not force else f"{p.content_hash}-{time.strftime('%Y%m%d%H%M%S')}-{os.urandom(3).hex()}"
    options = dict(p.options, created=time.time())
    manifest = build_manifest(run_id, p.content_hash, p.name, p.code, p.sources, graph, options)
    manifest["code_line"] = p.code_line
    path = create_run_dir(config.runs_dir(), run_id, manifest, p.function_bytes)
    run = Run(path)
    try:
        p.engine.submit(run, list(range(graph.n_jobs)))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return run


def _default_name(func: Callable) -> str:
    """The function's name as a run name: ``<lambda>`` becomes ``lambda``, a nameless callable ``run``."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "", str(getattr(func, "__name__", "")))[:100].lstrip("_.-")
    return name or "run"


def _dumps(func: Callable) -> bytes:
    """Pickle ``func`` for the jobs; with its module's code when that module is the user's own.

    cloudpickle sends a function of an importable module by reference, which a job can only
    load if the module is installed where it runs. A module of the user's (a file beside the
    notebook, not an installed package) travels by value instead, as ``__main__`` does.
    """
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    own = module is not None and path is not None and func.__module__ != "__main__"
    own = own and not any(os.path.abspath(path).startswith(p + os.sep) for p in installed)
    if not own:
        return cloudpickle.dumps(func)
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(func)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _resolve_backend(name: str) -> tuple[str, str]:
    """The backend to use and why (``auto``: htcondor when a schedd is found, else local)."""
    if name not in ("local", "htcondor", "auto"):
        raise CondorMagicError(f"Unknown backend {name!r}: use local, htcondor or auto.")
    return resolve(name)


def run(name_or_id: str) -> Run:
    """Find a run by id, id prefix, or name (the newest of that name)."""
    return find_run(name_or_id)


def runs() -> list[Run]:
    """Every run in the runs directory, newest first."""
    return list_runs()
