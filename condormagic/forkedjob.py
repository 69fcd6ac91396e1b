"""A local job's process, forked from a server that has already imported the worker.

The local runner starts each job as its own process, as HTCondor does (its own memory limit,
its own kill, its own exit code), but not as a new Python: a fork server (``multiprocessing``'s
``forkserver``) imports this module once, with numpy, rasterio and the worker, and forks a
process per job that starts computing within milliseconds. After the fork the job becomes the
leader of its own process group, takes its own stdout and stderr, environment and folder, sets
its BLAS and OpenMP threads to its CPU request (threadpoolctl) and names itself after the job
(what ``ps`` shows), then runs the worker as ``python -m condormagic.worker`` would.
"""

from __future__ import annotations

import io
import os
import sys
import traceback

from threadpoolctl import threadpool_limits

try:
    from setproctitle import setproctitle
except ImportError:
    setproctitle = None

from . import worker
from .rundir.exitcodes import EXIT_SETUP

worker.tile_codec()  # found out once, in the server, rather than in every job


def run(args: list[str], env: dict[str, str], cwd: str, out: str, err: str, title: str, cpus: int) -> None:
    """The forked job: ``args`` are the worker's (``RUN_DIR JOB [OUT_DIR]``). Exits with the worker's code."""
    os.setsid()
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    _set_title(title)  # before the environment changes: setproctitle needs it where the process began
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    code = EXIT_SETUP
    try:
        with threadpool_limits(limits=cpus):
            code = worker.main(args)
    except BaseException:  # noqa: BLE001 - the worker reports its own failures; this is anything else
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _set_title(title: str) -> None:
    if setproctitle is not None:  # without it, only what ps shows is lost
        setproctitle(title)
