"""The YOLOX detector's runtime and precision, chosen on the machine at hand (``backend: auto``).

Which runtime is fastest depends on the CPU: Intel CPUs with AMX or VNNI run OpenVINO bf16 / int8
several times faster than fp32; AMD and older Intel CPUs gain little or nothing, and an int8 model may
miss people. So with ``backend: auto`` (the default) the run measures instead of guessing:

1. **Candidates** — ONNX Runtime fp32 (the reference), OpenVINO f32 and bf16 (bf16 only where
   OpenVINO reports the CPU can: it runs f32 otherwise), and int8: the model quantized by
   :func:`reidpipe.pipeline.models.quantize.quantize_onnx` on half of the calibration frames (kept in the
   cache folder), run by ONNX Runtime and by OpenVINO.
2. **Calibration clip** — ``FRAMES`` frames spread over the first recording among the sources (a live
   camera is not read twice: with live sources only, a cached choice is used, else the reference).
3. **Measure** — each candidate's wall-clock seconds per frame (one warm-up frame, then the best of
   ``ROUNDS`` rounds) and its detections against the reference's: person recall and precision at
   IoU >= 0.5 (:func:`reidpipe.pipeline.models.quantize.detector_agreement`).
4. **Choose** — the fastest candidate whose recall and precision are both >= ``MIN_AGREEMENT``; one
   that is not ``MIN_GAIN`` faster than the reference is not worth its differences, so the reference
   stays.

The choice is cached per machine and model (``$XDG_CACHE_HOME/reidpipe/runtime/choices.json``: the CPU
model and what OpenVINO says it accelerates, the runtimes' versions, the model's sha256, its input size
and confidence threshold). The file is bounded (``MAX_ENTRIES`` newest entries, ``MAX_BYTES``) and
never trusted blindly: an entry that is not a known candidate with finite figures is ignored, and a
cached choice is checked again against the reference on a few frames before it is used (re-measured
when it no longer agrees). The run's log says what runs: a ``runtime_choice`` event with every
candidate's figures, the detector's ``model`` event, and one line on stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.pipeline.models.onnx_batch import file_sha256

FRAMES = 16  # calibration frames
ROUNDS = 2  # timing rounds per candidate (the best counts: noise only slows a round down)
VERIFY_FRAMES = 4  # frames a cached choice is checked on before it is used
MIN_AGREEMENT = 0.99  # recall and precision of a candidate's detections against the reference's
MIN_GAIN = 0.05  # a candidate must be this much faster than the reference to replace it
MAX_ENTRIES = 64
MAX_BYTES = 1_000_000
REFERENCE = ("onnxruntime", "f32")
RUNTIMES: tuple[tuple[str, str], ...] = (  # every (backend, precision) the detector can run on
    REFERENCE,
    ("openvino", "f32"),
    ("openvino", "bf16"),
    ("onnxruntime", "int8"),
    ("openvino", "int8"),
)
CANDIDATES = RUNTIMES  # the ones measured


@dataclass
class Measured:
    """One candidate on the calibration clip."""

    backend: str
    precision: str
    ms_per_frame: float
    recall: float
    precision_vs_reference: float

    @property
    def keeps_detections(self) -> bool:
        return min(self.recall, self.precision_vs_reference) >= MIN_AGREEMENT


@dataclass
class Choice:
    """What runs the detector, and why (``source``: measured now, cached, or the reference by default)."""

    backend: str
    precision: str
    source: str  # "measured" | "cache" | "default"
    measured: list[Measured]
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "source": self.source,
            "reason": self.reason,
            "candidates": [asdict(m) for m in self.measured],
        }

    def summary(self) -> str:
        ref = next((m for m in self.measured if (m.backend, m.precision) == REFERENCE), None)
        own = next((m for m in self.measured if (m.backend, m.precision) == (self.backend, self.precision)), None)
        text = f"detector runs on {self.backend} {self.precision}"
        if own is not None and ref is not None and own is not ref:
            text += (
                f" ({own.ms_per_frame:.1f} ms/frame vs {ref.ms_per_frame:.1f} on onnxruntime f32; detections "
                f"recall/precision {own.recall:.3f}/{own.precision_vs_reference:.3f})"
            )
        return f"{text}: {self.reason}"


# ---------------------------------------------------------------------------------------- the cache
def cache_path() -> Path:
    from reidpipe.pipeline.models.onnx_batch import cache_dir

    return cache_dir().parent / "runtime" / "choices.json"


def machine_key(model: str, input_size: int | None, conf: float) -> str:
    """What a choice depends on: the CPU and what OpenVINO accelerates on it, the runtimes, the model."""
    parts = [platform.machine(), _openvino_cpu(), _versions(), file_sha256(model), str(input_size), f"{conf:.4f}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _openvino_cpu() -> str:
    """The CPU's name and what OpenVINO accelerates on it (bf16, int8, ...); "-" without OpenVINO."""
    try:
        import openvino as ov

        core = ov.Core()
        caps = ",".join(sorted(map(str, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))))
        return f"{core.get_property('CPU', 'FULL_DEVICE_NAME')} {caps}"
    except Exception:  # no openvino, or no CPU plugin: nothing it accelerates
        return "-"


