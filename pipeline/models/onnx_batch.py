"""A dynamic batch for ONNX image models exported with their batch fixed at 1, checked and cached.

torchreid's OSNet export (and many others) fixes the batch at 1, so ONNX Runtime can only embed it
crop by crop. :func:`make_dynamic_batch` re-saves such a graph with a symbolic batch dimension and
checks that the copy gives the original's outputs (cosine and max abs difference, crop by crop
against one batch). :func:`dynamic_batch_copy` is what the pipeline and ``reidpipe bench
--embed-only`` use: the copy is built once and cached, never touching the user's file,

- beside the user's file (``<stem>.batch-dynamic.<sha256[:16]>.onnx``) when that folder is
  writable, else in the cache folder (``$XDG_CACHE_HOME/reidpipe/onnx``, default
  ``~/.cache/reidpipe/onnx``);
- keyed by the SHA-256 of the source file's content (in the name and in the copy's metadata key
  ``reidpipe.dynamic_batch_of``; the check's figures in ``reidpipe.dynamic_batch_check``): a copy
  whose recorded hash differs from its source's, or that no longer loads, is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, UsageError
from reidpipe.pipeline.models.runtime import onnx_session

SOURCE_HASH_KEY = "reidpipe.dynamic_batch_of"
CHECK_KEY = "reidpipe.dynamic_batch_check"  # the figures of the check, JSON
MAX_ABS_DIFF = 1e-4  # the copy must give the original's outputs to this (float32 rounding)
MIN_COSINE = 0.9999


def _dims(value_info) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def onnx_input_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image model's first input ``(N, 3, H, W)``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = _dims(model.graph.input[0])
    h, w = (dims[2], dims[3]) if len(dims) == 4 else (None, None)
    if not isinstance(h, int) or not isinstance(w, int):
        raise CheckpointError(
            f"{path}: input {model.graph.input[0].name} has shape {dims}, expected (N, 3, H, W) with fixed H and W"
        )
    return h, w


def onnx_batch_dim(path: str | Path) -> int | str | None:
    """The first input's batch dimension: an int when fixed, its name (or None) when dynamic."""
    import onnx

    return _dims(onnx.load(str(path), load_external_data=False).graph.input[0])[0]


def _free_reshapes(model) -> int:
    """Turn the leading 1 of every constant ``Reshape`` target shape into 0 (ONNX: "copy this
    dimension from the input"): how a batch-1 export hard-codes its flatten. Returns how many."""
    from onnx import numpy_helper

    def freed(tensor) -> bool:
        shape = numpy_helper.to_array(tensor).copy()
        if shape.ndim == 1 and len(shape) and shape[0] == 1:
            shape[0] = 0
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
            return True
        return False

    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in inits:
            rewritten += freed(inits[name])
        elif name in consts:
            rewritten += sum(freed(a.t) for a in consts[name].attribute if a.name == "value")
    return rewritten


def parity(original, batched, x: np.ndarray) -> dict[str, float]:
    """Outputs of two onnxruntime sessions on ``x`` (N, 3, H, W): the original crop by crop, the
    batched one as one batch. ``max_abs_diff`` and ``min_cosine`` over the N outputs."""
    name = original.get_inputs()[0].name
    ref = np.concatenate([original.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))]).reshape(len(x), -1)
    got = np.asarray(batched.run(None, {batched.get_inputs()[0].name: x})[0]).reshape(len(x), -1)
    if ref.shape != got.shape:
        return {"max_abs_diff": float("inf"), "min_cosine": -1.0, "crops": len(x)}
    norms = np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
    return {
        "max_abs_diff": float(np.abs(ref - got).max()),
        "min_cosine": float(((ref * got).sum(1) / norms).min()),
        "crops": len(x),
    }


def agrees(figures: dict[str, float]) -> bool:
    return figures["max_abs_diff"] <= MAX_ABS_DIFF and figures["min_cosine"] >= MIN_COSINE


