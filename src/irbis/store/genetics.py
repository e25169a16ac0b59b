"""Genetic individuals: genotypes a laboratory told apart, and people's links to the catalogue.

A genotype (:class:`irbis.store.schema.Genotype`) is an animal of its own
until a person links it to an individual of the photo catalogue
(:class:`irbis.store.schema.GenotypeLink`, with who and when; every link and
unlink also writes an audit row). Links are read through merges: a genotype
linked to an individual that was later merged belongs to the animal that
survived the merge.

Conflicts (:func:`conflicts`) are what a person must settle:

- ``genotype_on_two_individuals``: one genotype currently linked to two
  animals of the catalogue;
- ``individual_with_two_genotypes``: two genotypes linked to one animal
  (after a merge, or linked by two people);
- ``sex_differs``: the laboratory's sex of a genotype is not the sex of the
  animal it is linked to.

:func:`link_genotype` refuses a link that would make a conflict unless the
caller says it knows (``allow_conflict``): the conflict is then shown
wherever genotypes are listed, until one link is retracted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.store.audit import record
from irbis.store.individuals import load_merge_roots
from irbis.store.project import Project
from irbis.store.schema import FieldRecord, Genotype, GenotypeLink, Individual

__all__ = [
    "Conflict",
    "conflicts",
    "find_genotype",
    "find_individual",
    "genotype_catalogue",
    "get_or_create_genotype",
    "link_conflict",
    "link_genotype",
    "unlink_genotype",
]

SEXES = ("female", "male", "unknown")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Conflict:
    """One thing about genotypes and individuals that cannot all be true.

    ``kind`` is ``genotype_on_two_individuals``, ``individual_with_two_genotypes``
    or ``sex_differs``; ``genotypes`` and ``individuals`` name those involved.
    """

    kind: str
    genotypes: tuple[str, ...]
    individuals: tuple[str, ...]

    def message(self) -> str:
        """The conflict in one line, saying what to do."""
        g, i = ", ".join(self.genotypes), ", ".join(self.individuals)
        if self.kind == "genotype_on_two_individuals":
            return (
                f"genotype {g} is linked to {len(self.individuals)} individuals ({i}): "
                "they are one animal (merge them) or one link is wrong (unlink it)"
            )
        if self.kind == "individual_with_two_genotypes":
            return (
                f"individual {i} is linked to {len(self.genotypes)} genotypes ({g}): "
                "a genotyping error, or photos of two animals under one name (unlink one)"
            )
        return f"genotype {g} and individual {i} differ in sex: check the lab result or the link"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "genotypes": list(self.genotypes),
            "individuals": list(self.individuals),
            "message": self.message(),
        }


def find_individual(s: Session, name_or_id: str | int) -> Individual | None:
    """The catalogue's individual by exact name, or by id (an ``int`` or digits)."""
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        ind = s.get(Individual, int(name_or_id))
        if ind is not None:
            return ind
    return s.scalar(select(Individual).where(Individual.name == str(name_or_id)))


def find_genotype(s: Session, code_or_id: str | int) -> Genotype | None:
    """A genotype by its code, or by id."""
    g = s.scalar(select(Genotype).where(Genotype.code == str(code_or_id)))
    if g is None and (isinstance(code_or_id, int) or str(code_or_id).isdigit()):
        g = s.get(Genotype, int(code_or_id))
    return g


def get_or_create_genotype(
    s: Session, code: str, actor: str, *, species: str | None = None, lab: str = ""
) -> tuple[Genotype, bool]:
    """The genotype ``code``, created (standing as its own animal) when new."""
    g = s.scalar(select(Genotype).where(Genotype.code == code))
    if g is not None:
        return g, False
    g = Genotype(
        code=code,
        species=species or "Panthera uncia",
        sex="unknown",
        lab=lab,
        notes="",
        created_by=actor,
        created_utc=_now(),
    )
    s.add(g)
    s.flush()
    return g, True


def _current_links(s: Session) -> list[GenotypeLink]:
    return list(
        s.scalars(
            select(GenotypeLink)
            .where(GenotypeLink.retracted_utc.is_(None))
            .order_by(GenotypeLink.id)
        )
    )


def _link_sets(
    links: list[tuple[int, int]], roots: dict[int, int]
) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """``(genotype -> root individuals, root individual -> genotypes)`` of ``links``."""
    by_genotype: dict[int, set[int]] = defaultdict(set)
    by_individual: dict[int, set[int]] = defaultdict(set)
    for gid, iid in links:
        root = roots.get(iid, iid)
        by_genotype[gid].add(root)
        by_individual[root].add(gid)
    return by_genotype, by_individual