def _versions() -> str:
    import onnxruntime

    try:
        import openvino

        ov_version = openvino.__version__
    except ImportError:
        ov_version = "-"
    return f"ort {onnxruntime.__version__} ov {ov_version}"


def _valid_entry(entry: Any) -> bool:
    """A cached entry reidpipe could have written: a known candidate, finite figures, a time."""
    if not isinstance(entry, dict) or (entry.get("backend"), entry.get("precision")) not in RUNTIMES:
        return False
    stamp = entry.get("time")
    if not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        return False
    rows = entry.get("candidates")
    if not isinstance(rows, list) or len(rows) > len(RUNTIMES):
        return False
    numbers = ("ms_per_frame", "recall", "precision_vs_reference")
    for row in rows:
        if not isinstance(row, dict) or (row.get("backend"), row.get("precision")) not in RUNTIMES:
            return False
        if not all(isinstance(row.get(k), (int, float)) and math.isfinite(row[k]) for k in numbers):
            return False
    return True


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The valid entries of the cache file; an unreadable, oversized or foreign file counts as empty."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("choices"), dict):
        return {}
    return {k: v for k, v in data["choices"].items() if isinstance(k, str) and _valid_entry(v)}


def write_cache(path: Path, key: str, choice: Choice) -> None:
    """Add ``choice`` under ``key``, keeping the ``MAX_ENTRIES`` newest; a cache that cannot be written
    costs a measurement next time, never the run."""
    from reidpipe.files import atomic_write_text

    entries = read_cache(path)
    entries[key] = {**choice.to_json(), "time": time.time()}
    newest = sorted(entries.items(), key=lambda kv: kv[1]["time"], reverse=True)[:MAX_ENTRIES]
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"schema": "reidpipe.runtime_choices/1", "choices": dict(newest)}) + "\n")


# ---------------------------------------------------------------------------------------- measuring
def calibration_clip(uris: Sequence[str], frames: int = FRAMES) -> list[tuple[int, np.ndarray]]:
    """``frames`` frames spread over the first recording (file or image folder) of ``uris``; none when
    every source is live."""
    from reidpipe.pipeline.io.sources import source_kind
    from reidpipe.pipeline.models.quantize import calibration_frames

    first = next((u for u in uris if source_kind(str(u)) in ("file", "folder")), None)
    return calibration_frames(str(first), frames) if first is not None else []


def _detector(config, backend: str, precision: str, model: str):
    from reidpipe.pipeline.models.detect import YOLOXDetector

    return YOLOXDetector(
        model,
        conf=config.det_conf,
        iou=config.det_iou,
        device=config.device,
        backend=backend,
        input_size=config.imgsz,
        openvino_precision="f32" if precision == "int8" else precision,
    )


