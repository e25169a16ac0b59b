"""Detection varying by occasion, behaviour and latent class (secr's t T b B bk Bk k K h2 hcov).

Each model's log-likelihood is checked against an independent one written
here term by term: the real parameters of every animal x occasion x trap x
class are computed from the coefficients as secr defines the terms (``b``:
TRUE after the animal's first detection at any trap; ``bk``: after its
first detection at that trap; ``k``: after any animal's first detection at
that trap; ``B``/``Bk``/``K`` the previous occasion only; ``T = s - 1``;
``h2``: class 2 with proportion ``pmix`` on the multinomial-logit scale;
undetected animals naive), and the likelihood is summed by numeric
integration over the mask points with loops over animals, classes,
occasions and traps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

from irbis.stats import secr
from irbis.stats.secr_data import CaptureHistory, Mask, Traps
from irbis.stats.secr_varying import VaryingLikelihood, make_likelihood, response_covariate

S_OCC = 4


def _layout() -> tuple[Traps, Mask]:
    rng = np.random.default_rng(3)
    xy = np.array([(x * 1000.0, y * 1000.0) for x in range(4) for y in range(3)])
    usage = rng.choice([0.0, 1.0, 2.0], size=(12, S_OCC), p=[0.1, 0.6, 0.3])
    usage[:, 0] = 1.0
    traps = Traps(
        [f"T{i}" for i in range(12)], xy, usage, {"hab": np.array(["a", "b"] * 6, dtype=object)}
    )
    g = np.arange(-3000.0, 6001.0, 500.0)  # a fine integration grid around the traps
    X, Y = np.meshgrid(g, g)
    return traps, Mask(np.column_stack([X.ravel(), Y.ravel()]), 500.0)


def _histories(traps: Traps, detector: str, B: int = 0, seed: int = 5) -> CaptureHistory:
    rng = np.random.default_rng(seed)
    n, K = 9, traps.n_traps
    counts = np.zeros((n, S_OCC, K), int)
    for i in range(n):
        for s in range(S_OCC):
            ok = np.flatnonzero(traps.usage[:, s] > 0)
            if detector == "multi":
                if rng.random() < 0.6:
                    counts[i, s, rng.choice(ok)] = 1
                continue
            for k in rng.choice(ok, 2):
                if rng.random() < 0.6:
                    top = 2 if detector == "proximity" else (3 if B == 0 else B + 1)
                    counts[i, s, k] = rng.integers(1, top)
        if counts[i].sum() == 0:
            counts[i, 0, 0] = 1
    return CaptureHistory([f"A{i}" for i in range(n)], counts, traps, detector, B)


# ---------------------------------------------------------------------------
# the independent likelihood


def _plain_responses(counts: np.ndarray) -> dict[str, Callable[[int | None, int, int], float]]:
    """secr's response covariates, written out with loops (animal None = never detected)."""
    n, S, K = counts.shape

    def b(i, s, k):
        return float(i is not None and any(counts[i, r].sum() > 0 for r in range(s)))

    def B(i, s, k):
        return float(i is not None and s > 0 and counts[i, s - 1].sum() > 0)

    def bk(i, s, k):
        return float(i is not None and any(counts[i, r, k] > 0 for r in range(s)))

    def Bk(i, s, k):
        return float(i is not None and s > 0 and counts[i, s - 1, k] > 0)

    def k_(i, s, k):
        return float(i is not None and any(counts[:, r, k].sum() > 0 for r in range(s)))

    def K_(i, s, k):
        return float(i is not None and s > 0 and counts[:, s - 1, k].sum() > 0)

    return {"b": b, "B": B, "bk": bk, "Bk": Bk, "k": k_, "K": K_}


