"""Everything a census report shows, gathered from a project into plain data.

:func:`gather_census` reads the project once (registry, effort, independent
records, identified animals, detector verdicts), fits the population models
through :mod:`irbis.stats` and returns a :class:`Census`: numbers, tables and
coordinates, no drawing. The HTML and PDF writers only lay it out, so what a
report says is testable without parsing a picture.

Estimates:

- closed-population models (Otis et al. 1978; Pledger 2000; Chao 1987) on
  0/1 histories of the main species' identified animals over occasions of
  ``occasion_days`` days, ranked by AICc;
- SECR (Efford 2004; Borchers & Efford 2008): Poisson ``count`` detectors,
  one occasion, usage = operating camera-days, each detection function in
  ``detectfns`` fitted by full likelihood over a trap-buffer mask and ranked
  by AICc; the best model gives the density surface of activity centres.

Models are fitted only when the data can carry them; otherwise the census
holds the sentence the report prints instead.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from irbis.core.errors import BadInputError, IrbisError
from irbis.core.sensitivity import LocationPolicy
from irbis.reports.geo import MapFrame, frame_for
from irbis.store.blanks import DEFAULT_SEED, gather_blanks, sequence_url, spot_check_sample
from irbis.store.individuals import load_merge_roots, names_individual
from irbis.store.project import Project
from irbis.store.schema import (
    Annotation,
    Deployment,
    Individual,
    Media,
    MediaDetection,
    Observation,
    SequenceVerdict,
    Station,
)
from irbis.store.sensitivity import SensitiveNames, policy_and_names, sensitive_station_ids

__all__ = ["Census", "Estimates", "gather_census", "BLANK_LABELS"]

#: species labels that mean "nothing there" and never count as a species
BLANK_LABELS = frozenset({"blank", "empty", "none", "nothing", ""})

Progress = Callable[[str, int, int], None]

_STEPS = ("survey", "effort", "records", "catalogue", "closed models", "secr", "density")


@dataclass
class Estimates:
    """Population estimates of the main species, or why there are none.

    Attributes
    ----------
    species:
        The species the models were fitted to.
    n_animals, n_detections:
        Identified animals and their independent detections.
    closed, closed_table, closed_reason:
        Closed-model summaries (``ClosedFit.to_dict()`` by name), the AICc table
        (:func:`irbis.stats.closed.aicc_table`), or why none were fitted.
    occasion_days, n_occasions:
        Occasion length of the closed models.
    secr, secr_table, secr_reason:
        SECR fits (``SecrFit.to_dict()`` by detection function), the AICc table
        (:func:`irbis.stats.secr.model_table`), or why none were fitted.
    secr_best:
        Name of the AICc-best SECR model.
    mask:
        ``buffer``, ``spacing``, ``points`` and ``area_km2`` of the mask.
    capthist_summary:
        :meth:`CaptureHistory.summary` of the SECR histories.
    density_xy, density_per_100km2:
        Mask points and the expected density of activity centres there
        (animals per 100 km^2) under the best model (precise census only).
    trap_xy, trap_ids:
        The SECR traps (at cell centres in a public census of a sensitive species).
    density_cells:
        Public census of a sensitive species: the surface averaged over the
        location policy's cells, ``{"key", "outline", "mean"}`` per cell.
    """

    species: str | None = None
    n_animals: int = 0
    n_detections: int = 0
    closed: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed_table: list[dict[str, Any]] = field(default_factory=list)
    closed_reason: str = ""
    closed_note: str = ""
    occasion_days: int | None = None
    n_occasions: int = 0
    secr: dict[str, dict[str, Any]] = field(default_factory=dict)
    secr_table: list[dict[str, Any]] = field(default_factory=list)
    secr_reason: str = ""
    secr_best: str | None = None
    mask: dict[str, float] = field(default_factory=dict)
    capthist_summary: dict[str, Any] = field(default_factory=dict)
    density_xy: np.ndarray | None = None
    density_per_100km2: np.ndarray | None = None
    trap_xy: np.ndarray | None = None
    trap_ids: list[str] = field(default_factory=list)
    density_cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Census:
    """What a census report shows, as plain data (see :func:`gather_census`)."""

    project: str
    generated_utc: datetime
    public: bool
    policy: LocationPolicy
    gap_min: float
    summary: dict[str, Any]
    stations: list[dict[str, Any]]
    frame: MapFrame
    species_rai: list[dict[str, Any]]
    per_station: list[dict[str, Any]]
    species_list: list[str]
    main_species: str | None
    activity_hours: list[float]
    catalogue: list[dict[str, Any]]
    estimates: Estimates
    community: list[dict[str, Any]] = field(default_factory=list)
    community_occasion_days: int = 0
    methods: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: What is set aside as blank (:meth:`irbis.store.blanks.Blanks.as_dict`).
    blanks: dict[str, Any] = field(default_factory=dict)
    #: A seeded random sample of set-aside frames for a person to check:
    #: ``media_id, sequence_id, station, file, time, page, path``.
    spot_check: list[dict[str, Any]] = field(default_factory=list)
    spot_check_seed: int = DEFAULT_SEED
    #: How individuals were named and checked (:func:`_identification`).
    identification: dict[str, Any] = field(default_factory=dict)
    #: Scat samples, sign transects and snares per patrol effort
    #: (:func:`irbis.reports.threats.gather_field`); empty without field records.
    field_records: dict[str, Any] = field(default_factory=dict)

    def estimate_rows(self) -> list[dict[str, Any]]:
        """One row per fitted model: N or D with its CI, for tables and JSON."""
        est = self.estimates
        rows = []
        for name, f in est.closed.items():
            rows.append(
                {
                    "kind": "closed",
                    "model": name,
                    "estimate": f["N"],
                    "se": f["N_se"],
                    "lcl": f["N_lcl"],
                    "ucl": f["N_ucl"],
                    "unit": "animals",
                }
            )
        for name, f in est.secr.items():
            d = f["derived"]["D_per_100km2"]
            rows.append(
                {
                    "kind": "secr",
                    "model": name,
                    "estimate": d["estimate"],
                    "se": d["se"],
                    "lcl": d["lcl"],
                    "ucl": d["ucl"],
                    "unit": "per 100 km²",
                }
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready digest: summary, abundance, estimates (no pictures)."""
        return {
            "project": self.project,
            "public": self.public,
            "summary": self.summary,
            "main_species": self.main_species,
            "relative_abundance": self.species_rai,
            "individuals": [c["name"] for c in self.catalogue],
            "estimates": self.estimate_rows(),
            "closed_reason": self.estimates.closed_reason,
            "secr_reason": self.estimates.secr_reason,
            "secr_best": self.estimates.secr_best,
            "community": self.community,
            "field_records": self.field_records,
            "set_aside_as_blank": {
                **self.blanks,
                "spot_check_seed": self.spot_check_seed,
                "spot_check": [
                    {k: v for k, v in f.items() if k != "path"} for f in self.spot_check
                ],
            },
        }


