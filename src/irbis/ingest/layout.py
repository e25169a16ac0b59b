"""Read station, camera, species... from the folder a file sits in.

A layout is a pattern of folder roles separated by ``/``, e.g. ``station`` (a
card sorted into one folder per station), ``station/species`` (camtrapR's
species directories) or ``station/camera``. Roles: ``station``, ``deployment``,
``camera``, ``species``, ``individual`` and ``*`` (a folder to ignore).
"""

from __future__ import annotations

from irbis.core.errors import BadInputError

ROLES = {"station", "deployment", "camera", "species", "individual", "*"}


def parse_layout(layout: str) -> list[str]:
    parts = [p.strip().lower() for p in layout.strip("/").split("/") if p.strip()]
    bad = [p for p in parts if p not in ROLES]
    if bad or not parts:
        raise BadInputError(
            f"--layout {layout!r}",
            f"unknown folder role {bad[0]!r}" if bad else "empty layout",
            "use roles station, deployment, camera, species, individual or * separated by /",
        )
    return parts


def fields_from_path(relpath: str, roles: list[str]) -> dict[str, str]:
    """Map the leading folders of ``relpath`` onto ``roles``.

    Files that sit shallower than the layout get only the roles that exist.
    """
    folders = relpath.split("/")[:-1]
    out: dict[str, str] = {}
    for role, folder in zip(roles, folders, strict=False):
        if role != "*":
            out[role] = folder
    return out
