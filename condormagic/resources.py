"""Resource requests in HTCondor's own units, checked before anything is submitted.

The options that say what a job requests (``--cpus``, ``--mem``, ``--gpus``, ``--disk``) are
declared once here, in :data:`RESOURCE_OPTIONS`; the magics and the command line build their
options from it, and :func:`parse_resources` reads what either was given.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import CondorMagicError

_UNITS_MB = {
    "": 1,
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "m": 1,
    "mb": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gib": 1024,
    "t": 1024**2,
    "tb": 1024**2,
    "tib": 1024**2,
}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


def parse_memory(value: str | int | float, what: str = "--mem") -> int:
    """Return a memory quantity in MiB, read as HTCondor reads ``request_memory``.

    A bare number is MiB; the suffixes K, M, G and T (with or without ``B`` or
    ``iB``, any case) are powers of 1024, as in HTCondor.

    Examples
    --------
    >>> parse_memory("6GB"), parse_memory("6 GB"), parse_memory("6000MB"), parse_memory(2048)
    (6144, 6144, 6000, 2048)
    """
    if isinstance(value, bool):
        raise CondorMagicError(f"{what} must be a memory size such as 6GB, not {value!r}.")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _QUANTITY.match(str(value))
        if not match or match.group(2).lower() not in _UNITS_MB:
            raise CondorMagicError(
                f"{what} {value!r} is not a memory size: write a positive number with an optional "
                "unit, such as 6GB, 6 GB, 6000MB, 6GiB or 2048 (MB)."
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    if not math.isfinite(number):
        raise CondorMagicError(f"{what} {value!r} is not a memory size: give a finite number, such as 6GB.")
    megabytes = int(round(number * _UNITS_MB[unit]))
    if megabytes < 1:
        raise CondorMagicError(f"{what} {value!r} is less than 1 MB: ask for at least 1MB.")
    return megabytes


def check_count(value, what: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is a whole number of at least ``minimum``.

    Text is read as a number (``"3"``); ``True``, ``1.5`` and ``"abc"`` are refused.
    """
    number = None
    if not isinstance(value, bool):
        try:
            number = int(value) if not isinstance(value, str) else int(value.strip())
        except (TypeError, ValueError, OverflowError):
            number = None
        if isinstance(value, float) and number != value:
            number = None
    if number is None or number < minimum:
        raise CondorMagicError(f"{what} must be a whole number of at least {minimum}, not {value!r}.")
    return number


def check_name(name: str) -> str:
    """Return ``name`` if HTCondor accepts it as a ``JobBatchName`` and it is safe as a file name."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise CondorMagicError(
            f"The run name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (at most 100 characters)."
        )
    return name


@dataclass(frozen=True)
class ResourceOption:
    """One option saying what each job requests: its name, its metavar and its help."""

    name: str
    metavar: str
    help: str
    # A size may be written with a space ("6 GB"), so it takes one or more words.
    words: bool = False


RESOURCE_OPTIONS = (
    ResourceOption("cpus", "N", "CPUs per job (request_cpus)"),
    ResourceOption("mem", "SIZE", "memory per job (request_memory): 6GB, 6 GB, 6000MB, 6GiB, or a number of MB", True),
    ResourceOption("gpus", "N", "GPUs per job (request_gpus)"),
    ResourceOption("disk", "SIZE", "disk per job (request_disk), as --mem", True),
)


# A job that goes over its memory runs again with more, without the user: HTCondor's own
# retry_request_memory_increase and retry_request_memory_max (the local backend does the same).
MEM_RETRY = ResourceOption(
    "mem-retry",
    "MAX [xF | +SIZE]",
    "a job that goes over its memory runs again with more, up to MAX (such as 16GB): doubled each time, "
    "or times F (x1.5), or plus SIZE (+2GB)",
    True,
)
_MEM_RETRY = re.compile(r"^\s*(?P<max>[^x*+]+?)\s*(?:(?P<op>[x*+])\s*(?P<by>\S.*?))?\s*$", re.IGNORECASE)


def parse_mem_retry(value, mem: int) -> dict | None:
    """``--mem-retry MAX [xF | +SIZE]`` as ``{"max": MB, "factor": F}`` or ``{"max": MB, "step": MB}``.

    ``mem`` is the memory each job asks for first (MB); ``MAX`` must be more. ``None`` when not given.

    Examples
    --------
    >>> parse_mem_retry("16GB", 6144), parse_mem_retry("16 GB +2GB", 6144)
    ({'max': 16384, 'factor': 2.0}, {'max': 16384, 'step': 2048})
    """
    if value is None or value == "" or value == []:
        return None
    text = _words(value)
    match = _MEM_RETRY.match(str(text))
    if not match:
        raise CondorMagicError(
            f"--mem-retry {text!r} is not MAX [xF | +SIZE]: write the most a job may get, such as 16GB, "
            "optionally with how it grows: 16GB x1.5, or 16GB +2GB (doubled by default)."
        )
    most = parse_memory(match["max"], "--mem-retry")
    if most <= mem:
        raise CondorMagicError(
            f"--mem-retry {text} is not more than --mem ({mem} MB): give the most memory a job may get on a retry."
        )
    if match["op"] is None:
        return {"max": most, "factor": 2.0}
    if match["op"] == "+":
        return {"max": most, "step": parse_memory(match["by"], "--mem-retry's increase")}
    try:
        factor = float(match["by"])
    except ValueError:
        factor = 0.0
    if not math.isfinite(factor) or factor <= 1:
        raise CondorMagicError(f"--mem-retry {text}: the factor {match['by']!r} must be a number above 1, such as x2.")
    return {"max": most, "factor": factor}


@dataclass(frozen=True)
class Resources:
    """What each job of a run requests: CPUs, memory and disk in MB, GPUs."""

    cpus: int
    mem: int
    gpus: int = 0
    disk: int | None = None


def parse_resources(
    cpus=None, mem=None, gpus=None, disk=None, *, defaults: Resources | None = None
) -> Resources | dict[str, int]:
    """Check the resource options as given (text, numbers, or ``None`` for not given).

    With ``defaults``, return a complete :class:`Resources` (what is not given is taken from
    them); without, return only the given values as ``{"cpus": 3, "mem": 6144}``, for a retry
    that changes some requests.
    """
    given = {}
    if cpus is not None:
        given["cpus"] = check_count(cpus, "--cpus")
    if mem is not None:
        given["mem"] = parse_memory(_words(mem), "--mem")
    if gpus is not None:
        given["gpus"] = check_count(gpus, "--gpus", minimum=0)
    if disk is not None:
        given["disk"] = parse_memory(_words(disk), "--disk")
    if defaults is None:
        return given
    return Resources(
        cpus=given.get("cpus", defaults.cpus),
        mem=given.get("mem", defaults.mem),
        gpus=given.get("gpus", defaults.gpus),
        disk=given.get("disk", defaults.disk),
    )


def _words(value):
    return " ".join(value) if isinstance(value, (list, tuple)) else value
