"""Settings, typed, in one place: where runs live, which backend, and the defaults of a run.

Each setting is read, in order, from what this process set (``%condor_config``,
``cm.configure``), a ``CONDORMAGIC_<NAME>`` environment variable, or its default; whatever
the source, :func:`get` returns it parsed and checked (``cpus`` is an ``int``, ``mem`` a
number of MB, ``runs_dir`` a ``Path``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CondorMagicError
from .resources import check_count, parse_memory


def _backend(value) -> str:
    value = str(value).strip()
    if value not in ("local", "htcondor", "auto"):
        raise CondorMagicError(f"backend must be local, htcondor or auto, not {value!r}.")
    return value


def _runs_dir(value) -> Path:
    path = Path(os.path.expanduser(str(value))).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK) or _pseudo(existing):
        where = "is not a directory you can write" if existing == path else f"cannot be made in {existing}"
        raise CondorMagicError(f"runs_dir {str(path)!r} {where}: choose a folder of yours, such as ~/condormagic-runs.")
    return path


def _pseudo(path: Path) -> bool:
    """Whether ``path`` is in a kernel file system (``/proc``, ``/sys``), where even root makes no folder."""
    return path.parts[1:2] in (("proc",), ("sys",))


def _optional_text(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _python(value) -> str | None:
    text = _optional_text(value)
    if text is not None and not os.path.isabs(text):
        raise CondorMagicError(f"python must be an absolute path to an interpreter, not {text!r}.")
    return text


def _seconds(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise CondorMagicError(f"a time-out must be a positive number of seconds, not {value!r}.")
    return number


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise CondorMagicError(f"a yes/no setting must be true or false, not {value!r}.")


@dataclass(frozen=True)
class Setting:
    """A setting's default, the function that checks and converts a value, and what it is for."""

    default: Any
    parse: Callable[[Any], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    "backend": Setting("auto", _backend, "where jobs run: local, htcondor, or auto (htcondor when a schedd answers)"),
    "runs_dir": Setting("~/condormagic-runs", _runs_dir, "the folder holding one directory per run"),
    "cpus": Setting(1, lambda v: check_count(v, "cpus"), "default CPUs per job"),
    "mem": Setting("2GB", lambda v: parse_memory(v, "mem"), "default memory per job"),
    "tile": Setting(1024, lambda v: check_count(v, "tile"), "default tile size of %condor_sources, in pixels"),
    "python": Setting(None, _python, "the interpreter jobs run (default: this kernel's)"),
    "schedd": Setting(None, _optional_text, "the schedd to submit to (default: the local one)"),
    "pool": Setting(None, _optional_text, "the pool's collector, HOST:PORT (default: the configured one)"),
    "http_timeout": Setting(30, _seconds, "seconds GDAL waits for a remote source to connect and to answer"),
    "basemap": Setting(None, _optional_text, "an XYZ tile URL for the maps' background (default: none, offline)"),
    "dashboard_submit": Setting(
        False, _flag, "under Voila, let the notebook's code submit and steer jobs (default: a page only looks)"
    ),
}
DEFAULTS = {name: s.default for name, s in SETTINGS.items()}

# Settings changed in this process (by %condor_config or cm.configure), over the environment.
_overrides: dict[str, Any] = {}


def get(key: str):
    """A setting, parsed: set in this process, else ``CONDORMAGIC_<KEY>``, else the default."""
    setting = SETTINGS[key]
    if key in _overrides:
        return _overrides[key]
    env = os.environ.get(f"CONDORMAGIC_{key.upper()}")
    if env not in (None, ""):
        try:
            return setting.parse(env)
        except CondorMagicError as exc:
            raise CondorMagicError(f"CONDORMAGIC_{key.upper()}: {exc}") from None
    return None if setting.default is None else setting.parse(setting.default)


def set(**values) -> None:  # noqa: A001 - mirrors the magic's KEY=VALUE
    """Change settings for this process; each value is checked before any is changed."""
    parsed = {}
    for key, value in values.items():
        if key not in SETTINGS:
            raise CondorMagicError(f"{key!r} is not a setting: the settings are {', '.join(SETTINGS)}.")
        parsed[key] = SETTINGS[key].parse(value)
    _overrides.update(parsed)


def runs_dir() -> Path:
    """The directory holding one directory per run."""
    return get("runs_dir")
