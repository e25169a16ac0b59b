"""Benchmark: multi-session SECR — trend coverage by simulation, and fit times on real data.

Part 1 (simulation): ``--surveys`` surveys of three sessions (a 6 x 6 camera
grid shifted between sessions, two occasions, some cameras down) with density
``D_s = D_0 * lambda^s``; each fitted with ``D~Session lambda0~1 sigma~1``.
Reports the coverage of the 95% intervals of the trend ``lambda`` and of each
session's density, the relative bias of their estimates and how many fits
converged. The target of issue 23: coverage between 93% and 97%.

Part 2 (real data, when ``../shared/data/secr`` is present): Tost and Nemegt
as two sessions (two regions, each with its own traps, usage and mask).
Times the single-session fits next to the two-session fits
(``D~session`` with shared detection, and everything by session, whose
logLik must equal the sum of the single-session logLiks), with the sessions
evaluated in turn (``threads=1``) and in parallel threads (``threads=2``).

Prints one JSON document.

Usage::

    python bench/secr_sessions.py [--surveys 200] [--seed 1] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from irbis.stats import secr
from irbis.stats.secr_data import SessionHistories, Traps
from irbis.stats.secr_sessions import fit_sessions
from irbis.stats.simulate import simulate_capthist, simulate_popn

ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def one_survey(rng: np.random.Generator, D0: float, lam: float, S: int, params: dict):
    g = np.arange(6) * 1500.0
    chs, masks = [], []
    for s in range(S):
        xy = [(x + 500.0 * s, y) for x in g for y in g]
        usage = np.ones((36, 2))
        usage[s::5, 1] = 0.0
        tr = Traps([f"T{i}" for i in range(36)], xy, usage)
        m = secr.make_mask(tr, 6000.0, 750.0)
        pop = simulate_popn(m, D0 * lam**s, rng=rng)
        chs.append(simulate_capthist(tr, pop, "HHN", params, rng=rng))
        masks.append(m)
    return SessionHistories([f"s{s}" for s in range(S)], chs), masks


def simulation(n_surveys: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    D0, lam, S = 0.006, 1.15, 3  # 60 animals per 100 km^2 in the first session
    params = {"lambda0": 0.2, "sigma": 1500.0}
    hits_lam, hits_D, lam_hat, D_hat, ns, secs = 0, np.zeros(S), [], [], [], []
    converged = 0
    t0 = time.perf_counter()
    for _ in range(n_surveys):
        ss, masks = one_survey(rng, D0, lam, S, params)
        f = fit_sessions(ss, masks, model="D~Session lambda0~1 sigma~1")
        secs.append(f.seconds)
        converged += f.converged
        t = f.trend()["Session"]
        hits_lam += t["lcl"] <= lam <= t["ucl"]
        lam_hat.append(t["estimate"])
        d = f.derived()
        row = []
        for s, name in enumerate(ss.names):
            x = d[name]["D_per_ha"]
            truth = D0 * lam**s
            hits_D[s] += x["lcl"] <= truth <= x["ucl"]
            row.append(x["estimate"] / truth)
        D_hat.append(row)
        ns.append([h.n for h in ss.histories])
    k = n_surveys
    D_hat_a = np.array(D_hat)
    return {
        "surveys": k,
        "sessions": S,
        "truth": {"D0_per_100km2": D0 * 1e4, "lambda": lam, **params},
        "model": "D~Session lambda0~1 sigma~1",
        "mean_animals_per_session": np.mean(ns, axis=0).round(1).tolist(),
        "converged": int(converged),
        "lambda_coverage": hits_lam / k,
        "lambda_rel_bias": float(np.mean(lam_hat) / lam - 1),
        "D_coverage_per_session": (hits_D / k).round(4).tolist(),
        "D_coverage_all": float(hits_D.sum() / (k * S)),
        "D_rel_bias_per_session": (D_hat_a.mean(axis=0) - 1).round(4).tolist(),
        "coverage_mc_se": math.sqrt(0.95 * 0.05 / k),
        "fit_seconds_median": float(np.median(secs)),
        "wall_seconds": time.perf_counter() - t0,
    }


def real_data(data: Path) -> dict | None:
    names = ("tost", "nemegt")
    if not all((data / "secr" / n).exists() for n in names):
        return None
    chs, masks = [], []
    for n in names:
        folder = data / "secr" / n
        tr = secr.read_traps(folder / "traps.csv")
        chs.append(secr.read_captures(folder / "captures.csv", tr))
        masks.append(secr.read_mask(folder / "mask.csv"))
    ss = SessionHistories(list(names), chs)
    out: dict = {"sessions": list(names), "animals": [c.n for c in chs]}
    single = []
    for c, m in zip(chs, masks, strict=True):
        t = time.perf_counter()
        f = secr.fit(c, m, model="D~1 lambda0~1 sigma~1")
        single.append({"seconds": time.perf_counter() - t, "logLik": f.loglik})
    out["single_session_fits"] = dict(zip(names, single, strict=True))
    for model in ("D~session lambda0~1 sigma~1", "D~session lambda0~session sigma~session"):
        row: dict = {}
        for threads in (1, 2):
            t = time.perf_counter()
            f = fit_sessions(ss, masks, model=model, threads=threads)
            row[f"threads_{threads}_seconds"] = time.perf_counter() - t
        row["speedup_2_threads"] = row["threads_1_seconds"] / row["threads_2_seconds"]
        row["logLik"] = f.loglik
        row["npar"] = f.npar
        row["D_per_100km2"] = {s: d["D_per_100km2"]["estimate"] for s, d in f.derived().items()}
        ratio = f.trend()["steps"][0]
        row["nemegt_over_tost"] = {k: ratio[k] for k in ("estimate", "lcl", "ucl")}
        if "lambda0~session" in model:
            row["sum_of_single_logLiks"] = sum(s["logLik"] for s in single)
            row["abs_difference"] = abs(f.loglik - row["sum_of_single_logLiks"])
        out[model] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surveys", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="", help="folder holding secr/{tost,nemegt}")
    args = ap.parse_args()
    data = Path(args.data) if args.data else ROOT.parent / "shared" / "data"
    doc = {
        "benchmark": "secr_sessions",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "real_data": real_data(data),
        "simulation": simulation(args.surveys, args.seed),
        "peak_mb": peak_mb(),
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
