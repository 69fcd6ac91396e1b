"""Another user of a shared machine cannot get code run as you, nor forge your results.

The victim is the test process; the other user is a real second Unix user (``users.py``), who can
write into a shared runs directory (a group project space) and into ``/tmp``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import condormagic as cm
from condormagic.voila import template_env

SIZE = 64


def doubled(img):
    return img["a"] * 2


@pytest.fixture
def shared(other_user, monkeypatch):
    """A runs directory anyone can write (as a project space is), data the victim owns, the other user's home."""
    top = Path(tempfile.mkdtemp(prefix="condormagic-shared-"))
    os.chmod(top, 0o755)
    runs = top / "runs"
    runs.mkdir()
    os.chmod(runs, 0o1777)
    values = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", crs="EPSG:32633")
    with rasterio.open(top / "a.tif", "w", transform=from_origin(500000, 5000000, 30, 30), **profile) as dst:
        dst.write(values, 1)
    monkeypatch.setenv("CONDORMAGIC_RUNS_DIR", str(runs))
    monkeypatch.setenv("CONDORMAGIC_BACKEND", "local")
    monkeypatch.chdir(top)
    attacker = other_user.make_dir()
    yield top, runs, values, attacker
    shutil.rmtree(top, ignore_errors=True)
    shutil.rmtree(attacker, ignore_errors=True)


def plant(other_user, runs: Path, folder: str, manifest: dict, extra: dict[str, str] | None = None) -> Path:
    """As the other user: a run directory in the shared runs folder, with these files."""
    code = (
        "import json, os, sys\n"
        "folder, manifest, extra = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])\n"
        "os.makedirs(os.path.join(folder, 'clusters'))\n"
        "open(os.path.join(folder, 'manifest.json'), 'w').write(json.dumps(manifest))\n"
        "for name, target in extra.items():\n"
        "    if target.startswith('->'):\n"
        "        os.symlink(target[2:], os.path.join(folder, name))\n"
        "    else:\n"
        "        open(os.path.join(folder, name), 'w').write(target)\n"
    )
    path = runs / folder
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), json.dumps(manifest), json.dumps(extra or {})],
        user=other_user.uid,
        group=other_user.gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return path


def forged_manifest(run: cm.Run, **changes) -> dict:
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest.update(changes)
    return manifest


