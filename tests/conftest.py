"""Shared fixtures: a private runs directory, a GeoTIFF writer, the copied test rasters, and a real HTCondor pool."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

DATA = Path(__file__).parent / "data"


def write_raster(path, array: np.ndarray, **profile) -> Path:
    """Write ``array`` (2-D, or 3-D as bands, rows, cols) as a GeoTIFF and return its path.

    ``profile`` overrides rasterio's creation options; by default the raster is in
    EPSG:32633 at 30 m with its top-left corner at (500000, 5000000), and has no nodata.
    """
    bands = array[np.newaxis] if array.ndim == 2 else array
    options = {
        "driver": "GTiff",
        "count": bands.shape[0],
        "height": bands.shape[1],
        "width": bands.shape[2],
        "dtype": bands.dtype,
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 5000000, 30, 30),
        **profile,
    }
    with rasterio.open(path, "w", **options) as dst:
        dst.write(bands)
    return Path(path)


@pytest.fixture(name="write_raster", scope="session")
def write_raster_fixture():
    """The :func:`write_raster` helper, for tests that make their own rasters."""
    return write_raster


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """A fresh runs directory for the test (``CONDORMAGIC_RUNS_DIR``), not created yet."""
    from condormagic import config

    path = tmp_path / "runs"
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(path))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    for key in ("runs_dir", "backend"):
        monkeypatch.delitem(config._overrides, key, raising=False)
    return path


@pytest.fixture
def testdata() -> Path:
    """The folder of real rasters copied from the rasterio project (see data/README.md)."""
    return DATA


@pytest.fixture(scope="session")
def other_user():
    """A second, unprivileged Unix user (see ``users.py``); needs the tests to run as root."""
    if os.getuid() != 0:
        pytest.skip("a second Unix user is made only when the tests run as root (as in CI)")
    from users import OtherUser

    return OtherUser()


@pytest.fixture(scope="session")
def htcondor_pool(request):
    """A real one-machine HTCondor pool for the session (see ``htcondor_pool.py``).

    Skipped where no HTCondor installation is found, unless ``CONDORMAGIC_REQUIRE_HTCONDOR=1``.
    The pool's directory is kept when a test failed, for its daemon logs.
    """
    from htcondor_pool import HTCondorPool, NoInstallation, find_installation

    try:
        installation = find_installation()
    except NoInstallation as exc:
        if os.environ.get("CONDORMAGIC_REQUIRE_HTCONDOR", "") not in ("", "0"):
            pytest.fail(f"CONDORMAGIC_REQUIRE_HTCONDOR is set, but {exc}", pytrace=False)
        pytest.skip(str(exc))
    pool = HTCondorPool.start(installation)
    yield pool
    pool.stop()
    if not request.session.testsfailed:
        pool.remove()


@pytest.fixture
def pool_tmp(htcondor_pool, request) -> Path:
    """A fresh directory owned by the pool user, which it can reach (unlike root's ``tmp_path``)."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    return htcondor_pool.make_user_dir(tempfile.mkdtemp(prefix=f"{name}-", dir=htcondor_pool.scratch))
