"""Dashboard mode: what changes when a notebook is rendered by Voilà for people who never read code.

Voilà starts each page's kernel with ``VOILA_*`` variables in its environment (``VOILA_APP_PORT``,
``VOILA_REQUEST_URL``, ``VOILA_BASE_URL``...) and sets ``VOILA_KERNEL_ID`` in the kernel before the
first cell runs; any of them means the notebook is being shown as a dashboard. There, ``%%condor``
attaches to the run the same cell already made and never submits (unless the author wrote
``--allow-dashboard-submit``), and the run views have no steering buttons.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from . import config
from .errors import CondorMagicError

NOT_COMPUTED = "These results have not been computed yet."

_MARKERS = ("VOILA_KERNEL_ID", "VOILA_REQUEST_URL", "VOILA_APP_PORT", "VOILA_BASE_URL")


def in_voila() -> bool:
    """Whether this kernel renders a Voilà page (``CONDORMAGIC_DASHBOARD=1``/``0`` overrides)."""
    forced = os.environ.get("CONDORMAGIC_DASHBOARD")
    if forced in ("0", "1"):
        return forced == "1"
    return any(os.environ.get(name) for name in _MARKERS)


def refuse_in_dashboard(what: str) -> None:
    """Raise, under Voilà, unless the author allowed the page to submit (``dashboard_submit``).

    A dashboard's viewers cannot steer or submit jobs: neither through the magics, nor through
    the Python API that a notebook's cells (or widgets' callbacks) call.
    """
    if in_voila() and not config.get("dashboard_submit"):
        raise CondorMagicError(
            f"{what} is not allowed in a dashboard: a page's viewers cannot submit or steer jobs "
            "(the notebook's author allows it with %condor_config dashboard_submit=true)."
        )


TEMPLATE = "condormagic"


def template_dir() -> Path | None:
    """Where Voila will find the condormagic template: a Jupyter data directory's
    ``voila/templates/condormagic`` (where ``pip install`` puts it), else this checkout's
    ``voila-templates/condormagic`` (an editable install does not copy data files)."""
    from jupyter_core.paths import jupyter_path

    for root in jupyter_path():
        path = Path(root) / "voila" / "templates" / TEMPLATE
        if (path / "conf.json").exists():
            return path
    path = Path(__file__).resolve().parent.parent / "voila-templates" / TEMPLATE
    return path if (path / "conf.json").exists() else None


@contextlib.contextmanager
def template_env(env: dict):
    """``env`` with ``JUPYTER_PATH`` extended, when needed, so ``--template=condormagic`` resolves.

    An installed template needs nothing. A checkout's (an editable install does not copy data
    files) is exposed through a private folder made for this server only (``mkdtemp``: mode
    0700, an unpredictable name), removed when the block ends: a folder at a fixed path in
    ``/tmp`` could be made first by another user, whose kernel specs would then run as you.
    """
    from jupyter_core.paths import jupyter_path

    found = template_dir()
    if found is None:
        raise CondorMagicError("The condormagic Voila template is not installed: reinstall condormagic.")
    root = found.parent.parent.parent  # <root>/voila/templates/condormagic
    if found.parent.name == "templates" and str(root) in jupyter_path():
        yield env
        return
    link_root = Path(tempfile.mkdtemp(prefix="condormagic-jupyter-"))
    try:
        link = link_root / "voila" / "templates" / TEMPLATE
        link.parent.mkdir(parents=True)
        link.symlink_to(found, target_is_directory=True)
        paths = [str(link_root)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        yield {**env, "JUPYTER_PATH": os.pathsep.join(paths)}
    finally:
        shutil.rmtree(link_root, ignore_errors=True)
