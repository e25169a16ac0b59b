"""Which Camtrap DP version a package was written for, and reading older ones as 1.0.2.

irbis writes Camtrap DP 1.0.2 and reads 1.0, 1.0.1 and 1.0.2 as they are: the
standard's terms did not change between them (1.0.1 and 1.0.2 are patch
releases for validators and Parquet files). A 1.0-rc.1 package is upgraded on
import, each change named in a note, following the standard's changelog for
1.0 (released 2023-11-03):

- ``project.captureMethod`` and ``media.captureMethod``: the value
  ``motionDetection`` was renamed ``activityDetection``;
- ``taxonomic.taxonIDReference`` was deleted (``taxonID`` stays and is no
  longer required);
- ``observations.taxonID`` was deleted: the IDs move to the ``taxonomic``
  entry of their scientific name, where the package does not give one already.

Packages of the 0.x drafts (fields renamed and tables reshaped since) and of
pre-releases other than 1.0-rc.1 are refused with one line saying so. A
version newer than 1.0.2 is read as 1.0.2 with a note. Independently of the
version, an empty ``homepage`` (a URI in Data Package, ``""`` in the rc.1
example) is left out, as it cannot be valid.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from irbis.core.errors import BadInputError

__all__ = ["SUPPORTED", "Upgrade", "package_version", "start_upgrade"]

#: Versions whose terms equal 1.0.2's: read as they are.
SUPPORTED = ("1.0", "1.0.1", "1.0.2")
RC1 = "1.0-rc.1"
_URL_VERSION = re.compile(r"/camtrap-dp/([0-9][0-9A-Za-z.\-]*)/[a-z-]+\.json$")


def package_version(descriptor: dict[str, Any]) -> str | None:
    """The Camtrap DP version named by ``profile`` (else by a table's ``schema`` URL).

    ``None`` when neither names one (a package from a tool that does not say).
    """
    urls = [descriptor.get("profile")]
    urls += [r.get("schema") for r in descriptor.get("resources", []) if isinstance(r, dict)]
    for url in urls:
        if isinstance(url, str) and (m := _URL_VERSION.search(url.strip())):
            return m.group(1)
    return None


def _release(version: str) -> tuple[int, ...] | None:
    """``1.0.2`` -> ``(1, 0, 2)``; ``None`` for a pre-release or anything else."""
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return None
    return tuple(int(p) for p in version.split("."))


@dataclass
class Upgrade:
    """What reading a package as Camtrap DP 1.0.2 changes, row by row.

    Made by :func:`start_upgrade`; :meth:`row` adjusts each table row,
    :meth:`finish` moves collected taxon IDs into ``taxonomic`` and returns the
    notes naming every change.
    """

    version: str | None
    rc1: bool = False
    notes: list[str] = field(default_factory=list)
    renamed: Counter[str] = field(default_factory=Counter)
    taxon_ids: dict[str, str] = field(default_factory=dict)
    taxon_id_rows: int = 0
    taxon_id_conflicts: set[str] = field(default_factory=set)

    def row(self, table: str, row: dict[str, str]) -> dict[str, str]:
        """``row`` of ``table`` with the 1.0 terms (changed in place and returned)."""
        if not self.rc1:
            return row
        if table == "media" and row.get("captureMethod") == "motionDetection":
            row["captureMethod"] = "activityDetection"
            self.renamed["media"] += 1
        elif table == "observations" and "taxonID" in row:
            tid = row.pop("taxonID")
            name = row.get("scientificName", "")
            if tid:
                self.taxon_id_rows += 1
                if name and self.taxon_ids.setdefault(name, tid) != tid:
                    self.taxon_id_conflicts.add(name)
        return row

    def finish(self, descriptor: dict[str, Any]) -> list[str]:
        """Move ``observations.taxonID`` values into ``descriptor['taxonomic']``; all notes."""
        if self.renamed["media"]:
            self.notes.append(
                f"1.0-rc.1 upgrade: media.captureMethod motionDetection -> activityDetection "
                f"in {self.renamed['media']} rows"
            )
        if self.taxon_id_rows:
            taxa = descriptor.setdefault("taxonomic", [])
            by_name = {t.get("scientificName"): t for t in taxa if isinstance(t, dict)}
            added = 0
            for name, tid in sorted(self.taxon_ids.items()):
                if name in self.taxon_id_conflicts:
                    continue
                entry = by_name.get(name)
                if entry is None:
                    entry = {"scientificName": name}
                    taxa.append(entry)
                    by_name[name] = entry
                if not entry.get("taxonID"):
                    entry["taxonID"] = tid
                    added += 1
            note = (
                f"1.0-rc.1 upgrade: observations.taxonID (deleted in 1.0) left out of "
                f"{self.taxon_id_rows} rows; taxonomic holds the taxon IDs"
            )
            if added:
                note += f" ({added} taken from the observations)"
            if self.taxon_id_conflicts:
                note += "; names with differing taxonIDs, none kept: " + ", ".join(
                    sorted(self.taxon_id_conflicts)
                )
            self.notes.append(note)
        return self.notes


def start_upgrade(descriptor: dict[str, Any], where: str) -> Upgrade:
    """Check the version of ``descriptor`` and upgrade its package-level terms in place.

    Raises
    ------
    BadInputError
        For a package of a Camtrap DP draft older than 1.0-rc.1.
    """
    version = package_version(descriptor)
    up = Upgrade(version=version)
    rel = _release(version) if version else None
    if version and version != RC1 and rel is not None and rel < (1, 0):
        raise BadInputError(
            where,
            f"written for Camtrap DP {version}, a draft older than 1.0-rc.1 whose fields "
            "were renamed since: not read",
            "convert it to Camtrap DP 1.0 first",
        )
    if version and version != RC1 and rel is None:
        raise BadInputError(
            where,
            f"written for Camtrap DP {version}, not a version irbis knows: not read",
            "irbis reads Camtrap DP 1.0-rc.1, 1.0, 1.0.1 and 1.0.2",
        )
    if rel is not None and version not in SUPPORTED and rel > (1, 0, 2):
        up.notes.append(
            f"written for Camtrap DP {version}, newer than irbis's 1.0.2: read as 1.0.2, "
            "columns 1.0.2 does not know are kept as they came"
        )
    if descriptor.get("homepage") == "":
        del descriptor["homepage"]
        up.notes.append("homepage was empty (not a URL): left out")
    if version != RC1:
        return up
    up.rc1 = True
    proj = descriptor.get("project")
    if isinstance(proj, dict) and isinstance(proj.get("captureMethod"), list):
        methods = proj["captureMethod"]
        if "motionDetection" in methods:
            proj["captureMethod"] = [
                "activityDetection" if m == "motionDetection" else m for m in methods
            ]
            up.notes.append(
                "1.0-rc.1 upgrade: project.captureMethod motionDetection -> activityDetection"
            )
    dropped: set[str] = set()
    for taxon in descriptor.get("taxonomic") or []:
        if isinstance(taxon, dict) and "taxonIDReference" in taxon:
            ref = taxon.pop("taxonIDReference")
            if ref:
                dropped.add(str(ref))
    if dropped:
        up.notes.append(
            "1.0-rc.1 upgrade: taxonomic.taxonIDReference (deleted in 1.0) left out: "
            + ", ".join(sorted(dropped))
        )
    return up
