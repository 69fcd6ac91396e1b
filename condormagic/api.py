"""The Python API: ``cm.plan``, ``submit``, ``run``, ``runs``, ``configure``, ``dashboard``, ``explore``,
and ``cm.collection`` (scenes of a STAC catalog as one source, from :mod:`condormagic.tiling.collection`)."""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config as settings
from .backends import get_backend, resolve
from .backends.base import Backend
from .backends.description import site_options
from .errors import CondorMagicError
from .resources import Resources, check_count, check_name, parse_mem_retry, parse_resources
from .rundir import function as function_file
from .rundir.layout import RunDir, creating
from .rundir.manifest import Manifest, content_hash
from .runhandle import Run, find_by_content, find_run, list_runs
from .tiling import JobGraph, Sources, build_graph
from .tiling.collection import collection  # noqa: F401 - cm.collection
from .tiling.contract import ContractError, TileResult, check_result
from .tiling.grid import Tile
from .tiling.jobs import manifest_sources
from .tiling.reader import GridReader
from .voila import refuse_in_dashboard

# The window of the first tile that the function is tried on before anything is submitted.
CHECK_PIXELS = 32


@dataclass
class Plan:
    """Everything a run needs, checked, before anything is written: see :func:`plan`."""

    func: Callable
    function_bytes: bytes
    sources: Sources
    name: str
    options: dict
    content_hash: str
    engine: Backend
    code: str = ""
    code_line: int = 1
    note: str | None = None  # how the backend will serve the request, when that differs from it
    _graph: JobGraph | None = None

    @property
    def resources(self) -> Resources:
        o = self.options
        return Resources(o["cpus"], o["mem"], o["gpus"], o["disk"])

    @property
    def graph(self) -> JobGraph:
        if self._graph is None:
            slots = self.engine.slots(self.options["cpus"])
            self._graph = build_graph(
                self.sources,
                self.options["tiles_per_job"],
                slots,
                self.engine.min_job_pixels,
            )
            if not self._graph.jobs:
                raise CondorMagicError("The mask leaves no tile to compute: check the mask source, or drop --mask.")
        return self._graph

    def existing(self) -> Run | None:
        """The run this plan would attach to: same function, sources and result options."""
        return find_by_content(self.content_hash, settings.runs_dir())

    def check(self) -> TileResult:
        """Run the function here on a small window of the first tile (all sources, with the halo).

        Returns what it returned, checked; raises the function's own exception if it fails,
        and :class:`CondorMagicError` if it returns what the contract does not allow (or what
        ``nodata`` cannot mark).
        """
        first = self.graph.tiles[self.graph.jobs[0][0]]
        tile = Tile(
            first.index,
            first.row_off,
            first.col_off,
            min(first.height, CHECK_PIXELS),
            min(first.width, CHECK_PIXELS),
            first.halo,
        )
        with GridReader([s.to_dict() for s in self.sources.values()], self.sources.grid) as reader:
            img = reader.read(tile.read_window)
        result = self.func(img)
        try:
            checked = check_result(result, tile)
        except ContractError as exc:
            raise CondorMagicError(
                f"Checked on a {tile.height} x {tile.width} window of tile {tile.index}: {exc}."
            ) from None
        nodata = self.options.get("nodata")
        if checked.array is not None and nodata not in (None, "nan"):
            _check_nodata_fits(nodata, checked.array.dtype)
        return checked


def plan(
    func: Callable,
    sources: Sources,
    cpus: int | str | None = None,
    mem: str | int | None = None,
    gpus: int | str | None = None,
    disk: str | int | None = None,
    name: str | None = None,
    tiles_per_job: int | None = None,
    output: str | os.PathLike | None = None,
    backend: str | None = None,
    nodata: float | str | None = None,
    code: str | None = None,
    transfer: bool = False,
    requirements: str | None = None,
    container: str | None = None,
    submit_commands: dict[str, str] | list[str] | None = None,
    mem_retry: str | None = None,
) -> Plan:
    """Check a run's arguments and build its job graph without submitting anything.

    Takes the arguments of :func:`submit` (but ``force`` and ``check``); ``%%condor --dry-run``
    shows the result. Raises :class:`CondorMagicError` with one sentence on bad input.
    """
    if not callable(func):
        raise CondorMagicError(f"{func!r} is not a function: pass the function to run on each tile.")
    if not isinstance(sources, Sources):
        raise CondorMagicError("sources must come from cm.sources(...) (or %condor_sources).")
    sources = sources.current()
    defaults = Resources(settings.get("cpus"), settings.get("mem"), 0, None)
    resources = parse_resources(cpus, mem, gpus, disk, defaults=defaults)
    retry_memory = parse_mem_retry(mem_retry, resources.mem)
    if tiles_per_job is not None:
        tiles_per_job = check_count(tiles_per_job, "--tiles-per-job")
    name = check_name(name or _default_name(func))
    nodata = _check_nodata(nodata)
    cwd = os.getcwd()
    output = _check_output(output, cwd)
    site = site_options(transfer, requirements, container, submit_commands)
    if transfer and sources.collections():
        raise CondorMagicError(
            f"--transfer does not send the scenes of a collection ({', '.join(sources.collections())}) with the jobs: "
            "use it where the execute nodes see the catalog's files, without --transfer."
        )
    backend_name, backend_reason = resolve(_check_backend(backend or settings.get("backend")))
    engine = get_backend(backend_name)
    note = engine.check(resources)
    function_bytes = function_file.dumps(func)
    code_line = 1  # the line of the function's file where ``code`` starts, for tracebacks
    if code is None:
        try:
            lines, code_line = inspect.getsourcelines(func)
            code, code_line = "".join(lines), max(code_line, 1)
        except (OSError, TypeError):
            code = ""
    options = {
        "cpus": resources.cpus,
        "mem": resources.mem,
        "gpus": resources.gpus,
        "disk": resources.disk,
        "mem_retry": retry_memory,
        "tiles_per_job": tiles_per_job,
        "output": output,
        "nodata": nodata,
        "backend": backend_name,
        "backend_reason": backend_reason,
        "schedd": settings.get("schedd"),
        "pool": settings.get("pool"),
        **site,
        "cwd": cwd,
    }
    content = content_hash(function_file.fingerprint(func), sources.identity(), options)
    return Plan(func, function_bytes, sources, name, options, content, engine, code, code_line, note)


