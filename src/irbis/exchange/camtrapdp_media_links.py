"""Where a Camtrap DP package says each media file is, when the files are not copied.

The standard's ``filePath`` is "URL or relative path to the media file,
respectively for externally hosted files or files that are part of the
package". With ``--media-files none`` no file is part of the package, so a
relative path (the path on the camera card that irbis ingested) would name a
file that is not there. :func:`link_media` rewrites such rows:

- with ``--media-base-url URL``: ``filePath`` = ``URL/<deploymentID>/<fileName>``,
  the layout ``--media-files copy`` writes under ``media/`` (copy once, put the
  ``media/`` folder on the web server, export again with the URL);
  ``filePublic`` is ``true`` except for media showing people (only in precise
  packages: public ones leave them out) and, in public packages, media of a
  sensitive species (the location policy's species), whose files must then
  stay off the public server: the result names how many;
- without it: the file is left out. ``filePath`` (required by the standard)
  becomes the RFC 6920 content name ``ni:///sha-256;<base64url digest>`` of
  the file, which names it exactly without claiming a place, and
  ``filePublic`` is ``false``; a note says how many files are not in the
  package and how to include them.

URLs an imported package gave are kept as they came, as are relative paths of
an imported package whose file irbis never had (nothing better is known).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

from irbis.core.errors import BadInputError

__all__ = ["MediaLinks", "check_base_url", "link_media", "ni_uri", "sensitive_media_ids"]


def check_base_url(url: str) -> str:
    """``url`` without trailing slashes, or a one-line error for anything but http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInputError(
            "--media-base-url",
            f"{url!r} is not an http(s) URL",
            "give the public address of the folder holding the media, e.g. https://host/media",
        )
    if parts.query or parts.fragment:
        raise BadInputError(
            "--media-base-url", f"{url!r} has a query or fragment", "give a folder address"
        )
    return url.strip().rstrip("/")


def ni_uri(sha256_hex: str) -> str:
    """The RFC 6920 name of content with this SHA-256 (``ni:///sha-256;...``)."""
    digest = base64.urlsafe_b64encode(bytes.fromhex(sha256_hex)).decode().rstrip("=")
    return f"ni:///sha-256;{digest}"


def _is_url(path: str) -> bool:
    return "://" in path


def _time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def sensitive_media_ids(
    media: Iterable[dict[str, str]],
    observations: Iterable[dict[str, str]],
    is_sensitive: Callable[[str | None], bool],
) -> set[str]:
    """mediaIDs showing a sensitive species: named by a media-level observation,
    or taken during an event-level observation of one at the same deployment."""
    found: set[str] = set()
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for o in observations:
        if not is_sensitive(o.get("scientificName")):
            continue
        if o.get("mediaID"):
            found.add(o["mediaID"])
            continue
        a, b = _time(o.get("eventStart", "")), _time(o.get("eventEnd", ""))
        if a is not None:
            spans.setdefault(o["deploymentID"], []).append((a, b or a))
    for m in media:
        t = _time(m["timestamp"])
        if t is not None and any(a <= t <= b for a, b in spans.get(m["deploymentID"], [])):
            found.add(m["mediaID"])
    return found


@dataclass
class MediaLinks:
    """What :func:`link_media` did."""

    urls: int = 0
    not_public: int = 0
    left_out: int = 0
    unknown: int = 0

    def notes(self, base_url: str | None) -> list[str]:
        """One line per kind of change, for the export's notes."""
        out = []
        if self.urls:
            out.append(
                f"media: {self.urls} filePath set under {base_url}/ (the layout of "
                "--media-files copy)"
            )
        if self.not_public:
            out.append(
                f"media: {self.not_public} of them show people or a sensitive species: "
                "filePublic false, keep those files off the public server"
            )
        if self.left_out:
            out.append(
                f"media: {self.left_out} files are not in the package (filePath names each "
                "by its SHA-256, filePublic false): give --media-base-url URL or "
                "--media-files copy to publish them"
            )
        if self.unknown:
            out.append(
                f"media: {self.unknown} relative filePaths of an imported package whose files "
                "irbis never had are kept as they came"
            )
        return out


def link_media(
    rows: list[dict[str, str]],
    *,
    base_url: str | None,
    hashes: dict[str, str],
    persons: set[str],
    sensitive: set[str],
    public: bool,
) -> MediaLinks:
    """Rewrite ``filePath``/``filePublic`` of media ``rows`` in place (module docstring).

    Parameters
    ----------
    rows:
        The media table as it will be written.
    base_url:
        Checked with :func:`check_base_url`, or ``None``.
    hashes:
        mediaID -> SHA-256 of the file, for files irbis hashed itself (a row
        without one is a path of an imported package whose file irbis never had).
    persons:
        mediaIDs showing people.
    sensitive:
        mediaIDs showing a sensitive species.
    public:
        A public package (sensitive media are then not public).
    """
    done = MediaLinks()
    used: set[str] = set()
    for row in rows:
        path, mid = row["filePath"], row["mediaID"]
        if _is_url(path):
            continue
        if base_url is not None:
            # As _copy_files names the copies: <deploymentID>/<name>, else <mediaID>-<name>.
            name = PurePosixPath(row["fileName"] or path).name
            rel = f"{row['deploymentID']}/{name}"
            if rel in used:
                rel = f"{row['deploymentID']}/{mid}-{name}"
            used.add(rel)
            row["filePath"] = f"{base_url}/{quote(rel)}"
            hidden = mid in persons or (public and mid in sensitive)
            row["filePublic"] = "false" if hidden else "true"
            done.urls += 1
            done.not_public += hidden
        elif mid in hashes:
            row["filePath"] = ni_uri(hashes[mid])
            row["filePublic"] = "false"
            done.left_out += 1
        else:
            done.unknown += 1
    return done