def brute_loglik(
    ch: CaptureHistory,
    mask: Mask,
    detectfn: str,
    likelihood: str,
    real: Callable[[int, int | None, int, int], tuple[float, float]],
    logD: float = 0.0,
    pmix: list[float] | None = None,
    known: list[int] | None = None,
) -> float:
    """SECR log-likelihood by loops: ``real(c, i, s, k) -> (lambda0 or g0, sigma)``.

    Full: ``-a D sum_m pdot(m) + sum_i log sum_m a D sum_c pmix_c Pr(w_i | m, c)
    - sum_w log n_w!``; conditional: ``sum_i log sum_m sum_c pmix_c Pr(w_i | m, c)
    - n log sum_m pdot(m)`` with ``pdot`` that of a never-detected animal.
    """
    pmix = pmix or [1.0]
    n, S, K = ch.counts.shape
    u = ch.traps.usage_matrix(S)
    a = mask.spacing**2 / 1e4
    d2 = ((mask.xy[:, None, :] - ch.traps.xy[None, :, :]) ** 2).sum(-1)

    def hazard(c, i, s, k):
        first, sigma = real(c, i, s, k)
        f = np.exp(-d2[:, k] / (2 * sigma**2))
        return first * f if detectfn == "HHN" else -np.log1p(-first * f)

    def log_pr(c, i):
        lp = np.zeros(mask.n_points)
        for s in range(S):
            if ch.detector == "multi":
                hs = [u[k, s] * hazard(c, i, s, k) for k in range(K)]
                H = sum(hs)
                if i is None or ch.counts[i, s].sum() == 0:
                    lp += -H
                else:
                    k = int(np.argmax(ch.counts[i, s]))
                    lp += np.log(1 - np.exp(-H)) + np.log(hs[k] / H)
                continue
            for k in range(K):
                mu = u[k, s] * hazard(c, i, s, k)
                x = 0 if i is None else ch.counts[i, s, k]
                if ch.detector == "count" and ch.binom_size == 0:
                    lp += x * np.log(np.where(mu > 0, mu, 1.0)) - mu - gammaln(x + 1)
                else:
                    Bn = 1 if ch.detector == "proximity" else ch.binom_size
                    p = 1 - np.exp(-mu)
                    with np.errstate(divide="ignore"):
                        lp += (
                            gammaln(Bn + 1) - gammaln(x + 1) - gammaln(Bn - x + 1)
                            + (x * np.log(p) if x else 0.0) + (Bn - x) * np.log1p(-p)
                        )  # fmt: skip
        return lp

    pdot = sum(pm * (1 - np.exp(log_pr(c, None))) for c, pm in enumerate(pmix))
    total = 0.0
    for i in range(n):
        classes = range(len(pmix)) if not known or known[i] < 0 else [known[i]]
        terms = [math.log(pmix[c]) + log_pr(c, i) for c in classes]
        total += float(logsumexp(np.stack(terms)))
    if likelihood == "full":
        D = math.exp(logD)
        _, mult = np.unique(ch.counts.reshape(n, -1), axis=0, return_counts=True)
        return (
            -a * D * float(pdot.sum()) + total + n * math.log(a * D)
            - float(gammaln(mult + 1).sum())
        )  # fmt: skip
    return total - n * math.log(float(pdot.sum()))


# ---------------------------------------------------------------------------


def _beta(lik: VaryingLikelihood, values: dict[str, float]) -> np.ndarray:
    b = np.zeros(lik.npar)
    for name, v in values.items():
        b[lik.names.index(name)] = v
    return b


