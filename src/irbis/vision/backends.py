"""Optional backends for users with a GPU or internet: MegaDetector and SpeciesNet.

Both run on PyTorch, which the default install does not carry, so they live
behind optional extras (``pip install 'irbis[megadetector]'``,
``pip install 'irbis[speciesnet]'``) and are imported only when asked for.
Without the package the constructor raises :class:`BackendUnavailable` saying
which command installs it.

Weights are never fetched behind the user's back: both backends take a local
weights file or folder that the user downloaded on purpose (both packages
would otherwise download on first use, which fails at a field station and
changes results silently when upstream publishes new weights).

MegaDetector's categories are 1 = animal, 2 = person, 3 = vehicle; boxes come
as normalised ``x, y, width, height`` and are returned here in pixels as
:class:`~irbis.vision.boxes.Detection` like every irbis detector.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from irbis.core.errors import IrbisError
from irbis.vision.boxes import Detection

__all__ = [
    "BackendUnavailable",
    "MegaDetectorBackend",
    "SpeciesNetBackend",
    "SpeciesPrediction",
    "from_megadetector_result",
]

MD_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}


class BackendUnavailable(IrbisError):
    """An optional backend whose package is not installed."""


def _import(module: str, extra: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{what} needs the optional package behind the '{extra}' extra, which is not "
            f"installed ({exc.name or module}): install it with `pip install 'irbis[{extra}]'`, "
            "or use the default detector (`irbis models install mdlite`)"
        ) from exc


def _local_weights(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise BackendUnavailable(
            f"{what}: weights {p} not found (irbis never downloads weights at run time: "
            "download them once and give their local path)"
        )
    return p


def from_megadetector_result(
    result: dict[str, Any], width: int, height: int, *, source: str = "megadetector"
) -> list[Detection]:
    """Convert one MegaDetector result (``{"detections": [...]}``) to pixel boxes."""
    out = []
    for d in result.get("detections") or []:
        x, y, w, h = (float(v) for v in d["bbox"])
        out.append(
            Detection(
                x * width,
                y * height,
                (x + w) * width,
                (y + h) * height,
                float(d["conf"]),
                MD_CATEGORIES.get(str(d["category"]), "animal"),
                source,
            )
        )
    out.sort(key=lambda det: -det.score)
    return out


class MegaDetectorBackend:
    """MegaDetector (v5a/v5b, the v1000 family) through the ``megadetector`` package.

    Parameters
    ----------
    weights
        A local weights file (``md_v5a.0.0.pt``, an MDv1000 ``.pt``...).
    conf
        Lowest confidence returned (MegaDetector's own default for output is 0.005;
        its recommended operating point for v5 is about 0.2).
    version
        Recorded with every detection (default: the weights file's name).
    """

    name = "megadetector"

    def __init__(self, weights: str | Path, *, conf: float = 0.05, version: str = "") -> None:
        path = _local_weights(weights, "MegaDetector")
        run_detector = _import(
            "megadetector.detection.run_detector", "megadetector", "MegaDetector"
        )
        self.version = version or path.stem
        self.conf = conf
        self._model = run_detector.load_detector(str(path))

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """Boxes (pixels, categories animal/person/vehicle) for each image."""
        results = []
        for i, image in enumerate(images):
            rgb = image.convert("RGB")
            r = self._model.generate_detections_one_image(
                rgb, image_id=str(i), detection_threshold=self.conf
            )
            results.append(from_megadetector_result(r, rgb.width, rgb.height, source=self.name))
        return results


@dataclass(frozen=True)
class SpeciesPrediction:
    """SpeciesNet's ensemble answer for one image."""

    label: str  # common name, or the taxon string's last filled level
    taxon: str  # SpeciesNet's "uuid;class;order;family;genus;species;common name"
    score: float
    detections: tuple[Detection, ...]


class SpeciesNetBackend:
    """Google's SpeciesNet (detector + species classifier ensemble).

    Parameters
    ----------
    model
        A local SpeciesNet model folder (as downloaded once from its publisher).
    country
        ISO-3166 alpha-3 code used by SpeciesNet's geofence (``KGZ``, ``MNG``,
        ``TJK``...), or None.
    """

    name = "speciesnet"

    def __init__(self, model: str | Path, *, country: str | None = None) -> None:
        path = _local_weights(model, "SpeciesNet")
        speciesnet = _import("speciesnet", "speciesnet", "SpeciesNet")
        self.version = path.name
        self.country = country
        self._model = speciesnet.SpeciesNet(str(path))

    def predict(self, files: Sequence[str | Path]) -> list[SpeciesPrediction]:
        """Species of each image file (SpeciesNet reads the files itself)."""
        paths = [str(f) for f in files]
        raw = self._model.predict(filepaths=paths, country=self.country) or {}
        by_path = {p.get("filepath"): p for p in raw.get("predictions", [])}
        out = []
        for f in paths:
            p = by_path.get(f, {})
            taxon = str(p.get("prediction", ""))
            parts = taxon.split(";")
            label = (
                parts[-1]
                if parts and parts[-1]
                else next((x for x in reversed(parts[1:]) if x), "unknown")
            )
            size = _image_size(f)
            dets = tuple(from_megadetector_result(p, *size, source=self.name)) if size else ()
            out.append(SpeciesPrediction(label, taxon, float(p.get("prediction_score", 0.0)), dets))
        return out


def _image_size(path: str) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None
