"""Inference sessions with settings that suit a laptop, a server and a GPU.

Two engines run the same ONNX files. ONNX Runtime is always there (and the
one with GPU providers); OpenVINO, installed with irbis where its wheels
exist, runs convolutional networks on a CPU faster: on the 2-core bench
machine the default detector's forward pass went from 16.9 to 20.0 images/s
in float32 with the same numbers (within 1e-4), and to 58 images/s in
bfloat16 on a CPU with AMX (``bench/detect_throughput.py``). ``auto`` picks
OpenVINO in float32 on a CPU and ONNX Runtime when a GPU provider is
available; bfloat16 is asked for, never picked, because its scores differ
from the reference by up to ~0.008.

Why not the engines' defaults: ONNX Runtime's thread pool counts every
logical CPU of the machine, even those a container or ``taskset`` does not
let us use, and spins threads after each run; on a shared 2-core laptop that
means oversubscription. We count the CPUs this process may run on, use that
many threads (``IRBIS_THREADS`` overrides) and turn spinning off.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irbis.core.errors import IrbisError

__all__ = [
    "ENGINES",
    "EngineError",
    "OpenVinoSession",
    "available_providers",
    "describe_engines",
    "make_session",
    "open_model_session",
    "openvino_available",
    "usable_cpus",
]

_log = logging.getLogger(__name__)

#: Inference engines :func:`make_session` knows, ``auto`` first.
ENGINES = ("auto", "onnxruntime", "openvino")
#: Numeric precisions an OpenVINO session may run at (``auto``: OpenVINO's own choice).
PRECISIONS = ("f32", "bf16", "auto")


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


class EngineError(IrbisError):
    """An inference engine or precision that is unknown or not installed."""


def openvino_available() -> bool:
    """Whether OpenVINO can be imported (installed with irbis where its wheels exist)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def describe_engines() -> list[dict[str, object]]:
    """The inference engines installed here, for ``irbis models list`` and bug reports.

    Returns
    -------
    list of dict
        ``name``, ``version``, ``default`` (what ``auto`` picks) and, per engine,
        ``providers`` (ONNX Runtime) or ``precisions`` (OpenVINO: ``bf16`` only
        on CPUs with bfloat16 units).
    """
    import onnxruntime as ort

    try:
        pick = _resolve_engine(None, None)
    except EngineError:  # a bad IRBIS_ENGINE: list what is installed all the same
        pick = ""
    rows: list[dict[str, object]] = [
        {
            "name": "onnxruntime",
            "version": ort.__version__,
            "default": pick == "onnxruntime",
            "providers": available_providers(),
        }
    ]
    if openvino_available():
        import openvino

        row: dict[str, object] = {
            "name": "openvino",
            "version": openvino.__version__.split("-")[0],
            "default": pick == "openvino",
        }
        try:
            hint = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
            row["precisions"] = ["f32", "bf16"] if hint.get_type_name() == "bf16" else ["f32"]
        except Exception as exc:  # noqa: BLE001 - a CPU plugin that will not load
            row["precisions"] = []
            row["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else "unusable"
        rows.append(row)
    return rows


def _setting(explicit: str | None, env: str, allowed: tuple[str, ...], default: str) -> str:
    value = (explicit or os.environ.get(env, "") or default).strip().lower()
    if value not in allowed:
        where = env if not explicit else env.removeprefix("IRBIS_").lower()
        raise EngineError(f"{where}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _resolve_engine(engine: str | None, providers: list[str] | None) -> str:
    """The engine ``engine`` (or ``IRBIS_ENGINE``, default ``auto``) means here."""
    engine = _setting(engine, "IRBIS_ENGINE", ENGINES, "auto")
    if engine != "auto":
        return engine
    gpu = any(p != "CPUExecutionProvider" for p in (providers or available_providers()))
    return "openvino" if openvino_available() and not gpu else "onnxruntime"


def _threads(threads: int | None) -> int:
    if threads is None:
        env = os.environ.get("IRBIS_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else usable_cpus()
    return threads


def make_session(
    model: str | Path | bytes,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
    engine: str | None = None,
    precision: str | None = None,
):
    """Open an inference session on the best engine this machine has.

    Parameters
    ----------
    model
        Path to an ``.onnx`` file, or its serialized bytes.
    threads
        Intra-op threads; default ``IRBIS_THREADS`` or the usable CPU count.
    providers
        ONNX Runtime execution providers; default :func:`available_providers`.
    engine
        ``onnxruntime``, ``openvino`` or ``auto`` (default, or ``IRBIS_ENGINE``):
        OpenVINO when it is installed and no GPU provider is available or
        asked for, ONNX Runtime otherwise. Both run the same ONNX file.
    precision
        OpenVINO only: ``f32`` (default, or ``IRBIS_PRECISION``; the same
        numbers as ONNX Runtime), ``bf16`` or ``auto`` (OpenVINO's choice:
        bfloat16 on CPUs with AMX or AVX-512 BF16).

    Returns
    -------
    onnxruntime.InferenceSession or OpenVinoSession
        Either offers ``run``, ``get_inputs`` and ``get_outputs``.
    """
    chosen = _setting(engine, "IRBIS_ENGINE", ENGINES, "auto") == "auto"
    engine = _resolve_engine(engine, providers)
    if engine == "openvino":
        if not openvino_available():
            raise EngineError(
                "engine 'openvino' asked for but OpenVINO is not installed here: "
                "use --engine onnxruntime (or IRBIS_ENGINE=onnxruntime)"
            )
        prec = _setting(precision, "IRBIS_PRECISION", PRECISIONS, "f32")
        try:
            return OpenVinoSession(model, threads=_threads(threads), precision=prec)
        except Exception as exc:
            # A user's model with an operator OpenVINO lacks still runs, on ONNX
            # Runtime, when nobody asked for OpenVINO; asked for, the error stands.
            if not chosen:
                raise
            name = "model bytes" if isinstance(model, bytes) else str(model)
            first = str(exc).strip().splitlines()[:1]
            _log.warning("OpenVINO cannot run %s (%s); using ONNX Runtime", name, *first or [""])
    else:
        _setting(precision, "IRBIS_PRECISION", PRECISIONS, "f32")  # a typo is an error anywhere
    return _ort_session(model, threads=_threads(threads), providers=providers)


def open_model_session(name: str, model_path: str | Path, **kwargs: object):
    """:func:`make_session` for a registry model: a file no engine can load is a ``ModelError``.

    The error names the model and the file, so the user reinstalls it; an
    unknown engine or precision stays an :class:`EngineError`.
    """
    from irbis.vision.registry import ModelError

    try:
        return make_session(model_path, **kwargs)  # type: ignore[arg-type]
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - both engines raise their own untyped errors
        raise ModelError.for_model(
            name, f"the inference engine cannot load {model_path} ({exc})"
        ) from exc


def _ort_session(model: str | Path | bytes, *, threads: int, providers: list[str] | None):
    import onnxruntime as ort

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


@dataclass(frozen=True)
class _Arg:
    """An input or output as ONNX Runtime describes it (``name``, ``shape``)."""

    name: str
    shape: list[int | str | None]


class OpenVinoSession:
    """An OpenVINO CPU model behind the part of ONNX Runtime's session API irbis uses.

    OpenVINO's CPU plugin (oneDNN kernels) runs convolutional networks faster
    than ONNX Runtime's on the same cores and, in ``bf16``, uses the AMX /
    AVX-512 BF16 units of recent Xeons. A model with symbolic dimensions is
    compiled once per input shape seen (a card has one or two frame shapes).

    Parameters
    ----------
    model
        ONNX file or its bytes.
    threads
        Inference threads.
    precision
        ``f32``, ``bf16`` or ``auto`` (see :func:`make_session`).
    """

    def __init__(self, model: str | Path | bytes, *, threads: int, precision: str = "f32") -> None:
        import openvino as ov

        self._core = ov.Core()
        if isinstance(model, bytes):
            self._model = self._core.read_model(model=model, weights=b"")
        else:
            self._model = self._core.read_model(str(model))
        self._config: dict[str, object] = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        if threads < usable_cpus():
            # OpenVINO pins its inference threads to the first cores by default:
            # processes sharing a machine (Ray workers, one thread each) would all
            # land on core 0 and run at half speed on two cores.
            self._config["ENABLE_CPU_PINNING"] = False
        if precision == "auto":  # what OpenVINO would pick on this CPU, named
            precision = self._core.get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
        self._config["INFERENCE_PRECISION_HINT"] = precision
        #: ``f32`` or ``bf16``: the precision the convolutions run at.
        self.precision = precision
        self._requests: dict[tuple[int, ...], object] = {}
        # An infer request serves one call at a time (ONNX Runtime's run may be called
        # from several threads): calls from other threads wait their turn.
        self._lock = threading.Lock()
        self._inputs = [_Arg(p.get_any_name(), _dims(p)) for p in self._model.inputs]
        self._outputs = [_Arg(p.get_any_name(), _dims(p)) for p in self._model.outputs]
        # Compile now the shape most calls will use (fixed, or one image when only the
        # batch is open): an unsupported model fails at open, where make_session can
        # still fall back, and ``precision`` says what really runs.
        if len(self._inputs) == 1:
            dims = self._inputs[0].shape
            if dims and all(isinstance(d, int) for d in dims[1:]):
                first = dims[0] if isinstance(dims[0], int) else 1
                self._request((first, *(int(d) for d in dims[1:])))  # type: ignore[arg-type]

    def get_inputs(self) -> list[_Arg]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Arg]:
        return list(self._outputs)

    def _request(self, shape: tuple[int, ...]):
        req = self._requests.get(shape)
        if req is None:
            model = self._model.clone()
            model.reshape({self._inputs[0].name: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._config)
            # A CPU without bfloat16 units runs a bf16 request in f32: say what runs.
            self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            req = compiled.create_infer_request()
            self._requests[shape] = req
        return req

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on one input; returns the outputs as fresh arrays."""
        if len(feed) != 1 or len(self._inputs) != 1:
            raise ValueError("OpenVinoSession runs models with exactly one input")
        ((_, x),) = feed.items()
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            return self._run(output_names, x)

    def _run(self, output_names: list[str] | None, x: np.ndarray) -> list[np.ndarray]:
        names = output_names or [o.name for o in self._outputs]
        known = {o.name: i for i, o in enumerate(self._outputs)}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"model has no output named {', '.join(missing)}")
        index = [known[n] for n in names]
        if self._inputs[0].shape[:1] == [None] and x.ndim > 1 and x.shape[0] != 1:
            # One compiled model per image shape, not per batch size: on a CPU a batch
            # is no faster than its images one by one, and each compile costs ~0.2 s.
            req = self._request((1, *x.shape[1:]))
            parts = [req.infer({0: x[i : i + 1]}, share_inputs=True) for i in range(x.shape[0])]
            return [np.concatenate([np.array(r[i]) for r in parts]) for i in index]
        # The input is read in place (no copy of a 5 MB tensor); outputs are copies.
        result = self._request(tuple(x.shape)).infer({0: x}, share_inputs=True)
        return [np.array(result[i]) for i in index]


def _dims(port) -> list[int | str | None]:
    return [d.get_length() if d.is_static else None for d in port.get_partial_shape()]