CASES = [
    # (detector, B, detectfn, likelihood, model, coefficients)
    ("count", 0, "HHN", "full", "lambda0~b sigma~1",
     {"D": -7.5, "lambda0": -1.0, "lambda0.bTRUE": 0.8, "sigma": 7.0}),
    ("proximity", 0, "HN", "conditional", "g0~bk sigma~t",
     {"g0": -1.2, "g0.bkTRUE": 1.1, "sigma": 7.0, "sigma.t2": 0.2, "sigma.t3": -0.1,
      "sigma.t4": 0.3}),
    ("multi", 0, "HHN", "full", "lambda0~t+hab sigma~T",
     {"D": -7.5, "lambda0": -1.0, "lambda0.t2": 0.5, "lambda0.t3": -0.4, "lambda0.t4": 0.2,
      "lambda0.habb": 0.3, "sigma": 7.0, "sigma.T": 0.1}),
    ("count", 2, "HN", "full", "g0~k sigma~1",
     {"D": -7.5, "g0": -1.5, "g0.kTRUE": -0.7, "sigma": 7.1}),
    ("count", 0, "HHN", "conditional", "lambda0~B sigma~1",
     {"lambda0": -0.8, "lambda0.BTRUE": 0.6, "sigma": 7.0}),
    ("proximity", 0, "HHN", "full", "lambda0~Bk sigma~1",
     {"D": -7.5, "lambda0": -0.8, "lambda0.BkTRUE": 0.9, "sigma": 7.0}),
    ("multi", 0, "HN", "conditional", "g0~K sigma~1",
     {"g0": -1.0, "g0.KTRUE": -0.5, "sigma": 7.0}),
    ("count", 0, "HHN", "full", "lambda0~h2 sigma~h2 pmix~h2",
     {"D": -7.5, "lambda0": -0.5, "lambda0.h22": -1.3, "sigma": 7.0, "sigma.h22": 0.4,
      "pmix.h22": -0.3}),
    ("proximity", 0, "HN", "conditional", "g0~h2+b sigma~1",
     {"g0": -0.5, "g0.h22": -1.8, "g0.bTRUE": 0.5, "sigma": 7.0, "pmix.h22": 0.4}),
]  # fmt: skip


def _real_fn(ch: CaptureHistory, values: dict[str, float], first: str):
    """The real parameters of a case, from secr's definitions of the terms."""
    resp = _plain_responses(ch.counts)
    hab = ch.traps.covariates["hab"]

    def eta(par: str, c: int, i: int | None, s: int, k: int) -> float:
        e = values.get(par, 0.0)
        for name, v in values.items():
            if not name.startswith(par + "."):
                continue
            term = name[len(par) + 1 :]
            if term.endswith("TRUE"):
                e += v * resp[term[:-4]](i, s, k)
            elif term.startswith("t"):
                e += v * (s + 1 == int(term[1:]))
            elif term == "T":
                e += v * s
            elif term == "h22":
                e += v * (c == 1)
            elif term == "habb":
                e += v * (hab[k] == "b")
            else:
                raise AssertionError(term)
        return e

    def real(c, i, s, k):
        e0 = eta(first, c, i, s, k)
        f = math.exp(e0) if first == "lambda0" else 1 / (1 + math.exp(-e0))
        return f, math.exp(eta("sigma", c, i, s, k))

    return real


@pytest.mark.parametrize(("detector", "B", "detectfn", "likelihood", "model", "values"), CASES)
def test_loglik_matches_brute_force(detector, B, detectfn, likelihood, model, values) -> None:
    traps, mask = _layout()
    ch = _histories(traps, detector, B)
    full = likelihood == "full"
    lik = VaryingLikelihood(ch, mask, model + (" D~1" if full else ""), detectfn, likelihood)
    assert set(lik.names) == set(values)
    first = "lambda0" if detectfn == "HHN" else "g0"
    pm = values.get("pmix.h22")
    pmix = None if pm is None else [1 / (1 + math.exp(pm)), 1 / (1 + math.exp(-pm))]
    want = brute_loglik(
        ch, mask, detectfn, likelihood, _real_fn(ch, values, first), values.get("D", 0.0), pmix
    )
    beta = _beta(lik, values)
    assert lik(beta) == pytest.approx(want, abs=1e-6)
    # the analytic gradient is that of this likelihood
    ll, g = lik.loglik_and_gradient(beta)
    h = 1e-6
    num = np.array([(lik(beta + e) - lik(beta - e)) / (2 * h) for e in np.eye(lik.npar) * h])
    assert np.abs(g - num).max() <= 1e-5 * max(1.0, np.abs(num).max())