def test_a_planted_run_is_never_attached_to_steered_or_run_from(shared, other_user, capfd):
    top, runs, values, attacker = shared
    src = cm.sources(a="a.tif", tile=32)
    mine = cm.submit(doubled, src, mem="300MB", name="VICTIM").wait(timeout=120)
    marker = attacker / "ran-as-victim"
    script = attacker / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(script, 0o755)
    secret = top / "secret.txt"
    secret.write_text("the victim's file")

    # A copy of the victim's run made by the other user: newer, with an executable of theirs, a forged
    # output, and links where a victim's process would write.
    forged = forged_manifest(mine, created=time.time() + 3600, id=f"{mine.id}-forged")
    forged["options"]["python"] = str(script)
    plant(
        other_user,
        runs,
        f"{mine.manifest.content_hash}-forged",
        forged,
        {
            "output.tif": "not a raster",
            "result.json": json.dumps({"path": str(attacker / "output.tif")}),
            "runner.lock": f"->{secret}",
            "runner.json": f"->{secret}",
            "events.log": f"->{secret}",
            "clusters/1.json": json.dumps({"cluster": 1, "backend": "local", "jobs": [0], "description": {}}),
        },
    )
    capfd.readouterr()

    # The same cell again: attaches to the victim's own run, not to the newer forged one.
    again = cm.submit(doubled, src, mem="300MB", name="VICTIM")
    assert again.attached and again.id == mine.id
    assert cm.run("VICTIM").id == mine.id  # by name: the newest that is the victim's own
    with rasterio.open(again.output) as out:
        np.testing.assert_array_equal(out.read(1), values * 2)
    assert "belongs to another user: it is not used" in capfd.readouterr().err

    # Steering and retrying from a terminal: only the victim's own run, and never the forged executable.
    env = dict(os.environ, CONDORMAGIC_RUNS_DIR=str(runs))
    listing = subprocess.run([sys.executable, "-m", "condormagic.cli", "runs"], env=env, capture_output=True, text=True)
    assert listing.returncode == 0 and mine.id in listing.stdout and "forged" not in listing.stdout
    assert listing.stderr.count("belongs to another user") == 1
    for command in (["retry", "VICTIM"], ["rm", "VICTIM"], ["status", "VICTIM"]):
        done = subprocess.run(
            [sys.executable, "-m", "condormagic.cli", *command], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert mine.id in done.stdout or "nothing to retry" in done.stdout or "no job left" in done.stdout
    time.sleep(1)
    assert not marker.exists()
    assert secret.read_text() == "the victim's file"

    # The worker, asked to run a job of the forged directory as the victim, refuses to load its pickle.
    forged_dir = next(p for p in runs.iterdir() if p.name.endswith("-forged"))
    done = subprocess.run(
        [sys.executable, "-m", "condormagic.worker", str(forged_dir), "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 4 and "belongs to another user" in done.stderr and "refusing to load" in done.stderr


def test_a_forged_run_with_the_next_content_hash_is_not_reported_as_the_result(shared, other_user):
    top, runs, values, attacker = shared
    src = cm.sources(a="a.tif", tile=32)
    plan = cm.plan(doubled, src, mem="300MB", name="FIRST")
    # The other user guesses the run id of a cell before it runs, and makes that folder first.
    plant(other_user, runs, plan.content_hash, {"id": plan.content_hash, "name": "FIRST"}, {"output.tif": "forged"})
    run = cm.submit(doubled, src, mem="300MB", name="FIRST").wait(timeout=120)
    assert not run.attached and run.id != plan.content_hash and run.id.startswith(plan.content_hash)
    with rasterio.open(run.output) as out:
        np.testing.assert_array_equal(out.read(1), values * 2)


def test_unreadable_and_malformed_run_directories_are_skipped_with_one_line_each(shared, other_user, capfd):
    top, runs, values, attacker = shared
    src = cm.sources(a="a.tif", tile=32)
    good = cm.submit(doubled, src, mem="300MB", name="GOOD").wait(timeout=120)
    # Another user's private run.
    theirs = plant(other_user, runs, "theirs", {"id": "theirs", "name": "GOOD"})
    subprocess.run(["chmod", "700", str(theirs)], user=other_user.uid, check=True)
    # Broken ones of the victim's own.
    (runs / "no-options").mkdir(mode=0o700)
    bad = forged_manifest(good, id="no-options")
    del bad["options"]
    (runs / "no-options" / "manifest.json").write_text(json.dumps(bad))
    (runs / "not-json").mkdir(mode=0o700)
    (runs / "not-json" / "manifest.json").write_text("{ half a manifest")
    (good.path / "clusters" / "x.json").write_text("{}")
    (good.path / "clusters" / "7.json").write_text("{ corrupt")
    capfd.readouterr()

    env = dict(os.environ, CONDORMAGIC_RUNS_DIR=str(runs))
    for command in (["runs"], ["status", "GOOD"], ["retry", "GOOD"]):
        done = subprocess.run(
            [sys.executable, "-m", "condormagic.cli", *command], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        warnings = [line for line in done.stderr.splitlines() if line.startswith("condormagic: skipped")]
        assert len(warnings) == 3, done.stderr
        assert any("theirs belongs to another user" in w for w in warnings)
        assert any("no-options" in w and "not a condormagic manifest" in w for w in warnings)
        assert any("not-json" in w and "cannot be read" in w for w in warnings)
    assert cm.run("GOOD").id == good.id and cm.run("GOOD").complete
    again = cm.submit(doubled, src, mem="300MB", name="GOOD")
    assert again.attached and again.id == good.id


def test_the_voila_template_folder_is_private_and_unpredictable(other_user):
    planted = Path(tempfile.gettempdir()) / f"condormagic-jupyter-{os.getuid()}"
    shutil.rmtree(planted, ignore_errors=True)
    code = (
        "import os, sys\n"
        "kernel = os.path.join(sys.argv[1], 'kernels', 'python3')\n"
        "os.makedirs(kernel)\n"
        'spec = \'{"argv": ["/bin/sh", "-c", "touch /tmp/owned"]}\'\n'
        "open(os.path.join(kernel, 'kernel.json'), 'w').write(spec)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(planted)], user=other_user.uid, check=True, timeout=30)
    try:
        with template_env({"JUPYTER_PATH": ""}) as env:
            first = Path(env["JUPYTER_PATH"].split(os.pathsep)[0])
            assert first != planted and planted not in [Path(p) for p in env["JUPYTER_PATH"].split(os.pathsep)]
            st = os.stat(first)
            assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700
            assert (first / "voila" / "templates" / "condormagic" / "conf.json").exists()
        assert not first.exists()
    finally:
        shutil.rmtree(planted, ignore_errors=True)
