"""secr text files for polygon / transect detectors and for a camera + scat survey.

R ``secr`` reads searched polygons and transects with ``read.traps`` /
``read.capthist`` (its ``secr-datainput`` vignette): the detector file has
one line per vertex, ``polyID x y``, then the effort of each occasion
(``binary.usage = FALSE``) and ``/`` (usage is taken from a part's first
vertex; it is repeated on every vertex here, which secr accepts); the
capture file in the ``XY`` format has one line per detection, ``Session ID
Occasion x y``, and secr matches each place to its polygon or transect.

:func:`write_joint_files` writes the camera histories, the search
histories, the mask and an R script fitting secr's multi-session version
of the joint model (``D`` shared, detection by detector type), i.e. the
likelihood of :func:`irbis.stats.secr_joint.fit_joint` with ``linked=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from irbis.exchange.secr_text import r_tokens
from irbis.stats.secr_data import CaptureHistory, Mask
from irbis.stats.secr_joint import JointSurvey
from irbis.stats.secr_polygon import AreaSearchHistory

__all__ = ["read_search_files", "write_camera_files", "write_joint_files", "write_search_files"]


def _num(v: float) -> str:
    return f"{float(v):.10g}"


def write_search_files(
    history: AreaSearchHistory, out_dir: str | Path, stem: str = "search"
) -> dict[str, Any]:
    """Write ``<stem>_parts.txt`` and ``<stem>_captXY.txt`` for ``read.capthist(fmt = "XY")``.

    Parameters
    ----------
    history:
        Polygon / transect detections.
    out_dir:
        Folder (created if missing).
    stem:
        File name stem.

    Returns
    -------
    dict
        ``trapfile``, ``captfile``, ``r_call`` (assigning ``<stem>CH``) and
        the counts written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    areas = history.areas
    part_id = r_tokens(list(areas.ids))
    animal = r_tokens(list(history.ids))
    usage = areas.usage_matrix(history.n_occasions)
    trap = out / f"{stem}_parts.txt"
    lines = [f"# polyID x y usage[1..{history.n_occasions}] /  (irbis, {areas.kind}s)"]
    for k, pid in enumerate(areas.ids):
        eff = " ".join(_num(u) for u in usage[k])
        lines.extend(f"{part_id[pid]} {_num(x)} {_num(y)} {eff} /" for x, y in areas.parts[k])
    trap.write_text("\n".join(lines) + "\n")
    capt = out / f"{stem}_captXY.txt"
    order = np.lexsort((history.occasion, history.animal))
    rows = ["# Session ID Occasion x y  (irbis)"]
    rows.extend(
        f"1 {animal[history.ids[history.animal[j]]]} {history.occasion[j] + 1} "
        f"{_num(history.xy[j, 0])} {_num(history.xy[j, 1])}"
        for j in order
    )
    capt.write_text("\n".join(rows) + "\n")
    r_call = (
        f'{stem}CH <- read.capthist("{capt.name}", "{trap.name}", fmt = "XY", '
        f'detector = "{history.detector}", noccasions = {history.n_occasions}, '
        f"binary.usage = FALSE)"
    )
    return {
        "trapfile": str(trap),
        "captfile": str(capt),
        "parts": areas.n_parts,
        "animals": history.n,
        "detections": len(history.xy),
        "r_call": r_call,
    }