# ---------------------------------------------------------------------------
# reading the project


def _live(q):
    """Observations a reviewer has not retracted."""
    return q.where(Observation.retracted_utc.is_(None))


def _station_rows(project: Project, names: SensitiveNames) -> list[dict[str, Any]]:
    """Every station with its media count and whether it is sensitive.

    Sensitive as the whole app decides it (:mod:`irbis.store.sensitivity`):
    a sensitive species under any of its names, or an identified animal of one.
    """
    with project.session() as s:
        sensitive_ids = sensitive_station_ids(s, names)
        stations = [
            {
                "sensitive": st.id in sensitive_ids,
                "name": st.name,
                "x": st.x,
                "y": st.y,
                "crs": st.crs,
                "lon": st.lon,
                "lat": st.lat,
                "elevation": st.elevation,
            }
            for st in s.scalars(select(Station).order_by(Station.name))
        ]
        media = dict(
            s.execute(
                select(Station.name, func.count(Media.id))
                .join(Deployment, Deployment.station_id == Station.id)
                .join(Media, Media.deployment_id == Deployment.id)
                .group_by(Station.name)
            ).all()
        )
    for row in stations:
        row["media"] = int(media.get(row["name"], 0))
    return stations


def _survey(project: Project) -> dict[str, Any]:
    with project.session() as s:
        n_st = s.scalar(select(func.count()).select_from(Station)) or 0
        n_dep = s.scalar(select(func.count()).select_from(Deployment)) or 0
        first, last = s.execute(
            select(func.min(Deployment.start_local), func.max(Deployment.end_local))
        ).one()
        n_media = s.scalar(select(func.count()).select_from(Media)) or 0
        n_video = s.scalar(select(func.count()).where(Media.mediatype == "video")) or 0
        untrusted = s.scalar(select(func.count()).where(Media.time_flag != "")) or 0
        detector = s.scalar(
            select(MediaDetection.detector)
            .group_by(MediaDetection.detector)
            .order_by(func.count().desc(), MediaDetection.detector)
            .limit(1)
        )
        verdicts: dict[str, int] = {}
        seq_verdicts: dict[str, int] = {}
        if detector is not None:
            verdicts = dict(
                s.execute(
                    select(MediaDetection.verdict, func.count())
                    .where(MediaDetection.detector == detector)
                    .group_by(MediaDetection.verdict)
                ).all()
            )
            seq_verdicts = dict(
                s.execute(
                    select(SequenceVerdict.verdict, func.count())
                    .where(SequenceVerdict.detector == detector)
                    .group_by(SequenceVerdict.verdict)
                ).all()
            )
        blanks = gather_blanks(s, detector)
    aside = blanks.as_dict()
    return {
        "stations": int(n_st),
        "deployments": int(n_dep),
        "first_day": first.date().isoformat() if first else None,
        "last_day": last.date().isoformat() if last else None,
        "media": int(n_media),
        "videos": int(n_video),
        "untrusted_times": int(untrusted),
        "detector": detector,
        "media_judged": int(sum(verdicts.values())),
        "person_media": int(verdicts.get("person", 0)),
        "sequences_judged": int(sum(seq_verdicts.values())),
        # Set aside as blank: no box in any frame of the burst, every frame
        # judged, and no person's box or label says otherwise (irbis.store.blanks).
        "set_aside_media": aside["frames"],
        "set_aside_sequences": aside["sequences"],
        "too_small_media": aside["too_small_frames"],
        "unjudged_media": aside["unjudged_frames"],
        "kept_by_review": aside["kept_by_review"],
        "min_judge_side": aside["min_judge_side"],
        "_blanks": blanks,
    }


