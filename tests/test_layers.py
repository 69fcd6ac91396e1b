"""The package's layers import one way, and the job's entry point starts without the kernel-side stack."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import condormagic as cm

PACKAGE = Path(cm.__file__).parent

# The chain of DESIGN.md, lowest first: a module may import from its own layer and the layers before it.
LAYERS = [
    {"errors", "config", "_version", "resources", "voila"},
    {"tiling"},
    {"rundir"},
    {"backends"},
    {"worker", "forkedjob"},
    {"runhandle"},
    {"api"},
    {"display"},
    {"magics", "cli", "demo", "__init__"},
]
# The only imports up the chain: a Run's display hooks, and cm.dashboard(), each one call into display/.
UPWARD = {("runhandle", "display"), ("api", "display")}
KERNEL_SIDE = ("display", "magics", "api", "runhandle", "cli", "demo")


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, function-level imports included."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    root = ".".join(base + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                names = [root] + [f"{root}.{a.name}" for a in node.names]
            for name in names:
                while name and name not in modules:
                    name = name.rsplit(".", 1)[0] if "." in name else ""
                if name and name != module and not module.startswith(name + "."):
                    edges[module].add(name)
    return edges


def test_no_import_circle_and_every_import_goes_down_the_chain():
    edges = import_graph()
    upward = []
    for module, targets in edges.items():
        for target in targets:
            if target == "condormagic":
                continue
            pair = (_top(module), _top(target))
            if layer_of(target) > layer_of(module) and pair not in UPWARD:
                upward.append(f"{module} -> {target}")
    assert upward == []

    cycles = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for node in sorted(edges):
        if node not in done:
            visit(node, [node])
    assert cycles == []


def test_lower_layers_never_reach_the_kernel_side():
    edges = import_graph()
    low = [m for m in edges if _top(m) in {"tiling", "rundir", "backends", "worker", "forkedjob"}]
    reached = sorted(f"{m} -> {t}" for m in low for t in edges[m] if _top(t) in KERNEL_SIDE)
    assert reached == []


def _top(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter imports to run ``code`` (from ``-X importtime``)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_the_worker_starts_without_the_kernel_side_stack():
    modules = imported_by("import condormagic.worker")
    heavy = {"IPython", "ipywidgets", "htcondor2", "ipyleaflet", "condormagic.api", "condormagic.display"}
    assert not {m for m in modules if m.split(".")[0] in heavy or m in heavy}
    assert "rasterio" in modules  # it reads rasters, of course


def test_the_local_runner_starts_without_numpy_or_rasterio():
    modules = imported_by("import condormagic.backends.runner")
    assert not {m for m in modules if m.split(".")[0] in {"numpy", "rasterio", "IPython", "htcondor2"}}


def test_every_public_name_is_what_it_says():
    """No module of the package hides a public name (``cm.run`` is the function, not a module), whatever
    was imported first."""
    import condormagic.tiling as tiling
    import condormagic.tiling.source  # noqa: F401 - a submodule loaded before the names are asked for

    for package in (cm, tiling):
        for name in package.__all__:
            value = getattr(package, name)
            assert not isinstance(value, type(os)), f"{package.__name__}.{name}"
