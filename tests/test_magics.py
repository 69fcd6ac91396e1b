"""The magics through a real IPython kernel (nbclient), on real GeoTIFFs and the local backend."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
from kernel import errors_of, execute, run_dirs, text_of, usage_error
from rasterio.transform import from_origin

SEED_CELL = """%%condor --cpus 3 --mem 6GB --name DEFORESTATION
def Deforestation(img):
    polygon, dem1, dem2 = img[0], img[1], img[2]
    difference = dem2 - dem1
    deforested = np.logical_and(polygon > 0, difference > 10)
    numdeforest = np.count_nonzero(deforested)
    numtotal = np.count_nonzero(polygon)
    if numtotal > 0:
        print("Percentage deforestation = %.2f%%" % (100.0 * numdeforest / numtotal))
    return deforested.astype(np.uint8)"""

SOURCES = "%condor_sources polygon=polygon.tif dem1=dem1.tif dem2=dem2.tif --grid dem2 --tile 200"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with three small aligned rasters; runs go to its runs/ folder."""
    rng = np.random.default_rng(42)
    transform = from_origin(300000, 8900000, 30, 30)
    polygon = (rng.random((450, 610)) > 0.4).astype("uint8")
    dem1 = rng.normal(200, 8, (450, 610)).astype("float32")
    dem2 = (dem1 + rng.normal(4, 9, dem1.shape)).astype("float32")
    for name, array in (("polygon", polygon), ("dem1", dem1), ("dem2", dem2)):
        profile = dict(driver="GTiff", width=610, height=450, count=1, dtype=array.dtype, crs="EPSG:32721")
        with rasterio.open(tmp_path / f"{name}.tif", "w", transform=transform, **profile) as dst:
            dst.write(array, 1)
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    expected = np.logical_and(polygon > 0, (dem2 - dem1) > 10).astype("uint8")
    return tmp_path, expected


def test_seed_cell_runs_attaches_and_survives_a_kernel_restart(workdir):
    folder, expected = workdir
    cells = [
        "%load_ext condormagic",
        "import numpy as np",
        SOURCES,
        SEED_CELL,
        "run = _\nrun.wait(timeout=120)\nprint(run.status())\nprint(run.output)",
        SEED_CELL,
        "print(callable(Deforestation))",
    ]
    nb = execute(folder, cells)
    load, _, sources, first, waited, again, defined = nb.cells
    assert "condormagic" in text_of(load) and "local" in text_of(load)
    assert "polygon" in text_of(sources) and "dem2" in text_of(sources)
    assert not errors_of(first), text_of(first)
    html = "".join(o.data.get("text/html", "") for o in first.outputs if "data" in o)
    assert "Job#0" in html and "dem_" not in html and "polygon.tif" in html
    assert "'completed': 6" in text_of(waited) or "completed" in text_of(waited)
    output = text_of(waited).strip().splitlines()[-1]
    with rasterio.open(output) as src:
        assert np.array_equal(src.read(1), expected)
    assert "Attached to run DEFORESTATION" in text_of(again)
    assert text_of(defined).strip() == "True"
    dirs = run_dirs(folder)
    assert len(dirs) == 1
    assert [p.name for p in (dirs[0] / "clusters").glob("*.json")] == ["1.json"]
    # The job's stdout holds what the seed's function printed.
    logs = "".join(p.read_text() for p in (dirs[0] / "logs").glob("*.out"))
    assert "Percentage deforestation" in logs

    # A new kernel: the same cell attaches to the same run, and cm.run finds it by name.
    nb = execute(
        folder,
        [
            "%load_ext condormagic",
            "import numpy as np",
            SOURCES,
            SEED_CELL,
            "import condormagic as cm\nprint(cm.run('DEFORESTATION').id)",
        ],
    )
    assert "Attached to run DEFORESTATION" in text_of(nb.cells[3])
    assert text_of(nb.cells[4]).strip() == dirs[0].name
    assert len(run_dirs(folder)) == 1


def test_dry_run_preview_and_choosing_a_function(workdir):
    folder, expected = workdir
    two = "def first(img):\n    return img[0]\n\ndef second(img):\n    return img['dem2'] - img['dem1']\n"
    cells = [
        "%load_ext condormagic",
        "import numpy as np",
        SOURCES,
        "%%condor --dry-run --name DRY\n" + SEED_CELL.split("\n", 1)[1],
        "%%condor --preview\n" + SEED_CELL.split("\n", 1)[1],
        "%%condor --dry-run\n" + two,
        "%%condor --dry-run --func second\n" + two,
    ]
    nb = execute(folder, cells)
    dry, preview, ambiguous, chosen = nb.cells[3:]
    assert not errors_of(dry)
    assert "Dry run: 6 jobs" in text_of(dry) or "Dry run:" in text_of(dry)
    assert "Job#0" in "".join(o.data.get("text/html", "") for o in dry.outputs if "data" in o)
    assert not errors_of(preview)
    # the live preview: the explorer map (a widget) over the whole grid
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in preview.outputs)
    assert "over the whole grid" in text_of(preview) and "nothing was submitted" in text_of(preview)
    assert "several functions (first, second)" in usage_error(ambiguous)
    assert not errors_of(chosen)
    assert "Dry run" in text_of(chosen)
    assert run_dirs(folder) == []


