"""Inference runtimes of the ONNX models (the YOLOX detector, the ReID embedder): ``--backend``.

- ``onnxruntime`` (default): an ``onnxruntime.InferenceSession`` (:func:`onnx_session`). It is the one
  ONNX Runtime session factory: the detector, the embedder, the dynamic-batch check, quantisation and
  ``reidpipe bench --embed-only`` all take their sessions from it, so a benchmark times a session
  configured as the pipeline's is (same optimisation level, providers, no spinning threads).
- ``openvino``: the OpenVINO runtime reading the same ``.onnx`` file directly (no conversion step, no
  IR written), compiled for the CPU (OpenVINO has no CUDA device; ``--device cuda`` runs on the CPU).

OpenVINO's inference precision is ``--openvino-precision`` (:func:`compile_openvino`, used by every
OpenVINO model: the ONNX models here and the IR embedder): ``f32`` by default, so that a model gives
the same numbers on every CPU and on either runtime; OpenVINO's own default is bf16 wherever the CPU
has bf16 instructions (AVX-512 BF16, AMX), where an embedding's cosine to its f32 value is ~0.997
(min 0.995) and detection scores move by ~0.02 (docs/performance.md). ``bf16`` asks for that speed;
a CPU without bf16 runs f32 whatever is asked. The precision the compiled model runs in is read back
(``.precision``) and logged in the run's ``model`` events.

:func:`model_session` returns either; both answer the part of the onnxruntime session API that the
models' wrappers use (``get_inputs()``, ``get_outputs()`` with ``.name`` / ``.shape``,
``get_modelmeta().custom_metadata_map``, ``run(None, {name: array})``), so
:class:`~reidpipe.pipeline.models.detect.YOLOXDetector` and :class:`~reidpipe.pipeline.models.embed.OnnxEmbedder`
run on either runtime unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError, UsageError

BACKENDS = ("onnxruntime", "openvino")
OPENVINO_PRECISIONS = ("f32", "bf16")  # --openvino-precision; f32 = the model's own numbers


def compile_openvino(core, model, device: str, precision: str = "f32", config: dict[str, Any] | None = None):
    """``model`` compiled by OpenVINO for ``device`` (a ``--device`` value) in ``precision``
    (``f32`` | ``bf16``, see the module docstring); a ``RuntimeError`` from OpenVINO passes through."""
    if precision not in OPENVINO_PRECISIONS:
        raise ConfigError(f"--openvino-precision must be one of {', '.join(OPENVINO_PRECISIONS)}, got {precision!r}")
    settings = {**(config or {}), "INFERENCE_PRECISION_HINT": precision}
    return core.compile_model(model, openvino_device(device), settings)


def openvino_precision_of(model) -> str | None:
    """The precision an OpenVINO-run detector or embedder runs in; None when OpenVINO does not run it."""
    precision = getattr(model, "precision", None) or getattr(getattr(model, "session", None), "precision", None)
    return precision if isinstance(precision, str) else None


def compiled_precision(compiled) -> str:
    """The precision a compiled OpenVINO model runs in (``f32``, ``bf16``, ``f16``), as the plugin says."""
    return str(compiled.get_property("INFERENCE_PRECISION_HINT").to_string())


def openvino_device(device: str) -> str:
    """The OpenVINO device of a ``--device`` value: CPU for cpu/auto/cuda (CUDA is no OpenVINO device)."""
    return "CPU" if device in ("auto", "cpu") or device.startswith("cuda") else device.upper()


def resolve_providers(device: str) -> list[str]:
    import onnxruntime as ort

    avail = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in avail and (device == "auto" or device.startswith("cuda")):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_session(path: str, device: str = "cpu", threads: int | None = None):
    """The ONNX Runtime session of every ONNX model the package runs or times (see the module
    docstring): all graph optimisations, CUDA first where ``device`` asks for it and onnxruntime has
    it, ``threads`` intra-op threads (None: onnxruntime's choice), no spinning. A corrupt or foreign
    file raises ``CheckpointError`` naming it."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise InputNotFoundError(f"ONNX model not found: {path}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    # no busy-waiting between ops: on a shared or small CPU, spinning threads burn the cores that the
    # reader threads and the other cameras need (measured: ~45 -> ~27 CPU ms per YOLOX-Nano frame)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=resolve_providers(device))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph classes
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"not a loadable ONNX model: {path} ({first})") from None


def openvino_message(exc: Exception) -> str:
    """The telling line of an OpenVINO error (its first lines name C++ source files)."""
    lines = [s.strip() for s in str(exc).splitlines() if s.strip() and not s.startswith("Exception from ")]
    return lines[-1] if lines else type(exc).__name__


@dataclass
class _Port:
    name: str
    shape: list[Any]  # ints, or a name / None where the dimension is dynamic (as onnxruntime gives it)


@dataclass
class _Meta:
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


def _shape(partial) -> list[Any]:
    return [d.get_length() if d.is_static else None for d in partial]


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO behind the onnxruntime session calls the wrappers use."""

    def __init__(self, path: str, device: str = "cpu", threads: int | None = None, precision: str = "f32"):
        self.path = str(path)
        if not Path(self.path).is_file():
            raise InputNotFoundError(f"ONNX model not found: {self.path}")
        try:
            import openvino as ov
        except ImportError:
            raise UsageError(
                "--backend openvino needs the optional package openvino (pip install 'reidpipe[openvino]')"
            ) from None
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            model = core.read_model(self.path)
            self.compiled = compile_openvino(core, model, device, precision, config)
        except RuntimeError as exc:
            raise CheckpointError(f"OpenVINO cannot run {self.path}: {openvino_message(exc)}") from None
        self.precision = compiled_precision(self.compiled)
        self._inputs = [_Port(p.get_any_name(), _shape(p.get_partial_shape())) for p in self.compiled.inputs]
        self._outputs = [_Port(p.get_any_name(), _shape(p.get_partial_shape())) for p in self.compiled.outputs]
        self._meta = _Meta(_onnx_metadata(self.path))
        self._request = self.compiled.create_infer_request()

    def get_inputs(self) -> list[_Port]:
        return self._inputs

    def get_outputs(self) -> list[_Port]:
        return self._outputs

    def get_modelmeta(self) -> _Meta:
        return self._meta

    def get_providers(self) -> list[str]:
        """onnxruntime's execution providers that run the model: none (OpenVINO runs it)."""
        return []

    def run(self, output_names, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self._request.infer(feed)
        return [np.asarray(result[port]) for port in self.compiled.outputs]


def _onnx_metadata(path: str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (what onnxruntime's ``custom_metadata_map`` gives)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise CheckpointError(f"not a loadable ONNX model: {path}") from None
    return {p.key: p.value for p in model.metadata_props}


def model_session(
    path: str,
    device: str = "cpu",
    backend: str = "onnxruntime",
    threads: int | None = None,
    precision: str = "f32",
):
    """A session of the ONNX model ``path`` on ``backend`` (see the module docstring); ``precision``
    is OpenVINO's (onnxruntime runs the model's own float32)."""
    if backend == "onnxruntime":
        return onnx_session(path, device, threads)
    if backend == "openvino":
        return OpenVinoSession(path, device, threads, precision)
    raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
