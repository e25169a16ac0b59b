"""Field records: scat samples, snares and signs found on foot, and the transects walked.

Records come in as :class:`FieldRecordIn` (from ``irbis field import``, see
:mod:`irbis.exchange.field_csv`), are checked as a whole batch, and are
written in one transaction with an audit row per record created or changed
(``field.create``, ``field.edit``; transects ``transect.create``,
``transect.edit``): a table with one bad row writes nothing, and the error
names the row and column at fault in one line.

Importing the same table again is idempotent: a record is known by its
``uid`` (the table's record id, a SMART patrol's waypoint, the sample ID of
a scat sample, else its kind, time, place and type), and only records whose
values changed are updated.

Laboratory results (:class:`LabResultIn`) come later than the samples: they
name a sample by its ID (an unknown ID is an error) and give the genotype,
the sex and, where a person matched it, the photo-identified individual
(:mod:`irbis.store.genetics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.store.audit import record
from irbis.store.genetics import add_link, get_or_create_genotype, link_conflict
from irbis.store.project import Project
from irbis.store.schema import FieldRecord, Genotype, Individual, Media, Transect

__all__ = [
    "KINDS",
    "SIGN_AGES",
    "SIGN_TYPES",
    "SNARE_STATUSES",
    "FieldRecordIn",
    "LabResultIn",
    "SaveResult",
    "TransectIn",
    "line_length_m",
    "record_as_dict",
    "save_field_records",
    "save_lab_results",
    "save_transects",
    "update_field_record",
]

KINDS = ("scat_sample", "snare", "sign")
SIGN_TYPES = ("scrape", "track", "scat", "claw_mark", "spray")
SIGN_AGES = ("fresh", "old")
SNARE_STATUSES = ("found", "removed")
SEXES = ("female", "male", "unknown")
#: Fields a person may change in the app (and who): everything else comes from tables.
EDITABLE = ("status", "action_taken", "notes", "sensitive", "count", "target_species")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class FieldRecordIn:
    """One field record as read from a table, before it is checked against the project.

    ``where`` is ``file:row N`` for errors; ``columns`` maps a field to the
    column of the table it came from (errors name that column). ``photos``
    holds media ids (``int``) and files (``Path``).
    """

    where: str
    uid: str
    kind: str
    observed_local: datetime
    observed_utc: datetime
    utc_offset_min: int
    timezone: str
    lon: float | None = None
    lat: float | None = None
    x: float | None = None
    y: float | None = None
    crs: str | None = None
    elevation: float | None = None
    sensitive: bool = True
    observer: str = ""
    organisation: str = ""
    species: str | None = None
    count: int | None = None
    transect: str | None = None
    sample_id: str | None = None
    lab: str = ""
    genotype: str | None = None
    individual: str | None = None
    sex: str | None = None
    threat_type: str | None = None
    status: str | None = None
    target_species: str | None = None
    action_taken: str = ""
    sign_type: str | None = None
    sign_age: str | None = None
    photos: list[int | Path] = field(default_factory=list)
    notes: str = ""
    columns: dict[str, str] = field(default_factory=dict)

    def col(self, name: str) -> str:
        """The table's column holding field ``name``."""
        return self.columns.get(name, name)

    def error(self, name: str, reason: str, hint: str = "") -> BadInputError:
        """A one-line error naming this row and the column of field ``name``."""
        return BadInputError(self.where, f"column {self.col(name)!r}: {reason}", hint)


@dataclass
class TransectIn:
    """One sign transect as read from a table (``line`` as ``[[a, b], ...]``)."""

    where: str
    code: str
    walked_on: date | None = None
    observers: str = ""
    organisation: str = ""
    length_m: float | None = None
    line: list[list[float]] = field(default_factory=list)
    crs: str | None = None
    notes: str = ""


@dataclass
class LabResultIn:
    """A laboratory's answer for one scat sample, named by its sample ID."""

    where: str
    sample_id: str
    lab: str = ""
    genotype: str | None = None
    sex: str | None = None
    individual: str | None = None
    species: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    def error(self, name: str, reason: str, hint: str = "") -> BadInputError:
        return BadInputError(self.where, f"column {self.columns.get(name, name)!r}: {reason}", hint)


