"""A project's publishing metadata: what ``irbis project meta`` sets and the
Camtrap DP export writes into ``datapackage.json``.

Kept in the project's settings (``irbis.json``, ``extra["meta"]``) under the
standard's own names::

    {"title": "...", "description": "...", "id": "https://doi.org/...",
     "contributors": [{"title": "Tara Nyima", "role": "principalInvestigator",
                       "organization": "Altai Reserve", "email": "tara@example.org"}],
     "licenses": [{"name": "CC-BY-4.0", "path": "https://...", "scope": "data"},
                  {"name": "CC-BY-NC-4.0", "path": "https://...", "scope": "media"}],
     "bibliographicCitation": "...", "keywords": ["snow leopard", "Altai"],
     "samplingDesign": "systematicRandom"}

What a project sets wins over what an imported package said (kept in
``extra["camtrapdp"]["package"]`` by ``irbis import camtrapdp``), which wins
over what the export derives. :func:`effective` is that merge, what
``irbis project meta PROJECT`` shows.

Values outside the standard's vocabularies (contributor roles, sampling
designs, licence scopes; read from the shipped Camtrap DP 1.0.2 profile) are
refused with a one-line error, and so are e-mail addresses and licence
identifiers the profile would reject.
"""

from __future__ import annotations

import re
from typing import Any

from irbis.core.errors import BadInputError
from irbis.exchange.camtrapdp_validate import load_profile
from irbis.store.project import Project

__all__ = [
    "FIELDS",
    "GBIF_DATA_LICENCES",
    "LICENCES",
    "ROLES",
    "SAMPLING_DESIGNS",
    "contributor",
    "effective",
    "saved",
    "update",
]


def _profile_props() -> dict[str, Any]:
    return load_profile()["allOf"][1]["properties"]


ROLES: tuple[str, ...] = tuple(
    _profile_props()["contributors"]["items"]["properties"]["role"]["enum"]
)
SAMPLING_DESIGNS: tuple[str, ...] = tuple(
    _profile_props()["project"]["properties"]["samplingDesign"]["enum"]
)
SCOPES: tuple[str, ...] = tuple(
    _profile_props()["licenses"]["items"]["properties"]["scope"]["enum"]
)

#: Licence identifiers irbis knows, with the page the package links to.
LICENCES: dict[str, str] = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-NC-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC-BY-NC-SA-4.0": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    "CC-BY-ND-4.0": "https://creativecommons.org/licenses/by-nd/4.0/",
    "CC-BY-NC-ND-4.0": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
    "ODC-BY-1.0": "https://opendatacommons.org/licenses/by/1-0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "PDDL-1.0": "https://opendatacommons.org/licenses/pddl/1-0/",
}
#: The data licences GBIF publishes under.
GBIF_DATA_LICENCES = ("CC0-1.0", "CC-BY-4.0", "CC-BY-NC-4.0")
DEFAULT_LICENCE = "CC-BY-4.0"

#: Package fields ``irbis project meta`` sets (``samplingDesign`` goes to ``project``).
FIELDS = (
    "title",
    "description",
    "id",
    "contributors",
    "licenses",
    "bibliographicCitation",
    "keywords",
    "samplingDesign",
)

