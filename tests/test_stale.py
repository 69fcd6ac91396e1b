"""A cell attaches to an earlier run if and only if nothing that could change the result changed.

Through a real kernel: a global the function uses, a helper module of the user's that is edited
and reloaded, an input file rewritten after ``%condor_sources``, and ``--func``; and six processes
submitting the same run at once.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import rasterio
from kernel import execute, run_dirs, text_of
from rasterio.transform import from_origin

SIZE = 128


def write(path, array) -> None:
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype=array.dtype, crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(500000, 5000000, 30, 30), **profile) as dst:
        dst.write(array, 1)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    values = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE) % 100
    write(tmp_path / "a.tif", values)
    (tmp_path / "helpers.py").write_text("def scale(x):\n    return x * 2\n")
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    return tmp_path, values


def read(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


REPORT = "r = _\nprint(r.id, r.attached)\nprint(r.output)"


def test_a_changed_global_module_input_or_func_makes_a_new_run(folder):
    path, values = folder
    threshold_cell = "%%condor --name ABOVE --wait\ndef above(img):\n    return (img['a'] > threshold).astype('uint8')"
    helper_cell = (
        "%%condor --name SCALED --wait\nfrom helpers import scale\ndef scaled(img):\n    return scale(img['a'])"
    )
    two = (
        "%%condor --name TWO --wait --func {}\n"
        "def first(img):\n    return img['a'] + 1\ndef second(img):\n    return img['a'] - 1"
    )
    cells = [
        "%load_ext condormagic",
        "%condor_sources a=a.tif --tile 64",
        # 1. a global the function reads
        "threshold = 10",
        threshold_cell,
        REPORT,
        threshold_cell,
        REPORT,  # nothing changed: attaches
        "threshold = 90",
        threshold_cell,
        REPORT,
        # 2. a helper of the user's own module, edited and reloaded
        helper_cell,
        REPORT,
        "import importlib, helpers\nopen('helpers.py', 'w').write('def scale(x):\\n    return x * 3\\n')\n"
        "importlib.reload(helpers)",
        helper_cell,
        REPORT,
        # 3. the input file rewritten after %condor_sources; only the %%condor cell runs again
        "import rasterio, numpy as np\nwith rasterio.open('a.tif', 'r+') as ds:\n    ds.write(ds.read(1) + 50, 1)",
        threshold_cell,
        REPORT,
        # 4. --func picks another function of the same cell
        two.format("first"),
        REPORT,
        two.format("second"),
        REPORT,
    ]
    nb = execute(path, cells)
    at = [i for i, c in enumerate(cells) if c == REPORT]
    reports = [text_of(nb.cells[i]).split("\n") for i in at]
    (ids, attached, outputs) = zip(*[(r[0].split()[0], r[0].split()[1], r[1]) for r in reports], strict=True)

    t10, t10_again, t90, h2, h3, rewritten, first, second = range(8)
    assert attached[t10_again] == "True" and ids[t10_again] == ids[t10]  # the control: same everything
    assert "Attached to run" in text_of(nb.cells[at[t10_again] - 1])
    for case in (t90, h3, rewritten, second):
        assert attached[case] == "False", case
        assert "Attached" not in text_of(nb.cells[at[case] - 1]) and "Checked" in text_of(nb.cells[at[case] - 1])
    assert len({ids[t10], ids[t90], ids[h2], ids[h3], ids[rewritten], ids[first], ids[second]}) == 7

    np.testing.assert_array_equal(read(outputs[t10]), (values > 10).astype("uint8"))
    np.testing.assert_array_equal(read(outputs[t90]), (values > 90).astype("uint8"))
    np.testing.assert_array_equal(read(outputs[h2]), values * 2)
    np.testing.assert_array_equal(read(outputs[h3]), values * 3)
    np.testing.assert_array_equal(read(outputs[rewritten]), (values + 50 > 90).astype("uint8"))
    np.testing.assert_array_equal(read(outputs[first]), values + 51)
    np.testing.assert_array_equal(read(outputs[second]), values + 49)
    assert len(run_dirs(path)) == 7


SUBMITTER = """
import sys
import condormagic as cm

def doubled(img):
    return img["a"] * 2

src = cm.sources(a="a.tif", tile=32)
run = cm.submit(doubled, src, mem="300MB", tiles_per_job=2, name="CROWD")
run.wait(timeout=120)
print(run.id, run.status()["completed"], run.n_jobs, run.output)
"""


def test_six_processes_submitting_at_once_make_one_run_and_all_see_it_complete(folder):
    path, values = folder
    (path / "submit.py").write_text(textwrap.dedent(SUBMITTER))
    procs = [
        subprocess.Popen(
            [sys.executable, "submit.py"], cwd=path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        answers.append(out.split())
    ids = {a[0] for a in answers}
    assert len(ids) == 1, answers
    assert all(a[1] == a[2] for a in answers), answers  # every process saw every job completed
    (run_dir,) = run_dirs(path)
    assert [p.name for p in (run_dir / "clusters").glob("*.json")] == ["1.json"]
    np.testing.assert_array_equal(read(answers[0][3]), values * 2)
