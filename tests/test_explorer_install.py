"""``pip install condormagic`` alone gives a working ``condormagic voila`` and the template.

A regular (non-editable) install of this source tree into a fresh virtual environment: its own
copy of the package and of the template's data files. To stay fast and offline, the install
takes no dependencies (``--no-deps``) and no build isolation; the dependencies come from the
test environment's site-packages, added to the new one's path by a ``.pth`` line (which does
not run the test environment's own ``.pth`` files, so its editable condormagic stays out).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_regular_install_has_voila_the_cli_and_the_template(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("condormagic", "voila-templates"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip itself comes from the test environment too (the .pth line below)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    probe = (
        "import importlib.metadata as md, json, condormagic, condormagic.voila as v, voila\n"
        "print(json.dumps({'package': condormagic.__file__, 'template': str(v.template_dir()),"
        " 'requires': md.requires('condormagic'), 'editable': md.distribution('condormagic').read_text("
        "'direct_url.json')}))"
    )
    run = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path)
    found = json.loads(run.stdout)
    assert found["package"].startswith(str(venv)), found  # the installed copy, not this checkout
    assert any(r.startswith("voila") for r in found["requires"]), found["requires"]  # a dependency, not an extra
    assert '"editable": true' not in (found["editable"] or "")
    template = Path(found["template"])
    assert template == venv / "share" / "jupyter" / "voila" / "templates" / "condormagic"
    assert {p.name for p in template.iterdir()} == {"conf.json", "index.html.j2"}

    cli = subprocess.run(
        [venv / "bin" / "condormagic", "voila", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert cli.returncode == 0, cli.stderr
    assert "Serve NOTEBOOK as a dashboard with Voila and the condormagic template" in cli.stdout
    voila = subprocess.run([python, "-m", "voila", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert voila.returncode == 0 and "--template" in voila.stdout
