"""Benchmark: SECR fits on the Tost and Nemegt snow-leopard data, against R secr.

For every row of ``shared/data/secr/{tost,nemegt}/secr_reference.csv`` it fits
the same model, times it and compares logLik, coefficients and SEs with R
secr 2.10.3. In the same run it times a baseline of the same likelihood
maximised without the analytic gradient (BFGS on central finite differences,
the plain numpy approach), and scans how fit time grows with mask points and
with traps. Prints one JSON document; peak memory from ``getrusage``.

Usage::

    python bench/secr_fit.py [--quick] [--threads N] [--data DIR]

``--threads N`` sets ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` before numpy
is imported (OpenBLAS busy-waits: on a loaded machine 1 thread is faster).
"""

from __future__ import annotations

import argparse
import os
import sys

_ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_ap.add_argument("--quick", action="store_true", help="fewer scan points, no baseline repeat")
_ap.add_argument("--threads", type=int, default=0, help="BLAS threads (0: leave as is)")
_ap.add_argument("--data", default="", help="folder holding secr/{tost,nemegt}")
ARGS = _ap.parse_args()
if ARGS.threads:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import optimize  # noqa: E402

from irbis.stats import secr  # noqa: E402
from irbis.stats._threads import blas_threads  # noqa: E402
from irbis.stats.detectfn import log_shape  # noqa: E402
from irbis.stats.secr_data import CaptureHistory, Traps, make_mask  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(ARGS.data) if ARGS.data else ROOT.parent / "shared" / "data"


def r_model(text: str) -> str:
    """``list(D = ~1, lambda0 = ~Topo)`` -> ``D~1 lambda0~Topo``."""
    inner = text.strip()[len("list(") : -1]
    return " ".join(re.sub(r"\s*=\s*", "", p.strip()) for p in inner.split(","))


def peak_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def per_eval_ms(lik: secr.SecrLikelihood, beta: np.ndarray, reps: int = 5) -> dict[str, float]:
    """Time of one log-likelihood evaluation, and of one with its gradient (as in a fit)."""
    with blas_threads(1):
        return _per_eval_ms(lik, beta, reps)


def _per_eval_ms(lik: secr.SecrLikelihood, beta: np.ndarray, reps: int) -> dict[str, float]:
    lik._cache = None
    t = time.perf_counter()
    for _ in range(reps):
        lik._cache = None  # include the distance part, as when sigma moves
        lik(beta)
    plain = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        lik._cache = None
        lik.loglik_and_gradient(beta)
    grad = (time.perf_counter() - t) / reps
    return {"loglik_ms": plain * 1e3, "loglik_and_gradient_ms": grad * 1e3}


def baseline_fit(ch: CaptureHistory, mask, model: str) -> dict[str, float]:
    """Same likelihood and start, BFGS on central finite differences (no analytic gradient)."""
    with blas_threads(1):  # the same BLAS setting as secr.fit
        return _baseline_fit(ch, mask, model)


def _baseline_fit(ch: CaptureHistory, mask, model: str) -> dict[str, float]:
    t0 = time.perf_counter()
    lik = secr.SecrLikelihood(ch, mask, model, "HHN")
    x0 = lik.start_values()
    n = 0

    def nll(b: np.ndarray) -> float:
        nonlocal n
        n += 1
        v = lik(b)
        return -v if np.isfinite(v) else 1e12

    def grad(b: np.ndarray) -> np.ndarray:
        h = 1e-5
        return np.array([(nll(b + e) - nll(b - e)) / (2 * h) for e in np.eye(len(b)) * h])

    res = optimize.minimize(nll, x0, jac=grad, method="BFGS", options={"gtol": 1e-5})
    # SEs from a finite-difference Hessian of the log-likelihood
    p, h = len(res.x), 1e-3
    H = np.empty((p, p))
    E = np.eye(p) * h
    for i in range(p):
        for j in range(i + 1):
            H[i, j] = H[j, i] = (
                nll(res.x + E[i] + E[j])
                - nll(res.x + E[i] - E[j])
                - nll(res.x - E[i] + E[j])
                + nll(res.x - E[i] - E[j])
            ) / (4 * h * h)
    np.linalg.inv(H)
    return {"seconds": time.perf_counter() - t0, "evaluations": n, "logLik": -float(res.fun)}


def reference_rows() -> list[dict]:
    rows = []
    for region in ("tost", "nemegt"):
        folder = DATA / "secr" / region
        if not folder.exists():
            continue
        traps = secr.read_traps(folder / "traps.csv")
        ch = secr.read_captures(folder / "captures.csv", traps, detector="count")
        mask = secr.read_mask(folder / "mask.csv")
        with (folder / "secr_reference.csv").open() as fh:
            refs = list(csv.DictReader(fh))
        for ref in refs:
            model = r_model(ref["model"])
            t = time.perf_counter()
            fit = secr.fit(ch, mask, model=model, detectfn=ref["detectfn"])
            sec = time.perf_counter() - t
            rb = [float(v) for v in ref["beta"].split(";")]
            rs = [float(v) for v in ref["beta_se"].split(";")]
            row = {
                "fit": ref["fit"],
                "model": model,
                "mask_points": mask.n_points,
                "traps": traps.n_traps,
                "animals": ch.n,
                "seconds": sec,
                "evaluations": fit.n_evals,
                "converged": fit.converged,
                "logLik": fit.loglik,
                "logLik_R": float(ref["logLik"]),
                "dlogLik": fit.loglik - float(ref["logLik"]),
                "max_abs_dbeta": float(np.max(np.abs(fit.beta - rb))),
                "max_rel_dse": float(np.max(np.abs(fit.beta_se / rs - 1))),
                "beta": fit.beta_dict(),
                "beta_se": fit.se_dict(),
                "D_per_100km2": fit.density()["per_100km2"]["estimate"],
                "R_fit_seconds_authors_machine": float(ref["fit_seconds"]),
            }
            row.update(per_eval_ms(fit.lik, fit.beta))
            if ref is refs[0]:
                row["baseline_numeric_gradient"] = baseline_fit(ch, mask, model)
            rows.append(row)
    return rows


