"""Running notebook cells in a real IPython kernel (nbclient), and reading what they showed."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook


def execute(folder: Path, cells: list[str], env: dict | None = None) -> nbformat.NotebookNode:
    """Run ``cells`` in a new kernel started in ``folder`` (with ``env`` added to its environment)."""
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(folder)}}
    )
    with mock.patch.dict(os.environ, env or {}):
        client.execute()
    return nb


def text_of(cell) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "\n".join(parts)


def errors_of(cell) -> list[str]:
    """The errors a cell showed: tracebacks' last lines, and IPython's one-line UsageErrors."""
    found = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
    for out in cell.outputs:
        if out.output_type == "stream" and out.name == "stderr":
            found += [line for line in out.text.splitlines() if line.startswith("UsageError: ")]
    return found


def usage_error(cell) -> str:
    """The one UsageError sentence a cell showed, checking that nothing else was shown."""
    errs = errors_of(cell)
    assert len(errs) == 1 and errs[0].startswith("UsageError: "), text_of(cell)
    assert "Traceback" not in text_of(cell) and "condormagic/" not in text_of(cell), text_of(cell)
    return errs[0].removeprefix("UsageError: ")


def run_dirs(folder: Path) -> list[Path]:
    runs = folder / "runs"
    return sorted(p for p in runs.iterdir() if not p.name.startswith(".")) if runs.exists() else []
