"""A small time-limited cache for project-wide aggregates (counts over every row).

The overview, the station list and the species hotkeys aggregate the whole
observations table; recomputing them for every request of every reviewer would
dominate the app's load at census scale, and a few seconds of staleness in a
count is harmless. Writes through this app clear the cache.

An entry older than its time to live is still answered at once while one
background thread recomputes it (stale-while-revalidate): otherwise every
``ttl_s`` seconds the unlucky request that finds the entry expired, and every
request arriving while it computes, would pay for a scan of the whole project.
Only a missing entry (first use, or cleared by a write) is computed in the
request, and then by one thread per key while the others wait for its value.
``compute`` must therefore open its own database session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_store: dict[tuple, tuple[float, Any]] = {}
# One lock per key being computed: concurrent misses wait instead of recomputing.
_computing: dict[tuple, threading.Lock] = {}
_refreshing: set[tuple] = set()
# Bumped by clear(): a computation that started before a write must not store
# its (now stale) value over the cleared entry.
_generation = 0


def _compute_and_store(key: tuple, compute: Callable[[], T]) -> T:
    with _lock:
        generation = _generation
    value = compute()
    with _lock:
        if generation == _generation:
            _store[key] = (time.monotonic(), value)
    return value


def _refresh(key: tuple, compute: Callable[[], Any]) -> None:
    try:
        _compute_and_store(key, compute)
    except Exception:  # noqa: BLE001 - the stale value stays; the next miss raises
        pass
    finally:
        with _lock:
            _refreshing.discard(key)


def cached(key: tuple, ttl_s: float, compute: Callable[[], T]) -> T:
    """``compute()``'s value for ``key``, refreshed when older than ``ttl_s`` seconds.

    Parameters
    ----------
    key:
        Starts with the project root (see :func:`clear`).
    ttl_s:
        Age after which the value is recomputed in the background.
    compute:
        Makes the value; opens its own session (it may run in another thread).

    Returns
    -------
    The cached value (possibly up to one refresh older than ``ttl_s``).
    """
    now = time.monotonic()
    with _lock:
        hit = _store.get(key)
        if hit is not None:
            if now - hit[0] >= ttl_s and key not in _refreshing:
                _refreshing.add(key)
                threading.Thread(target=_refresh, args=(key, compute), daemon=True).start()
            return hit[1]
        gate = _computing.setdefault(key, threading.Lock())
    with gate:
        with _lock:
            hit = _store.get(key)
        if hit is not None:  # computed by the thread we waited for
            return hit[1]
        try:
            return _compute_and_store(key, compute)
        finally:
            with _lock:
                _computing.pop(key, None)


def clear(prefix: object) -> None:
    """Forget every entry whose key starts with ``prefix`` (e.g. a project root)."""
    global _generation
    with _lock:
        _generation += 1
        for key in [k for k in _store if k and k[0] == prefix]:
            del _store[key]
