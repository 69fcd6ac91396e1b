"""The IPython magics: they parse arguments and delegate; nothing here knows how jobs run."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from html import escape

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import HTML, display
from traitlets import Int, Unicode

from .. import api, config
from ..errors import CondorMagicError
from ..runhandle import find_run, list_runs
from ..tiling import Sources
from ..tiling import sources as make_sources
from ..tiling.source import RESERVED
from ..voila import in_voila
from .args import mem_retry_argument, pairs, parse, resource_arguments, words
from .cell import pick_function


class _Shown:
    """Something with an HTML and a text form, for ``display``."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


_MISSING = object()


def _usage(exc: Exception) -> UsageError:
    return UsageError(str(exc))


@magics_class
class CondorMagics(Magics):
    """``%condor_sources``, ``%%condor`` and the run-steering line magics.

    Settings (also ``c.CondorMagics.<name>`` in IPython configuration, and
    ``CONDORMAGIC_<NAME>`` environment variables): ``backend``, ``runs_dir``,
    ``cpus``, ``mem``, ``tile``.
    """

    backend = Unicode(None, allow_none=True, help="local, htcondor or auto").tag(config=True)
    runs_dir = Unicode(None, allow_none=True, help="where run directories are made").tag(config=True)
    cpus = Int(None, allow_none=True, help="default --cpus").tag(config=True)
    mem = Unicode(None, allow_none=True, help="default --mem").tag(config=True)
    tile = Int(None, allow_none=True, help="default tile size of %condor_sources").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        given = {k: getattr(self, k) for k in ("backend", "runs_dir", "cpus", "mem", "tile")}
        try:
            config.set(**{k: v for k, v in given.items() if v is not None})
        except CondorMagicError as exc:
            raise UsageError(f"c.CondorMagics: {exc}") from None
        self.sources = None
        self.dashboard_reason: str | None = None

    # -- sources ----------------------------------------------------------------------------
    @magic_arguments()
    @argument("pairs", nargs="*", help="NAME=PATH for each raster, in the order the function receives them")
    @argument("--grid", help="the source whose grid is the target grid (default: the first)")
    @argument("--crs", help="an explicit target grid's CRS (with --res and --bounds)")
    @argument("--res", type=float, nargs="+", help="an explicit grid's resolution: one value, or X Y")
    @argument("--bounds", type=float, nargs=4, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"))
    @argument("--tile", help="tile size in pixels (default 1024)")
    @argument("--halo", default="0", help="pixels of context read around every tile")
    @argument("--mask", help="a source whose all-zero tiles are skipped")
    @argument("--resampling", action="append", default=[], metavar="NAME=METHOD", help="for warped sources")
    @argument(
        "--no-overviews",
        action="store_true",
        help="read every source at full resolution, even where the grid is coarser than it (default: from the "
        "overview gdalwarp -ovr AUTO would pick)",
    )
    @argument("--bands", action="append", default=[], metavar="NAME=B1,B2", help="a collection's bands (asset keys)")
    @argument("--datetime", action="append", default=[], metavar="[NAME=]START/END", help="a collection's dates")
    @argument("--max-cloud", action="append", default=[], metavar="[NAME=]PERCENT", help="a collection's cloud cover")
    @argument(
        "--group-by", action="append", default=[], metavar="[NAME=]solar_day|none", help="a collection's time steps"
    )
    @line_magic
    def condor_sources(self, line: str):
        """Declare the raster sources of the next ``%%condor`` cells and show them.

        Paths with spaces are quoted as in a shell: ``%condor_sources "dem=data/my dems/dem.tif"``.

        A collection of scenes is ``NAME=stac:CATALOG`` (a STAC catalog, collection or
        ItemCollection file or URL); the function receives it as a 4-D array (time, band, rows,
        cols), with ``img.times[NAME]`` and ``img.bands[NAME]``. Its options take ``NAME=`` or,
        without it, apply to every collection::

            %condor_sources s2=stac:data/s2/catalog.json --bands s2=B04,B08,SCL
                --datetime 2020-08-01/2020-10-31 --max-cloud 30 --group-by solar_day
                --crs EPSG:32632 --res 20 --tile 1024

        --bands NAME=B04,B08,SCL   the asset keys read, in order (default: the data assets every item has)
        --datetime START/END       keep items acquired then (2020-08-01/2020-10-31; a date-only end is the
                                   whole day; .. leaves an end open; one date is that day)
        --max-cloud PERCENT        keep items whose eo:cloud_cover is at most PERCENT
        --group-by solar_day|none  one time step per local solar day (granules of one pass mosaicked,
                                   first valid pixel in the catalog's order), or per item (default)

        A collection needs --crs and --res (without --bounds the grid covers its items), or a
        raster file source for the grid; ``--resampling s2=bilinear`` applies to all its bands.
        In Python: ``cm.sources(s2=cm.collection(...), ...)``.

        A source (or a collection's asset) finer than the grid is read from its overview, the one
        ``gdalwarp -ovr AUTO`` would warp from (chosen once for the whole grid: every tile reads
        the same level); ``--no-overviews`` reads every source at full resolution instead, which
        gives other pixels and so another run (``cm.sources(..., overviews=False)`` in Python).
        """
        args = parse(self.condor_sources, line)
        paths = pairs(args.pairs, "a source")
        if not paths:
            raise UsageError("Name at least one source: %condor_sources dem=data/dem.tif [--grid dem] [--tile 1024].")
        reserved = [name for name in paths if name in RESERVED]
        if reserved:
            raise UsageError(
                f"{reserved[0]!r} cannot name a source: it is an option of %condor_sources ({', '.join(RESERVED)}); "
                f"name it otherwise, such as {reserved[0]}_src={paths[reserved[0]]}."
            )
        res = None if args.res is None else (args.res[0] if len(args.res) == 1 else tuple(args.res[:2]))
        try:
            paths = _collections(paths, args)
            self.sources = make_sources(
                grid=args.grid,
                tile=args.tile if args.tile is not None else config.get("tile"),
                halo=args.halo,
                resampling=pairs(args.resampling, "a resampling"),
                mask=args.mask,
                crs=args.crs,
                res=res,
                bounds=tuple(args.bounds) if args.bounds else None,
                overviews=not args.no_overviews,
                **paths,
            )
        except CondorMagicError as exc:
            if in_voila():  # a dashboard's %%condor then says its results are not computed
                self.sources = None
                return None
            raise _usage(exc) from None
        display(sources_view(self.sources))

    # -- the cell -----------------------------------------------------------------------------
    @magic_arguments()
    @resource_arguments()
    @mem_retry_argument()
    @argument("--name", help="the run's name (JobBatchName); default: the function's name")
    @argument("--func", help="which function of the cell to run, when it defines several")
    @argument("--sources", help="a variable holding cm.sources(...), instead of %%condor_sources")
    @argument("--tiles-per-job", help="tiles computed by each job")
    @argument("--output", help="path of the output Cloud-Optimized GeoTIFF (relative to the notebook's folder)")
    @argument("--nodata", help="the output's nodata value (default: NaN for floats; see the README)")
    @argument("--backend", choices=["local", "htcondor", "auto"], help="where the jobs run")
    @argument("--transfer", action="store_true", help="HTCondor: transfer inputs and results (no shared file system)")
    @argument("--requirements", help="HTCondor: a requirements expression for the execute nodes")
    @argument("--container", help="HTCondor: run in this container image (container universe)")
    @argument("--submit", action="append", default=[], metavar="KEY=VALUE", help="HTCondor: any other submit command")
    @argument("--dry-run", action="store_true", help="show the job graph; submit nothing")
    @argument(
        "--preview", action="store_true", help="show the function live on a map of the whole grid; submit nothing"
    )
    @argument("--no-check", action="store_true", help="do not try the function on a small window before submitting")
    @argument("--force", action="store_true", help="submit again even if this cell already has a run")
    @argument("--wait", action="store_true", help="block until every job has finished")
    @argument(
        "--allow-dashboard-submit",
        action="store_true",
        help="under Voila, let a page load submit the jobs when no run exists, and steer them (default: only attach)",
    )
    @cell_magic
    def condor(self, line: str, cell: str):
        """Define the cell's function, then run it over every tile of the sources as jobs.

        The cell runs normally first, so its function exists in the notebook. Then the
        function is tried on a small window of the first tile (``--no-check`` skips that), the
        job graph is built and shown, the jobs are submitted (or, if a run of the same
        function, sources and options exists, that run is attached to), and the run is returned.
        """
        args = parse(self.condor, line)
        if in_voila() and not args.allow_dashboard_submit:
            return self._dashboard(args, cell)
        src = self._sources_for(args.sources)
        # The cell runs as any cell does: a syntax error or an exception shows as usual.
        result = self.shell.run_cell(cell, store_history=False)
        if not result.success:
            raise UsageError("The cell raised an error (shown above), so nothing was submitted.")
        try:
            func = self.shell.user_ns[pick_function(cell, args.func)]
            plan = _plan(args, cell, func, src)
            if args.preview:
                return self._preview(plan)
            existing = None if args.force else plan.existing()
            if existing is None and not args.no_check and not args.dry_run:
                _check(plan)
            if existing is None or args.dry_run:
                from ..display.graphview import graph_bundle

                header = "(dry run) " if args.dry_run else ""
                display(graph_bundle(plan.graph, plan.sources, plan.name, header), raw=True)
            if args.dry_run:
                print(
                    f"Dry run: {plan.graph.n_jobs} jobs would be submitted to {plan.options['backend']}; nothing was."
                )
                return None
            run = existing or api.submit_plan(
                plan, force=args.force, check=False, dashboard_allowed=args.allow_dashboard_submit
            )
        except CondorMagicError as exc:
            raise _usage(exc) from None
        if existing is not None:
            run.attached = True
            _say_attached(run, plan)
        run.dashboard_steering = args.allow_dashboard_submit
        if args.wait:
            run.wait()
        return run

    def _dashboard(self, args, cell: str):
        """``%%condor`` under Voila: attach to the run this same cell made, or say it is not computed.

        Never submits, never writes a run directory, and shows no error to the viewer.
        """
        from ..display.cards import not_computed_html

        def not_computed(reason: str) -> None:
            self.dashboard_reason = reason  # for the author; the viewer reads one friendly sentence
            display(HTML(not_computed_html()))

        try:
            src = self._sources_for(args.sources)
        except UsageError as exc:
            return not_computed(str(exc))
        result = self.shell.run_cell(cell, store_history=False)
        if not result.success:
            return not_computed("the cell raised an error")
        try:
            func = self.shell.user_ns[pick_function(cell, args.func)]
            plan = _plan(args, cell, func, src)
            run = plan.existing()
        except (CondorMagicError, UsageError) as exc:
            return not_computed(str(exc))
        if run is None:
            return not_computed(f"no run of this cell in {config.runs_dir()}")
        run.attached = True
        return run

    def _sources_for(self, variable: str | None) -> Sources:
        if variable:
            value = self.shell.user_ns.get(variable)
            if not isinstance(value, Sources):
                raise UsageError(f"--sources {variable}: no variable {variable} holding cm.sources(...) is defined.")
            return value
        if self.sources is None:
            raise UsageError(
                "No sources are declared: run %condor_sources NAME=PATH ... first, or pass --sources VARIABLE."
            )
        return self.sources

    def _preview(self, plan):
        """The cell's function applied live to what is on screen, over the whole grid; submits nothing."""
        try:
            explorer = api.explore(plan.sources, plan.func, name=plan.name)
        except CondorMagicError as exc:
            raise UsageError(f"Preview: {exc}") from None
        except Exception as exc:  # the function failed on the window it was tried on
            raise UsageError(
                f"Preview: {plan.name} failed ({type(exc).__name__}: {exc}); nothing was submitted."
            ) from None
        display(explorer)
        print(f"Preview of {plan.name} over the whole grid, computed at screen resolution; nothing was submitted.")
        return None

    @line_magic
    def condor_explore(self, line: str):
        """``%condor_explore [VAR ...]``: a map rendered for what is on screen.

        Without VAR: the sources of ``%condor_sources``. Each VAR names a variable holding
        ``cm.sources(...)``, a raster's path, a run (its output beside its inputs), or a function
        (applied live to the sources); a name that is no variable is looked up as a run's name.
        """
        import shlex

        src = func = run = None
        for word in shlex.split(line):
            value = self.shell.user_ns.get(word, _MISSING)
            if value is _MISSING:
                run = self._run(word)
            elif isinstance(value, Sources | str):
                src = value
            elif hasattr(value, "manifest") and hasattr(value, "output"):
                run = value
            elif callable(value):
                func = value
            else:
                raise UsageError(
                    f"%condor_explore {word}: it holds {type(value).__name__}; give sources, a raster's path, a run "
                    "or a function."
                )
        try:
            if run is not None:
                if func is not None or src is not None:
                    raise CondorMagicError("%condor_explore shows a run on its own (its output beside its inputs).")
                return api.explore(run)
            return api.explore(src if src is not None else self._sources_for(None), func)
        except CondorMagicError as exc:
            raise _usage(exc) from None

    # -- runs -----------------------------------------------------------------------------------
    @line_magic
    def condor_status(self, line: str):
        """``%condor_status [NAME]``: one run's status, or every run's."""
        name = line.strip()
        if name:
            return self._run(name)
        runs = list_runs()
        if not runs:
            print(f"No runs yet in {config.runs_dir()}.")
            return None
        from ..display.cards import runs_html

        return _Shown(runs_html(runs), "\n".join(repr(r) for r in runs))

    @line_magic
    def condor_dashboard(self, line: str):
        """``%condor_dashboard``: every run, newest first, with its progress; pick one to open its monitor."""
        return api.dashboard()

    @line_magic
    def condor_rm(self, line: str):
        """``%condor_rm NAME``: remove a run's unfinished jobs (not under Voila: a page load steers nothing)."""
        if in_voila():
            return None
        run = self._run(_one_name(line, "%condor_rm"))
        try:
            n = run.remove()
        except CondorMagicError as exc:
            raise _usage(exc) from None
        print(f"Removed {n} job(s) of {run.name} ({run.id})." if n else f"{run.name} has no job left to remove.")

    @magic_arguments()
    @argument("name", help="the run's name or id")
    @resource_arguments()
    @line_magic
    def condor_retry(self, line: str):
        """``%condor_retry NAME [--mem 8GB]``: submit a run's failed, held and removed jobs again.

        Under Voila it does nothing: a page load submits no jobs.
        """
        if in_voila():
            return None
        args = parse(self.condor_retry, line)
        run = self._run(args.name)
        try:
            jobs = run.retry(cpus=args.cpus, mem=words(args.mem), disk=words(args.disk))
        except CondorMagicError as exc:
            raise _usage(exc) from None
        print(f"Resubmitted {len(jobs)} job(s) of {run.name}: {jobs}." if jobs else f"{run.name} has nothing to retry.")
        return run

    @line_magic
    def condor_config(self, line: str):
        """``%condor_config [KEY=VALUE ...]``: show or change settings (backend, runs_dir, cpus, mem, tile...)."""
        import shlex

        try:
            config.set(**pairs(shlex.split(line), "a setting"))
        except (CondorMagicError, ValueError) as exc:
            raise _usage(exc) from None
        for key, setting in config.SETTINGS.items():
            value = config.get(key)
            default = value == (None if setting.default is None else setting.parse(setting.default))
            shown = f"{value}MB" if key == "mem" else value
            print(f"{key:16} = {shown!s}" + ("  (default)" if default else ""))

    def _run(self, name: str):
        try:
            return find_run(name)
        except CondorMagicError as exc:
            raise _usage(exc) from None


STAC_PREFIX = "stac:"


def _collections(paths: dict[str, str], args) -> dict:
    """``NAME=stac:CATALOG`` sources as collections, with their ``--bands``, ``--datetime``,
    ``--max-cloud`` and ``--group-by`` (each ``NAME=VALUE``, or a bare value for every collection)."""
    stac = [name for name, path in paths.items() if path.startswith(STAC_PREFIX)]

    def per_source(values: list[str], option: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for value in values:
            name, sep, rest = value.partition("=")
            if sep and name.isidentifier():
                if name not in stac:
                    raise CondorMagicError(
                        f"--{option} {value}: {name} is not a collection (NAME=stac:CATALOG); "
                        f"the collections are {', '.join(stac) or 'none'}."
                    )
                out[name] = rest
            else:
                out.update({n: value for n in stac})
        return out

    options = {
        "bands": per_source(args.bands, "bands"),
        "datetime": per_source(args.datetime, "datetime"),
        "max_cloud": per_source(args.max_cloud, "max-cloud"),
        "group_by": per_source(args.group_by, "group-by"),
    }
    if not stac and any(options.values()):
        raise CondorMagicError(
            "--bands, --datetime, --max-cloud and --group-by are for collections: declare one as NAME=stac:CATALOG."
        )
    out: dict = dict(paths)
    for name in stac:
        group_by = options["group_by"].get(name)
        if group_by is not None and group_by.lower() in ("none", "item", ""):
            group_by = None
        out[name] = api.collection(
            paths[name][len(STAC_PREFIX) :],
            bands=options["bands"].get(name),
            datetime=options["datetime"].get(name),
            max_cloud=options["max_cloud"].get(name),
            group_by=group_by,
        )
    return out


def _plan(args, cell: str, func, src) -> api.Plan:
    """The checked plan of a ``%%condor`` cell, from its parsed options."""
    return api.plan(
        func,
        src,
        cpus=args.cpus,
        mem=words(args.mem),
        gpus=args.gpus,
        disk=words(args.disk),
        mem_retry=words(args.mem_retry),
        name=args.name,
        tiles_per_job=args.tiles_per_job,
        output=args.output,
        nodata=args.nodata,
        backend=args.backend,
        code=cell,
        transfer=args.transfer,
        requirements=args.requirements,
        container=args.container,
        submit_commands=pairs(args.submit, "a submit command") or None,
    )


def _check(plan: api.Plan) -> None:
    """Try the function on a small window of the first tile; its own error (and traceback) if it fails."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            checked = plan.check()
    except CondorMagicError:
        raise
    except Exception as exc:
        sys.stdout.write(out.getvalue())
        # The user's own traceback, as the kernel shows any error of theirs; then one line.
        import traceback

        traceback.print_exception(type(exc), exc, _users_frames(exc.__traceback__), file=sys.stderr)
        raise UsageError(
            f"{plan.name} failed on a small window of the first tile ({type(exc).__name__}: {exc}), so nothing was "
            "submitted; fix it, or use --no-check for a function that needs whole tiles."
        ) from None
    if checked.array is None:
        what = "no array" + (f", metrics {', '.join(checked.metrics)}" if checked.metrics else "")
    else:
        bands = checked.array.shape[0]
        what = f"{checked.array.dtype}, {bands} band{'s' if bands > 1 else ''}"
        if checked.names:
            what += f" ({', '.join(checked.names)})"
    print(f"Checked {plan.name} on a small window of the first tile: it returns {what}.")


def _users_frames(tb):
    """The traceback from the first frame outside condormagic (the user's function) on."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package):
        tb = tb.tb_next
    return tb


def _say_attached(run, plan) -> None:
    from ..display.cards import age

    print(
        f"Attached to run {run.name} ({run.id}), made {age(run.created)} from the same function, inputs and "
        "options; no new jobs (--force submits again)."
    )
    changed = [k for k in ("cpus", "mem") if plan.options[k] != run.options[k]]
    if changed:
        asked = " ".join(f"--{k} {plan.options[k]}" for k in changed)
        queued = not run.settled
        print(
            f"It requested {', '.join(f'{k} {run.options[k]}' for k in changed)}: "
            + (f"%condor_rm {run.name}, then " if queued else "")
            + f"%condor_retry {run.name} {asked} resubmits its "
            + ("unfinished" if queued else "failed and held")
            + " jobs with the new request (resources are not part of what a run computes)."
        )


def _one_name(line: str, magic: str) -> str:
    import shlex

    names = shlex.split(line)
    if len(names) != 1:
        raise UsageError(f"{magic} takes one run name or id; `%condor_status` lists the runs.")
    return names[0]


def sources_view(src) -> _Shown:
    rows = src.table()
    cols = list(rows[0])
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows
    )
    g = src.grid
    caption = (
        f"grid {g.width:,} &times; {g.height:,} from <b>{escape(src.grid_from or 'explicit grid')}</b>, "
        f"{len(src.tiles):,} tiles of {src.tile} px"
        + (f", halo {src.halo}" if src.halo else "")
        + (f", mask {escape(src.mask)}" if src.mask else "")
    )
    html = f"<table><caption style='text-align:left'>{caption}</caption><tr>{head}</tr>{body}</table>"
    text = repr(src) + "\n" + "\n".join("  " + "  ".join(str(r[c]) for c in cols) for r in rows)
    return _Shown(html, text)


def load_ipython_extension(ipython) -> None:
    from .._version import __version__
    from ..backends import describe_default

    ipython.register_magics(CondorMagics)
    print(f"condormagic {__version__}: %%condor runs on {describe_default()}", file=sys.stdout)
