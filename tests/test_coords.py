"""Coordinates as a person reads them, in every view that prints them: projected grids with
thousands separators and their unit, geographic grids in degrees with N/S/E/W."""

from __future__ import annotations

import re

import numpy as np
import pytest
from affine import Affine
from conftest import write_raster
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

import condormagic as cm
from condormagic.display.coords import format_bounds, format_grid_bounds
from condormagic.display.graphhtml import graph_html, graph_text
from condormagic.tiling.grid import Grid

SCIENTIFIC = re.compile(r"\d[eE][+-]\d")


def grid(epsg: str, transform: Affine, width: int = 610, height: int = 450) -> Grid:
    return Grid(CRS.from_string(epsg).to_wkt(), transform, width, height)


def test_projected_bounds_have_thousands_separators_and_metres():
    utm = grid("EPSG:32633", from_origin(500000, 5000000, 30, 30))
    assert format_grid_bounds(utm) == "x 500,000 to 518,300 m, y 4,986,500 to 5,000,000 m"
    assert format_bounds(utm, Window(300, 150, 300, 300)) == "x 509,000 to 518,000 m, y 4,986,500 to 4,995,500 m"
    # The southern hemisphere's northings (the air-quality example printed "y 9.17856e+06..9.24e+06").
    south = grid("EPSG:32721", from_origin(300000, 9240000, 30, 30), 2000, 2000)
    assert format_grid_bounds(south) == "x 300,000 to 360,000 m, y 9,180,000 to 9,240,000 m"
    # Sub-metre pixels get the decimals that tell pixels apart; no "-0".
    fine = grid("EPSG:3035", from_origin(-0.25, 0.5, 0.25, 0.25), 4, 4)
    assert format_grid_bounds(fine) == "x -0.25 to 0.75 m, y -0.50 to 0.50 m"
    tiny = grid("EPSG:3035", from_origin(-0.3, 10, 1, 1), 4, 4)
    assert format_grid_bounds(tiny).startswith("x 0 to 4 m")


def test_geographic_bounds_are_degrees_with_hemispheres():
    europe = grid("EPSG:4326", from_origin(-10.0, 60.0, 0.05, 0.05), 600, 400)
    assert format_grid_bounds(europe) == "10.00°W to 20.00°E, 40.00°N to 60.00°N"
    south_west = grid("EPSG:4326", from_origin(-75.5, -3.0, 0.0025, 0.0025), 400, 400)
    assert format_grid_bounds(south_west) == "75.5000°W to 74.5000°W, 4.0000°S to 3.0000°S"
    # a grid without a CRS: numbers only, no unit
    bare = Grid(None, from_origin(0, 1000, 10, 10), 100, 100)
    assert format_grid_bounds(bare) == "x 0 to 1,000, y 0 to 1,000"


@pytest.mark.parametrize("crs", ["EPSG:32721", "EPSG:4326"])
def test_graph_views_print_coordinates_as_people_read_them(tmp_path, monkeypatch, crs):
    """The graph widget's header, each job's windows, the HTML card and the text: no scientific notation."""
    from condormagic.display.graphview import GraphView

    monkeypatch.chdir(tmp_path)
    if crs == "EPSG:4326":
        transform, expected = from_origin(12.0, 47.0, 0.001, 0.001), "12.000°E to 12.400°E, 46.700°N to 47.000°N"
    else:
        transform, expected = from_origin(300000, 9240000, 30, 30), "x 300,000 to 312,000 m, y 9,231,000 to 9,240,000 m"
    array = np.zeros((300, 400), "float32")
    write_raster(tmp_path / "a.tif", array, crs=crs, transform=transform)
    src = cm.sources(a="a.tif", tile=200, halo=1)
    plan = cm.plan(lambda img: img[0], src, tiles_per_job=1, name="COORDS")
    view = GraphView(plan.graph, src, plan.name)
    texts = {
        "header": view.header.value,
        "inputs": view.inputs.value,
        "html": graph_html(plan.graph, src, plan.name),
        "text": graph_text(plan.graph, src, plan.name),
    }
    for where, text in texts.items():
        assert not SCIENTIFIC.search(text), (where, SCIENTIFIC.search(text))
    for where in ("header", "html", "text"):
        assert expected in texts[where], (where, texts[where])
    first_tile = "x 300,000 to 306,000 m, y 9,234,000 to 9,240,000 m" if crs != "EPSG:4326" else "12.000°E to 12.200°E"
    assert first_tile in texts["inputs"]
