"""Kernel backends: one interface, two implementations.

``c`` (the default) runs the kernels compiled from csrc/; ``numpy`` is the reference the tests
check it against. Choose with the environment variable ``MINIGRAD_BACKEND=c|numpy`` or, for a
block of code, ``with minigrad.backend.use("numpy"): ...``. Ops reach the active backend through
``minigrad.backend.current()``.
"""

from __future__ import annotations

import contextlib
import os
import types
import warnings
from collections.abc import Iterator

from .._checks import is_integer

from . import numpy_backend

# OpenMP threads that spin while waiting stall a whole team when another process holds the other
# core: measured on 2 cores, two training processes at once took 330 ms/step each with libgomp's
# default spinning, 8 ms with a short spin, 7 ms fully passive; alone, 3.9 / 4.1 / 4.5 ms. A
# short spin is the default here; OMP_WAIT_POLICY or GOMP_SPINCOUNT set by the user win. It must
# be set before the extension (and so libgomp) is loaded.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "200"

try:
    from . import c_backend
except ImportError as exc:  # the extension did not build or is not on the path
    c_backend = None  # type: ignore[assignment]
    _c_error: ImportError | None = exc
else:
    _c_error = None

_BACKENDS: dict[str, types.ModuleType | None] = {"c": c_backend, "numpy": numpy_backend}
_active: types.ModuleType


def _missing_extension_hint() -> str:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]  # backend -> minigrad -> src -> project root
    if (root / "build.py").is_file():
        return (
            f" This minigrad is the source tree in {root}: build its kernels in place with "
            "`pip install -e .` (or `python build.py`), or use the installed package."
        )
    return " Reinstall with `pip install .` from the project root (it needs a C compiler)."


def _lookup(name: str) -> types.ModuleType:
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(_BACKENDS)}")
    module = _BACKENDS[name]
    if module is None:
        raise ImportError(
            f"the minigrad C extension (minigrad._kernels) is not available: {_c_error}."
            + _missing_extension_hint()
            + " To run on the numpy reference backend instead, set MINIGRAD_BACKEND=numpy."
        )
    return module


def current() -> types.ModuleType:
    """The active backend module."""
    return _active


def set_backend(name: str) -> None:
    global _active
    _active = _lookup(name)


@contextlib.contextmanager
def use(name: str) -> Iterator[types.ModuleType]:
    """Run a block with another backend: ``with minigrad.backend.use("numpy"): ...``."""
    global _active
    previous = _active
    _active = _lookup(name)
    try:
        yield _active
    finally:
        _active = previous


def available() -> list[str]:
    return [name for name, module in _BACKENDS.items() if module is not None]


MAX_THREADS = 4096


def set_num_threads(n: int) -> None:
    """Threads the C kernels may use (OpenMP); also set by MINIGRAD_NUM_THREADS."""
    if not is_integer(n) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"number of threads must be a positive integer (at most {MAX_THREADS}), got {n!r}")
    if c_backend is not None:
        c_backend.set_num_threads(int(n))  # an int or a numpy integer


def backend_info() -> dict:
    """What is running: backend name, compile flags, OpenMP, threads, GEMM kernel."""
    info: dict = {"name": _active.name, "available": available()}
    if c_backend is not None:
        info.update(c_backend.info())
    else:
        info.update(compile_flags=None, openmp=False, num_threads=1, gemm_kernel=None,
                    c_error=str(_c_error))  # fmt: skip
    return info


def _initial() -> types.ModuleType:
    requested = os.environ.get("MINIGRAD_BACKEND", "").strip().lower()
    if requested:
        return _lookup(requested)
    if c_backend is None:
        warnings.warn(
            "minigrad: the C extension minigrad._kernels is missing "
            f"({_c_error}); running on the slow numpy reference backend."
            + _missing_extension_hint(),
            RuntimeWarning,
            stacklevel=3,
        )
        return numpy_backend
    return c_backend


_active = _initial()
_threads = os.environ.get("MINIGRAD_NUM_THREADS", "").strip()
if _threads:
    try:
        set_num_threads(int(_threads))
    except ValueError as exc:
        raise ValueError(f"MINIGRAD_NUM_THREADS={_threads!r}: {exc}") from None
elif c_backend is not None and c_backend.info()["num_threads"] > MAX_THREADS:
    # OpenMP's own setting (OMP_NUM_THREADS) is otherwise used as it is; libgomp fails to
    # create that many threads, or crashes, at the first parallel kernel
    raise ValueError(
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')!r} asks for more than {MAX_THREADS} "
        "threads; set a smaller OMP_NUM_THREADS, or MINIGRAD_NUM_THREADS"
    )
