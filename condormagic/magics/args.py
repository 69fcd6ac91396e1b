"""Reading a magic's option line: as a shell would (quotes group, ``\\`` escapes), with one sentence per mistake."""

from __future__ import annotations

import re
import shlex

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ..resources import MEM_RETRY, RESOURCE_OPTIONS

_NEGATIVE_SIZE = re.compile(r"^-\d")


def parse(magic, line: str):
    """Parse ``line`` with ``magic``'s ``magic_arguments`` parser, splitting it as a shell would.

    IPython's own ``parse_argstring`` keeps quotes in the values (``--name "a b"`` gives
    ``'"a b"'``), so paths with spaces could not be written.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"The options cannot be read ({exc}): close every quote you open.") from None
    return magic.parser.parse_args(_attach_negative_values(words))


def _attach_negative_values(words: list[str]) -> list[str]:
    """``--mem -1GB`` as ``--mem=-1GB``, so the value reaches its check rather than reading as an option."""
    names = {f"--{o.name}" for o in RESOURCE_OPTIONS}
    out: list[str] = []
    for word in words:
        if out and out[-1] in names and _NEGATIVE_SIZE.match(word):
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def resource_arguments(what: str = "per job"):
    """The ``--cpus``/``--mem``/``--gpus``/``--disk`` options, declared once (:data:`RESOURCE_OPTIONS`)."""

    def decorate(func):
        for option in reversed(RESOURCE_OPTIONS):
            extra = {"nargs": "+"} if option.words else {}
            func = argument(f"--{option.name}", metavar=option.metavar, help=option.help, **extra)(func)
        return func

    return decorate


def mem_retry_argument():
    """The ``--mem-retry`` option, declared once (:data:`~condormagic.resources.MEM_RETRY`)."""
    return argument(f"--{MEM_RETRY.name}", metavar=MEM_RETRY.metavar, help=MEM_RETRY.help, nargs="+")


def pairs(items: list[str], what: str) -> dict[str, str]:
    """``["a=x.tif", "b=y.tif"]`` as ``{"a": "x.tif", "b": "y.tif"}``."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{item!r} is not {what}: write NAME=VALUE, as in dem1=data/dem_2000.tif.")
        out[name] = value
    return out


def words(value: list[str] | None) -> str | None:
    """A value given as one or more words (``--mem 6 GB``) as one string."""
    return " ".join(value) if value else None
