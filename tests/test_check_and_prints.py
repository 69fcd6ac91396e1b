"""Through a real kernel (nbclient): ``%%condor`` tries the function before submitting, what tiles
print reaches the job's stdout line by line, each line marked with its tile, and nothing the kernel
or the jobs write themselves draws rasterio's ``NotGeoreferencedWarning``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import write_raster
from kernel import errors_of, execute, run_dirs, text_of

# Any NotGeoreferencedWarning in the kernel becomes an error, so a cell that draws one shows it.
LOAD = [
    "import warnings\nfrom rasterio.errors import NotGeoreferencedWarning\n"
    'warnings.simplefilter("error", NotGeoreferencedWarning)',
    "%load_ext condormagic",
    "%condor_sources dem1=dem1.tif dem2=dem2.tif --tile 100",
]

# `np` is used before `import numpy as np`: what a restarted kernel runs into.
NO_IMPORT = """%%condor --name NOIMPORT
def change(img):
    difference = img["dem2"] - img["dem1"]
    return np.abs(difference)"""

# Two tiles per job, computed at once in two threads; each tile prints in pieces, sleeping between
# them, so that without the worker's care the pieces of the two tiles would interleave.
CHATTY = """%%condor --name CHATTY --cpus 2 --tiles-per-job 2 --mem 500MB --wait
import time
def chatty(img):
    print("start", time.time())
    for i in range(6):
        print("piece", i, "of tile at col", img.window.col_off, end="; ")
        time.sleep(0.02)
    print("done")
    print("end", time.time())
    return np.abs(img["dem2"] - img["dem1"])"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    for name in ("dem1", "dem2"):
        write_raster(tmp_path / f"{name}.tif", rng.normal(200, 8, (100, 200)).astype("float32"))
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    return tmp_path


def test_a_missing_import_is_refused_before_submitting_and_prints_stay_whole(folder):
    cells = [
        *LOAD,
        NO_IMPORT,
        "import numpy as np",
        CHATTY,
        "run = _\nout, err = run.logs(0)\nprint(run.status()['completed'], run.n_jobs)\nprint(out)\n"
        "print('stderr warns', 'Warning' in err)",
        # What the kernel draws from files it wrote: the result map (the explorer), the card, a preview.
        "from condormagic.display.cards import run_card\n"
        "m = run.explore()\nm.render()\ncard = run_card(run)\nprint('drawn', run.output.endswith('.tif'))",
        CHATTY.replace("--wait", "--preview"),
    ]
    nb = execute(folder, cells)
    refused, chatty, logs, drawn, preview = nb.cells[3], nb.cells[5], nb.cells[6], nb.cells[7], nb.cells[8]

    # 1. Refused with the function's own error (its line, its NameError) and one UsageError line.
    errors = errors_of(refused)
    assert len(errors) == 1, text_of(refused)
    assert errors[0].startswith("UsageError: NOIMPORT failed on a small window of the first tile (NameError: ")
    assert "nothing was submitted" in errors[0] and "--no-check" in errors[0]
    stderr = "".join(o.text for o in refused.outputs if o.output_type == "stream" and o.name == "stderr")
    assert "return np.abs(difference)" in stderr and "NameError: name 'np' is not defined" in stderr
    assert "condormagic/" not in stderr  # the user's own traceback, none of condormagic's frames
    # Nothing was submitted for it: the only run is the one made after the import.
    assert len(run_dirs(folder)) == 1

    # ... and a function that works says in one line that the check ran, then runs.
    said = [line for line in text_of(chatty).splitlines() if line.startswith("Checked ")]
    assert said == ["Checked CHATTY on a small window of the first tile: it returns float32, 1 band."], said

    # 5. Two tiles at once in one job: each printed line whole, marked with its own tile.
    printed = text_of(logs).splitlines()
    assert printed[0] == "1 1"  # one job of two tiles, completed
    assert printed[-1] == "stderr warns False"  # the job's stderr: its summary line, no warning
    lines = [line for line in printed[1:-1] if line]
    assert len(lines) == 6, lines  # three lines per tile
    times: dict[int, list[float]] = {}
    for line in lines:
        match = re.fullmatch(r"\[tile (\d)\] (start|end) ([\d.]+)|\[tile (\d)\] (.*)done", line)
        assert match, line
        if match[1] is not None:
            times.setdefault(int(match[1]), []).append(float(match[3]))
            continue
        tile, pieces = int(match[4]), match[5]
        col = 100 * tile  # tile 0 at col 0, tile 1 at col 100
        assert pieces == "".join(f"piece {i} of tile at col {col}; " for i in range(6)), line
    (start0, end0), (start1, end1) = times[0], times[1]
    assert start0 < end1 and start1 < end0, times  # the two tiles were computed at the same time

    # 6. No NotGeoreferencedWarning: not in the job's stderr, not in any cell of the kernel.
    assert "drawn True" in text_of(drawn) and not errors_of(drawn)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in preview.outputs)
    for cell in nb.cells:
        assert "NotGeoreferencedWarning" not in text_of(cell) + json.dumps(cell.outputs), cell.source
