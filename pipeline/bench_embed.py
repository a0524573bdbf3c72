"""``reidpipe bench --embed-only``: crops/s of one ReID model in eager torch and in ONNX Runtime.

:func:`bench_embedding` measures crops/s at several batch sizes, eager torch (``torch.inference_mode``,
channels-last on CPU, fp16 autocast on CUDA) against ONNX Runtime, calling the two in turn so both
see the same load. A reidpipe checkpoint is exported to ONNX with a dynamic batch
(``reidpipe.reid.export``); an ONNX model is converted to torch with ``onnx2torch`` (optional
dependency) and, when its batch is fixed at 1, re-saved with a dynamic batch dimension
(:func:`make_dynamic_batch`) after checking that the re-saved graph gives the same embeddings.
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, InputNotFoundError, UsageError
from reidpipe.pipeline.machine import resolve_device

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
ORT_TARGET_AT_32 = 1.5  # issue 5: ONNX Runtime >= 1.5x eager torch fp32 crops/s at batch 32


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


def make_dynamic_batch(
    src: str | Path, dst: str | Path, *, check_crops: int = 4, atol: float = 1e-4, seed: int = 0
) -> dict[str, Any]:
    """Re-save an ONNX image model whose batch is fixed at 1 with a dynamic batch ``'batch'`` at
    ``dst``, then check that ``check_crops`` random crops embedded as one batch by the new graph give
    the embeddings the original gives crop by crop (max abs difference <= ``atol``).

    The rewrite sets dimension 0 of every graph input and output to ``'batch'``, drops the stored
    intermediate shapes, and turns the leading 1 of every constant ``Reshape`` target shape into 0
    (ONNX: "copy this dimension from the input"), which is how a batch-1 export hard-codes its
    flatten before the final linear layer. Raises ``CheckpointError`` naming ``src`` when the result
    does not load or does not match."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

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
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in inits:
            shape = numpy_helper.to_array(inits[name]).copy()
            if shape.ndim == 1 and len(shape) and shape[0] == 1:
                shape[0] = 0
                inits[name].CopyFrom(numpy_helper.from_array(shape, name))
                rewritten += 1
        elif name in consts:
            for attr in consts[name].attribute:
                if attr.name == "value":
                    shape = numpy_helper.to_array(attr.t).copy()
                    if shape.ndim == 1 and len(shape) and shape[0] == 1:
                        shape[0] = 0
                        attr.t.CopyFrom(numpy_helper.from_array(shape, attr.t.name))
                        rewritten += 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    h, w = onnx_input_size(src)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((check_crops, 3, h, w)).astype(np.float32)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        orig = ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
        new = ort.InferenceSession(str(dst), opts, providers=["CPUExecutionProvider"])
        name = orig.get_inputs()[0].name
        ref = np.concatenate([orig.run(None, {name: x[i : i + 1]})[0] for i in range(check_crops)])
        got = new.run(None, {new.get_inputs()[0].name: x})[0]
    except Exception as exc:  # onnxruntime's own error classes
        raise CheckpointError(
            f"{src}: the dynamic-batch copy does not run ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''})"
        ) from None
    diff = float(np.abs(ref - got).max()) if ref.shape == got.shape else float("inf")
    if not diff <= atol:
        raise CheckpointError(
            f"{src}: the dynamic-batch copy disagrees with the original "
            f"(max abs difference {diff:.3g} > {atol}); benchmark it crop by crop"
        )
    return {
        "path": str(dst),
        "reshapes_rewritten": rewritten,
        "max_abs_diff_vs_original": diff,
        "checked_crops": check_crops,
    }


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


