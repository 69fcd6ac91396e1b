"""Resource requests in HTCondor's own units, checked before anything is submitted."""

from __future__ import annotations

import re

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
                f"{what} {value!r} is not a memory size: write a number with an optional "
                "unit, such as 6GB, 6 GB, 6000MB, 6GiB or 2048 (MB)."
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    megabytes = int(round(number * _UNITS_MB[unit]))
    if megabytes < 1:
        raise CondorMagicError(f"{what} {value!r} is less than 1 MB: ask for at least 1MB.")
    return megabytes


def check_count(value: int, what: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is a whole number of at least ``minimum``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != value or number < minimum:
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
