"""The job description both schedulers take: an ``htcondor2.Submit`` plus item data.

Every value that comes from a user (run name, paths) is quoted here, in HTCondor's
own syntax, so that it can never change the meaning of the description.
"""

from __future__ import annotations

import os
import re
import sys

from ..errors import CondorMagicError

_MACRO = re.compile(r"\$\((\w+)\)")
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "GDAL_NUM_THREADS",
)


def quote_argument(arg: str, literal: bool = True) -> str:
    """Quote one argument for HTCondor's new argument syntax (inside double quotes).

    With ``literal``, a ``$`` cannot start a macro: it is written as ``$(DOLLAR)``.
    """
    _refuse_newline(arg)
    if literal:
        arg = arg.replace("$", "$(DOLLAR)")
    arg = arg.replace('"', '""')
    if not arg or any(c in arg for c in " \t'"):
        return "'" + arg.replace("'", "''") + "'"
    return arg


def quote_arguments(args: list[str], macros: tuple[str, ...] = ()) -> str:
    """``"a 'b c' d"``: a whole ``arguments`` value in the new syntax.

    Arguments in ``macros`` (such as ``$(job)``) are left for HTCondor to expand.
    """
    return '"' + " ".join(a if a in macros else quote_argument(a) for a in args) + '"'


def expand_macros(value: str, macros: dict[str, str]) -> str:
    """Expand ``$(NAME)`` macros in one pass, as the local backend does for a description."""
    return _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), value)


def split_arguments(value: str) -> list[str]:
    """Split an ``arguments`` or ``environment`` value written in the new syntax."""
    value = value.strip()
    if not (value.startswith('"') and value.endswith('"')):
        return value.split()
    text = value[1:-1].replace('""', '"')
    args, current, quoted, i, started = [], [], False, 0, False
    while i < len(text):
        c = text[i]
        if c == "'":
            if quoted and text[i + 1 : i + 2] == "'":
                current.append("'")
                i += 1
            else:
                quoted, started = not quoted, True
        elif c in " \t" and not quoted:
            if current or started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
        i += 1
    if current or started:
        args.append("".join(current))
    return args


def submit_path(path: str) -> str:
    """A path as a submit-file value: ``$`` cannot start a macro, newlines are refused."""
    _refuse_newline(path)
    return path.replace("$", "$(DOLLAR)")


def classad_string(text: str) -> str:
    _refuse_newline(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _refuse_newline(text: str) -> None:
    if "\n" in text or "\r" in text:
        raise CondorMagicError(f"{text!r} contains a line break, which a submit description cannot hold; rename it.")


def build_description(run_dir: str, run_id: str, name: str, options: dict, python: str | None = None) -> dict[str, str]:
    """The submit description of a run's jobs, as submit commands.

    Parameters
    ----------
    run_dir : str
        The run directory (absolute), visible on the execute nodes.
    run_id, name : str
        Recorded as ``My.CondormagicRun`` and ``My.JobBatchName``.
    options : dict
        ``cpus``, ``mem`` (MB), ``disk`` (MB or None), ``gpus``.
    python : str, optional
        The interpreter on the execute nodes; default the kernel's own.
    """
    cpus = int(options.get("cpus", 1))
    mem = int(options["mem"])
    env = {var: str(cpus) for var in THREAD_VARIABLES}
    env["GDAL_CACHEMAX"] = str(max(64, mem // 4))
    env["PYTHONUNBUFFERED"] = "1"
    description = {
        "universe": "vanilla",
        "executable": submit_path(python or sys.executable),
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
        "My.JobBatchName": classad_string(name),
        "My.CondormagicRun": classad_string(run_id),
    }
    description["error"] = description["output"][: -len(".out")] + ".err"
    if options.get("disk"):
        description["request_disk"] = f"{int(options['disk'])}MB"
    if options.get("gpus"):
        description["request_gpus"] = str(int(options["gpus"]))
    return description


def build_submit(description: dict[str, str]):
    """The real ``htcondor2.Submit`` for a description."""
    import htcondor2

    return htcondor2.Submit(description)


def itemdata(jobs: list[int]) -> list[dict[str, str]]:
    return [{"job": str(j)} for j in jobs]


def submit_file_text(description: dict[str, str], jobs: list[int]) -> str:
    """The description in the submit language, with its item data, for ``condor_submit``."""
    lines = [f"{k} = {v}" for k, v in description.items()]
    lines.append("queue job from (")
    lines.extend(str(j) for j in jobs)
    lines.append(")")
    return "\n".join(lines) + "\n"