def _timed(detector, images: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    """Seconds per frame (after one warm-up frame, the best of ``ROUNDS`` rounds) and the boxes."""
    detector.detect(images[0])  # warm-up: first-call allocations
    best, boxes = math.inf, []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        boxes = [detector.detect(im).xyxy for im in images]
        best = min(best, (time.perf_counter() - t0) / len(images))
    return best, boxes


def detector_cpu_seconds(detector, images: Sequence[np.ndarray]) -> float | None:
    """CPU seconds (this process, every thread) the detector spends on one frame: after one warm-up
    frame, the best of ``ROUNDS`` rounds over ``images``; None without images. CPU time, not wall
    time: what the frame costs the machine, which other processes' load barely changes."""
    if not images:
        return None
    detector.detect(images[0])
    best = math.inf
    for _ in range(ROUNDS):
        t0 = time.process_time()
        for im in images:
            detector.detect(im)
        best = min(best, (time.process_time() - t0) / len(images))
    return best


def int8_model(config, clip: list[tuple[int, np.ndarray]]) -> str | None:
    """The detector quantized to int8 on half of the clip, kept in the cache folder (reused while the
    model's bytes are the same); None when it cannot be made."""
    from reidpipe.pipeline.models.quantize import detector_samples, quantize_onnx

    path = cache_path().parent / f"yolox-int8-{file_sha256(config.detector)[:16]}.onnx"
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            quantize_onnx(config.detector, str(path), detector_samples(config.detector, clip[0::2]))
        except Exception:  # noqa: BLE001 (a graph the quantizer cannot take: no int8 candidate)
            path.unlink(missing_ok=True)
            return None
    return str(path)


def _runnable(config, backend: str, precision: str, int8: str | None):
    """The candidate's detector, or None where this machine cannot run it (no openvino, no bf16, no
    int8 model)."""
    from reidpipe.errors import ReidpipeError

    model = int8 if precision == "int8" else config.detector
    if model is None:
        return None
    try:
        det = _detector(config, backend, precision, model)
    except (ReidpipeError, ImportError, RuntimeError):
        return None
    runs_in = getattr(det.session, "precision", "f32")
    if backend == "openvino" and precision == "bf16" and runs_in != "bf16":
        return None  # the CPU has no bf16: OpenVINO would run f32 again
    return det


def measure(config, clip: list[tuple[int, np.ndarray]], candidates: Sequence[tuple[str, str]]) -> list[Measured]:
    """Every runnable candidate timed on ``clip`` and compared with the reference's detections."""
    from reidpipe.pipeline.models.quantize import box_agreement

    images = [im for _, im in clip]
    reference = _runnable(config, *REFERENCE, None)
    ref_seconds, ref_boxes = _timed(reference, images)
    int8 = int8_model(config, clip) if any(p == "int8" for _, p in candidates) else None
    rows = []
    for backend, precision in candidates:
        det = reference if (backend, precision) == REFERENCE else _runnable(config, backend, precision, int8)
        if det is None:
            continue
        seconds, boxes = (ref_seconds, ref_boxes) if det is reference else _timed(det, images)
        agree = box_agreement(ref_boxes, boxes)
        rows.append(
            Measured(
                backend=backend,
                precision=precision,
                ms_per_frame=round(1000 * seconds, 3),
                recall=float(agree["recall"] if agree["recall"] is not None else 1.0),
                precision_vs_reference=float(agree["precision"] if agree["precision"] is not None else 1.0),
            )
        )
    return rows


def pick(rows: list[Measured]) -> tuple[str, str, str]:
    """The fastest candidate that keeps the detections, if it is worth it: (backend, precision, why)."""
    ref = next(m for m in rows if (m.backend, m.precision) == REFERENCE)
    keeping = sorted((m for m in rows if m.keeps_detections), key=lambda m: m.ms_per_frame)
    best = keeping[0] if keeping else ref
    if best is ref or best.ms_per_frame > (1 - MIN_GAIN) * ref.ms_per_frame:
        return (*REFERENCE, "no candidate keeps the detections and is faster by enough")
    return best.backend, best.precision, "the fastest that keeps the detections, measured on this machine"


def _verified(config, entry: dict[str, Any], clip: list[tuple[int, np.ndarray]]) -> bool:
    """A cached choice still gives the reference's detections on the first frames of the clip."""
    from reidpipe.pipeline.models.quantize import detector_agreement

    backend, precision = entry["backend"], entry["precision"]
    if (backend, precision) == REFERENCE:
        return True
    few = clip[:VERIFY_FRAMES]
    int8 = int8_model(config, clip) if precision == "int8" else None
    det = _runnable(config, backend, precision, int8)
    if det is None or not few:
        return det is not None
    agree = detector_agreement(_runnable(config, *REFERENCE, None), det, few)
    return all(v is None or v >= MIN_AGREEMENT for v in (agree["recall"], agree["precision"]))


def choose(config, uris: Sequence[str], candidates: Sequence[tuple[str, str]] | None = None) -> Choice:
    """The detector's runtime for this machine (see the module docstring); ``candidates`` default to
    :data:`CANDIDATES`."""
    candidates = tuple(CANDIDATES if candidates is None else candidates)
    if candidates == (REFERENCE,):
        return Choice(*REFERENCE, "default", [], "the only candidate")
    path, key = cache_path(), machine_key(config.detector, config.imgsz, config.det_conf)
    clip = calibration_clip(uris)
    entry = read_cache(path).get(key)
    if entry is not None and _verified(config, entry, clip):
        rows = [Measured(**r) for r in entry["candidates"]]
        return Choice(entry["backend"], entry["precision"], "cache", rows, f"chosen earlier on this machine ({path})")
    if not clip:
        return Choice(*REFERENCE, "default", [], "no recording among the sources to calibrate on")
    rows = measure(config, clip, candidates)
    backend, precision, why = pick(rows)
    choice = Choice(backend, precision, "measured", rows, f"{why} ({len(clip)} frames of {_first(uris)})")
    write_cache(path, key, choice)
    return choice


def _first(uris: Sequence[str]) -> str:
    from reidpipe.pipeline.io.sources import source_kind

    return next((os.path.basename(str(u)) for u in uris if source_kind(str(u)) in ("file", "folder")), "-")


def load_yolox(config: Any, sources: Sequence[str]) -> Any:
    """The YOLOX detector of ``config`` on the runtime :func:`choose` picks for this machine (on a GPU:
    ONNX Runtime on CUDA); the choice is its ``runtime_choice``."""
    from reidpipe.pipeline.models.detect import YOLOXDetector
    from reidpipe.pipeline.models.runtime import resolve_providers

    if resolve_providers(config.device)[0] == "CUDAExecutionProvider":  # a GPU: ONNX Runtime on CUDA
        return YOLOXDetector(
            config.detector, conf=config.det_conf, iou=config.det_iou, device=config.device, input_size=config.imgsz
        )
    choice = choose(config, sources)
    model = config.detector
    if choice.precision == "int8":
        model = int8_model(config, calibration_clip(sources)) or model
    detector = YOLOXDetector(
        model,
        conf=config.det_conf,
        iou=config.det_iou,
        device=config.device,
        backend=choice.backend,
        input_size=config.imgsz,
        openvino_precision="f32" if choice.precision == "int8" else choice.precision,
    )
    detector.runtime_choice = choice
    return detector
