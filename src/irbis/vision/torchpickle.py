"""Read PyTorch ``.pth`` checkpoints into numpy arrays without importing torch.

A modern ``torch.save`` file is a zip archive holding ``<root>/data.pkl`` (a
pickle) and one raw little-endian file per tensor storage under
``<root>/data/<key>``.  The pickle refers to storages through *persistent ids*
and rebuilds tensors with ``torch._utils._rebuild_tensor_v2``.  We replace both
with numpy equivalents inside a restricted unpickler, so loading a checkpoint
can never execute arbitrary code: any global outside the allow-list raises.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["CheckpointError", "load_checkpoint"]

# torch storage class name -> numpy dtype of its raw bytes (little-endian on disk).
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointError(ValueError):
    """The file is not a checkpoint this reader understands (or is unsafe)."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: only carries the dtype."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(
    storage: np.ndarray,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> np.ndarray:
    """numpy twin of ``torch._utils._rebuild_tensor_v2`` (strides are in elements)."""
    itemsize = storage.dtype.itemsize
    if len(size) == 0:
        return np.array(storage[storage_offset])
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    # Copy: the result must not alias the shared storage buffer.
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, requires_grad: bool, backward_hooks: Any) -> np.ndarray:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file: IO[bytes], archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(file)
        self._archive = archive
        self._root = root
        self._cache: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"checkpoint refers to {module}.{name}, which this reader refuses to load"
            ) from None

    def persistent_load(self, pid: Any) -> np.ndarray:
        # pid = ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unexpected storage type {storage_type!r}")
        if key not in self._cache:
            raw = self._archive.read(f"{self._root}/data/{key}")
            self._cache[key] = np.frombuffer(raw, dtype=storage_type.dtype)
        return self._cache[key]


def load_checkpoint(path: str | Path | IO[bytes]) -> Any:
    """Load a zip-format ``torch.save`` file, tensors becoming numpy arrays.

    Parameters
    ----------
    path
        The ``.pth``/``.pt`` file, or a binary file object holding it.

    Returns
    -------
    Any
        The unpickled object (typically dicts of ``numpy.ndarray``).

    Raises
    ------
    CheckpointError
        If the file is not a zip checkpoint or refers to disallowed globals.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    with archive:
        pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise CheckpointError(f"{path}: no data.pkl inside, not a PyTorch checkpoint")
        root = pkl[0][: -len("/data.pkl")]
        with archive.open(pkl[0]) as fh:
            try:
                return _RestrictedUnpickler(fh, archive, root).load()
            except (pickle.UnpicklingError, EOFError, KeyError) as exc:
                raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from exc
