"""Arrays as images: PNG encoding, a 2-98 % stretch, and the one-tile preview of ``%%condor --preview``."""

from __future__ import annotations

import base64
import warnings

import numpy as np


def png_bytes(bands: np.ndarray) -> bytes:
    """A PNG of a (bands, rows, cols) uint8 array (1, 3 or 4 bands)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    bands = np.ascontiguousarray(bands, dtype=np.uint8)
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        count, height, width = bands.shape
        with mem.open(driver="PNG", width=width, height=height, count=count, dtype="uint8") as dst:
            dst.write(bands)
        return mem.read()


def stretch(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``data`` as uint8 grey, stretched to its 2-98 % range over the ``valid`` pixels."""
    out = np.zeros(data.shape, dtype=np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(data[valid], [2, 98])
    if hi <= lo:
        lo, hi = float(data[valid].min()), float(data[valid].max())
    if hi > lo:
        out[valid] = np.clip((data[valid] - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    else:
        out[valid] = 255 if hi > 0 else 0
    return out


def preview_png(array: np.ndarray, max_size: int = 512) -> bytes:
    """A PNG quicklook of a tile result: first band (or RGB), each stretched to 2-98 %."""
    data = np.asarray(array)
    data = (data[:3] if data.shape[0] >= 3 else data[:1]) if data.ndim == 3 else data[np.newaxis]
    step = max(1, int(np.ceil(max(data.shape[1:]) / max_size)))
    data = data[:, ::step, ::step].astype("float64")
    finite = np.isfinite(data)
    return png_bytes(stretch(np.where(finite, data, 0), finite))


def png_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<figure style="margin:0"><img src="data:image/png;base64,{data}" style="image-rendering:pixelated;'
        f'max-width:512px;border:1px solid #ccc"><figcaption style="font-size:12px">{caption}</figcaption></figure>'
    )