def _media_path(project: Project, storage: str, stored_path: str) -> Path:
    return project.blob_dir / stored_path if storage == "copy" else Path(stored_path)


def _catalogue(project: Project) -> list[dict[str, Any]]:
    """Identified animals with their candidate flank photos (best first per side).

    Photos whose time is untrusted (``media.time_flag``) are only counted
    (``n_untrusted``): they give no date, station or photo until a person
    fixes their clock.
    """
    with project.session() as s:
        inds = {
            i.id: i
            for i in s.scalars(select(Individual).where(Individual.merged_into_id.is_(None)))
        }
        roots = load_merge_roots(s)
        by_name = {i.name: i.id for i in inds.values()}
        media_cols = (
            Media.id,
            Media.storage,
            Media.stored_path,
            Media.mediatype,
            Media.timestamp_local,
            Media.time_flag,
            Station.name,
        )
        ann = s.execute(
            select(
                Annotation.individual_id,
                Annotation.side,
                Annotation.quality,
                Annotation.x,
                Annotation.y,
                Annotation.width,
                Annotation.height,
                *media_cols,
            )
            .join(Media, Media.id == Annotation.media_id)
            .outerjoin(Deployment, Deployment.id == Media.deployment_id)
            .outerjoin(Station, Station.id == Deployment.station_id)
            .where(Annotation.individual_id.is_not(None))
        ).all()
        obs = s.execute(
            _live(
                select(
                    Observation.individual_id,
                    Observation.individual,
                    Observation.species,
                    Observation.side,
                    Observation.probability,
                    Observation.bbox_x,
                    Observation.bbox_y,
                    Observation.bbox_w,
                    Observation.bbox_h,
                    *media_cols,
                )
                .join(Media, Media.id == Observation.media_id)
                .outerjoin(Deployment, Deployment.id == Media.deployment_id)
                .outerjoin(Station, Station.id == Deployment.station_id)
                .where(names_individual())
            )
        ).all()

    entries: dict[str, dict[str, Any]] = {}

    def entry(ind_id: int | None, name: str | None, species: str | None) -> dict[str, Any]:
        # a merged animal's photos belong to the one it joined
        ind_id = roots.get(ind_id, ind_id) if ind_id is not None else None
        if ind_id is None and name in by_name:
            ind_id = by_name[name]
        if ind_id is not None and ind_id in inds:
            i = inds[ind_id]
            key, name, species, sex = i.name, i.name, i.species, i.sex
        else:
            key, sex = str(name), "unknown"
        return entries.setdefault(
            key,
            {
                "name": name,
                "species": species,
                "sex": sex,
                "media": set(),
                "stations": set(),
                "first": None,
                "last": None,
                "candidates": [],
                "untrusted": set(),
            },
        )

    def add(e: dict[str, Any], r: Any, side: str | None, quality: float | None, box) -> None:
        if r.time_flag:
            # A photo whose time is untrusted (a reset clock) gives no date and
            # no sighting until a person fixes its clock (`irbis clock`).
            e["untrusted"].add(r.id)
            return
        e["media"].add(r.id)
        if r.name:
            e["stations"].add(r.name)
        t = r.timestamp_local
        if t is not None:
            e["first"] = t if e["first"] is None else min(e["first"], t)
            e["last"] = t if e["last"] is None else max(e["last"], t)
        if r.mediatype != "image":
            return
        area = box[2] * box[3] if box and None not in box else 0.0
        e["candidates"].append(
            {
                "media_id": r.id,
                "path": _media_path(project, r.storage, r.stored_path),
                "side": (side or "unknown").lower(),
                "quality": quality,
                "box": box if box and None not in box else None,
                "station": r.name,
                "time": t.isoformat(sep=" ") if t else "",
                # a person's quality mark first, then the biggest (closest) animal
                "rank": (quality if quality is not None else -1.0, area),
            }
        )

    for ind_id in sorted(inds):  # every known animal is listed, photographed or not
        entry(ind_id, None, None)
    for r in ann:
        e = entry(r.individual_id, None, None)
        add(e, r, r.side, r.quality, (r.x, r.y, r.width, r.height))
    for r in obs:
        e = entry(r.individual_id, (r.individual or "").strip() or None, r.species)
        add(e, r, r.side, None, (r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h))
    out = []
    for e in sorted(entries.values(), key=lambda d: str(d["name"])):
        best: dict[str, dict[str, Any]] = {}
        for c in sorted(e["candidates"], key=lambda c: c["rank"], reverse=True):
            if c["path"].is_file() and c["side"] not in best:
                best[c["side"]] = c
        photos = [best[k] for k in ("left", "right", "unknown") if k in best]
        if "left" in best or "right" in best:
            photos = [p for p in photos if p["side"] != "unknown"]
        out.append(
            {
                "name": e["name"],
                "species": e["species"],
                "sex": e["sex"],
                "n_media": len(e["media"]),
                "stations": sorted(e["stations"]),
                "first": e["first"].date().isoformat() if e["first"] else "",
                "last": e["last"].date().isoformat() if e["last"] else "",
                "photos": photos,
                "n_untrusted": len(e["untrusted"] - e["media"]),
            }
        )
    return out


