"""``reidpipe bench --embed-only``: crops/s of one ReID model in eager torch and in ONNX Runtime.

:func:`bench_embedding` measures crops/s at several batch sizes, eager torch (``torch.inference_mode``,
channels-last on CPU, fp16 autocast on CUDA) against ONNX Runtime, calling the two in turn so both
see the same load. A reidpipe checkpoint is exported to ONNX with a dynamic batch
(``reidpipe.reid.export``); an ONNX model is converted to torch with ``onnx2torch`` (optional
dependency) and, when its batch is fixed at 1, run as the pipeline runs it: its cached copy with a
dynamic batch dimension, checked to give the same embeddings (:mod:`reidpipe.pipeline.models.onnx_batch`).
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, InputNotFoundError, UsageError
from reidpipe.pipeline.bench.machine import resolve_device
from reidpipe.pipeline.models.onnx_batch import dynamic_batch_copy, onnx_batch_dim, onnx_input_size
from reidpipe.pipeline.models.onnx_torch import onnx_to_torch
from reidpipe.pipeline.models.runtime import onnx_session

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
ORT_TARGET_AT_32 = 1.5  # ONNX Runtime should embed >= 1.5x the crops/s of eager torch fp32 at batch 32


def _time_alternating(
    fn_a: Callable[[], Any],
    fn_b: Callable[[], Any],
    *,
    min_time: float,
    min_reps: int = 3,
    max_reps: int = 200,
    sync_a: Callable[[], None] | None = None,
) -> tuple[list[float], list[float]]:
    """Seconds of each call of two functions called in turn (a, b, a, b, ...), so that both see the
    same background load on a shared machine; each gets one untimed warm-up call first, and calls go
    on until ``min_reps`` pairs and ``min_time`` seconds (or ``max_reps`` pairs)."""
    fn_a()
    if sync_a:
        sync_a()
    fn_b()
    ta: list[float] = []
    tb: list[float] = []
    while len(ta) < max_reps and (len(ta) < min_reps or max(sum(ta), sum(tb)) < min_time):
        t0 = time.perf_counter()
        fn_a()
        if sync_a:
            sync_a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn_b()
        tb.append(time.perf_counter() - t0)
    return ta, tb


class _TorchRunner:
    """Eager torch forward of an embedding function, as the pipeline runs it."""

    def __init__(self, fn: Callable, module, device: str, amp: bool):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.module = module.to(self.device).eval()
        self.channels_last = not self.cuda
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.fn = fn
        self.amp = bool(amp and self.cuda)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device, non_blocking=True)
            if self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            if self.amp:
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.fn(t)
            else:
                out = self.fn(t)
            return out.float().cpu().numpy()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class _Models:
    """The two runtimes' forms of one model: ``fn`` (eager torch, ``module`` is its parameters) and the
    ONNX file ONNX Runtime runs, of input size ``h`` x ``w``; ``per_crop_ort``: batch fixed at 1."""

    h: int
    w: int
    ort_path: Path
    module: Any
    fn: Callable[[Any], Any]
    per_crop_ort: bool


def _onnx_models(weights: Path, info: dict[str, Any]) -> _Models:
    """An ``.onnx`` model: ONNX Runtime runs it (or its dynamic-batch copy), torch its onnx2torch
    conversion."""
    import torch

    info["kind"] = "onnx"
    h, w = onnx_input_size(weights)
    ort_path: Path = weights
    per_crop_ort = False
    batch = onnx_batch_dim(weights)
    if batch == 1:
        try:
            info["dynamic_copy"] = dynamic_batch_copy(weights)
            ort_path = Path(info["dynamic_copy"]["path"])
            info["notes"].append(
                "batch fixed at 1 in the file: ONNX Runtime runs its cached copy with a "
                "dynamic batch dimension (checked equal to the original; pipeline/models/onnx_batch.py)"
            )
        except CheckpointError as exc:
            per_crop_ort = True
            info["notes"].append(f"ONNX Runtime runs crop by crop: {exc}")
    elif isinstance(batch, int):
        raise CheckpointError(
            f"{weights}: batch dimension fixed at {batch}; the embedding benchmark "
            "needs a model with a dynamic batch or a batch of 1"
        )
    module = onnx_to_torch(ort_path)
    info["torch_impl"] = "onnx2torch conversion of the same ONNX graph"
    fn: Callable[[Any], Any] = module
    if per_crop_ort:  # the converted graph keeps the fixed batch of 1 too

        def fn(t: Any, _m: Any = module) -> Any:
            return torch.cat([_m(t[i : i + 1]) for i in range(len(t))])

        info["torch_impl"] += " (crop by crop)"
    return _Models(int(h), int(w), ort_path, module, fn, per_crop_ort)


def _checkpoint_models(weights: Path, tmp: Path, keep_export: bool, info: dict[str, Any]) -> _Models:
    """A reidpipe checkpoint: torch runs its ``embed``, ONNX Runtime its export into ``tmp``."""
    from reidpipe.reid.checkpoint import load_checkpoint
    from reidpipe.reid.export import export_onnx

    info["kind"] = "checkpoint"
    model = load_checkpoint(str(weights), map_location="cpu")
    if isinstance(model, tuple):  # (model, extras) style return
        model = model[0]
    model = model.eval()
    h, w = model.input_size
    ort_path = tmp / "model.onnx"
    export_onnx(model, ort_path)
    info["torch_impl"] = f"reidpipe {getattr(model, 'variant', type(model).__name__)} .embed"
    info["onnx_export"] = str(ort_path) if keep_export else "temporary (reid.export)"
    return _Models(int(h), int(w), ort_path, model, model.embed, False)


def _runtime_notes(info: dict[str, Any], dev: str, threads: int) -> None:
    """What makes the two runtimes' figures unlike each other on this machine."""
    if not dev.startswith("cuda") and threads > 1 and not os.environ.get("OMP_WAIT_POLICY"):
        info["notes"].append(
            "torch's OpenMP threads spin-wait by default: on a busy or shared CPU eager torch with "
            f"{threads} threads can be many times slower than with 1; compare with --threads 1 or "
            "OMP_WAIT_POLICY=PASSIVE"
        )
    if dev.startswith("cuda") and "CUDAExecutionProvider" not in info["ort_providers"]:
        info["notes"].append(
            "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu): its "
            "figures are on CPU while torch runs on the GPU"
        )


