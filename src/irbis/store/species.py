"""The project's species list: labels people pick, their names and hotkeys.

Kept in the project's settings (``irbis.json``, ``extra["species"]``) as a
list of objects::

    {"label": "PBE", "scientific_name": "Prionailurus bengalensis",
     "vernacular_name": "leopard cat", "key": "2", "aliases": [],
     "rank": "species", "taxon_id": "https://www.gbif.org/species/...",
     "vernacular_names": {"eng": "leopard cat", "rus": "бенгальская кошка"}}

``label`` is what observations store (``observations.species``) and what
people see and search; ``scientific_name`` is what a Camtrap DP export writes
as ``scientificName`` (the label when empty); ``key`` a digit 1..9 chosen for
it (empty: the next free digit in list order); ``rank`` (Camtrap DP's
``taxonRank``), ``taxon_id`` (a GBIF backbone page or another checklist's
identifier) and ``vernacular_names`` (ISO 639-3 language -> name) are what the
export writes in the package's ``taxonomic`` list. :func:`add` fills them from
irbis's table of the range's fauna (:mod:`irbis.store.taxa`) when the label or
scientific name matches an entry. Older projects listed plain
strings (``"species": ["Panthera uncia", ...]``): those are read as labels.

Species observed in the project (camtrapR folders, tags, imports) but not
listed are offered after the listed ones, most observed first, so a new
project sorted into species folders can be labelled before anyone writes a
list. Nothing here changes an observation except :func:`rename`, which renames
a label everywhere it is used (one transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from irbis.core.errors import BadInputError
from irbis.store import taxa
from irbis.store.project import SETTINGS_FILE, Project
from irbis.store.schema import Individual, Observation

#: Keys a species may be given (the other keys of the review app have a job).
KEYS = tuple("123456789")
MAX_LABEL = 200


@dataclass
class Species:
    """One entry of the species list (or a species observed but not listed)."""

    label: str
    scientific_name: str = ""
    vernacular_name: str = ""
    key: str = ""
    aliases: list[str] = field(default_factory=list)
    listed: bool = True
    rank: str = ""
    taxon_id: str = ""
    vernacular_names: dict[str, str] = field(default_factory=dict)

    def to_setting(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        for name in ("scientific_name", "vernacular_name", "key", "rank", "taxon_id"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.vernacular_names:
            out["vernacular_names"] = dict(self.vernacular_names)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "scientific_name": self.scientific_name,
            "vernacular_name": self.vernacular_name,
            "key": self.key,
            "listed": self.listed,
            "rank": self.rank,
            "taxon_id": self.taxon_id,
            "vernacular_names": dict(self.vernacular_names),
        }

    def taxonomic(self) -> dict[str, Any]:
        """The Camtrap DP ``taxonomic`` entry of this species (names it has only)."""
        name = self.scientific_name or self.label
        out: dict[str, Any] = {"scientificName": name}
        if self.taxon_id:
            out["taxonID"] = self.taxon_id
        if self.rank:
            out["taxonRank"] = self.rank
        names = dict(self.vernacular_names)
        if self.vernacular_name and self.vernacular_name not in names.values():
            names.setdefault("und", self.vernacular_name)
        if names:
            out["vernacularNames"] = names
        return out


def _from_setting(raw: Any, i: int) -> Species:
    where = f"{SETTINGS_FILE}: extra.species[{i}]"
    if isinstance(raw, str):
        label = raw.strip()
        if not label:
            raise BadInputError(where, "an empty species", "remove it or give it a label")
        return Species(label=label)
    if not isinstance(raw, dict) or not str(raw.get("label") or "").strip():
        raise BadInputError(where, "not a species", 'use {"label": "...", ...} or a plain name')
    return Species(
        label=str(raw["label"]).strip(),
        scientific_name=str(raw.get("scientific_name") or "").strip(),
        vernacular_name=str(raw.get("vernacular_name") or "").strip(),
        key=str(raw.get("key") or "").strip(),
        aliases=[str(a) for a in raw.get("aliases") or []],
        rank=str(raw.get("rank") or "").strip(),
        taxon_id=str(raw.get("taxon_id") or "").strip(),
        vernacular_names={
            str(k): str(v)
            for k, v in (raw.get("vernacular_names") or {}).items()
            if str(v or "").strip()
        }
        if isinstance(raw.get("vernacular_names"), dict)
        else {},
    )


def _reload_settings(project: Project) -> None:
    """Read ``extra`` again when ``irbis.json`` changed since this process read it.

    ``irbis species add`` in a terminal then shows in a running ``irbis serve``
    on the next page, without a restart.
    """
    path = project.root / SETTINGS_FILE
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return
    if getattr(project, "_species_stamp", None) == stamp:
        return
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return  # being written: keep what we have, try again next time
    project.settings.extra = raw.get("extra") or {}
    project._species_stamp = stamp  # type: ignore[attr-defined]


def listed(project: Project, *, reload: bool = True) -> list[Species]:
    """The species list of the project's settings, in its order."""
    if reload:
        _reload_settings(project)
    raw = project.settings.extra.get("species") or []
    if not isinstance(raw, list):
        raise BadInputError(f"{SETTINGS_FILE}: extra.species", "is not a list", "use a list")
    return [_from_setting(x, i) for i, x in enumerate(raw)]