def test_hcov_known_classes_match_brute_force() -> None:
    traps, mask = _layout()
    ch = _histories(traps, "count")
    sex = ["F", "M", None, "F", "", "M", "M", "NA", "F"]
    values = {"D": -7.5, "lambda0": -0.5, "lambda0.h2M": -1.0, "sigma": 7.0, "sigma.h2M": 0.5,
              "pmix.h2M": 0.3}  # fmt: skip
    lik = VaryingLikelihood(ch, mask, "D~1 lambda0~h2 sigma~h2", "HHN", "full", hcov=sex)
    assert lik.names == list(values)
    known = [{"F": 0, "M": 1}.get(str(v), -1) for v in sex]
    renamed = {k.replace("h2M", "h22"): v for k, v in values.items()}
    pm = values["pmix.h2M"]
    want = brute_loglik(
        ch, mask, "HHN", "full", _real_fn(ch, renamed, "lambda0"), values["D"],
        [1 / (1 + math.exp(pm)), 1 / (1 + math.exp(-pm))], known,
    )  # fmt: skip
    beta = _beta(lik, values)
    assert lik(beta) == pytest.approx(want, abs=1e-6)
    ll, g = lik.loglik_and_gradient(beta)
    h = 1e-6
    num = np.array([(lik(beta + e) - lik(beta - e)) / (2 * h) for e in np.eye(lik.npar) * h])
    assert np.abs(g - num).max() <= 1e-5 * max(1.0, np.abs(num).max())


def test_response_covariates_follow_secr() -> None:
    counts = np.zeros((2, 4, 3), int)
    counts[0, 1, 2] = 1  # animal 0 first at trap 2 on occasion 2
    counts[1, 0, 0] = 2
    counts[1, 2, 1] = 1
    b = response_covariate(counts, "b")[..., 0]
    assert b.tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]
    B = response_covariate(counts, "B")[..., 0]
    assert B.tolist() == [[0, 0, 1, 0], [0, 1, 0, 1]]
    bk = response_covariate(counts, "bk")
    assert bk[0, :, 2].tolist() == [0, 0, 1, 1] and bk[0, :, 0].tolist() == [0, 0, 0, 0]
    assert bk[1, :, 1].tolist() == [0, 0, 0, 1]
    k = response_covariate(counts, "k")[0]
    assert k[:, 0].tolist() == [0, 1, 1, 1] and k[:, 2].tolist() == [0, 0, 1, 1]
    K = response_covariate(counts, "K")[0]
    assert K[:, 0].tolist() == [0, 1, 0, 0]


def test_terms_without_effect_reduce_to_the_constant_model() -> None:
    traps, mask = _layout()
    ch = _histories(traps, "count")
    base = secr.SecrLikelihood(ch, mask, "D~1 lambda0~hab sigma~1", "HHN")
    b0 = np.array([-7.5, -1.0, 0.3, 7.0])
    for model, extra in [
        ("D~1 lambda0~hab+b sigma~1", {"lambda0.bTRUE": 0.0}),
        ("D~1 lambda0~hab+h2 sigma~h2", {"lambda0.h22": 0.0, "sigma.h22": 0.0, "pmix.h22": 1.3}),
        ("D~1 lambda0~hab+t sigma~T", {}),
    ]:
        lik = make_likelihood(ch, mask, model, "HHN")
        assert isinstance(lik, VaryingLikelihood)
        beta = _beta(lik, dict(zip(base.names, b0, strict=True)) | extra)
        assert lik(beta) == pytest.approx(base(b0), abs=1e-9)
    assert type(make_likelihood(ch, mask, "D~1 lambda0~hab", "HHN")) is secr.SecrLikelihood


def test_bad_models_are_refused() -> None:
    traps, mask = _layout()
    ch = _histories(traps, "count")
    with pytest.raises(Exception, match="more than one kind"):
        VaryingLikelihood(ch, mask, "lambda0~b sigma~bk", "HHN")
    with pytest.raises(Exception, match="D cannot depend"):
        VaryingLikelihood(ch, mask, "D~t lambda0~1", "HHN")
    with pytest.raises(Exception, match="pmix"):
        VaryingLikelihood(ch, mask, "lambda0~1 pmix~h2", "HHN")


