"""Camera workers: everything that belongs to one camera, behind ``step``.

A :class:`CameraWorker` holds one camera's source, detector, tracker and crop sampler, and hands its
crops to an :class:`~reidpipe.pipeline.engine.embed_queue.EmbedQueue` (shared by the cameras of one process,
so that embedding stays one batch across cameras; in an embed thread with ``embed_async``, within
``embed_budget``). ``worker.step(item)`` takes the next item of its source — a ``Frame``, or
``None`` when the source ended — and returns a :class:`Step`: the frames processed (0 or 1), the
tracklets that closed (pooled feature set, points kept, no pixels), the events to log before they
are linked, and, at the source's end, a :class:`SourceEnd` with the source's final figures.
``worker.stop()`` closes what is still open (end of run, Ctrl-C).

A :class:`CameraGroup` is the cameras of one process: it opens the sources, detectors and the
embedder from a :class:`PipelineConfig`, and ``steps()`` interleaves its cameras one frame per
camera per round (:func:`reidpipe.pipeline.io.sources.rounds`: files in lockstep, so runs are
deterministic); the frames of a round that share a detector are detected in one ``detect_batch``
call (``detect_batch`` on: the same detections as one by one), and a worker detects every K-th frame
and lets its tracker predict the others: K is ``detect_every``, or, for live cameras with
``detect_every: auto``, what the group's :class:`~reidpipe.pipeline.engine.cadence.IntervalChooser` sets from
the load it measures every few seconds (``detect_interval`` events). The in-process engine is
one group of every camera; ``--engine ray`` runs one group per actor
(:mod:`reidpipe.pipeline.engine.ray_engine`). Every item a camera yields has a sequence number ``seq``
(0, 1, ...): ``(seq, camera index)`` is the order in which one process over all cameras would have
seen it, which is how the Ray driver restores that order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reidpipe.cpus import usable_cpus
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.contracts import Detector, Embedder, FrameSource, Tracker
from reidpipe.pipeline.engine.ahead import DetectAhead, detect_threads
from reidpipe.pipeline.engine.cadence import CameraCadence, IntervalChooser, Load, RecordingInterval, recording_interval
from reidpipe.pipeline.engine.embed_queue import EmbedQueue
from reidpipe.pipeline.engine.sampler import CropSampler, crop
from reidpipe.pipeline.engine.stats import Counts, StageTimer
from reidpipe.pipeline.engine.track import CameraTracker
from reidpipe.pipeline.io.sources import open_sources, rounds
from reidpipe.pipeline.io.thumbs import ThumbKeeper
from reidpipe.pipeline.link.split import candidate_segments
from reidpipe.pipeline.models.detect import load_detector
from reidpipe.pipeline.models.embed import embeds_async, load_embedder
from reidpipe.pipeline.models.runtime import openvino_precision_of
from reidpipe.pipeline.types import Event, Frame, SourceEnd, SourceInfo, Step, Tracklet

if TYPE_CHECKING:
    from supervision import Detections

CALIBRATION_FRAMES = 4  # frames of the first recording the detector's cost is measured on (detect_every: auto)


class CameraWorker:
    """One camera: source -> detector -> tracker -> crop sampler -> (shared) embed queue."""

    def __init__(
        self,
        source: FrameSource,
        detector: Detector,
        tracker: Tracker,
        sampler: CropSampler,
        embeds: EmbedQueue,
        timer: StageTimer,
        thumbs: ThumbKeeper | None = None,
        cadence: CameraCadence | None = None,
    ) -> None:
        self.source = source
        self.detector = detector
        self.tracker = tracker
        self.sampler = sampler
        self.embeds = embeds
        self.timer = timer
        self.thumbs = thumbs  # a ThumbKeeper (pipeline/io/thumbs.py) keeping the best crops, or None
        self.counts = Counts()
        self.seq = 0
        self.cadence = cadence if cadence is not None else CameraCadence(source.info.camera)

    @property
    def camera(self) -> str:
        return self.source.info.camera

    def start(self) -> Event:
        """Start the source's reader; returns its ``source_start`` event."""
        s = self.source
        self.source.start()
        return (
            "source_start",
            {
                "camera": self.camera,
                "uri": s.uri,
                "kind": s.kind,
                "fps": s.info.fps,
                "width": s.info.width,
                "height": s.info.height,
                "frames": s.info.frames,
                "offset": s.info.offset,
            },
        )

    def step(self, item: Frame | None, detections: Detections | None = None, detected: bool | None = None) -> Step:
        """Process one item of the source: a frame, or ``None`` for the source's end. ``detected``:
        whether the detector runs on the frame, as :meth:`plan` decided (None: decide now);
        ``detections``: the frame's detections when they were computed already (a round's batch)."""
        step = Step(camera=self.camera, seq=self.seq)
        self.seq += 1
        if item is None:
            step.closed = self._close(self.tracker.close_all())
            step.end = self._source_end()
            return step
        if detected is None:
            detected = self.plan(item)
        tracked = self._detect_and_track(item, step, detected, detections)
        self._sample(item, tracked)
        step.frames = 1
        step.closed = self._close(self.tracker.pop_closed())
        self.embeds.after_frame(self.camera, item.t)
        return step

    def stop(self) -> list[Tracklet]:
        """Close every open track (end of run or Ctrl-C); the source must be stopped already."""
        return self._close(self.tracker.close_all())

    def plan(self, frame: Frame) -> bool:
        """Whether the detector runs on ``frame`` (every ``cadence.every``-th frame; the tracker
        predicts the others), recorded in the camera's cadence. Called once per frame, in frame order,
        before the frame is detected: the group decides a round ahead of tracking it."""
        detected = self.cadence.due(frame.index, self.source.stride)
        self.cadence.record(frame.index, detected)
        return detected

    # ------------------------------------------------------------------ the stages
    def _detect_and_track(self, frame: Frame, step: Step, detected: bool, dets: Detections | None) -> Detections:
        self.tracker.set_interval(self.cadence.every)  # the group's chooser may have changed it
        if not detected:
            return self._predict(frame)
        if dets is None:
            with self.timer("detect"):
                dets = self.detector.detect(frame.image, index=frame.index)
        with self.timer("track"):
            tracked = self.tracker.update(dets, frame.index, frame.t, frame.image)
        for tr in self.tracker.opened:
            first = tr.points[0]  # a confirmed track starts at its first (back-filled) detection
            step.events.append(
                ("track_open", {"camera": self.camera, "track": tr.track, "frame": first.frame, "t": round(first.t, 4)})
            )
        self.counts.frames += 1
        self.counts.detections += len(dets)
        self.counts.tracked_boxes += len(tracked)
        return tracked

    def _predict(self, frame: Frame) -> Detections:
        """A frame between two detections: the tracker's predicted boxes go into the tracks; nothing is
        returned to crop (a prediction is no detection)."""
        with self.timer("track"):
            predicted = self.tracker.predict(frame.index, frame.t)
        self.counts.frames += 1
        self.counts.tracked_boxes += len(predicted)
        return predicted[np.zeros(len(predicted), bool)]

    def _sample(self, frame: Frame, tracked: Detections) -> None:
        with self.timer("crop"):
            for row, tid, q in self.sampler.select(self.camera, tracked, frame.index, frame.image.shape[:2]):
                pixels = crop(frame.image, tracked.xyxy[row])
                self.embeds.add(self.tracker.open[tid], q, pixels, frame.index)
                if self.thumbs is not None:
                    self.thumbs.offer(self.camera, tid, q, pixels, frame.index)

    def _close(self, tracklets: list[Tracklet]) -> list[Tracklet]:
        """Pool the features of closing tracklets (embedding their waiting crops first)."""
        self.embeds.settle(tracklets)
        with self.timer("link"):
            for t in tracklets:
                t.feature = t.pooled_feature()
                t.segments = candidate_segments(t.segments)  # what tracklet splitting needs, no more
                self.sampler.forget(t.camera, t.track)
                if self.thumbs is not None:
                    t.thumbs, t.thumb_frames = self.thumbs.take_with_frames(t.camera, t.track)
        return tracklets

    def _source_end(self) -> SourceEnd:
        s = self.source
        if s.info.frames is None:  # live sources learn their frame count at the end
            s.info.frames = s.read
        dropped = s.dropped
        if s.error is not None:
            dropped = f"source {s.uri} ({self.camera}) stopped on an error: {type(s.error).__name__}: {s.error}"
        return SourceEnd(
            info=s.info,
            uri=s.uri,
            frames_read=s.read,
            corrupt=s.corrupt,
            late=s.late,
            decode_seconds=s.decode_seconds,
            dropped=dropped,
            failed=s.error is not None,
            reconnects=s.reconnects,
            detection=self.cadence.to_json(),
        )


