"""HTCondor's submit language: quoting values so they mean only what they say, and reading them back.

Every value that comes from a user (run name, paths, arguments) goes through these, so it can
never change the meaning of a description; the local runner reads descriptions with them too.
Imports nothing heavy: the runner starts with it.
"""

from __future__ import annotations

import re

from ..errors import CondorMagicError

_MACRO = re.compile(r"\$\((\w+)\)")


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
    """A ClassAd string literal as a submit value: quotes escaped, ``$`` not a macro."""
    _refuse_newline(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$(DOLLAR)") + '"'


def _refuse_newline(text: str) -> None:
    """Refuse what no quoting can keep in one submit value: line breaks, and ``$$``."""
    if "\n" in text or "\r" in text:
        raise CondorMagicError(f"{text!r} contains a line break, which a submit description cannot hold; rename it.")
    if "$$" in text:
        # $(DOLLAR)$(DOLLAR) expands to "$" then "$$(DOLLAR)", which HTCondor keeps for match time.
        raise CondorMagicError(f"{text!r} contains '$$', which HTCondor reads as a match-time macro; rename it.")