def observed(project: Project) -> list[tuple[str, int]]:
    """``(species, current observations)`` of every species observed, most first."""
    with project.session() as s:
        rows = s.execute(
            select(Observation.species, func.count())
            .where(Observation.species.is_not(None), Observation.retracted_utc.is_(None))
            .group_by(Observation.species)
            .order_by(func.count().desc(), Observation.species)
        ).all()
    return [(r[0], int(r[1])) for r in rows if r[0]]


def with_keys(items: list[Species]) -> list[Species]:
    """``items`` with a key for each of the first nine: chosen keys kept, free digits given
    in order to the others."""
    taken = {s.key for s in items if s.key in KEYS}
    free = [k for k in KEYS if k not in taken]
    out = []
    for s in items:
        key = s.key if s.key in KEYS else ""
        if not key and free:
            key = free.pop(0)
        out.append(replace(s, key=key))
    return out


def choices(project: Project, observed_rows: list[tuple[str, int]] | None = None) -> list[Species]:
    """What the review app offers: the list, then species observed but not listed.

    Every entry has its key (digits 1..9) where one is left; hotkeys are
    ``[s for s in choices(p) if s.key]`` ordered by key.
    """
    items = listed(project)
    known = {s.label for s in items} | {a for s in items for a in s.aliases}
    rows = observed(project) if observed_rows is None else observed_rows
    items += [Species(label=sp, listed=False) for sp, _n in rows if sp not in known]
    return with_keys(items)


def hotkeys(items: list[Species]) -> list[str]:
    """Labels on keys 1..9 (``hotkeys[i]`` is on key ``i+1``; "" where no species)."""
    by_key = {s.key: s.label for s in items if s.key}
    keys = [by_key.get(k, "") for k in KEYS]
    while keys and not keys[-1]:
        keys.pop()
    return keys


def _check_label(label: str, what: str = "label") -> str:
    label = (label or "").strip()
    if not label:
        raise BadInputError(what, "is empty", "give the species a label, e.g. 'Panthera uncia'")
    if len(label) > MAX_LABEL:
        raise BadInputError(what, f"longer than {MAX_LABEL} characters", "shorten it")
    if label.lower() == "blank":
        raise BadInputError(what, "'blank' is not a species", "the b key labels blanks")
    return label


def _check_key(items: list[Species], key: str, label: str) -> str:
    key = (key or "").strip()
    if not key:
        return ""
    if key not in KEYS:
        raise BadInputError("key", f"{key!r} is not a digit 1..9", "use one of 1..9, or no key")
    other = next((s for s in items if s.key == key and s.label != label), None)
    if other is not None:
        raise BadInputError(
            "key", f"{key} is already {other.label!r}", f"give {other.label!r} another key first"
        )
    return key


def _save(project: Project, items: list[Species]) -> None:
    project.settings.extra["species"] = [s.to_setting() for s in items]
    project.save_settings()
    project._species_stamp = (project.root / SETTINGS_FILE).stat().st_mtime_ns  # type: ignore[attr-defined]


def _find(items: list[Species], label: str) -> Species:
    for s in items:
        if s.label == label:
            return s
    names = ", ".join(s.label for s in items) or "none yet"
    raise BadInputError(
        f"species {label!r}", "is not in the project's list", f"listed: {names}; add it first"
    )


def _names(raw: dict[str, str] | None) -> dict[str, str]:
    """Vernacular names by ISO 639-3 code ("" removes a language when editing)."""
    return {taxa.language(k): (v or "").strip() for k, v in (raw or {}).items()}


def from_table(sp: Species) -> bool:
    """Fill what ``sp`` lacks from irbis's taxa table; True when an entry matched.

    The entry matches the scientific name when one is given, else the label
    (scientific, English, Russian or another listed name, case-insensitive).
    Values given are kept.
    """
    t = taxa.lookup(sp.scientific_name) if sp.scientific_name else taxa.lookup(sp.label)
    if t is None:
        return False
    sp.scientific_name = sp.scientific_name or t.scientific_name
    sp.rank = sp.rank or t.rank
    sp.taxon_id = sp.taxon_id or t.taxon_id
    sp.vernacular_names = {**t.vernacular_names, **sp.vernacular_names}
    sp.vernacular_name = sp.vernacular_name or t.vernacular_names.get("eng", "")
    return True


