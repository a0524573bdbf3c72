"""Per-camera tracking with the ``trackers`` package (ByteTrack by default; BoT-SORT, OC-SORT, SORT).

:class:`CameraTracker` wraps one tracker of one camera. ``update(detections, frame_index, t, image)``
feeds it the frame's ``supervision.Detections`` and returns the tracked ones (``tracker_id`` = track
number; unconfirmed and too-short tracks left out). It keeps every output track's history as a
:class:`Tracklet`; ``pop_closed()`` returns the tracklets whose track the tracker dropped and
``close_all()`` ends the run (or a Ctrl-C). Track numbers are 1, 2, ... in order of output
(MOTChallenge ids are positive).

What ``update`` does to a track's points, step by step:

1. **Confirmation back-fill** — the tracker confirms a track on its ``min_hits``-th consecutive match
   (at the earliest on the frame after its first detection) and reports the earlier boxes with id
   -1. When a track is confirmed, its boxes of the previous ``max(min_hits - 1, 1)`` processed frames
   are taken back from those unconfirmed detections (IoU >= ``min_iou`` chain, the association the
   tracker made), so a confirmed track starts at its first detection.
2. **Gap filling** (``interpolate``, on by default) — when a track is matched again after missing
   processed frames for at most ``max_gap`` seconds (1 s), the missed frames get boxes linearly
   interpolated between the two detections (box corners and score, by frame index), marked
   ``interpolated``. This is the offline interpolation of ByteTrack's and StrongSORT's tools (plain
   linear, without StrongSORT's Gaussian smoothing, which would also move the detected boxes), done
   as soon as the gap is bridged, so live streams get it too, before the track closes. Longer gaps
   stay gaps (a person who turns or stops breaks the straight line). Interpolated points are outputs
   (trajectories, MOT, scoring), never crops: there is no detection to embed.
3. **Minimum duration** — a confirmed track is output (returned, listed in ``opened``, numbered) once
   one *stretch* of it (detections at most ``max_gap`` apart, the gaps step 2 bridges) has lasted
   ``min_seconds`` (1 s), with all the points of that stretch; a track the tracker drops before that
   is discarded (counted in ``discarded``). People stay in view for seconds; a detector's
   false-positive bursts last a fraction of one. It is the minimum track length of offline trackers
   (``t_min`` of the IOU tracker), in seconds so that it means the same at any frame rate and stride.
   A track not output yet that is matched again after a longer gap drops its earlier stretch: a
   burst the tracker kept alive on its Kalman prediction alone, which then took over a person's
   detections where its stale box overlapped them more than the person's own track did (one person
   would then have two tracks at once).
4. **Background** (``min_foreground`` > 0, config ``track_min_foreground``; needs the frames) — a
   detection whose box is less than ``min_foreground`` foreground for the camera's background model
   (pipeline/engine/foreground.py: MOG2, learnt over about two minutes) is the static background,
   not a person: a poster or a patch of texture the detector fires on at every frame, near its
   threshold. ByteTrack's low-confidence stage keeps such a track alive for as long as the video
   lasts (tens of seconds, an identity of its own), and a person who walks past it can take it over
   (their track then ends on the background box). So a track not output yet restarts its stretch at
   each background box (never output while it sits on the background); an output track keeps its
   background boxes while open (no crop is taken of them: they are left out of what ``update``
   returns), and at its close the ones after its last foreground detection are dropped. For its
   first ``LEARN_SECONDS`` the model cannot know the background yet (people in view when the camera
   starts are in its first frame): a background box then keeps the stretch going, but a track is
   output on a foreground box only, so a person who was there from the start is output from their
   first box once they move off the pixels the first frame showed them on. A person who stands still
   long enough becomes background to the model (about 12 s): an output track is never held back,
   but those boxes get no crop, and a track that closes while its person still stands there (the end
   of the video) ends where they were last foreground; a track that starts on someone who has stood
   still that long waits until they move.
5. **Partly hidden people** (``complete_hidden``, config ``track_complete_hidden``, on by default) —
   where one person walks behind another, a detector boxes only what it sees of the one behind (the
   upper body), and the track's box shrinks for those frames: its feet point (where the person
   stands, which the linker's floor map and speed rule read) jumps up, and the box no longer matches
   the person. A detected box shorter than ``HIDDEN_SHARE`` (0.8) of the track's own height (the
   median of its last ``HIDDEN_SIZE_POINTS`` detected boxes that were not grown: a grown box must
   not vouch for the next one) is grown back to that height when
   another box of the frame overlaps the grown box: downwards when the other person's feet are lower
   (they stand in front, hiding the legs), else upwards. With no other box there the change of shape
   is the person's own (sitting down, bending) and the box is kept. Widths are never changed: they
   change with every stride. Only the track's point changes: crops are taken of the detected box.
6. **Closing** — a tracklet closes when its tracker drops the track (``lost_frames`` processed frames
   without a match), so a lost track that the tracker finds again keeps its number.

The trackers run in fixed-rate mode (no timestamps): one processed frame is one Kalman step, whatever
the ``--stride``. Their lost-track buffer is given in 30-fps frames, so it is set with
``frame_rate=30`` to mean exactly ``lost_frames`` processed frames.

**Detecting every K-th frame** (``detect_every`` = K > 1, ``--detect-every``): the tracker is updated
on the detected frames only (one Kalman step = K frames; its lost buffer is ``ceil(lost_frames / K)``
updates, the same time). On each frame in between, :meth:`CameraTracker.predict` gives every output
track matched on the last detected frame a box: its Kalman state moved on by ``j / K`` of a step (the
``trackers`` state estimator's own ``predict``, on a copy: the tracker itself is not touched). These
points are marked ``interpolated`` (they are no detection: never crops). When the track is matched
again, its predicted points are replaced by the linear interpolation between the two detections (step
2, when ``interpolate`` is on and the gap is within ``max_gap``; otherwise they stay); a track that
closes drops the predicted points after its last detection. So every frame a person is tracked on has
a box.

**An interval that changes** (live cameras, pipeline/engine/cadence.py): :meth:`CameraTracker.set_interval`
keeps one Kalman step equal to the new K frames: each track's velocity (and its variance) is scaled
by K_new / K_old, as the ``trackers`` package's own camera-motion compensation moves a state, and the
lost-track buffer becomes ``ceil(lost_frames / K_new)`` updates. So a fixed K runs exactly as above
and a camera whose K changes keeps its tracks.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reidpipe import limits
from reidpipe.pipeline.engine.foreground import ForegroundModel
from reidpipe.pipeline.types import Tracklet, TrackPoint
from reidpipe.registry import Registry

TRACKERS: Registry[Callable[..., Any]] = Registry("--tracker")  # trackers of the trackers package, by name


@TRACKERS.register("bytetrack", "ByteTrack: a second association pass for low-confidence boxes")
def _bytetrack(common: dict[str, Any], *, high_conf: float, new_conf: float, min_iou: float) -> Any:
    import trackers

    return trackers.ByteTrackTracker(
        **common,
        track_activation_threshold=new_conf,
        high_conf_det_threshold=high_conf,
        minimum_iou_threshold=min_iou,
    )


@TRACKERS.register("botsort", "BoT-SORT: ByteTrack plus camera-motion compensation", uses_frame=True)
def _botsort(common: dict[str, Any], *, high_conf: float, new_conf: float, min_iou: float) -> Any:
    import trackers

    return trackers.BoTSORTTracker(
        **common,
        track_activation_threshold=new_conf,
        high_conf_det_threshold=high_conf,
        minimum_iou_threshold_first_assoc=min_iou,
    )


@TRACKERS.register("ocsort", "OC-SORT: observation-centric re-update after occlusions")
def _ocsort(common: dict[str, Any], *, high_conf: float, new_conf: float, min_iou: float) -> Any:
    import trackers

    return trackers.OCSORTTracker(**common, high_conf_det_threshold=high_conf, minimum_iou_threshold=min_iou)


@TRACKERS.register("sort", "SORT: Kalman filter and IoU matching")
def _sort(common: dict[str, Any], *, high_conf: float, new_conf: float, min_iou: float) -> Any:
    import trackers

    return trackers.SORTTracker(**common, track_activation_threshold=new_conf, minimum_iou_threshold=min_iou)


def make_tracker(
    name: str,
    *,
    lost_frames: int = 30,
    high_conf: float = 0.5,
    new_conf: float = 0.6,
    min_hits: int = 2,
    min_iou: float = 0.2,
) -> Any:
    """A fresh tracker of the ``trackers`` package, the ``TRACKERS`` entry ``name``."""
    common: dict[str, Any] = {
        "lost_track_buffer": int(lost_frames),
        "frame_rate": 30.0,
        "minimum_consecutive_frames": int(min_hits),
    }
    return TRACKERS.get(name.lower())(common, high_conf=high_conf, new_conf=new_conf, min_iou=min_iou)


HIDDEN_SIZE_POINTS = 10  # a track's own size: the median of its last detected boxes (step 5)
HIDDEN_SHARE = 0.8  # a box under this share of the track's height is partly hidden (step 5)


def complete_hidden_box(box: np.ndarray, *, height: float, others: np.ndarray) -> np.ndarray:
    """A person's box grown back to their own ``height`` where another box hides part of them (step
    5 of the module docstring). A box shorter than ``HIDDEN_SHARE`` of the person's height is
    completed only when another box of the frame (``others``: every detection, ``box`` itself among
    them or not) overlaps the completed box: down when that box's feet are lower (the person in front
    hides the legs), else up. Without such a box the change of shape is the person's own (sitting,
    bending) and the box is kept. Widths are left alone: they change with every stride."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if y2 - y1 >= HIDDEN_SHARE * height or len(others) == 0:
        return box
    cy = (y1 + y2) / 2
    grown = np.array([x1, cy - height / 2, x2, cy + height / 2])
    cand = others[~np.all(np.abs(others - np.asarray(box, np.float64)) < 1e-3, axis=1)]
    inter_w = np.clip(np.minimum(cand[:, 2], grown[2]) - np.maximum(cand[:, 0], grown[0]), 0, None)
    inter_h = np.clip(np.minimum(cand[:, 3], grown[3]) - np.maximum(cand[:, 1], grown[1]), 0, None)
    inter = inter_w * inter_h
    if not len(cand) or inter.max() <= 0:
        return box
    hider = cand[int(inter.argmax())]
    if hider[3] > y2:  # the other person stands in front (feet lower): the legs are hidden
        return np.array([x1, y1, x2, y1 + height])
    return np.array([x1, y2 - height, x2, y2])