@dataclass
class SaveResult:
    """What one import did: counts, and the ids of the records it created or changed."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    genotypes_new: int = 0
    links_new: int = 0
    ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "genotypes_new": self.genotypes_new,
            "links_new": self.links_new,
        }


# --------------------------------------------------------------------------- checks


def _raise_first(errors: list[BadInputError]) -> None:
    """Raise the first error, saying how many other rows are bad too."""
    if not errors:
        return
    first = errors[0]
    if len(errors) > 1:
        rest = ", ".join(e.where.rsplit(":", 1)[-1].strip() for e in errors[1:6])
        more = f"; {len(errors) - 1} more bad row(s): {rest}" + (", ..." if len(errors) > 6 else "")
        raise BadInputError(first.where, first.reason, (first.hint + more).lstrip("; "))
    raise first


def _check_record(r: FieldRecordIn) -> None:
    """Checks that need only the row itself (kind-specific fields, vocabularies, place)."""
    if r.kind not in KINDS:
        raise r.error("kind", f"unknown kind {r.kind!r}", f"use one of: {', '.join(KINDS)}")
    if (r.lat is None or r.lon is None) and (r.x is None or r.y is None):
        gap = (
            "lon"
            if r.lat is not None
            else "y"
            if r.x is not None
            else "x"
            if r.y is not None
            else "lat"
        )
        raise r.error(
            gap,
            "missing coordinates",
            "give lat and lon (WGS84 degrees), or x and y with their crs",
        )
    if r.x is not None and r.y is not None and r.lat is None and not r.crs:
        raise r.error("crs", "x and y without a crs", "add a crs column or --crs EPSG:32646")
    for name, value in (("x", r.x), ("y", r.y), ("lat", r.lat), ("lon", r.lon)):
        if value is not None and not math.isfinite(value):
            raise r.error(name, "not a finite number")
    if r.lat is not None and not -90 <= r.lat <= 90:
        raise r.error("lat", f"{r.lat} is not a latitude (-90 to 90)", "are lat and lon swapped?")
    if r.lon is not None and not -180 <= r.lon <= 180:
        raise r.error("lon", f"{r.lon} is not a longitude (-180 to 180)")
    if r.count is not None and r.count < 0:
        raise r.error("count", f"{r.count} is negative")
    if r.sex is not None and r.sex not in SEXES:
        raise r.error("sex", f"unknown sex {r.sex!r}", "use female, male or unknown")
    if r.kind == "scat_sample":
        if not r.sample_id:
            raise r.error("sample_id", "a scat sample needs its sample ID", "the ID on the tube")
        if r.individual and not r.genotype:
            raise r.error(
                "individual",
                "an individual without a genotype",
                "give the lab's genotype ID the individual is linked through",
            )
    else:
        for name in ("sample_id", "genotype", "individual"):
            if getattr(r, name):
                raise r.error(name, f"only scat samples carry a {name}", f"this row is a {r.kind}")
    if r.kind == "snare":
        if r.status is None:
            raise r.error("status", "a snare needs its status", "found or removed")
        if r.status not in SNARE_STATUSES:
            raise r.error("status", f"unknown status {r.status!r}", "use found or removed")
    elif r.status:
        raise r.error("status", f"only snares carry a status; this row is a {r.kind}")
    if r.kind == "sign":
        if r.sign_type is None:
            raise r.error("sign_type", "a sign needs its type", f"one of: {', '.join(SIGN_TYPES)}")
        if r.sign_type not in SIGN_TYPES:
            raise r.error(
                "sign_type", f"unknown sign type {r.sign_type!r}", f"use {', '.join(SIGN_TYPES)}"
            )
    elif r.sign_type:
        raise r.error("sign_type", f"only signs carry a sign type; this row is a {r.kind}")
    if r.sign_age is not None and r.sign_age not in SIGN_AGES:
        raise r.error("sign_age", f"unknown age {r.sign_age!r}", "use fresh or old")


#: Stores a photo file with a record and says what was stored:
#: ``{"name", "sha256", "size", "path"}`` (see :func:`irbis.exchange.field_csv.blob_writer`).
FileWriter = Callable[[Path], dict[str, Any]]


# --------------------------------------------------------------------------- records

#: Values compared between a stored record and a row imported again.
_COMPARED = (
    "kind",
    "observed_local",
    "observed_utc",
    "utc_offset_min",
    "timezone",
    "lon",
    "lat",
    "x",
    "y",
    "crs",
    "elevation",
    "sensitive",
    "observer",
    "organisation",
    "species",
    "count",
    "transect_id",
    "sample_id",
    "lab",
    "genotype_id",
    "sex",
    "threat_type",
    "status",
    "target_species",
    "action_taken",
    "sign_type",
    "sign_age",
    "media_ids",
    "files",
    "notes",
)


def _state(rec: FieldRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in _COMPARED}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


def save_field_records(
    project: Project,
    records: list[FieldRecordIn],
    actor: str,
    *,
    source: str = "",
    file_writer: FileWriter | None = None,
) -> SaveResult:
    """Check and store ``records`` in one transaction (nothing is written when one is bad).

    Parameters
    ----------
    records:
        The rows of one table.
    actor:
        Who imports (``cli:LOGIN`` or a user name), for the audit rows.
    source:
        The table's path, kept on each record.
    file_writer:
        Stores photo files given with records (needed when any row names one).

    Raises
    ------
    BadInputError
        The first bad row (row and column named), with how many more there are:
        missing coordinates, an unknown kind, sign type or status, an unknown
        transect, media id, photo file or individual, a sample ID or record id
        used twice, a genotype link that would make a conflict.
    """
    result = SaveResult()
    errors: list[BadInputError] = []
    seen_uid: dict[str, str] = {}
    seen_sample: dict[str, str] = {}
    with project.session() as s:
        existing = {r.uid: r for r in s.scalars(select(FieldRecord))}
        sample_owner = {r.sample_id: r.uid for r in existing.values() if r.sample_id}
        transects = dict(s.execute(select(Transect.code, Transect.id)).all())
        media_ids = set(s.scalars(select(Media.id)))
        individuals = {i.name: i for i in s.scalars(select(Individual))}
        for r in records:
            try:
                _check_record(r)
                if r.sample_id:
                    if r.sample_id in seen_sample:
                        raise r.error(
                            "sample_id",
                            f"sample ID {r.sample_id!r} appears twice",
                            f"also at {seen_sample[r.sample_id]}",
                        )
                    seen_sample[r.sample_id] = r.where
                    owner = sample_owner.get(r.sample_id)
                    if owner is not None and owner != r.uid:
                        raise r.error(
                            "sample_id",
                            f"sample ID {r.sample_id!r} belongs to another record ({owner})",
                            "a sample ID names one tube; correct the ID",
                        )
                if r.uid in seen_uid:
                    raise r.error(
                        "record_id",
                        f"record {r.uid!r} appears twice",
                        f"also at {seen_uid[r.uid]}; give each record its own id",
                    )
                seen_uid[r.uid] = r.where
                if r.transect and r.transect not in transects:
                    raise r.error(
                        "transect",
                        f"unknown transect {r.transect!r}",
                        "import the transects first: irbis field import PROJECT "
                        "transects.csv --kind transect",
                    )
                for p in r.photos:
                    if isinstance(p, int) and p not in media_ids:
                        raise r.error("photos", f"unknown media id {p}", "irbis media ids: m123")
                    if isinstance(p, Path) and not p.is_file():
                        raise r.error(
                            "photos",
                            f"photo file {p} not found",
                            "path is relative to the table's folder",
                        )
                    if isinstance(p, Path) and file_writer is None:
                        raise r.error(
                            "photos",
                            "photo files cannot be stored here",
                            "give media ids (m123) instead",
                        )
                if r.individual and r.individual not in individuals:
                    raise r.error(
                        "individual",
                        f"unknown individual {r.individual!r}",
                        "name an individual of the catalogue, or leave it empty",
                    )
            except BadInputError as exc:
                errors.append(exc)
        _raise_first(errors)

        by_code: dict[str, Genotype] = {}
        for r in records:
            genotype_id = None
            if r.genotype:
                g = by_code.get(r.genotype)
                if g is None:
                    g, new = get_or_create_genotype(
                        s, r.genotype, actor, species=r.species, lab=r.lab
                    )
                    result.genotypes_new += new
                    by_code[r.genotype] = g
                _lab_sex(g, r.sex)
                genotype_id = g.id
                if r.individual:
                    ind = individuals[r.individual]
                    why = link_conflict(s, g, ind)
                    if why:
                        errors.append(
                            r.error(
                                "individual",
                                f"genotype conflict: {why}",
                                "unlink the other first (irbis genotypes unlink)",
                            )
                        )
                        continue
                    if add_link(s, g, ind, actor, detail={"source": r.where}):
                        result.links_new += 1
            files = [file_writer(p) for p in r.photos if isinstance(p, Path) and file_writer]
            values = {
                "kind": r.kind,
                "observed_local": r.observed_local,
                "observed_utc": r.observed_utc,
                "utc_offset_min": r.utc_offset_min,
                "timezone": r.timezone,
                "lon": r.lon,
                "lat": r.lat,
                "x": r.x,
                "y": r.y,
                "crs": r.crs,
                "elevation": r.elevation,
                "sensitive": r.sensitive,
                "observer": r.observer,
                "organisation": r.organisation,
                "species": r.species,
                "count": r.count,
                "transect_id": transects.get(r.transect) if r.transect else None,
                "sample_id": r.sample_id,
                "lab": r.lab,
                "genotype_id": genotype_id,
                "sex": r.sex,
                "threat_type": r.threat_type,
                "status": r.status,
                "target_species": r.target_species,
                "action_taken": r.action_taken,
                "sign_type": r.sign_type,
                "sign_age": r.sign_age,
                "media_ids": [p for p in r.photos if isinstance(p, int)],
                "files": files,
                "notes": r.notes,
            }
            old = existing.get(r.uid)
            if old is None:
                rec = FieldRecord(
                    uid=r.uid,
                    source=source[:400],
                    created_by=actor,
                    created_utc=_now(),
                    updated_by="",
                    **values,
                )
                s.add(rec)
                s.flush()
                record(
                    s,
                    actor,
                    "field.create",
                    f"field:{rec.id}",
                    after=_audit_state(rec),
                    detail={"source": r.where},
                )
                result.new += 1
                result.ids.append(rec.id)
                continue
            if old.files and not files:
                values["files"] = old.files  # photos stored with it stay
            if old.genotype_id and not genotype_id:
                # A lab result stored since the sample was imported stays.
                values.update(
                    genotype_id=old.genotype_id, lab=old.lab or r.lab, sex=old.sex or r.sex
                )
            before = _state(old)
            if all(_same(before[k], values[k]) for k in _COMPARED):
                result.unchanged += 1
                continue
            for k, v in values.items():
                setattr(old, k, v)
            old.updated_by, old.updated_utc = actor, _now()
            changed = {k: before[k] for k in _COMPARED if not _same(before[k], values[k])}
            record(
                s,
                actor,
                "field.edit",
                f"field:{old.id}",
                before=changed,
                after={k: values[k] for k in changed},
                detail={"source": r.where},
            )
            result.updated += 1
            result.ids.append(old.id)
        _raise_first(errors)
        s.commit()
    return result


def _lab_sex(g: Genotype, sex: str | None) -> None:
    """Take the laboratory's sex for a genotype that has none yet."""
    if sex in ("female", "male") and g.sex == "unknown":
        g.sex = sex


