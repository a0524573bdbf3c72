"""``--engine ray``: the camera workers run as Ray actors; this process (the driver) links.

Each actor is a :class:`~reidpipe.pipeline.engine.worker.CameraGroup` of ``cameras_per_worker`` cameras
(default 1), asking Ray for ``worker_cpus`` CPUs and ``worker_gpus`` GPUs; Ray places it on any node
of the cluster that has them. The actor opens its sources *where it runs* (a file path must exist on
that node, an RTSP URL is read from there), loads its detector and embedder, and returns its closed
tracklets — points and pooled features, never frames — ``chunk`` frames per camera at a time. The
driver restores the order one process would have seen (``(seq, camera index)``: files advance in
lockstep), so both engines link the same tracklets in the same order and give the same identities.

Faults: an actor that dies ends its cameras with a warning and a ``worker_lost`` event; the other
cameras run on, the outputs are written and the run exits with :class:`WorkerLostError` (12). No
cluster at ``ray_address``, or one without the resources asked for, is an :class:`EngineError` (13)
within ``start_timeout`` seconds. An error of a worker (a source it cannot open, a bad det.txt) is
raised here as the same one-line error as in-process.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from reidpipe.errors import EngineError, ReidpipeError, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.engine.stats import Counts, StageTimer
from reidpipe.pipeline.engine.worker import CameraGroup
from reidpipe.pipeline.types import Event, SourceEnd, SourceInfo, Step, Tracklet

IN_FLIGHT = 2  # calls queued per actor, so that it works on the next chunk while the driver links
STOP_TIMEOUT = 30.0  # seconds to wait for the actors' last tracklets at the end of a run


class GroupActor:
    """What runs inside one Ray actor: a camera group and the generator of its steps."""

    def __init__(
        self,
        config: PipelineConfig,
        uris: Sequence[str],
        names: Sequence[str],
        offsets: Sequence[float] | None,
        detections: Sequence[str] | None,
    ):
        self.group = CameraGroup(config, uris, names, offsets=offsets, detections=detections, thumbs=config.crops)
        self._steps: Iterator[Step] | None = None

    def open(self) -> dict[str, Any]:
        """Open sources and models; a ReidpipeError comes back as data (re-raised by the driver as is)."""
        try:
            infos = self.group.open()
        except ReidpipeError as exc:
            return {"error": exc}
        return {
            "infos": infos,
            "kinds": [w.source.kind for w in self.group.workers],
            "link_threshold": self.group.link_threshold,
        }

    def start(self) -> list[Event]:
        events = self.group.start()
        self._steps = self.group.steps()
        return events

    def run(self, n: int) -> list[Step]:
        """The next ``n`` steps (fewer at the end; none once every source ended)."""
        assert self._steps is not None
        out: list[Step] = []
        for step in self._steps:
            out.append(step)
            if len(out) >= n:
                break
        return out

    def stop(self) -> dict[str, Any]:
        closed = self.group.stop()
        return {
            "closed": closed,
            "figures": self.group.figures(),
            "counts": self.group.counts,
            "seconds": self.group.timer.seconds,
            "decode": self.group.decode_seconds,
        }


class LockstepMerge:
    """Puts the steps of several actors back in the order of one process: by ``(seq, camera index)``
    over the cameras still running. A step is released once every running lockstep camera (file or
    folder) has one buffered, so a slow camera holds the others back exactly as in-process; live
    cameras are never waited for (their steps pass straight through)."""

    def __init__(self, cameras: Sequence[str], lockstep: set[str]):
        self.index = {c: i for i, c in enumerate(cameras)}
        self.buffers: dict[str, deque[Step]] = {c: deque() for c in cameras if c in lockstep}
        self.ready: list[Step] = []

    def push(self, step: Step) -> None:
        buf = self.buffers.get(step.camera)
        if buf is None:
            self.ready.append(step)
        else:
            buf.append(step)

    def drop(self, camera: str) -> None:
        """A camera that will send nothing more (its actor died): release what it had sent."""
        self.ready.extend(self.buffers.pop(camera, ()))

    def pop(self, everything: bool = False) -> list[Step]:
        out, self.ready = self.ready, []
        while self.buffers and (everything or all(self.buffers.values())):
            heads = [c for c, b in self.buffers.items() if b]
            if not heads:
                break
            cam = min(heads, key=lambda c: (self.buffers[c][0].seq, self.index[c]))
            step = self.buffers[cam].popleft()
            out.append(step)
            if step.end is not None:
                del self.buffers[cam]
        return out


class RayEngine:
    """The driver's view of the actors: an :class:`~reidpipe.pipeline.contracts.Engine`, as the
    in-process ``CameraGroup`` is."""

    def __init__(self, config: PipelineConfig, uris: Sequence[str], names: Sequence[str]):
        self.config = config
        self.uris = list(uris)
        self.names = list(names)
        if len(set(self.names)) != len(self.names):
            raise UsageError(f"--names must be unique, got {self.names}")
        per = int(config.engine.cameras_per_worker)
        if per < 1:
            raise UsageError(f"--cameras-per-worker must be >= 1, got {per}")
        n = len(self.uris)
        self.groups = [list(range(i, min(i + per, n))) for i in range(0, n, per)]
        self.timer = StageTimer()
        self.counts = Counts()
        self.decode_seconds = 0.0
        self.lost: dict[str, str] = {}
        self.link_threshold = 0.0
        self._ray: Any = None
        self._owns_ray = False
        self._actors: list[Any] = []
        self._inflight: dict[Any, int] = {}  # object ref -> actor index
        self._done: set[int] = set()  # actors whose sources all ended (or that died)
        self._ended: set[str] = set()
        self._frames = dict.fromkeys(self.names, 0)
        self._figures: dict[str, SourceEnd] = {}
        self._infos: list[SourceInfo] = []
        self._merge: LockstepMerge | None = None

    # ------------------------------------------------------------------ opening
    def open(self) -> list[SourceInfo]:
        self._connect()
        try:
            return self._open_actors()
        except BaseException:
            self.shutdown()
            raise

    def _connect(self) -> None:
        import ray

        self._ray = ray
        if ray.is_initialized():  # the caller's Ray (a test session, a notebook): use it, leave it running
            return
        address = self.config.engine.ray_address
        if address and address != "auto":
            _check_reachable(address, timeout=min(5.0, self.config.engine.start_timeout))
        on_term = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
                configure_logging=True,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"--ray-address {address}" if address else "a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(f"cannot connect to {where}: {first}") from None
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, on_term)  # ray.init installs its own: SIGTERM acts as in-process
        self._owns_ray = True

    def _open_actors(self) -> list[SourceInfo]:
        ray, cfg, eng = self._ray, self.config, self.config.engine
        self._check_resources()
        actor_cls = ray.remote(GroupActor)
        token = uuid.uuid4().hex[:8]
        for idx in self.groups:
            cams = [self.names[i] for i in idx]
            opts = {
                "num_cpus": eng.worker_cpus,
                "num_gpus": eng.worker_gpus,
                "max_restarts": 0,
                "name": f"reidpipe-worker-{'+'.join(cams)}-{token}",
            }
            self._actors.append(
                actor_cls.options(**opts).remote(
                    cfg,
                    [self.uris[i] for i in idx],
                    cams,
                    [cfg.offsets[i] for i in idx] if cfg.offsets is not None else None,
                    [cfg.detections[i] for i in idx] if cfg.detections is not None else None,
                )
            )
        refs = [a.open.remote() for a in self._actors]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=eng.start_timeout)
        if pending:
            raise EngineError(
                f"{len(pending)} of {len(refs)} Ray workers were not placed and opened within "
                f"{eng.start_timeout:g} s (each asks {self._asks()}; the cluster has "
                f"{_resources(ray.available_resources())} free)"
            )
        kinds: dict[str, str] = {}
        for idx, res in zip(self.groups, self._get(refs)):
            if "error" in res:
                raise res["error"]
            self._infos.extend(res["infos"])
            kinds.update({self.names[i]: k for i, k in zip(idx, res["kinds"])})
            self.link_threshold = float(res["link_threshold"])
        if cfg.save_video and any(k in ("stream", "webcam") for k in kinds.values()):
            raise UsageError(
                "--save-video with --engine ray annotates file sources only (a live camera's "
                "frames stay on its worker); drop --save-video or use --engine local"
            )
        self._merge = LockstepMerge(self.names, {c for c, k in kinds.items() if k in ("file", "folder")})
        return self._infos

    def _asks(self) -> str:
        eng = self.config.engine
        return f"{eng.worker_cpus:g} CPU" + (f" + {eng.worker_gpus:g} GPU" if eng.worker_gpus else "")

    def _check_resources(self) -> None:
        """A worker that no node of the cluster could ever hold is an error now, not a hang."""
        eng = self.config.engine
        total = self._ray.cluster_resources()
        for key, need in (("CPU", eng.worker_cpus), ("GPU", eng.worker_gpus)):
            if need > float(total.get(key, 0.0)):
                raise EngineError(
                    f"each Ray worker asks {self._asks()} but the cluster has {_resources(total)} "
                    f"in all; lower --worker-cpus/--worker-gpus or add nodes"
                )

    # ------------------------------------------------------------------ running
    def start(self) -> list[Event]:
        events = [e for evs in self._get([a.start.remote() for a in self._actors]) for e in evs]
        for i in range(len(self._actors)):
            for _ in range(IN_FLIGHT):
                self._submit(i)
        return events

    def _submit(self, i: int) -> None:
        n = self.config.engine.chunk * len(self.groups[i])
        self._inflight[self._actors[i].run.remote(n)] = i

    def steps(self) -> Iterator[Step]:
        assert self._merge is not None
        while self._inflight:
            # only the oldest call of each actor is waited for: results of one actor must be taken in
            # the order they were asked (two calls of one actor may both be ready, and ray.wait does
            # not say which came first: under load a later chunk could overtake an earlier one)
            oldest: dict[int, Any] = {}
            for ref, i in self._inflight.items():  # dicts keep insertion (= submission) order
                oldest.setdefault(i, ref)
            ready, _ = self._ray.wait(list(oldest.values()), num_returns=1)
            for ref in ready:
                i = self._inflight.pop(ref)
                if i in self._done:
                    continue
                yield from self._receive(i, ref)
            yield from self._merge.pop()
        yield from self._merge.pop(everything=True)

    def _merger(self) -> LockstepMerge:
        assert self._merge is not None  # made when the actors start, before any step is received
        return self._merge

    def _receive(self, i: int, ref: Any) -> Iterator[Step]:  # ref: a Ray ObjectRef
        from ray.exceptions import RayActorError

        try:
            steps = self._get([ref])[0]
        except RayActorError as exc:
            yield from self._lose(i, exc)
            return
        if not steps:  # every source of this actor ended
            self._done.add(i)
            return
        for step in steps:
            self._frames[step.camera] += step.frames
            if step.end is not None:
                self._ended.add(step.camera)
            self._merger().push(step)
        self._submit(i)

    def _lose(self, i: int, exc: BaseException) -> Iterator[Step]:
        """An actor died: its cameras end here, with what they had sent."""
        self._done.add(i)
        cams = [self.names[j] for j in self.groups[i]]
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        merge = self._merger()
        for cam in cams:
            merge.drop(cam)
        yield from merge.pop()
        for j in self.groups[i]:
            cam, info = self.names[j], self._infos[j]
            if cam in self._ended:
                continue
            msg = f"the Ray worker of camera {cam} ({self.uris[j]}) died: {why}"
            self.lost[cam] = msg
            self._ended.add(cam)
            end = SourceEnd(
                info=info,
                uri=self.uris[j],
                frames_read=self._frames[cam],
                corrupt=0,
                late=0,
                decode_seconds=0.0,
                dropped=msg,
                failed=True,
                event="worker_lost",
            )
            self._figures[cam] = end
            yield Step(camera=cam, seq=-1, end=end)

    # ------------------------------------------------------------------ the end
    def stop(self) -> list[Tracklet]:
        """The last tracklets of every live actor: those of calls still in flight, then the open ones."""
        closed = [t for step in self._drain() for t in step.closed]
        alive = [i for i in range(len(self._actors)) if not self._lost_actor(i)]
        refs = {self._actors[i].stop.remote(): i for i in alive}
        ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=STOP_TIMEOUT)
        for ref in ready:
            try:
                res = self._get([ref])[0]
            except Exception:  # died at the very end: what it had sent is kept
                continue
            closed.extend(res["closed"])
            self._figures.update({c: e for c, e in res["figures"].items() if c not in self.lost})
            self.counts += res["counts"]
            self.timer.merge(res["seconds"])
            self.decode_seconds += float(res["decode"])
        return closed

    def _lost_actor(self, i: int) -> bool:
        return any(self.names[j] in self.lost for j in self.groups[i])

    def _drain(self) -> list[Step]:
        """After Ctrl-C: the steps already computed (calls in flight), in order."""
        if self._merge is None:
            return []
        refs = list(self._inflight)
        self._inflight.clear()
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=STOP_TIMEOUT) if refs else ([], [])
        for ref in ready:
            try:
                for step in self._get([ref])[0]:
                    self._merge.push(step)
            except Exception:
                continue
        return self._merge.pop(everything=True)

    def figures(self) -> dict[str, SourceEnd]:
        return dict(self._figures)

    def recordings(self) -> dict[str, str]:
        return {}  # live sources are rejected with --save-video (their frames stay on the workers)

    def shutdown(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for a in self._actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(a)
        self._actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def _get(self, refs: list) -> list:
        """``ray.get`` that re-raises a worker's ReidpipeError as itself (one line, its exit code)."""
        from ray.exceptions import RayTaskError

        try:
            return self._ray.get(refs)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ReidpipeError):
                raise cause from None
            raise


def _resources(res: dict[str, float]) -> str:
    keys = [k for k in ("CPU", "GPU") if k in res] or ["CPU"]
    return ", ".join(f"{float(res.get(k, 0.0)):g} {k}" for k in keys)


def _check_reachable(address: str, timeout: float) -> None:
    """HOST:PORT must answer a TCP connection (Ray itself would retry for a long time)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address!r}: expected auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise EngineError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc})") from None
