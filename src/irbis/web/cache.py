"""A small time-limited cache for project-wide aggregates (counts over every row).

The overview, the station list and the species hotkeys aggregate the whole
observations table; recomputing them for every request of every reviewer would
dominate the app's load at census scale, and a few seconds of staleness in a
count is harmless. Writes through this app clear the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_store: dict[tuple, tuple[float, Any]] = {}


def cached(key: tuple, ttl_s: float, compute: Callable[[], T]) -> T:
    """``compute()``'s value for ``key``, recomputed when older than ``ttl_s`` seconds."""
    now = time.monotonic()
    with _lock:
        hit = _store.get(key)
    if hit is not None and now - hit[0] < ttl_s:
        return hit[1]
    value = compute()
    with _lock:
        _store[key] = (time.monotonic(), value)
    return value


def clear(prefix: object) -> None:
    """Forget every entry whose key starts with ``prefix`` (e.g. a project root)."""
    with _lock:
        for key in [k for k in _store if k and k[0] == prefix]:
            del _store[key]