# The Data Package profile's checks on these values (data-package.json).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PATH = re.compile(r"^(?=^[^./~])(^((?!\.{2}).)*$).*$")
_SETTING = "meta"


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is in ``allowed`` (matched without regard to case), else a one-line error."""
    for a in allowed:
        if value.strip().lower() == a.lower():
            return a
    raise BadInputError(
        what,
        f"{value!r} is not in Camtrap DP 1.0.2's vocabulary",
        f"use one of {', '.join(allowed)}",
    )


def contributor(spec: str) -> dict[str, str]:
    """``"Name|role|organisation|email|path"`` (only the name required) as a contributor.

    ``role`` is one of :data:`ROLES` (default ``contributor``); ``path`` a web
    page of the person or organisation, e.g. an ORCID.
    """
    parts = [p.strip() for p in spec.split("|")]
    if len(parts) > 5 or not parts[0]:
        raise BadInputError(
            "--contributor",
            f"{spec!r} is not Name|role|organisation|email",
            "e.g. 'Tara Nyima|principalInvestigator|Altai Reserve|tara@example.org'",
        )
    parts += [""] * (5 - len(parts))
    name, role, org, email, path = parts
    out = {
        "title": name,
        "role": _one_of("contributor role", role, ROLES) if role else "contributor",
    }
    if org:
        out["organization"] = org
    if email:
        if not _EMAIL.match(email):
            raise BadInputError("contributor e-mail", f"{email!r} is not an e-mail address", "")
        out["email"] = email
    if path:
        if not _PATH.match(path):
            raise BadInputError(
                "contributor path", f"{path!r} is not a URL", "e.g. https://orcid.org/0000-..."
            )
        out["path"] = path
    return out


def licence(name: str, scope: str) -> dict[str, str]:
    """A ``licenses`` entry of a known licence identifier."""
    for known, url in LICENCES.items():
        if name.strip().lower() == known.lower():
            return {"name": known, "path": url, "scope": _one_of("licence scope", scope, SCOPES)}
    raise BadInputError(
        f"{scope} licence",
        f"{name!r} is not a licence irbis knows",
        f"use one of {', '.join(LICENCES)}",
    )


def saved(project: Project) -> dict[str, Any]:
    """What the project set (``extra["meta"]``), as stored."""
    raw = (project.settings.extra or {}).get(_SETTING) or {}
    return dict(raw) if isinstance(raw, dict) else {}


def _imported(project: Project) -> dict[str, Any]:
    pkg = dict(((project.settings.extra or {}).get("camtrapdp") or {}).get("package") or {})
    out = {k: pkg[k] for k in FIELDS if k in pkg}
    design = (pkg.get("project") or {}).get("samplingDesign")
    if design:
        out["samplingDesign"] = design
    return out


def effective(project: Project) -> dict[str, Any]:
    """The metadata an export writes: the project's, else the imported package's.

    Each field also says where it came from in ``sources`` (``set``,
    ``imported`` or ``default``); unset text fields are absent.
    """
    own, imported = saved(project), _imported(project)
    out: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for k in FIELDS:
        if k in own:
            out[k], sources[k] = own[k], "set"
        elif k in imported:
            out[k], sources[k] = imported[k], "imported"
    if "licenses" not in out:
        out["licenses"] = [licence(DEFAULT_LICENCE, s) for s in ("data", "media")]
        sources["licenses"] = "default"
    if "samplingDesign" not in out:
        out["samplingDesign"], sources["samplingDesign"] = "targeted", "default"
    out["sources"] = sources
    return out


def update(
    project: Project,
    *,
    title: str | None = None,
    description: str | None = None,
    package_id: str | None = None,
    contributors: list[str] | None = None,
    add_contributors: list[str] | None = None,
    remove_contributors: list[str] | None = None,
    data_licence: str | None = None,
    media_licence: str | None = None,
    citation: str | None = None,
    keywords: list[str] | None = None,
    sampling_design: str | None = None,
    unset: list[str] | None = None,
) -> dict[str, Any]:
    """Change the project's metadata; ``None`` leaves a field, ``""`` clears a text field.

    ``contributors`` replaces the list, ``add_contributors`` adds (or replaces
    a contributor of the same name), ``remove_contributors`` removes by name.
    ``unset`` names fields to forget (the imported value or the default
    applies again). Everything is checked before anything is saved.

    Returns
    -------
    dict
        :func:`effective` after the change.
    """
    current = effective(project)
    own = saved(project)
    for name in unset or []:
        if name not in FIELDS:
            raise BadInputError(
                "--unset", f"{name!r} is not a field", f"use one of {', '.join(FIELDS)}"
            )
        own.pop(name, None)
    for key, value in (
        ("title", title),
        ("description", description),
        ("id", package_id),
        ("bibliographicCitation", citation),
    ):
        if value is None:
            continue
        if value.strip():
            own[key] = value.strip()
        else:
            own.pop(key, None)
    if sampling_design is not None:
        own["samplingDesign"] = _one_of("sampling design", sampling_design, SAMPLING_DESIGNS)
    if keywords is not None:
        words = [w.strip() for w in keywords if w.strip()]
        if words:
            own["keywords"] = list(dict.fromkeys(words))
        else:
            own.pop("keywords", None)
    if contributors is not None or add_contributors or remove_contributors:
        people = (
            [contributor(c) for c in contributors]
            if contributors is not None
            else [dict(c) for c in current.get("contributors") or []]
        )
        for c in add_contributors or []:
            new = contributor(c)
            people = [p for p in people if p.get("title") != new["title"]] + [new]
        for name in remove_contributors or []:
            if not any(p.get("title") == name for p in people):
                listed = ", ".join(p.get("title", "") for p in people) or "none"
                raise BadInputError(
                    f"contributor {name!r}", "is not a contributor", f"contributors: {listed}"
                )
            people = [p for p in people if p.get("title") != name]
        if people:
            own["contributors"] = people
        else:
            own.pop("contributors", None)
    if data_licence is not None or media_licence is not None:
        entries = [dict(x) for x in current["licenses"]]
        for scope, name in (("data", data_licence), ("media", media_licence)):
            if name is None:
                continue
            entries = [x for x in entries if x.get("scope") != scope] + [licence(name, scope)]
        order = {"data": 0, "media": 1}
        own["licenses"] = sorted(entries, key=lambda x: order.get(x.get("scope", ""), 2))
    extra = dict(project.settings.extra or {})
    if own:
        extra[_SETTING] = own
    else:
        extra.pop(_SETTING, None)
    project.settings.extra = extra
    project.save_settings()
    return effective(project)


def descriptor_fields(project: Project) -> dict[str, Any]:
    """The package-level fields the project set (not the imported ones), for the export."""
    own = saved(project)
    return {k: own[k] for k in FIELDS if k in own and k != "samplingDesign"}