def make_dynamic_batch(
    src: str | Path,
    dst: str | Path,
    *,
    inputs: np.ndarray | None = None,
    check_crops: int = 4,
    atol: float = MAX_ABS_DIFF,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Re-save an ONNX image model whose batch is fixed at 1 with a dynamic batch ``'batch'`` at
    ``dst``, then check that ``inputs`` (N, 3, H, W; default ``check_crops`` random images) embedded as
    one batch by the new graph give the outputs the original gives crop by crop (max abs difference
    <= ``atol``, cosine >= ``MIN_COSINE``).

    The rewrite sets dimension 0 of every graph input and output to ``'batch'``, drops the stored
    intermediate shapes and frees the batch of constant ``Reshape`` shapes (:func:`_free_reshapes`);
    ``metadata`` is added to the copy's ``metadata_props``. Raises ``CheckpointError`` naming ``src``
    when the result does not load or does not match (``dst`` is then removed)."""
    import onnx

    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise UsageError(f"make_dynamic_batch would overwrite its input {src}")
    model = onnx.load(str(src))
    batch = _dims(model.graph.input[0])[0]
    if batch != 1:
        raise CheckpointError(f"{src}: batch dimension is {batch!r}, not a fixed 1; nothing to rewrite")
    for vi in list(model.graph.input) + list(model.graph.output):
        dim = vi.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    del model.graph.value_info[:]
    rewritten = _free_reshapes(model)
    if metadata:
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **metadata})
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    if inputs is None:
        h, w = onnx_input_size(src)
        inputs = np.random.default_rng(seed).standard_normal((check_crops, 3, h, w)).astype(np.float32)
    try:
        figures = parity(onnx_session(str(src), "cpu"), onnx_session(str(dst), "cpu"), np.asarray(inputs, np.float32))
    except Exception as exc:  # onnxruntime's own error classes
        dst.unlink(missing_ok=True)
        raise CheckpointError(
            f"{src}: the dynamic-batch copy does not run ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''})"
        ) from None
    if not (figures["max_abs_diff"] <= atol and figures["min_cosine"] >= MIN_COSINE):
        dst.unlink(missing_ok=True)
        raise CheckpointError(
            f"{src}: the dynamic-batch copy disagrees with the original (max abs difference "
            f"{figures['max_abs_diff']:.3g} > {atol} or cosine {figures['min_cosine']:.6f} < {MIN_COSINE})"
        )
    return {
        "path": str(dst),
        "reshapes_rewritten": rewritten,
        "max_abs_diff_vs_original": figures["max_abs_diff"],
        "min_cosine_vs_original": figures["min_cosine"],
        "checked_crops": figures["crops"],
    }


# ------------------------------------------------------------------------------------------ cache
def cache_dir() -> Path:
    """Where copies go when the source's folder is not writable: ``$XDG_CACHE_HOME/reidpipe/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reidpipe" / "onnx"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def writable(folder: Path) -> bool:
    """We may write into ``folder``: ``os.access`` says so and its mode has a write bit (a folder
    marked read-only stays read-only to root too, who ``os.access`` lets write anywhere)."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def _places(src: Path, digest: str) -> list[Path]:
    """Where the copy of ``src`` may live, in order: beside it (if writable), then the cache folder."""
    name = f"{src.stem}.batch-dynamic.{digest[:16]}.onnx"
    beside = [src.parent / name] if writable(src.parent) else []
    return [*beside, cache_dir() / name]


def _recorded_check(copy: Path, digest: str) -> dict[str, Any] | None:
    """The check figures a cached copy records, if it records ``digest`` as its source and still
    loads with a dynamic batch; else None (rebuild it)."""
    import onnx

    try:
        model = onnx.load(str(copy), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        figures = json.loads(props[CHECK_KEY])
    except Exception:  # a truncated or foreign file, a copy without its figures: rebuild it
        return None
    if props.get(SOURCE_HASH_KEY) != digest or isinstance(_dims(model.graph.input[0])[0], int):
        return None
    return figures if isinstance(figures, dict) else None


def _record_check(path: Path, figures: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, CHECK_KEY: json.dumps(figures)}
    )
    onnx.save(model, str(path))


def dynamic_batch_copy(src: str | Path, *, inputs: np.ndarray | None = None) -> dict[str, Any]:
    """The checked dynamic-batch copy of ``src`` (batch fixed at 1), built once and cached as the module
    docstring says. Returns :func:`make_dynamic_batch`'s figures plus ``cached`` (True when an existing
    copy was reused) and ``source_sha256``. Raises ``CheckpointError`` when the copy cannot be made
    equal to the original, or written anywhere."""
    src = Path(src)
    digest = file_sha256(src)
    places = _places(src, digest)
    for place in places:
        figures = _recorded_check(place, digest) if place.is_file() else None
        if figures is not None:
            return {**figures, "path": str(place), "cached": True, "source_sha256": digest}
    errors = []
    for place in places:
        tmp = place.with_name(f".{place.name}.{os.getpid()}.tmp")
        try:
            info = make_dynamic_batch(src, tmp, inputs=inputs, metadata={SOURCE_HASH_KEY: digest})
            _record_check(tmp, {k: v for k, v in info.items() if k != "path"})
            os.replace(tmp, place)  # atomic: a run that dies half-way leaves no half-written copy
        except OSError as exc:  # not writable after all (read-only mount, full disk): try the next place
            tmp.unlink(missing_ok=True)
            errors.append(f"{place.parent}: {exc.strerror or exc}")
            continue
        return {**info, "path": str(place), "cached": False, "source_sha256": digest}
    raise CheckpointError(f"{src}: cannot write its dynamic-batch copy ({'; '.join(errors)})")


__all__ = [
    "cache_dir",
    "dynamic_batch_copy",
    "make_dynamic_batch",
    "onnx_batch_dim",
    "onnx_input_size",
    "parity",
]
