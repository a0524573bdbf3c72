"""What ``reidpipe train --init MODEL`` starts from: recognise the file, refuse what is no ReID embedder.

Three kinds of file are accepted, each turned into the model part of a training config:

- an **ONNX ReID model**: one image input ``(N, 3, H, W)`` of a person crop (taller than wide) and one
  output of one vector per crop, ``(N, D)`` (or ``(N, D, 1, 1)``), 16 <= D <= 8192. A detector
  (several outputs or a ``(N, boxes, values)`` output) or an image classifier (a square input) is
  refused. -> variant ``finetune`` with the ONNX graph as its trunk (``model.options.backbone=onnx``);
- a **torchreid OSNet state dict** (``.pth``/``.pt``, a plain mapping of tensors, or one under
  ``state_dict``) -> variant ``finetune`` with an OSNet trunk of the file's width, loaded from it;
- a **reidpipe checkpoint** -> its own variant and architecture, its weights loaded by the trainer
  (``model.init``); tensors whose shape differs (the classifier of another training set) stay as built.

Torch files load with ``weights_only=True``: a file whose pickle would run code is refused, never run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidpipe.errors import CheckpointError, InputNotFoundError

MIN_DIM, MAX_DIM = 16, 8192
TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".safetensors")


@dataclass
class InitModel:
    """The model part of a training config for one ``--init`` file."""

    kind: str  # "onnx" | "osnet" | "checkpoint"
    variant: str
    options: dict[str, Any] = field(default_factory=dict)
    pretrained: str | bool = False
    checkpoint: str | None = None

    def overrides(self) -> list[str]:
        """``--set`` items that make a config build this model."""
        import json

        items = [f"model.variant={self.variant}", f"model.pretrained={json.dumps(self.pretrained)}"]
        items += [f"model.options.{k}={json.dumps(v)}" for k, v in self.options.items()]
        if self.checkpoint is not None:
            items.append(f"model.init={json.dumps(self.checkpoint)}")
        return items


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """A torch file's tensors (``weights_only=True``); a ``{"state_dict": ...}`` wrapper is opened."""
    from reidpipe.reid.checkpoint import load_torch_file

    data = load_torch_file(Path(path), "cpu", "ReID model state dict")
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict) and "format" not in data:
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a mapping of tensors (a state dict)")
    return data


def resolve_init(path: str | Path) -> InitModel:
    """Recognise ``path`` (see the module docstring); one-line errors name the file and what it is."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"--init: model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        check_onnx_embedder(path)
        return InitModel("onnx", "finetune", {"backbone": "onnx", "onnx": str(path.resolve())})
    return _torch_init(path)


def _torch_init(path: Path) -> InitModel:
    from reidpipe.reid.backbones.osnet import is_osnet_state_dict, osnet_width

    if path.suffix == ".safetensors":
        from reidpipe.reid.checkpoint import read_checkpoint

        ckpt = read_checkpoint(path)
        return _checkpoint_init(path, ckpt)
    data = read_state_dict(path)
    if "format" in data:
        from reidpipe.reid.checkpoint import read_checkpoint

        return _checkpoint_init(path, read_checkpoint(path))
    state = {str(k).removeprefix("module."): v for k, v in data.items()}
    if is_osnet_state_dict(state):
        width = osnet_width(state)
        backbone = {0.25: "osnet_x0_25", 0.5: "osnet_x0_5", 0.75: "osnet_x0_75", 1.0: "osnet_x1_0"}[width]
        return InitModel("osnet", "finetune", {"backbone": backbone}, pretrained=str(path.resolve()))
    sample = ", ".join(list(map(str, state))[:3]) or "no keys"
    raise CheckpointError(
        f"--init {path}: not a ReID embedder reidpipe can fine-tune (neither a reidpipe checkpoint nor a "
        f"torchreid OSNet state dict; keys: {sample}); give an ONNX ReID model, an OSNet .pth or a reidpipe checkpoint"
    )


def _checkpoint_init(path: Path, ckpt: dict[str, Any]) -> InitModel:
    opts = dict(ckpt.get("build_kwargs") or {})
    return InitModel("checkpoint", str(ckpt["variant"]), opts, pretrained=False, checkpoint=str(path.resolve()))


def _dims(value_info) -> list[Any]:
    dims: list[Any] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None))
    return dims


def check_onnx_embedder(path: Path) -> None:
    """Refuse an ONNX model that is not one embedding per person crop (see the module docstring)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  onnx raises DecodeError / OSError / ValueError for bad files
        raise CheckpointError(f"--init {path} is not a readable ONNX model ({type(exc).__name__})") from None
    names = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in names]
    outputs = list(proto.graph.output)
    why = _not_embedder(inputs, outputs)
    if why:
        raise CheckpointError(f"--init {path} is not a ReID embedder: {why}")


def _not_embedder(inputs: list, outputs: list) -> str | None:
    if len(inputs) != 1:
        return f"{len(inputs)} inputs (an embedder takes one image batch)"
    shape = _dims(inputs[0])
    if len(shape) != 4 or shape[1] != 3:
        return f"input shape {shape} (an embedder takes (N, 3, H, W) images)"
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int) and h <= w:
        return f"input {h}x{w} is not a person crop (taller than wide): an image classifier or a detector"
    if len(outputs) != 1:
        return f"{len(outputs)} outputs (a detector or a multi-head model; an embedder gives one (N, D) feature)"
    out = _dims(outputs[0])
    if len(out) < 2 or any(d != 1 for d in out[2:]):
        return f"output shape {out} is not one vector per crop (N, D): a detector or a dense model"
    dim = out[1]
    if isinstance(dim, int) and not MIN_DIM <= dim <= MAX_DIM:
        return f"output width {dim} outside {MIN_DIM}..{MAX_DIM}"
    return None


__all__ = ["InitModel", "check_onnx_embedder", "read_state_dict", "resolve_init"]
