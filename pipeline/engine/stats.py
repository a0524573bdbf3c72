"""What a run measures: a stage timer and the typed :class:`RunStats` of ``Pipeline.stats``.

``StageTimer`` sums wall seconds per stage (``with timer("detect"): ...``); workers that run in other
processes (``--engine ray``) keep their own and the driver adds theirs to its own with ``merge``.
``RunStats.to_json()`` is the dict documented in :mod:`reidpipe.pipeline.runner` (bench and tests read it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STAGES = ("decode", "detect", "track", "crop", "embed", "link", "export")


class StageTimer:
    """Seconds per stage; ``with timer("embed"):`` adds the block's wall time to ``seconds["embed"]``.
    Thread-safe (the embed thread of ``embed_async`` times its batches into the same timer)."""

    def __init__(self, stages: tuple[str, ...] = (*STAGES, "wait")):
        self.seconds: dict[str, float] = dict.fromkeys(stages, 0.0)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)

    def merge(self, seconds: dict[str, float]) -> None:
        for stage, s in seconds.items():
            self.add(stage, s)


@dataclass
class Counts:
    """What one camera (or the sum of several) went through."""

    frames: int = 0
    detections: int = 0
    tracked_boxes: int = 0
    crops_embedded: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        self.frames += other.frames
        self.detections += other.detections
        self.tracked_boxes += other.tracked_boxes
        self.crops_embedded += other.crops_embedded
        return self


@dataclass
class RunStats:
    """The figures of one ``Pipeline.run``. ``seconds`` has every stage of ``STAGES`` plus ``wait``,
    ``setup``, ``loop`` and ``total``; the per-camera dicts are keyed by camera name."""

    seconds: dict[str, float]
    frames: dict[str, int]
    frames_read: dict[str, int]
    crops_embedded: int = 0
    detections: int = 0
    tracked_boxes: int = 0
    tracklets: int = 0
    identities: int = 0
    corrupt_frames: dict[str, int] = field(default_factory=dict)
    late_frames: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    detection: dict[str, dict[str, Any]] = field(default_factory=dict)  # camera -> CameraCadence.to_json()
    interrupted: bool = False
    engine: str = "local"

    @property
    def loop_seconds(self) -> float:
        return max(float(self.seconds.get("loop", 0.0)), 1e-9)

    @property
    def fps(self) -> dict[str, float]:
        loop = self.loop_seconds
        per_cam = {c: round(n / loop, 3) for c, n in self.frames.items()}
        return {**per_cam, "total": round(sum(self.frames.values()) / loop, 3)}

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": {k: round(float(v), 4) for k, v in self.seconds.items()},
            "frames": dict(self.frames),
            "frames_read": dict(self.frames_read),
            "fps": self.fps,
            "crops_embedded": self.crops_embedded,
            "detections": self.detections,
            "tracked_boxes": self.tracked_boxes,
            "tracklets": self.tracklets,
            "identities": self.identities,
            "corrupt_frames": dict(self.corrupt_frames),
            "late_frames": dict(self.late_frames),
            "dropped": dict(self.dropped),
            "detection": {c: dict(v) for c, v in self.detection.items()},
            "interrupted": self.interrupted,
            "engine": self.engine,
        }
