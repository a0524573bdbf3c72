"""The stages' contracts: what each stage offers the code that drives it (docs/design.md §3).

Each is a :class:`typing.Protocol`: a class fulfils it by having the members, without inheriting
from it, and mypy checks every place where one is expected. The runner drives an :class:`Engine`
(the in-process :class:`~reidpipe.pipeline.engine.worker.CameraGroup` or the
:class:`~reidpipe.pipeline.engine.ray_engine.RayEngine`: ``Pipeline._open_engine`` assigns either to
one variable of this type, so mypy proves both offer the whole surface); a camera worker drives a
:class:`FrameSource`, a :class:`Detector` and a :class:`Tracker`, and its group one :class:`Embedder`.
The registries of :mod:`reidpipe.registry` build them by name (``DETECTORS``, ``EMBEDDERS``,
``TRACKERS``), each builder typed to return its contract.

Optional abilities are methods every implementation has, answering what it can do
(``Detector.enable_batching`` returns False where batching changes nothing), so that no caller
probes an object with ``hasattr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from reidpipe.pipeline.types import Event, Frame, SourceEnd, SourceInfo, Step, Tracklet

if TYPE_CHECKING:
    from reidpipe.pipeline.engine.stats import Counts, StageTimer

Detections = Any  # supervision.Detections (xyxy, confidence, class_id; tracker_id once tracked)


class FrameSource(Protocol):
    """One camera's frames (:class:`~reidpipe.pipeline.io.sources.Source`): a reader thread decodes into a
    bounded queue; ``get()`` gives the next :class:`Frame`, ``None`` at the end, ``False`` when a live
    source has nothing queued yet. The figures are read at the end (:class:`SourceEnd`)."""

    info: SourceInfo
    uri: str
    kind: str  # file | folder | stream | webcam
    read: int
    corrupt: int
    late: int
    reconnects: int
    decode_seconds: float
    dropped: str | None
    error: BaseException | None
    record_path: str | None
    stride: int  # frames read per frame emitted

    @property
    def live(self) -> bool:
        """Frames come at the camera's pace (streams, webcams, paced files): never waited for."""
        ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...
    def get(self) -> Frame | None | bool: ...


class Detector(Protocol):
    """Person boxes in source pixels, person class only (docs/design.md §3.2)."""

    def detect(self, frame_bgr: np.ndarray, index: int | None = None) -> Detections: ...

    def detect_batch(self, frames_bgr: Sequence[np.ndarray], indices: Sequence[int | None] | None = None) -> list:
        """The detections of several frames (a round of cameras): the same as :meth:`detect` frame by
        frame, in one inference call where the model allows it."""
        ...

    def enable_batching(self) -> bool:
        """Prepare :meth:`detect_batch` to be one inference call; whether it is."""
        ...

    def enable_parallel_rounds(self) -> bool:
        """Prepare to be called from several threads at once, one per core (the rounds of recordings:
        pipeline/engine/ahead.py); whether that is safe and pays. Optional for a registered detector:
        without it, one detect thread runs the rounds."""
        ...


class Tracker(Protocol):
    """One camera's tracker (:class:`~reidpipe.pipeline.engine.track.CameraTracker`, docs/design.md §3.3)."""

    detect_every: int  # the detector runs on every k-th frame; the tracker predicts the others
    open: dict[int, Tracklet]  # open tracks by their output number
    opened: list[Tracklet]  # tracks output for the first time by the last update

    def update(
        self, detections: Detections, frame_index: int, t: float, image: np.ndarray | None = None
    ) -> Detections: ...

    def predict(self, frame_index: int, t: float) -> Detections: ...
    def set_interval(self, every: int) -> None:
        """Detect every ``every`` frames from now on (a live camera's interval changed)."""
        ...

    def pop_closed(self) -> list[Tracklet]: ...
    def close_all(self) -> list[Tracklet]: ...


class Embedder(Protocol):
    """Crops to unit feature vectors (docs/design.md §3.4)."""

    dim: int
    input_size: tuple[int, int]  # (H, W) every crop is resized to
    link_threshold: float  # the fallback cosine of an uncalibrated decision (docs/design.md §4.5)

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """(N, dim) float32, L2-normalised."""
        ...


class Engine(Protocol):
    """What the runner drives (docs/design.md §2): sources opened and models loaded by ``open``, the
    readers started by ``start``, every camera's :class:`Step` in the order one process over all
    cameras would see them, the open tracks closed by ``stop``."""

    @property
    def counts(self) -> Counts: ...
    @property
    def timer(self) -> StageTimer: ...
    @property
    def decode_seconds(self) -> float: ...
    @property
    def lost(self) -> dict[str, str]: ...  # camera -> why its worker died
    @property
    def link_threshold(self) -> float: ...  # the embedder's fallback cosine, known once open

    def open(self) -> list[SourceInfo]: ...
    def start(self) -> list[Event]: ...
    def steps(self) -> Iterator[Step]: ...
    def stop(self) -> list[Tracklet]: ...
    def figures(self) -> dict[str, SourceEnd]: ...
    def recordings(self) -> dict[str, str]: ...
    def shutdown(self) -> None: ...
