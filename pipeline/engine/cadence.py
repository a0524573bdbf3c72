"""How often each camera's detector runs: every K-th frame, K fixed or chosen from the measured load.

A recording is processed frame by frame at whatever speed the machine has, so its interval is fixed
for the run: ``detect_every`` when it is a number. With ``detect_every: auto``
(:func:`recording_interval`) it is 1 while the machine's detector can take every frame of every
recording at the recordings' own frame rates, and ``RECORDING_EVERY`` (2) when it cannot, i.e. when
many cameras share the machine: the detector's CPU seconds per frame are measured on a few frames
of the first recording before the run, and the machine's capacity is its usable cores over that,
times ``DETECT_SHARE`` (the rest of a frame's CPU goes to decoding, tracking and embedding). 2 is the
cheapest interval that keeps MTMC IDF1 on the generated scenes with a real detector (3 loses several
points; docs/performance.md has the table); the choice and its figures are in the log and in each
source's ``detection`` in ``trajectories.json``. A live camera (RTSP/HTTP stream, webcam, or a file read at its
frame rate with ``pace``) does not wait: when the pipeline falls behind, its reader drops the oldest
queued frames (``late``). So for live cameras with ``detect_every: auto`` the interval is chosen as
the run goes, the way NVIDIA DeepStream's ``interval`` is set by hand, from what the run measures:

- every ``window`` seconds of the frame loop, the seconds the main thread was busy (the loop's wall
  time less its waits for frames), the detector's share of them, and the frames each camera offered
  (read by its reader, dropped ones included, after ``stride``);
- from these, ``d`` = detector seconds per detected frame and ``p`` = the other work per processed
  frame (tracking, cropping, linking, and what the embed thread takes from the same cores);
- the intervals are the smallest that keep the predicted busy share
  ``sum over cameras of fps_c * (p + d / K_c)`` under ``TARGET``, with every camera detected at about
  the same rate in time (``K_c = ceil(fps_c / rate)``: a 25-fps camera gets a larger K than a 10-fps
  one), each K at most ``most``.

Intervals rise as soon as the loop is busier than ``HIGH`` or frames were dropped (and never fall in
such a window), and fall only once the smaller intervals are predicted to leave room (``LOW``), so they
do not swing back and forth.
Between detections the tracker carries the boxes (pipeline/track.py); crops come from detected
frames only. When even ``most`` does not keep up, frames are dropped and counted (``late_frames``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TARGET = 0.8  # busy share the chosen intervals are predicted to reach at most
HIGH = 0.9  # busier than this (or frames dropped): the intervals rise
LOW = 0.7  # the intervals fall only where the smaller ones are predicted at most this busy
WINDOW_SECONDS = 2.0
RECORDING_EVERY = 2  # the interval of recordings that the machine cannot detect every frame of
DETECT_SHARE = 0.7  # the detector's share of a frame's CPU in the pipeline (YOLOX-Nano, OSNet; 2 cores)


@dataclass
class CameraCadence:
    """One camera's interval and what it did: frames detected, frames only tracked, interval changes."""

    camera: str
    every: int = 1
    adaptive: bool = False
    detected: int = 0
    tracked_only: int = 0
    changes: list[tuple[float, int]] = field(default_factory=list)  # (loop seconds, new interval)
    _last: int | None = None  # frame index of the last detected frame
    reason: str = ""  # why this interval (detect_every: auto on a recording)

    def due(self, index: int, stride: int) -> bool:
        """Whether the detector runs on the frame ``index`` (``every`` processed frames after the last
        detected one; frames a live reader dropped count as passed)."""
        return self._last is None or (index - self._last) >= self.every * stride

    def record(self, index: int, detected: bool) -> None:
        if detected:
            self.detected += 1
            self._last = index
        else:
            self.tracked_only += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "adaptive": self.adaptive,
            "reason": self.reason,
            "detected_frames": self.detected,
            "tracked_only_frames": self.tracked_only,
            "changes": [[round(t, 3), k] for t, k in self.changes],
        }


@dataclass
class Load:
    """What one window of the frame loop measured."""

    seconds: float  # wall time of the window
    busy: float  # of which the main thread worked (not waiting for frames)
    detect: float  # of which it ran the detector
    detected: int  # frames detected
    processed: int  # frames processed (detected or only tracked)
    offered: dict[str, float]  # camera -> frames per second its source offered (after stride)
    dropped: int  # frames the live readers dropped

    @property
    def busy_share(self) -> float:
        return self.busy / max(self.seconds, 1e-9)


