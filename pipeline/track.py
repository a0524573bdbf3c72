"""Per-camera tracking with the ``trackers`` package (ByteTrack by default; BoT-SORT, OC-SORT, SORT).

:class:`CameraTracker` wraps one tracker of one camera. ``update(detections, frame_index, t, image)``
feeds it the frame's ``supervision.Detections`` and returns the tracked ones (``tracker_id`` set,
unconfirmed boxes dropped); it keeps every open track's history as a :class:`Tracklet` (one
``TrackPoint`` per processed frame where the track matched a detection) and returns, via
``pop_closed()``, the tracklets unseen for ``lost_frames`` processed frames. ``close_all()`` ends the
run (or a Ctrl-C). Track numbers are 1, 2, ... in order of appearance (MOTChallenge ids are positive);
a tracker id that comes back after its tracklet closed gets a new number.

The trackers run in fixed-rate mode (no timestamps): one processed frame is one Kalman step, whatever
the ``--stride``. Their lost-track buffer is given in 30-fps frames, so it is set with
``frame_rate=30`` to mean exactly ``lost_frames`` processed frames, the same horizon at which this
module closes a tracklet.
"""

from __future__ import annotations

import numpy as np

from reidpipe.errors import ConfigError
from reidpipe.pipeline.types import Tracklet, TrackPoint

TRACKERS = ("bytetrack", "botsort", "ocsort", "sort")


def make_tracker(name: str, *, lost_frames: int = 30, high_conf: float = 0.5, new_conf: float = 0.6,
                 min_hits: int = 2, min_iou: float = 0.2):
    """A fresh tracker of the ``trackers`` package by name."""
    import trackers

    name = name.lower()
    common = {"lost_track_buffer": int(lost_frames), "frame_rate": 30.0, "minimum_consecutive_frames": int(min_hits)}
    if name == "bytetrack":
        return trackers.ByteTrackTracker(**common, track_activation_threshold=new_conf,
                                         high_conf_det_threshold=high_conf, minimum_iou_threshold=min_iou)
    if name == "botsort":
        return trackers.BoTSORTTracker(**common, track_activation_threshold=new_conf,
                                       high_conf_det_threshold=high_conf, minimum_iou_threshold_first_assoc=min_iou)
    if name == "ocsort":
        return trackers.OCSORTTracker(**common, high_conf_det_threshold=high_conf, minimum_iou_threshold=min_iou)
    if name == "sort":
        return trackers.SORTTracker(**common, track_activation_threshold=new_conf, minimum_iou_threshold=min_iou)
    raise ConfigError(f"--tracker must be one of {', '.join(TRACKERS)}, got {name!r}")


class CameraTracker:
    """One camera's tracker plus the histories of its tracks."""

    def __init__(self, camera: str, tracker: str = "bytetrack", *, lost_frames: int = 30, **tracker_kw):
        self.camera = camera
        self.name = tracker
        self.lost_frames = int(lost_frames)
        self.tracker = make_tracker(tracker, lost_frames=lost_frames, **tracker_kw)
        self.open: dict[int, Tracklet] = {}
        self.last_seen: dict[int, int] = {}  # track -> processed-frame counter when last matched
        self.step = 0  # processed frames so far
        self._closed: list[Tracklet] = []
        self.opened: list[Tracklet] = []  # tracks opened during the last update
        self._number: dict[int, int] = {}  # tracker id -> our track number (a closed id that comes back
        self._next = 1                      # gets a new number, so (camera, track) stays unique)

    def update(self, detections, frame_index: int, t: float, image: np.ndarray | None = None):
        """Track one processed frame. Returns the tracked detections (``tracker_id`` = track number)."""
        if self.name == "botsort":  # camera-motion compensation uses the frame
            tracked = self.tracker.update(detections, frame=image)
        else:
            tracked = self.tracker.update(detections)
        if len(tracked):
            tracked = tracked[tracked.tracker_id >= 0]
        self.step += 1
        self.opened = []
        if len(tracked):
            numbers = []
            for raw in tracked.tracker_id.tolist():
                n = self._number.get(raw)
                if n is None:
                    n = self._number[raw] = self._next
                    self._next += 1
                numbers.append(n)
            tracked.tracker_id = np.asarray(numbers, dtype=int)
            conf = tracked.confidence if tracked.confidence is not None else np.ones(len(tracked), np.float32)
            boxes = tracked.xyxy.tolist()
            for tid, box, c in zip(tracked.tracker_id.tolist(), boxes, conf.tolist()):
                tr = self.open.get(tid)
                if tr is None:
                    tr = Tracklet(camera=self.camera, track=tid)
                    self.open[tid] = tr
                    self.opened.append(tr)
                tr.points.append(TrackPoint(frame=int(frame_index), t=float(t), bbox=tuple(box), score=float(c)))
                self.last_seen[tid] = self.step
        expired = [tid for tid, s in self.last_seen.items() if self.step - s >= self.lost_frames]
        for tid in expired:
            self._close(tid)
        return tracked

    def _close(self, tid: int) -> None:
        for raw, n in list(self._number.items()):
            if n == tid:
                del self._number[raw]
        tr = self.open.pop(tid)
        self.last_seen.pop(tid, None)
        tr.closed = True
        self._closed.append(tr)

    def pop_closed(self) -> list[Tracklet]:
        out, self._closed = self._closed, []
        return out

    def close_all(self) -> list[Tracklet]:
        for tid in list(self.open):
            self._close(tid)
        return self.pop_closed()