def _identification(project: Project) -> dict[str, Any]:
    """Who or what named the individuals: label sources, people's match decisions.

    ``labels``: photos (trusted time) whose current label names an individual,
    by the label's source (``folder``, ``xmp``, ``human``...); ``decisions``:
    people's decisions on the matcher's proposals (``same``, ``new``,
    ``different``, ``unsure``); ``reviewers``: people who decided; ``pending``:
    crops with proposals no person has decided on (not counted anywhere).
    """
    from irbis.store.schema import MatchDecision

    model = "model:irbis-reid"
    with project.session() as s:
        labels = dict(
            s.execute(
                _live(
                    select(Observation.source, func.count(func.distinct(Observation.media_id)))
                    .join(Media, Media.id == Observation.media_id)
                    .where(names_individual(), Media.time_flag == "")
                    .group_by(Observation.source)
                )
            ).all()
        )
        decisions = dict(
            s.execute(
                select(MatchDecision.decision, func.count())
                .where(MatchDecision.by != model, MatchDecision.decision != "proposed")
                .group_by(MatchDecision.decision)
            ).all()
        )
        reviewers = s.scalar(
            select(func.count(func.distinct(MatchDecision.by))).where(
                MatchDecision.by != model, MatchDecision.decision != "proposed"
            )
        )
        decided = select(MatchDecision.annotation_id).where(MatchDecision.by != model)
        pending = s.scalar(
            select(func.count(func.distinct(MatchDecision.annotation_id))).where(
                MatchDecision.by == model,
                MatchDecision.decision == "proposed",
                MatchDecision.annotation_id.not_in(decided),
            )
        )
    return {
        "labels": {str(k): int(v) for k, v in labels.items()},
        "decisions": {str(k): int(v) for k, v in decisions.items()},
        "reviewers": int(reviewers or 0),
        "pending": int(pending or 0),
    }


