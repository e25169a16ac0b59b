"""Check a Camtrap DP 1.0.2 package against the standard, offline.

The standard's own ``datapackage.json`` names its profile and table schemas by
URL, and ``frictionless`` fetches such URLs when it validates. Field stations
have no network, so irbis ships the standard's own files, verbatim (checked
byte for byte against ``camtrapdp_schemas/SHA256SUMS`` by the tests; sources
and licences in ``camtrapdp_schemas/NOTICE``) with the two schemas they
refer to (the Frictionless Data Package profile and GeoJSON), and validates
with those:

- the descriptor (``datapackage.json``) with ``jsonschema`` against the
  official Camtrap DP 1.0.2 profile, whose ``$ref`` URLs are answered from
  the shipped copies (a :class:`referencing.Registry`, never the network), with
  format checking (``uri``, ``date-time``, ``date``, ``email``) that does not
  depend on optional packages;
- the three tables with ``frictionless``, each given the official table
  schema as a :class:`frictionless.Schema` object (types, formats, required,
  unique, enum, range and pattern constraints, primary and foreign keys
  across the tables). The descriptor handed to ``frictionless`` never
  contains a URL, so nothing is fetched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from irbis.core.errors import BadInputError

__all__ = [
    "CAMTRAP_DP_VERSION",
    "PROFILE_URL",
    "TABLES",
    "SCHEMA_DIR",
    "TABLE_SCHEMA_URLS",
    "ValidationResult",
    "load_profile",
    "load_table_schema",
    "validate_camtrapdp",
]

CAMTRAP_DP_VERSION = "1.0.2"
_BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
PROFILE_URL = f"{_BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
#: What a package's resource ``schema`` must be: the URL of the version used.
TABLE_SCHEMA_URLS = {t: f"{_BASE_URL}/{t}-table-schema.json" for t in TABLES}
#: The Frictionless profile the Camtrap DP profile builds on (``allOf`` ``$ref``).
DATA_PACKAGE_PROFILE_URL = "https://specs.frictionlessdata.io/schemas/data-package.json"
#: The GeoJSON schema the profile's ``spatial`` refers to (and the ``id`` that file gives itself).
GEOJSON_URLS = ("http://json.schemastore.org/geojson.json", "https://json.schemastore.org/geojson")
SCHEMA_DIR = Path(__file__).with_name("camtrapdp_schemas")

# Errors listed per package at most; a broken column repeats on every row.
_MAX_ERRORS = 50


@cache
def _read_json(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def load_table_schema(table: str) -> dict:
    """The official Table Schema of ``deployments``, ``media`` or ``observations``."""
    if table not in TABLES:
        raise ValueError(f"not a Camtrap DP table: {table!r}")
    return json.loads(json.dumps(_read_json(f"{table}-table-schema.json")))


def load_profile() -> dict:
    """The official JSON Schema of a Camtrap DP 1.0.2 ``datapackage.json`` (shipped copy)."""
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


# RFC 3339 date-time (what JSON Schema's "date-time" format means).
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_date_time(value: object) -> bool:
    from datetime import datetime

    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


def _is_uri(value: object) -> bool:
    """An absolute URI (scheme required), as RFC 3986 spells it."""
    import rfc3986
    from rfc3986 import validators
    from rfc3986.exceptions import ValidationError

    if not isinstance(value, str):
        return True
    if any(c.isspace() for c in value):
        return False
    check = (
        validators.Validator()
        .require_presence_of("scheme")
        .check_validity_of("scheme", "userinfo", "host", "port", "path", "query", "fragment")
    )
    try:
        check.validate(rfc3986.uri_reference(value))
    except ValidationError:
        return False
    return True


def format_checker():
    """``jsonschema``'s format checker with ``uri`` and ``date-time`` always checked.

    ``jsonschema`` checks these two only when optional packages are installed
    and silently passes them otherwise; irbis does not depend on that.
    """
    import jsonschema

    checker = jsonschema.FormatChecker()
    checker.checks("uri")(_is_uri)
    checker.checks("date-time")(_is_date_time)
    return checker


@cache
def _registry():
    from referencing import Registry, Resource

    geojson = Resource.from_contents(_read_json("geojson.json"))
    return Registry().with_resources(
        [
            (DATA_PACKAGE_PROFILE_URL, Resource.from_contents(_read_json("data-package.json"))),
            (PROFILE_URL, Resource.from_contents(_read_json("camtrap-dp-profile.json"))),
            *((url, geojson) for url in GEOJSON_URLS),
        ]
    )


def validate_descriptor(descriptor: dict) -> list[str]:
    """Messages for every way ``descriptor`` breaks the official Camtrap DP 1.0.2 profile."""
    import jsonschema

    profile = load_profile()
    cls = jsonschema.validators.validator_for(profile)
    validator = cls(profile, registry=_registry(), format_checker=format_checker())
    out = []
    for err in sorted(validator.iter_errors(descriptor), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        # The profile wraps its rules in allOf/oneOf: name the rule that failed.
        leaves = [e for e in (err.context or []) if e.validator != "required"] or err.context
        detail = f" ({leaves[0].message})" if leaves else ""
        out.append(f"datapackage.json: {where}: {err.message}{detail}")
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
