"""Settings read from the environment: where runs live, which backend, defaults."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "backend": "auto",
    "runs_dir": "~/condormagic-runs",
    "cpus": 1,
    "mem": "2GB",
    "tile": 1024,
    "python": None,
    "schedd": None,
    "pool": None,
}

# Settings changed in this process (by %condor_config or cm.config), over the environment.
_overrides: dict[str, object] = {}


def get(key: str):
    """A setting: set in this process, else ``CONDORMAGIC_<KEY>``, else the default."""
    if key in _overrides:
        return _overrides[key]
    env = os.environ.get(f"CONDORMAGIC_{key.upper()}")
    if env not in (None, ""):
        return env
    return DEFAULTS[key]


def set(**values) -> None:  # noqa: A001 - mirrors the magic's KEY=VALUE
    for key, value in values.items():
        if key not in DEFAULTS:
            from .errors import CondorMagicError

            raise CondorMagicError(f"{key!r} is not a setting: the settings are {', '.join(DEFAULTS)}.")
        _overrides[key] = value


def runs_dir() -> Path:
    """The directory holding one directory per run."""
    return Path(os.path.expanduser(str(get("runs_dir")))).absolute()