def predicted_busy(offered: dict[str, float], every: dict[str, int], d: float, p: float) -> float:
    """Busy share of the main thread at these intervals: each camera's frames cost ``p``, its detected
    ones ``d`` more."""
    return sum(fps * (p + d / every[c]) for c, fps in offered.items())


def choose_intervals(
    offered: dict[str, float], d: float, p: float, most: int, target: float = TARGET
) -> dict[str, int]:
    """The smallest intervals (a common detection rate in time) predicted to keep the busy share at
    most ``target``; ``most`` for every camera when none does."""
    rates = sorted({fps / k for fps in offered.values() if fps > 0 for k in range(1, most + 1)}, reverse=True)
    for rate in rates:
        every = {c: min(most, max(1, math.ceil(fps / rate - 1e-9))) for c, fps in offered.items()}
        if predicted_busy(offered, every, d, p) <= target:
            return every
    return dict.fromkeys(offered, most)


class IntervalChooser:
    """The intervals of the adaptive cameras of one frame loop (see the module docstring)."""

    def __init__(self, cameras: Sequence[CameraCadence], most: int, window: float | None = None):
        self.cameras = {c.camera: c for c in cameras if c.adaptive}
        self.most = int(most)
        self.window = float(WINDOW_SECONDS if window is None else window)
        self.costs: tuple[float, float] | None = None  # (d, p) of the last window

    def decide(self, load: Load, now: float) -> dict[str, tuple[int, int]]:
        """New intervals from one window's ``load``: ``{camera: (old, new)}`` for those that changed."""
        if not self.cameras or load.processed == 0 or load.detected == 0:
            return {}
        d = load.detect / load.detected
        p = max(load.busy - load.detect, 0.0) / load.processed
        self.costs = (d, p)
        # a camera that offered nothing (ended, or a stream reconnecting) keeps its interval
        offered = {c: fps for c in self.cameras if (fps := load.offered.get(c, 0.0)) > 0}
        if not offered:
            return {}
        current = {c: self.cameras[c].every for c in offered}
        chosen = choose_intervals(offered, d, p, self.most)
        if load.busy_share > HIGH or load.dropped > 0:  # behind: intervals only rise
            chosen = {c: max(chosen[c], current[c]) for c in chosen}
        elif predicted_busy(offered, chosen, d, p) <= LOW:  # room to spare: they only fall
            chosen = {c: min(chosen[c], current[c]) for c in chosen}
        else:
            chosen = current
        changed = {c: (current[c], k) for c, k in chosen.items() if k != current[c]}
        for c, (_, k) in changed.items():
            self.cameras[c].every = k
            self.cameras[c].changes.append((now, k))
        return changed


@dataclass(frozen=True)
class RecordingInterval:
    """The interval of the recordings of one run with ``detect_every: auto``, and why."""

    every: int
    demand_fps: float  # frames per second the recordings play at, in all (after stride)
    capacity_fps: float | None  # frames per second the machine's detector takes (None: not measured)

    @property
    def reason(self) -> str:
        if self.capacity_fps is None:
            return "the detector's cost was not measured"
        fits = "within" if self.every == 1 else "more than"
        return (
            f"the recordings play {self.demand_fps:.0f} frames/s in all, {fits} the "
            f"~{self.capacity_fps:.0f} frames/s this machine's detector takes with the rest of the pipeline"
        )


def recording_interval(demand_fps: float, detect_cpu_seconds: float | None, cores: int) -> RecordingInterval:
    """1 when ``cores`` can detect every frame of recordings playing ``demand_fps`` frames/s in all
    (the detector costing ``detect_cpu_seconds`` of CPU a frame, ``DETECT_SHARE`` of a frame's
    cost), else ``RECORDING_EVERY`` (see the module docstring)."""
    if detect_cpu_seconds is None or not detect_cpu_seconds > 0 or not math.isfinite(detect_cpu_seconds):
        return RecordingInterval(1, demand_fps, None)
    capacity = max(int(cores), 1) * DETECT_SHARE / detect_cpu_seconds
    every = 1 if demand_fps <= capacity else RECORDING_EVERY
    return RecordingInterval(every, demand_fps, capacity)
