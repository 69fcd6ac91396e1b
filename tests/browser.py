"""Helpers of the browser tests: small rasters, a Voila server on loopback, headless Chromium."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import rasterio
from nbformat.v4 import new_code_cell, new_notebook
from rasterio.transform import from_origin

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_dems(folder: Path, seed: int = 3, names=("dem1", "dem2")) -> None:
    """Two 610 x 450 px float32 rasters at 30 m in EPSG:32633 (six tiles of 300 px)."""
    rng = np.random.default_rng(seed)
    for name in names:
        array = rng.normal(200, 8, (450, 610)).astype("float32")
        profile = dict(driver="GTiff", width=610, height=450, count=1, dtype="float32", crs="EPSG:32633")
        profile["transform"] = from_origin(500000, 5000000, 30, 30)
        with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
            dst.write(array, 1)


@contextlib.contextmanager
def serving(argv_for_port, folder: Path, runs: Path, env: dict | None = None, log_name: str = "voila.log"):
    """Start a server (``argv_for_port(port)``) in ``folder`` on a free loopback port; yield its URL.

    The server runs on the local backend with its runs in ``runs``; its output goes to
    ``folder/log_name``. It is stopped on exit.
    """
    port = free_port()
    bindir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "CONDORMAGIC_RUNS_DIR": str(runs),
        "CONDORMAGIC_BACKEND": "local",
        **(env or {}),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    with open(folder / log_name, "w") as log:
        proc = subprocess.Popen(
            argv_for_port(port), cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.terminate()  # condormagic voila stops its server; Voila stops its kernels
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):  # whatever is left of the server's session
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def voila_server(folder: Path, source: str | list[str], theme: str = "light", env: dict | None = None):
    """Serve a notebook of ``source`` (one cell, or a list of cells) from ``folder`` with Voila on
    loopback; yield its URL.

    The server runs on the local backend with runs in ``folder/runs`` unless ``env`` says otherwise;
    its output goes to ``folder/voila.log``.
    """
    cells = [source] if isinstance(source, str) else source
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), folder / "notebook.ipynb")
    voila = os.path.join(os.path.dirname(sys.executable), "voila")

    def argv(port: int) -> list[str]:
        return [voila, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", f"--theme={theme}", "notebook.ipynb"]

    with serving(argv, folder, folder / "runs", env) as url:
        yield url


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 1400):
    """A page of headless Chromium (Playwright, the system's Chromium)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
