"""Training time of the species head for 1,000 and 10,000 labelled crops (JSON).

The embeddings are synthetic (768 numbers on the unit sphere, 10 species as
noisy clusters, 20 stations, encounters of 5 crops): the head's work does not
depend on where the numbers came from. Timed per size, in one run:

* ``fit_head_s``: one softmax head on every crop (the reference: the model
  that gets installed);
* ``learn_head_s``: everything ``irbis models train species`` does after
  embedding (:func:`irbis.pipeline.species_stage.learn_head`): the
  encounter-held-out evaluation twice (before and after the temperature),
  leave-one-station-out, the final head and the learning curve;

with the held-out accuracy it reached, so a faster variant can be checked for
the same result. Embedding time is apart (``bench/species_eval.py``: ms per crop).

Usage::

    nice .venv/bin/python bench/species_train_speed.py [--sizes 1000 10000] [--out x.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from irbis.pipeline.species_stage import learn_head
from irbis.vision.species import fit_head


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 768))
    y = rng.integers(0, 10, n)
    x = centres[y] * 0.0035 + rng.normal(size=(n, 768)) * 0.03
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    encounters = [f"e{i // 5}" for i in range(n)]
    stations = [f"s{(i // 5) % 20}" for i in range(n)]
    return x, y, stations, encounters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    labels = [f"sp{i}" for i in range(10)]
    report: dict = {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "sizes": {}}
    for n in args.sizes:
        x, y, stations, encounters = _data(n)
        t = time.perf_counter()
        fit_head(x, y, len(labels))
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        learned = learn_head(x, y, labels, stations, encounters)
        full_s = time.perf_counter() - t
        ev = learned.evaluation
        report["sizes"][str(n)] = {
            "fit_head_s": round(fit_s, 2),
            "learn_head_s": round(full_s, 2),
            "accuracy_by_encounter": round(ev["by_encounter"]["accuracy"], 4),
            "accuracy_by_station": round(ev["by_station"]["accuracy"], 4),
            "learning_curve": {
                k: learned.learning_curve.get(k)
                for k in ("points", "labels_needed", "further_labels", "interval_80", "note")
            },
        }
    report["load_1min_after"] = os.getloadavg()[0]
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
