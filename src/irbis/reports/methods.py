"""The methods paragraph of a census report, written from what was actually done.

Every sentence depends on the census: models that were not fitted are not
cited, and the numbers (independence interval, occasion length, mask) are the
ones used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from irbis.reports.census import Census

REFS = {
    "camtrapr": "Niedballa, J., Sollmann, R., Courtiol, A. & Wilting, A. (2016). camtrapR: "
    "an R package for efficient camera trap data management. Methods in Ecology and "
    "Evolution 7, 1457–1462.",
    "otis": "Otis, D.L., Burnham, K.P., White, G.C. & Anderson, D.R. (1978). Statistical "
    "inference from capture data on closed animal populations. Wildlife Monographs 62.",
    "pledger": "Pledger, S. (2000). Unified maximum likelihood estimates for closed "
    "capture–recapture models using mixtures. Biometrics 56, 434–442.",
    "chao": "Chao, A. (1987). Estimating the population size for capture–recapture data "
    "with unequal catchability. Biometrics 43, 783–791.",
    "burnham": "Burnham, K.P. & Anderson, D.R. (2002). Model Selection and Multimodel "
    "Inference, 2nd ed. Springer.",
    "efford": "Efford, M. (2004). Density estimation in live-trapping studies. Oikos 106, 598–610.",
    "borchers": "Borchers, D.L. & Efford, M.G. (2008). Spatially explicit maximum "
    "likelihood methods for capture–recapture studies. Biometrics 64, 377–385.",
    "ridout": "Ridout, M.S. & Linkie, M. (2009). Estimating overlap of daily activity "
    "patterns from camera trap data. Journal of Agricultural, Biological and "
    "Environmental Statistics 14, 322–337.",
    "mackenzie": "MacKenzie, D.I., Nichols, J.D., Lachman, G.B., Droege, S., Royle, J.A. & "
    "Langtimm, C.A. (2002). Estimating site occupancy rates when detection probabilities "
    "are less than one. Ecology 83, 2248–2255.",
    "taylor": "Taylor, C.C. (2008). Automatic bandwidth selection for circular density "
    "estimation. Computational Statistics & Data Analysis 52, 3493–3500.",
}

_FN_NAMES = {
    "HHN": "hazard half-normal",
    "HEX": "hazard exponential",
    "HHR": "hazard hazard-rate",
    "HN": "half-normal",
    "EX": "exponential",
    "HR": "hazard-rate",
}


def write_methods(census: Census) -> tuple[list[str], list[str]]:
    """Methods paragraphs and the references they cite.

    Parameters
    ----------
    census:
        A gathered census (its estimates decide what is cited).

    Returns
    -------
    tuple
        ``(paragraphs, references)``.
    """
    used = ["camtrapr"]
    s = census.summary
    est = census.estimates
    paras = [
        f"Camera effort was computed per station and calendar day from the deployments' "
        f"set-up and retrieval times, with recorded malfunction periods removed (a day "
        f"partly covered counts as the fraction covered), as camtrapR's cameraOperation "
        f"does (Niedballa et al. 2016): {s['trap_nights']:g} trap-nights in total. "
        f"Photographs of one species at one station count as independent records when "
        f"they are more than {census.gap_min:g} minutes after the previous photograph of "
        f"that species there; the relative abundance index is independent records per "
        f"100 trap-nights. Only photographs with a trusted time are counted."
    ]
    if s.get("detector"):
        text = (
            f"Blank photographs (wind, snow, moving vegetation) were set aside by the "
            f"automatic detector {s['detector']}: {s['set_aside_media']} of "
            f"{s['media_judged']} photographs ({s['set_aside_sequences']} bursts). A burst "
            f"is set aside only when no frame of it has a box at the detector's operating "
            f"point and no reviewer drew a box, marked an animal or labelled it; set-aside "
            f"photographs are kept, and a seeded random sample of them is listed for a "
            f"person to check."
        )
        if s.get("too_small_media"):
            text += (
                f" {s['too_small_media']} photographs were too small for the detector to "
                f"judge (longer side under {s['min_judge_side']} pixels) and were not set aside."
            )
        paras.append(text)
    ident = _identification_text(census)
    if ident:
        paras.append(ident)
    if est.closed:
        names = [m for m in est.closed if m != "Mh_chao"]
        used += ["otis", "burnham"]
        text = f"Closed-population capture–recapture models ({', '.join(names)}; Otis et al. 1978"
        if "Mh2" in est.closed:
            used.append("pledger")
            text += "; Mh as the two-point mixture of Pledger 2000"
        text += (
            f") were fitted by maximum likelihood to the 0/1 capture histories of the "
            f"{est.n_animals} identified {est.species} over {est.n_occasions} occasions of "
            f"{est.occasion_days} days and ranked by AICc (Burnham & Anderson 2002)."
        )
        if "Mh_chao" in est.closed:
            used.append("chao")
            text += (
                " Chao's (1987) heterogeneity estimator is given alongside; confidence "
                "intervals of N are log-normal (Chao 1987)."
            )
        paras.append(text)
    if est.secr:
        used += ["efford", "borchers"]
        if "burnham" not in used:
            used.append("burnham")
        fns = ", ".join(f"{_FN_NAMES.get(fn, fn)} ({fn})" for fn in est.secr)
        m = est.mask
        paras.append(
            f"Density was estimated by spatially explicit capture–recapture (Efford 2004; "
            f"Borchers & Efford 2008) with the full likelihood, treating each station as a "
            f"count detector (Poisson number of independent detections per animal) over "
            f"one occasion whose usage is the station's operating camera-days. Detection "
            f"functions compared by AICc: {fns}; the best, {est.secr_best}, gives the "
            f"density map (expected activity centres: detected animals located by their "
            f"histories plus the expected undetected ones). The habitat mask holds "
            f"{m['points']} points at {m['spacing']:g} m spacing within {m['buffer']:g} m "
            f"of a station ({m['area_km2']:.0f} km²)"
            + _buffer_text(m)
            + ". Densities are per 100 km²; confidence intervals are log-normal."
        )
    if len(census.activity_hours) >= 2:
        used += ["ridout", "taylor"]
        paras.append(
            f"The activity pattern of {census.main_species} is the circular kernel density "
            f"of the local times of its {len(census.activity_hours)} independent records "
            f"(von Mises kernel; Ridout & Linkie 2009) with the bandwidth of Taylor (2008)."
        )
    fitted = [r for r in census.community if "psi" in r]
    if fitted:
        used.append("mackenzie")
        paras.append(
            f"Occupancy of {len(fitted)} species was estimated with the single-season model "
            f"of MacKenzie et al. (2002) (constant ψ and p, maximum likelihood, logit-scale "
            f"95% intervals), treating stations as sites and "
            f"{census.community_occasion_days}-day periods as occasions."
        )
    overlaps = [r for r in census.community if "overlap" in r]
    if overlaps:
        used += ["ridout", "taylor"]
        paras.append(
            f"Overlap of daily activity with {census.main_species} was estimated for "
            f"{len(overlaps)} species with the coefficient of overlap of Ridout & Linkie (2009) "
            f"(Δ1 below 50 records of either species, Δ4 otherwise) on von Mises kernel "
            f"densities, with 95% intervals from 200 bootstrap resamples of the records."
        )
    if census.public:
        p = census.policy
        paras.append(
            f"This is the public edition: stations where a sensitive species "
            f"({', '.join(p.sensitive_species)}) was recorded are shown at the centre of "
            f"their {p.precision_deg:g}° grid cell, and density surfaces of a sensitive "
            f"species are averaged over those cells."
        )
    refs = [REFS[k] for k in dict.fromkeys(used)]
    return paras, refs


_SOURCE_WORDS = {
    "folder": "the team's sorting of photographs into folders by individual",
    "xmp": "individual tags written into the photographs (XMP) by the team",
    "human": "reviewers' labels in the irbis review app",
}


def _identification_text(census: Census) -> str:
    """How the individuals were identified and checked, from what the project records."""
    ident = census.identification or {}
    labels, decisions = ident.get("labels") or {}, ident.get("decisions") or {}
    if not census.catalogue and not labels and not decisions:
        return ""
    parts = []
    for src, n in sorted(labels.items(), key=lambda kv: -kv[1]):
        words = _SOURCE_WORDS.get(src, f"imported labels ({src})")
        parts.append(f"{n} photograph(s) from {words}")
    text = (
        "Individual snow leopards were identified by their coat patterns (rosettes), each "
        "flank separately. "
    )
    if parts:
        text += "Names came from " + "; ".join(parts) + ". "
    if decisions:
        said = ", ".join(
            f"{decisions[k]} {w}"
            for k, w in (
                ("same", "confirmed as a known individual"),
                ("new", "made a new individual"),
                ("different", "rejected"),
                ("unsure", "left unsure"),
            )
            if decisions.get(k)
        )
        text += (
            "irbis proposed matches for the other photographs against the confirmed "
            "catalogue (RootSIFT keypoints, LNBNN scoring, RANSAC geometric check, the "
            "frames of a burst voting together), and a person decided every one: "
            f"{said}, by {ident.get('reviewers', 0)} reviewer(s). "
        )
    pending = ident.get("pending", 0)
    if pending:
        text += (
            f"{pending} crop(s) with machine proposals no person has decided on are not "
            "counted. "
        )
    text += (
        "No identification is taken from the machine alone, and only photographs with a "
        "trusted time enter capture histories."
    )
    return text


def _buffer_text(m: dict) -> str:
    if m.get("rule") != "suggest.buffer" or not m.get("buffer_sigmas"):
        return ""
    text = (
        f"; the buffer, {m['buffer_sigmas']:.1f} times the fitted σ̂ of {m['sigma']:.0f} m, "
        f"is the narrowest at which cutting the mask biases density by at most "
        f"{100 * m['rb_target']:g} % (the rule of secr's suggest.buffer, with the fitted "
        f"detection model)"
    )
    if m.get("relative_bias") is not None:
        text += f"; the estimated truncation bias is {100 * m['relative_bias']:.2f} %"
    return text
