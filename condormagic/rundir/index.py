"""The runs directory: the run directories in it that this user can trust, and those it cannot.

A runs directory may be shared (a group project space). Folders that another user owns,
that others can write, that cannot be read, or whose manifest is not one condormagic wrote
are listed as skipped, each with one sentence, and never used.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CondorMagicError
from .layout import check_owned
from .manifest import Manifest


def scan(root: str | os.PathLike) -> tuple[list[tuple[Path, Manifest]], list[str]]:
    """Every usable run directory in ``root`` with its manifest, and a warning per folder skipped."""
    root = Path(root)
    found, skipped = [], []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return [], []
    for entry in entries:
        if entry.name.startswith("."):
            continue  # a run directory being written, or not ours to look at
        try:
            found.append((entry, open_run_dir(entry)))
        except CondorMagicError as exc:
            skipped.append(str(exc))
    return found, skipped


def open_run_dir(path: str | os.PathLike) -> Manifest:
    """The manifest of a run directory this user owns and only this user can write.

    Raises
    ------
    CondorMagicError
        One sentence: whose it is, or what is wrong with its manifest.
    """
    path = Path(path)
    check_owned(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise CondorMagicError(f"{path} has no manifest.json: it is not a condormagic run directory.")
    return Manifest.load(manifest_path)
