"""Domain types, errors and configuration. Standard library only."""

from irbis.core.errors import BadInputError, IrbisError, RegistryError
from irbis.core.types import (
    DeploymentRecord,
    MalfunctionPeriod,
    MediaMetadata,
    StationRecord,
)

__all__ = [
    "BadInputError",
    "DeploymentRecord",
    "IrbisError",
    "MalfunctionPeriod",
    "MediaMetadata",
    "RegistryError",
    "StationRecord",
]
