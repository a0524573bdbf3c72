"""The machine a figure was measured on, and its peak memory while it was measured.

:func:`environment` records CPU model and cores, load, memory, library versions and the device;
:func:`resolve_device` turns ``auto`` into ``cuda`` or ``cpu``; :class:`PeakMemory` samples resident
memory (and CUDA's max allocated) while a block runs. ``reidpipe bench`` puts all of them in its JSON.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
import time
from typing import Any

from reidpipe import __version__


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

    for mod in ("torch", "onnxruntime", "onnx", "numpy", "cv2", "supervision", "trackers", "ultralytics", "faiss"):
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


__all__ = ["PeakMemory", "cpu_model", "environment", "resolve_device"]