def _audit_state(rec: FieldRecord) -> dict[str, Any]:
    return {"uid": rec.uid, **_state(rec)}


def save_lab_results(
    project: Project, results: list[LabResultIn], actor: str, *, source: str = ""
) -> SaveResult:
    """Store a laboratory's genotypes and sexes on the scat samples they name.

    Raises
    ------
    BadInputError
        An unknown sample ID, a sample named twice, an unknown individual, a
        bad sex, or a link that would make a genotype conflict (row and column
        named; nothing is written).
    """
    result = SaveResult()
    errors: list[BadInputError] = []
    seen: dict[str, str] = {}
    with project.session() as s:
        samples = {
            r.sample_id: r
            for r in s.scalars(select(FieldRecord).where(FieldRecord.kind == "scat_sample"))
        }
        individuals = {i.name: i for i in s.scalars(select(Individual))}
        for r in results:
            try:
                if r.sample_id not in samples:
                    raise r.error(
                        "sample_id",
                        f"unknown sample ID {r.sample_id!r}",
                        "no scat sample has it: import the field records first, or check the ID",
                    )
                if r.sample_id in seen:
                    raise r.error(
                        "sample_id",
                        f"sample ID {r.sample_id!r} appears twice",
                        f"also at {seen[r.sample_id]}",
                    )
                seen[r.sample_id] = r.where
                if r.sex is not None and r.sex not in SEXES:
                    raise r.error("sex", f"unknown sex {r.sex!r}", "use female, male or unknown")
                if r.individual and not r.genotype:
                    raise r.error(
                        "individual",
                        "an individual without a genotype",
                        "give the genotype ID the individual is linked through",
                    )
                if r.individual and r.individual not in individuals:
                    raise r.error(
                        "individual",
                        f"unknown individual {r.individual!r}",
                        "name an individual of the catalogue, or leave it empty",
                    )
            except BadInputError as exc:
                errors.append(exc)
        _raise_first(errors)
        for r in results:
            rec = samples[r.sample_id]
            before = _state(rec)
            genotype_id = rec.genotype_id
            if r.genotype:
                g, new = get_or_create_genotype(
                    s, r.genotype, actor, species=r.species or rec.species, lab=r.lab
                )
                result.genotypes_new += new
                _lab_sex(g, r.sex)
                genotype_id = g.id
                if r.individual:
                    ind = individuals[r.individual]
                    why = link_conflict(s, g, ind)
                    if why:
                        errors.append(
                            r.error(
                                "individual",
                                f"genotype conflict: {why}",
                                "unlink the other first (irbis genotypes unlink)",
                            )
                        )
                        continue
                    if add_link(s, g, ind, actor, detail={"source": r.where}):
                        result.links_new += 1
            values = {
                "genotype_id": genotype_id,
                "lab": r.lab or rec.lab,
                "sex": r.sex or rec.sex,
                "species": r.species or rec.species,
            }
            if all(_same(before[k], v) for k, v in values.items()):
                result.unchanged += 1
                continue
            for k, v in values.items():
                setattr(rec, k, v)
            rec.updated_by, rec.updated_utc = actor, _now()
            changed = {k: before[k] for k, v in values.items() if not _same(before[k], v)}
            record(
                s,
                actor,
                "field.edit",
                f"field:{rec.id}",
                before=changed,
                after={k: values[k] for k in changed},
                detail={"source": r.where, "lab": True},
            )
            result.updated += 1
            result.ids.append(rec.id)
        _raise_first(errors)
        s.commit()
    return result


