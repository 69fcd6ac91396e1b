"""Coordinates as a person reads them: thousands separators and units, or degrees with N/S/E/W."""

from __future__ import annotations

import math
from functools import lru_cache

from rasterio.windows import Window

from ..tiling.grid import Grid, window_bounds

_UNITS = {"metre": "m", "meter": "m", "metres": "m", "foot": "ft", "US survey foot": "ft (US)"}


@lru_cache(maxsize=64)
def _crs_kind(wkt: str | None) -> tuple[bool, str]:
    """Whether a CRS is geographic, and the symbol of its linear unit."""
    if not wkt:
        return False, ""
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    if crs.is_geographic:
        return True, "°"
    unit = crs.linear_units or ""
    return False, _UNITS.get(unit, unit if unit and unit != "unknown" else "")


def _decimals(step: float) -> int:
    """Decimals enough to tell apart values ``step`` apart (0 for a step of a metre or more)."""
    if step <= 0 or not math.isfinite(step):
        return 0
    return max(0, min(8, -math.floor(math.log10(step))))


def _degrees(value: float, positive: str, negative: str, decimals: int) -> str:
    return f"{abs(value):.{decimals}f}°{positive if value >= 0 else negative}"


def format_bounds(grid: Grid, window: Window) -> str:
    """``x 500,000 to 530,720 m, y 4,969,280 to 5,000,000 m`` or ``12.50°E to 13.00°E, 46.00°N to 46.50°N``."""
    left, bottom, right, top = window_bounds(grid, window)
    geographic, unit = _crs_kind(grid.crs)
    decimals = _decimals(min(grid.res))
    if geographic:
        return (
            f"{_degrees(left, 'E', 'W', decimals)} to {_degrees(right, 'E', 'W', decimals)}, "
            f"{_degrees(bottom, 'N', 'S', decimals)} to {_degrees(top, 'N', 'S', decimals)}"
        )
    suffix = f" {unit}" if unit else ""
    x = f"x {left:,.{decimals}f} to {right:,.{decimals}f}{suffix}"
    return f"{x}, y {bottom:,.{decimals}f} to {top:,.{decimals}f}{suffix}"