def _check_nodata(value) -> float | str | None:
    """``nodata`` as a number or ``"nan"``; one sentence for anything else."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "nan":
        return "nan"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or math.isinf(number):
        raise CondorMagicError(
            f"--nodata {value!r} is not a number: give the value that marks no data, such as 0 or nan."
        )
    if math.isnan(number):
        return "nan"
    return int(number) if number.is_integer() else number


def _check_nodata_fits(nodata, dtype: np.dtype) -> None:
    if dtype.kind == "f":
        return
    info = np.iinfo(dtype)
    if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
        raise CondorMagicError(
            f"--nodata {nodata} cannot be stored in the function's {dtype} output (which holds whole numbers "
            f"from {info.min} to {info.max}): choose a value in that range, or return another dtype."
        )


def _check_output(output, cwd: str) -> str | None:
    """The absolute path of ``--output`` (relative to the directory the cell ran in), if it can be written."""
    if output is None or output == "":
        return None
    path = Path(os.path.expanduser(os.fspath(output)))
    path = path if path.is_absolute() else Path(cwd) / path
    if path.is_dir():
        raise CondorMagicError(f"--output {output} is a folder: give a file name, such as {path / 'result.tif'}.")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise CondorMagicError(f"--output {output} cannot be written: {folder} is not a folder you can write to.")
    if path.exists() and not os.access(path, os.W_OK):
        raise CondorMagicError(f"--output {output} cannot be written: the file exists and is read-only.")
    return str(path)


def _check_backend(name) -> str:
    if name not in ("local", "htcondor", "auto"):
        raise CondorMagicError(f"Unknown backend {name!r}: use local, htcondor or auto.")
    return name


def submit(func: Callable, sources: Sources, force: bool = False, check: bool = True, **kwargs) -> Run:
    """Run ``func`` over every tile of ``sources`` as a cluster of jobs.

    Parameters
    ----------
    func : callable
        ``func(img)``, where ``img`` holds one array per source (see the README's
        function contract). Returns an array of the tile's rows and cols, a dict of named
        arrays, ``(result, metrics)``, a metrics dict, or ``None``.
    sources : Sources
        From :func:`condormagic.sources`.
    force : bool
        Submit again even if a run of the same function, sources and options exists.
    check : bool
        Run ``func`` here on a small window of the first tile first, and submit nothing if it fails.
    cpus, mem, gpus, disk :
        Resources each job requests; ``mem`` and ``disk`` as HTCondor reads them
        (``"6GB"``, ``"6000MB"``, or a number of MB).
    mem_retry : str, optional
        ``"MAX"``, ``"MAX xF"`` or ``"MAX +SIZE"``: a job that goes over its memory runs again
        with more (doubled, times F, or plus SIZE), up to MAX, without the user (HTCondor's
        ``retry_request_memory_increase`` and ``retry_request_memory_max``; the local backend
        does the same).
    name : str, optional
        The run's name (HTCondor's ``JobBatchName``); default: the function's name.
    tiles_per_job : int, optional
        Default: jobs of up to 16 million pixels, at least one per slot and about four per
        slot for big tiles, so that cores stay busy and start-up is shared.
    output : str, optional
        Path of the Cloud-Optimized GeoTIFF (relative to the current directory); default
        ``output.tif`` in the run directory.
    backend : {"local", "htcondor", "auto"}, optional
    nodata : float or "nan", optional
        Nodata of the output; default NaN for float outputs, none for integers (where tiles
        were skipped or returned nothing: the grid source's nodata, else 0).
    code : str, optional
        The source text shown in tracebacks (``%%condor`` passes the cell); default the
        function's source.
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
    return submit_plan(plan(func, sources, **kwargs), force=force, check=check)


def submit_plan(p: Plan, force: bool = False, check: bool = True, dashboard_allowed: bool = False) -> Run:
    """Attach to the run a :class:`Plan` already made, or check its function and submit it.

    Several processes submitting the same plan at once make one run: the first makes it, the
    others wait for its submission and attach to it.
    """
    if not force:
        existing = p.existing()
        if existing is not None:
            existing.attached = True
            return existing
    if not dashboard_allowed:
        refuse_in_dashboard("Submitting jobs")
    if check:
        p.check()
    if p.note:
        print(p.note)
    root = settings.runs_dir()
    run_id = p.content_hash
    taken = (root / run_id).exists() or (root / run_id).is_symlink()
    if taken and not force:
        existing = p.existing()  # another process made it while this one checked the function
        if existing is not None:
            existing.attached = True
            return existing
    # A forced run, or one whose name another folder holds (not one of this user's runs), gets an
    # id of its own: the time, and random digits for two submissions in one second.
    if force or taken:
        run_id = _unique_id(p.content_hash)
    try:
        return _submit_new(p, run_id)
    except FileExistsError:
        if force:
            return _submit_new(p, _unique_id(p.content_hash))
        existing = p.existing()  # another process made it a moment ago: wait for its submission
        if existing is not None:
            existing.attached = True
            return existing
        return _submit_new(p, _unique_id(p.content_hash))


def _unique_id(content_hash: str) -> str:
    return f"{content_hash}-{time.strftime('%Y%m%d%H%M%S')}-{os.urandom(3).hex()}"


def _submit_new(p: Plan, run_id: str) -> Run:
    graph = p.graph
    src = p.sources
    manifest = Manifest(
        id=run_id,
        content_hash=p.content_hash,
        name=p.name,
        grid=src.grid,
        tiling=src.tiles,
        sources=manifest_sources(src, graph),
        jobs=graph.jobs,
        options=p.options,
        created=time.time(),
        code=p.code,
        code_line=p.code_line,
        grid_from=src.grid_from,
        mask=src.mask,
        skipped=graph.skipped,
    )
    with creating(settings.runs_dir(), run_id, manifest.dumps(), p.function_bytes) as path:
        p.engine.submit(RunDir(path), manifest, list(range(graph.n_jobs)))
    return Run(path)


def _default_name(func: Callable) -> str:
    """The function's name as a run name: ``<lambda>`` becomes ``lambda``, a nameless callable ``run``."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.\-]", "", str(getattr(func, "__name__", "")))[:100].lstrip("_.-")
    return name or "run"


def run(name_or_id: str) -> Run:
    """Find a run by id, id prefix, or name (the newest of that name).

    A run whose queued jobs lost their local runner (killed, or the machine restarted) is
    resumed: a new runner takes them over.
    """
    found = find_run(name_or_id)
    found.watch()
    return found


def runs() -> list[Run]:
    """Every run in the runs directory, newest first."""
    return list_runs()


def configure(**values) -> dict:
    """Change settings for this process (``cm.configure(runs_dir="~/runs", mem="4GB")``); return them all.

    The settings: ``backend``, ``runs_dir``, ``cpus``, ``mem``, ``tile``, ``python``, ``schedd``,
    ``pool``, ``http_timeout``, ``basemap``, ``dashboard_submit`` (see the README).
    """
    settings.set(**values)
    return {key: settings.get(key) for key in settings.SETTINGS}


def dashboard(root: str | os.PathLike | None = None):
    """Every run in the runs directory as a table (ipywidgets); picking one opens its monitor."""
    from .display.dashboard import Dashboard

    return Dashboard(lambda: list_runs(root))


def explore(
    src, func: Callable | None = None, name: str | None = None, units: dict | None = None, classes: dict | None = None
):
    """A map of ``src`` rendered by the kernel for what is on screen, with ``func`` applied live.

    Parameters
    ----------
    src : Sources, str or Run
        ``cm.sources(...)`` (every source, the grid's outline and tiles), the path of a raster,
        or a run (its output at full resolution beside its inputs, as ``run.explore()``).
    func : callable, optional
        ``func(img)`` as for :func:`submit`: computed on the pixels on screen (a preview at
        screen resolution, split against the first source); nothing is submitted.
    name : str, optional
        The function layer's name (default: the function's).
    units : dict, optional
        ``{layer name: units}`` for the legends, where the files do not say.
    classes : dict, optional
        ``{layer name: {value: label}}``: the names of an integer layer's classes, for its legend.

    Returns
    -------
    Explorer
        An ipywidgets widget: layers with band, stretch, colour, opacity and split controls,
        and a pixel inspector (click the map).
    """
    from .display.explorer import explore as make

    try:
        return make(src, func, name=name, units=units, classes=classes)
    except (TypeError, ValueError, FileNotFoundError, NotImplementedError) as exc:
        raise CondorMagicError(str(exc)) from None
