"""``condormagic demo``: the deforestation example, end to end, through a real kernel."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import CondorMagicError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOK = "deforestation.ipynb"
FILES = (NOTEBOOK, "make_deforestation_data.py")


def run_demo(size: int = 4096, workdir: str | os.PathLike | None = None) -> tuple[str, float, Path]:
    """Make the data, execute ``examples/deforestation.ipynb`` headless, and read its result.

    Parameters
    ----------
    size : int
        Pixels per side of the generated rasters.
    workdir : path, optional
        Where the notebook runs (its data and the executed notebook go there); default the
        checkout's ``examples/`` folder, with the executed notebook in ``examples/executed/``.

    Returns the output GeoTIFF's path, the percentage of forest-polygon pixels found
    deforested, and the path of the executed notebook.
    """
    import nbformat
    import numpy as np
    import rasterio
    from nbclient import NotebookClient

    if not (EXAMPLES / NOTEBOOK).exists():
        raise CondorMagicError(f"{EXAMPLES / NOTEBOOK} is missing: the demo runs from a checkout of the repository.")
    if workdir is None:
        where, executed = EXAMPLES, EXAMPLES / "executed" / NOTEBOOK
    else:
        where = Path(workdir).absolute()
        where.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy(EXAMPLES / name, where / name)
        executed = where / "executed" / NOTEBOOK
    executed.parent.mkdir(exist_ok=True)
    env_size = os.environ.get("CONDORMAGIC_DEMO_SIZE")
    os.environ["CONDORMAGIC_DEMO_SIZE"] = str(size)
    try:
        nb = nbformat.read(where / NOTEBOOK, as_version=4)
        client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(where)}})
        # The kernel's own chatter (its start-up warnings) goes to a log, not the demo's output.
        with open(executed.parent / "kernel.log", "w") as log:
            client.execute(stderr=log)
    finally:
        if env_size is None:
            os.environ.pop("CONDORMAGIC_DEMO_SIZE", None)
        else:
            os.environ["CONDORMAGIC_DEMO_SIZE"] = env_size
    nbformat.write(nb, executed)

    from .api import run as find_run

    result = find_run("DEFORESTATION")
    output = result.output
    if output is None:
        raise CondorMagicError(f"The demo's run {result.id} did not complete: {result.status()}; see {result.path}.")
    with rasterio.open(output) as out, rasterio.open(where / "data" / "polygon.tif") as poly:
        deforested = np.count_nonzero(out.read(1))
        inside = np.count_nonzero(poly.read(1))
    return output, 100.0 * deforested / inside, executed
