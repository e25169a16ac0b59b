"""Benchmark: fit times of the newer SECR model families next to the constant model, on real data.

On the Tost and Nemegt snow-leopard surveys (``shared/data/secr``) it fits,
in one run and on the same machine, the single-session reference
``D~1 lambda0~1 sigma~1`` and the families added for issue 23: binomial N,
a fixed ``sigma``, ``D`` on the identity link, regression splines
(``D~s(x, y, k = 6)`` on the mask coordinates, ``D~s(stdGC, k = 4)``,
``lambda0~s(stdRgd, k = 4)``), and on Nemegt (two occasions) ``lambda0~b``
with ``sigma`` fixed and a time-varying trap covariate (``vis``: a synthetic
per-occasion column made from ``stdRgd``, for timing only); then ``region.N``
over half the mask's bounding box, and the two surveys as two sessions
(``~session`` everywhere: the likelihood separates) fitted session by session
in 1 and 2 threads and jointly (one optimisation over all coefficients).
Each time is the median of ``--repeats`` fits; logLik and npar are reported
with it. Prints one JSON document.

Usage::

    nice python bench/secr_models.py [--repeats 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import box

from irbis.stats import secr
from irbis.stats.secr_data import CaptureHistory, SessionHistories, Traps
from irbis.stats.secr_sessions import fit_sessions

ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def timed(fn: Any, repeats: int) -> tuple[Any, float]:
    """Result of the last call and the median seconds of ``repeats`` calls."""
    secs, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t)
    return out, statistics.median(secs)


def load(data: Path, name: str) -> tuple[CaptureHistory, Any]:
    folder = data / "secr" / name
    tr = secr.read_traps(folder / "traps.csv")
    return secr.read_captures(folder / "captures.csv", tr), secr.read_mask(folder / "mask.csv")


def with_vis(ch: CaptureHistory) -> CaptureHistory:
    """The survey with a synthetic per-occasion trap covariate ``vis`` (timing only)."""
    tr = ch.traps
    S = ch.n_occasions
    cols = {f"vis{s + 1}": np.asarray(tr.covariates["stdRgd"], float) * (1 + 0.5 * s)
            for s in range(S)}  # fmt: skip
    tr2 = Traps(tr.ids, tr.xy, tr.usage, {**tr.covariates, **cols},
                timevaryingcov={"vis": list(cols)})  # fmt: skip
    return CaptureHistory(ch.ids, ch.counts, tr2, ch.detector, ch.binom_size)


def survey_models(ch: CaptureHistory, mask: Any, repeats: int) -> dict[str, Any]:
    ref, t_ref = timed(lambda: secr.fit(ch, mask), repeats)
    s_hat = ref.real()["sigma"]["estimate"]
    cases: list[tuple[str, str | None, dict[str, Any]]] = [
        ("distribution = binomial", None, {"distribution": "binomial"}),
        ("fixed sigma (at its estimate)", None, {"fixed": {"sigma": s_hat}}),
        ("D on the identity link", None, {"link": {"D": "identity"}}),
        ("D~s(x, y, k = 6)", "D~s(x, y, k = 6)", {}),
        ("D~s(stdGC, k = 4)", "D~s(stdGC, k = 4)", {}),
        ("lambda0~s(stdRgd, k = 4)", "lambda0~s(stdRgd, k = 4)", {}),
    ]
    if ch.n_occasions > 1:
        cases += [
            ("lambda0~b, sigma fixed", "lambda0~b", {"fixed": {"sigma": s_hat}}),
            ("lambda0~vis (timevaryingcov)", "lambda0~vis", {}),
        ]
    rows = {
        "D~1 lambda0~1 sigma~1 (reference)": {
            "seconds": t_ref, "logLik": ref.loglik, "npar": ref.npar, "converged": ref.converged,
        }
    }  # fmt: skip
    for label, model, kw in cases:
        data = with_vis(ch) if "vis" in label else ch
        f, t = timed(lambda data=data, model=model, kw=kw: secr.fit(data, mask, model, **kw),
                     repeats)  # fmt: skip
        rows[label] = {"seconds": t, "x_reference": t / t_ref, "logLik": f.loglik,
                       "npar": f.npar, "converged": f.converged}  # fmt: skip
    x0, y0 = mask.xy.min(axis=0)
    x1, y1 = mask.xy.max(axis=0)
    poly = box(x0, y0, (x0 + x1) / 2, y1)
    r, t = timed(lambda: ref.region_n(poly), repeats)
    rows["region.N over half the mask"] = {
        "seconds": t, "points": r["points"], "E.N": r["E.N"]["estimate"],
        "R.N": r["R.N"]["estimate"], "SE_R.N": r["R.N"]["se"],
    }  # fmt: skip
    return {"animals": ch.n, "occasions": ch.n_occasions, "traps": ch.traps.n_traps,
            "mask_points": mask.n_points, "fits": rows}  # fmt: skip


def sessions_part(data: Path, repeats: int) -> dict[str, Any]:
    (c1, m1), (c2, m2) = load(data, "tost"), load(data, "nemegt")
    ss = SessionHistories(["tost", "nemegt"], [c1, c2])
    model = "D~session lambda0~session sigma~session"
    out: dict[str, Any] = {"model": model}
    for label, kw in (
        ("joint optimisation", {"separate": False}),
        ("separately, 1 thread", {"threads": 1}),
        ("separately, 2 threads", {"threads": 2}),
    ):
        f, t = timed(lambda kw=kw: fit_sessions(ss, [m1, m2], model, **kw), repeats)
        out[label] = {"seconds": t, "logLik": f.loglik, "converged": f.converged}
    out["speedup_2_threads_vs_1"] = (
        out["separately, 1 thread"]["seconds"] / out["separately, 2 threads"]["seconds"]
    )
    out["speedup_2_threads_vs_joint"] = (
        out["joint optimisation"]["seconds"] / out["separately, 2 threads"]["seconds"]
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default="", help="folder holding secr/{tost,nemegt}")
    args = ap.parse_args()
    data = Path(args.data) if args.data else ROOT.parent / "shared" / "data"
    if not (data / "secr" / "tost").exists():
        raise SystemExit(f"no secr data under {data}: give --data")
    doc = {
        "benchmark": "secr_models",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "tost": survey_models(*load(data, "tost"), args.repeats),
        "nemegt": survey_models(*load(data, "nemegt"), args.repeats),
        "two_sessions": sessions_part(data, args.repeats),
        "load_average_at_end": os.getloadavg(),
        "peak_mb": peak_mb(),
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
