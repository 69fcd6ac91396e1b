"""A run's output is only ever what its own tiles make, written by that run, where the user asked.

``--output`` over an existing file, tiles that disagree on dtype or bands, a tile file gone after
its job completed, a function that returns nothing for some tiles, a relative or unwritable
``--output``, and the output's nodata.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
from kernel import execute, text_of, usage_error
from rasterio.transform import from_origin

import condormagic as cm

SIZE, TILE = 96, 32  # 9 tiles


def write(path, array, nodata=None):
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype=array.dtype, crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(500000, 5000000, 30, 30), nodata=nodata, **profile) as dst:
        dst.write(array, 1)
    return path


@pytest.fixture
def data(tmp_path, runs_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 200).astype(np.uint8)
    write(tmp_path / "a.tif", values)
    return tmp_path, values, cm.sources(a="a.tif", tile=TILE)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.nodata


def settle(run, timeout=120):
    """Wait until no job is queued, without making the output (``run.wait`` would make it)."""
    deadline = time.monotonic() + timeout
    while not run.settled:
        assert time.monotonic() < deadline, run.status()
        time.sleep(0.1)
    return run


def slowly(img):
    import time

    time.sleep(0.3)
    return img["a"] + 1


def minus(img):
    return img["a"] - 1


def test_an_existing_output_file_is_replaced_only_by_the_run_that_completes(data):
    folder, values, src = data
    target = folder / "result.tif"
    target.write_bytes(b"a file of someone else's")
    first = cm.submit(slowly, src, mem="300MB", tiles_per_job=3, output="result.tif")
    assert first.output is None and target.read_bytes() == b"a file of someone else's"  # not done yet
    first.wait(timeout=120)
    assert first.output == str(target)
    np.testing.assert_array_equal(read(target)[0][0], values + 1)

    second = cm.submit(minus, src, mem="300MB", tiles_per_job=3, output=str(target))
    assert second.id != first.id
    assert second.output is None or second.complete  # never the first run's file
    settle(second)
    np.testing.assert_array_equal(read(second.output)[0][0], values - 1)
    # The first run's file was replaced: it does not report the second's, it makes its own again.
    np.testing.assert_array_equal(read(first.output)[0][0], values + 1)
    assert json.loads((first.path / "result.json").read_text())["path"] == str(target)


def test_tiles_of_different_dtypes_are_promoted_and_said_so(data):
    folder, values, src = data

    def mixed(img):
        a = img["a"]
        return a.astype("float32") / 2 if img.window.col_off == 0 else a

    run = cm.submit(mixed, src, mem="300MB", tiles_per_job=3).wait(timeout=120)
    out, profile, nodata = read(run.output)
    assert out.dtype == np.float32
    expected = values.astype("float32")
    expected[:, :TILE] /= 2
    np.testing.assert_array_equal(out[0], expected)
    notes = json.loads((run.path / "result.json").read_text())["notes"]
    assert notes and "float32" in notes[0] and "uint8" in notes[0] and "float32 in tiles 0, 3, 6" in notes[0]


def test_tiles_with_different_bands_make_no_output_and_say_which(data):
    folder, values, src = data

    def bands(img):
        a = img["a"]
        return np.stack([a, a]) if img.window.row_off == 0 and img.window.col_off == 0 else a

    run = cm.submit(bands, src, mem="300MB", tiles_per_job=3, check=False)
    settle(run)
    assert run.complete
    with pytest.raises(cm.CondorMagicError, match=r"different bands for different tiles \(tile 0 2 bands; tiles 1"):
        _ = run.output
    assert not (run.path / "output.tif").exists() and not (run.path / "result.json").exists()


def test_a_missing_tile_fails_its_job_and_retry_redoes_it(data):
    folder, values, src = data
    run = settle(cm.submit(minus, src, mem="300MB", tiles_per_job=3))
    assert run.complete
    (run.path / "tiles" / "000004.tif").unlink()  # tile 4 is in job 1 (tiles 3, 4, 5)
    jobs = run.jobs()
    assert [j.state for j in jobs] == ["completed", "failed", "completed"]
    assert "000004.tif is missing" in jobs[1].reason
    assert run.output is None
    assert run.retry() == [1]
    run.wait(timeout=120)
    np.testing.assert_array_equal(read(run.output)[0][0], values - 1)


def test_tiles_the_function_returns_nothing_for_are_nodata(data, write_raster):
    folder, values, src = data

    def some(img):
        if img.window.col_off == TILE:  # the middle column of tiles: nothing to say there
            return None
        return img["a"].astype("int16") + 1, {"tiles": 1}

    run = cm.submit(some, src, mem="300MB", tiles_per_job=2).wait(timeout=120)
    out, profile, nodata = read(run.output)
    assert nodata == 0 and run.metrics["tiles"] == 6
    expected = values.astype("int16") + 1
    expected[:, TILE : 2 * TILE] = 0
    np.testing.assert_array_equal(out[0], expected)
    with rasterio.open(run.output) as ds:
        valid = ds.read_masks(1) > 0
    assert not valid[:, TILE : 2 * TILE].any() and valid[:, :TILE].all()

    floats = cm.submit(lambda img: None if img.window.col_off == 0 else img["a"] / 2, src, mem="300MB").wait(120)
    assert np.isnan(read(floats.output)[0][0][:, :TILE]).all()


def test_nodata_is_checked_against_what_the_function_returns_and_kept_from_the_input(data):
    folder, values, src = data
    with pytest.raises(cm.CondorMagicError, match="--nodata 300 cannot be stored in the function's uint8 output"):
        cm.submit(minus, src, nodata=300)
    with pytest.raises(cm.CondorMagicError, match="--nodata 'abc' is not a number"):
        cm.submit(minus, src, nodata="abc")
    assert not cm.runs()

    write(folder / "b.tif", values, nodata=199)
    same = cm.submit(lambda img: img["b"], cm.sources(b="b.tif", tile=TILE), mem="300MB").wait(timeout=120)
    out, profile, nodata = read(same.output)
    assert nodata == 199 and out.dtype == np.uint8  # an integer input's nodata is kept in the output


def test_a_relative_output_is_where_the_cell_ran_whoever_makes_it(data):
    folder, values, src = data
    (folder / "notebooks").mkdir()
    write(folder / "notebooks" / "a.tif", values)
    cells = [
        "%load_ext condormagic",
        "%condor_sources a=a.tif --tile 32",
        "%%condor --name REL --output results/out.tif\ndef f(img):\n    return img['a'] * 2",
        "print(_.options['output'])",
    ]
    nb = execute(folder / "notebooks", cells)
    stored = text_of(nb.cells[3]).strip()
    assert stored == str(folder / "notebooks" / "results" / "out.tif")
    # Another process, in another folder, makes the output: it lands where the cell meant.
    made = subprocess.run(
        [sys.executable, "-c", "import condormagic as cm; print(cm.run('REL').wait(timeout=120).output)"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert made.stdout.strip() == stored, made.stderr
    np.testing.assert_array_equal(read(stored)[0][0], values * 2)


def test_an_output_that_cannot_be_written_is_refused_before_anything_runs(data, other_user):
    folder, values, src = data
    with pytest.raises(cm.CondorMagicError, match=r"--output a.tif/x.tif cannot be written: .*a.tif is not a folder"):
        cm.submit(minus, src, output="a.tif/x.tif")
    assert not cm.runs()

    home = other_user.make_dir()
    locked = other_user.make_dir(home / "read-only", mode=0o555)
    write(home / "a.tif", values)
    os.chmod(home / "a.tif", 0o644)
    code = (
        "import condormagic as cm\n"
        "try:\n"
        f"    cm.submit(lambda img: img['a'], cm.sources(a='a.tif', tile=32), output='{locked}/out.tif')\n"
        "except cm.CondorMagicError as exc:\n"
        "    print(exc)\n"
        "print(len(cm.runs()))"
    )
    done = other_user.run_python(code, cwd=home, env={"CONDORMAGIC_RUNS_DIR": str(home / "runs")})
    assert done.returncode == 0, done.stderr
    message, count = done.stdout.strip().splitlines()
    assert message == f"--output {locked}/out.tif cannot be written: {locked} is not a folder you can write to."
    assert count == "0"


def test_magic_nodata_option_and_its_mistake(data):
    folder, values, src = data
    cells = [
        "%load_ext condormagic",
        "%condor_sources a=a.tif --tile 32",
        "%%condor --nodata 300\ndef f(img):\n    return img['a']",
        "%%condor --nodata 7 --name SEVEN --wait\ndef f(img):\n    return img['a']",
        "print(_.output)",
    ]
    nb = execute(folder, cells)
    assert "--nodata 300 cannot be stored" in usage_error(nb.cells[2])
    assert read(text_of(nb.cells[4]).strip())[2] == 7