class CameraGroup:
    """The cameras one process runs: their workers, the shared embedder and the round-robin over them.

    It is also the in-process engine of :class:`reidpipe.pipeline.runner.Pipeline`: it fulfils
    :class:`reidpipe.pipeline.contracts.Engine`, as :class:`~reidpipe.pipeline.engine.ray_engine.RayEngine` does.

    ``uris[i]`` is camera ``names[i]``; ``detections[i]`` (public detections) and ``offsets[i]`` belong to
    it. ``open()`` opens the sources (where this group runs), the detectors and the embedder, raising
    the same one-line errors as anywhere else."""

    def __init__(
        self,
        config: PipelineConfig,
        uris: Sequence[str],
        names: Sequence[str],
        offsets: Sequence[float] | None = None,
        detections: Sequence[str] | None = None,
        record_dir: str | None = None,
        thumbs: bool = False,
    ):
        self.config = config
        self.uris = [str(u) for u in uris]
        self.names = list(names)
        self.offsets = list(offsets) if offsets is not None else None
        self.detections = list(detections) if detections is not None else None
        self.record_dir = record_dir
        self.thumbs = bool(thumbs)  # keep the best crops' thumbnails on the closed tracklets
        self.timer = StageTimer()
        self.workers: list[CameraWorker] = []
        self.embedder: Embedder | None = None
        self.embeds: EmbedQueue | None = None
        self.lost: dict[str, str] = {}  # cameras whose worker died (never, in-process)
        self._notify = threading.Event()
        self.chooser: IntervalChooser | None = None  # the live cameras' intervals (detect_every: auto)
        self.recording: RecordingInterval | None = None  # the recordings' interval (detect_every: auto)
        self.live = False  # whether any source is live (then rounds are detected in line)
        self.detect_threads = 1  # threads detecting the rounds of recordings (pipeline/engine/ahead.py)

    def open(self) -> list[SourceInfo]:
        cfg = self.config
        srcs = open_sources(
            self.uris,
            names=self.names,
            offsets=self.offsets,
            stride=cfg.stride,
            max_frames=cfg.max_frames,
            queue_size=cfg.queue_size,
            reconnect_attempts=cfg.reconnect_attempts,
            reconnect_backoff=cfg.reconnect_backoff,
            record_dir=self.record_dir,
            notify=self._notify,
            pace=cfg.pace,
        )
        self.live = any(s.live for s in srcs)
        if self.detections is not None:
            detectors = [
                load_detector(cfg, d, s.info) for d, s in zip(self.detections, srcs)
            ]  # checked against the frame
        else:
            detectors = [self._detector()] * len(srcs)
            if not self.live:  # recordings: rounds side by side where the detector allows it
                self.detect_threads = detect_threads(detectors[0])
            if cfg.detect_batch and len(srcs) > 1:
                detectors[0].enable_batching()  # one inference call per round of cameras
        self.embedder = load_embedder(cfg)
        embeds = EmbedQueue(
            self.embedder,
            bank_size=cfg.sampler.bank,
            batch=cfg.embed_batch,
            timer=self.timer,
            asynchronous=embeds_async(cfg),
            budget=cfg.embed_budget,
        )
        sampler = CropSampler(cfg.sampler)
        thumbs = self._thumbs()
        self.recording = self._recording_interval(srcs, detectors[0])
        cadences = [self._cadence(s) for s in srcs]
        self.workers = [
            CameraWorker(s, d, self._tracker(s.info.camera, c.every), sampler, embeds, self.timer, thumbs, c)
            for s, d, c in zip(srcs, detectors, cadences)
        ]
        self.chooser = IntervalChooser(cadences, most=cfg.detect_every_max)
        self.embeds = embeds
        return [s.info for s in srcs]

    def _detector(self) -> Detector:
        """The cameras' shared detector; a YOLOX model with ``backend: auto`` on the runtime measured
        fastest on this machine that keeps its detections (models/runtime_choice.py)."""
        from reidpipe.pipeline.models.detect import infer_detector_kind

        cfg = self.config
        kind = cfg.detector_kind or infer_detector_kind(cfg.detector)
        if kind == "yolox" and cfg.backend == "auto" and Path(cfg.detector).is_file():
            from reidpipe.pipeline.models.runtime_choice import load_yolox

            return load_yolox(cfg, self.uris)
        return load_detector(cfg)

    def _cadence(self, source: FrameSource) -> CameraCadence:
        """A camera's interval: ``detect_every`` when it is a number; with ``auto``, an interval chosen
        as the run goes for a live camera, and :attr:`recording`'s for a recording."""
        every = self.config.detect_every
        if every != "auto":
            return CameraCadence(source.info.camera, every=int(every))
        if source.live or self.recording is None:
            return CameraCadence(source.info.camera, adaptive=source.live)
        return CameraCadence(source.info.camera, every=self.recording.every, reason=self.recording.reason)

    def _recording_interval(self, sources: Sequence[FrameSource], detector: Detector) -> RecordingInterval | None:
        """The recordings' interval with ``detect_every: auto`` (pipeline/engine/cadence.py), from the
        detector's CPU cost measured on a few frames of the first recording; None when there is
        nothing to choose (a fixed interval, no recording, public detections)."""
        recordings = [s for s in sources if not s.live]
        if self.config.detect_every != "auto" or not recordings or self.detections is not None:
            return None
        from reidpipe.console import note
        from reidpipe.pipeline.models.runtime_choice import calibration_clip, detector_cpu_seconds

        demand = sum(s.info.fps / max(s.stride, 1) for s in recordings)
        images = [im for _, im in calibration_clip([s.uri for s in recordings], frames=CALIBRATION_FRAMES)]
        chosen = recording_interval(demand, detector_cpu_seconds(detector, images), usable_cpus())
        which = "every frame" if chosen.every == 1 else f"every {chosen.every}nd frame"
        note(f"detect_every auto: the detector runs on {which} of the recordings ({chosen.reason})")
        return chosen

    def _thumbs(self) -> ThumbKeeper | None:
        if not self.thumbs:
            return None
        return ThumbKeeper()

    def _tracker(self, camera: str, every: int) -> CameraTracker:
        cfg = self.config
        return CameraTracker(
            camera,
            cfg.tracker,
            lost_frames=cfg.track_lost_frames,
            high_conf=cfg.track_high_conf,
            new_conf=cfg.track_new_conf,
            min_hits=cfg.track_min_hits,
            min_iou=cfg.track_min_iou,
            min_seconds=cfg.track_min_seconds,
            min_foreground=cfg.track_min_foreground,
            complete_hidden=cfg.track_complete_hidden,
            interpolate=cfg.interpolate,
            max_gap=cfg.interpolate_max_gap,
            detect_every=every,
        )

    @property
    def link_threshold(self) -> float:
        if self.embedder is None:
            raise RuntimeError("the link threshold is known once the embedder is loaded (start the group first)")
        return float(self.embedder.link_threshold)

    def start(self) -> list[Event]:
        """Start the readers: their ``source_start`` events, after a ``model`` event per model OpenVINO runs
        (the precision it runs in)."""
        return self._model_events() + [w.start() for w in self.workers]

    def _model_events(self) -> list[Event]:
        models: list[tuple[str, Any]] = [("detector", self.workers[0].detector)] if self.workers else []
        events: list[Event] = []
        choice = getattr(models[0][1], "runtime_choice", None) if models else None
        if choice is not None:
            from reidpipe.console import note

            events.append(
                ("runtime_choice", {"role": "detector", "path": str(self.config.detector), **choice.to_json()})
            )
            note(choice.summary())
        for role, model in [*models, ("embedder", self.embedder)]:
            precision = openvino_precision_of(model)
            if precision is not None:
                fields = {"role": role, "path": str(model.path), "runtime": "openvino", "precision": precision}
                events.append(("model", fields))
        return events

    def steps(self) -> Iterator[Step]:
        """Every camera's steps, one frame per camera per round, until every source has ended. Each
        round is planned (which frames the detector runs on), then detected (:meth:`_detect_round`),
        then tracked. With recordings only, the next rounds are detected on detect threads while this
        one is tracked (pipeline/engine/ahead.py: the same detections, the same order). Live cameras
        detect in line: their round is tracked as soon as it came, and the interval chooser times the
        loop as it is."""
        by_source = {id(w.source): w for w in self.workers}
        waited = lambda s: self.timer.add("wait", s)  # noqa: E731
        window = _Window(self)
        ahead: DetectAhead[tuple[list[_Planned], list[Event]]] | None = None
        if not self.live:
            ahead = DetectAhead(self.detect_threads)
        try:
            for items in rounds([w.source for w in self.workers], self._notify, waited=waited):
                events = self._choose_intervals(window)
                plan = [
                    (by_source[id(src)], item, item is not None and by_source[id(src)].plan(item))
                    for src, item in items
                ]
                if ahead is None:
                    yield from self._track_round(plan, events, self._detect_round(plan))
                    continue
                for (done, evs), found in ahead.put((plan, events), self._detect_round, plan):
                    yield from self._track_round(done, evs, found)
            for (done, evs), found in ahead.drain() if ahead is not None else ():
                yield from self._track_round(done, evs, found)
        finally:
            if ahead is not None:
                ahead.close()

    def _track_round(self, plan: list[_Planned], events: list[Event], detections: dict[int, Any]) -> Iterator[Step]:
        """The steps of a detected round, in camera order; the round's events go with its first step."""
        for worker, item, detected in plan:
            step = worker.step(item, detections.get(id(worker)), detected)
            step.events[:0], events = events, []
            yield step

    def _choose_intervals(self, window: _Window) -> list[Event]:
        """Every ``chooser.window`` seconds: the live cameras' new intervals from the load measured since
        the last time, as ``detect_interval`` events."""
        chooser = self.chooser
        if chooser is None or not chooser.cameras or window.elapsed() < chooser.window:
            return []
        load = window.take()
        changed = chooser.decide(load, now=window.since_start())
        d, p = chooser.costs or (0.0, 0.0)
        return [
            (
                "detect_interval",
                {
                    "camera": camera,
                    "every": new,
                    "was": old,
                    "busy": round(load.busy_share, 3),
                    "detect_ms": round(1000 * d, 2),
                    "other_ms": round(1000 * p, 2),
                    "offered_fps": round(load.offered.get(camera, 0.0), 2),
                    "dropped": load.dropped,
                },
            )
            for camera, (old, new) in changed.items()
        ]

    def _detect_round(self, plan: list[_Planned]) -> dict[int, Any]:
        """Detections of a round's planned frames, by ``id(worker)``: one ``detect_batch`` call per
        detector that two or more of them share (``detect_batch`` on), one ``detect`` call otherwise."""
        by_detector: dict[int, list[tuple[CameraWorker, Frame]]] = {}
        for worker, item, detected in plan:
            if item is not None and detected:
                by_detector.setdefault(id(worker.detector), []).append((worker, item))
        found: dict[int, Any] = {}
        for group in by_detector.values():
            detector = group[0][0].detector
            with self.timer("detect"):
                if self.config.detect_batch and len(group) > 1:
                    dets = detector.detect_batch([f.image for _, f in group], [f.index for _, f in group])
                else:
                    dets = [detector.detect(f.image, index=f.index) for _, f in group]
            found.update({id(w): d for (w, _), d in zip(group, dets)})
        return found

    def stop(self) -> list[Tracklet]:
        """Stop the readers and close every open track (in camera order)."""
        for w in self.workers:
            w.source.stop()
        for w in self.workers:
            w.source.join(timeout=2.0)
        try:
            closed = [t for w in self.workers for t in w.stop()]
        finally:
            if self.embeds is not None:
                self.embeds.close()  # embeds what is left, ends the embed thread
        return closed

    def figures(self) -> dict[str, SourceEnd]:
        """Every source's figures so far (at the end of a run: final, also for cameras cut short)."""
        return {w.camera: w._source_end() for w in self.workers}

    def recordings(self) -> dict[str, str]:
        """Camera -> the raw recording of a live source (``--save-video``), to annotate at the end."""
        return {w.camera: w.source.record_path for w in self.workers if w.source.record_path}

    def shutdown(self) -> None:
        """Nothing to release in-process (the Ray engine ends its actors here)."""

    @property
    def counts(self) -> Counts:
        total = Counts(crops_embedded=self.embeds.embedded if self.embeds is not None else 0)
        for w in self.workers:
            total += w.counts
        return total

    @property
    def decode_seconds(self) -> float:
        return float(sum(w.source.decode_seconds for w in self.workers))


