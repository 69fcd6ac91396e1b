"""condormagic on a real one-machine HTCondor pool (the ``htcondor_pool`` fixture): nothing stands in.

The submitting side runs as the pool user (``pool.run_python``, ``pool.execute_notebook``), as a
notebook user would; the test process only prepares and checks.
"""

from __future__ import annotations

import inspect
import json
import os
import textwrap

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.htcondor_pool

TESTS = os.path.dirname(os.path.abspath(__file__))
SIZE, TILE = 512, 128  # 4 x 4 tiles


def smoke(img):
    """A normalised difference masked by height: float arithmetic, so that any mixing of tiles shows."""
    nir, red, dem = (band.astype(np.float32) for band in img)
    ndvi = (nir - red) / np.maximum(nir + red, np.float32(1))
    return np.where(dem > 300, ndvi, np.float32(-1)).astype(np.float32)


SUBMIT = """
import json, sys
import classad2, htcondor2
import numpy as np
import condormagic as cm

sys.path.insert(0, TESTS)
from conftest import write_raster

rng = np.random.default_rng(7)
shape = (SIZE, SIZE)
paths = {
    "nir": write_raster(f"{DATA}/nir.tif", rng.integers(0, 10000, shape, dtype=np.uint16)),
    "red": write_raster(f"{DATA}/red.tif", rng.integers(0, 10000, shape, dtype=np.uint16)),
    "dem": write_raster(f"{DATA}/dem.tif", rng.normal(300, 40, shape).astype(np.float32)),
}
src = cm.sources(**paths, tile=TILE)
run = cm.submit(smoke, src, backend="htcondor", cpus=1, mem="512MB", name="pool-smoke")
ads = htcondor2.Schedd().query(
    constraint=f"CondormagicRun == {classad2.quote(run.id)}", projection=["Owner", "ClusterId", "ProcId"]
)
run.wait(timeout=WAIT)
print(json.dumps({
    "path": str(run.path), "n_jobs": run.n_jobs, "status": run.status(), "output": run.output,
    "paths": {k: str(v) for k, v in paths.items()}, "owners": sorted({str(ad["Owner"]) for ad in ads}),
    "queued": len(ads),
}))
"""


def test_submit_runs_every_tile_on_the_pool(htcondor_pool, pool_tmp):
    pool = htcondor_pool
    data = pool.make_user_dir(pool_tmp / "data")
    runs = pool_tmp / "runs"
    header = f"TESTS, DATA, SIZE, TILE, WAIT = {TESTS!r}, {str(data)!r}, {SIZE}, {TILE}, 90\n"
    code = header + textwrap.dedent(inspect.getsource(smoke)) + SUBMIT
    done = pool.run_python(code, timeout=150, cwd=pool_tmp, env={"CONDORMAGIC_RUNS_DIR": str(runs)})
    result = json.loads(done.stdout.strip().splitlines()[-1])

    # Sixteen tiles, every one completed, on the pool's schedd, as the pool user.
    assert result["n_jobs"] == 16 and result["queued"] == 16
    assert result["status"]["completed"] == 16, f"{result['status']}\n{done.stderr}\n{pool.log_tail()}"
    assert result["owners"] == [pool.login]
    tiles = [os.path.join(result["path"], "tiles", name) for name in os.listdir(os.path.join(result["path"], "tiles"))]
    assert tiles and {os.stat(t).st_uid for t in tiles} == {pool.uid}  # the jobs wrote them as that user
    assert pool.uid != 0

    # The mosaic is the whole-array computation, bit for bit, on the grid of the first source.
    bands, grid = [], None
    for name in ("nir", "red", "dem"):
        with rasterio.open(result["paths"][name]) as ds:
            bands.append(ds.read(1))
            grid = grid or (ds.crs, ds.transform, ds.shape)
    expected = smoke(bands)
    with rasterio.open(result["output"]) as out:
        assert (out.crs, out.transform, out.shape) == grid
        got = out.read(1)
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)


def test_kernel_runs_as_the_pool_user_and_finds_the_schedd(htcondor_pool, pool_tmp):
    nb = htcondor_pool.execute_notebook(
        [
            "import getpass, os\n"
            "from condormagic.backends import resolve\n"
            "print(getpass.getuser(), os.getcwd(), resolve('auto')[0])"
        ],
        cwd=pool_tmp,
        timeout=60,
    )
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs).split()
    assert printed == [htcondor_pool.login, str(pool_tmp), "htcondor"]