BAD = {
    "no sources": ("%%condor\ndef f(img):\n    return img[0]", "No sources are declared"),
    "missing file": ("%condor_sources a=nowhere.tif", "does not exist"),
    "not a raster": ("%condor_sources a=notes.txt", "is not a raster GDAL can read"),
    "no function": ("%%condor\nx = 1", "defines no function"),
    "unknown option": ("%%condor --bogus\ndef f(img):\n    return img[0]", "unrecognized arguments"),
    "parsecs": ("%%condor --mem 6 parsecs\ndef f(img):\n    return img[0]", "is not a memory size"),
    "cpus 0": ("%%condor --cpus 0\ndef f(img):\n    return img[0]", "--cpus must be a whole number"),
    "bad name": ('%%condor --name "x;queue 9"\ndef f(img):\n    return img[0]', "is not allowed"),
}


def test_every_mistake_gets_one_sentence_and_leaves_nothing(workdir):
    folder, _ = workdir
    (folder / "notes.txt").write_text("not a raster\n")
    order = ["no sources", "missing file", "not a raster"]
    cells = ["%load_ext condormagic", BAD["no sources"][0], BAD["missing file"][0], BAD["not a raster"][0], SOURCES]
    rest = [k for k in BAD if k not in order]
    cells += [BAD[k][0] for k in rest]
    cells.append("%%condor\ndef f(img)\n    return img[0]")  # a syntax error: IPython's own error
    nb = execute(folder, cells)
    outcomes = dict(zip(order, nb.cells[1:4], strict=True))
    outcomes.update(zip(rest, nb.cells[5 : 5 + len(rest)], strict=True))
    for key, cell in outcomes.items():
        assert BAD[key][1] in usage_error(cell), key
    syntax = nb.cells[-1]
    assert any("SyntaxError" in text_of(syntax) or "SyntaxError" in json.dumps(o) for o in syntax.outputs)
    assert run_dirs(folder) == []


def test_line_magics_status_config_rm_retry(workdir):
    folder, expected = workdir
    cells = [
        "%load_ext condormagic",
        "import numpy as np",
        "%condor_config cpus=1 mem=500MB",
        SOURCES,
        "%%condor --name FLAKY --wait --no-check\n"
        "def flaky(img):\n"
        "    import os\n"
        "    if img.window.row_off == 0 and img.window.col_off == 0 and os.path.exists('fail.flag'):\n"
        "        raise RuntimeError('first tile refused on purpose')\n"
        "    return (img['dem2'] - img['dem1'] > 10).astype('uint8')",
        "%condor_status FLAKY",
        "import os\nos.remove('fail.flag')",
        "r = %condor_retry FLAKY\nr.wait(timeout=120)\nprint(r.status())",
        "%condor_status",
        "%condor_rm FLAKY",
        "%condor_rm NOSUCHRUN",
    ]
    (folder / "fail.flag").write_text("1")
    nb = execute(folder, cells)
    config, status, retried, listing, removed, missing = (nb.cells[i] for i in (2, 5, 7, 8, 9, 10))
    assert "500MB" in text_of(config)
    assert "failed 1" in text_of(status)
    status_html = "".join(o.data.get("text/html", "") for o in status.outputs if "data" in o)
    assert "Job#0 failed: the function raised RuntimeError: first tile refused on purpose" in status_html
    assert "'completed': " in text_of(retried) and "'failed': 0" in text_of(retried)
    assert "FLAKY" in text_of(listing)
    assert "no job left to remove" in text_of(removed)
    assert "No run is named or numbered 'NOSUCHRUN'" in usage_error(missing)
    (run_dir,) = run_dirs(folder)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["options"]["mem"] == 500
    assert sorted(p.name for p in (run_dir / "clusters").glob("*.json")) == ["1.json", "2.json"]
    assert json.loads((run_dir / "clusters" / "2.json").read_text())["jobs"] == [0]
    with rasterio.open(run_dir / "output.tif") as src:
        dem1 = rasterio.open(folder / "dem1.tif").read(1)
        dem2 = rasterio.open(folder / "dem2.tif").read(1)
        assert np.array_equal(src.read(1), (dem2 - dem1 > 10).astype("uint8"))
    assert os.stat(run_dir).st_mode & 0o777 == 0o700