def conflicts(s: Session) -> list[Conflict]:
    """Every conflict between the current links, genotypes and individuals (see module doc)."""
    roots = load_merge_roots(s)
    links = [(lk.genotype_id, lk.individual_id) for lk in _current_links(s)]
    by_genotype, by_individual = _link_sets(links, roots)
    codes = dict(s.execute(select(Genotype.id, Genotype.code)).all())
    sexes = dict(s.execute(select(Genotype.id, Genotype.sex)).all())
    inds = {i.id: i for i in s.scalars(select(Individual))}
    out: list[Conflict] = []
    for gid, iids in sorted(by_genotype.items(), key=lambda kv: codes[kv[0]]):
        if len(iids) > 1:
            out.append(
                Conflict(
                    "genotype_on_two_individuals",
                    (codes[gid],),
                    tuple(sorted(inds[i].name for i in iids)),
                )
            )
    for iid, gids in sorted(by_individual.items(), key=lambda kv: inds[kv[0]].name):
        if len(gids) > 1:
            out.append(
                Conflict(
                    "individual_with_two_genotypes",
                    tuple(sorted(codes[g] for g in gids)),
                    (inds[iid].name,),
                )
            )
        for gid in gids:
            a, b = sexes.get(gid, "unknown"), inds[iid].sex or "unknown"
            if "unknown" not in (a, b) and a != b:
                out.append(Conflict("sex_differs", (codes[gid],), (inds[iid].name,)))
    return out


def link_conflict(s: Session, genotype: Genotype, individual: Individual) -> str | None:
    """Why linking ``genotype`` to ``individual`` would make a conflict, or None."""
    roots = load_merge_roots(s)
    links = [(lk.genotype_id, lk.individual_id) for lk in _current_links(s)]
    by_genotype, by_individual = _link_sets(links, roots)
    root = roots.get(individual.id, individual.id)
    others = by_genotype.get(genotype.id, set()) - {root}
    if others:
        names = sorted(s.get(Individual, i).name for i in others)
        return f"genotype {genotype.code} is already linked to individual {', '.join(names)}"
    more = by_individual.get(root, set()) - {genotype.id}
    if more:
        codes = sorted(s.get(Genotype, g).code for g in more)
        return f"individual {individual.name} is already linked to genotype {', '.join(codes)}"
    ind_sex = s.get(Individual, root).sex or "unknown"
    if "unknown" not in (genotype.sex, ind_sex) and genotype.sex != ind_sex:
        return (
            f"genotype {genotype.code} is {genotype.sex} and individual "
            f"{individual.name} is {ind_sex}"
        )
    return None


def add_link(
    s: Session,
    genotype: Genotype,
    individual: Individual,
    actor: str,
    *,
    note: str = "",
    detail: dict[str, Any] | None = None,
) -> GenotypeLink | None:
    """Link ``genotype`` to ``individual`` in session ``s`` with an audit row.

    Returns None (and writes nothing) when that link is current already.
    Conflicts are the caller's business (:func:`link_conflict`).
    """
    existing = s.scalar(
        select(GenotypeLink).where(
            GenotypeLink.genotype_id == genotype.id,
            GenotypeLink.individual_id == individual.id,
            GenotypeLink.retracted_utc.is_(None),
        )
    )
    if existing is not None:
        return None
    link = GenotypeLink(
        genotype_id=genotype.id,
        individual_id=individual.id,
        linked_by=actor,
        linked_utc=_now(),
        note=note,
        retracted_by="",
    )
    s.add(link)
    s.flush()
    record(
        s,
        actor,
        "genotype.link",
        f"genotype:{genotype.code}",
        before=None,
        after={"individual": individual.name, "individual_id": individual.id, "note": note},
        detail=detail,
    )
    return link


def link_genotype(
    project: Project,
    genotype: str | int,
    individual: str | int,
    actor: str,
    *,
    allow_conflict: bool = False,
    note: str = "",
) -> dict[str, Any]:
    """A person says genotype ``genotype`` is the catalogue's ``individual``.

    Parameters
    ----------
    genotype:
        Its code (or id).
    individual:
        The individual's name (or id).
    actor:
        Who says so (a user name, or ``cli:LOGIN``).
    allow_conflict:
        Store the link even when it makes a conflict (which is then listed).
    note:
        Why (a reference to the lab report, ...).

    Raises
    ------
    BadInputError
        An unknown genotype or individual, or a link that would make a
        conflict without ``allow_conflict`` (nothing is written).
    """
    with project.session() as s:
        g = find_genotype(s, genotype)
        if g is None:
            raise BadInputError(
                f"genotype {genotype}", "unknown genotype", "see irbis genotypes list PROJECT"
            )
        ind = find_individual(s, individual)
        if ind is None:
            raise BadInputError(
                f"individual {individual}",
                "not in the catalogue",
                "give an individual's name or id as irbis serve's Individuals page lists them",
            )
        why = link_conflict(s, g, ind)
        if why and not allow_conflict:
            raise BadInputError(
                f"genotype {g.code}",
                f"not linked to {ind.name}: {why}",
                "unlink the other first, or link anyway with --allow-conflict to record both",
            )
        link = add_link(s, g, ind, actor, note=note, detail={"conflict": why} if why else None)
        s.commit()
        return {
            "genotype": g.code,
            "individual": ind.name,
            "individual_id": ind.id,
            "linked": link is not None,
            "conflict": why,
        }


