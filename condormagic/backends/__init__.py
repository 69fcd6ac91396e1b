"""Schedulers that take a run's job description: ``local`` (embedded) and ``htcondor``.

Both follow :class:`~condormagic.backends.base.Backend`; :func:`get_backend` gives one by name.
"""

from __future__ import annotations

from ..errors import CondorMagicError
from .base import Backend


def get_backend(name: str) -> Backend:
    """The backend called ``name``: ``local``, ``htcondor`` or ``auto`` (see :func:`resolve`)."""
    if name == "auto":
        name = resolve(name)[0]
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "htcondor":
        from .htcondor import HTCondorBackend

        return HTCondorBackend()
    raise CondorMagicError(f"Unknown backend {name!r}: use local, htcondor or auto.")


def resolve(name: str) -> tuple[str, str]:
    """The backend ``name`` stands for, and why, in a few words.

    ``auto`` is ``htcondor`` when a schedd can be located within a few seconds (the
    ``schedd`` and ``pool`` settings say where), else ``local``.
    """
    if name != "auto":
        return name, f"--backend {name}"
    from .. import config
    from .htcondor import probe

    found, why = probe(config.get("schedd"), config.get("pool"))
    return ("htcondor" if found else "local"), f"backend=auto: {why}"


def describe_default() -> str:
    """Which backend ``%%condor`` will use with the current settings, in a few words."""
    from .. import config

    name = config.get("backend")
    try:
        if name == "auto":
            name, why = resolve(name)
            return f"{get_backend(name).describe()}, as {why}"
        return get_backend(name).describe()
    except CondorMagicError as exc:
        return f"{name} (unavailable: {exc})"
