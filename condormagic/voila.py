"""Dashboard mode: what changes when a notebook is rendered by Voilà for people who never read code.

Voilà starts each page's kernel with ``VOILA_*`` variables in its environment (``VOILA_APP_PORT``,
``VOILA_REQUEST_URL``, ``VOILA_BASE_URL``...) and sets ``VOILA_KERNEL_ID`` in the kernel before the
first cell runs; any of them means the notebook is being shown as a dashboard. There, ``%%condor``
attaches to the run the same cell already made and never submits (unless the author wrote
``--allow-dashboard-submit``), and the run views have no steering buttons.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

NOT_COMPUTED = "These results have not been computed yet."

_MARKERS = ("VOILA_KERNEL_ID", "VOILA_REQUEST_URL", "VOILA_APP_PORT", "VOILA_BASE_URL")


def in_voila() -> bool:
    """Whether this kernel renders a Voilà page (``CONDORMAGIC_DASHBOARD=1``/``0`` overrides)."""
    forced = os.environ.get("CONDORMAGIC_DASHBOARD")
    if forced in ("0", "1"):
        return forced == "1"
    return any(os.environ.get(name) for name in _MARKERS)


def not_computed_html() -> str:
    """The one friendly sentence a dashboard shows for a result nobody has computed yet (the
    reason, which may name files and magics, is not shown to the viewer)."""
    return (
        '<div class="cm-not-computed" style="font-family:var(--jp-ui-font-family,sans-serif);'
        "font-size:14px;padding:12px 16px;border-left:4px solid #9e9e9e;"
        f'background:var(--jp-layout-color2,#f3f3f3);color:var(--jp-ui-font-color1,#222)">{NOT_COMPUTED}</div>'
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


def template_env(env: dict) -> dict:
    """``env`` with ``JUPYTER_PATH`` extended, when needed, so ``--template=condormagic`` resolves."""
    from jupyter_core.paths import jupyter_path

    found = template_dir()
    if found is None:
        raise FileNotFoundError("The condormagic Voila template is not installed: reinstall condormagic.")
    root = found.parent.parent.parent  # <root>/voila/templates/condormagic
    if found.parent.name == "templates" and str(root) in jupyter_path():
        return env
    # a checkout: expose it as <tmp>/voila/templates/condormagic
    link_root = Path(tempfile.gettempdir()) / f"condormagic-jupyter-{os.getuid()}"
    link = link_root / "voila" / "templates" / TEMPLATE
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == found):
        tmp = link.with_name(f".{TEMPLATE}-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(found, target_is_directory=True)
        os.replace(tmp, link)
    paths = [str(link_root)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    return {**env, "JUPYTER_PATH": os.pathsep.join(paths)}
