"""``reidpipe bench``: measured speed of the pipeline, of the embedders and of the linker.

Three benchmarks, each returning a JSON-able dict (the CLI writes them into one ``bench.json``):

- :func:`bench_pipeline` runs the full pipeline (:class:`reidpipe.pipeline.runner.Pipeline`) on some
  sources and, in the same process, a *detector-only* pass over the same frames (same reader threads
  and queue, same stride and ``max_frames``, same detector settings: decode + detect, nothing else).
  The ratio ``pipeline_fps / detector_only_fps`` is what tracking, cropping, embedding, linking and
  exporting cost on top of the detector; being a ratio of two figures taken one after the other on
  the same machine, it survives a noisy, shared machine far better than either fps alone.
- :func:`bench_embedding` measures crops/s of one ReID model at several batch sizes, in eager torch
  (``torch.inference_mode``, channels-last on CPU, fp16 autocast on CUDA) and in ONNX Runtime. A
  reidpipe checkpoint is exported to ONNX with a dynamic batch (``reidpipe.reid.export``); an ONNX
  model is converted to torch with ``onnx2torch`` (optional dependency) and, when its batch is fixed
  at 1, re-saved into a temporary folder with a dynamic batch dimension, after checking that the
  re-saved graph gives the same embeddings as the original crop by crop.
- :func:`bench_linking` times cross-camera linking of 1k/10k/100k synthetic 512-d tracklets
  (:func:`reidpipe.pipeline.link_synthetic.time_linking`).

Every result carries :func:`environment` (CPU model and cores, load average, library versions,
device), since a figure without its machine means little. :func:`format_report` prints the tables.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, InputNotFoundError, UsageError

STAGES = ("decode", "detect", "track", "crop", "embed", "link", "export")
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
DEFAULT_LINK_SIZES = (1_000, 10_000, 100_000)
TARGETS = {"pipeline_over_detector": 0.85, "ort_over_torch_at_32": 1.5, "link_100k_seconds": 10.0}


# ---------------------------------------------------------------------------------------- context
def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    with contextlib.suppress(OSError):  # no /proc (not Linux): fall back below
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _nvidia_present() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia")


def resolve_device(device: str | None) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else unchanged. Torch is
    imported only when it already is or an NVIDIA driver is present, so that benchmarking a pipeline
    that does not use torch does not count torch's memory in its peak RSS."""
    if device in (None, "", "auto"):
        if "torch" not in sys.modules and not _nvidia_present():
            return "cpu"
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return str(device)


def environment(device: str | None = None) -> dict[str, Any]:
    """Where the figures were measured: CPU, cores, load, memory, library versions, device."""
    import psutil

    env: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count_logical": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": resolve_device(device),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    from importlib import metadata

    for mod in ("torch", "onnxruntime", "onnx", "numpy", "cv2", "supervision", "trackers", "ultralytics",
                "faiss"):
        version = None
        try:  # the installed distribution's version, without importing the package
            version = metadata.version({"faiss": "faiss-cpu", "cv2": "opencv-python-headless"}.get(mod, mod))
        except metadata.PackageNotFoundError:
            try:
                version = getattr(__import__(mod), "__version__", None)
            except Exception:  # not installed, or a broken optional install: the figure just lacks it
                version = None
        env[f"{mod}_version"] = version
    env["torch_threads"] = None
    if "torch" in sys.modules or env["device"].startswith("cuda"):  # only when torch is in play
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if env["device"].startswith("cuda") and torch.cuda.is_available():
            env["cuda_device"] = torch.cuda.get_device_name(torch.device(env["device"]))
            env["cuda_version"] = torch.version.cuda
    with contextlib.suppress(ImportError):  # onnxruntime is optional for a torch-only benchmark
        import onnxruntime as ort

        env["onnxruntime_providers"] = ort.get_available_providers()
    from reidpipe import __version__

    env["reidpipe_version"] = __version__
    return env


