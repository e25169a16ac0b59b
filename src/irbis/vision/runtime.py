"""ONNX Runtime sessions with settings that suit a laptop, a server and a GPU.

Why not ONNX Runtime's defaults: its default thread pool counts every logical
CPU of the machine, even those a container or ``taskset`` does not let us use,
and spins threads after each run; on a shared 2-core laptop that means
oversubscription. We count the CPUs this process may run on, use that many
intra-op threads (``IRBIS_THREADS`` overrides) and turn spinning off.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_providers", "make_session", "usable_cpus"]


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def available_providers() -> list[str]:
    """Execution providers to use, best first: CUDA when present, then CPU."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    wanted = [p for p in ("CUDAExecutionProvider",) if p in have]
    return [*wanted, "CPUExecutionProvider"]


def make_session(
    model: str | Path | bytes,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
):
    """Open an ONNX Runtime inference session.

    Parameters
    ----------
    model
        Path to an ``.onnx`` file, or its serialized bytes.
    threads
        Intra-op threads; default ``IRBIS_THREADS`` or the usable CPU count.
    providers
        Execution providers; default :func:`available_providers`.

    Returns
    -------
    onnxruntime.InferenceSession
    """
    import onnxruntime as ort

    if threads is None:
        env = os.environ.get("IRBIS_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else usable_cpus()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the cores that JPEG decoding in the next batch needs.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=providers or available_providers())
