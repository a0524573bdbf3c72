"""``reidpipe.Pipeline``: the orchestration of ``reidpipe run``.

    reader threads (one per source, bounded queues)
        -> detect (per frame) -> track (per camera) -> sampler (quality gate) -> pending crops
        -> embed (one batch across all cameras, when ``embed_batch`` crops wait or a track closes)
        -> tracklets close -> pooled feature -> Linker.add (online) -> ... -> Linker.finalize
        -> trajectories.json (+ MOT txt, annotated videos); events.jsonl all along.

The main thread polls every camera's queue in turn (one frame per camera per round, so cameras
advance together) and sleeps on a shared event only when no queue has a frame. Decoding runs in
the reader threads; the detector, trackers, embedder and linker run in the main thread; events are
written by a background thread.

``Pipeline.stats`` after ``run`` (all times from ``time.perf_counter``)::

    {"seconds": {"decode": s, "detect": s, "track": s, "crop": s, "embed": s, "link": s, "export": s,
                 "wait": s, "setup": s, "loop": s, "total": s},
     "frames": {camera: processed frames}, "frames_read": {camera: frames read before stride},
     "fps": {camera: frames / loop seconds, ..., "total": all frames / loop seconds},
     "crops_embedded": n, "detections": n, "tracked_boxes": n, "tracklets": n, "identities": n,
     "corrupt_frames": {camera: n}, "late_frames": {camera: n}, "dropped": {camera: warning},
     "interrupted": bool}

``decode`` is the sum of the reader threads' decode time (it overlaps the main thread's work);
``wait`` is main-thread time spent waiting for frames (decode-bound when large); ``loop`` is the
wall time from the first frame request to the last source's end, ``total`` the whole ``run``.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.console import warn as _warn
from reidpipe.errors import Interrupted, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.types import Identity, SourceInfo, Tracklet
from reidpipe.pipeline.validate import check_config, check_runnable
from reidpipe.signals import hold_signals, signal_of

STAGES = ("decode", "detect", "track", "crop", "embed", "link", "export")


class Pipeline:
    """Multi-camera detect -> track -> embed -> link -> export.

    ``Pipeline(config=None, **overrides)``: a :class:`PipelineConfig` (default: the dataclass
    defaults) with fields replaced by ``overrides`` (``sampler=`` / ``link=`` may be dicts).
    ``run(sources) -> list[Identity]`` writes the outputs into ``config.output`` and sets
    ``.sources`` (``list[SourceInfo]``), ``.stats``, ``.identities`` and ``.output_dir``."""

    def __init__(self, config: PipelineConfig | None = None, **overrides: Any):
        cfg = config if config is not None else PipelineConfig()
        self.config = cfg.replace(**overrides) if overrides else cfg
        check_config(self.config)  # every value by its rule (pipeline/validate.py): ConfigError naming the key
        self.sources: list[SourceInfo] = []
        self.stats: dict[str, Any] = {}
        self.identities: list[Identity] = []
        self.output_dir: Path | None = None
        self.detector = None  # kept so a caller (bench) can reuse the loaded models
        self.embedder = None

    # ------------------------------------------------------------------ setup
    def _setup(self, uris: list[str]):
        from reidpipe.pipeline.detect import load_detector
        from reidpipe.pipeline.embed import load_embedder
        from reidpipe.pipeline.export import check_output_dir
        from reidpipe.pipeline.sources import open_sources

        cfg = self.config
        if not uris:
            raise UsageError("no sources given (--sources A B ...)")
        if cfg.detections is not None and len(cfg.detections) != len(uris):
            raise UsageError(f"--detections has {len(cfg.detections)} files for {len(uris)} --sources; "
                             "give one det.txt per source, in the same order")
        check_runnable(cfg)
        out = check_output_dir(cfg.output)
        self._notify = threading.Event()
        srcs = open_sources(uris, names=cfg.names, offsets=cfg.offsets, stride=cfg.stride,
                            max_frames=cfg.max_frames, queue_size=cfg.queue_size,
                            reconnect_attempts=cfg.reconnect_attempts, reconnect_backoff=cfg.reconnect_backoff,
                            record_dir=str(out) if cfg.save_video else None, notify=self._notify)
        if cfg.detections is not None:
            detectors = [load_detector(cfg, d, s.info) for d, s in zip(cfg.detections, srcs)]
        else:
            shared = load_detector(cfg)
            detectors = [shared] * len(srcs)
        self.detector = detectors[0]
        self.embedder = load_embedder(cfg)
        return out, srcs, detectors

    def _link_config(self):
        """The linker's config with the threshold resolved: an explicit ``link.min_similarity`` wins,
        else the embedder's own ``link_threshold`` (cosine scales differ between descriptors)."""
        link = self.config.link
        if link.min_similarity is None:
            link = dataclasses.replace(link, min_similarity=float(self.embedder.link_threshold))
        return link

    # ------------------------------------------------------------------ run
    def run(self, sources: list[str]) -> list[Identity]:
        from reidpipe.pipeline.export import (
            EventWriter,
            discard_stale_outputs,
            order_identities,
            write_mot,
            write_trajectories,
            write_videos,
        )
        from reidpipe.pipeline.link import Linker
        from reidpipe.pipeline.sampler import CropSampler, add_to_bank, crop
        from reidpipe.pipeline.sources import round_robin
        from reidpipe.pipeline.track import CameraTracker

        t_run = time.perf_counter()
        cfg = self.config
        sources = [str(s) for s in sources]
        out, srcs, detectors = self._setup(sources)
        self.output_dir = out
        self.sources = [s.info for s in srcs]
        cams = [s.info.camera for s in srcs]
        secs = dict.fromkeys((*STAGES, "wait"), 0.0)
        n_frames = dict.fromkeys(cams, 0)
        counters = {"detections": 0, "tracked_boxes": 0, "crops_embedded": 0}
        trackers = {c: CameraTracker(c, cfg.tracker, lost_frames=cfg.track_lost_frames,
                                     high_conf=cfg.track_high_conf, new_conf=cfg.track_new_conf,
                                     min_hits=cfg.track_min_hits, min_iou=cfg.track_min_iou) for c in cams}
        sampler = CropSampler(cfg.sampler)
        linker = Linker(self._link_config(), cams)
        discard_stale_outputs(out)  # an older run's trajectories.json never stays beside this run's events
        events = EventWriter(out / "events.jsonl" if cfg.events else None)
        pending: list[tuple[Tracklet, float, np.ndarray]] = []
        dropped: dict[str, str] = {}
        bars = self._bars(srcs)

        def flush() -> None:
            if not pending:
                return
            t0 = time.perf_counter()
            feats = self.embedder.embed([c for _, _, c in pending])
            for (tr, q, _), f in zip(pending, feats):
                add_to_bank(tr, f, q, cfg.sampler.bank)
            counters["crops_embedded"] += len(pending)
            pending.clear()
            secs["embed"] += time.perf_counter() - t0

        def close(tracklets: list[Tracklet]) -> None:
            if not tracklets:
                return
            ids = {id(t) for t in tracklets}
            if any(id(tr) in ids for tr, _, _ in pending):
                flush()
            t0 = time.perf_counter()
            for t in tracklets:
                t.feature = t.pooled_feature()
                sampler.forget(t.camera, t.track)
            results = linker.add_many(tracklets) if len(tracklets) > 1 else [linker.add(tracklets[0])]
            secs["link"] += time.perf_counter() - t0
            for t, (gid, ev) in zip(tracklets, results):
                events.emit("track_close", camera=t.camera, track=t.track, frames=len(t.points),
                            start_t=round(t.start_t, 4), end_t=round(t.end_t, 4), embedded=len(t.bank))
                events.emit("link", camera=t.camera, track=t.track, identity=int(gid), **ev.to_json())

        def process(src, frame) -> None:
            cam = frame.camera
            t0 = time.perf_counter()
            dets = detectors[src_index[cam]].detect(frame.image, index=frame.index)
            t1 = time.perf_counter()
            trk = trackers[cam]
            tracked = trk.update(dets, frame.index, frame.t, frame.image)
            t2 = time.perf_counter()
            for tr in trk.opened:
                events.emit("track_open", camera=cam, track=tr.track, frame=frame.index, t=round(frame.t, 4))
            picks = sampler.select(cam, tracked, frame.index, frame.image.shape[:2])
            for row, tid, q in picks:
                pending.append((trk.open[tid], q, crop(frame.image, tracked.xyxy[row])))
            t3 = time.perf_counter()
            secs["detect"] += t1 - t0
            secs["track"] += t2 - t1
            secs["crop"] += t3 - t2
            counters["detections"] += len(dets)
            counters["tracked_boxes"] += len(tracked)
            n_frames[cam] += 1
            close(trk.pop_closed())
            if len(pending) >= cfg.embed_batch:
                flush()
            if bars:
                bar = bars[cam]
                bar.update(1)
                now = time.perf_counter()
                if now - bar_last[cam] > 1.0:
                    bar.set_postfix_str(f"{n_frames[cam] / max(now - t_loop, 1e-9):.1f} fps", refresh=False)
                    bar_last[cam] = now

        def finish_source(src) -> None:
            cam = src.info.camera
            close(trackers[cam].close_all())
            if src.error is not None:
                msg = f"source {src.uri} ({cam}) stopped on an error: {type(src.error).__name__}: {src.error}"
                dropped[cam] = msg
                _warn(msg)
                events.emit("stream_drop", camera=cam, uri=src.uri, message=msg)
            elif src.dropped:
                dropped[cam] = src.dropped
                _warn(src.dropped)
                events.emit("stream_drop", camera=cam, uri=src.uri, message=src.dropped,
                            reconnects=src.reconnects)
            if src.corrupt:  # said in reidpipe's words (FFmpeg's own lines are silenced without --verbose)
                _warn(f"{cam}: {src.corrupt} corrupt frame{'s' if src.corrupt > 1 else ''} skipped ({src.uri})")
            events.emit("source_end", camera=cam, frames=n_frames[cam], frames_read=src.read,
                        corrupt=src.corrupt, late=src.late)

        src_index = {c: i for i, c in enumerate(cams)}
        bar_last = dict.fromkeys(cams, 0.0)
        interrupted = False
        stop_signal = 0  # the signal that stopped the run (SIGINT, SIGTERM, SIGHUP), 0 = none
        failure: BaseException | None = None
        t_setup = time.perf_counter() - t_run
        t_loop = time.perf_counter()
        try:
            for s in srcs:
                events.emit("source_start", camera=s.info.camera, uri=s.uri, kind=s.kind, fps=s.info.fps,
                            width=s.info.width, height=s.info.height, frames=s.info.frames, offset=s.info.offset)
                s.start()
            def waited(seconds: float) -> None:
                secs["wait"] += seconds

            for s, item in round_robin(srcs, self._notify, waited=waited):
                if item is None:
                    finish_source(s)
                else:
                    process(s, item)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (reidpipe/signals.py)
            interrupted, stop_signal = True, signal_of(exc)
        except BaseException as exc:  # a failure: still write what was seen, then re-raise
            failure = exc
        finally:
            for s in srcs:
                s.stop()
        # finalise with everything seen (also after Ctrl-C or a failure)
        held = hold_signals()  # a second Ctrl-C / SIGTERM waits until the outputs are written
        try:
            for s in srcs:
                s.join(timeout=2.0)
            open_left = [t for c in cams for t in trackers[c].close_all()]
            close(open_left)
            flush()
            t_loop_end = time.perf_counter()
            t0 = time.perf_counter()
            identities = order_identities(linker.finalize())
            secs["link"] += time.perf_counter() - t0
            for s in srcs:  # live sources learn their frame count at the end
                if s.info.frames is None:
                    s.info.frames = s.read
            t0 = time.perf_counter()
            write_trajectories(out / "trajectories.json", self.sources, identities)
            if cfg.save_mot:
                write_mot(out, self.sources, identities)
            if cfg.save_video:
                recordings = {s.info.camera: s.record_path for s in srcs if s.record_path}
                write_videos(out, self.sources, identities, stride=cfg.stride, max_frames=cfg.max_frames,
                             recordings=recordings)
                for p in recordings.values():
                    Path(p).unlink(missing_ok=True)
            secs["export"] += time.perf_counter() - t0
            events.emit("run_end", interrupted=interrupted, identities=len(identities),
                        tracklets=len(linker.tracklets), frames=sum(n_frames.values()))
        except BaseException:
            if failure is None:
                raise
            identities = []  # finalising failed too: raise the first failure below
            t_loop_end = time.perf_counter()
        finally:
            events.close()
            for bar in (bars or {}).values():
                bar.close()
            late_signals = held.release()
        if late_signals and not interrupted:  # stopped while finalising: the outputs are complete
            interrupted, stop_signal = True, late_signals[0]
        if failure is not None:
            raise failure
        secs["decode"] = float(sum(s.decode_seconds for s in srcs))
        loop = max(t_loop_end - t_loop, 1e-9)
        total_frames = sum(n_frames.values())
        self.identities = identities
        self.stats = {
            "seconds": {**{k: round(v, 4) for k, v in secs.items()}, "setup": round(t_setup, 4),
                        "loop": round(loop, 4), "total": round(time.perf_counter() - t_run, 4)},
            "frames": dict(n_frames),
            "frames_read": {s.info.camera: s.read for s in srcs},
            "fps": {**{c: round(n / loop, 3) for c, n in n_frames.items()}, "total": round(total_frames / loop, 3)},
            "crops_embedded": counters["crops_embedded"],
            "detections": counters["detections"],
            "tracked_boxes": counters["tracked_boxes"],
            "tracklets": len(linker.tracklets),
            "identities": len(identities),
            "corrupt_frames": {s.info.camera: s.corrupt for s in srcs},
            "late_frames": {s.info.camera: s.late for s in srcs},
            "dropped": dict(dropped),
            "interrupted": interrupted,
        }
        if interrupted:
            raise Interrupted(f"interrupted: outputs with the {total_frames} frames seen so far written to {out}",
                              signum=stop_signal)
        return identities

    def _bars(self, srcs):
        if not self.config.progress:
            return None
        from tqdm import tqdm

        bars = {}
        for i, s in enumerate(srcs):
            total = None
            if s.info.frames:
                n = s.info.frames if self.config.max_frames is None else min(s.info.frames, self.config.max_frames)
                total = -(-n // self.config.stride)
            bars[s.info.camera] = tqdm(total=total, desc=s.info.camera, unit="fr", position=i, leave=True,
                                       dynamic_ncols=True, file=sys.stderr)
        return bars
