"""The function contract: the ``img`` a function receives, and the checks of what it returns.

A function ``f(img)`` returns, for one tile:

- an array of the tile's rows and cols, 2-D ``(rows, cols)`` or 3-D ``(bands, rows, cols)``,
  with the halo when one was read (it is cropped here);
- a dict of named 2-D arrays, one output band each, in order (the names become the band
  descriptions of the output);
- either of these with a dict of metrics, ``(result, metrics)``, whose numbers are summed
  over all tiles; or only the metrics dict; or ``None`` (that tile of the output is nodata).

The worker, ``%%condor --preview`` and the check run before submitting all go through
:func:`check_result`, so a tile is judged the same way wherever it is computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.windows import Window

from .grid import Tile


class Img(Sequence):
    """The arrays a function receives for one tile, in declaration order.

    ``img[0]`` and ``img["dem1"]`` are the same array. ``img.window`` is the window
    of the target grid that was read (halo included) and ``img.transform`` its
    affine transform, for functions that need coordinates. For a collection,
    ``img.times[name]`` holds the date of each time step (``datetime64``) and
    ``img.bands[name]`` the names of its bands.
    """

    def __init__(
        self,
        names: Sequence[str],
        arrays: Sequence[np.ndarray],
        window: Window,
        transform: Affine,
        times: Mapping[str, np.ndarray] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
    ):
        self.names = tuple(names)
        self._arrays = list(arrays)
        self.window = window
        self.transform = transform
        self.times = dict(times or {})
        self.bands = {k: list(v) for k, v in (bands or {}).items()}

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._arrays[self.names.index(key)]
            except ValueError:
                raise KeyError(f"{key!r} is not a source; the sources are {', '.join(self.names)}") from None
        return self._arrays[key]

    def __len__(self) -> int:
        return len(self._arrays)

    def keys(self) -> tuple[str, ...]:
        return self.names

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}: {a.dtype}{list(a.shape)}" for n, a in zip(self.names, self._arrays, strict=True))
        return f"<Img {shapes}>"


class ContractError(Exception):
    """What a function returned for a tile breaks the contract; the message says how."""


@dataclass
class TileResult:
    """What a function returned for one tile, checked: the bands (halo cropped), their names, the metrics."""

    array: np.ndarray | None
    names: list[str] | None
    metrics: dict[str, int | float]


def check_result(result, tile: Tile) -> TileResult:
    """Separate and check what the function returned for ``tile``; crop the halo.

    Raises
    ------
    ContractError
        The result is not one of the shapes the contract allows, or an array has the wrong
        size or a dtype GeoTIFF cannot hold, or a metric is not a finite number.
    """
    value, metrics = result, {}
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
        value, metrics = result
    elif isinstance(result, Mapping) and not _is_bands(result):
        value, metrics = None, result
    metrics = _check_metrics(metrics, tile)
    if value is None:
        return TileResult(None, None, metrics)
    if isinstance(value, Mapping):
        if not value:
            return TileResult(None, None, metrics)
        names = [str(k) for k in value]
        bands = [_check_array(v, tile, f"band {k!r}", two_d=True) for k, v in value.items()]
        dtype = np.result_type(*bands)
        return TileResult(np.stack([b[0].astype(dtype, copy=False) for b in bands]), names, metrics)
    return TileResult(_check_array(value, tile, "the array"), None, metrics)


def _is_bands(result: Mapping) -> bool:
    return bool(result) and all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in result.values())


def _check_array(array, tile: Tile, what: str, two_d: bool = False) -> np.ndarray:
    """``array`` as 3-D ``(bands, rows, cols)`` without the halo, after checking its shape and dtype."""
    if not isinstance(array, np.ndarray):
        raise ContractError(
            f"the function returned {type(array).__name__} for tile {tile.index}; return a NumPy array, a dict "
            "of named arrays, (result, metrics), a metrics dict or None"
        )
    h = tile.halo
    expected = (tile.height + 2 * h, tile.width + 2 * h)
    if array.ndim not in ((2,) if two_d else (2, 3)) or array.shape[-2:] != expected:
        form = "(rows, cols)" if two_d else "(rows, cols) or (bands, rows, cols)"
        raise ContractError(
            f"the function returned {what} of shape {array.shape} for tile {tile.index}, but the tile's arrays are "
            f"{expected[0]} x {expected[1]} pixels: return {form} of that size"
        )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "uif" or array.dtype == np.float16:
        raise ContractError(
            f"the function returned {what} of dtype {array.dtype} for tile {tile.index}; a GeoTIFF holds "
            "integers, float32 or float64: convert it (for example with .astype('float32'))"
        )
    if h:
        array = array[..., h : h + tile.height, h : h + tile.width]
    return array if array.ndim == 3 else array[np.newaxis]


def _check_metrics(metrics: Mapping, tile: Tile) -> dict[str, int | float]:
    out = {}
    for key, value in metrics.items():
        ok = (
            isinstance(key, str)
            and isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_))
        )
        if not ok or not math.isfinite(float(value)):
            raise ContractError(
                f"the metrics returned for tile {tile.index} must map names to finite numbers; "
                f"{key!r}: {value!r} is not"
            )
        out[key] = int(value) if isinstance(value, (int, np.integer)) else float(value)
    return out
