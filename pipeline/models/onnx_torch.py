"""An ONNX graph as an eager torch module, through ``onnx2torch`` (an optional dependency).

``reidpipe bench --embed-only`` times the converted graph beside ONNX Runtime, and the ``finetune``
variant starts from an ONNX ReID model's weights this way.
"""

from __future__ import annotations

from pathlib import Path

from reidpipe.errors import CheckpointError, UsageError


def onnx_to_torch(path: str | Path):
    """The ONNX graph as an eager ``torch.nn.Module`` (``onnx2torch``, an optional dependency)."""
    try:
        from onnx2torch import convert
    except ImportError:
        raise UsageError(
            "eager-torch figures for an ONNX model need the optional package onnx2torch "
            "(pip install onnx2torch); or pass a reidpipe checkpoint as --reid-weights"
        ) from None
    try:
        return convert(str(path)).eval()
    except Exception as exc:  # onnx2torch raises NotImplementedError / KeyError for unsupported ops
        raise CheckpointError(
            f"{path}: onnx2torch cannot convert this graph to torch ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
