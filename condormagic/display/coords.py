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
    """The fewest decimals (0 to 8) that show ``step`` to within a tenth of itself, so pixel edges
    read apart: 0 for 30 m, 2 for 0.25 m, 4 for one arc second (0.000278°)."""
    if step <= 0 or not math.isfinite(step):
        return 0
    for decimals in range(9):
        if abs(round(step, decimals) - step) <= step / 10:
            return decimals
    return 8


def _number(value: float, decimals: int) -> str:
    """``4,969,280`` (rounded first, so ``-0.3`` reads ``0``, never ``-0``)."""
    return f"{round(value, decimals) + 0.0:,.{decimals}f}"


def _degrees(value: float, positive: str, negative: str, decimals: int) -> str:
    value = round(value, decimals) + 0.0
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
    x = f"x {_number(left, decimals)} to {_number(right, decimals)}{suffix}"
    return f"{x}, y {_number(bottom, decimals)} to {_number(top, decimals)}{suffix}"


def format_grid_bounds(grid: Grid) -> str:
    """:func:`format_bounds` of the whole grid."""
    return format_bounds(grid, Window(0, 0, grid.width, grid.height))
