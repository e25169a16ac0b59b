"""Which stations are sensitive: the one answer the web app, exports and the report share.

:class:`irbis.core.sensitivity.LocationPolicy` says which species are
sensitive and how coarse a public location is. This module applies it to the
project's data:

- **Names.** A species is sensitive under any of its names: the policy's
  names are widened through irbis's taxa table (scientific, English, Russian
  and other listed names) and the project's species list (label, scientific
  and vernacular names, aliases), so a policy saying "snow leopard" also
  covers observations labelled "Panthera uncia", "Uncia uncia" or "ирбис".
  Names are compared without case, spaces, underscores or hyphens
  ("Snow_Leopard" is "snow leopard").
- **Stations.** A station is sensitive when a current (not retracted)
  observation at it names a sensitive species, or names an individual of a
  sensitive species, or when a photo there carries an annotation of such an
  individual (an individual merged into one of a sensitive species counts as
  that species).

Everything is read in the caller's session, at the time of the call: there
is no cache, in this process or any other, that a new label must clear. A
label committed by any worker (or the command line) changes what the next
request of every worker shows, because the answer is derived in that
request's own transaction from the rows the label wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from irbis.core.sensitivity import LocationPolicy
from irbis.store.individuals import load_merge_roots
from irbis.store.schema import Annotation, Deployment, Individual, Media, Observation

__all__ = [
    "SensitiveNames",
    "name_key",
    "observed_species",
    "policy_and_names",
    "sensitive_individual_ids",
    "sensitive_names",
    "sensitive_station_ids",
]


def name_key(name: str | None) -> str:
    """``name`` reduced for comparison: case-folded, ``ё`` as ``е``, letters and digits only."""
    folded = (name or "").replace("ё", "е").replace("Ё", "Е").casefold()
    return "".join(ch for ch in folded if ch.isalnum())


@dataclass(frozen=True)
class SensitiveNames:
    """Every spelling (as :func:`name_key`) that names a sensitive species."""

    keys: frozenset[str]

    def matches(self, name: str | None) -> bool:
        """Whether ``name`` names a sensitive species."""
        key = name_key(name)
        return bool(key) and key in self.keys

    def __bool__(self) -> bool:
        return bool(self.keys)


def _groups(species_list: Iterable[object]) -> list[set[str]]:
    """Name groups (keys of one taxon's names): the taxa table, then the project's list."""
    from irbis.store.taxa import table

    groups = []
    for t in table():
        names = {t.scientific_name, *t.vernacular_names.values(), *t.also}
        groups.append({name_key(n) for n in names} - {""})
    for sp in species_list:
        names = {
            getattr(sp, "label", ""),
            getattr(sp, "scientific_name", ""),
            getattr(sp, "vernacular_name", ""),
            *(getattr(sp, "vernacular_names", None) or {}).values(),
            *(getattr(sp, "aliases", None) or ()),
        }
        groups.append({name_key(str(n)) for n in names} - {""})
    return groups


def sensitive_names(policy: LocationPolicy, species_list: Iterable[object] = ()) -> SensitiveNames:
    """The policy's sensitive species under every name irbis knows for them.

    Parameters
    ----------
    policy:
        The project's location policy.
    species_list:
        The project's species list (:func:`irbis.store.species.listed`): objects
        with ``label``, ``scientific_name``, ``vernacular_name``,
        ``vernacular_names`` and ``aliases``.

    Returns
    -------
    SensitiveNames
        The policy's names, and every name sharing a taxa-table row or a
        species-list entry with one of them (to a fixed point: a project label
        whose scientific name is in the table brings the table's names too).
    """
    keys = {name_key(n) for n in policy.sensitive_species} - {""}
    groups = _groups(species_list)
    changed = True
    while changed:
        changed = False
        for g in groups:
            if g & keys and not g <= keys:
                keys |= g
                changed = True
    return SensitiveNames(frozenset(keys))


def policy_and_names(project) -> tuple[LocationPolicy, SensitiveNames]:
    """The project's policy and sensitive names, from its settings as they are now.

    The settings file is read again when it changed (``irbis species add`` or a
    new ``sensitive_species`` in ``irbis.json`` applies without a restart).
    """
    from irbis.store.species import listed

    items = listed(project)  # reloads ``extra`` when irbis.json changed
    policy = LocationPolicy.from_settings(project.settings.extra)
    return policy, sensitive_names(policy, items)


# A loose index scan: one probe of ix_observations_species per distinct value,
# instead of reading every observation (SQLite and PostgreSQL alike).
_DISTINCT_SPECIES = text(
    """
    WITH RECURSIVE sp(name) AS (
        SELECT MIN(species) FROM observations
        UNION ALL
        SELECT (SELECT MIN(o.species) FROM observations o WHERE o.species > sp.name)
        FROM sp WHERE sp.name IS NOT NULL
    )
    SELECT name FROM sp WHERE name IS NOT NULL
    """
)


def observed_species(s: Session) -> list[str]:
    """Every distinct ``observations.species`` value (retracted rows too), sorted."""
    return [r[0] for r in s.execute(_DISTINCT_SPECIES)]


def sensitive_individual_ids(s: Session, names: SensitiveNames) -> set[int]:
    """Individuals of a sensitive species, and every individual merged into one."""
    if not names:
        return set()
    species = dict(s.execute(select(Individual.id, Individual.species)).all())
    roots = load_merge_roots(s)
    return {
        i
        for i, sp in species.items()
        if names.matches(sp) or names.matches(species.get(roots.get(i, i)))
    }


def sensitive_station_ids(s: Session, names: SensitiveNames) -> set[int]:
    """Stations where a sensitive species was recorded, as the database says now.

    Parameters
    ----------
    s:
        The caller's session: the answer reflects what that transaction sees.
    names:
        :func:`sensitive_names` of the project's policy.

    Returns
    -------
    set of int
        ``stations.id`` of every sensitive station.
    """
    if not names:
        return set()
    spellings = [sp for sp in observed_species(s) if names.matches(sp)]
    inds = sorted(sensitive_individual_ids(s, names))
    conditions = []
    if spellings:
        conditions.append(Observation.species.in_(spellings))
    if inds:
        conditions.append(Observation.individual_id.in_(inds))
    out: set[int] = set()
    for cond in conditions:
        by_media = (
            select(Deployment.station_id)
            .join(Media, Media.deployment_id == Deployment.id)
            .join(Observation, Observation.media_id == Media.id)
            .where(Observation.retracted_utc.is_(None), cond)
        )
        by_event = (
            select(Deployment.station_id)
            .join(Observation, Observation.deployment_id == Deployment.id)
            .where(Observation.media_id.is_(None), Observation.retracted_utc.is_(None), cond)
        )
        for q in (by_media, by_event):
            out |= set(s.scalars(q.distinct()))
    if inds:
        by_annotation = (
            select(Deployment.station_id)
            .join(Media, Media.deployment_id == Deployment.id)
            .join(Annotation, Annotation.media_id == Media.id)
            .where(Annotation.individual_id.in_(inds))
        )
        out |= set(s.scalars(by_annotation.distinct()))
    out.discard(None)
    return out
