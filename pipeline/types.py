"""The records that travel between pipeline stages.

``Frame`` goes from a source to the detector; detections and tracks travel as
``supervision.Detections`` (boxes ``xyxy`` in source pixels, ``confidence``, ``tracker_id``) inside a
``FrameResult`` that also carries the camera, frame index and timestamp. When a track ends (or the run
ends) the tracker side turns it into a ``Tracklet``; the linker consumes tracklets and returns
``Identity`` records with ``LinkEvidence``; exporters write those.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableSequence, Sequence
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
    # how the detector ran on it (pipeline/cadence.py: the interval, its changes, the frames detected
    # and only tracked) and the frames a live reader dropped; known at the source's end
    detection: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "camera": self.camera,
            "uri": self.uri,
            "fps": float(self.fps),
            "width": int(self.width),
            "height": int(self.height),
            "frames": self.frames,
        }
        if self.detection is not None:
            out["detection"] = dict(self.detection)
        return out


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
class Segment:
    """Consecutive embedded crops of one tracklet (frames ``first``..``last``): the quality-weighted sum
    of their embeddings, its weight and how many crops it holds (pipeline/link/split.py)."""

    first: int
    last: int
    total: np.ndarray
    weight: float
    crops: int = 1

    def __add__(self, other: Segment) -> Segment:
        return Segment(
            first=min(self.first, other.first),
            last=max(self.last, other.last),
            total=self.total + other.total,
            weight=self.weight + other.weight,
            crops=self.crops + other.crops,
        )


@dataclass
class Tracklet:
    """A per-camera track, with its embedding bank.

    ``bank`` holds its K best L2-normalised embeddings and ``qualities`` their crop-quality weights;
    ``segments`` hold every embedded crop in time order, summed (at close: only the few segments that
    its candidate cuts need, pipeline/link/split.py); ``feature`` is the quality-weighted mean of every
    embedded crop, L2-normalised (None when no crop passed the quality gate). ``split_from`` is the
    track number of the track this one was cut from (None for a track as the tracker made it)."""

    camera: str
    track: int
    # the boxes in frame order; once closed and linked, a read-only sequence on disk (pipeline/engine/spill.py)
    points: MutableSequence[TrackPoint] = field(default_factory=list)
    bank: list[np.ndarray] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    feature: np.ndarray | None = None
    closed: bool = False
    # JPEG thumbnails of its best crops (best first), carried from the camera worker to the driver,
    # which writes them and empties this (pipeline/io/thumbs.py)
    thumbs: list[bytes] = field(default_factory=list)
    thumb_frames: list[int] = field(default_factory=list)  # the frame of each thumbnail
    segments: list[Segment] = field(default_factory=list)
    split_from: int | None = None

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

    @property
    def crops(self) -> int:
        """Embedded crops pooled in its feature."""
        return sum(s.crops for s in self.segments) if self.segments else len(self.bank) or len(self.qualities)

    @property
    def weight(self) -> float:
        """The summed quality of the crops pooled in its feature (1 when unknown)."""
        w = sum(s.weight for s in self.segments) if self.segments else float(sum(self.qualities))
        return float(w) if w > 0 else 1.0

    def pooled_feature(self) -> np.ndarray | None:
        """The quality-weighted mean of every embedded crop (of the bank, for a tracklet built without
        segments), L2-normalised. Every crop rather than the bank's best K: the mean over all of a
        track's crops averages out pose, blur and partial occlusion, and links as well or better."""
        if self.segments:
            f = np.stack([s.total for s in self.segments]).astype(np.float64).sum(0).astype(np.float32)
        elif self.bank:
            w = np.asarray(self.qualities, dtype=np.float32)
            f = (np.stack(self.bank).astype(np.float32) * w[:, None]).sum(0)
        else:
            return None
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
    # a long online run's are read back from the run's point file when asked (pipeline/engine/spill.py)
    tracklets: Sequence[Tracklet] = field(default_factory=list)
    evidence: Mapping[tuple[str, int], LinkEvidence] = field(default_factory=dict)

    @property
    def cameras(self) -> list[str]:
        seen: list[str] = []
        for t in sorted(self.tracklets, key=lambda t: t.start_t):
            if t.camera not in seen:
                seen.append(t.camera)
        return seen


Event = tuple[str, dict[str, Any]]  # (kind, fields): one line of events.jsonl


@dataclass
class SourceEnd:
    """A source's final figures; ``dropped`` is the warning when it stopped on an error or a lost stream."""

    info: SourceInfo
    uri: str
    frames_read: int
    corrupt: int
    late: int
    decode_seconds: float
    dropped: str | None = None
    failed: bool = False  # ``dropped`` is the source's error (not a lost stream)
    reconnects: int = 0
    detection: dict[str, Any] = field(default_factory=dict)  # CameraCadence.to_json(): interval, frames
    event: str = "stream_drop"  # what a drop is logged as ("worker_lost" when a Ray worker died)


@dataclass
class Step:
    """What one item of a camera's source produced."""

    camera: str
    seq: int
    frames: int = 0
    closed: list[Tracklet] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    end: SourceEnd | None = None