def write_camera_files(
    capthist: CaptureHistory, out_dir: str | Path, stem: str = "camera"
) -> dict[str, Any]:
    """Write ``<stem>_traps.txt`` and ``<stem>_capt.txt`` (``fmt = "trapID"``).

    Parameters
    ----------
    capthist:
        Camera capture histories (usage as effort per occasion).
    out_dir:
        Folder (created if missing).
    stem:
        File name stem.

    Returns
    -------
    dict
        ``trapfile``, ``captfile``, ``r_call`` (assigning ``<stem>CH``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tid = r_tokens(list(capthist.traps.ids))
    animal = r_tokens(list(capthist.ids))
    usage = capthist.traps.usage_matrix(capthist.n_occasions)
    trap = out / f"{stem}_traps.txt"
    tl = [f"# trapID x y usage[1..{capthist.n_occasions}]  (irbis)"]
    for k, t in enumerate(capthist.traps.ids):
        xy = capthist.traps.xy[k]
        tl.append(" ".join([tid[t], _num(xy[0]), _num(xy[1]), *(_num(u) for u in usage[k])]))
    trap.write_text("\n".join(tl) + "\n")
    capt = out / f"{stem}_capt.txt"
    rows = ["# Session ID Occasion TrapID  (irbis)"]
    for i, a in enumerate(capthist.ids):
        for s, k in zip(*np.nonzero(capthist.counts[i]), strict=True):
            rows.extend(
                f"1 {animal[a]} {s + 1} {tid[capthist.traps.ids[k]]}"
                for _ in range(int(capthist.counts[i, s, k]))
            )
    capt.write_text("\n".join(rows) + "\n")
    r_call = (
        f'{stem}CH <- read.capthist("{capt.name}", "{trap.name}", fmt = "trapID", '
        f'detector = "{capthist.detector}", noccasions = {capthist.n_occasions}, '
        f"binary.usage = FALSE)"
    )
    return {"trapfile": str(trap), "captfile": str(capt), "r_call": r_call}


def write_joint_files(
    survey: JointSurvey, mask: Mask, out_dir: str | Path, detectfn: str = "HHN"
) -> dict[str, Any]:
    """Camera and search files, the mask and ``joint.R`` (secr's shared-D two-session fit).

    Parameters
    ----------
    survey:
        Camera + search detections.
    mask:
        Habitat mask.
    out_dir:
        Folder (created if missing).
    detectfn:
        Detection function of both detector types.

    Returns
    -------
    dict
        The files written and ``r_script`` (its text).
    """
    out = Path(out_dir)
    cam = write_camera_files(survey.camera, out, "camera")
    gen = write_search_files(survey.search, out, "scats")
    mfile = out / "mask.txt"
    mfile.write_text("x y\n" + "\n".join(f"{_num(x)} {_num(y)}" for x, y in mask.xy) + "\n")
    binom = "binomN = 0, " if survey.camera.detector == "count" else ""
    script = "\n".join(
        [
            "# camera + scat SECR with one density (irbis secr_joint, linked = FALSE)",
            "library(secr)",
            cam["r_call"],
            gen["r_call"],
            "ch <- MS.capthist(camera = cameraCH, scats = scatsCH)",
            f'mask <- read.mask("{mfile.name}", spacing = {_num(mask.spacing)})',
            f'fit <- secr.fit(ch, mask = list(mask, mask), detectfn = "{detectfn}", {binom}',
            "    model = list(D ~ 1, lambda0 ~ session, sigma ~ session),",
            "    details = list(convexpolygon = FALSE))",
            "print(logLik(fit)); print(predict(fit))",
        ]
    )
    rfile = out / "joint.R"
    rfile.write_text(script + "\n")
    return {"camera": cam, "scats": gen, "maskfile": str(mfile), "rfile": str(rfile),
            "r_script": script}  # fmt: skip


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    out = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            out.append((i, text.split()))
    return out


def read_search_files(
    parts_file: str | Path, capt_file: str | Path, detector: str = "polygon"
) -> AreaSearchHistory:
    """Read secr's polygon / transect files (the layout :func:`write_search_files` writes).

    Parameters
    ----------
    parts_file:
        ``polyID x y [usage...] [/ covariates]``, one line per vertex; usage
        (effort per occasion) is taken from each part's first vertex.
    capt_file:
        ``Session ID Occasion x y``, one line per detection (one session).
    detector:
        ``polygon``, ``polygonX``, ``transect`` or ``transectX``.

    Returns
    -------
    AreaSearchHistory
        Each place is given to the polygon holding it (the transect within
        1 m of it), as secr's ``read.capthist`` does.

    Raises
    ------
    BadInputError
        A line too short or not numeric, a place on no part, several sessions
        (file and line named).
    """
    from irbis.core.errors import BadInputError
    from irbis.stats.secr_polygon import AREA_DETECTORS, SearchAreas

    if detector not in AREA_DETECTORS:
        raise BadInputError(
            "--search-detector", f"{detector!r}", f"use {', '.join(AREA_DETECTORS)}"
        )
    kind = "polygon" if AREA_DETECTORS[detector][0] == 2 else "transect"
    pf, cf = Path(parts_file), Path(capt_file)
    verts: dict[str, list[list[float]]] = {}
    usage: dict[str, list[float]] = {}
    for i, tok in _data_lines(pf):
        where = f"{pf.name}:line {i}"
        try:
            xy = [float(tok[1]), float(tok[2])]
            end = tok.index("/") if "/" in tok else len(tok)
            eff = [float(v) for v in tok[3:end]]
        except (IndexError, ValueError):
            raise BadInputError(where, "expected polyID x y [usage...]", "fix the line") from None
        if tok[0] not in verts:
            usage[tok[0]] = eff
        verts.setdefault(tok[0], []).append(xy)
    if not verts:
        raise BadInputError(pf.name, "no vertices", "give polyID x y lines")
    ids = list(verts)
    widths = {len(u) for u in usage.values()}
    if len(widths) > 1:
        raise BadInputError(pf.name, "parts give different numbers of usage values", "")
    eff_matrix = np.array([usage[k] for k in ids]) if widths != {0} else None
    areas = SearchAreas(ids, [np.array(verts[k]) for k in ids], kind, usage=eff_matrix)
    names: list[str] = []
    rows: list[tuple[int, int, int, float, float, str]] = []
    sessions = set()
    for i, tok in _data_lines(cf):
        where = f"{cf.name}:line {i}"
        try:
            sess, animal, occ, x, y = tok[0], tok[1], int(tok[2]), float(tok[3]), float(tok[4])
        except (IndexError, ValueError):
            raise BadInputError(where, "expected Session ID Occasion x y", "fix the line") from None
        sessions.add(sess)
        hits = [k for k in range(areas.n_parts) if areas.contains(np.array([[x, y]]), k)[0]]
        if not hits:
            raise BadInputError(where, f"({x:g}, {y:g}) lies on no {kind}", "fix the place")
        if animal not in names:
            names.append(animal)
        rows.append((names.index(animal), occ - 1, hits[0], x, y, where))
    if not rows:
        raise BadInputError(cf.name, "no detections", "SECR needs detections")
    if len(sessions) > 1:
        raise BadInputError(cf.name, f"{len(sessions)} sessions", "give one session's detections")
    n_occ = eff_matrix.shape[1] if eff_matrix is not None else max(r[1] for r in rows) + 1
    return AreaSearchHistory(
        ids=names,
        areas=areas,
        detector=detector,
        n_occasions=n_occ,
        animal=np.array([r[0] for r in rows]),
        occasion=np.array([r[1] for r in rows]),
        part=np.array([r[2] for r in rows]),
        xy=np.array([[r[3], r[4]] for r in rows]),
        where=[r[5] for r in rows],
    )