# --------------------------------------------------------------------------- transects


def line_length_m(line: list[list[float]], crs: str | None) -> float:
    """Length of a line: along the ground (haversine) for lon/lat, Euclidean for metres."""
    total = 0.0
    for (a0, b0), (a1, b1) in zip(line, line[1:], strict=False):
        if crs:
            total += math.hypot(a1 - a0, b1 - b0)
        else:
            p0, p1 = math.radians(b0), math.radians(b1)
            dp, dl = p1 - p0, math.radians(a1 - a0)
            h = math.sin(dp / 2) ** 2 + math.cos(p0) * math.cos(p1) * math.sin(dl / 2) ** 2
            total += 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))
    return total


def save_transects(
    project: Project, transects: list[TransectIn], actor: str, *, source: str = ""
) -> SaveResult:
    """Check and store sign transects (known by their code; a re-import changes what changed).

    Raises
    ------
    BadInputError
        A transect named twice, without a line or a length, or with a bad length.
    """
    result = SaveResult()
    errors: list[BadInputError] = []
    seen: dict[str, str] = {}
    for t in transects:
        try:
            if t.code in seen:
                raise BadInputError(
                    t.where,
                    f"column 'transect': {t.code!r} appears twice",
                    f"also at {seen[t.code]}",
                )
            seen[t.code] = t.where
            if len(t.line) == 1:
                raise BadInputError(t.where, "column 'line': a line needs two points or more")
            if t.length_m is None and not t.line:
                raise BadInputError(
                    t.where,
                    "column 'length_m': no length and no line",
                    "give length_m, or the line (start and end points)",
                )
            if t.length_m is not None and not (math.isfinite(t.length_m) and t.length_m > 0):
                raise BadInputError(
                    t.where,
                    f"column 'length_m': {t.length_m} is not a length",
                    "metres walked, more than 0",
                )
        except BadInputError as exc:
            errors.append(exc)
    _raise_first(errors)
    with project.session() as s:
        existing = {t.code: t for t in s.scalars(select(Transect))}
        for t in transects:
            length = t.length_m if t.length_m is not None else line_length_m(t.line, t.crs)
            values = {
                "walked_on": t.walked_on,
                "observers": t.observers,
                "organisation": t.organisation,
                "length_m": round(length, 1),
                "line": t.line,
                "crs": t.crs,
                "notes": t.notes,
            }
            old = existing.get(t.code)
            if old is None:
                row = Transect(
                    code=t.code,
                    source=source[:400],
                    created_by=actor,
                    created_utc=_now(),
                    updated_by="",
                    **values,
                )
                s.add(row)
                s.flush()
                record(
                    s,
                    actor,
                    "transect.create",
                    f"transect:{t.code}",
                    after=values,
                    detail={"source": t.where},
                )
                result.new += 1
                result.ids.append(row.id)
                continue
            before = {k: getattr(old, k) for k in values}
            if all(_same(before[k], v) for k, v in values.items()):
                result.unchanged += 1
                continue
            for k, v in values.items():
                setattr(old, k, v)
            old.updated_by, old.updated_utc = actor, _now()
            changed = [k for k, v in values.items() if not _same(before[k], v)]
            record(
                s,
                actor,
                "transect.edit",
                f"transect:{t.code}",
                before={k: before[k] for k in changed},
                after={k: values[k] for k in changed},
                detail={"source": t.where},
            )
            result.updated += 1
            result.ids.append(old.id)
        s.commit()
    return result


