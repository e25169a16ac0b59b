"""A page per individual that a ranger can print: photos per flank and encounters.

Built from :func:`irbis.web.individuals.individual_detail` (so station places
follow the same location policy as the individual's page) plus, per sighting,
its encounter (sequence): the sightings are listed one row per encounter, with
its date, station, photos and flanks. The best photos per flank are cropped to
their annotation box with CSS alone, so the page prints without scripts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from irbis.store.project import Project
from irbis.store.schema import Annotation, Media
from irbis.web.auth import WebUser
from irbis.web.individuals import individual_detail


def _crop_style(box: dict[str, float], width: int | None, height: int | None) -> dict[str, float]:
    """Percentages that show only ``box`` (fractions of the frame) of a frame of that size.

    ``pad`` is the crop's height over its width (the container keeps that
    aspect); ``w``/``left`` place the whole frame's image in the container
    (percentages of the container's width), ``top`` as a margin (also a
    percentage of the width, as CSS margins are).
    """
    bw = max(box["width"], 1e-3)
    bh = max(box["height"], 1e-3)
    aspect = (height / width) if width and height else 0.75
    return {
        "pad": round(100.0 * bh * aspect / bw, 3),
        "w": round(100.0 / bw, 3),
        "left": round(-100.0 * box["x"] / bw, 3),
        "top": round(-100.0 * box["y"] * aspect / bw, 3),
    }


def printable(project: Project, ind_id: int, user: WebUser) -> dict[str, Any]:
    """What the printable page shows (``merged_into`` only, for an absorbed individual)."""
    ind = individual_detail(project, ind_id, user)
    if "merged_into" in ind:
        return ind
    ann_ids = [s["annotation_id"] for s in ind["sightings"]]
    media_ids = {p["media_id"] for ps in ind["photos"].values() for p in ps}
    with project.session() as s:
        seq = dict(
            s.execute(
                select(Annotation.id, Media.sequence_id)
                .join(Media, Media.id == Annotation.media_id)
                .where(Annotation.id.in_(ann_ids))
            )
            .tuples()
            .all()
        )
        dims = {
            m: (w, h)
            for m, w, h in s.execute(
                select(Media.id, Media.width, Media.height).where(Media.id.in_(media_ids))
            )
        }
    encounters: dict[Any, dict[str, Any]] = {}
    for sg in ind["sightings"]:
        key = seq.get(sg["annotation_id"]) or f"m{sg['media_id']}"
        e = encounters.setdefault(
            key,
            {
                "sequence_id": seq.get(sg["annotation_id"]),
                "time_local": sg["time_local"],
                "station": sg["station"],
                "photos": 0,
                "sides": set(),
            },
        )
        e["photos"] += 1
        e["sides"].add(sg["side"] or "unknown")
        if sg["time_local"] and (not e["time_local"] or sg["time_local"] < e["time_local"]):
            e["time_local"] = sg["time_local"]
    rows = sorted(encounters.values(), key=lambda e: (e["time_local"] is None, e["time_local"]))
    for e in rows:
        e["sides"] = ", ".join(sorted(e["sides"]))
    photos = {
        side: [
            {**p, "crop": _crop_style(p["box"], *dims.get(p["media_id"], (None, None)))} for p in ps
        ]
        for side, ps in ind["photos"].items()
    }
    return {**ind, "photos": photos, "encounters": rows}
