"""Test-time augmentation for unconfident frames: does it rescue missed animals safely? (JSON)

The fused default misses one snow-leopard encounter (``S26C2_2012-08-27``): a
single frame, so motion has no burst to difference, and the learned detector's
best box is below its 0.1 operating point. This bench measures whether
re-running the learned detector on augmented views of *unconfident* frames
(no learned box ≥ 0.1) would find such animals without putting boxes on rock
and vegetation:

``flip``
    horizontal mirror, boxes mirrored back;
``s960``
    letterbox to 960 instead of 640 (a second ONNX graph built from the same
    checkpoint, which this bench extracts from the zamba wheel with pip);
``tiles``
    2×2 overlapping tiles of 60 % of the frame each, letterboxed to 640 (close
    to native resolution for a 1280 px frame), boxes mapped back.

For each variant it reports, at the learned operating point 0.1:

* snow leopards (every frame shows one): unconfident frames that a variant
  raises to ≥ 0.1, the frames and encounters the fused default would then
  find when the variant is applied to every unconfident frame, and when it is
  applied only to lone frames (bursts too short for motion), and the box it
  puts on the missed encounter's frame;
* precision guard: on the Camtrap DP heron burst (boxes annotated) and the
  camtrapR images, every box ≥ 0.1 a variant adds on an unconfident frame,
  split into on / off the annotated animal (Camtrap DP) — the frames are
  treated as lone frames, i.e. the worst case.

Usage::

    .venv/bin/python bench/detect_tta.py [--out tta.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from irbis.vision.boxes import Detection, box_iou
from irbis.vision.detector import YoloxDetector, load_detector
from irbis.vision.fusion import FusionParams, fuse_burst
from irbis.vision.motion import MotionDetector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect_recall import BURST_GAP_S, bursts_by_gap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
THRESHOLD = 0.1

View = Callable[[Image.Image], list[Detection]]


def _mirror(d: Detection, width: int) -> Detection:
    return d.with_(x1=width - d.x2, x2=width - d.x1)


def _shift(d: Detection, dx: float, dy: float) -> Detection:
    return d.with_(x1=d.x1 + dx, x2=d.x2 + dx, y1=d.y1 + dy, y2=d.y2 + dy)


def make_views(d640: YoloxDetector, d960: YoloxDetector | None) -> dict[str, View]:
    def flip(im: Image.Image) -> list[Detection]:
        return [_mirror(b, im.width) for b in d640.detect([ImageOps.mirror(im)])[0]]

    def tiles(im: Image.Image, frac: float = 0.6) -> list[Detection]:
        w, h = im.size
        tw, th = int(w * frac), int(h * frac)
        crops = [(x, y) for x in (0, w - tw) for y in (0, h - th)]
        got = d640.detect([im.crop((x, y, x + tw, y + th)) for x, y in crops])
        return [_shift(b, x, y) for (x, y), bs in zip(crops, got, strict=True) for b in bs]

    views: dict[str, View] = {"flip": flip, "tiles": tiles}
    if d960 is not None:
        views["s960"] = lambda im: d960.detect([im])[0]
    return views


def build_960(workdir: Path) -> Path | None:
    """An ONNX graph of the same checkpoint for 960 px input (None when pip cannot fetch it)."""
    from irbis.vision.registry import MDLITE_MEMBER, ZAMBA_REQUIREMENT
    from irbis.vision.torchpickle import load_checkpoint
    from irbis.vision.yolox_onnx import build_yolox_onnx

    out = workdir / "mdlite_960.onnx"
    if out.exists():
        return out
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", ZAMBA_REQUIREMENT, "--no-deps",
         "--only-binary=:all:", "--ignore-requires-python", "-q", "-d", str(workdir)],
        capture_output=True, text=True,
    )  # fmt: skip
    wheels = sorted(workdir.glob("zamba-*.whl"))
    if proc.returncode != 0 or not wheels:
        return None
    with zipfile.ZipFile(wheels[0]) as whl:
        state = load_checkpoint(io.BytesIO(whl.read(MDLITE_MEMBER)))["model"]
    out.write_bytes(build_yolox_onnx(state, num_classes=1, image_size=960).SerializeToString())
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _best(ds: Sequence[Detection]) -> dict[str, Any] | None:
    if not ds:
        return None
    b = max(ds, key=lambda d: d.score)
    return {"score": round(b.score, 3), "box": [round(v) for v in b.xyxy]}


def snow_leopards(
    data: Path, det: YoloxDetector, views: dict[str, View], fusion: FusionParams
) -> dict[str, Any]:
    sl = data / "reid" / "snowleopard-tajikistan"
    rows = _rows(sl / "labels.csv")
    paths = [sl / r["path"] for r in rows]
    stamps = [(r["encounter"], datetime.fromisoformat(f"{r['date']}T{r['time']}")) for r in rows]
    groups = bursts_by_gap(stamps, BURST_GAP_S)
    motion = MotionDetector()
    n = len(rows)
    fused_found = [False] * n
    lone = [False] * n
    unconfident: list[int] = []
    for g in groups:
        frames = [Image.open(paths[i]).convert("RGB") for i in g]
        lg = det.detect(frames, conf=fusion.confirm_threshold)
        fg = fuse_burst(lg, motion.detect_burst(frames), fusion)
        for k, i in enumerate(g):
            fused_found[i] = bool(fg[k])
            lone[i] = len(g) < motion.params.min_frames
            if not any(d.score >= THRESHOLD for d in lg[k]):
                unconfident.append(i)
    missed = [rows[i]["encounter"] for i in range(n) if not fused_found[i]]
    out: dict[str, Any] = {"frames": n, "unconfident_frames": len(unconfident)}

    def rates(found: list[bool]) -> dict[str, Any]:
        enc: dict[str, bool] = defaultdict(bool)
        for r, f in zip(rows, found, strict=True):
            enc[r["encounter"]] |= f
        return {
            "frames": round(sum(found) / n, 4),
            "frames_found": sum(found),
            "encounters_found": sum(enc.values()),
            "encounters": len(enc),
            "encounters_missed": sorted(k for k, v in enc.items() if not v),
        }

    out["fused_default"] = rates(fused_found)
    per_view: dict[str, Any] = {}
    for name, view in views.items():
        raised: dict[int, list[Detection]] = {}
        t0 = time.perf_counter()
        for i in unconfident:
            boxes = [d for d in view(Image.open(paths[i]).convert("RGB")) if d.score >= THRESHOLD]
            if boxes:
                raised[i] = boxes
        secs = time.perf_counter() - t0
        all_found = [f or i in raised for i, f in enumerate(fused_found)]
        lone_found = [f or (i in raised and lone[i]) for i, f in enumerate(fused_found)]
        per_view[name] = {
            "unconfident_frames_raised": len(raised),
            "seconds_per_unconfident_frame": round(secs / max(len(unconfident), 1), 3),
            "fused_plus_view_on_unconfident_frames": rates(all_found),
            "fused_plus_view_on_lone_frames": rates(lone_found),
            "boxes_on_missed_frames": {
                rows[i]["path"]: _best(raised.get(i, [])) for i in range(n) if not fused_found[i]
            },
        }
    out["encounters_with_missed_frames"] = sorted(set(missed))
    out["views"] = per_view
    return out


def guard(data: Path, det: YoloxDetector, views: dict[str, View]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dp = data / "cameratrap" / "camtrap-dp-example"
    if dp.exists():
        ids = {r["fileName"]: r["mediaID"] for r in _rows(dp / "media.csv")}
        gt = {r["mediaID"]: r for r in _rows(dp / "observations.csv") if r["bboxX"]}
        files = sorted((dp / "media").glob("*.JPG"))
        res: dict[str, Any] = {}
        for name, view in views.items():
            on, off = 0, []
            for f in files:
                im = Image.open(f).convert("RGB")
                if any(d.score >= THRESHOLD for d in det.detect([im])[0]):
                    continue
                o = gt.get(ids.get(f.name, ""))
                w, h = im.size
                for d in view(im):
                    if d.score < THRESHOLD:
                        continue
                    if o is not None:
                        x, y = float(o["bboxX"]) * w, float(o["bboxY"]) * h
                        ax = (x, y, x + float(o["bboxWidth"]) * w, y + float(o["bboxHeight"]) * h)
                        if box_iou(d, ax) >= 0.3:
                            on += 1
                            continue
                    off.append({"file": f.name, **(_best([d]) or {})})
            res[name] = {"new_boxes_on_animal": on, "new_boxes_off_animal": off}
        out["camtrap-dp (as lone frames)"] = {"frames": len(files), **res}
    ct = data / "cameratrap" / "camtrapR" / "pictures"
    if ct.exists():
        seen: dict[str, Path] = {}
        for p in sorted(ct.rglob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg"):
                seen.setdefault(hashlib.sha256(Image.open(p).tobytes()).hexdigest(), p)
        files = sorted(seen.values())
        res = {}
        for name, view in views.items():
            new = 0
            for f in files:
                im = Image.open(f).convert("RGB")
                if any(d.score >= THRESHOLD for d in det.detect([im])[0]):
                    continue
                new += sum(d.score >= THRESHOLD for d in view(im))
            res[name] = {"new_boxes": new}
        out["camtrapR (as lone frames)"] = {"frames": len(files), **res}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--workdir", type=Path, default=None, help="where the 960 px graph is built")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    fusion = FusionParams()
    det = load_detector("mdlite", conf=fusion.confirm_threshold)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="irbis-tta-"))
    workdir.mkdir(parents=True, exist_ok=True)
    g960 = build_960(workdir)
    d960 = YoloxDetector(g960, input_size=960, conf=fusion.confirm_threshold) if g960 else None
    views = make_views(det, d960)
    result = {
        "threshold": THRESHOLD,
        "views": sorted(views),
        "snowleopard": snow_leopards(args.data, det, views, fusion),
        "precision_guard": guard(args.data, det, views),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
