"""With --media-files none no filePath names a card path missing from the package."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.exchange.camtrapdp import export_camtrapdp
from irbis.exchange.camtrapdp_media_links import check_base_url, ni_uri
from irbis.store.schema import Media

from .test_exchange_camtrapdp_public import _build, _rows

BASE = "https://media.example.org/irbis/survey-2024"
SPECIES = ["Panthera uncia", "Capra sibirica", "Homo sapiens"]


def _media(project) -> dict[str, Media]:
    with project.session() as s:
        return {f"m{m.id}": m for m in s.scalars(select(Media))}


def test_ni_uri_is_the_rfc6920_name_of_the_digest():
    sha = "ab" * 32
    uri = ni_uri(sha)
    assert uri.startswith("ni:///sha-256;") and "=" not in uri
    tail = uri.split(";", 1)[1]
    assert base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4)).hex() == sha


def test_without_a_base_url_files_are_left_out_by_name(project, tmp_path):
    (tmp_path / "f").mkdir()
    _build(project, [(38.5, 72.5, SPECIES)], file_dir=tmp_path / "f")
    media = _media(project)
    res = export_camtrapdp(project, tmp_path / "pkg", public=False)
    assert res.validation.valid, res.validation.errors
    rows = _rows(tmp_path / "pkg", "media")
    assert len(rows) == 3
    card_paths = {m.source_relpath for m in media.values()}
    for r in rows:
        assert r["filePath"] not in card_paths
        assert r["filePath"] == ni_uri(media[r["mediaID"]].sha256)
        assert r["filePublic"] == "false"
    assert any("3 files are not in the package" in n for n in res.notes), res.notes


def test_base_url_gives_public_urls_but_not_for_people_or_sensitive_species(project, tmp_path):
    (tmp_path / "f").mkdir()
    _build(project, [(38.5, 72.5, SPECIES)], file_dir=tmp_path / "f")
    media = _media(project)
    by_name = {m.file_name: mid for mid, m in media.items()}

    res = export_camtrapdp(project, tmp_path / "pre", public=False, media_base_url=BASE + "/")
    assert res.validation.valid, res.validation.errors
    rows = {r["mediaID"]: r for r in _rows(tmp_path / "pre", "media")}
    leopard, ibex, person = (rows[by_name[f"IMG_{n:04d}.JPG"]] for n in (1, 2, 3))
    assert leopard["filePath"] == f"{BASE}/D0/IMG_0001.JPG"
    assert (leopard["filePublic"], ibex["filePublic"], person["filePublic"]) == (
        "true",
        "true",
        "false",
    )

    res = export_camtrapdp(project, tmp_path / "pub", media_base_url=BASE)
    assert res.validation.valid, res.validation.errors
    rows = {r["mediaID"]: r for r in _rows(tmp_path / "pub", "media")}
    assert person["mediaID"] not in rows  # people stay out of public packages
    assert rows[leopard["mediaID"]]["filePublic"] == "false"  # sensitive species
    assert rows[ibex["mediaID"]]["filePublic"] == "true"
    assert rows[ibex["mediaID"]]["filePath"] == f"{BASE}/D0/IMG_0002.JPG"
    notes = "\n".join(res.notes)
    assert "2 filePath set under" in notes and "1 of them show people or a sensitive" in notes
    desc = json.loads((tmp_path / "pub" / "datapackage.json").read_text(encoding="utf-8"))
    assert desc["resources"][1]["name"] == "media"


def test_files_not_copied_are_named_not_pointed_at(project, tmp_path):
    _build(project, [(38.5, 72.5, ["Homo sapiens", "Capra sibirica"])], file_dir=tmp_path)
    media = _media(project)
    res = export_camtrapdp(project, tmp_path / "pkg", public=False, media_files="copy")
    assert res.validation.valid and (res.files_copied, res.files_not_copied) == (1, 1)
    rows = {r["mediaID"]: r for r in _rows(tmp_path / "pkg", "media")}
    for mid, r in rows.items():
        if r["filePath"].startswith("media/"):
            assert (tmp_path / "pkg" / r["filePath"]).is_file()
        else:  # the person photo irbis could not blur
            assert r["filePath"] == ni_uri(media[mid].sha256) and r["filePublic"] == "false"


@pytest.mark.parametrize("url", ["ftp://host/media", "media/", "https://", "https://h/m?x=1"])
def test_a_base_url_that_is_not_a_web_folder_is_refused(url):
    with pytest.raises(BadInputError) as err:
        check_base_url(url)
    assert "--media-base-url" in str(err.value) and "\n" not in str(err.value)


def test_a_base_url_with_copied_files_is_refused(project, tmp_path):
    with pytest.raises(BadInputError, match="would not be used"):
        export_camtrapdp(project, tmp_path / "x", media_files="copy", media_base_url=BASE)


def test_the_command_writes_public_urls_and_refuses_a_bad_base_in_one_line(project, tmp_path):
    """``irbis export camtrapdp --media-base-url`` as a publisher types it."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from irbis.cli.app import app

    (tmp_path / "f").mkdir()
    _build(project, [(38.5, 72.5, SPECIES)], file_dir=tmp_path / "f")
    root = str(project.root)
    project.close()
    res = CliRunner().invoke(
        app,
        ["export", "camtrapdp", root, str(tmp_path / "pkg"), "--precise"]
        + ["--media-base-url", BASE, "--json"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["media"] == 3
    paths = sorted(r["filePath"] for r in _rows(tmp_path / "pkg", "media"))
    assert paths == [f"{BASE}/D0/IMG_{n:04d}.JPG" for n in (1, 2, 3)]

    bad = subprocess.run(
        [sys.executable, "-m", "irbis", "export", "camtrapdp", root, str(tmp_path / "bad")]
        + ["--media-base-url", "ftp://host/media"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--media-base-url" in lines[0], bad.stderr
    assert not (tmp_path / "bad" / "datapackage.json").exists()
