"""Registry import benchmark: the sorted overlap check against the pairwise one it replaced.

Writes an irbis-layout station table of N deployments (two per station, the
camera moved from the first deployment to the second, as a large survey
looks), then in one run measures

a. the overlap check of :func:`irbis.ingest.registry_csv.registry_problems`
   (sort by station/camera and start, then sweep: O(n log n)) and, as the
   reference, the pairwise check irbis used before (every deployment against
   every earlier one: O(n^2)), both on the same ``--reference-rows`` rows, and
   the sorted check on all N rows;
b. ``irbis.ingest.registry.import_registry`` of all N rows into a fresh
   SQLite project (read, validate, store).

Prints one JSON object on stdout. Run::

    .venv/bin/python bench/registry_import.py --rows 8000 --reference-rows 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from irbis.ingest import registry_csv
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from irbis.ingest import registry_csv


def write_table(path: Path, n: int) -> Path:
    """``n`` deployments, two per station, each station with its own camera."""
    with path.open("w") as fh:
        fh.write("station,deployment,start,end,timezone,lat,lon,camera_serial\n")
        for i in range(n):
            st, k = divmod(i, 2)
            start, end = ("2024-01-01", "2024-03-01") if k == 0 else ("2024-03-01", "2024-06-01")
            fh.write(
                f"S{st:05d},S{st:05d}-{k},{start},{end},Asia/Bishkek,"
                f"{40 + st * 1e-4:.5f},{70 + st * 1e-4:.5f},C{st:05d}\n"
            )
    return path


def pairwise_overlaps(deployments) -> int:
    """The check irbis used before (its loop as it was): each deployment against every
    earlier one, the overlapping period formatted for every pair that overlaps in time."""
    found = 0
    seen = []
    for d in deployments:
        if d.end > d.start:
            for o in seen:
                if not (d.start < o.end and o.start < d.end):
                    continue
                period = (
                    f"{o.start:%Y-%m-%d %H:%M}..{o.end:%Y-%m-%d %H:%M} ({o.source_row or o.code})"
                )
                same_camera = o.camera_serial == d.camera_serial
                if same_camera and (o.station == d.station or d.camera_serial is not None):
                    found += bool(period)
            seen.append(d)
    return found


def timed(fn, *args) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8000)
    ap.add_argument("--reference-rows", type=int, default=2000)
    args = ap.parse_args(argv)

    from irbis.ingest.registry import import_registry
    from irbis.store import Project

    with tempfile.TemporaryDirectory(prefix="irbis-registry-bench-") as tmp:
        work = Path(tmp)
        table = write_table(work / "registry.csv", args.rows)
        _stations, deps = registry_csv.read_registry_csv(table, validate=False)
        ref = deps[: args.reference_rows]
        t_pairwise, n_pairwise = timed(pairwise_overlaps, ref)
        t_sorted_ref, p_ref = timed(registry_csv._overlap_problems, ref)
        t_sorted_all, p_all = timed(registry_csv._overlap_problems, deps)
        project = Project.init(work / "project")
        try:
            t_import, res = timed(import_registry, project, table)
        finally:
            project.close()

    out = {
        "benchmark": "registry_import",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": args.rows,
        "reference_rows": len(ref),
        "overlap_check_s": {
            "pairwise_reference": round(t_pairwise, 4),
            "sorted_same_rows": round(t_sorted_ref, 4),
            "sorted_all_rows": round(t_sorted_all, 4),
        },
        "speedup_same_rows": round(t_pairwise / max(t_sorted_ref, 1e-9), 1),
        "overlaps_found": {"pairwise": n_pairwise, "sorted": len(p_ref), "sorted_all": len(p_all)},
        "import_s": round(t_import, 3),
        "import_rows_per_s": round(args.rows / t_import, 1),
        "deployments_new": res.deployments_new,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
