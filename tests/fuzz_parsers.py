"""Coverage-guided fuzzing (atheris) of the parsers that read what people bring.

Targets, chosen by an input's first byte:

0. the registry table reader (:func:`irbis.ingest.registry_csv.read_registry_csv`,
   irbis, camtrapR and Camtrap DP layouts told apart by the header);
1. the image metadata reader (:func:`irbis.ingest.metadata.read_metadata`:
   JPEG/PNG structure, EXIF, XMP);
2. the Camtrap DP importer (:func:`irbis.exchange.camtrapdp.import_camtrapdp`
   into a real SQLite project): the second byte picks which of the package's
   four files the rest replaces, the other three stay valid.

Every input must end in a result or one :class:`irbis.core.errors.IrbisError`
whose message is one line; anything else is a traceback, which atheris
reports as a crash (exit status non-zero) with the input that caused it.

Run: ``python tests/fuzz_parsers.py CORPUS_DIR -runs=N`` (libFuzzer options
after the corpus folder). The folder is filled with the seeds first. Give a
``crash-*`` file instead of the folder to run that one input again.
``tests/test_fuzz_parsers.py`` runs a bounded, seeded round of it.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["irbis"]):
    from irbis.core.errors import IrbisError
    from irbis.exchange.camtrapdp import import_camtrapdp
    from irbis.ingest.metadata import read_metadata
    from irbis.ingest.registry_csv import read_registry_csv
    from irbis.store import Project

REGISTRY, IMAGE, CAMTRAPDP = 0, 1, 2

IRBIS_TABLE = (
    "station,deployment,start,end,timezone,lon,lat,camera_make,clock_offset_s\n"
    "K1,K1-A,2024-03-01T12:00,2024-04-01T12:00,Asia/Bishkek,74.5,42.1,RECONYX,0\n"
    "K2,,2024-03-02,2024-04-02,+06:00,74.6,42.2,,\n"
)
CAMTRAPR_TABLE = (
    "Station,utm_x,utm_y,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
    "StationA,526000,607000,02/04/2009,14/05/2009,12/05/2009,14/05/2009\n"
    "StationB,525000,604000,03/04/2009,16/05/2009,,\n"
)
DEPLOYMENTS = (
    "deploymentID,locationName,latitude,longitude,deploymentStart,deploymentEnd\n"
    "d1,K1,42.1,74.5,2024-03-01T12:00:00+06:00,2024-04-01T12:00:00+06:00\n"
)
MEDIA = (
    "mediaID,deploymentID,timestamp,filePath,filePublic,fileMediatype\n"
    "m1,d1,2024-03-05T04:10:00+06:00,media/a.jpg,false,image/jpeg\n"
)
OBSERVATIONS = (
    "observationID,deploymentID,mediaID,eventStart,eventEnd,observationLevel,"
    "observationType,scientificName,count\n"
    "o1,d1,m1,2024-03-05T04:10:00+06:00,2024-03-05T04:10:00+06:00,media,animal,"
    "Panthera uncia,1\n"
)
TABLES = ("deployments", "media", "observations")
DATAPACKAGE = json.dumps({"resources": [{"name": t, "path": f"{t}.csv"} for t in TABLES]})
PACKAGE_FILES = ("datapackage.json", "deployments.csv", "media.csv", "observations.csv")
PACKAGE = dict(zip(PACKAGE_FILES, (DATAPACKAGE, DEPLOYMENTS, MEDIA, OBSERVATIONS), strict=True))


def _images() -> list[bytes]:
    """A JPEG with EXIF (date, make, offset) and XMP tags, and a PNG with an eXIf chunk."""
    from PIL import Image

    img = Image.new("RGB", (16, 12), (90, 120, 60))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "RECONYX", "HYPERFIRE 2"
    sub = exif.get_ifd(0x8769)
    sub[36867], sub[36881] = "2024:03:05 04:10:00", "+06:00"
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"><rdf:Description>'
        b"<lr:hierarchicalSubject><rdf:Bag><rdf:li>Species|Panthera uncia</rdf:li></rdf:Bag>"
        b"</lr:hierarchicalSubject></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    out = []
    for fmt, extra in (("JPEG", {"xmp": xmp}), ("PNG", {})):
        buf = io.BytesIO()
        img.save(buf, fmt, exif=exif, **extra)
        out.append(buf.getvalue())
    return out


def seeds() -> list[bytes]:
    """One valid input per target (and per file of the package)."""
    out = [bytes([REGISTRY]) + t.encode() for t in (IRBIS_TABLE, CAMTRAPR_TABLE, DEPLOYMENTS)]
    out += [bytes([IMAGE]) + img for img in _images()]
    out += [bytes([CAMTRAPDP, i]) + PACKAGE[name].encode() for i, name in enumerate(PACKAGE_FILES)]
    return out


class Harness:
    """Runs one input against its target in a scratch folder."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.n_projects = 0
        self.project = self._new_project()

    def _new_project(self) -> Project:
        self.n_projects += 1
        return Project.init(self.scratch / f"project{self.n_projects}")

    def __call__(self, data: bytes) -> None:
        if not data:
            return
        target, body = data[0] % 3, data[1:]
        try:
            if target == REGISTRY:
                table = self.scratch / "registry.csv"
                table.write_bytes(body)
                read_registry_csv(table)
            elif target == IMAGE:
                read_metadata(body, "card/IMG_0001.JPG")
            else:
                self._package(body)
        except IrbisError as exc:
            message = str(exc)
            if len(message.splitlines()) != 1:
                raise AssertionError(f"not a one-line error: {message!r}") from exc

    def _package(self, body: bytes) -> None:
        if not body:
            return
        which, content = PACKAGE_FILES[body[0] % len(PACKAGE_FILES)], body[1:]
        root = Path(tempfile.mkdtemp(dir=self.scratch))
        for name, text in PACKAGE.items():
            (root / name).write_bytes(content if name == which else text.encode())
        import_camtrapdp(root, self.project)
        # Imported: its deployment codes are taken now; a fresh project for the next.
        self.project.close()
        self.project = self._new_project()


def main(argv: list[str]) -> None:
    """Seed the corpus folder (the first argument after the options' program name) and fuzz."""
    corpus = next((Path(a) for a in argv[1:] if not a.startswith("-")), None)
    if corpus is not None and not corpus.is_file():  # a file: rerun one input
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (corpus / f"seed-{i:02d}").write_bytes(seed)
    scratch = Path(tempfile.mkdtemp(prefix="irbis-fuzz-"))
    harness = Harness(scratch)
    print(f"fuzzing from {datetime.now():%H:%M:%S}, scratch {scratch}", file=sys.stderr)
    atheris.Setup(argv, harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