def add(
    project: Project,
    label: str,
    *,
    scientific_name: str = "",
    vernacular_name: str = "",
    key: str = "",
    rank: str = "",
    taxon_id: str = "",
    vernacular_names: dict[str, str] | None = None,
    use_table: bool = True,
) -> Species:
    """Add a species at the end of the list; an existing label is an error.

    With ``use_table`` what is not given is filled from irbis's taxa table when
    the label or scientific name matches an entry (:func:`from_table`).
    """
    label = _check_label(label)
    items = listed(project)
    if any(s.label == label or label in s.aliases for s in items):
        raise BadInputError(
            f"species {label!r}",
            "is already in the list",
            "change it with `irbis species edit` or `rename`",
        )
    sp = Species(
        label=label,
        scientific_name=(scientific_name or "").strip(),
        vernacular_name=(vernacular_name or "").strip(),
        key=_check_key(items, key, label),
        rank=taxa.rank(rank),
        taxon_id=taxa.taxon_id(taxon_id),
        vernacular_names={k: v for k, v in _names(vernacular_names).items() if v},
    )
    if use_table:
        from_table(sp)
    _save(project, [*items, sp])
    return sp


def edit(
    project: Project,
    label: str,
    *,
    scientific_name: str | None = None,
    vernacular_name: str | None = None,
    key: str | None = None,
    rank: str | None = None,
    taxon_id: str | None = None,
    vernacular_names: dict[str, str] | None = None,
) -> Species:
    """Change a listed species' names, key or taxon (None: leave as it is, "": clear).

    ``vernacular_names`` changes the languages it names (a name "" removes that
    language) and keeps the others.
    """
    items = listed(project)
    sp = _find(items, label)
    if scientific_name is not None:
        sp.scientific_name = scientific_name.strip()
    if vernacular_name is not None:
        sp.vernacular_name = vernacular_name.strip()
    if key is not None:
        sp.key = _check_key(items, key, label)
    if rank is not None:
        sp.rank = taxa.rank(rank)
    if taxon_id is not None:
        sp.taxon_id = taxa.taxon_id(taxon_id)
    if vernacular_names:
        merged = {**sp.vernacular_names, **_names(vernacular_names)}
        sp.vernacular_names = {k: v for k, v in merged.items() if v}
    _save(project, items)
    return sp


def remove(project: Project, label: str) -> Species:
    """Take a species off the list; its observations stay as they are."""
    items = listed(project)
    sp = _find(items, label)
    _save(project, [s for s in items if s is not sp])
    return sp


def rename(project: Project, old: str, new: str, *, by: str = "") -> dict[str, Any]:
    """Rename a label: in the list and in every observation and individual using it.

    A species observed but not listed can be renamed too (it is then listed
    under the new label). The old label is kept in the entry's ``aliases``; each
    observation renamed records it in ``extra["renamed_from"]`` with who and when.
    Refused when ``new`` is a listed species already (two species would merge).

    Returns
    -------
    dict
        ``{"old", "new", "observations": n renamed, "individuals": n renamed}``.
    """
    old = (old or "").strip()
    new = _check_label(new, "new label")
    if old == new:
        raise BadInputError("new label", "is the old one", "give a different label")
    items = listed(project)
    if any(s.label == new for s in items):
        raise BadInputError(
            f"species {new!r}", "is already in the list", "remove it first to merge the two"
        )
    entry = next((s for s in items if s.label == old), None)
    now = datetime.now(UTC).replace(tzinfo=None)
    with project.session() as s:
        rows = s.scalars(select(Observation).where(Observation.species == old)).all()
        if entry is None and not rows:
            _find(items, old)  # raises: neither listed nor observed
        for o in rows:
            o.species = new
            o.extra = {
                **(o.extra or {}),
                "renamed_from": old,
                "renamed_by": by,
                "renamed_utc": now.isoformat(),
            }
        n_ind = s.execute(
            update(Individual).where(Individual.species == old).values(species=new)
        ).rowcount
        s.commit()
    if entry is None:
        entry = Species(label=new, aliases=[old])
        items.append(entry)
    else:
        entry.label = new
        if old not in entry.aliases:
            entry.aliases.append(old)
    _save(project, items)
    return {"old": old, "new": new, "observations": len(rows), "individuals": n_ind or 0}


def scientific_names(project: Project) -> dict[str, Species]:
    """Listed species by label (and by each alias), for exports."""
    out: dict[str, Species] = {}
    for sp in listed(project):
        out[sp.label] = sp
        for a in sp.aliases:
            out.setdefault(a, sp)
    return out
