"""Limit BLAS threads while a likelihood is maximised.

The SECR likelihood multiplies skinny matrices (animals x traps by traps x mask
points) a few hundred times per fit. Multi-threaded OpenBLAS gains nothing on
products this small, and its threads busy-wait: on a shared or loaded machine
they made fits 3-20 times slower than one thread. :func:`blas_threads` sets the
thread count of numpy's OpenBLAS for the duration of a block and restores it.

It uses ``threadpoolctl`` when installed; otherwise it calls the thread setter
of the OpenBLAS library bundled with numpy through :mod:`ctypes`; where neither
is available it does nothing. ``IRBIS_BLAS_THREADS`` (an integer; ``0`` = leave
alone) overrides the count.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

__all__ = ["blas_threads"]

_SETTERS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@cache
def _openblas() -> tuple[object, object] | None:
    """(setter, getter) of numpy's bundled OpenBLAS, or None."""
    try:
        import numpy

        libdir = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
        libs = sorted(libdir.glob("lib*openblas*.so*")) if libdir.is_dir() else []
        for path in libs:
            lib = ctypes.CDLL(str(path))
            for set_name, get_name in _SETTERS:
                setter = getattr(lib, set_name, None)
                getter = getattr(lib, get_name, None)
                if setter is not None and getter is not None:
                    setter.argtypes = [ctypes.c_int]
                    setter.restype = None
                    getter.argtypes = []
                    getter.restype = ctypes.c_int
                    return setter, getter
    except (OSError, AttributeError, ImportError):
        return None
    return None


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Run a block with ``n`` BLAS threads (restored afterwards).

    Parameters
    ----------
    n:
        Thread count; ``IRBIS_BLAS_THREADS`` overrides it (``0`` leaves BLAS alone).

    Yields
    ------
    None
    """
    env = os.environ.get("IRBIS_BLAS_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 1
    if n <= 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
        return
    funcs = _openblas()
    if funcs is None:
        yield
        return
    setter, getter = funcs
    old = int(getter())  # type: ignore[operator]
    setter(n)  # type: ignore[operator]
    try:
        yield
    finally:
        setter(old)  # type: ignore[operator]
