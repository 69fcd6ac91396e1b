"""What the magics need from a cell: its top-level functions, and a one-tile preview."""

from __future__ import annotations

import ast
import base64

import numpy as np

from ..errors import CondorMagicError


def top_level_functions(cell: str) -> list[str]:
    """Names of the functions a cell defines at its top level (a SyntaxError propagates)."""
    tree = ast.parse(cell)
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def pick_function(cell: str, wanted: str | None) -> str:
    """The function ``%%condor`` runs: ``--func``, else the only one the cell defines."""
    names = top_level_functions(cell)
    if wanted:
        if wanted not in names:
            found = f"it defines {', '.join(names)}" if names else "it defines no function"
            raise CondorMagicError(f"--func {wanted}: the cell does not define {wanted}() ({found}).")
        return wanted
    if not names:
        raise CondorMagicError(
            "The cell defines no function: write the function to run as def f(img): ... in the cell."
        )
    if len(names) > 1:
        raise CondorMagicError(f"The cell defines several functions ({', '.join(names)}): choose one with --func NAME.")
    return names[0]


def preview_png(array: np.ndarray, max_size: int = 512) -> bytes:
    """A PNG quicklook of a tile result: first band (or RGB), stretched to 2-98 %."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    data = np.asarray(array)
    if data.ndim == 3:
        data = data[:3] if data.shape[0] >= 3 else data[:1]
    else:
        data = data[np.newaxis]
    step = max(1, int(np.ceil(max(data.shape[1:]) / max_size)))
    data = data[:, ::step, ::step].astype("float64")
    finite = np.isfinite(data)
    out = np.zeros(data.shape, dtype="uint8")
    if finite.any():
        lo, hi = np.percentile(data[finite], [2, 98])
        if hi <= lo:
            lo, hi = data[finite].min(), data[finite].max()
        scale = 255 / (hi - lo) if hi > lo else 0
        out = np.where(finite, np.clip((data - lo) * scale, 0, 255), 0).astype("uint8")
        if hi == lo:
            out[finite] = 255 if hi > 0 else 0
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=out.shape[2], height=out.shape[1], count=out.shape[0], dtype="uint8") as dst:
            dst.write(out)
        return mem.read()


def png_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<figure style="margin:0"><img src="data:image/png;base64,{data}" style="image-rendering:pixelated;'
        f'max-width:512px;border:1px solid #ccc"><figcaption style="font-size:12px">{caption}</figcaption></figure>'
    )