# --------------------------------------------------------------------------- edits and reading


def update_field_record(
    project: Project,
    record_id: int,
    changes: dict[str, Any],
    actor: str,
    *,
    may_unmark_sensitive: bool = False,
) -> dict[str, Any]:
    """Change what a person may change on one record (a snare removed, a note), audited.

    Parameters
    ----------
    changes:
        Fields of :data:`EDITABLE` and their new values.
    may_unmark_sensitive:
        Whether the person may make a sensitive place public (admins).

    Raises
    ------
    BadInputError
        An unknown record or field, or a value the record's kind does not take.
    PermissionError
        Unmarking a sensitive place without the right.
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise BadInputError(
            f"field record {record_id}",
            f"cannot change {unknown[0]!r}",
            f"editable: {', '.join(EDITABLE)}",
        )
    with project.session() as s:
        rec = s.get(FieldRecord, record_id)
        if rec is None:
            raise LookupError(f"no field record {record_id}")
        where = f"field record {record_id}"
        if "status" in changes:
            if rec.kind != "snare":
                raise BadInputError(where, f"only snares carry a status; this is a {rec.kind}")
            if changes["status"] not in SNARE_STATUSES:
                raise BadInputError(
                    where, f"unknown status {changes['status']!r}", "use found or removed"
                )
        if changes.get("sensitive") is False and rec.sensitive and not may_unmark_sensitive:
            raise PermissionError("only an admin may make a sensitive place public")
        if changes.get("count") is not None and int(changes["count"]) < 0:
            raise BadInputError(where, "count is negative")
        before = {k: getattr(rec, k) for k in changes}
        diff = {k: v for k, v in changes.items() if not _same(before[k], v)}
        if diff:
            for k, v in diff.items():
                setattr(rec, k, v)
            rec.updated_by, rec.updated_utc = actor, _now()
            record(
                s,
                actor,
                "field.edit",
                f"field:{rec.id}",
                before={k: before[k] for k in diff},
                after=diff,
                detail={"via": "app"},
            )
            s.commit()
        return {"id": rec.id, "changed": sorted(diff)}


def record_as_dict(
    rec: FieldRecord, transects: dict[int, str], genotypes: dict[int, str]
) -> dict[str, Any]:
    """One record with every value, at full precision (callers generalise the place)."""
    return {
        "id": rec.id,
        "uid": rec.uid,
        "kind": rec.kind,
        "date": rec.observed_local.date().isoformat(),
        "time": rec.observed_local.time().isoformat(timespec="seconds"),
        "observed_local": rec.observed_local.isoformat(timespec="seconds"),
        "observed_utc": rec.observed_utc.isoformat(timespec="seconds"),
        "timezone": rec.timezone,
        "lon": rec.lon,
        "lat": rec.lat,
        "x": rec.x,
        "y": rec.y,
        "crs": rec.crs,
        "elevation": rec.elevation,
        "sensitive": bool(rec.sensitive),
        "observer": rec.observer,
        "organisation": rec.organisation,
        "species": rec.species,
        "count": rec.count,
        "transect": transects.get(rec.transect_id) if rec.transect_id else None,
        "sample_id": rec.sample_id,
        "lab": rec.lab,
        "genotype": genotypes.get(rec.genotype_id) if rec.genotype_id else None,
        "sex": rec.sex,
        "threat_type": rec.threat_type,
        "status": rec.status,
        "target_species": rec.target_species,
        "action_taken": rec.action_taken,
        "sign_type": rec.sign_type,
        "sign_age": rec.sign_age,
        "media_ids": list(rec.media_ids or []),
        "files": [f.get("name", "") for f in rec.files or []],
        "notes": rec.notes,
        "created_by": rec.created_by,
        "updated_by": rec.updated_by,
    }


def load_records(s: Session, kind: str | None = None) -> list[dict[str, Any]]:
    """Every field record (of ``kind``) as :func:`record_as_dict`, in time order."""
    if kind is not None and kind not in KINDS:
        raise BadInputError(f"--kind {kind}", "unknown kind", f"use one of: {', '.join(KINDS)}")
    transects = dict(s.execute(select(Transect.id, Transect.code)).all())
    genotypes = dict(s.execute(select(Genotype.id, Genotype.code)).all())
    q = select(FieldRecord).order_by(FieldRecord.observed_utc, FieldRecord.id)
    if kind:
        q = q.where(FieldRecord.kind == kind)
    return [record_as_dict(r, transects, genotypes) for r in s.scalars(q)]


def load_transects(s: Session) -> list[dict[str, Any]]:
    """Every transect with its signs counted."""
    from sqlalchemy import func

    signs = dict(
        s.execute(
            select(FieldRecord.transect_id, func.count(FieldRecord.id))
            .where(FieldRecord.transect_id.is_not(None))
            .group_by(FieldRecord.transect_id)
        ).all()
    )
    return [
        {
            "id": t.id,
            "code": t.code,
            "date": t.walked_on.isoformat() if t.walked_on else None,
            "observers": t.observers,
            "organisation": t.organisation,
            "length_m": t.length_m,
            "line": t.line or [],
            "crs": t.crs,
            "signs": int(signs.get(t.id, 0)),
            "notes": t.notes,
        }
        for t in s.scalars(select(Transect).order_by(Transect.code))
    ]