class PeakMemory:
    """Peak resident memory (and CUDA max allocated) while the ``with`` block runs.

    RSS is sampled by a daemon thread every ``interval`` seconds (psutil), which catches a peak of the
    block even after the process's lifetime peak (``ru_maxrss``, also reported) was set earlier. The
    same thread records the process's CPU time, so :meth:`cpu_between` can tell the CPU seconds of a
    part of the block (e.g. a pipeline run without its setup)."""

    def __init__(self, interval: float = 0.02, cuda: bool = False):
        import psutil

        self._proc = psutil.Process()
        self.interval = float(interval)
        self.cuda = cuda
        self.peak_rss = 0
        self.start_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_samples: list[tuple[float, float]] = []  # (perf_counter, process CPU seconds)

    def _mark(self) -> None:
        t = self._proc.cpu_times()
        self.cpu_samples.append((time.perf_counter(), float(t.user + t.system)))

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            self._mark()

    def cpu_at(self, when: float) -> float:
        """Process CPU seconds at ``perf_counter`` time ``when`` (linear between samples)."""
        import bisect

        s = self.cpu_samples
        i = bisect.bisect_left(s, (when, float("-inf")))
        if i <= 0:
            return s[0][1]
        if i >= len(s):
            return s[-1][1]
        (t0, c0), (t1, c1) = s[i - 1], s[i]
        return c0 + (c1 - c0) * (when - t0) / max(t1 - t0, 1e-12)

    def cpu_between(self, start: float, end: float) -> float:
        return max(self.cpu_at(end) - self.cpu_at(start), 0.0)

    def __enter__(self) -> PeakMemory:
        self.start_rss = self.peak_rss = self._proc.memory_info().rss
        self.cpu_samples = []
        self._mark()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, name="bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
        self._mark()

    def to_json(self) -> dict[str, Any]:
        import resource

        out: dict[str, Any] = {
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "start_rss_mb": round(self.start_rss / 2**20, 1),
            # Linux reports ru_maxrss in KiB
            "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if self.cuda:
            import torch

            out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out


def _time_calls(fn: Callable[[], Any], *, min_time: float, min_reps: int = 3, max_reps: int = 200,
                warmup: int = 1, sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds of each timed call of ``fn`` after ``warmup`` untimed calls; calls repeat until both
    ``min_reps`` calls and ``min_time`` seconds are reached (or ``max_reps`` calls)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times: list[float] = []
    total = 0.0
    while len(times) < max_reps and (len(times) < min_reps or total < min_time):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return times


def _time_alternating(fn_a: Callable[[], Any], fn_b: Callable[[], Any], *, min_time: float, min_reps: int = 3,
                      max_reps: int = 200, sync_a: Callable[[], None] | None = None
                      ) -> tuple[list[float], list[float]]:
    """Like :func:`_time_calls` for two functions called in turn (a, b, a, b, ...), so that both see
    the same background load on a shared machine; each gets one untimed warm-up call first."""
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


# ---------------------------------------------------------------------------------------- embedding
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
    if len(dims) != 4 or not all(isinstance(d, int) for d in dims[2:]):
        raise CheckpointError(f"{path}: input {model.graph.input[0].name} has shape {dims}, "
                              "expected (N, 3, H, W) with fixed H and W")
    return int(dims[2]), int(dims[3])


def onnx_batch_dim(path: str | Path) -> int | str | None:
    """The first input's batch dimension: an int when fixed, its name (or None) when dynamic."""
    import onnx

    return _dims(onnx.load(str(path), load_external_data=False).graph.input[0])[0]


def make_dynamic_batch(src: str | Path, dst: str | Path, *, check_crops: int = 4, atol: float = 1e-4,
                       seed: int = 0) -> dict[str, Any]:
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
        ref = np.concatenate([orig.run(None, {name: x[i:i + 1]})[0] for i in range(check_crops)])
        got = new.run(None, {new.get_inputs()[0].name: x})[0]
    except Exception as exc:  # onnxruntime's own error classes
        raise CheckpointError(f"{src}: the dynamic-batch copy does not run ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    diff = float(np.abs(ref - got).max()) if ref.shape == got.shape else float("inf")
    if not diff <= atol:
        raise CheckpointError(f"{src}: the dynamic-batch copy disagrees with the original "
                              f"(max abs difference {diff:.3g} > {atol}); benchmark it crop by crop")
    return {"path": str(dst), "reshapes_rewritten": rewritten, "max_abs_diff_vs_original": diff,
            "checked_crops": check_crops}


def onnx_to_torch(path: str | Path):
    """The ONNX graph as an eager ``torch.nn.Module`` (``onnx2torch``, an optional dependency)."""
    try:
        from onnx2torch import convert
    except ImportError:
        raise UsageError("eager-torch figures for an ONNX model need the optional package onnx2torch "
                         "(pip install onnx2torch); or pass a reidpipe checkpoint as --reid-weights") from None
    try:
        return convert(str(path)).eval()
    except Exception as exc:  # onnx2torch raises NotImplementedError / KeyError for unsupported ops
        raise CheckpointError(f"{path}: onnx2torch cannot convert this graph to torch "
                              f"({type(exc).__name__}: {str(exc)[:160]})") from None


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


def bench_embedding(weights: str | Path, *, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                    device: str | None = "cpu", min_time: float = 1.0, threads: int | None = None,
                    amp: bool = True, workdir: str | Path | None = None) -> dict[str, Any]:
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
    info: dict[str, Any] = {"weights": str(weights), "device": dev, "threads": threads,
                            "min_time_s": min_time, "amp": bool(amp and dev.startswith("cuda")),
                            "notes": []}
    tmp_ctx = tempfile.TemporaryDirectory(prefix="reidpipe-bench-") if workdir is None else None
    tmp = Path(tmp_ctx.name if tmp_ctx else workdir)
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
                    info["notes"].append("batch fixed at 1 in the file: ONNX Runtime runs a temporary copy "
                                         "with a dynamic batch dimension (checked equal to the original)")
                except CheckpointError as exc:
                    per_crop_ort = True
                    info["notes"].append(f"ONNX Runtime runs crop by crop: {exc}")
            elif isinstance(batch, int):
                raise CheckpointError(f"{weights}: batch dimension fixed at {batch}; the embedding benchmark "
                                      "needs a model with a dynamic batch or a batch of 1")
            module = onnx_to_torch(ort_path)
            info["torch_impl"] = "onnx2torch conversion of the same ONNX graph"
            fn = module
            if per_crop_ort:  # the converted graph keeps the fixed batch of 1 too

                def fn(t, _m=module):
                    return torch.cat([_m(t[i:i + 1]) for i in range(len(t))])

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
                "OMP_WAIT_POLICY=PASSIVE")
        if dev.startswith("cuda") and "CUDAExecutionProvider" not in info["ort_providers"]:
            info["notes"].append("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu): its "
                                 "figures are on CPU while torch runs on the GPU")

        def ort_run(x: np.ndarray) -> np.ndarray:
            if per_crop_ort:
                return np.concatenate([session.run(None, {in_name: x[i:i + 1]})[0] for i in range(len(x))])
            return session.run(None, {in_name: x})[0]

        rng = np.random.default_rng(0)
        probe = rng.standard_normal((min(4, sizes[-1]), 3, h, w)).astype(np.float32)
        a, b = _l2(runner(probe)), _l2(np.asarray(ort_run(probe), np.float32))
        info["embed_dim"] = int(a.shape[1])
        info["agreement"] = {"max_abs_diff": float(np.abs(a - b).max()),
                             "min_cosine": float((a * b).sum(1).min()), "crops": len(probe)}
        if info["agreement"]["min_cosine"] < 0.99:
            info["notes"].append("eager torch and ONNX Runtime disagree (min cosine "
                                 f"{info['agreement']['min_cosine']:.4f}): the two runtimes may not run "
                                 "the same model")
        rows = []
        for bs in sizes:
            x = rng.standard_normal((bs, 3, h, w)).astype(np.float32)
            t_torch, t_ort = _time_alternating(lambda x=x: runner(x), lambda x=x: ort_run(x), min_time=min_time,
                                               sync_a=runner.sync)
            mt, mo = statistics.median(t_torch), statistics.median(t_ort)
            rows.append({"batch": bs, "torch_crops_per_s": round(bs / mt, 2), "ort_crops_per_s": round(bs / mo, 2),
                         "speedup_ort_over_torch": round(mt / mo, 3),
                         "torch_ms_per_batch": round(mt * 1e3, 3), "ort_ms_per_batch": round(mo * 1e3, 3),
                         "reps": [len(t_torch), len(t_ort)]})
        info["results"] = rows
        at32 = next((r for r in rows if r["batch"] == 32), None)
        info["speedup_at_32"] = at32["speedup_ort_over_torch"] if at32 else None
        info["ort_mode"] = "per-crop" if per_crop_ort else "batched"
        info["target_speedup_at_32"] = TARGETS["ort_over_torch_at_32"]
        return info
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()


# ---------------------------------------------------------------------------------------- linking
def bench_linking(sizes: Sequence[int] = DEFAULT_LINK_SIZES, dim: int = 512) -> dict[str, Any]:
    """Seconds to link ``n`` synthetic ``dim``-d tracklets across 4 cameras, for each ``n``
    (:func:`reidpipe.pipeline.link_synthetic.time_linking`: offline linking, generation not timed)."""
    from reidpipe.pipeline.link_synthetic import time_linking

    rows = []
    for n in sizes:
        if int(n) < 1:
            raise UsageError(f"--link-sizes must be positive, got {n}")
        s = float(time_linking(int(n), dim=dim))
        rows.append({"tracklets": int(n), "seconds": round(s, 4), "tracklets_per_s": round(n / s, 1) if s else None})
    out: dict[str, Any] = {"dim": dim, "results": rows, "target_100k_seconds": TARGETS["link_100k_seconds"]}
    hit = next((r for r in rows if r["tracklets"] == 100_000), None)
    out["seconds_100k"] = hit["seconds"] if hit else None
    return out


# ---------------------------------------------------------------------------------------- pipeline
def detector_only_pass(config, sources: Sequence[str], detectors: Sequence[Any]) -> dict[str, Any]:
    """Decode + detect over the frames a pipeline run with ``config`` processes: the same reader
    threads and bounded queues (:func:`reidpipe.pipeline.sources.open_sources`, same stride and
    ``max_frames``), the same round-robin over cameras, ``detectors[i]`` for source ``i``; no
    tracking, cropping, embedding, linking or writing. Times are measured like the runner's."""
    from reidpipe.pipeline.sources import open_sources, round_robin

    notify = threading.Event()
    srcs = open_sources([str(s) for s in sources], names=config.names, offsets=config.offsets,
                        stride=config.stride, max_frames=config.max_frames, queue_size=config.queue_size,
                        reconnect_attempts=config.reconnect_attempts, reconnect_backoff=config.reconnect_backoff,
                        notify=notify)
    index = {s.info.camera: i for i, s in enumerate(srcs)}
    frames = {s.info.camera: 0 for s in srcs}
    detect_s = wait_s = 0.0
    detections = 0
    t_loop = time.perf_counter()
    cpu0 = _cpu_seconds()
    try:
        for s in srcs:
            s.start()
        def waited(seconds: float) -> None:
            nonlocal wait_s
            wait_s += seconds

        for s, item in round_robin(srcs, notify, waited=waited):
            if item is None:
                if s.error is not None:
                    raise s.error
                continue
            t0 = time.perf_counter()
            dets = detectors[index[item.camera]].detect(item.image, index=item.index)
            detect_s += time.perf_counter() - t0
            detections += len(dets)
            frames[item.camera] += 1
    finally:
        for s in srcs:
            s.stop()
        for s in srcs:
            s.join(timeout=2.0)
    wall = max(time.perf_counter() - t_loop, 1e-9)
    cpu = _cpu_seconds() - cpu0
    total = sum(frames.values())
    return {
        "cpu_seconds": round(cpu, 4),
        "seconds": {"decode": round(sum(s.decode_seconds for s in srcs), 4), "detect": round(detect_s, 4),
                    "wait": round(wait_s, 4), "wall": round(wall, 4)},
        "frames": frames,
        "frames_total": total,
        "fps": {**{c: round(n / wall, 3) for c, n in frames.items()}, "total": round(total / wall, 3)},
        "detections": detections,
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _pipeline_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The runner's ``stats`` plus the derived figures of the bench: the processing wall time is
    everything after setup (model loading, opening sources): the frame loop, the final linking and
    the export, so ``fps`` counts every second a user waits once the models are loaded."""
    sec = dict(stats["seconds"])
    wall = max(float(sec["total"]) - float(sec.get("setup", 0.0)), 1e-9)
    frames = dict(stats["frames"])
    total = sum(frames.values())
    crops = int(stats.get("crops_embedded", 0))
    dets = int(stats.get("detections", 0))
    embed_s = float(sec.get("embed", 0.0))
    return {
        "seconds": {**{k: sec.get(k, 0.0) for k in STAGES}, "wait": sec.get("wait", 0.0),
                    "setup": sec.get("setup", 0.0), "loop": sec.get("loop", 0.0), "wall": round(wall, 4),
                    "total": sec.get("total", 0.0)},
        "stage_share": {k: round(float(sec.get(k, 0.0)) / wall, 4) for k in STAGES},
        "frames": frames,
        "frames_total": total,
        "fps": {**{c: round(n / wall, 3) for c, n in frames.items()}, "total": round(total / wall, 3)},
        "loop_fps": dict(stats.get("fps", {})),
        "crops_embedded": crops,
        "crops_per_s_embedding": round(crops / embed_s, 2) if embed_s > 0 else None,
        "crops_per_s_wall": round(crops / wall, 2),
        "detections": dets,
        "embedded_share": round(crops / dets, 4) if dets else 0.0,
        "tracked_boxes": stats.get("tracked_boxes"),
        "tracklets": stats.get("tracklets"),
        "identities": stats.get("identities"),
        "corrupt_frames": stats.get("corrupt_frames"),
    }


def _config_summary(config) -> dict[str, Any]:
    keys = ("detector", "detector_kind", "detections", "det_conf", "device", "tracker", "reid", "reid_weights",
            "embed_batch", "stride", "max_frames", "queue_size")
    out = {k: getattr(config, k) for k in keys}
    out["sample_every"] = config.sampler.every
    out["bank"] = config.sampler.bank
    out["refine"] = config.link.refine
    if out["detections"] is not None:
        out["detector"] = None
    return out


def bench_pipeline(config, sources: Sequence[str], *, repeat: int = 1, output: str | Path | None = None
                   ) -> dict[str, Any]:
    """Run the pipeline ``repeat`` times, each followed by a detector-only pass over the same frames
    with the same detector object(s) (the pipeline's own, already loaded). The reported pipeline and
    detector-only sections are each the fastest of the repeats (on a shared machine noise only ever
    slows a run down); ``ratio`` is their quotient and ``repeats`` keeps every pair.

    Pipeline outputs go to ``output`` (default: a temporary folder removed afterwards)."""
    from reidpipe.pipeline.detect import load_detector
    from reidpipe.pipeline.runner import Pipeline
    from reidpipe.pipeline.sources import source_kind

    if repeat < 1:
        raise UsageError(f"--repeat must be >= 1, got {repeat}")
    sources = [str(s) for s in sources]
    if not sources:
        raise UsageError("no sources given (--sources A B ...)")
    device = resolve_device(config.device)
    use_cuda = False
    if device.startswith("cuda"):
        try:
            import torch

            use_cuda = torch.cuda.is_available()
        except ImportError:
            use_cuda = False
    tmp_ctx = tempfile.TemporaryDirectory(prefix="reidpipe-bench-run-") if output is None else None
    out_dir = Path(tmp_ctx.name) if tmp_ctx else Path(output)
    runs: list[dict[str, Any]] = []
    det_runs: list[dict[str, Any]] = []
    info: list[Any] = []
    detectors: list[Any] | None = None

    def run_pipeline(r: int) -> None:
        nonlocal detectors, info
        pipe = Pipeline(config.replace(output=str(out_dir / f"run{r}") if repeat > 1 else str(out_dir)))
        with PeakMemory(cuda=use_cuda) as mem:
            t0 = time.perf_counter()
            pipe.run(sources)
            t1 = time.perf_counter()
        summary = _pipeline_summary(pipe.stats)
        # CPU seconds after setup (model loading is not part of the per-frame cost)
        summary["cpu_seconds"] = round(mem.cpu_between(t0 + float(pipe.stats["seconds"].get("setup", 0.0)), t1), 4)
        summary["memory"] = mem.to_json()
        runs.append(summary)
        info = pipe.sources
        if config.detections is not None:  # public detections: one reader per det.txt
            detectors = [load_detector(config, d) for d in config.detections]
        else:  # the pipeline's own (shared) detector object, already loaded and warm
            detectors = [pipe.detector] * len(sources)

    def run_detector_only() -> None:
        with PeakMemory(cuda=use_cuda) as mem:
            det = detector_only_pass(config, sources, detectors)
        det["memory"] = mem.to_json()
        det_runs.append(det)

    try:
        for r in range(repeat):
            # alternate the order (P D, D P, P D, ...) so neither pass always runs second
            if r % 2 == 0:
                run_pipeline(r)
                run_detector_only()
            else:
                run_detector_only()
                run_pipeline(r)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    best = max(runs, key=lambda s: s["fps"]["total"])
    best_det = max(det_runs, key=lambda s: s["fps"]["total"])
    p_fps, d_fps = best["fps"]["total"], best_det["fps"]["total"]
    # noise-robust companions of the wall-clock ratio (see format_report / performance notes):
    # CPU seconds per frame of both passes, and the detector's share of the pipeline's own wall time
    p_cpu = min(x["cpu_seconds"] / max(x["frames_total"], 1) for x in runs)
    d_cpu = min(x["cpu_seconds"] / max(x["frames_total"], 1) for x in det_runs)
    in_run = max(x["seconds"]["detect"] / x["seconds"]["wall"] for x in runs)
    result: dict[str, Any] = {
        "config": _config_summary(config),
        "sources": [s.to_json() for s in info],
        "pipeline": best,
        "detector_only": best_det,
        "pipeline_fps": p_fps,
        "detector_only_fps": d_fps,
        "ratio": round(p_fps / d_fps, 4) if d_fps > 0 else None,
        "target_ratio": TARGETS["pipeline_over_detector"],
        "cpu_ratio": round(d_cpu / p_cpu, 4) if p_cpu > 0 else None,
        "detect_share_of_pipeline_wall": round(in_run, 4),
        "repeats": [{"pipeline_fps": a["fps"]["total"], "detector_only_fps": b["fps"]["total"],
                     "ratio": round(a["fps"]["total"] / b["fps"]["total"], 4) if b["fps"]["total"] > 0 else None}
                    for a, b in zip(runs, det_runs)],
        "notes": [],
    }
    if any(source_kind(s) in ("stream", "webcam") for s in sources):
        result["notes"].append("live sources: the pipeline and the detector-only pass saw different frames")
    if best["frames_total"] != best_det["frames_total"]:
        result["notes"].append(f"the passes processed different frame counts ({best['frames_total']} vs "
                               f"{best_det['frames_total']})")
    return result


# ---------------------------------------------------------------------------------------- report
def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def format_report(result: dict[str, Any]) -> str:
    """Readable tables of a bench result (any of its sections)."""
    lines: list[str] = []
    env = result.get("environment")
    if env:
        load = env.get("load_average_1m")
        if env.get("load_average_1m_start") is not None:
            load = f"{env['load_average_1m_start']} -> {load}"
        threads = f" ({env['torch_threads']} threads)" if env.get("torch_threads") else ""
        lines.append(f"machine: {env.get('cpu_model')}, {env.get('cpu_affinity')} cores usable "
                     f"({env.get('cpu_count_logical')} logical), load average {load}, "
                     f"device {env.get('device')}{' (' + env['cuda_device'] + ')' if env.get('cuda_device') else ''}; "
                     f"torch {env.get('torch_version')}{threads}, "
                     f"onnxruntime {env.get('onnxruntime_version')}")
    if "pipeline" in result:
        p, d = result["pipeline"], result["detector_only"]
        lines += ["", (f"pipeline: {p['frames_total']} frames in {p['seconds']['wall']:.2f} s after "
                       f"{p['seconds']['setup']:.2f} s setup")]
        rows = [[k, p["seconds"][k], f"{100 * p['stage_share'][k]:.1f}%",
                 d["seconds"].get(k) if k in ("decode", "detect") else None] for k in STAGES]
        rows.append(["wait (main thread idle)", p["seconds"]["wait"], "", d["seconds"]["wait"]])
        rows.append(["wall", p["seconds"]["wall"], "100%", d["seconds"]["wall"]])
        lines += _table(["stage", "pipeline s", "share of wall", "detector-only s"], rows)
        lines.append("(decode runs in reader threads, overlapping the other stages)")
        lines.append("")
        cams = [c for c in p["fps"] if c != "total"]
        rows = [[c, p["frames"][c], p["fps"][c], d["fps"].get(c)] for c in cams]
        rows.append(["total", p["frames_total"], p["fps"]["total"], d["fps"]["total"]])
        lines += _table(["camera", "frames", "pipeline fps", "detector-only fps"], rows)
        ratio = result.get("ratio")
        lines.append(f"pipeline / detector-only = {_fmt(ratio, 3)} (target >= {result['target_ratio']}: "
                     f"{_verdict(None if ratio is None else ratio >= result['target_ratio'])}); "
                     f"noise-robust companions: CPU-time ratio {_fmt(result.get('cpu_ratio'), 3)}, "
                     f"detect share of the pipeline's wall {_fmt(result.get('detect_share_of_pipeline_wall'), 3)}")
        lines.append(f"detections {p['detections']}, crops embedded {p['crops_embedded']} "
                     f"({100 * p['embedded_share']:.1f}% of detections), "
                     f"{_fmt(p['crops_per_s_embedding'], 1)} crops/s in the embed stage, "
                     f"{p['tracklets']} tracklets -> {p['identities']} identities")
        mem = p["memory"]
        lines.append(f"peak RSS {mem['peak_rss_mb']} MB (process max {mem['process_max_rss_mb']} MB)"
                     + (f", CUDA max allocated {mem['cuda_max_allocated_mb']} MB"
                        if "cuda_max_allocated_mb" in mem else ""))
        if len(result.get("repeats", [])) > 1:
            lines.append("repeats (pipeline fps / detector-only fps / ratio): " + "; ".join(
                f"{r['pipeline_fps']:.2f} / {r['detector_only_fps']:.2f} / {_fmt(r['ratio'], 3)}"
                for r in result["repeats"]))
        for n in result.get("notes", []):
            lines.append(f"note: {n}")
    emb = result.get("embedding")
    if emb:
        lines += ["", (f"embedding: {emb['weights']} ({emb['kind']}, input {emb['input_size'][0]}x"
                       f"{emb['input_size'][1]}, {emb['embed_dim']}-d) on {emb['device']}, {emb['threads']} threads; "
                       f"torch = {emb['torch_impl']}; ONNX Runtime {emb['ort_mode']}")]
        rows = [[r["batch"], r["torch_crops_per_s"], r["ort_crops_per_s"], f"{r['speedup_ort_over_torch']:.2f}x"]
                for r in emb["results"]]
        lines += _table(["batch", "torch crops/s", "ORT crops/s", "ORT / torch"], rows)
        s32 = emb.get("speedup_at_32")
        lines.append(f"ORT / torch at batch 32 = {_fmt(s32)}x (target >= {emb['target_speedup_at_32']}: "
                     f"{_verdict(None if s32 is None else s32 >= emb['target_speedup_at_32'])}); "
                     f"outputs agree: min cosine {emb['agreement']['min_cosine']:.5f}")
        for n in emb.get("notes", []):
            lines.append(f"note: {n}")
    link = result.get("linking")
    if link:
        lines += ["", f"linking ({link['dim']}-d synthetic tracklets, 4 cameras):"]
        lines += _table(["tracklets", "seconds", "tracklets/s"],
                        [[r["tracklets"], r["seconds"], r["tracklets_per_s"]] for r in link["results"]])
        s = link.get("seconds_100k")
        if s is not None:
            lines.append(f"100k tracklets in {s:.2f} s (target < {link['target_100k_seconds']} s: "
                         f"{_verdict(s < link['target_100k_seconds'])})")
    return "\n".join(lines)


def write_json(path: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``path`` atomically (temporary file + rename)."""
    import json

    from reidpipe.files import atomic_write_text

    path = Path(path)
    if path.parent and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from reidpipe.errors import OutputError

            raise OutputError(f"cannot create the folder of --output {path} ({exc.strerror})") from None
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    return path


__all__ = ["STAGES", "PeakMemory", "bench_embedding", "bench_linking", "bench_pipeline", "detector_only_pass",
           "environment", "format_report", "make_dynamic_batch", "onnx_to_torch", "write_json"]
