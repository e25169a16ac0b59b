"""Benchmark: SECR on a big mask (100,000 points x 400 traps x 10 occasions) in bounded memory.

One simulated survey: 400 cameras on a 20 x 20 grid 1500 m apart, ten
occasions, Poisson counts, hazard half-normal (``lambda0 = 0.1``, ``sigma =
1500 m``), about 150 animals on a 316 x 316 mask (100,000 points, 150 m
spacing, about 9 km beyond the outer cameras). Each measurement runs in its
own process so that its peak resident memory (``ru_maxrss``) is its own:

- ``chunked``: the likelihood as irbis builds it for a mask this size
  (distances, hazards and their derivatives per chunk of mask points, only
  the animals x points log-probabilities kept whole): one log-likelihood,
  one log-likelihood with gradient, and a whole ``secr.fit`` (BFGS, Newton
  polish and information matrix);
- ``one_piece``: the reference in the same run, the same likelihood with
  every points x traps array held at once (one evaluation with gradient;
  ``--skip-one-piece`` leaves it out where memory is short);
- ``baseline``: the process with the data built and nothing evaluated.

Prints one JSON document (times in seconds, memory in MiB).

Usage::

    python bench/secr_bigmask.py [--points 100000] [--traps 400] [--occasions 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np


def _survey(points: int, traps: int, occasions: int, seed: int) -> tuple[Any, Any]:
    from irbis.stats.secr_data import Mask, Traps
    from irbis.stats.simulate import simulate_capthist, simulate_popn

    side = int(round(math.sqrt(traps)))
    xy = np.array([(x * 1500.0, y * 1500.0) for x in range(side) for y in range(side)])
    tr = Traps([f"T{i}" for i in range(len(xy))], xy)
    m = int(round(math.sqrt(points)))
    spacing = 150.0
    centre = xy.mean(axis=0)
    g = (np.arange(m) - (m - 1) / 2) * spacing
    gx, gy = np.meshgrid(g + centre[0], g + centre[1])
    mask = Mask(np.column_stack([gx.ravel(), gy.ravel()]), spacing)
    rng = np.random.default_rng(seed)
    area_ha = mask.n_points * spacing**2 / 1e4
    centres = simulate_popn(mask, 150.0 / area_ha, rng=rng)
    ch = simulate_capthist(tr, centres, "HHN", {"lambda0": 0.1, "sigma": 1500.0},
                           n_occasions=occasions, rng=rng)  # fmt: skip
    return ch, mask


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(mode: str, points: int, traps: int, occasions: int, seed: int) -> dict[str, Any]:
    from irbis.stats import secr

    ch, mask = _survey(points, traps, occasions, seed)
    out: dict[str, Any] = {"mode": mode, "n": ch.n, "mask_points": mask.n_points,
                           "traps": ch.traps.n_traps, "occasions": ch.n_occasions}  # fmt: skip
    if mode == "baseline":
        out["peak_mib"] = _peak_mib()
        return out
    chunk = None if mode == "chunked" else mask.n_points
    lik = secr.SecrLikelihood(ch, mask, chunk_points=chunk)
    out["chunk_points"] = lik.chunk_points
    beta = np.array([math.log(150.0 / (mask.n_points * 2.25)), math.log(0.1), math.log(1500.0)])
    t = time.perf_counter()
    out["loglik"] = lik(beta)
    out["loglik_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    _, g = lik.loglik_and_gradient(beta)
    out["gradient_seconds"] = time.perf_counter() - t
    out["gradient"] = g.tolist()
    if mode == "chunked":
        t = time.perf_counter()
        f = secr.fit(ch, mask)
        out["fit_seconds"] = time.perf_counter() - t
        out["fit"] = {"converged": f.converged, "logLik": f.loglik, "n_evals": f.n_evals,
                      "real": {p: r["estimate"] for p, r in f.real().items()},
                      "D_per_100km2": f.density()["per_100km2"]["estimate"]}  # fmt: skip
    out["peak_mib"] = _peak_mib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--traps", type=int, default=400)
    ap.add_argument("--occasions", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-one-piece", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.points, a.traps, a.occasions, a.seed)))
        return
    modes = ["baseline", "chunked"] + ([] if a.skip_one_piece else ["one_piece"])
    runs = {}
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", mode, "--points", str(a.points),
               "--traps", str(a.traps), "--occasions", str(a.occasions),
               "--seed", str(a.seed)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    report: dict[str, Any] = {
        "bench": "secr_bigmask",
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor(),
            "cores_used": 1,
        },  # fmt: skip
        "runs": runs,
    }
    if "one_piece" in runs:
        c, o = runs["chunked"], runs["one_piece"]
        report["chunked_vs_one_piece"] = {
            "loglik_difference": abs(c["loglik"] - o["loglik"]),
            "max_gradient_difference": float(
                np.max(np.abs(np.array(c["gradient"]) - np.array(o["gradient"])))
            ),
            "peak_mib": [c["peak_mib"], o["peak_mib"]],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
