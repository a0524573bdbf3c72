"""reidpipe checkpoints: everything needed to use a trained model with no other information.

A checkpoint is a ``torch.save`` file (``.pt``/``.pth``, loaded with ``weights_only=True`` so no
pickled code ever runs) or a ``.safetensors`` file (tensors + a JSON metadata header). It holds:

==================  =====================================================================
``format``          ``"reidpipe.checkpoint/1"`` (the tag that tells a reidpipe checkpoint apart)
``variant``         registry name, e.g. ``"clipreid"``
``build_kwargs``    the ``create_model`` overrides that rebuild the architecture
``num_classes``     identities of the training set
``input_size``      ``[H, W]`` the model expects
``pixel_mean/std``  RGB normalisation applied after scaling pixels to [0, 1]
``embed_dim``       width of ``embed`` (the pipeline's feature size)
``stage``           the model's training stage when saved
``state_dict``      the model's tensors (on CPU)
``reidpipe_version``  the package version that wrote it
any training state  extra keyword arguments of :func:`save_checkpoint` (epoch, optimizer state,
                    metrics, config ...) made of tensors, numbers, strings, None, lists and dicts
==================  =====================================================================

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a crash never leaves
a half-written checkpoint. Functions: :func:`save_checkpoint`, :func:`read_checkpoint` (the raw dict),
:func:`load_checkpoint` (a ready model, in eval mode). A missing file raises
``InputNotFoundError``; a corrupt, foreign or incompatible one raises ``CheckpointError``; both name
the path.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError, OutputError
from reidpipe.files import atomic_output

__all__ = ["FORMAT", "load_torch_file", "save_checkpoint", "read_checkpoint", "load_checkpoint", "checkpoint_metadata"]

FORMAT = "reidpipe.checkpoint/1"
_META_KEYS = (
    "format",
    "variant",
    "build_kwargs",
    "num_classes",
    "input_size",
    "pixel_mean",
    "pixel_std",
    "embed_dim",
    "stage",
    "reidpipe_version",
)
_RESERVED = set(_META_KEYS) | {"state_dict"}
_SAFETENSORS_META_KEY = "reidpipe"


def _version() -> str:
    from reidpipe import __version__

    return __version__


def checkpoint_metadata(model) -> dict[str, Any]:
    """The metadata fields of a checkpoint for ``model`` (everything but the tensors)."""
    return {
        "format": FORMAT,
        "variant": str(model.variant),
        "build_kwargs": _plain(dict(model.build_kwargs), "build_kwargs"),
        "num_classes": int(model.num_classes),
        "input_size": [int(v) for v in model.input_size],
        "pixel_mean": [float(v) for v in model.pixel_mean],
        "pixel_std": [float(v) for v in model.pixel_std],
        "embed_dim": int(model.embed_dim),
        "stage": str(model.stage),
        "reidpipe_version": _version(),
    }


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` loads under ``weights_only=True``; tuples become lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ConfigError(f"checkpoint state {where}: key {k!r} must be a string or an integer")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:  # numpy scalar
        return value.item()
    raise ConfigError(
        f"checkpoint state {where}: {type(value).__name__} cannot be stored safely; "
        "use tensors, numbers, strings, lists and dicts"
    )


def save_checkpoint(path: str | os.PathLike, model, **state: Any) -> Path:
    """Write ``model`` (and optional training ``state``) to ``path`` atomically; returns the path.

    The suffix picks the format: ``.safetensors`` (tensors + JSON metadata; ``state`` must then be
    JSON-serialisable) or anything else for ``torch.save``. ``state`` keys may not reuse the
    metadata names (``format``, ``variant``, ``state_dict`` ...).
    """
    path = Path(path)
    clash = _RESERVED.intersection(state)
    if clash:
        raise ConfigError(f"checkpoint state keys {sorted(clash)} are reserved for the checkpoint's metadata")
    meta = checkpoint_metadata(model)
    state = {k: _plain(v, k) for k, v in state.items()}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_output(path, "checkpoint") as tmp, _write_failure_is_output_error(path):
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            try:
                header = json.dumps({**meta, "state": state}, allow_nan=True)
            except TypeError:
                raise ConfigError(
                    f"checkpoint {path}: training state with tensors needs a .pt file, not .safetensors"
                ) from None
            save_file(tensors, tmp, metadata={_SAFETENSORS_META_KEY: header})
        else:
            torch.save({**meta, "state_dict": tensors, **state}, tmp)
    return path


@contextmanager
def _write_failure_is_output_error(path: Path) -> Iterator[None]:
    """torch.save and safetensors report a failed write (a full disk) as a ``RuntimeError`` /
    ``SafetensorError`` of their own: an :class:`OutputError` naming ``path``, as any other write."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:
        if type(exc).__name__ not in ("RuntimeError", "SafetensorError"):
            raise
        free = shutil.disk_usage(path.parent).free
        why = "no space left on the device" if free < 1 << 20 else str(exc).strip().splitlines()[0][:160]
        raise OutputError(f"cannot write checkpoint {path} ({why})") from None


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a reidpipe checkpoint into a dict (metadata, ``state_dict`` and training state)."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise InputNotFoundError(f"checkpoint {path} is a folder; give the checkpoint file (e.g. {path}/best.pt)")
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{path} is an ONNX model, not a reidpipe checkpoint; the pipeline's ONNX "
            "embedder runs it (reidpipe run --reid-weights model.onnx)"
        )
    if path.suffix == ".safetensors":
        ckpt = _read_safetensors(path, map_location)
    else:
        ckpt = load_torch_file(path, map_location, "reidpipe checkpoint")
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(
            f"{path} is not a reidpipe checkpoint (no 'format' tag; a bare state dict or "
            "another project's file); convert it with save_checkpoint(path, model)"
        )
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {ckpt['format']!r}; this reidpipe {_version()} reads {FORMAT!r}")
    missing = [k for k in ("variant", "num_classes", "state_dict", "input_size", "embed_dim") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is an incomplete reidpipe checkpoint (missing {', '.join(missing)})")
    _check_metadata_types(path, ckpt)
    return ckpt


def load_torch_file(path: Path, map_location: str | torch.device = "cpu", what: str = "reidpipe checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never pickled code;
    an unreadable file or one holding Python objects is a ``CheckpointError`` naming ``path``."""
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        TypeError,
    ) as exc:
        if "weights only load failed" in str(exc).lower():  # the unpickler refused a Python object
            raise CheckpointError(
                f"{path} holds pickled Python objects, which reidpipe never loads "
                f"(checkpoints load with weights_only=True); it is not a {what}"
            ) from None
        raise CheckpointError(
            f"{path} is corrupt or not a {what} (not a readable torch file: {type(exc).__name__})"
        ) from None
    except OSError as exc:
        raise InputNotFoundError(f"cannot read {path}: {exc.strerror or exc}") from None
    return data


def _check_metadata_types(path, ckpt: dict[str, Any]) -> None:
    """The metadata values a model is rebuilt from must have their types and bounds (a hand-edited or
    foreign file with ``num_classes: "ten"`` or ``1e9`` is a ``CheckpointError``, not a traceback or a
    terabyte allocation); ``build_kwargs.input_size`` is held to the same bound as ``input_size``."""
    from reidpipe.limits import MAX_CLASSES, MAX_EMBED_DIM, MAX_REID_SIDE

    def whole(v: Any, hi: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= hi

    def size_ok(size: Any) -> bool:
        return isinstance(size, (list, tuple)) and len(size) == 2 and all(whole(v, MAX_REID_SIDE) for v in size)

    problems = []
    if not isinstance(ckpt["variant"], str):
        problems.append(f"variant={ckpt['variant']!r} (a name)")
    for key, hi in (("num_classes", MAX_CLASSES), ("embed_dim", MAX_EMBED_DIM)):
        if not whole(ckpt[key], hi):
            problems.append(f"{key}={ckpt[key]!r} (an integer from 1 to {hi})")
    if not size_ok(ckpt["input_size"]):
        problems.append(f"input_size={ckpt['input_size']!r} (two integers H, W from 1 to {MAX_REID_SIDE})")
    built = ckpt.get("build_kwargs")
    if built is not None and not isinstance(built, dict):
        problems.append(f"build_kwargs={built!r} (a mapping)")
    elif built and built.get("input_size") is not None and not size_ok(built["input_size"]):
        problems.append(
            f"build_kwargs.input_size={built['input_size']!r} (two integers H, W from 1 to {MAX_REID_SIDE})"
        )
    if problems:
        raise CheckpointError(f"{path}: corrupt reidpipe checkpoint metadata: {'; '.join(problems)} expected")


def _read_safetensors(path: Path, map_location) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if not isinstance(map_location, torch.device) else map_location.type
    try:
        with safe_open(str(path), framework="pt", device=device) as fh:
            header = (fh.metadata() or {}).get(_SAFETENSORS_META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({str(exc)[:200]})") from None
    if header is None:
        raise CheckpointError(f"{path} is a safetensors file without reidpipe metadata (not a reidpipe checkpoint)")
    try:
        meta = json.loads(header)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt reidpipe metadata header ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt reidpipe metadata header")
    state = meta.pop("state", {}) or {}
    return {**meta, "state_dict": tensors, **state}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Rebuild the model of a checkpoint (``create_model(..., pretrained=False)``), load its weights
    and return it in eval mode, in the stage it was saved in, on ``map_location``."""
    from reidpipe.reid.registry import create_model, list_variants

    ckpt = read_checkpoint(path, map_location)
    variant = ckpt["variant"]
    if variant not in list_variants():
        raise CheckpointError(
            f"{path} holds a {variant!r} model, which this reidpipe does not provide "
            f"(known: {', '.join(list_variants())})"
        )
    build_kwargs = dict(ckpt.get("build_kwargs") or {})
    if build_kwargs.get("input_size") is not None:
        build_kwargs["input_size"] = tuple(build_kwargs["input_size"])
    try:
        model = create_model(variant, num_classes=int(ckpt["num_classes"]), pretrained=False, **build_kwargs)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: cannot rebuild its {variant!r} model: {exc}") from None
    state_dict = ckpt["state_dict"]
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of tensors")
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in first if "size mismatch" in ln), first[0] if first else "")
        raise CheckpointError(f"{path}: weights do not match the {variant!r} architecture ({detail[:200]})") from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing {len(result.missing_keys)} (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(f"unexpected {len(result.unexpected_keys)} (e.g. {result.unexpected_keys[0]})")
        raise CheckpointError(f"{path}: weights do not match the {variant!r} architecture: {'; '.join(parts)}")
    model.input_size = tuple(int(v) for v in ckpt["input_size"])
    if ckpt.get("pixel_mean") is not None:
        model.pixel_mean = tuple(float(v) for v in ckpt["pixel_mean"])
    if ckpt.get("pixel_std") is not None:
        model.pixel_std = tuple(float(v) for v in ckpt["pixel_std"])
    stage = ckpt.get("stage")
    if stage in getattr(model, "STAGES", ()) and stage != model.stage:
        model.set_stage(stage)
    model.to(map_location)
    model.eval()
    return model
