"""Which species' locations are sensitive, and how precise a shared location may be.

Poachers read maps too: wherever irbis shows or exports the place a sensitive
species was photographed to someone not cleared to see it, coordinates are
snapped to the centre of a grid cell. The rule lives here, in one place, so the
Camtrap DP export, the web app and the report cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: Species treated as sensitive unless a project says otherwise.
# "snowleopard" is a spelling the identify stage accepts (and folder names use).
DEFAULT_SENSITIVE = ("Panthera uncia", "snow leopard", "snow_leopard", "snowleopard", "irbis")


@dataclass(frozen=True)
class LocationPolicy:
    """How locations of sensitive species are generalised for the public.

    Parameters
    ----------
    sensitive_species
        Scientific or common names (case-insensitive) whose locations are sensitive.
    precision_deg
        Grid size in decimal degrees for public coordinates (0.1 deg is about 11 km
        north-south); Camtrap DP's ``coordinatePrecision`` is set to this value.
    """

    sensitive_species: tuple[str, ...] = DEFAULT_SENSITIVE
    precision_deg: float = 0.1
    _lower: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.precision_deg > 0 and math.isfinite(self.precision_deg)):
            raise ValueError(f"precision_deg must be a positive number, got {self.precision_deg}")
        object.__setattr__(
            self, "_lower", frozenset(s.strip().lower() for s in self.sensitive_species)
        )

    @classmethod
    def from_settings(cls, extra: dict | None) -> LocationPolicy:
        """Read ``sensitive_species`` / ``public_precision_deg`` from a project's settings."""
        extra = extra or {}
        species = extra.get("sensitive_species", DEFAULT_SENSITIVE)
        return cls(tuple(species), float(extra.get("public_precision_deg", 0.1)))

    def is_sensitive(self, species: str | None) -> bool:
        return bool(species) and species.strip().lower() in self._lower

    def generalise(self, lat: float, lon: float) -> tuple[float, float]:
        """The centre of the grid cell holding (lat, lon), rounded to the grid's decimals."""
        return snap(lat, self.precision_deg), snap(lon, self.precision_deg)


def snap(value: float, step: float) -> float:
    """Centre of the ``step``-wide cell containing ``value`` (cells start at 0)."""
    centre = (math.floor(value / step) + 0.5) * step
    decimals = max(0, -math.floor(math.log10(step))) + 2
    return round(centre, decimals)
