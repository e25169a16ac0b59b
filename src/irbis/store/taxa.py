"""The taxa irbis knows: a small table shipped with irbis (``taxa.csv``).

Core fauna of the Altai-Sayan snow-leopard range (and people and livestock,
which camera traps there photograph too) with the scientific name, rank, the
GBIF backbone taxon key and vernacular names in English and Russian.

A GBIF key is in the table only where it was checked against a published
record (GBIF's species page or a dataset quoting it); where it could not be
checked the cell is empty, never guessed. ``irbis species add`` fills a
species from this table when its label or scientific name matches an entry
(scientific, English or Russian name, case-insensitive); users can give their
own ``--taxon-id`` for any species.

Ranks are Camtrap DP 1.0.2's ``taxonRank`` vocabulary (checked against the
shipped profile in the tests) and languages ISO 639-3 codes, as the standard's
``vernacularNames`` asks.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from irbis.core.errors import BadInputError

__all__ = ["RANKS", "Taxon", "gbif_url", "language", "lookup", "rank", "table", "taxon_id"]

#: Camtrap DP 1.0.2 ``taxonomic[].taxonRank`` values.
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies")

#: Two-letter codes people type, as the ISO 639-3 codes Camtrap DP asks for.
_TWO_LETTER = {
    "en": "eng",
    "ru": "rus",
    "mn": "mon",
    "kk": "kaz",
    "ky": "kir",
    "tg": "tgk",
    "uz": "uzb",
    "zh": "zho",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "ne": "nep",
    "hi": "hin",
    "ur": "urd",
    "fa": "fas",
    "bo": "bod",
}

GBIF_SPECIES = "https://www.gbif.org/species/"


@dataclass(frozen=True)
class Taxon:
    """One row of the shipped table."""

    scientific_name: str
    rank: str
    gbif_key: str = ""
    kingdom: str = ""
    vernacular_names: dict[str, str] = field(default_factory=dict)
    #: Other names a label may match (not exported).
    also: tuple[str, ...] = ()

    @property
    def taxon_id(self) -> str:
        return gbif_url(self.gbif_key) if self.gbif_key else ""


def gbif_url(key: str) -> str:
    """The GBIF species page of a backbone key (the standard asks for a global identifier)."""
    return f"{GBIF_SPECIES}{key}"


def taxon_id(raw: str) -> str:
    """A taxon ID as given; bare digits are read as a GBIF backbone key."""
    raw = (raw or "").strip()
    if raw.isdigit():
        return gbif_url(raw)
    if raw and (" " in raw or len(raw) > 500):
        raise BadInputError(
            "taxon ID",
            f"{raw[:40]!r} is not an identifier",
            "give a GBIF backbone key (digits) or the URL of a checklist's taxon page",
        )
    return raw


def rank(raw: str) -> str:
    """A rank of Camtrap DP's vocabulary (lower case), or a one-line error."""
    value = (raw or "").strip().lower()
    if value and value not in RANKS:
        raise BadInputError(
            "rank", f"{raw!r} is not a Camtrap DP taxonRank", f"use one of {', '.join(RANKS)}"
        )
    return value


def language(raw: str) -> str:
    """An ISO 639-3 code (``en`` and other common two-letter codes are converted)."""
    code = (raw or "").strip().lower()
    code = _TWO_LETTER.get(code, code)
    if not re.fullmatch(r"[a-z]{3}", code):
        raise BadInputError(
            "language",
            f"{raw!r} is not an ISO 639-3 code",
            "use three letters, e.g. eng, rus, mon, kaz (en and ru are read as eng and rus)",
        )
    return code


@cache
def table() -> tuple[Taxon, ...]:
    """The shipped table, in its order."""
    text = resources.files("irbis.store").joinpath("taxa.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    out = []
    for r in rows:
        names = {
            k.removeprefix("vernacular_"): v.strip()
            for k, v in r.items()
            if k.startswith("vernacular_") and (v or "").strip()
        }
        out.append(
            Taxon(
                scientific_name=r["scientific_name"].strip(),
                rank=r["rank"].strip(),
                gbif_key=r["gbif_key"].strip(),
                kingdom=r["kingdom"].strip(),
                vernacular_names=names,
                also=tuple(a.strip() for a in (r.get("also") or "").split(";") if a.strip()),
            )
        )
    return tuple(out)


def _norm(name: str) -> str:
    return " ".join((name or "").replace("ё", "е").split()).casefold()


def lookup(*names: str) -> Taxon | None:
    """The first table entry whose scientific or vernacular name is one of ``names``."""
    wanted = [_norm(n) for n in names if n and n.strip()]
    for w in wanted:
        for t in table():
            if w == _norm(t.scientific_name) or any(
                w == _norm(v) for v in (*t.vernacular_names.values(), *t.also)
            ):
                return t
    return None