def _ort_session(path: str | Path, device: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # onnxruntime's own error classes
        raise CheckpointError(f"not a loadable ONNX model: {path} ({type(exc).__name__})") from None


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


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
        per_crop_ort = False
        if weights.suffix.lower() == ".onnx":
            info["kind"] = "onnx"
            h, w = onnx_input_size(weights)
            ort_path: Path = weights
            batch = onnx_batch_dim(weights)
            if batch == 1:
                try:
                    info["dynamic_copy"] = make_dynamic_batch(weights, tmp / "dynamic_batch.onnx")
                    ort_path = tmp / "dynamic_batch.onnx"
                    info["notes"].append(
                        "batch fixed at 1 in the file: ONNX Runtime runs a temporary copy "
                        "with a dynamic batch dimension (checked equal to the original)"
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
            fn = module
            if per_crop_ort:  # the converted graph keeps the fixed batch of 1 too

                def fn(t, _m=module):
                    return torch.cat([_m(t[i : i + 1]) for i in range(len(t))])

                info["torch_impl"] += " (crop by crop)"
        else:
            info["kind"] = "checkpoint"
            from reidpipe.reid.checkpoint import load_checkpoint
            from reidpipe.reid.export import export_onnx

            model = load_checkpoint(str(weights), map_location="cpu")
            if isinstance(model, tuple):  # (model, extras) style return
                model = model[0]
            model = model.eval()
            h, w = model.input_size
            ort_path = tmp / "model.onnx"
            export_onnx(model, ort_path)
            info["torch_impl"] = f"reidpipe {getattr(model, 'variant', type(model).__name__)} .embed"
            info["onnx_export"] = str(ort_path) if workdir is not None else "temporary (reid.export)"
            module, fn = model, model.embed
        info["input_size"] = [int(h), int(w)]
        runner = _TorchRunner(fn, module, dev, amp)
        session = _ort_session(ort_path, dev, threads)
        in_name = session.get_inputs()[0].name
        info["ort_providers"] = list(session.get_providers())
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

        def ort_run(x: np.ndarray) -> np.ndarray:
            if per_crop_ort:
                return np.concatenate([session.run(None, {in_name: x[i : i + 1]})[0] for i in range(len(x))])
            return session.run(None, {in_name: x})[0]

        rng = np.random.default_rng(0)
        probe = rng.standard_normal((min(4, sizes[-1]), 3, h, w)).astype(np.float32)
        a, b = _l2(runner(probe)), _l2(np.asarray(ort_run(probe), np.float32))
        info["embed_dim"] = int(a.shape[1])
        info["agreement"] = {
            "max_abs_diff": float(np.abs(a - b).max()),
            "min_cosine": float((a * b).sum(1).min()),
            "crops": len(probe),
        }
        if info["agreement"]["min_cosine"] < 0.99:
            info["notes"].append(
                "eager torch and ONNX Runtime disagree (min cosine "
                f"{info['agreement']['min_cosine']:.4f}): the two runtimes may not run "
                "the same model"
            )
        rows = []
        for bs in sizes:
            x = rng.standard_normal((bs, 3, h, w)).astype(np.float32)
            t_torch, t_ort = _time_alternating(
                functools.partial(runner, x), functools.partial(ort_run, x), min_time=min_time, sync_a=runner.sync
            )
            mt, mo = statistics.median(t_torch), statistics.median(t_ort)
            rows.append(
                {
                    "batch": bs,
                    "torch_crops_per_s": round(bs / mt, 2),
                    "ort_crops_per_s": round(bs / mo, 2),
                    "speedup_ort_over_torch": round(mt / mo, 3),
                    "torch_ms_per_batch": round(mt * 1e3, 3),
                    "ort_ms_per_batch": round(mo * 1e3, 3),
                    "reps": [len(t_torch), len(t_ort)],
                }
            )
        info["results"] = rows
        at32 = next((r for r in rows if r["batch"] == 32), None)
        info["speedup_at_32"] = at32["speedup_ort_over_torch"] if at32 else None
        info["ort_mode"] = "per-crop" if per_crop_ort else "batched"
        info["target_speedup_at_32"] = ORT_TARGET_AT_32
        return info
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()


__all__ = [
    "DEFAULT_BATCH_SIZES",
    "bench_embedding",
    "make_dynamic_batch",
    "onnx_batch_dim",
    "onnx_input_size",
    "onnx_to_torch",
]