def _simulate(traps: Traps, mask, rng: np.random.Generator) -> CaptureHistory:
    """Snow-leopard-like data: D 1.5 / 100 km^2, HHN lambda0 0.5, sigma 5 km, 1 occasion."""
    D, lam0, sigma = 1.5e-4, 0.5, 5000.0
    while True:
        N = rng.poisson(D * mask.area)
        xy = mask.xy[rng.choice(mask.n_points, N)]
        d2 = ((xy[:, None, :] - traps.xy[None]) ** 2).sum(-1)
        counts = rng.poisson(lam0 * np.exp(log_shape("HHN", d2, sigma)))[:, None, :]
        seen = counts.sum(axis=(1, 2)) > 0
        if seen.sum() >= 8:
            ids = [str(i) for i in range(seen.sum())]
            return CaptureHistory(ids, counts[seen], traps, "count")


def grid_traps(k_side: int, spacing: float = 4000.0) -> Traps:
    g = np.arange(k_side) * spacing
    xy = [(x, y) for x in g for y in g]
    return Traps([f"T{i}" for i in range(len(xy))], xy)


def scan(quick: bool) -> dict:
    """Fit time against mask points (Tost traps, built masks) and against traps."""
    out: dict = {"mask_points": [], "traps": []}
    rng = np.random.default_rng(2024)
    folder = DATA / "secr" / "tost"
    if folder.exists():
        traps = secr.read_traps(folder / "traps.csv")
        ch = secr.read_captures(folder / "captures.csv", traps)
    else:
        traps = grid_traps(6)
        ch = _simulate(traps, make_mask(traps, 20000.0, 1000.0), rng)
    spacings = [2000.0, 1000.0, 500.0] if quick else [2000.0, 1400.0, 1000.0, 700.0, 500.0, 350.0]
    for sp in spacings:
        mask = make_mask(traps, 20000.0, sp)
        t = time.perf_counter()
        fit = secr.fit(ch, mask, detectfn="HHN")
        row = {
            "spacing_m": sp,
            "mask_points": mask.n_points,
            "traps": traps.n_traps,
            "seconds": time.perf_counter() - t,
            "evaluations": fit.n_evals,
            "D_per_100km2": fit.density()["per_100km2"]["estimate"],
        }
        row.update(per_eval_ms(fit.lik, fit.beta))
        out["mask_points"].append(row)
    sides = [4, 6, 8] if quick else [4, 5, 6, 8, 10, 12]
    for side in sides:
        tr = grid_traps(side)
        mask = make_mask(tr, 20000.0, 1000.0)
        ch_s = _simulate(tr, mask, rng)
        t = time.perf_counter()
        fit = secr.fit(ch_s, mask, detectfn="HHN")
        row = {
            "traps": tr.n_traps,
            "mask_points": mask.n_points,
            "animals": ch_s.n,
            "seconds": time.perf_counter() - t,
            "evaluations": fit.n_evals,
        }
        row.update(per_eval_ms(fit.lik, fit.beta))
        # cost per evaluation per mask point, to separate traps from mask growth
        row["us_per_eval_per_mask_point"] = row["loglik_and_gradient_ms"] * 1e3 / mask.n_points
        out["traps"].append(row)

    def slope(rows: list[dict], xkey: str, ykey: str) -> float:
        x = np.log([r[xkey] for r in rows])
        y = np.log([r[ykey] for r in rows])
        return float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else math.nan

    out["exponent_eval_time_vs_mask_points"] = slope(
        out["mask_points"], "mask_points", "loglik_and_gradient_ms"
    )
    out["exponent_eval_time_per_mask_point_vs_traps"] = slope(
        out["traps"], "traps", "us_per_eval_per_mask_point"
    )
    return out


def main() -> None:
    t0 = time.perf_counter()
    doc: dict = {
        "benchmark": "secr_fit",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "load_average_at_start": list(os.getloadavg()),
    }
    rows = reference_rows()
    if not rows:
        doc["skipped_reference"] = f"no data at {DATA / 'secr'} (see shared/data/README.md)"
    doc["reference_fits"] = rows
    if rows:
        doc["summary"] = {
            "max_abs_dlogLik": max(abs(r["dlogLik"]) for r in rows),
            "max_abs_dbeta": max(r["max_abs_dbeta"] for r in rows),
            "max_rel_dse": max(r["max_rel_dse"] for r in rows),
            "max_seconds_tost": max(
                (r["seconds"] for r in rows if r["fit"].startswith("Tost")), default=math.nan
            ),
            "max_seconds_nemegt": max(
                (r["seconds"] for r in rows if r["fit"].startswith("Nemegt")), default=math.nan
            ),
            "baseline_speedup": [
                {
                    "fit": r["fit"],
                    "analytic_gradient_s": r["seconds"],
                    "numeric_gradient_s": r["baseline_numeric_gradient"]["seconds"],
                    "speedup": r["baseline_numeric_gradient"]["seconds"] / r["seconds"],
                }
                for r in rows
                if "baseline_numeric_gradient" in r
            ],
        }
    doc["scan"] = scan(ARGS.quick)
    doc["peak_memory_mb"] = peak_mb()
    doc["load_average_at_end"] = list(os.getloadavg())
    doc["total_seconds"] = time.perf_counter() - t0
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