def _simulate_b(rng, traps, mask, D, lam0, lam_b, sigma, S):
    """A tiny learned-response survey: Poisson counts, lambda0 -> lam_b after first detection."""
    N = rng.poisson(D * mask.area)
    xy = mask.xy[rng.choice(mask.n_points, N)] + (rng.random((N, 2)) - 0.5) * mask.spacing
    f = np.exp(-((xy[:, None, :] - traps.xy[None]) ** 2).sum(-1) / (2 * sigma**2))
    counts = np.zeros((N, S, traps.n_traps), int)
    seen = np.zeros(N, bool)
    for s in range(S):
        lam = np.where(seen[:, None], lam_b, lam0) * f
        counts[:, s] = rng.poisson(lam)
        seen |= counts[:, s].sum(axis=1) > 0
    return CaptureHistory([str(i) for i in range(seen.sum())], counts[seen], traps, "count")


def test_fitted_b_model_is_a_maximum() -> None:
    rng = np.random.default_rng(2)
    g = np.arange(5) * 1000.0
    traps = Traps([f"T{i}" for i in range(25)], [(x, y) for x in g for y in g])
    mask = secr.make_mask(traps, 3000.0, 500.0)
    ch = _simulate_b(rng, traps, mask, 0.02, 0.1, 0.3, 800.0, 4)
    fit = secr.fit(ch, mask, "D~1 lambda0~b sigma~1", "HHN")
    assert fit.converged
    assert fit.names == ["D", "lambda0", "lambda0.bTRUE", "sigma"]
    lik = fit.lik
    _, g0 = lik.loglik_and_gradient(fit.beta)
    assert np.abs(g0).max() < 1e-3
    se = fit.beta_se
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    for j in range(fit.npar):
        for sgn in (-1, 1):
            b = fit.beta.copy()
            b[j] += sgn * 0.05 * se[j]
            assert lik(b) < fit.loglik
    # the real lambda0 after first detection is reported as secr's predict(newdata = b TRUE)
    after = fit.real({"b": True})["lambda0"]["estimate"]
    assert after == pytest.approx(math.exp(fit.beta[1] + fit.beta[2]))
    assert fit.real()["lambda0"]["estimate"] == pytest.approx(math.exp(fit.beta[1]))


def test_multi_session_sums_the_sessions_varying_likelihoods() -> None:
    from irbis.stats.secr_data import SessionHistories
    from irbis.stats.secr_sessions import SessionLikelihood

    traps, mask = _layout()
    chs = [_histories(traps, "count", seed=s) for s in (5, 6)]
    ss = SessionHistories(["2019", "2020"], chs)
    model = "D~session lambda0~b sigma~h2 pmix~h2"
    multi = SessionLikelihood(ss, mask, model, "HHN")
    assert multi.names == ["D", "D.session2020", "lambda0", "lambda0.bTRUE", "sigma",
                           "sigma.h22", "pmix.h22"]  # fmt: skip
    beta = np.array([-7.5, 0.3, -1.0, 0.5, 7.0, 0.4, -0.2])
    one = VaryingLikelihood(chs[0], mask, "D~1 lambda0~b sigma~h2", "HHN")
    two = VaryingLikelihood(chs[1], mask, "D~1 lambda0~b sigma~h2", "HHN")
    b2 = beta[[0, 2, 3, 4, 5, 6]].copy()
    b2[0] += beta[1]
    assert multi(beta) == pytest.approx(one(beta[[0, 2, 3, 4, 5, 6]]) + two(b2), abs=1e-9)
    # t needs the same occasions in every session
    short = CaptureHistory(
        chs[1].ids, chs[1].counts[:, :3], Traps(traps.ids, traps.xy, traps.usage[:, :3]), "count"
    )
    with pytest.raises(Exception, match="differ from the first"):
        SessionLikelihood(SessionHistories(["a", "b"], [chs[0], short]), mask, "lambda0~t")