_Planned = tuple["CameraWorker", "Frame | None", bool]  # a round's item and whether it is detected


class _Window:
    """The running totals a group's frame loop had at the start of the current measuring window."""

    def __init__(self, group: CameraGroup):
        import time

        self.group = group
        self.clock = time.perf_counter
        self.started = self.clock()
        self.t0, self.totals = self.started, self._totals()

    def _totals(self) -> dict[str, Any]:
        seconds = self.group.timer.seconds
        cadences = [w.cadence for w in self.group.workers]
        return {
            "wait": seconds.get("wait", 0.0),
            "detect": seconds.get("detect", 0.0),
            "detected": sum(c.detected for c in cadences),
            "processed": sum(c.detected + c.tracked_only for c in cadences),
            "read": {w.camera: w.source.read / w.source.stride for w in self.group.workers},
            "late": sum(w.source.late for w in self.group.workers),
        }

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def since_start(self) -> float:
        return self.clock() - self.started

    def take(self) -> Load:
        """The load since the window started; a new window starts now."""
        now, totals = self.clock(), self._totals()
        wall = max(now - self.t0, 1e-9)
        before = self.totals
        load = Load(
            seconds=wall,
            busy=max(wall - (totals["wait"] - before["wait"]), 0.0),
            detect=totals["detect"] - before["detect"],
            detected=totals["detected"] - before["detected"],
            processed=totals["processed"] - before["processed"],
            offered={c: (n - before["read"][c]) / wall for c, n in totals["read"].items()},
            dropped=totals["late"] - before["late"],
        )
        self.t0, self.totals = now, totals
        return load
