"""``reidpipe.Pipeline``: the orchestration of ``reidpipe run``.

    camera workers (pipeline/engine/worker.py: source -> detect -> track -> crop sampler -> embed queue)
        -> closed tracklets with pooled features -> Linker.add (online) -> ... -> Linker.finalize
        -> trajectories.json (+ MOT txt, annotated videos); events.jsonl all along.

An *engine* runs the workers and yields their steps in one fixed order (one frame per camera per
round; files in lockstep, so a run is deterministic): ``--engine local`` (default) is one
:class:`~reidpipe.pipeline.engine.worker.CameraGroup` of every camera in this process (reader threads
decode, the main thread detects, tracks, embeds one batch across cameras and links);
``--engine ray`` runs one group per Ray actor (:mod:`reidpipe.pipeline.engine.ray_engine`) and streams
their closed tracklets back here. Either way this module links, logs and writes the outputs.

``Pipeline.stats`` after ``run`` is :meth:`RunStats.to_json` (``Pipeline.run_stats`` the dataclass)::

    {"seconds": {"decode": s, "detect": s, "track": s, "crop": s, "embed": s, "link": s, "export": s,
                 "wait": s, "setup": s, "loop": s, "total": s},
     "frames": {camera: processed frames}, "frames_read": {camera: frames read before stride},
     "fps": {camera: frames / loop seconds, ..., "total": all frames / loop seconds},
     "crops_embedded": n, "detections": n, "tracked_boxes": n, "tracklets": n, "identities": n,
     "corrupt_frames": {camera: n}, "late_frames": {camera: n}, "dropped": {camera: warning},
     "detection": {camera: {"every": K, "adaptive": bool, "detected_frames": n,
                            "tracked_only_frames": n, "changes": [[loop s, K], ...]}},
     "interrupted": bool, "engine": "local" | "ray"}

``late_frames`` are the frames a live camera's reader dropped because the pipeline was behind
(counted, never silent: a warning names them at the end); ``detection`` says how often the detector
ran on each camera (pipeline/cadence.py) and is also in ``trajectories.json`` (each source's
``detection``, with ``late_frames``).

``decode`` is the sum of the reader threads' decode time (it overlaps the main thread's work);
``wait`` is time spent waiting for frames (decode-bound when large); ``loop`` is the wall time from
the first frame request to the last source's end, ``total`` the whole ``run``. With ``--engine ray``
the stage seconds are summed over the workers (they run in parallel, so they may exceed ``loop``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reidpipe.console import warn as _warn
from reidpipe.cpus import one_blas_thread
from reidpipe.errors import Interrupted, ReidpipeError, UsageError, WorkerLostError
from reidpipe.pipeline.config import LinkerConfig, PipelineConfig
from reidpipe.pipeline.contracts import Detector, Embedder, Engine
from reidpipe.pipeline.engine.stats import STAGES, RunStats, StageTimer
from reidpipe.pipeline.io.export import (
    EventWriter,
    check_output_dir,
    discard_stale_outputs,
    order_identities,
    write_mot,
    write_trajectories,
    write_videos,
)
from reidpipe.pipeline.io.report import write_report
from reidpipe.pipeline.io.sources import default_names, source_kind
from reidpipe.pipeline.io.thumbs import ThumbWriter
from reidpipe.pipeline.types import Identity, SourceEnd, SourceInfo, Step, Tracklet
from reidpipe.pipeline.validate import check_config, check_runnable
from reidpipe.signals import hold_signals, signal_of

if TYPE_CHECKING:
    from reidpipe.pipeline.gallery.session import GallerySession

__all__ = ["STAGES", "Pipeline", "RunStats"]


class Pipeline:
    """Multi-camera detect -> track -> embed -> link -> export.

    ``Pipeline(config=None, **overrides)``: a :class:`PipelineConfig` (default: the dataclass
    defaults) with fields replaced by ``overrides`` (``sampler=`` / ``link=`` / ``engine=`` may be
    dicts). ``run(sources) -> list[Identity]`` writes the outputs into ``config.output`` and sets
    ``.sources`` (``list[SourceInfo]``), ``.stats``, ``.run_stats``, ``.identities`` and ``.output_dir``.
    A closed track's ``points`` is a read-only sequence read back from the run's point file
    (pipeline/engine/spill.py: what keeps a long run's memory flat), which lasts as long as they are referenced."""

    def __init__(self, config: PipelineConfig | None = None, **overrides: Any):
        cfg = config if config is not None else PipelineConfig()
        self.config = cfg.replace(**overrides) if overrides else cfg
        check_config(self.config)  # every value by its rule (pipeline/validate.py): ConfigError naming the key
        self.sources: list[SourceInfo] = []
        self.stats: dict[str, Any] = {}
        self.run_stats: RunStats | None = None
        self.identities: list[Identity] = []
        # the run's tracks as the tracker made them (before any split); a long online run's are read
        # back from the run's point file when asked (pipeline/engine/spill.py: TrackShelf)
        self.tracklets: Sequence[Tracklet] = []
        self.output_dir: Path | None = None
        self.gallery_summary: dict[str, int] = {}  # with --gallery: identities written, continued, beyond, pruned
        self.detector: Detector | None = None  # kept so a caller (bench) can reuse the loaded models (local engine)
        self.embedder: Embedder | None = None

    def run(self, sources: list[str]) -> list[Identity]:
        t_run = time.perf_counter()
        uris = self._check(sources)
        gallery = self._open_gallery(uris)
        try:
            return self._run(uris, gallery, t_run)
        finally:
            if gallery is not None:
                gallery.close()

    def _run(self, uris: list[str], gallery: GallerySession | None, t_run: float) -> list[Identity]:
        engine = self._open_engine(uris)
        link_config = self._link_config(engine.link_threshold, uris)
        run = _Run(self.config, engine, self.sources, link_config, self.output_dir, gallery)
        run.t_setup = time.perf_counter() - t_run
        try:
            run.start()
            with one_blas_thread():  # the detect threads hold the cores while the frames stream
                for step in engine.steps():
                    run.take(step)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (reidpipe/signals.py)
            run.interrupted, run.stop_signal = True, signal_of(exc)
        finally:
            failing = sys.exc_info()[1] is not None  # finalise anyway; the first failure is what is raised
            held = hold_signals()  # a second Ctrl-C / SIGTERM waits until the outputs are written
            try:
                self.identities = run.finish(quiet=failing)
            finally:
                late_signals = held.release()
        if late_signals and not run.interrupted:  # stopped while finalising: the outputs are complete
            run.interrupted, run.stop_signal = True, late_signals[0]
        self.tracklets = (
            run.linker.tracklets
            if gallery is None
            else [t for t in run.linker.tracklets if t.key not in gallery.primed]
        )
        if gallery is not None:
            self.gallery_summary = dict(gallery.written)
        self.run_stats = run.stats(total=time.perf_counter() - t_run)
        self.stats = self.run_stats.to_json()
        if self.config.report:  # from the outputs just written (events.jsonl closed)
            assert self.output_dir is not None  # set by _check before anything runs
            write_report(self.output_dir)
        gallery_error = _gallery_failure(run, self.output_dir)
        if gallery_error is not None and run.interrupted:  # the signal's exit code, the failure said
            _warn(str(gallery_error))
        elif gallery_error is not None:
            raise gallery_error
        if run.interrupted:
            raise Interrupted(
                f"interrupted: outputs with the {sum(run.frames.values())} frames seen so far "
                f"written to {self.output_dir}",
                signum=run.stop_signal,
            )
        if engine.lost:
            raise WorkerLostError(
                f"{len(engine.lost)} camera worker(s) died ({'; '.join(engine.lost.values())}); "
                f"outputs with the other cameras written to {self.output_dir}"
            )
        return self.identities

    # ------------------------------------------------------------------ setup
    def _check(self, sources: list[str]) -> list[str]:
        cfg = self.config
        uris = [str(s) for s in sources]
        if not uris:
            raise UsageError("no sources given (--sources A B ...)")
        if cfg.detections is not None and len(cfg.detections) != len(uris):
            raise UsageError(
                f"--detections has {len(cfg.detections)} files for {len(uris)} --sources; "
                "give one det.txt per source, in the same order"
            )
        check_runnable(cfg)
        self.output_dir = check_output_dir(cfg.output)
        return uris

    def _open_gallery(self, uris: list[str]) -> GallerySession | None:
        """``--gallery DIR``: the gallery locked for this run, and the sources put on one time axis
        (their start times as offsets); None without a gallery."""
        if self.config.gallery is None:
            return None
        from reidpipe.pipeline.gallery.session import GallerySession

        gallery = GallerySession.open(self.config, uris)
        self.config = self.config.replace(offsets=gallery.offsets)
        return gallery

    def _open_engine(self, uris: list[str]) -> Engine:
        """The engine, its sources opened (and checked) and its models loaded; nothing started. Either
        engine is assigned to one variable typed :class:`Engine`: mypy proves both offer its surface."""
        from reidpipe.pipeline.engine.worker import CameraGroup

        cfg = self.config
        names = list(cfg.names) if cfg.names is not None else default_names(uris)
        engine: Engine
        if cfg.engine.kind == "ray":
            from reidpipe.pipeline.engine.ray_engine import RayEngine

            engine = RayEngine(cfg, uris, names)
        else:
            engine = CameraGroup(
                cfg,
                uris,
                names,
                offsets=cfg.offsets,
                detections=cfg.detections,
                record_dir=str(self.output_dir) if cfg.save_video else None,
                thumbs=cfg.crops,
            )
        self.sources = engine.open()
        if isinstance(engine, CameraGroup):
            self.detector = engine.workers[0].detector
            self.embedder = engine.embedder
        return engine

    def _link_config(self, embedder_threshold: float, uris: list[str]) -> LinkerConfig:
        """The linker's config with the fallback cosine resolved: the embedder's own ``link_threshold``
        (used only where the run holds too little to calibrate) unless the config names one, and
        ``refine`` decided (auto: offline when every source is a recording)."""
        link = self.config.link
        if link.fallback_similarity is None:
            link = dataclasses.replace(link, fallback_similarity=float(embedder_threshold))
        if link.refine is None:  # auto: offline for recordings, online with a live source
            link = dataclasses.replace(link, refine=all(source_kind(u) in ("file", "folder") for u in uris))
        return link


class _Run:
    """The driver's side of one run: it links the tracklets the engine's workers close, logs events,
    shows progress and, at the end, writes the outputs."""

    def __init__(
        self,
        config: PipelineConfig,
        engine: Engine,
        sources: list[SourceInfo],
        link_config: LinkerConfig,
        out: Path | None,
        gallery: GallerySession | None = None,
    ) -> None:
        from reidpipe.pipeline.engine.spill import PointStore
        from reidpipe.pipeline.link import Linker

        assert out is not None
        self.config = config
        self.engine = engine
        self.sources = sources
        self.out = out
        self.cameras = [s.camera for s in sources]
        self.timer = StageTimer()
        # a gallery stores every track's feature at the run's end: the linker keeps them all then
        self.points = PointStore(out)  # closed tracks' points, on disk until the outputs are written
        # online, the tracks no decision reads again go to the same file (TrackShelf)
        self.linker = Linker(link_config, self.cameras, keep_features=gallery is not None, store=self.points)
        self.gallery = gallery
        if gallery is not None:  # the gallery's tracklets near this run, linked like the run's own
            gallery.prime(self.linker, sources)
        discard_stale_outputs(out)  # an older run's trajectories.json never stays beside this run's events
        self.events = EventWriter(out / "events.jsonl" if config.events else None)
        self.thumbs = ThumbWriter(out / "thumbs") if config.crops else None
        self.bars = _Bars(sources, config) if config.progress else None
        self.frames = dict.fromkeys(self.cameras, 0)
        self.ends: dict[str, SourceEnd] = {}
        self.dropped: dict[str, str] = {}
        self.interrupted = False
        self.stop_signal = 0  # the signal that stopped the run (SIGINT, SIGTERM, SIGHUP), 0 = none
        self.t_setup = 0.0
        self.t_loop = 0.0
        self.t_loop_end = 0.0
        self.identities: list[Identity] = []
        self.gallery_error: Exception | None = None  # the gallery stage failed; the outputs are written

    def start(self) -> None:
        self.t_loop = time.perf_counter()
        for name, fields in self.engine.start():
            self.events.emit(name, **fields)

    def take(self, step: Step) -> None:
        """One worker step: its events, its closed tracklets linked, its source's end."""
        for name, fields in step.events:
            self.events.emit(name, **fields)
        self.link(step.closed)
        if step.frames:
            self.frames[step.camera] += step.frames
            if self.bars is not None:
                self.bars.update(step.camera, step.frames, self.frames[step.camera] / self._elapsed())
        if step.end is not None:
            self.end_source(step.camera, step.end)

    def link(self, tracklets: list[Tracklet]) -> None:
        if not tracklets:
            return
        self._write_thumbs(tracklets)
        with self.timer("link"):
            units = self.linker.cut(tracklets)  # online: a track that swapped people, cut into pieces
            results = self.linker.add_many(units) if len(units) > 1 else [self.linker.add(units[0])]
        for t in tracklets:
            self.events.emit(
                "track_close",
                camera=t.camera,
                track=t.track,
                frames=len(t.points),
                interpolated=len(t.points) - t.detected,
                start_t=round(t.start_t, 4),
                end_t=round(t.end_t, 4),
                embedded=len(t.bank),
            )
        self._emit_splits()
        if self.thumbs is not None and self.linker.cuts_at_close:  # their cuts are decided: spares go
            for t in tracklets:
                self.thumbs.settle(t.camera, t.track)
        for t, (gid, ev) in zip(units, results):
            self.events.emit("link", camera=t.camera, track=t.track, identity=int(gid), **ev.to_json())
        self._emit_merges()
        self._settle([*tracklets, *units])

    def _settle(self, tracklets: list[Tracklet]) -> None:
        """Closed, logged and linked: a track's embeddings go (its pooled feature and segment sums are
        what linking uses) and its points go to disk (pipeline/engine/spill.py): memory stays flat."""
        for t in tracklets:
            t.bank = []
            self.points.spill(t)

    def _emit_merges(self) -> None:
        for merged, into in self.linker.pop_merges():
            self.events.emit("identity_merge", identity=merged, into=into)

    def _write_thumbs(self, tracklets: list[Tracklet]) -> None:
        for t in tracklets:
            if self.thumbs is not None:
                self.thumbs.write(t.camera, t.track, t.thumbs, t.thumb_frames)
            t.thumbs, t.thumb_frames = [], []  # written (or not kept): the pixels do not stay in memory

    def end_source(self, camera: str, end: SourceEnd) -> None:
        self._figures(camera, end)
        if end.dropped:
            self.dropped[camera] = end.dropped
            _warn(end.dropped)
            extra = {} if end.failed else {"reconnects": end.reconnects}
            self.events.emit(end.event, camera=camera, uri=end.uri, message=end.dropped, **extra)
        if end.corrupt:  # said in reidpipe's words (FFmpeg's own lines are silenced without --verbose)
            _warn(f"{camera}: {end.corrupt} corrupt frame{'s' if end.corrupt > 1 else ''} skipped ({end.uri})")
        if end.late:  # a live camera the pipeline could not follow: said, never silent
            every = end.detection.get("every", 1)
            _warn(
                f"{camera}: {end.late} of {end.frames_read} frames dropped, the pipeline was behind the live "
                f"source (detector on every {every} frame{'s' if every > 1 else ''} at the end; {end.uri})"
            )
        self.events.emit(
            "source_end",
            camera=camera,
            frames=self.frames[camera],
            frames_read=end.frames_read,
            corrupt=end.corrupt,
            late=end.late,
            **{k: v for k, v in end.detection.items() if k != "changes"},
        )

    def _figures(self, camera: str, end: SourceEnd) -> None:
        self.ends[camera] = end
        for info in self.sources:  # live sources learn their frame count at the end
            if info.camera == camera:
                info.frames = end.info.frames
                info.detection = {**end.detection, "late_frames": end.late} if end.detection else None

    def _elapsed(self) -> float:
        return max(time.perf_counter() - self.t_loop, 1e-9)

    # ------------------------------------------------------------------ the end
    def finish(self, quiet: bool = False) -> list[Identity]:
        """Finalise with everything seen (also after Ctrl-C or a failure): close what is open, link it,
        write the outputs. With ``quiet`` (a failure is already on its way) a second failure here is
        dropped so that the first one is what the caller sees."""
        try:
            self.link(self.engine.stop())
            self.t_loop_end = time.perf_counter()
            for camera, end in self.engine.figures().items():
                self._figures(camera, end)
            with self.timer("link"):
                self.identities = order_identities(self.linker.finalize())
                self._emit_splits()
                self._emit_merges()
                if self.thumbs is not None:
                    self.thumbs.settle_all()
                self._gallery_stage(self._global_ids)  # the gallery's global ids (reads only)
            self._log_operating_point()
            with self.timer("export"):
                self._write()  # the outputs first: a gallery that fails below never costs them
            with self.timer("link"):
                self._gallery_stage(self._store_in_gallery)
            self.events.emit(
                "run_end",
                interrupted=self.interrupted,
                identities=len(self.identities),
                tracklets=self._tracklets(),
                frames=sum(self.frames.values()),
                seconds={k: round(v, 4) for k, v in self._stage_seconds().items()},
            )
        except BaseException:
            self.t_loop_end = self.t_loop_end or time.perf_counter()
            if not quiet:
                raise
        finally:
            self.events.close()
            if self.bars is not None:
                self.bars.close()
            self.engine.shutdown()
        return self.identities

    def _gallery_stage(self, step: Callable[[], None]) -> None:
        """Run one gallery step unless there is no gallery or an earlier step failed; a failure is kept
        in ``gallery_error`` (raised by ``Pipeline.run`` after every output is written)."""
        if self.gallery is None or self.gallery_error is not None:
            return
        try:
            step()
        except Exception as exc:  # noqa: BLE001 (raised again once the outputs are written)
            self.gallery_error = exc

    def _global_ids(self) -> None:
        assert self.gallery is not None
        try:
            self.identities = self.gallery.assign(self.identities, self.gallery.run_tracklets(self.linker))
        except Exception:
            self.identities = self.gallery.run_only(self.identities)  # the outputs: the run's own ids
            raise

    def _store_in_gallery(self) -> None:
        assert self.gallery is not None
        self.gallery.store_run()

    def _tracklets(self) -> int:
        """The run's own tracklets (not the gallery's the linker was given; split ones as their pieces)."""
        tracklets = self.linker.final_tracklets or self.linker.tracklets
        return len(tracklets) - (len(self.gallery.primed) if self.gallery is not None else 0)

    def _emit_splits(self) -> None:
        """A ``track_split`` event per track cut since the last call (where its appearance changed to
        another person); its thumbnails go to the pieces they show."""
        for s in self.linker.pop_splits():
            self.events.emit("track_split", **s.to_json())
            if self.thumbs is not None:
                pieces = [self.linker.pieces[(s.camera, n)] for n in s.parts]
                self.thumbs.split(s.camera, s.track, [(p.track, p.points[0].frame, p.points[-1].frame) for p in pieces])

    def _log_operating_point(self) -> None:
        op = self.linker.operating_point
        if op is not None:
            self.events.emit("link_operating_point", **op.to_json())
            if self.config.progress:
                from tqdm import tqdm

                tqdm.write(f"reidpipe: linker: {op.summary()}", file=sys.stderr)

    def _write(self) -> None:
        from reidpipe.pipeline.gallery.session import model_id

        cfg, out = self.config, self.out
        op = self.linker.operating_point
        renumber = self.gallery is None or self.gallery_error is not None  # with a gallery: its global ids
        write_trajectories(
            out / "trajectories.json",
            self.sources,
            self.identities,
            linker=op.to_json() if op is not None else None,
            renumber=renumber,
            embedder={k: v for k, v in model_id(cfg).to_json().items() if k != "dim"},  # dim: not known here
        )
        if cfg.save_mot:
            write_mot(out, self.sources, self.identities, renumber)
        if cfg.save_video:
            recordings = self.engine.recordings()
            write_videos(
                out,
                self.sources,
                self.identities,
                stride=cfg.stride,
                max_frames=cfg.max_frames,
                recordings=recordings,
                renumber=renumber,
            )
            for p in recordings.values():
                Path(p).unlink(missing_ok=True)

    def _stage_seconds(self) -> dict[str, float]:
        """Seconds per stage so far (the workers' and this driver's), decode = the readers' sum."""
        timer = StageTimer()
        timer.merge(self.engine.timer.seconds)
        timer.merge(self.timer.seconds)
        timer.seconds["decode"] = self.engine.decode_seconds
        return timer.seconds

    def stats(self, total: float) -> RunStats:
        loop = max(self.t_loop_end - self.t_loop, 1e-9)
        seconds = {**self._stage_seconds(), "setup": self.t_setup, "loop": loop, "total": total}
        counts = self.engine.counts
        ends = self.ends
        return RunStats(
            seconds=seconds,
            frames=dict(self.frames),
            frames_read={c: ends[c].frames_read if c in ends else 0 for c in self.cameras},
            crops_embedded=counts.crops_embedded,
            detections=counts.detections,
            tracked_boxes=counts.tracked_boxes,
            tracklets=self._tracklets(),
            identities=len(self.identities),
            corrupt_frames={c: ends[c].corrupt if c in ends else 0 for c in self.cameras},
            late_frames={c: ends[c].late if c in ends else 0 for c in self.cameras},
            detection={c: ends[c].detection for c in self.cameras if c in ends and ends[c].detection},
            dropped=dict(self.dropped),
            interrupted=self.interrupted,
            engine=self.config.engine.kind,
        )


def _gallery_failure(run: _Run, out: Path | None) -> BaseException | None:
    """The gallery stage's failure as what ``run`` raises, its outputs written: a ``ReidpipeError``
    says where they are and what the gallery holds; anything else (a bug) is raised as it is."""
    exc = run.gallery_error
    if exc is None or not isinstance(exc, ReidpipeError) or run.gallery is None:
        return exc
    if run.gallery.committed:  # an index or --retention failed after the commit
        held = "the gallery holds the run (its indexes are rebuilt from its database when next opened)"
    elif run.gallery.assigned:
        held = "the gallery is unchanged: their ids are the ones it would have given"
    else:
        held = "with the run's own ids; the gallery is unchanged"
    exc.args = (f"{exc} [outputs written to {out}, {held}]",)
    return exc


class _Bars:
    """One tqdm progress bar per camera, with its frames per second."""

    def __init__(self, sources: list[SourceInfo], config: PipelineConfig):
        from tqdm import tqdm

        self.bars = {}
        self.last = {}
        for i, s in enumerate(sources):
            total = None
            if s.frames:
                n = s.frames if config.max_frames is None else min(s.frames, config.max_frames)
                total = -(-n // config.stride)
            self.bars[s.camera] = tqdm(
                total=total, desc=s.camera, unit="fr", position=i, leave=True, dynamic_ncols=True, file=sys.stderr
            )
            self.last[s.camera] = 0.0

    def update(self, camera: str, frames: int, fps: float) -> None:
        bar = self.bars[camera]
        bar.update(frames)
        now = time.perf_counter()
        if now - self.last[camera] > 1.0:
            bar.set_postfix_str(f"{fps:.1f} fps", refresh=False)
            self.last[camera] = now

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
