"""Ingest throughput benchmark: irbis copy-mode ingest against raw read + sha256.

Generates N camera-trap-sized JPEGs (12 MP, 3-6 MB; cached in the work folder
between runs), then in one run measures

a. the raw cost of reading and sha256-hashing every file, single-threaded and
   with a pool of ``os.cpu_count()`` threads, after one untimed warm-up pass so
   that every timed pass (raw and ingest) reads from a warm page cache;
b. ``irbis.ingest.runner.ingest`` in copy mode into a fresh project, with the
   images in one station folder ``source/BENCH-01/``.

It prints one JSON object on stdout (progress goes to stderr). Run::

    .venv/bin/python bench/ingest_throughput.py --files 2000 --workdir /tmp/irbis-bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

try:
    from irbis.demo.synthetic import make_large_jpegs
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from irbis.demo.synthetic import make_large_jpegs

STATION = "BENCH-01"
MANIFEST = "source-manifest.json"
GENERATOR = "irbis.demo.synthetic.make_large_jpegs/1"
MEGABYTES = (3.0, 6.0)
CHUNK = 1 << 20
GOAL = 0.70


def log(message: str) -> None:
    """Progress message on stderr (stdout carries only the JSON result)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- source images ------------------------------------------------------------


def ensure_source(workdir: Path, n: int, seed: int) -> tuple[list[Path], float | None]:
    """Generate the images unless a matching set is cached in ``workdir``.

    Returns
    -------
    tuple[list[Path], float | None]
        The image paths, and the generation time in seconds (None when cached).
    """
    source = workdir / "source" / STATION
    manifest_path = workdir / MANIFEST
    wanted = {"generator": GENERATOR, "files": n, "seed": seed, "megabytes": list(MEGABYTES)}
    if manifest_path.exists() and source.is_dir():
        try:
            cached = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            cached = None
        files = sorted(source.glob("IMG_*.JPG"))
        if cached == wanted and len(files) == n:
            log(f"using {n} cached images in {source}")
            return files, None
    log(f"generating {n} images in {source} (one-off; cached for later runs)")
    manifest_path.unlink(missing_ok=True)
    if source.exists():
        shutil.rmtree(source)
    t0 = time.perf_counter()
    files = make_large_jpegs(source, n, seed=seed, megabytes=MEGABYTES)
    elapsed = time.perf_counter() - t0
    manifest_path.write_text(json.dumps(wanted) + "\n")
    return files, elapsed


# -- raw read + hash -------------------------------------------------------------


def hash_file(path: Path) -> int:
    """Read ``path`` in 1 MiB chunks into sha256; return the bytes read."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
            total += n
    digest.hexdigest()
    return total


def raw_pass(files: Sequence[Path], threads: int) -> tuple[float, int]:
    """Read and hash every file; return (seconds, bytes)."""
    t0 = time.perf_counter()
    if threads <= 1:
        total = sum(hash_file(p) for p in files)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            total = sum(pool.map(hash_file, files))
    return time.perf_counter() - t0, total


def copy_file(path: Path, out: Path) -> int:
    """Read, hash and write ``path`` under its hash in ``out``: the floor of copy mode."""
    data = path.read_bytes()
    (out / hashlib.sha256(data).hexdigest()).write_bytes(data)
    return len(data)


def copy_pass(files: Sequence[Path], threads: int, out: Path) -> tuple[float, int]:
    """Raw read + hash + write of every file, until the copies are on disk (sync)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(lambda p: copy_file(p, out), files))
    os.sync()
    elapsed = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return elapsed, total


# -- irbis ingest -----------------------------------------------------------------


def ingest_pass(workdir: Path, keep: bool, storage: str = "copy") -> dict[str, Any]:
    """Ingest ``workdir/source`` into a fresh project; time it until its writes are on disk."""
    try:
        from irbis.ingest.runner import ingest
        from irbis.store import Project
    except ImportError as exc:
        return {"error": f"irbis ingest not importable: {exc}"}
    project_dir = workdir / "project"
    if project_dir.exists():
        shutil.rmtree(project_dir)
    project = Project.init(project_dir)
    os.sync()
    try:
        t0 = time.perf_counter()
        result = ingest(
            project, workdir / "source", create_stations=True, layout="station", storage=storage
        )
        os.sync()
        elapsed = time.perf_counter() - t0
    finally:
        project.close()
        if not keep:
            shutil.rmtree(project_dir, ignore_errors=True)
    return {
        "seconds": elapsed,
        "n_new": int(result.n_new),
        "bytes_read": int(result.bytes_read),
        "project": str(project_dir) if keep else None,
    }


