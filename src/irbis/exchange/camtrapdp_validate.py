"""Check a Camtrap DP 1.0.2 package against the standard, offline.

The standard's own ``datapackage.json`` names its profile and table schemas by
URL, and ``frictionless`` fetches such URLs when it validates. Field stations
have no network, so irbis keeps its own copies of the three table schemas and
of the package profile in ``camtrapdp_schemas/`` and validates with those:

- the descriptor (``datapackage.json``) with ``jsonschema`` against the local
  profile;
- the three tables with ``frictionless``, each given its local
  :class:`frictionless.Schema` object (types, formats, required, unique, enum,
  range and pattern constraints, primary and foreign keys across the tables).
  The descriptor handed to ``frictionless`` never contains a URL, so nothing
  is fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from irbis.core.errors import BadInputError

__all__ = [
    "CAMTRAP_DP_VERSION",
    "PROFILE_URL",
    "TABLES",
    "SCHEMA_DIR",
    "ValidationResult",
    "load_profile",
    "load_table_schema",
    "validate_camtrapdp",
]

CAMTRAP_DP_VERSION = "1.0.2"
PROFILE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_DIR = Path(__file__).with_name("camtrapdp_schemas")

# Errors listed per package at most; a broken column repeats on every row.
_MAX_ERRORS = 50


@cache
def _read_json(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def load_table_schema(table: str) -> dict:
    """The local Table Schema descriptor of ``deployments``, ``media`` or ``observations``."""
    if table not in TABLES:
        raise ValueError(f"not a Camtrap DP table: {table!r}")
    return json.loads(json.dumps(_read_json(f"{table}-table-schema.json")))


def load_profile() -> dict:
    """The local JSON Schema of a Camtrap DP 1.0.2 ``datapackage.json``."""
    return json.loads(json.dumps(_read_json("camtrap-dp-profile.json")))


def field_names(table: str) -> list[str]:
    """The columns of ``table`` in the standard's order."""
    return [f["name"] for f in _read_json(f"{table}-table-schema.json")["fields"]]


@dataclass
class ValidationResult:
    """What the validators said about one package.

    ``errors`` are one-line messages, each starting with the file (and row)
    at fault followed by the validator's own words.
    """

    path: Path
    errors: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


def _resource_path(descriptor: dict, table: str) -> str:
    for res in descriptor.get("resources", []):
        if isinstance(res, dict) and res.get("name") == table and isinstance(res.get("path"), str):
            return res["path"]
    return f"{table}.csv"


def validate_descriptor(descriptor: dict) -> list[str]:
    """Messages for every way ``descriptor`` breaks the local Camtrap DP profile."""
    import jsonschema

    validator = jsonschema.Draft7Validator(
        load_profile(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    out = []
    for err in sorted(validator.iter_errors(descriptor), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        out.append(f"datapackage.json: {where}: {err.message}")
    return out


def validate_camtrapdp(path: Path | str) -> ValidationResult:
    """Validate the Camtrap DP package in folder ``path`` with no network access.

    Parameters
    ----------
    path:
        Folder holding ``datapackage.json`` and the three CSV tables.

    Returns
    -------
    ValidationResult
        ``valid`` is true when the descriptor meets the profile and every
        table meets its schema; otherwise ``errors`` lists the validators'
        messages (at most 50), e.g. ``media.csv: row 3: ... "required" ...``.
    """
    from frictionless import Package, Resource, Schema

    root = Path(path)
    dp = root / "datapackage.json"
    if not dp.is_file():
        raise BadInputError(str(root), "no datapackage.json", "give a Camtrap DP package folder")
    try:
        descriptor = json.loads(dp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(str(dp), f"not valid JSON ({exc})", "fix or re-export it") from exc
    result = ValidationResult(root)
    result.errors.extend(validate_descriptor(descriptor))

    resources = []
    for table in TABLES:
        rel = _resource_path(descriptor, table)
        if not (root / rel).is_file():
            result.errors.append(f"{rel}: file missing (resource {table!r})")
            continue
        resources.append(
            Resource(
                name=table,
                path=rel,
                basepath=str(root),
                schema=Schema.from_descriptor(load_table_schema(table)),
            )
        )
    if len(resources) == len(TABLES):
        report = Package(resources=resources, basepath=str(root)).validate(limit_errors=_MAX_ERRORS)
        for task in report.tasks:
            result.rows[task.name] = task.stats.get("rows") or 0
            for err in task.errors:
                row = getattr(err, "row_number", None)
                where = f"{task.place}: row {row}" if row else task.place
                result.errors.append(f"{where}: {err.message}")
        for err in report.errors:
            result.errors.append(f"datapackage.json: {err.message}")
    del result.errors[_MAX_ERRORS:]
    return result
