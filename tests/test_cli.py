"""The ``condormagic`` command, as a user runs it from a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

import condormagic as cm

COMMAND = [sys.executable, "-m", "condormagic.cli"]


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize("command", ["runs", "status", "rm", "retry", "worker", "demo", "voila"])
def test_every_command_has_help(command):
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and command in result.stdout


def test_runs_status_rm_retry_from_a_terminal(tmp_path, runs_dir, write_raster):
    dem = np.arange(60 * 80, dtype=np.float32).reshape(60, 80)
    src = cm.sources(dem=write_raster(tmp_path / "dem.tif", dem), tile=40)
    run = cm.submit(_double, src, name="TERMINAL", tiles_per_job=1).wait(timeout=120)
    env = {"CONDORMAGIC_RUNS_DIR": str(runs_dir)}

    listing = cli("runs", env=env)
    assert listing.returncode == 0 and "TERMINAL" in listing.stdout and run.id in listing.stdout
    status = cli("status", "TERMINAL", env=env)
    assert "completed 4" in status.stdout and str(run.output) in status.stdout
    assert "has no job left to remove" in cli("rm", "TERMINAL", env=env).stdout
    assert "has nothing to retry" in cli("retry", "TERMINAL", env=env).stdout
    missing = cli("status", "NOSUCHRUN", env=env)
    assert missing.returncode != 0
    assert missing.stderr.strip() == (
        f"Error: No run is named or numbered 'NOSUCHRUN' in {runs_dir}: `condormagic runs` lists them."
    )
    bad_memory = cli("retry", "TERMINAL", "--mem", "6 parsecs", env=env)
    assert bad_memory.returncode != 0 and "Traceback" not in bad_memory.stderr
    assert "is not a memory size" in bad_memory.stderr


def _double(img):
    # A function of this test module, which the jobs cannot import: it travels by value.
    return img["dem"] * 2


def test_demo_prints_the_output_and_the_percentage(runs_dir, tmp_path):
    examples = Path(__file__).resolve().parent.parent / "examples"
    before = sorted(p.relative_to(examples) for p in examples.rglob("*"))
    workdir = tmp_path / "demo"
    result = cli(
        "demo", "--size", "512", "--workdir", str(workdir), env={"CONDORMAGIC_RUNS_DIR": str(runs_dir)}, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    output = Path(lines["Output GeoTIFF"])
    assert output.is_relative_to(runs_dir) and output.exists()
    percent = float(lines["Deforestation inside the forest polygons"].rstrip("%"))
    assert Path(lines["Executed notebook"]) == workdir / "executed" / "deforestation.ipynb"
    assert sorted(p.relative_to(examples) for p in examples.rglob("*")) == before  # the checkout is left alone
    with rasterio.open(output) as out, rasterio.open(workdir / "data" / "polygon.tif") as polygon:
        expected = 100 * np.count_nonzero(out.read(1)) / np.count_nonzero(polygon.read(1))
        assert out.crs == polygon.crs and out.transform == polygon.transform
    assert percent == pytest.approx(expected, abs=0.005)
    assert 1 < percent < 30
    assert "WARNING" not in result.stdout + result.stderr
