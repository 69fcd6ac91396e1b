"""Careless input gets one sentence at the point of entry, and leaves nothing behind.

Paths with spaces, quotes and accents; a server that never answers; a grid far too big;
reserved source names; numbers that are not what they should be; requests no job here can meet;
and the Python API under Voila.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import rasterio
from kernel import execute, text_of, usage_error
from rasterio.transform import from_origin

import condormagic as cm

SIZE = 64


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype=array.dtype, crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(500000, 5000000, 30, 30), **profile) as dst:
        dst.write(array, 1)
    return path


@pytest.fixture
def folder(tmp_path, runs_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    write(tmp_path / "data" / "sp ace" / "a b.tif", values)
    write(tmp_path / "data" / "é" / "ü'q.tif", values + 1)
    write(tmp_path / "a.tif", values)
    return tmp_path, values, runs_dir


def test_paths_with_spaces_quotes_and_accents_are_written_as_in_a_shell(folder):
    path, values, runs = folder
    out = path / "out dir" / "x é.tif"
    cells = [
        "%load_ext condormagic",
        """%condor_sources "a=data/sp ace/a b.tif" "b=data/é/ü'q.tif" --tile 32""",
        f'%%condor --name "ab" --output "{out}" --wait\ndef total(img):\n    return img["a"] + img["b"]',
        "print(_.name, _.output)",
    ]
    nb = execute(path, cells)
    assert text_of(nb.cells[3]).strip() == f"ab {out}"
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), 2 * values + 1)
    assert not (path / '"').exists()


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_server_that_never_answers_is_named_after_the_time_out(folder):
    path, values, runs = folder
    server = SilentServer()
    url = f"/vsicurl/http://127.0.0.1:{server.port}/dem.tif"
    try:
        cm.configure(http_timeout=2)
        start = time.monotonic()
        with pytest.raises(cm.SourceError) as caught:
            cm.sources(dem=url)
        assert time.monotonic() - start < 15
        assert str(caught.value) == (
            f"Source 'dem': {url} did not answer within 2 s; check the URL, or raise the time-out with "
            "%condor_config http_timeout=SECONDS."
        )
    finally:
        cm.configure(http_timeout=30)
        server.close()


def test_a_grid_far_too_big_is_refused_with_its_numbers(folder):
    with pytest.raises(cm.SourceError, match=r"10,000,000 x 10,000,000 pixels, 95,374,756 tiles of 1024 px"):
        cm.sources(a="a.tif", crs="EPSG:32633", res=0.001, bounds=(500000, 4990000, 510000, 5000000))
    with pytest.raises(cm.SourceError, match=r"times the pixels of the largest source"):
        cm.sources(a="a.tif", crs="EPSG:32633", res=0.5, bounds=(500000, 4990000, 510000, 5000000))


@pytest.mark.parametrize(
    "call, sentence",
    [
        (lambda: cm.sources(a="a.tif", tile=0), "tile must be a whole number of at least 1, not 0."),
        (lambda: cm.sources(a="a.tif", tile=1.5), "tile must be a whole number of at least 1, not 1.5."),
        (lambda: cm.sources(a="a.tif", tile="abc"), "tile must be a whole number of at least 1, not 'abc'."),
        (lambda: cm.sources(a="a.tif", halo=10**6), "halo 1000000 is wider than the grid (64 x 64 px)"),
        (lambda: cm.submit(lambda img: img[0], cm.sources(a="a.tif"), mem=float("nan")), "--mem nan is not a memory"),
        (lambda: cm.submit(lambda img: img[0], cm.sources(a="a.tif"), mem=float("inf")), "--mem inf is not a memory"),
        (lambda: cm.submit(lambda img: img[0], cm.sources(a="a.tif"), cpus=True), "--cpus must be a whole number"),
        (lambda: cm.submit(lambda img: img[0], cm.sources(a="a.tif"), mem="6TB"), "No job can start on this machine"),
        (lambda: cm.submit(lambda img: img[0], cm.sources(a="a.tif"), gpus=1000), "1000 GPUs (the local backend"),
        (lambda: cm.configure(cpus="abc"), "cpus must be a whole number of at least 1, not 'abc'."),
        (lambda: cm.configure(runs_dir="/proc/x"), "runs_dir '/proc/x' cannot be made in /proc"),
        (lambda: cm.sources(**{"bad name": "a.tif"}), "'bad name' cannot name a source: use a Python identifier"),
        (lambda: cm.sources(**{"mask": "a.tif", "b": "a.tif"}), "'a.tif' is not a declared source: declared are b."),
    ],
)
def test_each_bad_value_is_one_sentence_at_entry(folder, call, sentence):
    path, values, runs = folder
    with pytest.raises(cm.CondorMagicError) as caught:
        call()
    assert sentence in str(caught.value) and "\n" not in str(caught.value)
    assert not runs.exists() or not any(runs.iterdir())


def test_magic_mistakes_are_one_line_each(folder):
    path, values, runs = folder
    cells = [
        "%load_ext condormagic",
        "%condor_sources a=a.tif --tile 0",
        "%condor_sources mask=a.tif",
        "%condor_config cpus=abc",
        "%condor_config runs_dir=/proc/x",
        "%condor_sources a=a.tif --tile 32",
        "%%condor --mem -1GB\ndef f(img):\n    return img['a']",
        "%%condor --cpus True\ndef f(img):\n    return img['a']",
        "%%condor --mem 6TB\ndef f(img):\n    return img['a']",
    ]
    nb = execute(path, cells)
    said = [usage_error(nb.cells[i]) for i in (1, 2, 3, 4, 6, 7, 8)]
    assert said[0] == "tile must be a whole number of at least 1, not '0'."
    assert said[1].startswith("'mask' cannot name a source: it is an option of %condor_sources")
    assert said[2] == "cpus must be a whole number of at least 1, not 'abc'."
    assert said[3].startswith("runs_dir '/proc/x' cannot be made in /proc")
    assert said[4].startswith("--mem '-1GB' is not a memory size")
    assert said[5] == "--cpus must be a whole number of at least 1, not 'True'."
    assert said[6].startswith("No job can start on this machine: each asks for 6,291,456 MB of memory")
    assert not runs.exists() or not any(runs.iterdir())


def test_more_cpus_than_the_machine_has_runs_one_job_at_a_time_and_says_so(folder, capsys):
    path, values, runs = folder
    run = cm.submit(lambda img: img["a"] + 1, cm.sources(a="a.tif", tile=32), cpus=1000, mem="300MB")
    assert "Each job asks for 1000 CPUs and this machine has" in capsys.readouterr().out
    run.wait(timeout=120)
    assert run.complete


def test_under_voila_the_python_api_neither_submits_nor_steers_unless_allowed(folder, monkeypatch):
    path, values, runs = folder
    src = cm.sources(a="a.tif", tile=32)
    made = cm.submit(lambda img: img["a"] * 3, src, mem="300MB", name="MADE").wait(timeout=120)
    monkeypatch.setenv("CONDORMAGIC_DASHBOARD", "1")
    with pytest.raises(cm.CondorMagicError, match="Submitting jobs is not allowed in a dashboard"):
        cm.submit(lambda img: img["a"] * 4, src, mem="300MB")
    for action in (made.remove, made.hold, made.release, made.retry):
        with pytest.raises(cm.CondorMagicError, match=r"is not allowed in a dashboard"):
            action()
    again = cm.submit(lambda img: img["a"] * 3, src, mem="300MB", name="MADE")  # attaching is looking
    assert again.attached and again.id == made.id
    cm.configure(dashboard_submit=True)
    try:
        allowed = cm.submit(lambda img: img["a"] * 4, src, mem="300MB").wait(timeout=120)
        assert allowed.complete
    finally:
        cm.configure(dashboard_submit=False)


def test_a_run_made_by_a_clock_ahead_of_this_one_does_not_say_zero_seconds_ago():
    from condormagic.display.cards import age

    assert age(time.time() + 3600) == "in 60 min (its clock is ahead of this machine's)"
    assert age(time.time() - 90) == "2 min ago"
