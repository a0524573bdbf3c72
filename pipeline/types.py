"""The records that travel between pipeline stages.

``Frame`` goes from a source to the detector; detections and tracks travel as
``supervision.Detections`` (boxes ``xyxy`` in source pixels, ``confidence``, ``tracker_id``) inside a
``FrameResult`` that also carries the camera, frame index and timestamp. When a track ends (or the run
ends) the tracker side turns it into a ``Tracklet``; the linker consumes tracklets and returns
``Identity`` records with ``LinkEvidence``; exporters write those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SourceInfo:
    """What is known of one source. ``frames`` is None for live streams until they end."""

    camera: str
    uri: str
    fps: float
    width: int
    height: int
    frames: int | None = None
    offset: float = 0.0  # seconds added to every timestamp of this source (aligns cameras)

    def to_json(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "uri": self.uri,
            "fps": float(self.fps),
            "width": int(self.width),
            "height": int(self.height),
            "frames": self.frames,
        }


@dataclass
class Frame:
    """One decoded frame. ``index`` is the 0-based frame index in the source (not counting skipped
    strides out); ``t`` is seconds from the source's start plus its offset; ``image`` is BGR uint8."""

    camera: str
    index: int
    t: float
    image: np.ndarray


@dataclass
class FrameResult:
    """The detections (and, after tracking, track ids) of one frame of one camera.

    ``detections`` is a ``supervision.Detections``; it is typed ``Any`` so this module imports without
    supervision."""

    camera: str
    index: int
    t: float
    detections: Any
    image: np.ndarray | None = None


@dataclass
class TrackPoint:
    """One box of a track. ``interpolated`` points fill a gap between two detections of the track
    (no detection there: never cropped for embedding); in JSON they carry ``"interpolated": true``
    and detections carry no such key."""

    frame: int
    t: float
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
    score: float
    interpolated: bool = False

    def to_json(self) -> dict[str, Any]:
        d = {
            "frame": int(self.frame),
            "t": round(float(self.t), 4),
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
        }
        if self.interpolated:
            d["interpolated"] = True
        return d


@dataclass
class Tracklet:
    """A per-camera track, with its embedding bank.

    ``bank`` holds up to K L2-normalised embeddings and ``qualities`` their crop-quality weights;
    ``feature`` is the quality-weighted mean of the bank, L2-normalised (None when no crop passed the
    quality gate)."""

    camera: str
    track: int
    points: list[TrackPoint] = field(default_factory=list)
    bank: list[np.ndarray] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    feature: np.ndarray | None = None
    closed: bool = False
    # JPEG thumbnails of its best crops (best first), carried from the camera worker to the driver,
    # which writes them and empties this (pipeline/thumbs.py)
    thumbs: list[bytes] = field(default_factory=list)

    @property
    def start_t(self) -> float:
        return self.points[0].t

    @property
    def end_t(self) -> float:
        return self.points[-1].t

    @property
    def detected(self) -> int:
        """Points that are detections (not interpolated)."""
        return sum(not p.interpolated for p in self.points)

    @property
    def key(self) -> tuple[str, int]:
        return (self.camera, self.track)

    def pooled_feature(self) -> np.ndarray | None:
        if not self.bank:
            return None
        w = np.asarray(self.qualities, dtype=np.float32)
        f = (np.stack(self.bank).astype(np.float32) * w[:, None]).sum(0) / max(float(w.sum()), 1e-12)
        n = float(np.linalg.norm(f))
        return f / n if n > 0 else f


@dataclass
class LinkEvidence:
    """Why a tracklet joined its identity: cosine similarity to the identity it joined, margin over the
    runner-up identity (None when there was none), the time gap in seconds to the identity's nearest
    earlier sighting (None for the identity's first tracklet), and the runner-up identity's id (the
    identity of the most similar candidate it did not join; None when there was none)."""

    score: float
    margin: float | None = None
    gap: float | None = None
    runner_up: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"score": round(float(self.score), 4)}
        d["margin"] = None if self.margin is None else round(float(self.margin), 4)
        d["gap"] = None if self.gap is None else round(float(self.gap), 4)
        d["runner_up"] = None if self.runner_up is None else int(self.runner_up)
        return d


@dataclass
class Identity:
    """A global identity: tracklets of one person across cameras, with the evidence of each link."""

    id: int
    tracklets: list[Tracklet] = field(default_factory=list)
    evidence: dict[tuple[str, int], LinkEvidence] = field(default_factory=dict)

    @property
    def cameras(self) -> list[str]:
        seen: list[str] = []
        for t in sorted(self.tracklets, key=lambda t: t.start_t):
            if t.camera not in seen:
                seen.append(t.camera)
        return seen
