"""Set a deployment's clock correction and re-time its files from the raw readings.

Whole deployments (a shift table, a fixed offset, a reference photo) and
ranges of files (:func:`fix_range`: a clock that reset part-way through a
card, fixed from one photo of a known time and undone with :func:`undo_fix`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.ingest.clock import read_timeshift_table
from irbis.ingest.grouping import file_order_key, retime_deployments
from irbis.store.project import Project
from irbis.store.schema import Camera, Deployment, Media, Station


def _retime(project: Project, session, deps: list[Deployment]) -> int:
    return retime_deployments(
        session,
        [d.id for d in deps],
        earliest=datetime.fromisoformat(project.settings.earliest_plausible),
        burst_gap_s=project.settings.burst_gap_s,
        event_gap_min=project.settings.event_gap_min,
    )


def _summary(d: Deployment, changed: int) -> dict:
    return {
        "deployment": d.code,
        "shift": d.clock_shift,
        "offset_s": d.clock_offset_s,
        "media_changed": changed,
    }


def apply_shift_table(project: Project, path: Path | str) -> dict:
    """Apply camtrapR's time-shift table (station, camera, "Y:m:d H:M:S", sign).

    The shift replaces any earlier shift of the matching deployments; the
    camera's raw readings are never changed, so applying a table twice is
    the same as applying it once.
    """
    rows = read_timeshift_table(path)
    out = []
    with project.session() as s, s.begin():
        for station, camera, shift in rows:
            q = (
                select(Deployment)
                .join(Station, Deployment.station_id == Station.id)
                .where(Station.name == station)
            )
            deps = list(s.scalars(q))
            if camera is not None:
                deps = [
                    d for d in deps if d.camera_id is not None and camera in _camera_names(s, d)
                ]
            if not deps:
                raise BadInputError(
                    f"{path}: station {station}" + (f" camera {camera}" if camera else ""),
                    "no such deployment in the project",
                    "import the registry first or fix the station name",
                )
            for d in deps:
                d.clock_shift = str(shift)
            s.flush()
            for d in deps:
                out.append(_summary(d, _retime(project, s, [d])))
    return {"deployments": out}


def _camera_names(session, d: Deployment) -> set[str]:
    cam = session.get(Camera, d.camera_id)
    return {cam.serial, cam.model} if cam else set()


def apply_offset(project: Project, deployment: str, offset_s: float) -> dict:
    """Set the fixed clock offset (seconds added to the camera clock) of a deployment."""
    with project.session() as s, s.begin():
        d = s.scalar(select(Deployment).where(Deployment.code == deployment))
        if d is None:
            raise BadInputError(
                f"--deployment {deployment}",
                "unknown deployment",
                "see `irbis registry list` for the codes",
            )
        d.clock_offset_s = float(offset_s)
        s.flush()
        return {"deployments": [_summary(d, _retime(project, s, [d]))]}


# --------------------------------------------------------------------------- file ranges


def _media_of(s, d: Deployment) -> list[Media]:
    rows = list(s.scalars(select(Media).where(Media.deployment_id == d.id)))
    return sorted(rows, key=lambda m: file_order_key(m.source_relpath))


def _find_file(media: list[Media], name: str, d: Deployment, option: str) -> Media:
    """A file of the deployment by card path (``SLG-06/IMG_0040.JPG``) or unique file name."""
    want = name.replace("\\", "/").strip()
    hits = [m for m in media if m.source_relpath == want]
    if not hits:
        hits = [m for m in media if m.file_name == want or m.source_relpath.endswith("/" + want)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise BadInputError(
            f"{option} {name}",
            f"no such file in deployment {d.code}",
            "give its path on the card as `irbis ingest --report` or the review app shows it",
        )
    raise BadInputError(
        f"{option} {name}",
        f"{len(hits)} files of deployment {d.code} have this name",
        "give its path on the card, e.g. " + hits[0].source_relpath,
    )


def _deployment(s, code: str | None, reference: str) -> Deployment:
    if code is not None:
        d = s.scalar(select(Deployment).where(Deployment.code == code))
        if d is None:
            raise BadInputError(
                f"--deployment {code}",
                "unknown deployment",
                "see `irbis registry list` for the codes",
            )
        return d
    want = reference.replace("\\", "/").strip()
    deps = set(
        s.scalars(
            select(Media.deployment_id).where(
                (Media.source_relpath == want) | (Media.file_name == want)
            )
        )
    )
    deps.discard(None)
    if len(deps) != 1:
        raise BadInputError(
            f"--reference {reference}",
            "no file of that name" if not deps else "files of that name in several deployments",
            "name the deployment with --deployment",
        )
    return s.get(Deployment, deps.pop())


def fix_range(
    project: Project,
    *,
    reference: str,
    true_time: datetime,
    deployment: str | None = None,
    first: str | None = None,
    last: str | None = None,
    by: str = "",
) -> dict:
    """Fix the clock of a range of files from one photo of a known time (as Timelapse does).

    A camera whose clock reset part-way through a card (a battery swap that
    put it back to 2000-01-01) is right before the reset and wrong by one
    fixed amount after it. A person who knows the true time of one photo
    after the reset (a ranger in frame with a GPS, a dated visit) gives it
    here: every file from ``first`` (default: the reference photo) to
    ``last`` (default: the deployment's last file), in the camera's file
    order, gets true local time = its raw reading + (``true_time`` - the
    reference's raw reading). Raw readings are never changed; the fix is
    stored on the deployment and undone with :func:`undo_fix`.

    Parameters
    ----------
    project:
        The open project.
    reference:
        The photo of a known time: its path on the card or its file name.
    true_time:
        The true local time (the deployment's zone) when it was taken.
    deployment:
        The deployment code (default: the deployment of ``reference``).
    first, last:
        The range of files to fix, inclusive (paths or names).
    by:
        Who made the fix (kept with it).

    Returns
    -------
    dict
        ``{"deployments": [...], "fix": {...}, "trusted_before": n, "trusted_after": n}``.
    """
    with project.session() as s, s.begin():
        d = _deployment(s, deployment, reference)
        media = _media_of(s, d)
        ref = _find_file(media, reference, d, "--reference")
        if ref.taken_raw is None:
            raise BadInputError(
                f"--reference {reference}",
                "the camera recorded no time for this file",
                "choose a photo the camera put a time on",
            )
        lo = _find_file(media, first, d, "--from-file") if first else ref
        hi = _find_file(media, last, d, "--to-file") if last else media[-1]
        if file_order_key(lo.source_relpath) > file_order_key(hi.source_relpath):
            raise BadInputError(
                f"--from-file {lo.source_relpath}",
                f"comes after --to-file {hi.source_relpath} in the camera's file order",
                "swap them",
            )
        before = sum(1 for m in media if not m.time_flag)
        fixes = list((d.extra or {}).get("clock_fixes") or [])
        fix = {
            "id": max((f["id"] for f in fixes), default=0) + 1,
            "first": lo.source_relpath,
            "last": hi.source_relpath,
            "reference": ref.source_relpath,
            "camera_showed": ref.taken_raw.isoformat(),
            "true_time": true_time.replace(tzinfo=None).isoformat(),
            "offset_s": (true_time.replace(tzinfo=None) - ref.taken_raw).total_seconds(),
            "by": by,
            "created_utc": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        }
        fixes.append(fix)
        d.extra = {**(d.extra or {}), "clock_fixes": fixes}
        s.flush()
        changed = _retime(project, s, [d])
        after = sum(1 for m in _media_of(s, d) if not m.time_flag)
        n_range = sum(
            1
            for m in media
            if file_order_key(lo.source_relpath)
            <= file_order_key(m.source_relpath)
            <= file_order_key(hi.source_relpath)
        )
        return {
            "deployments": [_summary(d, changed)],
            "fix": {**fix, "deployment": d.code, "files": n_range},
            "trusted_before": before,
            "trusted_after": after,
        }


def undo_fix(project: Project, deployment: str, fix_id: int | None = None) -> dict:
    """Remove a file-range clock fix (the latest, or ``fix_id``) and re-time the files."""
    with project.session() as s, s.begin():
        d = _deployment(s, deployment, "")
        fixes = list((d.extra or {}).get("clock_fixes") or [])
        if not fixes:
            raise BadInputError(
                f"--deployment {deployment}", "has no file-range clock fix to undo", ""
            )
        if fix_id is None:
            gone = fixes.pop()
        else:
            keep = [f for f in fixes if f["id"] != fix_id]
            if len(keep) == len(fixes):
                raise BadInputError(
                    f"--undo {fix_id}",
                    f"no such fix on {deployment}",
                    "ids: " + ", ".join(str(f["id"]) for f in fixes),
                )
            gone = next(f for f in fixes if f["id"] == fix_id)
            fixes = keep
        d.extra = {**(d.extra or {}), "clock_fixes": fixes}
        s.flush()
        changed = _retime(project, s, [d])
        after = sum(1 for m in _media_of(s, d) if not m.time_flag)
        return {
            "deployments": [_summary(d, changed)],
            "undone": gone,
            "trusted_after": after,
        }


def list_fixes(project: Project) -> list[dict]:
    """Every deployment's clock correction: shift, offset and file-range fixes."""
    with project.session() as s:
        return [
            {
                "deployment": d.code,
                "shift": d.clock_shift,
                "offset_s": d.clock_offset_s,
                "fixes": list((d.extra or {}).get("clock_fixes") or []),
            }
            for d in s.scalars(select(Deployment).order_by(Deployment.code))
        ]
