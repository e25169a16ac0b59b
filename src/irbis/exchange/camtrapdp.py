"""Camtrap DP 1.0.2: export a project, import a package, validate offline.

See :mod:`irbis.exchange.camtrapdp_export` (what is written, how public
packages hide sensitive places and people), :mod:`irbis.exchange.camtrapdp_import`
(how a package becomes stations, deployments, media and observations) and
:mod:`irbis.exchange.camtrapdp_validate` (the local schemas and how
``frictionless`` is kept off the network).
"""

from __future__ import annotations

from irbis.exchange.camtrapdp_export import ExportResult, PersonWriter, export_camtrapdp
from irbis.exchange.camtrapdp_import import ImportResult, import_camtrapdp
from irbis.exchange.camtrapdp_validate import (
    CAMTRAP_DP_VERSION,
    ValidationResult,
    validate_camtrapdp,
)

__all__ = [
    "CAMTRAP_DP_VERSION",
    "ExportResult",
    "ImportResult",
    "PersonWriter",
    "ValidationResult",
    "export_camtrapdp",
    "import_camtrapdp",
    "validate_camtrapdp",
]
