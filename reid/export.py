"""Export a model's ``embed`` to ONNX, with the metadata the pipeline's ONNX embedder reads.

The ONNX model computes exactly ``model.embed``:

- input ``images``: float32 (N, 3, H, W), RGB, **already normalised**: ``(pixels / 255 - mean) / std``
  with the ``mean``/``std`` of the metadata. N is dynamic (axis name ``batch``); H, W are fixed.
- output ``features``: float32 (N, D), L2-normalised.

``metadata_props`` (all strings):

=========================  ====================================================
``reidpipe.format``        ``reidpipe.onnx/1``
``reidpipe.variant``       e.g. ``clipreid``
``reidpipe.input_size``    ``"H,W"``
``reidpipe.color``         ``"RGB"``
``reidpipe.mean``          ``"r,g,b"`` (applied after dividing pixels by 255)
``reidpipe.std``           ``"r,g,b"``
``reidpipe.embed_dim``     ``"D"``
``reidpipe.input``         ``"normalized"`` (the convention above)
``reidpipe.build_kwargs``  JSON of the architecture options
``reidpipe.version``       the reidpipe version that wrote it
``reidpipe.link_threshold``  (optional) the fallback linking cosine, 0.3-0.95
=========================  ====================================================

:func:`export_onnx` writes atomically, then checks the file with onnxruntime against ``embed`` on a
random batch (and on a batch of another size, to prove the batch axis is dynamic) and returns the
maximum absolute difference.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from reidpipe.errors import CheckpointError, ConfigError
from reidpipe.files import atomic_output

if TYPE_CHECKING:
    from reidpipe.reid.base import ReIDModel

__all__ = ["export_onnx", "ExportReport", "ONNX_FORMAT", "DEFAULT_OPSET", "read_onnx_metadata"]

ONNX_FORMAT = "reidpipe.onnx/1"
DEFAULT_OPSET = 17


class _Embed(nn.Module):
    def __init__(self, model: ReIDModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images)


@dataclass
class ExportReport:
    path: Path
    opset: int
    embed_dim: int
    input_size: tuple[int, int]
    max_abs_diff: float | None
    checked_batch_sizes: tuple[int, ...]
    metadata: dict[str, str]


def onnx_metadata(model) -> dict[str, str]:
    from reidpipe import __version__

    h, w = model.input_size
    return {
        "reidpipe.format": ONNX_FORMAT,
        "reidpipe.variant": str(model.variant),
        "reidpipe.input_size": f"{int(h)},{int(w)}",
        "reidpipe.color": "RGB",
        "reidpipe.mean": ",".join(repr(float(v)) for v in model.pixel_mean),
        "reidpipe.std": ",".join(repr(float(v)) for v in model.pixel_std),
        "reidpipe.embed_dim": str(int(model.embed_dim)),
        "reidpipe.input": "normalized",
        "reidpipe.build_kwargs": json.dumps(model.build_kwargs, sort_keys=True),
        "reidpipe.version": __version__,
    }


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``reidpipe.*`` metadata of an exported model (without loading its weights)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError for bad files
        raise CheckpointError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props if p.key.startswith("reidpipe.")}


def export_onnx(
    model,
    output: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    batch_size: int = 1,
    verify: bool = True,
    atol: float = 1e-4,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
) -> ExportReport:
    """Export ``model.embed`` to ``output`` (see the module docstring); returns an :class:`ExportReport`.

    ``batch_size`` is the batch of the example input used for tracing (the axis stays dynamic).
    With ``verify``, a difference above ``atol`` raises ``CheckpointError``. ``metadata``: extra
    ``reidpipe.*`` keys (e.g. ``reidpipe.link_threshold``, the pipeline's fallback linking cosine).
    """
    import onnx

    if not 9 <= int(opset) <= 21:
        raise ConfigError(f"--opset must be between 9 and 21, got {opset}")
    if int(batch_size) < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    output = Path(output)
    was_training = model.training
    model.eval()
    model = model.float()
    device = next(model.parameters()).device
    h, w = model.input_size
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(int(batch_size), 3, h, w, generator=gen).to(device)
    wrapper = _Embed(model).eval()
    diff = None
    sizes: tuple[int, ...] = ()
    try:  # written to a temporary name, checked there, renamed: an unverified model never sits at ``output``
        with atomic_output(output, "ONNX model") as tmp:
            fastpath = torch.backends.mha.get_fastpath_enabled()
            # nn.MultiheadAttention's inference fast path (a fused kernel) has no ONNX form
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _onnx_export(wrapper, example, tmp, opset)
            finally:
                torch.backends.mha.set_fastpath_enabled(fastpath)
            proto = onnx.load(tmp)
            meta = {**onnx_metadata(model), **(metadata or {})}
            del proto.metadata_props[:]
            for key, value in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.save(proto, tmp)
            if verify:
                diff, sizes = _verify(model, Path(tmp), example, gen, name=output)
                if diff > atol:
                    raise CheckpointError(f"{output}: the ONNX export differs from embed by {diff:.3g} (> {atol:g})")
    finally:
        model.train(was_training)
    return ExportReport(
        path=output,
        opset=int(opset),
        embed_dim=int(model.embed_dim),
        input_size=(h, w),
        max_abs_diff=diff,
        checked_batch_sizes=sizes,
        metadata=meta,
    )


def _onnx_export(wrapper: nn.Module, example: torch.Tensor, path: str, opset: int) -> None:
    try:
        torch.onnx.export(
            wrapper,
            (example,),
            path,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=int(opset),
            do_constant_folding=True,
            dynamo=False,
            verbose=False,
        )
    except torch.onnx.errors.OnnxExporterError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(f"cannot export this model to ONNX opset {opset}: {first}") from None


def _verify(
    model, path: Path, example: torch.Tensor, gen: torch.Generator, name: Path
) -> tuple[float, tuple[int, ...]]:
    """The largest difference between ``embed`` and the ONNX model at ``path`` (``name`` in messages),
    on the example batch and a larger one (the batch axis is dynamic)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    other = torch.randn(example.shape[0] + 2, *example.shape[1:], generator=gen).to(example.device)
    worst = 0.0
    sizes = []
    for batch in (example, other):
        with torch.no_grad():
            ref = model.embed(batch).float().cpu().numpy()
        got = session.run(["features"], {"images": batch.cpu().numpy().astype("float32")})[0]
        if got.shape != ref.shape:
            raise CheckpointError(f"{name}: ONNX output shape {got.shape} != embed shape {ref.shape}")
        worst = max(worst, float(abs(got - ref).max()))
        sizes.append(int(batch.shape[0]))
    return worst, tuple(sizes)
