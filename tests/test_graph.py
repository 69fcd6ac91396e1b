"""The job graph without running anything: tiles, jobs, the reader, the manifest and the run id."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import condormagic as cm
from condormagic.rundir.function import fingerprint
from condormagic.rundir.manifest import content_hash
from condormagic.tiling import Grid, GridReader, build_graph, default_tiles_per_job, tile_grid


@pytest.mark.parametrize("tile, halo", [(256, 0), (100, 3), (1000, 1), (7, 0)])
def test_tiles_cover_every_pixel_once_with_smaller_edge_tiles(tile, halo):
    grid = Grid(None, from_origin(0, 0, 1, 1), 1000, 700)
    tiles = tile_grid(grid, tile, halo)
    cover = np.zeros((700, 1000), np.int32)
    for t in tiles:
        cover[t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] += 1
        assert 0 < t.height <= tile and 0 < t.width <= tile
        w = t.read_window
        assert (w.row_off, w.col_off, w.height, w.width) == (
            t.row_off - halo,
            t.col_off - halo,
            t.height + 2 * halo,
            t.width + 2 * halo,
        )
    assert (cover == 1).all()
    assert [t.index for t in tiles] == list(range(len(tiles)))
    assert len(tiles) == -(-700 // tile) * -(-1000 // tile)
    assert {t.width for t in tiles} == ({tile, 1000 % tile} - {0} if tile < 1000 else {1000})


def test_jobs_group_tiles_and_default_keeps_cores_busy(tmp_path, write_raster):
    write_raster(tmp_path / "a.tif", np.ones((700, 1000), np.uint8))
    src = cm.sources(a=tmp_path / "a.tif", tile=100)  # 70 tiles
    graph = build_graph(src, slots=2)
    assert sorted(i for job in graph.jobs for i in job) == list(range(70))
    assert graph.skipped == []
    # Small tiles: grouped so that start-up is shared, while every slot still gets a job.
    assert len(graph.jobs) >= 2
    assert max(len(job) for job in graph.jobs) == default_tiles_per_job(70, 2, 100 * 100)
    # Big tiles: about four jobs per slot, so cores stay busy to the end.
    assert default_tiles_per_job(64, 2, 4096 * 4096) == 8
    assert [len(job) for job in build_graph(src, tiles_per_job=30).jobs] == [30, 30, 10]


def test_reader_keeps_the_source_dtype_and_fills_outside_with_nodata(tmp_path, write_raster):
    """rasterio gives nodata as a float (0.0): the arrays must still be the source's dtype."""
    cases = {
        "byte": (np.arange(20 * 30).reshape(20, 30) % 250 + 1).astype(np.uint8),
        "word": (np.arange(20 * 30).reshape(20, 30) * 97 + 1).astype(np.uint16),
        "real": np.linspace(-1, 1, 20 * 30).reshape(20, 30).astype(np.float32),
        "plain": (np.arange(20 * 30).reshape(20, 30) % 7).astype(np.int16),
    }
    nodata = {"byte": 0, "word": 0, "real": float("nan"), "plain": None}
    for name, array in cases.items():
        write_raster(tmp_path / f"{name}.tif", array, nodata=nodata[name])
    src = cm.sources(**{n: tmp_path / f"{n}.tif" for n in cases}, tile=16, halo=2)
    manifest = json.loads(json.dumps(src.to_dict()))  # what the worker reads
    with GridReader(manifest["sources"], src.grid) as reader:
        corner = reader.read(src.tiles[0].read_window)  # reaches 2 pixels outside the grid
        inside = reader.read(src.tiles[0].window)
    for name, array in cases.items():
        assert corner[name].dtype == array.dtype, name
        np.testing.assert_array_equal(inside[name], array[:16, :16])
        np.testing.assert_array_equal(corner[name][2:, 2:], array[:18, :18])
        fill = 0 if nodata[name] is None else nodata[name]
        np.testing.assert_array_equal(corner[name][:2], np.full((2, 20), fill, array.dtype))
        np.testing.assert_array_equal(corner[name][:, :2], np.full((20, 2), fill, array.dtype))


def test_multiband_source_reads_as_3d(testdata):
    src = cm.sources(rgb=testdata / "RGB.byte.tif", tile=300)
    tile = src.tiles[-1]
    with GridReader([s.to_dict() for s in src.values()], src.grid) as reader:
        img = reader.read(tile.window)
    with rasterio.open(testdata / "RGB.byte.tif") as ds:
        expected = ds.read(window=tile.window)
    assert img["rgb"].shape == (3, tile.height, tile.width) == expected.shape
    assert img[0].dtype == np.uint8
    np.testing.assert_array_equal(img["rgb"], expected)


def test_explicit_grid_warps_every_source(testdata):
    src = cm.sources(
        rgb=testdata / "rgb1.tif",
        nir=testdata / "rgb1_fake_nir_epsg3857.tif",
        crs="EPSG:32618",
        res=500,
        bounds=(110000, 2710000, 210000, 2820000),
        tile=64,
    )
    assert (src.grid.width, src.grid.height) == (200, 220)
    assert src.grid_from is None
    assert src["nir"].warp
    # rgb1.tif has 300 m pixels, not the grid's 500 m: it is resampled too.
    assert src["rgb"].warp
    with pytest.raises(cm.SourceError, match="needs all of crs, res and bounds"):
        cm.sources(rgb=testdata / "rgb1.tif", crs="EPSG:32618", res=500)


def test_run_id_follows_what_changes_the_result(tmp_path, write_raster):
    path = write_raster(tmp_path / "a.tif", np.ones((50, 60), np.float32))
    src = cm.sources(a=path, tile=32).identity()
    base = {"tiles_per_job": None, "output": None, "nodata": None, "cpus": 1, "mem": 2048}

    def f(img):
        return img[0]

    def g(img):
        return img[0] + 1

    same = content_hash(fingerprint(f), src, base)
    assert same == content_hash(fingerprint(f), cm.sources(a=path, tile=32).identity(), dict(base, cpus=4))
    assert same == content_hash(fingerprint(f), src, dict(base, tiles_per_job=3))
    assert same != content_hash(fingerprint(g), src, base)
    assert same != content_hash(fingerprint(f), cm.sources(a=path, tile=16).identity(), base)
    assert same != content_hash(fingerprint(f), src, dict(base, nodata=-1))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file changed
    assert same != content_hash(fingerprint(f), cm.sources(a=path, tile=32).identity(), base)


@pytest.mark.parametrize(
    "width, height, tile, n_jobs", [(1983, 1100, 1024, 2), (1000, 700, 256, 5), (8192, 8192, 1024, 8)]
)
def test_default_jobs_hold_about_as_many_pixels_each(width, height, tile, n_jobs):
    from condormagic.tiling.grid import Tiling
    from condormagic.tiling.jobs import balanced

    tiling = Tiling(width, height, tile)
    todo = list(range(len(tiling)))
    jobs = balanced(todo, tiling.array(), 0, n_jobs)
    assert [t for job in jobs for t in job] == todo and len(jobs) == n_jobs
    boxes = tiling.array()
    sums = [int((boxes[job, 2] * boxes[job, 3]).sum()) for job in jobs]
    biggest = int((boxes[:, 2] * boxes[:, 3]).max())
    ideal = sum(sums) / n_jobs
    assert all(abs(total - ideal) <= biggest for total in sums), sums  # each cut at the boundary nearest its share
    if width == 1983:
        assert jobs == [[0], [1, 2, 3]]  # by count, [[0, 1], [2, 3]]: 2.03 M pixels and 0.15 M
