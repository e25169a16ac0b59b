"""The census page's data: estimates through :mod:`irbis.reports` (which fits via
:mod:`irbis.stats`), computed on demand and kept until asked again because
fitting SECR models takes seconds to minutes."""

from __future__ import annotations

import threading
import time

from irbis.core.jsonsafe import finite
from irbis.store.project import Project

_lock = threading.Lock()


def census_data(project: Project, cache: dict, *, public: bool, refresh: bool = False) -> dict:
    """Estimates with CIs, effort per station and activity of the main species.

    Parameters
    ----------
    cache:
        Where results are kept between requests (the app's state), keyed by ``public``.
    public:
        Generalise sensitive stations (users without precise locations).
    refresh:
        Fit again even if a result is kept.

    Returns
    -------
    dict
        ``Census.to_json()`` plus ``per_station``, ``activity_hours``,
        ``computed_s`` and ``available``; ``available`` is False with a ``message``
        when :mod:`irbis.reports` is not installed.
    """
    try:
        from irbis.reports.census import gather_census
    except ImportError:
        return {"available": False, "message": "no estimates yet — run irbis secr fit"}
    with _lock:  # one fit at a time: two would only compete for the same cores
        if not refresh and public in cache:
            return cache[public]
        t0 = time.perf_counter()
        c = gather_census(project, public=public)
        data = c.to_json()
        data["per_station"] = c.per_station
        data["activity_hours"] = c.activity_hours
        data["computed_s"] = round(time.perf_counter() - t0, 2)
        data["generated_utc"] = c.generated_utc.isoformat()
        data["available"] = True
        data = finite(data)
        cache[public] = data
        return data


def cached(cache: dict, *, public: bool) -> dict | None:
    return cache.get(public)
