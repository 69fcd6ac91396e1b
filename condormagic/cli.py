"""The ``condormagic`` command: runs, status, rm, retry, worker, demo, voila."""

from __future__ import annotations

import sys

import click

from .errors import CondorMagicError
from .resources import RESOURCE_OPTIONS


def _find(name: str):
    from .runhandle import find_run

    try:
        return find_run(name)
    except CondorMagicError as exc:
        raise click.ClickException(str(exc)) from None


def resource_options(func):
    """``--cpus``/``--mem``/``--gpus``/``--disk``, declared once (:data:`RESOURCE_OPTIONS`)."""
    for option in reversed(RESOURCE_OPTIONS):
        func = click.option(f"--{option.name}", metavar=option.metavar, help=option.help)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="condormagic")
def main() -> None:
    """Scale a NumPy function over big rasters, from a notebook cell to HTCondor."""


@main.command()
def runs() -> None:
    """List the runs in the runs directory, newest first."""
    from . import config
    from .display.cards import age
    from .runhandle import list_runs

    try:
        found = list_runs()
    except CondorMagicError as exc:
        raise click.ClickException(str(exc)) from None
    if not found:
        click.echo(f"No runs yet in {config.runs_dir()}.")
        return
    for run in found:
        counts = ", ".join(f"{k} {v}" for k, v in run.status().items() if v)
        click.echo(f"{run.name:20} {run.id:32} {run.backend:8} {run.n_jobs:5} jobs  {counts:40} {age(run.created)}")


@main.command()
@click.argument("name")
def status(name: str) -> None:
    """Show one run's jobs and where its output is."""
    from .display.cards import run_text

    run = _find(name)
    click.echo(run_text(run))


@main.command()
@click.argument("name")
def rm(name: str) -> None:
    """Remove a run's idle, running and held jobs."""
    run = _find(name)
    try:
        n = run.remove()
    except CondorMagicError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Removed {n} job(s) of {run.name} ({run.id})." if n else f"{run.name} has no job left to remove.")


@main.command()
@click.argument("name")
@resource_options
def retry(name: str, cpus: str | None, mem: str | None, gpus: str | None, disk: str | None) -> None:
    """Submit a run's failed, held and removed jobs again, as a new cluster (with new requests, if given)."""
    run = _find(name)
    if gpus is not None:
        raise click.ClickException("--gpus cannot change on a retry: submit the cell again with --gpus and --force.")
    try:
        jobs = run.retry(cpus=cpus, mem=mem, disk=disk)
    except CondorMagicError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Resubmitted {len(jobs)} job(s) of {run.name}: {jobs}." if jobs else f"{run.name} has nothing to retry."
    )


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("run_dir")
@click.argument("job", type=int)
@click.argument("out_dir", required=False)
def worker(run_dir: str, job: int, out_dir: str | None) -> None:
    """Run one job of a run (what the scheduler starts; same as python -m condormagic.worker)."""
    from .worker import main as worker_main

    sys.exit(worker_main([run_dir, str(job)] + ([out_dir] if out_dir else [])))


@main.command()
@click.option("--size", default=4096, show_default=True, help="pixels per side of the generated rasters")
@click.option(
    "--workdir", type=click.Path(file_okay=False), help="run the notebook in this folder (default: examples/)"
)
def demo(size: int, workdir: str | None) -> None:
    """Run examples/deforestation.ipynb end to end on the local backend and print what it found."""
    from .demo import run_demo

    try:
        output, percent, notebook = run_demo(size, workdir)
    except CondorMagicError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Executed notebook: {notebook}")
    click.echo(f"Output GeoTIFF: {output}")
    click.echo(f"Deforestation inside the forest polygons: {percent:.2f}%")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("--port", type=int, default=8866, show_default=True, help="the port Voila listens on")
@click.option("--ip", default="127.0.0.1", show_default=True, help="the address Voila listens on")
@click.option("--theme", type=click.Choice(["light", "dark"]), default="light", show_default=True)
@click.option("--browser/--no-browser", default=False, show_default=True, help="open a web browser")
@click.argument("voila_args", nargs=-1, type=click.UNPROCESSED)
def voila(notebook: str, port: int, ip: str, theme: str, browser: bool, voila_args: tuple[str, ...]) -> None:
    """Serve NOTEBOOK as a dashboard with Voila and the condormagic template.

    Code, magics and their cells are not shown; %%condor cells attach to the runs they
    already made and never submit (unless the cell says --allow-dashboard-submit).
    Arguments after the options go to Voila as they are.
    """
    import os
    import signal
    import subprocess

    from .voila import template_env

    args = [
        sys.executable,
        "-m",
        "voila",
        "--template=condormagic",
        f"--port={port}",
        f"--Voila.ip={ip}",
        f"--theme={theme}",
        "--VoilaConfiguration.show_tracebacks=False",
        *([] if browser else ["--no-browser"]),
        *voila_args,
        notebook,
    ]
    try:
        with template_env(dict(os.environ)) as env:
            click.echo(f"Serving {notebook} at http://{ip}:{port}/ (Ctrl-C stops it)")
            server = subprocess.Popen(args, env=env)
            # Stopping this command stops the server (and its kernels) with it, whatever the signal.
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, lambda signum, _frame: server.send_signal(signum))
            try:
                code = server.wait()
            except KeyboardInterrupt:
                server.terminate()
                code = server.wait()
    except CondorMagicError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


if __name__ == "__main__":
    main()
