"""SECR detection that varies by occasion, by an animal's own history and by latent class.

The detection submodels of R ``secr`` (Efford) that make detection differ
between occasions, between animals and between an animal's own occasions:

====  ====================================================================
term  what it is (a covariate of animal ``i``, occasion ``s``, trap ``k``)
====  ====================================================================
t     occasion as a factor (levels ``1..S``; coefficients ``.t2``, ``.t3``...)
T     linear trend over occasions: ``s - 1`` (0 on the first occasion)
b     learned response: TRUE on the occasions after the animal's first
      detection at any trap (``.bTRUE``)
B     transient response: TRUE when the animal was detected on the previous
      occasion
bk    trap-specific learned response: TRUE at trap ``k`` after the animal's
      first detection there
Bk    trap-specific transient response (previous occasion, this trap)
k     site learned response: TRUE at trap ``k`` after any animal's first
      detection there
K     site transient response: any animal at trap ``k`` on the previous occasion
h2    latent class of a two-class finite mixture (levels ``1``, ``2``;
      ``.h22``); ``h3`` three classes
====  ====================================================================

As in ``secr``, the probability that an animal is detected at all is that of
a *naive* animal (every response covariate FALSE), and only one kind of
behavioural response may appear in a model. A mixture adds the real
parameter ``pmix`` (``pmix.h22``; multinomial logit, class 1 the reference):
each animal's history is a mixture over classes, and the probability of
detection is the mixture of the classes' probabilities. ``hcov`` names each
animal's known class (e.g. sex; ``None`` where unknown): a known-class
animal contributes only its own class's term ``pmix_c Pr(history | class
c)``, which is secr's hybrid mixture.

The likelihood is evaluated per occasion x trap x animal x class with the
hazard of every combination, grouped into the few distinct *patterns* of
parameter values the design allows (an animal's first-capture occasion for
``b``, the class for ``h2``), so its cost grows with those patterns rather
than with animals. Its gradient is analytic. Models without these terms keep
the fast path of :class:`~irbis.stats.secr.SecrLikelihood`.

Examples
--------
>>> from irbis.stats import secr
>>> fit = secr.fit(ch, mask, "D~1 lambda0~b sigma~1")              # doctest: +SKIP
>>> fit = secr.fit(ch, mask, "D~1 lambda0~h2 sigma~h2 pmix~h2")   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from irbis.core.errors import BadInputError
from irbis.stats.detectfn import (
    LINKS,
    detect_params,
    dlink_dreal,
    dreal_deta,
    is_hazard,
    link_from,
    link_to,
    log_shape,
    shape_derivs,
    third_param,
    unlink,
)
from irbis.stats.formula import (
    NO_INTERCEPT,
    Design,
    parse_model,
    r_levels,
    rhs_text,
    term_variables,
    variables_of,
)
from irbis.stats.secr import (
    _LIKELIHOODS,
    SecrLikelihood,
    _Block,
    _check_distribution,
    _check_fixed,
    _check_links,
    _log_hazard_from_logg,
    binomial_n_adjustment,
    parameter_covariates,
    parameter_design,
)
from irbis.stats.secr_data import CaptureHistory, Mask

__all__ = [
    "MIXTURE_TERMS",
    "RESPONSE_TERMS",
    "SPECIAL_TERMS",
    "VaryingLikelihood",
    "make_likelihood",
    "mlogit_unlink",
    "needs_varying",
    "response_covariate",
]

#: behavioural-response terms (at most one kind per model, as in secr)
RESPONSE_TERMS = ("b", "B", "bk", "Bk", "k", "K")
#: latent-class terms
MIXTURE_TERMS = ("h2", "h3")
#: every term this module adds to the detection submodels
SPECIAL_TERMS = ("t", "T") + RESPONSE_TERMS + MIXTURE_TERMS


def _parse_all(model: str | Mapping[str, str] | None, detectfn: str) -> dict[str, list[str]]:
    return parse_model(model, ("D",) + detect_params(detectfn) + ("pmix",))


def needs_varying(model: str | Mapping[str, str] | None, detectfn: str = "HHN") -> bool:
    """Whether a model uses occasion, response or mixture terms (or ``pmix``).

    Parameters
    ----------
    model:
        Formulas, e.g. ``"D~1 lambda0~b sigma~1"``.
    detectfn:
        Detection function code.

    Returns
    -------
    bool
    """
    f = _parse_all(model, detectfn)
    return bool(f["pmix"]) or any(
        v in SPECIAL_TERMS for ts in f.values() for t in ts for v in term_variables(t)
    )


def make_likelihood(
    capthist: CaptureHistory,
    mask: Mask,
    model: str | Mapping[str, str] | None = None,
    detectfn: str = "HHN",
    likelihood: str = "full",
    **kwargs: Any,
) -> SecrLikelihood:
    """The likelihood object a model needs: the constant-detection fast path or this module's.

    Parameters
    ----------
    capthist, mask, model, detectfn, likelihood:
        As for :class:`~irbis.stats.secr.SecrLikelihood`.
    **kwargs:
        ``session_covariates``, ``levels``; ``hcov`` (only with mixtures).

    Returns
    -------
    SecrLikelihood
        A :class:`VaryingLikelihood` when the model has any of
        :data:`SPECIAL_TERMS` or a ``hcov``.
    """
    tvc = set(capthist.traps.timevaryingcov)
    uses_tvc = bool(tvc) and bool(tvc & set(variables_of(
        [t for p, ts in _parse_all(model, detectfn).items() if p not in ("D", "pmix") for t in ts]
    )))  # fmt: skip
    if needs_varying(model, detectfn) or uses_tvc or kwargs.get("hcov") is not None:
        if kwargs.get("chunk_points"):
            raise BadInputError(
                "model",
                "chunk_points is not available with occasion, response or mixture terms",
                "leave it out (these models hold the mask x traps arrays whole)",
            )
        kwargs.pop("chunk_points", None)
        return VaryingLikelihood(capthist, mask, model, detectfn, likelihood, **kwargs)
    return SecrLikelihood(capthist, mask, model, detectfn, likelihood, **kwargs)


def mlogit_unlink(eta: np.ndarray) -> np.ndarray:
    """Class proportions from the multinomial logits of classes ``2..C`` (class 1 reference).

    Parameters
    ----------
    eta:
        ``(C-1,)`` link-scale values.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` proportions summing to 1.
    """
    e = np.concatenate([[0.0], np.asarray(eta, dtype=float)])
    e = e - e.max()
    w = np.exp(e)
    return w / w.sum()


def response_covariate(counts: np.ndarray, term: str) -> np.ndarray:
    """A behavioural-response covariate (0/1) from capture histories, as secr defines it.

    Parameters
    ----------
    counts:
        ``(n, S, K)`` detections.
    term:
        One of :data:`RESPONSE_TERMS`.

    Returns
    -------
    numpy.ndarray
        ``(n, S, 1)`` for ``b``/``B``; ``(n, S, K)`` for ``bk``/``Bk``;
        ``(1, S, K)`` for ``k``/``K``.
    """
    det = np.asarray(counts) > 0
    if term in ("b", "B"):
        x = det.any(axis=2, keepdims=True)  # n x S x 1
    elif term in ("bk", "Bk"):
        x = det
    elif term in ("k", "K"):
        x = det.any(axis=0, keepdims=True)  # 1 x S x K
    else:
        raise BadInputError("model", f"{term!r} is not a response term", f"use {RESPONSE_TERMS}")
    out = np.zeros(x.shape, dtype=float)
    if term in ("b", "bk", "k"):  # any earlier occasion
        out[:, 1:, :] = np.cumsum(x, axis=1)[:, :-1, :] > 0
    else:  # the previous occasion
        out[:, 1:, :] = x[:, :-1, :]
    return out


def _shape_derivs(
    detectfn: str, S: np.ndarray, dist: np.ndarray | None, sigma: np.ndarray, z: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``d log f / d log sigma`` and ``d log f / d log z`` (or ``w``) of the distance part."""
    d2 = dist**2 if dist is not None else None
    if d2 is None:  # HN, HHN, CHN: derivatives from S alone
        return shape_derivs(detectfn, S, S, sigma, z)
    return shape_derivs(detectfn, S, d2, sigma, z, d=dist)


class VaryingLikelihood(SecrLikelihood):
    """SECR log-likelihood with occasion, behavioural-response and mixture terms.

    Parameters
    ----------
    capthist:
        Capture histories.
    mask:
        Habitat mask.
    model:
        Formulas, e.g. ``"D~1 lambda0~b + Topo sigma~h2 pmix~h2"``; detection
        parameters may use trap covariates and :data:`SPECIAL_TERMS`.
    detectfn:
        Detection function code.
    likelihood:
        ``"full"`` or ``"conditional"``.
    session_covariates:
        Values constant over this session that formulas may name.
    levels:
        Fixed factor levels by covariate name.
    hcov:
        Known class of each animal for a mixture (one value per animal, in
        order; ``None``, ``""`` or ``"NA"`` where unknown). Its first two
        (``h2``) or three (``h3``) levels in R's order are classes 1, 2(, 3),
        as secr's ``hcov``; values beyond them count as unknown. With
        ``hcov`` and no ``h2``/``h3`` term, the model is a two-class
        mixture that only estimates ``pmix``.

    Attributes
    ----------
    n_classes:
        Latent classes (1 without a mixture).
    class_levels:
        Names of the classes.
    """

    def __init__(
        self,
        capthist: CaptureHistory,
        mask: Mask,
        model: str | Mapping[str, str] | None = None,
        detectfn: str = "HHN",
        likelihood: str = "full",
        *,
        session_covariates: Mapping[str, Any] | None = None,
        levels: Mapping[str, Sequence[str]] | None = None,
        hcov: Sequence[Any] | None = None,
        fixed: Mapping[str, float] | None = None,
        link: Mapping[str, str] | None = None,
        smooths: Mapping[str, Mapping[str, Any]] | None = None,
        distribution: str = "poisson",
    ) -> None:
        likelihood = _LIKELIHOODS.get(str(likelihood).lower(), "")
        if not likelihood:
            raise BadInputError(
                "likelihood", "unknown likelihood", "use 'full' or 'conditional' ('CL')"
            )
        self.distribution = _check_distribution(distribution, likelihood)
        if self.distribution == "binomial" and hcov is not None:
            raise BadInputError(
                "distribution",
                "binomial N with known classes (hcov)",
                "use distribution='poisson' with hcov",
            )
        self.capthist = capthist
        self.mask = mask
        self.traps = capthist.traps
        self.detectfn = detectfn.upper()
        self.likelihood = likelihood
        dparams = detect_params(self.detectfn)
        formulas = _parse_all(model, self.detectfn)
        if likelihood == "conditional" and formulas["D"]:
            raise BadInputError(
                "model",
                "the conditional likelihood has no density submodel",
                "use likelihood='full' for D~covariates",
            )
        bad_d = [t for t in formulas["D"] if t in SPECIAL_TERMS]
        if bad_d:
            raise BadInputError(
                "model", f"D cannot depend on {bad_d[0]!r}", "use it in a detection submodel"
            )
        used = {t for p in dparams for t in formulas[p]}
        responses = sorted(used & set(RESPONSE_TERMS))
        if len(responses) > 1:
            raise BadInputError(
                "model",
                f"more than one kind of behavioural response ({', '.join(responses)})",
                "use one of b, B, bk, Bk, k, K (as secr)",
            )
        mix = sorted(used & set(MIXTURE_TERMS))
        if len(mix) > 1:
            raise BadInputError("model", "h2 and h3 together", "use one mixture")
        n_classes = int(mix[0][1]) if mix else (2 if hcov is not None else 1)
        if formulas["pmix"] and (n_classes == 1 or formulas["pmix"] != [f"h{n_classes}"]):
            raise BadInputError(
                "model",
                f"pmix~{'+'.join(formulas['pmix'])} is not supported",
                "pmix~h2 (or ~h3) with the same term in a detection submodel",
            )
        self.n_classes = n_classes
        self.hcov = None if hcov is None else list(hcov)
        if n_classes > 1:
            formulas["pmix"] = [f"h{n_classes}"]
        else:
            formulas.pop("pmix")
        for p in dparams:
            ts = formulas[p]
            if NO_INTERCEPT in ts:
                raise BadInputError(
                    "model",
                    f"{p}~{rhs_text(ts)}: -1 with occasion, response or mixture terms",
                    "keep the intercept",
                )
            for t in ts:
                vs = term_variables(t)
                special = sorted(set(vs) & set(SPECIAL_TERMS))
                if len(vs) > 1 and special:
                    raise BadInputError(
                        "model",
                        f"interaction {t!r} of {p} with secr's {special[0]!r} term",
                        "use the terms additively",
                    )
                inner = vs[0][5:].split(",")[0].strip() if vs[0].startswith("poly(") else ""
                if inner in SPECIAL_TERMS:
                    raise BadInputError("model", f"{t!r} of {p} is not supported", "use T")
        all_params = (
            (("D",) if likelihood == "full" else ())
            + dparams
            + (("pmix",) if n_classes > 1 else ())
        )
        self.fixed = _check_fixed(fixed, all_params, formulas)
        self.links = _check_links(link, all_params)
        self.chunk_points = None
        self.formulas = formulas
        self.params: tuple[str, ...] = tuple(p for p in all_params if p not in self.fixed)
        self.session_covariates = dict(session_covariates or {})
        self.levels = dict(levels) if levels else None
        self.smooths = dict(smooths) if smooths else None
        counts = capthist.counts
        n, S, K = counts.shape
        self.class_levels, self.known_class = self._classes(hcov, n)
        self._arrays: dict[str, list[np.ndarray]] = {}
        self.blocks: list[_Block] = []
        col = 0
        for p in dparams:
            if p in self.fixed:  # one constant column, its value set in _eta_full
                self._arrays[p] = [np.ones((1, 1, 1, 1))]
        for p in self.params:
            if p == "pmix":
                h = f"h{n_classes}"
                names = [f"pmix.{h}{lev}" for lev in self.class_levels[1:]]
                des = Design(np.zeros((K, n_classes - 1)), names)
                self.blocks.append(_Block(p, des, col, [h], {h: list(self.class_levels)}))
                col += n_classes - 1
                continue
            covs, n_rows, where = self._covariates(p)
            if p == "D":
                des, lv = parameter_design(
                    p, formulas[p], covs, n_rows, where, levels, (smooths or {}).get(p)
                )
                self.blocks.append(_Block(p, des, col, formulas[p], lv))
                col += des.matrix.shape[1]
                continue
            plain = [t for t in formulas[p] if t not in SPECIAL_TERMS]
            # time-varying trap covariates: one design per occasion, same columns
            tv_used = [v for v in variables_of(plain) if v in self.traps.timevaryingcov]
            per_occ: list[Design] = []
            lv_all = dict(levels or {})
            for v in tv_used:
                cols = self.traps.timevaryingcov[v]
                if len(cols) != S:
                    raise BadInputError(
                        "traps",
                        f"time-varying covariate {v!r} has {len(cols)} columns for {S} occasions",
                        "name one column per occasion",
                    )
                vals = [self.traps.covariates[c] for c in cols]
                if np.asarray(vals[0]).dtype.kind in "OUS" and v not in lv_all:
                    lv_all[v] = r_levels(np.concatenate([np.asarray(x, object) for x in vals]))
                covs[v] = vals[0]
            pdes, lv = parameter_design(
                p, plain, covs, n_rows, where, lv_all or None, (smooths or {}).get(p)
            )
            for s_ in range(S if tv_used else 0):
                cs = dict(covs)
                for v in tv_used:
                    cs[v] = self.traps.covariates[self.traps.timevaryingcov[v][s_]]
                per_occ.append(
                    parameter_design(
                        p, plain, cs, n_rows, where, lv_all or None, pdes.smooth or None
                    )[0]
                )
            names, mat, arrays = [p], [np.ones(K)], [np.ones((1, 1, 1, 1))]
            for t in formulas[p]:
                if t in SPECIAL_TERMS:
                    for suffix, arr in self._special(t, counts):
                        names.append(f"{p}.{t}{suffix}")
                        mat.append(np.zeros(K))
                        arrays.append(arr)
                    if t != "T":
                        lv[t] = self._special_levels(t, S)
                    continue
                varies = bool(set(variables_of([t])) & set(tv_used))
                for j, tj in enumerate(pdes.terms):
                    if tj == t:
                        names.append(pdes.names[j])
                        mat.append(pdes.matrix[:, j])
                        if varies:
                            occ = np.stack([d.matrix[:, j] for d in per_occ])  # S x K
                            arrays.append(occ.reshape(1, 1, S, K))
                        else:
                            arrays.append(pdes.matrix[:, j].reshape(1, 1, 1, K))
            self.blocks.append(_Block(p, Design(np.column_stack(mat), names), col, formulas[p], lv))
            self._arrays[p] = arrays
            col += len(names)
        self.names: list[str] = [nm for b in self.blocks for nm in b.design.names]
        self.npar = col
        self._prepare()
        self._prepare_varying()

    def level_detections(self) -> dict[int, tuple[str, str, str, int, int]]:
        """As :meth:`SecrLikelihood.level_detections`, without time-varying covariates.

        A level of a time-varying covariate is at different traps on each
        occasion, so the per-trap test does not apply to it.

        Returns
        -------
        dict
        """
        tv = set(self.traps.timevaryingcov)
        return {j: r for j, r in super().level_detections().items() if r[1] not in tv}

    # -- construction helpers ---------------------------------------------------

    def _covariates(self, p: str) -> tuple[dict[str, np.ndarray], int, str]:
        covs, n_rows, where = parameter_covariates(
            p, self.mask, self.traps, self.formulas.get(p, []), self.session_covariates
        )
        for t in SPECIAL_TERMS:
            if t in covs:
                raise BadInputError(
                    where,
                    f"covariate {t!r} has the name of secr's {t!r} term",
                    "rename the covariate",
                )
        return covs, n_rows, where

    def _classes(self, hcov: Sequence[Any] | None, n: int) -> tuple[list[str], np.ndarray]:
        """Class names and each animal's known class index (-1 unknown)."""
        C = self.n_classes
        known = np.full(n, -1, dtype=int)
        if hcov is None:
            return [str(c) for c in range(1, C + 1)], known
        vals = ["" if v is None else str(v).strip() for v in hcov]
        if len(vals) != n:
            raise BadInputError("hcov", f"{len(vals)} values for {n} animals", "one per animal")
        missing = {"", "NA", "NaN", "nan", "null", "None"}
        lv = r_levels([v for v in vals if v not in missing])
        if len(lv) < 2:
            raise BadInputError(
                "hcov", "the class covariate has fewer than two known levels", "give both classes"
            )
        lv = lv[:C]
        for i, v in enumerate(vals):
            if v in lv:
                known[i] = lv.index(v)
        return lv, known

    def _special_levels(self, t: str, S: int) -> list[str]:
        if t == "t":
            return [str(s) for s in range(1, S + 1)]
        if t in MIXTURE_TERMS:
            return list(self.class_levels)
        return ["FALSE", "TRUE"]

    def _special(self, t: str, counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Columns of a special term, each broadcastable to ``(C, n+1, S, K)``."""
        n, S, K = counts.shape
        if t == "t":
            if S < 2:
                raise BadInputError("model", "t needs two or more occasions", "drop t")
            return [
                (str(s + 1), (np.arange(S) == s).astype(float).reshape(1, 1, S, 1))
                for s in range(1, S)
            ]
        if t == "T":
            if S < 2:
                raise BadInputError("model", "T needs two or more occasions", "drop T")
            return [("", np.arange(S, dtype=float).reshape(1, 1, S, 1))]
        if t in MIXTURE_TERMS:
            C = self.n_classes
            return [
                (self.class_levels[c], (np.arange(C) == c).astype(float).reshape(C, 1, 1, 1))
                for c in range(1, C)
            ]
        r = response_covariate(counts, t)  # n x S x (1|K) or 1 x S x K
        full = np.zeros((1, n + 1, S, r.shape[2]))
        full[0, :n] = r  # the naive animal (last row) has never been detected
        return [("TRUE", full)]

    def _prepare_varying(self) -> None:
        counts = self.capthist.counts
        n, S, K = counts.shape
        C, Nr = self.n_classes, n + 1
        self.S, self.K, self.n_rows = S, K, Nr
        self.u = self.traps.usage_matrix(S).astype(float)  # K x S
        self.B_eff = float(self.B) if self.kind == "binomial" else 1.0
        dparams = list(self._arrays)  # fixed ones too (one constant column)
        shape = (C, Nr, S, K)

        def sig(params: Sequence[str]) -> np.ndarray:
            cols = [
                np.broadcast_to(a, shape).reshape(C * Nr * S, K)
                for p in params
                for a in self._arrays[p]
            ]
            return np.hstack(cols)

        # slices (c, i, s) with the same design rows share every parameter value
        _, pat = np.unique(sig(dparams), axis=0, return_inverse=True)
        pat = np.asarray(pat).ravel()
        sp = [p for p in dparams if p in ("sigma", "z", "w")]
        _, sgrp = np.unique(sig(sp), axis=0, return_inverse=True)
        sgrp = np.asarray(sgrp).ravel()
        self.n_patterns = int(pat.max()) + 1
        self.pat_slices = [np.flatnonzero(pat == q) for q in range(self.n_patterns)]
        self.pat_rep = np.array([sl[0] for sl in self.pat_slices])
        self.pat_group = sgrp[self.pat_rep]
        self.group_rep = np.array(
            [np.flatnonzero(sgrp == g)[0] for g in range(int(sgrp.max()) + 1)]
        )
        # detected cells, one row per class: (row c*Nr+i, slice, trap, count, usage)
        ii, ss, kk = np.nonzero(counts)
        cnt = counts[ii, ss, kk].astype(float)
        self.pat_cells: list[tuple[np.ndarray, ...]] = []
        rows_all = np.concatenate([c * Nr + ii for c in range(C)])
        slice_all = rows_all * S + np.tile(ss, C)
        k_all, c_all = np.tile(kk, C), np.tile(cnt, C)
        u_all = self.u[k_all, np.tile(ss, C)]
        keep = np.ones(len(rows_all), dtype=bool)
        cls = np.repeat(np.arange(C), len(ii))
        kc = self.known_class[np.tile(ii, C)]
        keep &= (kc < 0) | (kc == cls)
        # per pattern: detections summed by (row, trap), one matrix per usage value
        # for binomial counts (log p is not linear in the hazard), one for the others;
        # and the usage summed over the pattern's occasions of each row
        self.pat_counts: list[list[tuple[float, np.ndarray]]] = []
        self.pat_usage: list[np.ndarray] = []
        for q in range(self.n_patterns):
            sel = keep & (pat[slice_all] == q)
            cells = (rows_all[sel], slice_all[sel], k_all[sel], c_all[sel], u_all[sel])
            self.pat_cells.append(cells)
            r, _, k, cn, cu = cells
            ws = np.unique(cu) if self.kind == "binomial" else np.array([1.0])
            mats = []
            for w in ws:
                on = (cu == w) if self.kind == "binomial" else np.ones(len(r), dtype=bool)
                Nm = np.zeros((C * Nr, K))
                np.add.at(Nm, (r[on], k[on]), cn[on])
                mats.append((float(w), Nm))
            self.pat_counts.append(mats)
            sl = self.pat_slices[q]
            Ur = np.zeros((C * Nr, K))
            np.add.at(Ur, sl // S, self.u[:, sl % S].T)
            self.pat_usage.append(Ur)
        # hazard forms: lambda0 * f(d) is separable, so slices need grouping by
        # sigma (and z) only, whatever lambda0 does (b, bk, t... in any number)
        self._sep = is_hazard(self.detectfn)
        self.grp_slices, self.grp_agg, self.grp_cells = [], [], []
        for g in range(len(self.group_rep)):
            sl = np.flatnonzero(sgrp == g)
            self.grp_slices.append(sl)
            self.grp_agg.append(
                sparse.csr_matrix(
                    (np.ones(len(sl)), (sl // S, np.arange(len(sl)))), shape=(C * Nr, len(sl))
                )
            )
            sel = keep & (sgrp[slice_all] == g)
            r, sc, k, cn, cu = rows_all[sel], slice_all[sel], k_all[sel], c_all[sel], u_all[sel]
            Nm = np.zeros((C * Nr, K))
            np.add.at(Nm, (r, k), cn)
            agg = sparse.csr_matrix(
                (np.ones(len(r)), (r, np.arange(len(r)))), shape=(C * Nr, len(r))
            )
            self.grp_cells.append((r, sc, k, cn, cu, Nm, agg))
        caught = np.zeros((C, Nr, S), dtype=bool)
        caught[:, :n, :] = counts.sum(axis=2) > 0
        self.caught = caught.reshape(C * Nr, S)
        # log of the class proportion allowed for each animal: -inf off its known class
        allow = np.zeros((C, n))
        for i, c in enumerate(self.known_class):
            if c >= 0:
                allow[:, i] = -np.inf
                allow[c, i] = 0.0
        self.class_allow = allow

    # -- evaluation ----------------------------------------------------------------

    def _eta_user(self, p: str, beta: np.ndarray) -> np.ndarray:
        """Linear predictor of a detection parameter per cell, on its own link's scale."""
        b = next(blk for blk in self.blocks if blk.param == p)
        shape = (self.n_classes, self.n_rows, self.S, self.K)
        out = np.zeros(shape)
        for j, a in enumerate(self._arrays[p]):
            out = out + beta[b.start + j] * a
        return np.broadcast_to(out, shape)

    def _eta_full(self, p: str, beta: np.ndarray) -> np.ndarray:
        """Linear predictor per cell on the parameter's default link (fixed ones constant)."""
        shape = (self.n_classes, self.n_rows, self.S, self.K)
        if p in self.fixed:
            return np.full(shape, float(link_to(LINKS[p], self.fixed[p])))
        out = self._eta_user(p, beta)
        if p in self.links:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = link_to(LINKS[p], link_from(self.links[p], out))
        return out

    def _cell_chain(self, p: str, beta: np.ndarray) -> np.ndarray | None:
        """``d eta_default / d eta_user`` per cell for a parameter on a non-default link."""
        if p not in self.links:
            return None
        e = self._eta_user(p, beta)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return dlink_dreal(LINKS[p], link_from(self.links[p], e)) * dreal_deta(self.links[p], e)

    def log_pmix(self, beta: np.ndarray) -> np.ndarray:
        """Log class proportions ``(C,)`` (zeros without a mixture)."""
        if self.n_classes == 1:
            return np.zeros(1)
        b = next(blk for blk in self.blocks if blk.param == "pmix")
        return np.log(mlogit_unlink(np.asarray(beta, float)[b.start : b.stop]))

    def _core_separable(self, beta: np.ndarray, deriv: bool) -> dict[str, Any]:
        """:meth:`_core` for hazard detection functions: ``h = lambda0 * f(d; sigma, z)``."""
        third = third_param(self.detectfn)
        C, Nr, S, K = self.n_classes, self.n_rows, self.S, self.K
        M = self.mask.n_points
        eta = {p: self._eta_full(p, beta).reshape(C * Nr * S, K) for p in self._arrays}
        la = eta["lambda0"]
        lam = np.exp(la)
        multi = self.kind == "multi"
        Hsum = np.zeros((C * Nr * S, M)) if multi else None
        logpr = np.zeros((C * Nr, M))
        groups = []
        for g, rep in enumerate(self.group_rep):
            sigma = np.exp(eta["sigma"][rep])[None, :]
            z = np.exp(eta[third][rep])[None, :] if third else None
            Sg = log_shape(self.detectfn, self.d2, sigma, z, d=self.dist)
            dsig, dz = (
                _shape_derivs(self.detectfn, Sg, self.dist, sigma, z) if deriv else (None, None)
            )
            E = np.exp(Sg)
            sl = self.grp_slices[g]
            UL = self.u[:, sl % S].T * lam[sl]  # usage x lambda0 per slice and trap
            if multi:
                Hsum[sl] = (E @ UL.T).T
            else:
                logpr -= self.B_eff * ((self.grp_agg[g] @ UL) @ E.T)
            r, sc, k, cn, cu, Nm, agg = self.grp_cells[g]
            x = None
            if len(r):
                if self.kind == "binomial":
                    x = E[:, k] * (cu * lam[sc, k])[None, :]
                    logpr += agg @ (cn[None, :] * (np.log(-np.expm1(-x)) + x)).T
                else:
                    logpr += Nm @ Sg.T
                    logpr += np.bincount(r, cn * la[sc, k], minlength=C * Nr)[:, None]
            groups.append((E, dsig, dz, UL, x))
        H3 = None
        if multi:
            H3 = Hsum.reshape(C * Nr, S, M)
            with np.errstate(divide="ignore"):
                caught_term = np.log(-np.expm1(-H3)) - np.log(H3)
            logpr += np.where(self.caught[:, :, None], caught_term, -H3).sum(axis=1)
        return {"logpr": logpr, "H3": H3, "groups": groups, "eta": eta}

    def _gradient_separable(
        self, core: dict[str, Any], Wall: np.ndarray, Bc: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """d logL / d eta per slice and trap, for :meth:`_core_separable`."""
        third = third_param(self.detectfn)
        C, Nr, S, K = self.n_classes, self.n_rows, self.S, self.K
        G = {p: np.zeros((C * Nr * S, K)) for p in self._arrays}
        wsum = Wall.sum(axis=1)
        for g, (E, dsig, dz, UL, x) in enumerate(core["groups"]):
            sl = self.grp_slices[g]
            rows, s_of = sl // S, sl % S
            r, sc, k, cn, _, _, _ = self.grp_cells[g]
            dd = {"lambda0": None, "sigma": dsig}
            if third in G:
                dd[third] = dz
            wc = None
            if len(r) and x is not None:
                wc = Wall[r].T * (np.where(x < 1e-12, 1.0, x / np.expm1(x)) + x)
            for p, dP in dd.items():
                A = E if dP is None else E * dP
                if Bc is None:
                    G[p][sl] -= self.B_eff * UL * (Wall @ A)[rows]
                else:
                    G[p][sl] += UL * ((Wall[rows] * Bc[rows, s_of]) @ A)
                if not len(r):
                    continue
                if wc is not None:
                    vals = wc.sum(axis=0) if dP is None else (wc * dP[:, k]).sum(axis=0)
                else:
                    vals = wsum[r] if dP is None else (Wall @ dP)[r, k]
                np.add.at(G[p], (sc, k), cn * vals)
        return G

    def _core(self, beta: np.ndarray, deriv: bool) -> dict[str, Any]:
        """Per class and animal ``log Pr(history | m)`` (naive animal last) and helpers."""
        third = third_param(self.detectfn)
        if self._sep:
            return self._core_separable(beta, deriv)
        C, Nr, S, K = self.n_classes, self.n_rows, self.S, self.K
        M = self.mask.n_points
        hz = is_hazard(self.detectfn)
        first = "lambda0" if hz else "g0"
        eta = {p: self._eta_full(p, beta).reshape(C * Nr * S, K) for p in self._arrays}
        groups = []
        for rep in self.group_rep:
            sigma = np.exp(eta["sigma"][rep])[None, :]
            z = np.exp(eta[third][rep])[None, :] if third else None
            Sg = log_shape(self.detectfn, self.d2, sigma, z, d=self.dist)
            dsig, dz = (
                _shape_derivs(self.detectfn, Sg, self.dist, sigma, z) if deriv else (None, None)
            )
            groups.append((Sg, dsig, dz))
        # per-occasion hazard sums are needed only by multi-catch traps
        Hsum = np.zeros((C * Nr * S, M)) if self.kind == "multi" else None
        logpr = np.zeros((C * Nr, M))
        pats = []
        for q, rep in enumerate(self.pat_rep):
            Sg, dsig, dz = groups[self.pat_group[q]]
            e0 = eta[first][rep]
            if hz:
                LR = Sg + e0[None, :]
                psi = None
                d0 = None
            else:
                la0 = -np.logaddexp(0.0, -e0)  # log g0
                logg = Sg + la0[None, :]
                LR = _log_hazard_from_logg(logg)
                psi = d0 = None
                if deriv:
                    g = np.exp(np.minimum(logg, -1e-15))
                    psi = np.where(logg < -25.0, 1.0, g / ((1.0 - g) * np.exp(LR)))
                    d0 = psi * (1.0 / (1.0 + np.exp(e0)))[None, :]
                if self.detectfn == "CHN":
                    # z times the HN hazard where round(z) > 1 (secr); d log h / d log z
                    ez = eta["z"][rep]
                    on = np.round(np.exp(ez)) > 1
                    LR = LR + np.where(on, ez, 0.0)[None, :]
                    dz = np.broadcast_to(on.astype(float)[None, :], LR.shape)
            R = np.exp(LR)
            if Hsum is not None:
                sl = self.pat_slices[q]
                Hsum[sl] = (R @ self.u[:, sl % S]).T
            else:
                logpr -= self.B_eff * (self.pat_usage[q] @ R.T)
            for w, Nm in self.pat_counts[q]:
                if self.kind == "binomial":
                    x = w * R
                    logpr += Nm @ (np.log(-np.expm1(-x)) + x).T
                else:
                    logpr += Nm @ LR.T
            pats.append((LR, R, psi, d0, dsig, dz))
        H3 = None
        if Hsum is not None:
            H3 = Hsum.reshape(C * Nr, S, M)
            with np.errstate(divide="ignore"):
                caught_term = np.log(-np.expm1(-H3)) - np.log(H3)
            logpr += np.where(self.caught[:, :, None], caught_term, -H3).sum(axis=1)
        return {"logpr": logpr, "H3": H3, "pats": pats, "eta": eta}

    def _mixture(self, beta: np.ndarray, core: dict[str, Any]) -> dict[str, Any]:
        C, Nr, n = self.n_classes, self.n_rows, self.n
        lp = core["logpr"].reshape(C, Nr, -1)
        logpi = self.log_pmix(beta)
        logd = self.log_d(beta)
        Z = logpi[:, None, None] + lp[:, :n, :] + self.class_allow[:, :, None] + logd[None, None, :]
        Z = Z + self.const_i[None, :, None]
        mx = Z.max(axis=(0, 2))
        mx = np.where(np.isfinite(mx), mx, 0.0)
        ez = np.exp(Z - mx[None, :, None])
        tot = ez.sum(axis=(0, 2))
        lse = mx + np.log(tot)
        logq = lp[:, n, :]  # C x M
        pd = -np.expm1(logq)
        pi = np.exp(logpi)
        pmix = pi @ pd  # M
        return {"Z": Z, "ez": ez, "tot": tot, "lse": lse, "logq": logq, "pd": pd, "pi": pi,
                "pmix": pmix, "logd": logd}  # fmt: skip

    def components(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-animal log-probabilities of their histories and ``log Pr(not detected)``.

        Summed over latent classes with their proportions (an animal of known
        class only over its own); the probability of no detection is that of a
        naive animal.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        logpr:
            ``(n, M)``.
        logq:
            ``(M,)``.
        """
        beta = np.asarray(beta, dtype=float)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            core = self._core(beta, False)
            C, Nr, n = self.n_classes, self.n_rows, self.n
            lp = core["logpr"].reshape(C, Nr, -1)
            logpi = self.log_pmix(beta)
            Z = logpi[:, None, None] + lp[:, :n, :] + self.class_allow[:, :, None]
            mx = Z.max(axis=0)
            logpr = mx + np.log(np.exp(Z - mx[None]).sum(axis=0)) + self.const_i[:, None]
            pd = np.exp(logpi) @ -np.expm1(lp[:, n, :])
            return logpr, np.log1p(-pd)

    def _evaluate(self, beta: np.ndarray, grad: bool) -> tuple[float, np.ndarray | None]:
        beta = np.asarray(beta, dtype=float)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            core = self._core(beta, grad)
            mx = self._mixture(beta, core)
            n = self.n
            mx["c_lam"], mx["d_n"] = 1.0, 0.0
            if self.likelihood == "full":
                Dm = np.exp(mx["logd"])
                lam = self.area * float(Dm @ mx["pmix"])
                ll = -lam + mx["lse"].sum() + n * math.log(self.area)
                if self.distribution == "binomial":
                    delta, d_lam, d_n = binomial_n_adjustment(n, self.area * float(Dm.sum()), lam)
                    ll += delta
                    mx["c_lam"], mx["d_n"] = 1.0 - d_lam, d_n
            else:
                P = float(mx["pmix"].sum())
                ll = mx["lse"].sum() - n * math.log(P)
            ll += self.log_multinomial
            if not np.isfinite(ll):
                return -np.inf, (np.full(self.npar, np.nan) if grad else None)
            if not grad:
                return float(ll), None
            return float(ll), self._gradient(beta, core, mx)

    def _gradient(self, beta: np.ndarray, core: dict[str, Any], mx: dict[str, Any]) -> np.ndarray:
        third = third_param(self.detectfn)
        C, Nr, S, K, n = self.n_classes, self.n_rows, self.S, self.K, self.n
        M = self.mask.n_points
        W = mx["ez"] / mx["tot"][None, :, None]  # C x n x M posterior weights
        q = np.exp(mx["logq"])  # C x M
        pi = mx["pi"]
        c_lam = mx.get("c_lam", 1.0)
        if self.likelihood == "full":
            Dm = np.exp(mx["logd"])
            Wq = c_lam * self.area * Dm[None, :] * pi[:, None] * q
        else:
            P = float(mx["pmix"].sum())
            Wq = n * pi[:, None] * q / P
        Wall = np.concatenate([W, Wq[:, None, :]], axis=1).reshape(C * Nr, M)
        H3 = core["H3"]
        if self.kind == "multi":
            Hs = np.where(H3 > 0, H3, 1.0)
            kappa = np.where(Hs < 1e-6, -0.5 + Hs / 12.0, 1.0 / np.expm1(Hs) - 1.0 / Hs)
            kappa = np.where(H3 > 0, kappa, -0.5)
            Bc = np.where(self.caught[:, :, None], kappa, -1.0)  # C*Nr x S x M
        else:
            Bc = None
        hz = is_hazard(self.detectfn)
        first = "lambda0" if hz else "g0"
        G = {p: np.zeros((C * Nr * S, K)) for p in self._arrays}
        if self._sep:
            G = self._gradient_separable(core, Wall, Bc)
        for q_, (_, R, psi, d0, dsig, dz) in enumerate(core.get("pats", [])):
            sl = self.pat_slices[q_]
            rows, s_of = sl // S, sl % S
            dd = {first: None if hz else d0, "sigma": dsig if hz else psi * dsig}
            if third in G:
                dd[third] = dz if (hz or self.detectfn == "CHN") else psi * dz
            cr, cs, ck, cn, cu = self.pat_cells[q_]
            # d logpr / d log h at the detections: count (Poisson, multi) or
            # count * (phi(x) + x) with x = u h (binomial), by usage value
            coefs = []
            if len(cr):
                if self.kind == "binomial":
                    for w, _ in self.pat_counts[q_]:
                        x = w * R
                        coefs.append((cu == w, np.where(x < 1e-12, 1.0, x / np.expm1(x)) + x))
                else:
                    coefs.append((np.ones(len(cr), dtype=bool), None))
            for p, dP in dd.items():
                A = R if dP is None else R * dP
                if Bc is None:  # the hazard sum enters linearly: per row, then per slice
                    T = Wall @ A
                    G[p][sl] -= self.B_eff * self.u[:, s_of].T * T[rows]
                else:
                    V = Wall[rows] * Bc[rows, s_of]
                    G[p][sl] += self.u[:, s_of].T * (V @ A)
                for on, cf in coefs:
                    B2 = (
                        (np.ones_like(R) if dP is None else dP)
                        if cf is None
                        else (cf if dP is None else cf * dP)
                    )
                    T2 = Wall @ B2
                    np.add.at(G[p], (cs[on], ck[on]), cn[on] * T2[cr[on], ck[on]])
        out = np.zeros(self.npar)
        for b in self.blocks:
            if b.param == "D":
                g_logd = W.sum(axis=(0, 1))
                if self.likelihood == "full":
                    g_logd = g_logd - c_lam * self.area * Dm * mx["pmix"]
                    g_logd = g_logd + mx.get("d_n", 0.0) * self.area * Dm
                chain = self._chain(b, beta)
                if chain is not None:
                    g_logd = g_logd * chain
                out[b.start : b.stop] = b.design.matrix.T @ g_logd
            elif b.param == "pmix":
                rho = W.sum(axis=2)  # C x n
                g = (rho - pi[:, None]).sum(axis=1)
                dpd = pi * (
                    (mx["pd"] - mx["pmix"][None, :])
                    @ (Dm if self.likelihood == "full" else np.ones(M))
                )
                g = g - (c_lam * self.area * dpd if self.likelihood == "full" else n * dpd / P)
                out[b.start : b.stop] = g[1:]
            else:
                Gp = G[b.param].reshape(C, Nr, S, K)
                chain = self._cell_chain(b.param, beta)
                if chain is not None:
                    Gp = Gp * chain
                for j, a in enumerate(self._arrays[b.param]):
                    out[b.start + j] = float((Gp * a).sum())
        return out

    def pdot(self, beta: np.ndarray) -> np.ndarray:
        """Probability that a naive animal is detected at least once, per mask point.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        numpy.ndarray
            ``(M,)``, mixed over latent classes.
        """
        return -np.expm1(self.components(beta)[1])

    def real_arrays(self, beta: np.ndarray) -> dict[str, np.ndarray]:
        """Real parameter values per row at the reference level of every special term.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        dict
            As :meth:`SecrLikelihood.real_arrays` (without ``pmix``).
        """
        beta = np.asarray(beta, float)
        out = {}
        for p, e in self._etas(beta).items():
            if p != "pmix":
                out[p] = unlink(p, e)
        return out

    def start_values(self) -> np.ndarray:
        """Starting coefficients: the constant model's start, special terms at 0.

        A mixture starts with class 2 less detectable (``lambda0``/``g0``
        coefficient of ``h2`` at -1) and equal proportions, so the classes
        are told apart from the first step.

        Returns
        -------
        numpy.ndarray
        """
        tvc = set(self.traps.timevaryingcov)
        trap_only = {
            p: "~"
            + rhs_text(
                [
                    t
                    for t in self.formulas[p]
                    if t not in SPECIAL_TERMS and not set(variables_of([t])) & tvc
                ]
            )
            for p in self.params
            if p not in ("D", "pmix")
        }
        if self.formulas["D"]:
            trap_only["D"] = "~" + rhs_text(self.formulas["D"])
        base = SecrLikelihood(
            self.capthist,
            self.mask,
            trap_only,
            self.detectfn,
            self.likelihood,
            session_covariates=self.session_covariates or None,
            levels=self.levels,
            smooths=self.smooths,
            fixed=self.fixed or None,
            link=self.links or None,
        )
        b0 = dict(zip(base.names, base.start_values(), strict=True))
        start = np.array([b0.get(nm, 0.0) for nm in self.names])
        if self.n_classes > 1:
            h = f"h{self.n_classes}"
            for b in self.blocks:
                if b.param in ("lambda0", "g0") and h in b.terms:
                    # on an identity link: a class with a third of the detection
                    down = -1.0 if b.param not in self.links else -0.6 * start[b.start]
                    for lev in self.class_levels[1:]:
                        start[b.start + b.design.names.index(f"{b.param}.{h}{lev}")] = down
        return start
