"""What the magics need from a cell: its top-level functions, and which one to run."""

from __future__ import annotations

import ast

from ..errors import CondorMagicError


def top_level_functions(cell: str) -> list[str]:
    """Names of the functions a cell defines at its top level (a SyntaxError propagates)."""
    tree = ast.parse(cell)
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def pick_function(cell: str, wanted: str | None) -> str:
    """The function ``%%condor`` runs: ``--func``, else the only one the cell defines."""
    names = top_level_functions(cell)
    if wanted:
        if wanted not in names:
            found = f"it defines {', '.join(names)}" if names else "it defines no function"
            raise CondorMagicError(f"--func {wanted}: the cell does not define {wanted}() ({found}).")
        return wanted
    if not names:
        raise CondorMagicError(
            "The cell defines no function: write the function to run as def f(img): ... in the cell."
        )
    if len(names) > 1:
        raise CondorMagicError(f"The cell defines several functions ({', '.join(names)}): choose one with --func NAME.")
    return names[0]