def _check_agreement(info: dict[str, Any], torch_out: np.ndarray, ort_out: np.ndarray) -> None:
    """The two runtimes' embeddings of the same probe crops (a note when they are not one model)."""
    a, b = _l2(torch_out), _l2(ort_out)
    info["embed_dim"] = int(a.shape[1])
    info["agreement"] = {
        "max_abs_diff": float(np.abs(a - b).max()),
        "min_cosine": float((a * b).sum(1).min()),
        "crops": len(a),
    }
    if info["agreement"]["min_cosine"] < 0.99:
        info["notes"].append(
            "eager torch and ONNX Runtime disagree (min cosine "
            f"{info['agreement']['min_cosine']:.4f}): the two runtimes may not run "
            "the same model"
        )


def _row(bs: int, t_torch: list[float], t_ort: list[float]) -> dict[str, Any]:
    mt, mo = statistics.median(t_torch), statistics.median(t_ort)
    return {
        "batch": bs,
        "torch_crops_per_s": round(bs / mt, 2),
        "ort_crops_per_s": round(bs / mo, 2),
        "speedup_ort_over_torch": round(mt / mo, 3),
        "torch_ms_per_batch": round(mt * 1e3, 3),
        "ort_ms_per_batch": round(mo * 1e3, 3),
        "reps": [len(t_torch), len(t_ort)],
    }


def bench_embedding(
    weights: str | Path,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    device: str | None = "cpu",
    min_time: float = 1.0,
    threads: int | None = None,
    amp: bool = True,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Crops/s of one ReID model at each batch size, eager torch vs ONNX Runtime (see module doc).

    ``weights``: a reidpipe checkpoint (``.pt``/``.pth``/``.safetensors``...) or an ``.onnx`` model.
    Inputs are random normalised images of the model's input size (the preprocessing is the same
    for both runtimes, so it is left out). ``threads`` (default: torch's thread count) is used by
    both runtimes. Temporary files (the exported / re-saved ONNX) go to ``workdir`` or a temporary
    folder that is removed afterwards."""
    import torch

    weights = Path(weights)
    if not weights.exists():
        raise InputNotFoundError(f"--reid-weights not found: {weights}")
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise UsageError(f"--batch-sizes must be positive integers, got {list(batch_sizes)}")
    dev = resolve_device(device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    threads = int(threads or torch.get_num_threads())
    torch.set_num_threads(threads)
    info: dict[str, Any] = {
        "weights": str(weights),
        "device": dev,
        "threads": threads,
        "min_time_s": min_time,
        "amp": bool(amp and dev.startswith("cuda")),
        "notes": [],
    }
    tmp_ctx = tempfile.TemporaryDirectory(prefix="reidpipe-bench-") if workdir is None else None
    tmp = Path(tmp_ctx.name if tmp_ctx is not None else str(workdir))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        if weights.suffix.lower() == ".onnx":
            models = _onnx_models(weights, info)
        else:
            models = _checkpoint_models(weights, tmp, workdir is not None, info)
        info["input_size"] = [models.h, models.w]
        runner = _TorchRunner(models.fn, models.module, dev, amp)
        session = onnx_session(str(models.ort_path), dev, threads)
        in_name = session.get_inputs()[0].name
        info["ort_providers"] = list(session.get_providers())
        _runtime_notes(info, dev, threads)

        def ort_run(x: np.ndarray) -> np.ndarray:
            if models.per_crop_ort:
                return np.concatenate([session.run(None, {in_name: x[i : i + 1]})[0] for i in range(len(x))])
            return session.run(None, {in_name: x})[0]

        rng = np.random.default_rng(0)
        probe = rng.standard_normal((min(4, sizes[-1]), 3, models.h, models.w)).astype(np.float32)
        _check_agreement(info, runner(probe), np.asarray(ort_run(probe), np.float32))
        rows = []
        for bs in sizes:
            x = rng.standard_normal((bs, 3, models.h, models.w)).astype(np.float32)
            t_torch, t_ort = _time_alternating(
                functools.partial(runner, x), functools.partial(ort_run, x), min_time=min_time, sync_a=runner.sync
            )
            rows.append(_row(bs, t_torch, t_ort))
        info["results"] = rows
        at32 = next((r for r in rows if r["batch"] == 32), None)
        info["speedup_at_32"] = at32["speedup_ort_over_torch"] if at32 else None
        info["ort_mode"] = "per-crop" if models.per_crop_ort else "batched"
        info["target_speedup_at_32"] = ORT_TARGET_AT_32
        return info
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()


__all__ = ["DEFAULT_BATCH_SIZES", "bench_embedding"]