# ---------------------------------------------------------------------------
# estimates


def auto_occasion_days(n_days: int, target: int = 8) -> int:
    """Occasion length giving about ``target`` occasions over ``n_days`` days."""
    return max(1, int(round(n_days / target)))


def _fit_closed(project: Project, species: str, k: int, est: Estimates) -> None:
    from irbis.exchange.secr_text import project_capthist
    from irbis.stats.closed import aicc_table, closed_fit

    ch = project_capthist(project, occasion_days=k, detector="count", species=species)
    X = (ch.counts.sum(axis=2) > 0).astype(int)
    est.occasion_days, est.n_occasions = k, int(X.shape[1])
    caught = int(X.sum())
    if X.shape[1] < 2:
        est.closed_reason = (
            f"Closed models need at least two occasions; the survey gives {X.shape[1]} of {k} days."
        )
        return
    if X.shape[0] < 3 or caught <= X.shape[0]:
        est.closed_reason = (
            f"Closed models were not fitted: {X.shape[0]} identified animal(s) were caught "
            f"{caught} time(s) over {X.shape[1]} occasions of {k} days, and an estimate needs "
            "at least three animals and at least one recapture on a later occasion."
        )
        return
    fits = {}
    for m in ("M0", "Mt", "Mb", "Mh2", "Mh_chao"):
        try:
            fits[m] = closed_fit(X, m)
        except (IrbisError, ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue  # a model the data cannot carry is left out of the table
    est.closed = {m: f.to_dict() for m, f in fits.items()}
    # AICc is undefined when a model has n - 1 or more parameters: such a model
    # is shown with its estimate but cannot take part in the ranking.
    ranked = {m: f for m, f in fits.items() if f.loglik is not None and math.isfinite(f.aicc)}
    est.closed_table = aicc_table(ranked) if ranked else []
    unranked = [m for m, f in fits.items() if f.loglik is not None and m not in ranked]
    if unranked:
        est.closed_note = (
            f"AICc is undefined for {', '.join(unranked)} with only {X.shape[0]} animals "
            "(as many parameters as animals caught less one): shown without a rank."
        )


def _fit_secr(project: Project, species: str, detectfns: tuple[str, ...], est: Estimates) -> Any:
    from irbis.exchange.secr_text import project_capthist
    from irbis.stats import secr

    ch = project_capthist(project, occasion_days=None, detector="count", species=species)
    summ = ch.summary()
    est.capthist_summary = summ
    est.trap_xy, est.trap_ids = ch.traps.xy.copy(), list(ch.traps.ids)
    if ch.n < 3 or summ["recaptures"] < 1 or summ["animals_at_several_traps"] < 1:
        est.secr_reason = (
            f"SECR was not fitted: {ch.n} identified animal(s), {summ['recaptures']} "
            f"recapture(s), {summ['animals_at_several_traps']} animal(s) seen at more than one "
            "station; the spatial scale of movement (sigma) cannot be estimated without "
            "at least three animals and one detected at two or more stations."
        )
        return None
    # The mask buffer is chosen from sigma-hat of the first detection function
    # (secr's suggest.buffer rule, irbis.stats.secr.fit_with_buffer); every
    # function is then fitted on that one mask so that their AICc compare.
    fits = {}
    mask = None
    for fn in detectfns:
        try:
            if mask is None:
                f, mask, est.mask = secr.fit_with_buffer(ch, detectfn=fn)
            else:
                f = secr.fit(ch, mask, detectfn=fn)
        except (IrbisError, ValueError, np.linalg.LinAlgError):
            continue
        if f.converged and np.all(np.isfinite(f.beta_se)):
            fits[fn] = f
    if not fits:
        est.secr_reason = (
            "SECR models were fitted but none converged with finite standard errors; "
            "more recaptures are needed for a density estimate."
        )
        return None
    est.secr = {fn: f.to_dict() for fn, f in fits.items()}
    est.secr_table = secr.model_table(fits)
    est.secr_best = est.secr_table[0]["name"]
    return fits[est.secr_best]


def secr_mask_geometry(ch: Any, target_points: int = 2500) -> tuple[float, float]:
    """The first-guess mask buffer and spacing, before sigma is fitted.

    Four root pooled spatial variances (never less than two trap spacings)
    and a spacing giving about ``target_points`` points. The report's mask
    then takes its buffer from sigma-hat (:func:`irbis.stats.secr.fit_with_buffer`).
    """
    from irbis.stats import secr

    buffer = secr.initial_buffer(ch)
    return buffer, secr.mask_spacing(ch.traps, buffer, target_points)


def density_surface(fit: Any) -> np.ndarray:
    """Expected activity centres per hectare at each mask point.

    Detected animals contribute their posterior location given their
    histories (``Pr(history | x) D(x)`` normalised over the mask), undetected
    ones ``D(x) Pr(not detected | x)``: the surface sums (times the cell
    area) to the number detected plus the expected number missed, as secr's
    ``fxTotal``.

    Parameters
    ----------
    fit:
        A full-likelihood :class:`irbis.stats.secr.SecrFit`.

    Returns
    -------
    numpy.ndarray
        ``(M,)`` animals per hectare.
    """
    lik = fit.lik
    logpr, logq = lik.components(fit.beta)
    logd = lik.log_d(fit.beta)
    a = logpr + logd[None, :]
    a -= a.max(axis=1, keepdims=True)
    post = np.exp(a)
    post /= post.sum(axis=1, keepdims=True)
    return post.sum(axis=0) / lik.mask.cell_area + np.exp(logd) * np.exp(logq)


# ---------------------------------------------------------------------------
# the whole census


def _choose_species(records: list[dict], names: SensitiveNames, identified: Counter) -> str | None:
    counts = Counter(r["species"] for r in records)
    sensitive = [sp for sp in counts if names.matches(sp)]
    if sensitive:
        return max(sensitive, key=lambda sp: (identified[sp], counts[sp], sp))
    if identified:
        return identified.most_common(1)[0][0]
    return counts.most_common(1)[0][0] if counts else None


def gather_census(
    project: Project,
    *,
    public: bool = True,
    species: str | None = None,
    occasion_days: int | None = None,
    detectfns: tuple[str, ...] = ("HHN", "HEX"),
    progress: Progress | None = None,
    spot_check_n: int = 20,
    spot_check_seed: int = DEFAULT_SEED,
) -> Census:
    """Gather everything the census report shows from ``project``.

    Parameters
    ----------
    project:
        An open project.
    public:
        Generalise the stations of sensitive species (the project's
        :class:`LocationPolicy`); ``False`` for readers cleared for precise
        locations.
    species:
        The species to estimate (default: the sensitive species with most
        identified animals, else the most recorded one).
    occasion_days:
        Days per occasion of the closed models (default: about eight occasions).
    detectfns:
        SECR detection functions to fit and compare.
    progress:
        Called as ``progress(step, done, total)`` after each step.
    spot_check_n, spot_check_seed:
        Size and seed of the random sample of frames set aside as blank that
        the report lists for a person to check (the same seed, the same frames).

    Returns
    -------
    Census
    """
    from irbis.ingest.effort import project_effort
    from irbis.ingest.records import record_table

    total = len(_STEPS)

    def tick(i: int) -> None:
        if progress is not None:
            progress(_STEPS[i], i + 1, total)

    policy, names = policy_and_names(project)
    gap = float(project.settings.event_gap_min)

    survey = _survey(project)
    blanks = survey.pop("_blanks")
    spot_check = [
        {
            "media_id": f.media_id,
            "sequence_id": f.sequence_id,
            "station": f.station,
            "file": f.file_name,
            "time": f.time_local.isoformat(sep=" ") if f.time_local else "",
            "page": sequence_url(f.sequence_id, f.media_id),
            "path": _media_path(project, f.storage, f.stored_path),
        }
        for f in spot_check_sample(blanks, n=spot_check_n, seed=spot_check_seed)
    ]
    stations = _station_rows(project, names)
    tick(0)

    op = project_effort(project)
    nights = dict(zip(op.stations, (float(v) for v in op.trap_nights()), strict=True))
    total_nights = float(sum(nights.values()))
    survey["trap_nights"] = round(total_nights, 2)
    survey["days"] = len(op.days)
    tick(1)

    records = [
        r
        for r in record_table(project, min_delta_min=gap)
        if str(r["species"]).strip().lower() not in BLANK_LABELS
    ]
    by_station: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        by_station[r["station"]][r["species"]] += 1
    species_counts = Counter(r["species"] for r in records)
    species_list = sorted(species_counts)
    rai = [
        {
            "species": sp,
            "records": n,
            "stations": sum(1 for c in by_station.values() if c[sp]),
            "per_100": 100.0 * n / total_nights if total_nights > 0 else float("nan"),
            "sensitive": names.matches(sp),
        }
        for sp, n in sorted(species_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    survey["species"] = species_list
    survey["records"] = len(records)
    frame, placed = frame_for(stations)
    for st in stations:
        st["trap_nights"] = nights.get(st["name"], 0.0)
        st["records"] = dict(by_station.get(st["name"], {}))
        st["n_records"] = sum(st["records"].values())
        xy = placed.get(st["name"])
        st["px"], st["py"] = xy if xy else (None, None)
    _place_for_map(stations, frame, policy, public)
    per_station = [
        {
            "station": st["name"],
            "trap_nights": st["trap_nights"],
            "media": st["media"],
            "records": st["n_records"],
            "by_species": st["records"],
            "per_100": 100.0 * st["n_records"] / st["trap_nights"]
            if st["trap_nights"] > 0
            else float("nan"),
        }
        for st in stations
    ]
    tick(2)

    catalogue = _catalogue(project)
    identification = _identification(project)
    identified = Counter(c["species"] for c in catalogue if c["species"])
    main = species or _choose_species(records, names, identified)
    hours = []
    for r in records:
        if r["species"] == main:
            t = datetime.fromisoformat(r["time"])
            hours.append(t.hour + t.minute / 60 + t.second / 3600)
    tick(3)

    est = Estimates(species=main)
    if main is None:
        est.closed_reason = est.secr_reason = "No species was recorded, so nothing is estimated."
    else:
        main_cat = [c for c in catalogue if c["species"] in (main, None)]
        est.n_animals = len(main_cat)
        try:
            k = occasion_days or auto_occasion_days(len(op.days))
            _fit_closed(project, main, k, est)
        except BadInputError as exc:
            est.closed_reason = _no_animals(main, exc)
        tick(4)
        best = None
        try:
            best = _fit_secr(project, main, detectfns, est)
        except BadInputError as exc:
            est.secr_reason = _no_animals(main, exc)
        if est.capthist_summary:
            est.n_animals = est.capthist_summary["n"]
            est.n_detections = est.capthist_summary["detections"]
        tick(5)
        if best is not None:
            est.density_xy = best.lik.mask.xy.copy()
            est.density_per_100km2 = density_surface(best) * 1e4
    # A density map draws every trap and the mask around them: in a public
    # census it must not place the stations a sensitive species uses, whichever
    # species the estimates are for.
    if public and (names.matches(main) or any(st["sensitive"] for st in stations)):
        _generalise_estimates(est, frame, policy)
    tick(6)

    k_occ = occasion_days or auto_occasion_days(len(op.days))
    community = _community(records, op, main, k_occ)

    census = Census(
        project=project.settings.name or project.root.name,
        generated_utc=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
        public=public,
        policy=policy,
        gap_min=gap,
        summary=survey,
        stations=stations,
        frame=frame,
        species_rai=rai,
        per_station=per_station,
        species_list=species_list,
        main_species=main,
        activity_hours=hours,
        catalogue=catalogue,
        identification=identification,
        estimates=est,
        community=community,
        community_occasion_days=k_occ,
        blanks=blanks.as_dict(),
        spot_check=spot_check,
        spot_check_seed=spot_check_seed,
    )
    from irbis.reports.threats import gather_field

    census.field_records = gather_field(project, public=public, policy=policy)
    from irbis.reports.methods import write_methods

    census.methods, census.references = write_methods(census)
    return census


#: Fewest independent records of a species for occupancy and overlap to be shown.
MIN_COMMUNITY_RECORDS = 5


def _community(
    records: list[dict[str, Any]], op: Any, main: str | None, occasion_days: int
) -> list[dict[str, Any]]:
    """Occupancy of every species and its activity overlap with the main species.

    Stations are the sites, occasions are ``occasion_days`` long and an
    occasion on which the camera never worked is missing, not a zero.
    """
    from irbis.stats.activity import overlap
    from irbis.stats.occupancy import detection_histories, occupancy_fit

    row = {name: i for i, name in enumerate(op.stations)}
    col = {d: j for j, d in enumerate(op.days)}
    operating = np.nan_to_num(np.asarray(op.values, float), nan=0.0)
    by_species: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_species[r["species"]].append(r)

    def hours(rs: list[dict[str, Any]]) -> list[float]:
        out = []
        for r in rs:
            t = datetime.fromisoformat(r["time"])
            out.append(t.hour + t.minute / 60 + t.second / 3600)
        return out

    main_hours = hours(by_species.get(main, [])) if main else []
    rows = []
    for sp, rs in sorted(by_species.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        entry: dict[str, Any] = {
            "species": sp,
            "records": len(rs),
            "stations": len({r["station"] for r in rs}),
            "main": sp == main,
        }
        if len(rs) < MIN_COMMUNITY_RECORDS:
            entry["reason"] = f"fewer than {MIN_COMMUNITY_RECORDS} independent records"
            rows.append(entry)
            continue
        daily = np.zeros_like(operating)
        for r in rs:
            day = datetime.fromisoformat(r["time"]).date()
            if r["station"] in row and day in col:
                daily[row[r["station"]], col[day]] += 1
        try:
            fit = occupancy_fit(detection_histories(daily, operating, occasion_days))
            entry.update(
                naive=fit.naive,
                psi=fit.psi_mean,
                psi_ci=fit.psi_ci,
                p=fit.p_mean,
                p_ci=fit.p_ci,
                n_sites=fit.n_sites,
                n_occasions=fit.n_occasions,
            )
        except BadInputError as exc:
            entry["reason"] = exc.reason
        if main and sp != main and len(main_hours) >= MIN_COMMUNITY_RECORDS:
            ov = overlap(main_hours, hours(rs), n_boot=200)
            entry.update(overlap=ov.estimate, overlap_ci=ov.ci, overlap_estimator=ov.estimator)
        rows.append(entry)
    return rows


def _no_animals(species: str, exc: BadInputError) -> str:
    if "no identified animals" in exc.reason:
        return (
            f"No {species} has been identified individually yet, so no population "
            "estimate can be made (identify animals first: `irbis identify`)."
        )
    return f"No estimate: {exc}"


def _place_for_map(
    stations: list[dict[str, Any]], frame: MapFrame, policy: LocationPolicy, public: bool
) -> None:
    """Set ``map_x``/``map_y``: where the maps draw each station.

    In public mode a station where a sensitive species was recorded is drawn
    at the centre of its policy cell; everything else where it is.
    """
    for st in stations:
        st["map_x"], st["map_y"], st["generalised"] = st["px"], st["py"], False
    if not public:
        return
    for st in stations:
        if st["sensitive"] and st["px"] is None:
            # Not on the map (its coordinates are of the other kind than the
            # map's): then no coordinate of it is printed anywhere either.
            st["x"] = st["y"] = st["lon"] = st["lat"] = st["elevation"] = None
    todo = [st for st in stations if st["sensitive"] and st["px"] is not None]
    if not todo:
        return
    gx, gy = frame.generalise(
        np.array([st["px"] for st in todo]), np.array([st["py"] for st in todo]), policy
    )
    for st, a, b in zip(todo, gx, gy, strict=True):
        st["map_x"], st["map_y"], st["generalised"] = float(a), float(b), True
        # nothing finer than the cell stays in a public census, in any field
        st["x"], st["y"], st["px"], st["py"] = float(a), float(b), float(a), float(b)
        st["lon"] = st["lat"] = st["elevation"] = None


def _generalise_estimates(est: Estimates, frame: MapFrame, policy: LocationPolicy) -> None:
    """Public census of a sensitive species: traps at cell centres, density per cell.

    The mask of a trap-buffer is a union of circles around the stations, so
    even its outline gives them away; the surface is therefore averaged over
    the policy's cells and only cells (centre key, outline, mean) are kept.
    """
    if est.trap_xy is not None and len(est.trap_xy):
        gx, gy = frame.generalise(est.trap_xy[:, 0], est.trap_xy[:, 1], policy)
        est.trap_xy = np.column_stack([gx, gy])
    if est.density_xy is None or est.density_per_100km2 is None:
        return
    keys = frame.cell_keys(est.density_xy[:, 0], est.density_xy[:, 1], policy)
    sums: dict[tuple, list[float]] = defaultdict(list)
    for k, v in zip(keys, est.density_per_100km2, strict=True):
        sums[k].append(float(v))
    est.density_cells = [
        {"key": k, "outline": frame.cell_polygon(k, policy), "mean": float(np.mean(v))}
        for k, v in sorted(sums.items())
    ]
    est.density_xy = None
    est.density_per_100km2 = None