def _bbox(values) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) floats of a 4-vector."""
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def interpolate_points(a: TrackPoint, b: TrackPoint, stamps: list[tuple[int, float]]) -> list[TrackPoint]:
    """Points between detections ``a`` and ``b`` at the processed frames ``stamps`` ((frame, t) pairs
    strictly between them): box corners and score linear in the frame index, marked interpolated."""
    span = float(b.frame - a.frame)
    ba, bb = np.asarray(a.bbox, np.float64), np.asarray(b.bbox, np.float64)
    out = []
    for frame, t in stamps:
        w = (frame - a.frame) / span
        box = _bbox(ba + w * (bb - ba))
        out.append(
            TrackPoint(
                frame=int(frame), t=float(t), bbox=box, score=a.score + w * (b.score - a.score), interpolated=True
            )
        )
    return out


def _predicted_box(track, step: float, last: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """``track``'s box moved on by ``step`` Kalman steps (a fraction of one between two updates), on a
    copy of its state estimator; trackers whose tracks keep no state estimator hold the last box."""
    estimator = getattr(track, "state_estimator", None)
    if estimator is None:
        return last
    ahead = copy.deepcopy(estimator)
    ahead.predict(step, None)
    return _bbox(np.asarray(ahead.state_to_bbox()).reshape(-1)[:4])


def _scale_velocity(track, factor: float) -> None:
    """Scale the velocity entries of a track's Kalman state (and their rows and columns of its
    covariance) by ``factor``: the same motion over a Kalman step ``factor`` times as long. Tracks
    without a state estimator carry no velocity."""
    estimator = getattr(track, "state_estimator", None)
    kf = getattr(estimator, "kf", None)
    vel = getattr(estimator, "_VEL_IDX", None)
    if kf is None or vel is None:
        return
    scale = np.ones(len(kf.state))
    scale[np.asarray(vel)] = factor
    kf.state = kf.state * scale.reshape(kf.state.shape)
    kf.state_covariance = kf.state_covariance * np.outer(scale, scale)


def _drop_predicted(tr: Tracklet) -> None:
    """Remove the predicted points after a tracklet's last detection (interpolated points only ever
    come before a detection, so the trailing ones are predictions)."""
    while len(tr.points) > 1 and tr.points[-1].interpolated:
        tr.points.pop()


def _last_detected(points: Sequence[TrackPoint]) -> int | None:
    """Index of the last point that is a detection (not interpolated or predicted), None if none."""
    return next((i for i in range(len(points) - 1, -1, -1) if not points[i].interpolated), None)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    import supervision as sv

    return sv.box_iou_batch(np.asarray(box, np.float32).reshape(1, 4), np.asarray(boxes, np.float32))[0]


class CameraTracker:
    """One camera's tracker plus the histories of its tracks (see the module docstring)."""

    def __init__(
        self,
        camera: str,
        tracker: str = "bytetrack",
        *,
        lost_frames: int = 30,
        interpolate: bool = True,
        max_gap: float = 1.0,
        min_seconds: float = 0.0,
        min_hits: int = 2,
        min_iou: float = 0.2,
        detect_every: int = 1,
        min_foreground: float = 0.0,
        complete_hidden: bool = False,
        **tracker_kw,
    ):
        self.camera = camera
        self.name = tracker
        self.lost_frames = int(lost_frames)
        self.detect_every = max(1, int(detect_every))
        self.interpolate = bool(interpolate)
        self.max_gap = float(max_gap)  # seconds
        self.min_seconds = float(min_seconds)
        self.min_iou = float(min_iou)
        self.min_foreground = float(min_foreground)  # step 4; 0: off
        self.foreground = ForegroundModel() if self.min_foreground > 0 else None
        self.complete_hidden = bool(complete_hidden)  # step 5
        updates_lost = math.ceil(self.lost_frames / self.detect_every)  # the same time in tracker updates
        self.tracker = make_tracker(tracker, lost_frames=updates_lost, min_hits=min_hits, min_iou=min_iou, **tracker_kw)
        self.uses_frame = bool(TRACKERS.entry(tracker.lower()).traits.get("uses_frame"))  # BoT-SORT's motion model
        self.open: dict[int, Tracklet] = {}  # track number -> tracklet, for the tracks that are output
        self.opened: list[Tracklet] = []  # tracks opened during the last update
        self.discarded = 0  # tracks dropped by the tracker before lasting min_seconds
        self.step = 0  # tracker updates so far (processed frames with detections)
        self._live: dict[int, Tracklet] = {}  # tracker id -> tracklet (track 0 until it lasts min_seconds)
        self._last_foreground: dict[int, int] = {}  # tracker id -> frame of its last foreground detection
        self._heights: dict[int, deque[float]] = {}  # tracker id -> heights of its last boxes not grown (step 5)
        self._closed: list[Tracklet] = []
        self._next = 1
        self._since_update = 0  # frames predicted since the last tracker update
        # (frame, t) of the last processed frames, newest last: the frames a bridged gap is filled at
        self._stamps: deque[tuple[int, float]] = deque(maxlen=self.lost_frames + 2 * limits.MAX_DETECT_EVERY)
        # unconfirmed detections of the last min_hits - 1 frames (at least 1: a tracker gives an id on a
        # match, never to the detection that spawns a track): (frame, t, boxes, confs), newest last
        self._unconfirmed: deque[tuple[int, float, np.ndarray, np.ndarray]] = deque(maxlen=max(int(min_hits) - 1, 1))

    def update(self, detections, frame_index: int, t: float, image: np.ndarray | None = None):
        """Track one processed frame. Returns the tracked detections of the output tracks
        (``tracker_id`` = track number)."""
        if self.uses_frame:  # camera-motion compensation
            tracked = self.tracker.update(detections, frame=image)
        else:
            tracked = self.tracker.update(detections)
        self.step += 1
        self.opened = []
        self._since_update = 0
        self._stamps.append((int(frame_index), float(t)))
        conf = tracked.confidence if tracked.confidence is not None else np.ones(len(tracked), np.float32)
        raw_ids = tracked.tracker_id.tolist() if len(tracked) else []
        foreground = self._foreground(tracked, image, t)
        everyone = np.asarray(detections.xyxy, np.float64).reshape(-1, 4)
        for raw, box, c, fg in zip(raw_ids, tracked.xyxy.tolist(), conf.tolist(), foreground.tolist()):
            if raw >= 0:
                if self.complete_hidden:
                    box = self._completed(raw, box, everyone)
                point = TrackPoint(frame=int(frame_index), t=float(t), bbox=tuple(box), score=float(c))
                self._add_point(raw, point, foreground=fg)
        self._keep_unconfirmed(tracked, frame_index, t)
        self._close_dropped()
        numbers = np.asarray([self._live[r].track if r in self._live else 0 for r in raw_ids], dtype=int)
        keep = (numbers > 0) & foreground  # output tracks' boxes, the background ones left out (step 4)
        out = tracked[keep] if raw_ids else tracked
        if len(out):
            out.tracker_id = numbers[keep]
        return out

    def _completed(self, raw: int, box: list[float], everyone: np.ndarray) -> list[float]:
        """``box`` of track ``raw``, grown back to the track's own height where another person hides
        part of it (step 5); unchanged otherwise. The track's own height is the median of its last
        boxes that were not grown (a grown box must not vouch for the next one)."""
        heights = self._heights.setdefault(raw, deque(maxlen=HIDDEN_SIZE_POINTS))
        if len(heights) >= HIDDEN_SIZE_POINTS // 2:
            # statistics.median: the same value as numpy's, without its overhead on ten numbers a box
            grown = complete_hidden_box(np.asarray(box, np.float64), height=statistics.median(heights), others=everyone)
            if list(grown) != list(box):
                return grown.tolist()
        heights.append(float(box[3] - box[1]))
        return box

    def _foreground(self, tracked, image: np.ndarray | None, t: float) -> np.ndarray:
        """Whether each tracked box is foreground (step 4): all True when the rule is off or there is no
        frame; the background model learns the frame."""
        if self.foreground is None or image is None:
            return np.ones(len(tracked), bool)
        self.foreground.update(image, t)
        return self.foreground.share(tracked.xyxy) >= self.min_foreground

    def predict(self, frame_index: int, t: float):
        """A frame without detection (``detect_every`` > 1): every output track matched on the last
        update gets its Kalman-predicted box as an ``interpolated`` point (see the module docstring).
        Returns those boxes as ``supervision.Detections`` (``tracker_id`` = track number)."""
        import supervision as sv

        self.opened = []
        self._since_update += 1
        self._stamps.append((int(frame_index), float(t)))
        step = self._since_update / self.detect_every
        boxes, numbers, scores = [], [], []
        for track in self.tracker.tracks:
            tr = self._live.get(int(track.tracker_id))
            if tr is None or track.time_since_update != 0:  # not confirmed, or missed on the last update
                continue
            if not tr.points:  # on the background so far (step 4): no stretch started, nothing to carry
                continue
            box = _predicted_box(track, step, tr.points[-1].bbox)
            tr.points.append(
                TrackPoint(frame=int(frame_index), t=float(t), bbox=box, score=tr.points[-1].score, interpolated=True)
            )
            if tr.track == 0:  # not output yet (shorter than min_seconds): its points wait in the tracklet
                continue
            boxes.append(box)
            numbers.append(tr.track)
            scores.append(tr.points[-1].score)
        out = sv.Detections(
            xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
            confidence=np.asarray(scores, np.float32),
            class_id=np.zeros(len(boxes), int),
        )
        out.tracker_id = np.asarray(numbers, dtype=int)
        return out

    def set_interval(self, every: int) -> None:
        """Detect every ``every`` frames from now on (see "An interval that changes" in the module
        docstring): velocities rescaled, the lost-track buffer the same time."""
        every = max(1, int(every))
        if every == self.detect_every:
            return
        factor = every / self.detect_every
        for track in self.tracker.tracks:
            _scale_velocity(track, factor)
        self.detect_every = every
        self.tracker.maximum_frames_without_update = math.ceil(self.lost_frames / every)

    def _add_point(self, raw: int, point: TrackPoint, foreground: bool = True) -> None:
        tr = self._live.get(raw)
        if tr is None:  # just confirmed by the tracker: starts with its unconfirmed boxes
            tr = self._live[raw] = Tracklet(camera=self.camera, track=0, points=[])
            for earlier in self._backfill(point):  # (consecutive updates: frames apart with detect_every)
                self._append(tr, earlier)
        learnt = self.foreground is None or self.foreground.learnt
        if not foreground and tr.track == 0 and learnt:  # the background: no stretch starts there (step 4)
            tr.points.clear()
            return
        if foreground:
            self._last_foreground[raw] = point.frame
        real = _last_detected(tr.points)
        if tr.track == 0 and real is not None and point.t - tr.points[real].t > self.max_gap:
            tr.points.clear()  # a burst shorter than min_seconds before an unbridged gap (step 3)
        self._append(tr, point)
        if tr.track == 0 and foreground and tr.end_t - tr.start_t >= self.min_seconds:  # lasted: output it
            tr.track, self._next = self._next, self._next + 1
            self.open[tr.track] = tr
            self.opened.append(tr)

    def _append(self, tr: Tracklet, point: TrackPoint) -> None:
        """Add a detected point, first filling the processed frames the track missed since its last
        detection (step 2 of the module docstring); the filling replaces the predicted points there."""
        real = _last_detected(tr.points)
        if real is not None:
            last = tr.points[real]
            stamps = [s for s in self._stamps if last.frame < s[0] < point.frame]
            if self.interpolate and stamps and point.t - last.t <= self.max_gap:
                del tr.points[real + 1 :]
                tr.points += interpolate_points(last, point, stamps)
        tr.points.append(point)

    def _backfill(self, point: TrackPoint) -> list[TrackPoint]:
        """The boxes a newly confirmed track matched in the previous frames (oldest first), claimed from
        the unconfirmed detections kept by ``_keep_unconfirmed``."""
        found: list[TrackPoint] = []
        box = np.asarray(point.bbox)
        for k in range(len(self._unconfirmed) - 1, -1, -1):
            frame, t, boxes, confs = self._unconfirmed[k]
            if not len(boxes):
                break
            iou = _iou(box, boxes)
            j = int(iou.argmax())
            if iou[j] < self.min_iou:
                break
            box = boxes[j]
            found.append(TrackPoint(frame=frame, t=t, bbox=_bbox(box), score=float(confs[j])))
            keep = np.arange(len(boxes)) != j  # one box, one track
            self._unconfirmed[k] = (frame, t, boxes[keep], confs[keep])
        return found[::-1]

    def _keep_unconfirmed(self, tracked, frame_index: int, t: float) -> None:
        # plain arrays, not a selection of the Detections: that validates every field, every frame
        pending = np.asarray(tracked.tracker_id) < 0 if len(tracked) else np.zeros(0, bool)
        boxes = np.asarray(tracked.xyxy, np.float32).reshape(-1, 4)[pending]
        conf = tracked.confidence[pending] if tracked.confidence is not None else np.ones(len(boxes), np.float32)
        self._unconfirmed.append((int(frame_index), float(t), boxes, np.asarray(conf, np.float32)))

    def _close_dropped(self) -> None:
        alive = {int(tr.tracker_id) for tr in self.tracker.tracks}
        for raw in [r for r in self._live if r not in alive]:
            self._close(raw)

    def _close(self, raw: int) -> None:
        tr = self._live.pop(raw)
        self._heights.pop(raw, None)
        last_foreground = self._last_foreground.pop(raw, None)
        if last_foreground is not None and self.foreground is not None:  # step 4: its trailing background
            while len(tr.points) > 1 and tr.points[-1].frame > last_foreground:
                tr.points.pop()
        _drop_predicted(tr)
        if tr.track == 0:  # never lasted min_seconds: a false-positive burst, not output
            self.discarded += 1
            return
        del self.open[tr.track]
        tr.closed = True
        self._closed.append(tr)

    def pop_closed(self) -> list[Tracklet]:
        out, self._closed = self._closed, []
        return out

    def close_all(self) -> list[Tracklet]:
        for raw in list(self._live):
            self._close(raw)
        return self.pop_closed()
