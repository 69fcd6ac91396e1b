"""Schedulers that take a run's job description: ``local`` (embedded) and ``htcondor``."""

from __future__ import annotations

from ..errors import CondorMagicError


def get_backend(name: str):
    """The backend called ``name``: ``local``, ``htcondor`` or ``auto``."""
    if name in ("local", "auto"):
        from .local import LocalBackend

        return LocalBackend()
    if name == "htcondor":
        raise CondorMagicError("The htcondor backend is not available in this version yet: use --backend local.")
    raise CondorMagicError(f"Unknown backend {name!r}: use local or htcondor.")


def describe_default() -> str:
    """Which backend ``%%condor`` will use with the current settings, in a few words."""
    from .. import config

    name = str(config.get("backend"))
    try:
        return get_backend(name).describe()
    except CondorMagicError as exc:
        return f"{name} (unavailable: {exc})"
