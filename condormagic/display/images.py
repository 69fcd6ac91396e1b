"""Arrays as images: PNG encoding, a 2-98 % stretch, and the one-tile preview of ``%%condor --preview``."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np


def png_bytes(bands: np.ndarray, level: int = 6) -> bytes:
    """A PNG of a (bands, rows, cols) uint8 array (1, 2, 3 or 4 bands: grey, grey and alpha, RGB, RGBA).

    Written here with zlib (``level`` 1 is fastest, 9 smallest): a map view is encoded several
    times a second, and GDAL's PNG driver takes ten times as long for the same bytes.
    """
    bands = np.asarray(bands, dtype=np.uint8)
    count, height, width = bands.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[count]
    rows = np.empty((height, width * count + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "None" on every row
    rows[:, 1:] = bands.transpose(1, 2, 0).reshape(height, width * count)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + chunk(b"IEND", b"")
    )


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


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
