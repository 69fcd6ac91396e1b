"""The job description both schedulers take: an ``htcondor2.Submit`` plus item data.

Every value that comes from a user (run name, paths) is quoted here, in HTCondor's
own syntax, so that it can never change the meaning of the description.
"""

from __future__ import annotations

import os
import re
import sys

from .. import config
from ..errors import CondorMagicError
from ..rundir.exitcodes import PERMANENT
from ..rundir.layout import RunDir
from ..rundir.manifest import Manifest
from ..tiling.source import gdal_http_options
from .submitlang import classad_string, quote_arguments, submit_path

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "GDAL_NUM_THREADS",
)


def executable() -> str:
    """The interpreter the jobs run: the ``python`` setting, else this process's own.

    It comes from the submitting user's settings, never from a run directory's files.
    """
    return config.get("python") or sys.executable


def describe_run(layout: RunDir, manifest: Manifest, inputs: list[str] | None = None) -> dict[str, str]:
    """The submit description of a run's jobs (see :func:`build_description`), run by :func:`executable`."""
    return build_description(str(layout.path), manifest.id, manifest.name, manifest.options, inputs=inputs)


def build_description(
    run_dir: str,
    run_id: str,
    name: str,
    options: dict,
    executable_path: str | None = None,
    inputs: list[str] | None = None,
) -> dict[str, str]:
    """The submit description of a run's jobs, as submit commands.

    Parameters
    ----------
    run_dir : str
        The run directory (absolute), visible on the execute nodes.
    run_id, name : str
        Recorded as ``My.CondormagicRun`` and ``My.JobBatchName``.
    options : dict
        ``cpus``, ``mem`` (MB), ``disk`` (MB or None), ``gpus``, ``cwd``, ``mem_retry`` (see
        :func:`memory_retry_commands`); and the site's needs
        (see :func:`site_options`): ``transfer``, ``requirements``, ``container``, ``submit``.
    executable_path : str, optional
        The interpreter on the execute nodes; default :func:`executable` (the user's setting).
    inputs : list of str, optional
        With ``transfer``: the source files to send with each job, besides the
        function and ``transfer/manifest.json`` (the manifest as the job sees it).
    """
    cpus = int(options.get("cpus", 1))
    mem = int(options["mem"])
    env = {var: str(cpus) for var in THREAD_VARIABLES}
    env["GDAL_CACHEMAX"] = str(max(64, mem // 4))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(gdal_http_options())
    description = {
        "universe": "vanilla",
        "executable": submit_path(executable_path or executable()),
        "arguments": quote_arguments(["-m", "condormagic.worker", run_dir, "$(job)"], macros=("$(job)",)),
        "request_cpus": str(cpus),
        "request_memory": str(mem),
        "log": submit_path(os.path.join(run_dir, "events.log")),
        # Relative paths in the function mean what they meant in the notebook.
        "initialdir": submit_path(options.get("cwd") or run_dir),
        "output": os.path.join(submit_path(run_dir), "logs", "$(ClusterId).$(ProcId).out"),
        "should_transfer_files": "NO",
        "environment": quote_arguments([f"{k}={v}" for k, v in env.items()]),
        "max_retries": "3",
        # The worker's exit codes for failures no retry changes (the function raised, returned
        # the wrong thing, was interrupted or exited): see condormagic.worker.
        "retry_until": " || ".join(f"ExitCode =?= {code}" for code in PERMANENT),
        "My.JobBatchName": classad_string(name),
        "My.CondormagicRun": classad_string(run_id),
    }
    description["error"] = description["output"][: -len(".out")] + ".err"
    description.update(memory_retry_commands(mem, options.get("mem_retry")))
    if options.get("disk"):
        description["request_disk"] = f"{int(options['disk'])}MB"
    if options.get("gpus"):
        description["request_gpus"] = str(int(options["gpus"]))
    if options.get("transfer"):
        description.update(_transfer_commands(run_dir, inputs or []))
    return _site_commands(description, options)


def memory_retry_commands(mem: int, retry: dict | None) -> dict[str, str]:
    """``--mem-retry`` as HTCondor's own commands: a job that goes over its memory is evicted
    and runs again with more (``retry_request_memory_increase``), up to
    ``retry_request_memory_max``; then it is held, as without them.

    Nothing when not asked for, or when the job already asks for the most (a retry with more).
    """
    if not retry or int(retry["max"]) <= mem:
        return {}
    if retry.get("step"):
        increase = f"RequestMemory + {int(retry['step'])}"
    else:
        factor = float(retry.get("factor") or 2)
        increase = f"RequestMemory * {int(factor)}" if factor.is_integer() else f"int(RequestMemory * {factor:g})"
    return {"retry_request_memory_increase": increase, "retry_request_memory_max": str(int(retry["max"]))}


# -- pools without a shared file system -------------------------------------------------------
TRANSFER_MANIFEST = os.path.join("transfer", "manifest.json")
OUTPUT_DIRS = ("tiles", "metrics")


def _transfer_commands(run_dir: str, inputs: list[str]) -> dict[str, str]:
    """Send the function, the manifest and the sources in; bring tiles and metrics back.

    The job starts in its scratch directory, where the inputs land by their base
    names; the worker reads and writes there (``RUN_DIR`` and ``OUT_DIR`` are ``.``).
    """
    for path in inputs:
        if "," in path:
            raise CondorMagicError(f"--transfer cannot send {path!r}: its path has a comma; rename it.")
    if '"' in run_dir:
        raise CondorMagicError(
            f"--transfer cannot bring results back to {run_dir!r}: its path has a double quote; "
            "choose another runs directory (%condor_config runs_dir=...)."
        )
    remaps = "; ".join(f"{d} = {_remap_target(os.path.join(run_dir, d))}" for d in OUTPUT_DIRS)
    files = ["function.pkl", TRANSFER_MANIFEST, *inputs]
    return {
        "arguments": quote_arguments(["-m", "condormagic.worker", ".", "$(job)", "."], macros=("$(job)",)),
        "initialdir": submit_path(run_dir),
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_executable": "False",
        "transfer_input_files": ", ".join(submit_path(f) for f in files),
        "transfer_output_files": ", ".join(OUTPUT_DIRS),
        "transfer_output_remaps": f'"{remaps}"',
    }


def _remap_target(path: str) -> str:
    """A path as the target of ``transfer_output_remaps``: ``;`` escaped, ``$`` not a macro."""
    return submit_path(path).replace(";", "\\;")


# -- the site's own needs ----------------------------------------------------------------------
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# Commands that condormagic's own machinery depends on: a site cannot change them.
RESERVED = {
    "executable",
    "arguments",
    "args",
    "log",
    "output",
    "error",
    "input",
    "initialdir",
    "initial_dir",
    "iwd",
    "queue",
    "transfer_input_files",
    "transfer_output_files",
    "transfer_output_remaps",
    "my.condormagicrun",
    # what condormagic's own options say: --cpus, --mem, --disk, --gpus, --name, --container, --mem-retry
    "request_cpus",
    "request_memory",
    "request_disk",
    "request_gpus",
    "batch_name",
    "my.jobbatchname",
    "universe",
    "container_image",
    "environment",
    "retry_request_memory",
    "retry_request_memory_increase",
    "retry_request_memory_max",
}


_OWN_OPTION = {
    "request_cpus": "--cpus",
    "request_memory": "--mem",
    "request_disk": "--disk",
    "request_gpus": "--gpus",
    "batch_name": "--name",
    "my.jobbatchname": "--name",
    "universe": "--container",
    "container_image": "--container",
    "retry_request_memory": "--mem-retry",
    "retry_request_memory_increase": "--mem-retry",
    "retry_request_memory_max": "--mem-retry",
}


def site_options(
    transfer: bool = False,
    requirements: str | None = None,
    container: str | None = None,
    submit: dict[str, str] | list[str] | None = None,
) -> dict:
    """Check the site's pass-throughs before anything is written; return them as run options.

    Parameters
    ----------
    transfer : bool
        For pools without a shared file system: HTCondor transfers the function, the
        manifest and the local source files in, and the tiles and metrics back.
    requirements : str, optional
        A ClassAd expression the execute slots must satisfy (``requirements``).
    container : str, optional
        An image to run each job in (container universe, ``container_image``).
    submit : dict or list of ``"KEY=VALUE"``, optional
        Any other submit commands, such as ``accounting_group`` or ``+ProjectName``.

    Raises
    ------
    CondorMagicError
        A key that is not a submit command name or that condormagic sets itself, a value
        with a line break, or requirements that are not a ClassAd expression.
    """
    commands = {("My." + k[1:] if k.startswith("+") else k): v for k, v in _parse_commands(submit).items()}
    for key, value in commands.items():
        if not _KEY.match(key):
            raise CondorMagicError(f"--submit {key!r} is not a submit command name: use letters, digits and '_'.")
        if key.lower() in RESERVED:
            raise CondorMagicError(
                f"--submit {key} is set by condormagic itself: use {_OWN_OPTION.get(key.lower(), 'its own option')}, "
                "not --submit."
            )
        _refuse_line_break(f"--submit {key}", value)
    if requirements is not None:
        requirements = str(requirements).strip()
        _refuse_line_break("--requirements", requirements)
        _check_expression(requirements)
    if container is not None:
        container = str(container).strip()
        _refuse_line_break("--container", container)
        if not container:
            raise CondorMagicError("--container needs an image name, such as docker://python:3.11.")
    return {
        "transfer": bool(transfer),
        "requirements": requirements or None,
        "container": container or None,
        "submit": commands,
    }


def _parse_commands(submit: dict[str, str] | list[str] | None) -> dict[str, str]:
    if not submit:
        return {}
    if isinstance(submit, dict):
        return {str(k).strip(): str(v).strip() for k, v in submit.items()}
    commands = {}
    for item in submit:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise CondorMagicError(f"--submit {item!r} is not KEY=VALUE, such as accounting_group=group_eo.")
        commands[key.strip()] = value.strip()
    return commands


def _refuse_line_break(what: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise CondorMagicError(f"{what} contains a line break, which a submit command cannot hold: use one line.")


def _check_expression(expression: str) -> None:
    import classad2

    try:
        classad2.ExprTree(expression)
    except Exception:
        raise CondorMagicError(
            f"--requirements {expression!r} is not a ClassAd expression; write one such as "
            '(OpSysAndVer == "AlmaLinux9") && (Memory >= 8000).'
        ) from None


def _site_commands(description: dict[str, str], options: dict) -> dict[str, str]:
    if options.get("requirements"):
        description["requirements"] = options["requirements"]
    if options.get("container"):
        description["universe"] = "container"
        description["container_image"] = submit_path(options["container"])
    description.update(options.get("submit") or {})
    return description


def build_submit(description: dict[str, str]):
    """The real ``htcondor2.Submit`` for a description."""
    import htcondor2

    return htcondor2.Submit(description)