# -- main -------------------------------------------------------------------------


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rate(amount: float, seconds: float) -> float | None:
    return round(amount / seconds, 2) if seconds > 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="number of images (2000)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "irbis-bench",
        help="work folder; generated images are cached here (default: TMPDIR/irbis-bench)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the ingested project in WORKDIR/project"
    )
    parser.add_argument("--seed", type=int, default=2026, help="generator seed (2026)")
    parser.add_argument(
        "--skip-ingest", action="store_true", help="measure only the raw read + hash"
    )
    args = parser.parse_args(argv)
    if args.files < 1:
        parser.error("--files must be at least 1")

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    files, gen_s = ensure_source(workdir, args.files, args.seed)
    total_bytes = sum(p.stat().st_size for p in files)
    total_mb = total_bytes / 1e6
    threads = os.cpu_count() or 1

    log(f"warm-up pass over {len(files)} files ({total_mb:.0f} MB)")
    warm_s, _ = raw_pass(files, 1)
    log("raw pass, single thread")
    single_s, single_b = raw_pass(files, 1)
    log(f"raw pass, {threads} threads")
    pooled_s, pooled_b = raw_pass(files, threads)
    if not single_b == pooled_b == total_bytes:
        raise RuntimeError("files changed while the benchmark ran")

    raw_mb_s = {"single": rate(total_mb, single_s), "threaded": rate(total_mb, pooled_s)}
    raw_files_s = {
        "single": rate(len(files), single_s),
        "threaded": rate(len(files), pooled_s),
    }
    best_raw = max(v for v in raw_mb_s.values() if v is not None)

    log(f"raw read + hash + write (the floor of copy mode), {threads} threads")
    copy_s, _ = copy_pass(files, threads, workdir / "rawcopy")
    raw_copy_mb_s = rate(total_mb, copy_s)

    ingest_info: dict[str, Any] = {"error": "skipped (--skip-ingest)"}
    ref_info: dict[str, Any] = {}
    if not args.skip_ingest:
        log("irbis ingest (copy mode) into a fresh project")
        ingest_info = ingest_pass(workdir, args.keep)
        log("irbis ingest (reference mode) into a fresh project")
        ref_info = ingest_pass(workdir, False, storage="reference")
    ingest_s = ingest_info.get("seconds")
    ingest_mb_s = rate(total_mb, ingest_s) if ingest_s else None

    available = mem_available()
    cache_note = "warm: one untimed read pass first; every timed pass reads from the page cache"
    if available is not None and total_bytes > available:
        cache_note += " (WARNING: data exceeds available memory, so partly cold)"

    report: dict[str, Any] = {
        "files": len(files),
        "total_mb": round(total_mb, 1),
        "mean_file_mb": round(total_mb / len(files), 2),
        "raw_mb_s": raw_mb_s,
        "raw_files_s": raw_files_s,
        "raw_threads": threads,
        "ingest_mb_s": ingest_mb_s,
        "ingest_files_s": rate(len(files), ingest_s) if ingest_s else None,
        "ingest_s": round(ingest_s, 2) if ingest_s else None,
        "ingest_n_new": ingest_info.get("n_new"),
        "ingest_bytes_read": ingest_info.get("bytes_read"),
        "raw_copy_mb_s": raw_copy_mb_s,
        "reference_ingest_mb_s": rate(total_mb, ref_info["seconds"])
        if ref_info.get("seconds")
        else None,
        "ratio": round(ingest_mb_s / best_raw, 3) if ingest_mb_s and best_raw else None,
        "ratio_to_raw_copy": round(ingest_mb_s / raw_copy_mb_s, 3)
        if ingest_mb_s and raw_copy_mb_s
        else None,
        "timing": "copy passes and ingests are timed until os.sync() returns (data on disk)",
        "goal": GOAL,
        "meets_goal": (ingest_mb_s / best_raw >= GOAL) if ingest_mb_s and best_raw else None,
        "page_cache": cache_note,
        "mb": "10**6 bytes; ingest rates use the source size",
        "warmup_s": round(warm_s, 2),
        "generate_s": round(gen_s, 1) if gen_s is not None else "cached",
        "workdir": str(workdir),
        "machine": {
            "cpu_count": threads,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "mem_available_gb": round(available / 2**30, 1) if available else None,
        },
    }
    if "error" in ingest_info:
        report["ingest_error"] = ingest_info["error"]
    elif ingest_info["n_new"] != len(files):
        report["ingest_warning"] = f"ingest reported {ingest_info['n_new']} new of {len(files)}"
    if ingest_info.get("project"):
        report["project"] = ingest_info["project"]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
