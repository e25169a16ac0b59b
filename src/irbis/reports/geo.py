"""Projected coordinates for the report's maps, and their public generalisation.

Maps are drawn in metres: the stations' own projected ``x``/``y`` (in their
``crs``) when every station has them, otherwise ``lon``/``lat`` projected to
the local UTM zone with pyproj. No tiles, no web map: a printed report works
offline and a field station has no internet.

Public maps must not reveal where a sensitive species was photographed more
precisely than :class:`irbis.core.sensitivity.LocationPolicy` allows, *in any
coordinate system*: a generalised point is the centre of the policy's
lon/lat grid cell projected back to metres, and a surface is averaged over
those same cells. Without a CRS (local metres only) the grid is a metric one
of ``precision_deg * 111.32 km`` (a degree of latitude), said so on the map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irbis.core.sensitivity import LocationPolicy, snap

#: metres in one degree of latitude (used only when stations carry no CRS)
M_PER_DEG = 111_320.0

__all__ = ["M_PER_DEG", "MapFrame", "frame_for"]


@dataclass(frozen=True)
class MapFrame:
    """The coordinate system the report draws in.

    Attributes
    ----------
    crs:
        The projected CRS of the drawing (``EPSG:32646``...), or ``None`` when
        the stations' x/y carry no CRS (local metres).
    label:
        How the map names it.
    """

    crs: str | None
    label: str

    # -- transformations ---------------------------------------------------

    def _transformer(self, inverse: bool):
        from pyproj import Transformer

        if inverse:
            return Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        return Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    def to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude of projected points (needs a CRS)."""
        lon, lat = self._transformer(True).transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def from_lonlat(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected coordinates of lon/lat points (needs a CRS)."""
        x, y = self._transformer(False).transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    # -- generalisation ------------------------------------------------------

    def cell_keys(self, x: np.ndarray, y: np.ndarray, policy: LocationPolicy) -> list[tuple]:
        """The policy grid cell of each point, as a hashable key (its centre)."""
        x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
        if self.crs is None:
            step = policy.precision_deg * M_PER_DEG
            return [(snap(float(a), step), snap(float(b), step)) for a, b in zip(x, y, strict=True)]
        lon, lat = self.to_lonlat(x, y)
        return [
            tuple(reversed(policy.generalise(float(la), float(lo))))
            for lo, la in zip(lon, lat, strict=True)
        ]

    def key_to_xy(self, keys: list[tuple]) -> np.ndarray:
        """Projected position of cell centres returned by :meth:`cell_keys`."""
        arr = np.array(keys, dtype=float).reshape(-1, 2)
        if self.crs is None:
            return arr
        x, y = self.from_lonlat(arr[:, 0], arr[:, 1])
        return np.column_stack([x, y])

    def generalise(
        self, x: np.ndarray, y: np.ndarray, policy: LocationPolicy
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points moved to the centre of their policy grid cell (projected back).

        Parameters
        ----------
        x, y:
            Projected coordinates.
        policy:
            The project's location policy.

        Returns
        -------
        tuple of numpy.ndarray
            Generalised ``x`` and ``y``.
        """
        xy = self.key_to_xy(self.cell_keys(x, y, policy))
        return xy[:, 0], xy[:, 1]

    def cell_polygon(self, key: tuple, policy: LocationPolicy, n_edge: int = 6) -> np.ndarray:
        """Outline of one policy cell in projected metres (edges densified)."""
        half = policy.precision_deg / 2 * (M_PER_DEG if self.crs is None else 1.0)
        cx, cy = key
        t = np.linspace(-1.0, 1.0, n_edge)
        one = np.ones_like(t)
        ring_x = np.concatenate([t, one, -t, -one]) * half + cx
        ring_y = np.concatenate([-one, t, one, -t]) * half + cy
        if self.crs is None:
            return np.column_stack([ring_x, ring_y])
        x, y = self.from_lonlat(ring_x, ring_y)
        return np.column_stack([x, y])

    def cell_size_m(self, policy: LocationPolicy) -> float:
        """Rough north-south size of one policy cell, metres (for captions)."""
        return policy.precision_deg * M_PER_DEG


def _utm_crs(lon: np.ndarray, lat: np.ndarray) -> str:
    zone = int(math.floor((float(np.mean(lon)) + 180) / 6)) + 1
    return f"EPSG:{(32600 if float(np.mean(lat)) >= 0 else 32700) + zone}"


def frame_for(stations: list[dict]) -> tuple[MapFrame, dict[str, tuple[float, float]]]:
    """Choose the drawing CRS and place every station in it.

    Follows :func:`irbis.exchange.secr_text.project_capthist`: x/y when every
    located station has them (so the SECR mask and the stations share one
    frame), else lon/lat projected to the local UTM zone.

    Parameters
    ----------
    stations:
        Dicts with ``name``, ``x``, ``y``, ``crs``, ``lon``, ``lat``.

    Returns
    -------
    tuple
        The frame, and ``{station name: (x, y)}`` for the stations that can be
        placed (stations without coordinates are left out).
    """
    with_xy = [s for s in stations if s["x"] is not None and s["y"] is not None]
    with_ll = [s for s in stations if s["lon"] is not None and s["lat"] is not None]
    if with_xy and len(with_xy) >= len(with_ll):
        crss = {s["crs"] for s in with_xy if s["crs"]}
        crs = crss.pop() if len(crss) == 1 else None
        frame = MapFrame(crs, crs or "local projected metres (no CRS given)")
        return frame, {s["name"]: (float(s["x"]), float(s["y"])) for s in with_xy}
    if with_ll:
        lon = np.array([s["lon"] for s in with_ll], float)
        lat = np.array([s["lat"] for s in with_ll], float)
        crs = _utm_crs(lon, lat)
        frame = MapFrame(crs, f"{crs} (UTM, from longitude/latitude)")
        x, y = frame.from_lonlat(lon, lat)
        return frame, {
            s["name"]: (float(a), float(b)) for s, a, b in zip(with_ll, x, y, strict=True)
        }
    return MapFrame(None, "no station coordinates"), {}
