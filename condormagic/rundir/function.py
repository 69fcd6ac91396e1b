"""The function of a run: pickled for the jobs, fingerprinted for the run id, loaded by the worker.

cloudpickle sends a function defined in a notebook by value, with the globals it uses, its
closure and its defaults. A function or module of an importable package goes by reference
(``numpy``, ``scipy.ndimage``); the user's own modules (files beside the notebook, not
installed) go by value too, since a job could not import them and their code is part of
what the run computes.

The fingerprint is a hash of that same pickle with every code object reduced to what it
computes (its bytecode, constants and names, not its file name or line numbers), so the run
id changes when the function, a value it captures or a helper it calls changes, and does not
change when the kernel restarts or the cell moves.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import sys
import sysconfig
import types
from collections.abc import Callable

from ..errors import CondorMagicError

_CODE_FIELDS = (
    "co_argcount",
    "co_posonlyargcount",
    "co_kwonlyargcount",
    "co_nlocals",
    "co_flags",
    "co_code",
    "co_consts",
    "co_names",
    "co_varnames",
    "co_freevars",
    "co_cellvars",
)


def dumps(func: Callable) -> bytes:
    """Pickle ``func`` for the jobs, with the user's own modules by value.

    Raises
    ------
    CondorMagicError
        Something the function uses cannot be pickled (an open file, a connection, a lock).
    """
    return _pickle(func, None)


def fingerprint(func: Callable) -> str:
    """A hash of what ``func`` computes with: its code, the values it captures, the helpers it calls."""
    digest = hashlib.sha256()
    _pickle(func, digest)
    return digest.hexdigest()


def _pickle(func: Callable, digest) -> bytes:
    import cloudpickle

    modules = own_modules(func)
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        if digest is None:
            buffer = io.BytesIO()
            cloudpickle.Pickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(func)
        else:
            _fingerprint_pickler()(_HashWriter(digest), protocol=cloudpickle.DEFAULT_PROTOCOL).dump(func)
    except Exception as exc:
        name = getattr(func, "__name__", "the function")
        raise CondorMagicError(
            f"The function {name} cannot be sent to the jobs: something it uses cannot be pickled "
            f"({type(exc).__name__}: {exc}); open files and connections inside the function instead."
        ) from None
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
    return buffer.getvalue() if digest is None else b""


def _fingerprint_pickler():
    """The pickler class of :func:`fingerprint` (made on first use: cloudpickle is not imported before)."""
    import cloudpickle

    class FingerprintPickler(cloudpickle.Pickler):
        """Pickles code objects as what they compute only (no file name, no line numbers)."""

        def reducer_override(self, obj):
            if isinstance(obj, types.CodeType):
                return tuple, (tuple(getattr(obj, f) for f in _CODE_FIELDS),)
            return super().reducer_override(obj)

    return FingerprintPickler


class _HashWriter:
    """A file-like object that feeds what is written to a hash."""

    def __init__(self, digest):
        self.digest = digest

    def write(self, data) -> int:
        self.digest.update(data)
        return len(data)


def own_modules(func: Callable) -> list[types.ModuleType]:
    """The user's own modules that ``func`` uses, directly or through the functions it calls.

    A module is the user's own when it has a file that is not in the interpreter's library
    or site-packages (a ``helpers.py`` beside the notebook).
    """
    found: dict[str, types.ModuleType] = {}
    seen: set[int] = set()
    todo: list = [func]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if _is_own(obj) and obj.__name__ not in found:
                found[obj.__name__] = obj
                todo.extend(v for v in vars(obj).values() if isinstance(v, (types.FunctionType, type)))
            continue
        if isinstance(obj, type):
            module = sys.modules.get(getattr(obj, "__module__", "") or "")
            if module is not None:
                todo.append(module)
            continue
        if not isinstance(obj, types.FunctionType):
            continue
        module = sys.modules.get(obj.__module__ or "")
        if module is not None and module.__name__ != "__main__":
            todo.append(module)
        names = _global_names(obj.__code__)
        todo.extend(obj.__globals__[n] for n in names if n in obj.__globals__)
        for cell in obj.__closure__ or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
    return list(found.values())


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _installed_paths() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.abspath(paths[k]) + os.sep for k in ("purelib", "platlib", "stdlib", "platstdlib"))


def _is_own(module: types.ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if not path or module.__name__ == "__main__" or module.__name__.split(".")[0] in ("condormagic",):
        return False
    return not os.path.abspath(path).startswith(_installed_paths())


def load(path: str | os.PathLike, dir_fd: int | None = None, shown: str | None = None):
    """Unpickle ``function.pkl``: only a file of this user's that nobody else can write, not through a link.

    The caller has checked the run directory itself (:func:`~condormagic.rundir.layout.check_owned`);
    ``shown`` is the file's name in messages (``path`` is relative to ``dir_fd``).
    """
    from .layout import UntrustedRunDir

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UntrustedRunDir(f"{shown or path} belongs to another user or can be written by other users")
        return pickle.load(fh)