def unlink_genotype(
    project: Project, genotype: str | int, actor: str, individual: str | int | None = None
) -> dict[str, Any]:
    """Retract the current links of ``genotype`` (to ``individual`` only, when given).

    Raises
    ------
    BadInputError
        An unknown genotype or individual, or no such current link.
    """
    with project.session() as s:
        g = find_genotype(s, genotype)
        if g is None:
            raise BadInputError(
                f"genotype {genotype}", "unknown genotype", "see irbis genotypes list PROJECT"
            )
        q = select(GenotypeLink).where(
            GenotypeLink.genotype_id == g.id, GenotypeLink.retracted_utc.is_(None)
        )
        if individual is not None:
            ind = find_individual(s, individual)
            if ind is None:
                raise BadInputError(f"individual {individual}", "not in the catalogue")
            q = q.where(GenotypeLink.individual_id == ind.id)
        links = list(s.scalars(q))
        if not links:
            raise BadInputError(
                f"genotype {g.code}",
                "has no current link" + (f" to {individual}" if individual is not None else ""),
                "see irbis genotypes list PROJECT",
            )
        now = _now()
        names = []
        for lk in links:
            lk.retracted_utc, lk.retracted_by = now, actor
            name = s.get(Individual, lk.individual_id).name
            names.append(name)
            record(
                s,
                actor,
                "genotype.unlink",
                f"genotype:{g.code}",
                before={"individual": name, "individual_id": lk.individual_id},
                after=None,
                detail={"linked_by": lk.linked_by, "linked_utc": lk.linked_utc},
            )
        s.commit()
        return {"genotype": g.code, "unlinked": names}


def genotype_catalogue(project: Project) -> dict[str, Any]:
    """Every genotype with its samples, links and status, and every conflict.

    Returns
    -------
    dict
        ``{"genotypes": [...], "conflicts": [...]}``. Each genotype:
        ``code``, ``species``, ``sex``, ``lab``, ``samples`` (scat samples
        assigned to it), ``first``/``last`` (sample dates), ``links``
        (``individual``, ``individual_id`` of the animal the link leads to
        after merges, ``linked_by``, ``linked_utc``) and ``status``:
        ``own individual`` (no link), ``linked`` or ``conflict``.
    """
    with project.session() as s:
        roots = load_merge_roots(s)
        inds = {i.id: i for i in s.scalars(select(Individual))}
        found = conflicts(s)
        in_conflict = {code for c in found for code in c.genotypes}
        samples = {
            gid: (n, a, b)
            for gid, n, a, b in s.execute(
                select(
                    FieldRecord.genotype_id,
                    func.count(FieldRecord.id),
                    func.min(FieldRecord.observed_local),
                    func.max(FieldRecord.observed_local),
                )
                .where(FieldRecord.genotype_id.is_not(None))
                .group_by(FieldRecord.genotype_id)
            )
        }
        links: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for lk in _current_links(s):
            root = inds[roots.get(lk.individual_id, lk.individual_id)]
            links[lk.genotype_id].append(
                {
                    "individual": root.name,
                    "individual_id": root.id,
                    "linked_to": inds[lk.individual_id].name,
                    "linked_by": lk.linked_by,
                    "linked_utc": lk.linked_utc.isoformat(sep=" ", timespec="seconds"),
                    "note": lk.note,
                }
            )
        out = []
        for g in s.scalars(select(Genotype).order_by(Genotype.code)):
            n, first, last = samples.get(g.id, (0, None, None))
            status = (
                "conflict"
                if g.code in in_conflict
                else "linked"
                if links[g.id]
                else "own individual"
            )
            out.append(
                {
                    "id": g.id,
                    "code": g.code,
                    "species": g.species,
                    "sex": g.sex,
                    "lab": g.lab,
                    "samples": int(n),
                    "first": first.date().isoformat() if first else None,
                    "last": last.date().isoformat() if last else None,
                    "links": links[g.id],
                    "status": status,
                }
            )
    return {"genotypes": out, "conflicts": [c.as_dict() for c in found]}
