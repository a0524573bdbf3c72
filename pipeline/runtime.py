"""Inference runtimes of the ONNX models (the YOLOX detector, the ReID embedder): ``--backend``.

- ``onnxruntime`` (default): an ``onnxruntime.InferenceSession`` (:func:`reidpipe.pipeline.detect.onnx_session`).
- ``openvino``: the OpenVINO runtime reading the same ``.onnx`` file directly (no conversion step, no
  IR written), compiled for the CPU (OpenVINO has no CUDA device; ``--device cuda`` runs on the CPU).

:func:`model_session` returns either; both answer the part of the onnxruntime session API that the
models' wrappers use (``get_inputs()``, ``get_outputs()`` with ``.name`` / ``.shape``,
``get_modelmeta().custom_metadata_map``, ``run(None, {name: array})``), so
:class:`~reidpipe.pipeline.detect.YOLOXDetector` and :class:`~reidpipe.pipeline.embed.OnnxEmbedder`
run on either runtime unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError, UsageError

BACKENDS = ("onnxruntime", "openvino")


def openvino_device(device: str) -> str:
    """The OpenVINO device of a ``--device`` value: CPU for cpu/auto/cuda (CUDA is no OpenVINO device)."""
    return "CPU" if device in ("auto", "cpu") or device.startswith("cuda") else device.upper()


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

    def __init__(self, path: str, device: str = "cpu", threads: int | None = None):
        from reidpipe.pipeline.embed import _openvino_message

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
            self.compiled = core.compile_model(model, openvino_device(device), config)
        except RuntimeError as exc:
            raise CheckpointError(f"OpenVINO cannot run {self.path}: {_openvino_message(exc)}") from None
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


def model_session(path: str, device: str = "cpu", backend: str = "onnxruntime", threads: int | None = None):
    """A session of the ONNX model ``path`` on ``backend`` (see the module docstring)."""
    if backend == "onnxruntime":
        from reidpipe.pipeline.detect import onnx_session

        return onnx_session(path, device, threads)
    if backend == "openvino":
        return OpenVinoSession(path, device, threads)
    raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
