"""Frame sources of ``reidpipe run``: video files, image folders, RTSP/HTTP streams, webcams.

Each source is opened (and checked) in the caller's thread by :func:`open_sources`, so a missing file
or an empty video fails before any processing with ``InputNotFoundError`` / ``EmptyInputError`` naming
it. :meth:`Source.start` then runs one reader thread per source that decodes frames into a bounded
queue (``config.queue_size``); the consumer takes them with :meth:`Source.get`. The reader:

- emits only every ``stride``-th frame (``Frame.index`` stays the source's own 0-based index) and
  stops after ``max_frames`` frames read;
- skips a frame that fails to decode (``cv2.VideoCapture.read`` failing inside a file, an image that
  ``cv2.imread`` cannot read) and counts it in ``corrupt``;
- keeps one frame size per camera: an image folder whose frames differ in size is refused when it is
  opened (``MalformedInputError`` naming the first odd image; sizes read from the image headers), as
  public detections and the annotated video are in each frame's own pixels; an odd image found only
  when decoded is skipped as corrupt, never resized;
- for a live stream, reconnects with exponential backoff (``reconnect_attempts`` tries, waiting
  ``reconnect_backoff``, then twice that, ...) and, when it does not come back, finishes that camera
  with a one-line warning (``dropped`` holds it) while the other cameras go on. A live source never
  blocks on a full queue: the oldest queued frame is dropped (counted in ``late``), so a slow pipeline
  follows the live edge instead of lagging further behind;
- with ``pace``, reads a file or an image folder at its frame rate, as a camera would deliver it, and
  treats it as live (never waited for, oldest frames dropped when the pipeline falls behind): how a
  recording shows what a run does with live cameras. Its timestamps stay ``index / fps``.

Timestamps: files and folders use ``index / fps`` (folders: ``fps`` = 10 unless given); live sources
use the wall-clock time since their first frame. Every timestamp gets the source's offset added.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reidpipe import limits
from reidpipe.errors import EmptyInputError, InputNotFoundError, MalformedInputError, UsageError
from reidpipe.pipeline.types import Frame, SourceInfo

if TYPE_CHECKING:
    import cv2

    from reidpipe.pipeline.contracts import FrameSource

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_RE = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp|srt)://", re.IGNORECASE)
FOLDER_FPS = 10.0
_END = None  # sentinel put in the queue when a reader finishes


def source_kind(uri: str) -> str:
    """``'stream'`` (URL), ``'webcam'`` (an integer index), ``'folder'`` (image folder) or ``'file'``."""
    if STREAM_RE.match(uri):
        return "stream"
    if uri.isdigit():
        return "webcam"
    if Path(uri).is_dir():
        return "folder"
    return "file"


def default_names(uris: Sequence[str]) -> list[str]:
    """File stem (folder name) for files and folders, ``cam{i}`` for streams and webcams; duplicates get
    a ``_{i}`` suffix so every camera name is unique. Characters that are unsafe in a file name become
    ``_`` (names become ``<camera>.txt`` / ``.mp4``)."""
    names = []
    for i, uri in enumerate(uris):
        kind = source_kind(uri)
        stem = Path(uri.rstrip("/")).stem if kind in ("file", "folder") else ""
        names.append(re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")[:64] or f"cam{i}")
    return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]


def _quiet_opencv() -> None:
    import cv2

    # OpenCV's own "can't open" warnings would break the one-line error of the CLI (very old OpenCV
    # builds have no logging module: nothing to quieten there)
    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _has_video_stream_without_frames(path: str) -> bool:
    """True when PyAV reads the container but decodes no video frame from it (no video stream, or one
    without frames)."""
    try:
        import av
    except ImportError:
        return False
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return True
            for _ in container.decode(video=0):
                return False
            return True
    except Exception:  # not a container PyAV understands either
        return False


def _ffmpeg_capture(uri: str, timeout_ms: int | None = None):
    import cv2

    _quiet_opencv()

    if timeout_ms is None:
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)


class Source:
    """One camera: its :class:`SourceInfo`, its reader thread and its bounded queue."""

    def __init__(
        self,
        uri: str,
        camera: str,
        *,
        offset: float = 0.0,
        stride: int = 1,
        max_frames: int | None = None,
        queue_size: int = 16,
        reconnect_attempts: int = 5,
        reconnect_backoff: float = 0.5,
        stream_timeout_s: float = 5.0,
        record_path: str | None = None,
        notify: threading.Event | None = None,
        pace: bool = False,
    ):
        if stride < 1:
            raise UsageError(f"--stride must be >= 1, got {stride}")
        self.uri = str(uri)
        self.kind = source_kind(self.uri)
        self.pace = bool(pace) and self.kind in ("file", "folder")
        self.stride = int(stride)
        self.max_frames = max_frames
        self.reconnect_attempts = int(reconnect_attempts)
        self.reconnect_backoff = float(reconnect_backoff)
        self.stream_timeout_ms = int(stream_timeout_s * 1000)
        self.record_path = record_path  # live sources: raw frames kept here for --save-video
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self.notify = notify
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.corrupt = 0
        self.late = 0
        self.read = 0  # frames read (before stride)
        self.emitted = 0
        self.decode_seconds = 0.0
        self.dropped: str | None = None  # warning when a live stream died
        self.error: BaseException | None = None
        self.reconnects = 0
        self._cap: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        self._paced_from: float | None = None  # perf_counter time of frame 0 of a paced source
        self.info = SourceInfo(
            camera=camera, uri=self.uri, fps=0.0, width=0, height=0, frames=None, offset=float(offset)
        )
        self._open_check()

    # ------------------------------------------------------------------ opening
    def _open_check(self) -> None:
        """Fail now, with one line naming the source, when it cannot be read; fill ``info``."""
        if self.kind == "folder":
            self._open_folder()
        elif self.kind == "file":
            self._open_file()
        else:  # live: opened in the reader thread (reconnect logic lives there)
            if self.kind == "webcam":  # unlike a network camera, a missing webcam will not come up later
                cap = self._open_live()
                if cap is None:
                    raise InputNotFoundError(
                        f"webcam {self.uri} cannot be opened (no such camera, or another program holds it)"
                    )
                cap.release()
            self.info.fps = 0.0

    def _open_folder(self) -> None:
        import cv2

        folder = Path(self.uri)
        self._images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self._images:
            raise EmptyInputError(f"image folder has no images ({', '.join(sorted(IMAGE_EXTS))}): {self.uri}")
        first = None
        for p in self._images[:10]:
            first = cv2.imread(str(p))
            if first is not None:
                break
        if first is None:
            raise EmptyInputError(f"image folder has no readable image in its first files: {self.uri}")
        _check_one_size(self.uri, self._images[: self.max_frames], first.shape[:2])
        self.info.fps = FOLDER_FPS
        self.info.height, self.info.width = first.shape[:2]
        self.info.frames = len(self._images)

    def _open_file(self) -> None:
        import cv2

        self._check_readable_file()
        cap = _ffmpeg_capture(self.uri)
        if not cap.isOpened():
            cap.release()
            if _has_video_stream_without_frames(self.uri):
                raise EmptyInputError(f"video has no frames: {self.uri}")
            raise InputNotFoundError(f"source cannot be opened as a video: {self.uri}")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise EmptyInputError(f"video has no frames: {self.uri}")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.info.fps = float(fps) if fps and 0 < fps < 1000 else 25.0
        self.info.height, self.info.width = first.shape[:2]
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.info.frames = n if n > 0 else None
        self._cap = cap

    def _check_readable_file(self) -> None:
        path = Path(self.uri)
        if not path.exists():
            raise InputNotFoundError(f"source not found: {self.uri}")
        if not path.is_file():
            raise InputNotFoundError(f"source is not a file: {self.uri}")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError:
            raise InputNotFoundError(f"source cannot be read (permission?): {self.uri}") from None
        if path.stat().st_size == 0:
            raise EmptyInputError(f"video has no frames (empty file): {self.uri}")

    @property
    def live(self) -> bool:
        """Frames come at the camera's pace whether the pipeline keeps up or not (streams, webcams,
        paced files): never waited for, the oldest dropped when the queue is full."""
        return self.kind in ("stream", "webcam") or self.pace

    # ------------------------------------------------------------------ reader thread
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"reader-{self.info.camera}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def get(self) -> Frame | None | bool:
        """Next frame without waiting: a ``Frame``, ``None`` when the source has finished, or ``False``
        when no frame is queued yet."""
        try:
            return self.queue.get_nowait()
        except queue.Empty:
            return False

    def _put(self, item) -> None:
        live = self.live
        while not self.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                break
            except queue.Full:
                if live and item is not _END:
                    with contextlib.suppress(queue.Empty):  # the reader took it meanwhile
                        self.queue.get_nowait()
                        self.late += 1
        if self.notify is not None:
            self.notify.set()

    def _finish(self) -> None:
        # the end marker must get through; only when stopping may queued frames make room for it
        while True:
            try:
                self.queue.put(_END, timeout=0.05)
                break
            except queue.Full:
                if self.stop_event.is_set():
                    with contextlib.suppress(queue.Empty):
                        self.queue.get_nowait()
        if self.notify is not None:
            self.notify.set()

    def _run(self) -> None:
        try:
            if self.kind == "folder":
                self._run_folder()
            elif self.kind == "file":
                self._run_file()
            else:
                self._run_live()
        except BaseException as exc:  # reported by the runner, never lost in a thread
            self.error = exc
        finally:
            if self._cap is not None:
                self._cap.release()
            if self.info.frames is None or self.kind in ("stream", "webcam"):
                self.info.frames = self.read
            self._finish()

    def _want(self, index: int) -> bool:
        return index % self.stride == 0

    def _limit_reached(self) -> bool:
        return self.max_frames is not None and self.read >= self.max_frames

    def _keep_pace(self, index: int) -> None:
        """A paced source waits until its frame ``index`` is due (``index / fps`` after frame 0)."""
        if not self.pace:
            return
        now = time.perf_counter()
        if self._paced_from is None:
            self._paced_from = now - index / self.info.fps
        self.stop_event.wait(max(0.0, self._paced_from + index / self.info.fps - now))

    def _emit(self, index: int, t: float, image: np.ndarray) -> None:
        self.emitted += 1
        self._put(Frame(camera=self.info.camera, index=index, t=t + self.info.offset, image=image))

    def _run_folder(self) -> None:
        import cv2

        h, w = self.info.height, self.info.width
        for index, p in enumerate(self._images):
            if self.stop_event.is_set() or self._limit_reached():
                break
            self._keep_pace(index)
            self.read += 1
            if not self._want(index):
                continue
            t0 = time.perf_counter()
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            self.decode_seconds += time.perf_counter() - t0
            if img is None or img.ndim != 3 or img.shape[:2] != (h, w):  # one frame size per camera
                self.corrupt += 1
                continue
            self._emit(index, index / self.info.fps, img)

    def _run_file(self) -> None:
        cap = self._cap
        if cap is None:  # opened in open(); only a close() before the reader thread can undo that
            raise RuntimeError(f"video source {self.uri} is not open")
        total = self.info.frames
        index = 0
        failures = 0
        while not self.stop_event.is_set() and not self._limit_reached():
            self._keep_pace(index)
            t0 = time.perf_counter()
            if self._want(index):
                ok, img = cap.read()
            else:  # skipped by stride: grab without decoding to BGR
                ok, img = cap.grab(), None
            self.decode_seconds += time.perf_counter() - t0
            if not ok:
                # a failed read before the container's frame count is a corrupt frame: skip it
                if total is not None and index < total - 1 and failures < 25:
                    failures += 1
                    self.corrupt += 1
                    index += 1
                    self.read += 1
                    continue
                break
            failures = 0
            self.read += 1
            if img is not None:
                if img.ndim != 3 or img.shape[0] != self.info.height or img.shape[1] != self.info.width:
                    self.corrupt += 1
                else:
                    self._emit(index, index / self.info.fps, img)
            index += 1
        if (
            total is not None
            and self.read
            and self.read < total
            and not self.stop_event.is_set()
            and not self._limit_reached()
        ):
            self.info.frames = self.read

    def _open_live(self):
        import cv2

        if self.kind == "webcam":
            # OpenCV tries each camera backend in turn and logs an ERROR line for each one that has no
            # such camera; our own message says what went wrong, so its log is silenced while it looks
            level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            try:
                cap = cv2.VideoCapture(int(self.uri))
            finally:
                cv2.utils.logging.setLogLevel(level)
        else:
            cap = _ffmpeg_capture(self.uri, self.stream_timeout_ms)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _reconnect(self, why: str):
        """Try ``reconnect_attempts`` times with exponential backoff; the capture, or None."""
        wait = self.reconnect_backoff
        for _ in range(self.reconnect_attempts):
            if self.stop_event.wait(wait):
                return None
            self.reconnects += 1
            cap = self._open_live()
            if cap is not None:
                return cap
            wait = min(wait * 2, limits.MAX_WAIT_SECONDS)
        self.dropped = (
            f"stream {self.uri} ({self.info.camera}) {why} and did not come back after "
            f"{self.reconnect_attempts} reconnection attempt{'' if self.reconnect_attempts == 1 else 's'}; "
            "finishing this camera"
        )
        return None

    def _run_live(self) -> None:
        import cv2

        cap = self._open_live()
        if cap is None:
            cap = self._reconnect("could not be opened")
            if cap is None:
                return
        self._cap = cap
        writer = None
        start = None
        index = 0
        while not self.stop_event.is_set() and not self._limit_reached():
            t0 = time.perf_counter()
            ok, img = cap.read()
            self.decode_seconds += time.perf_counter() - t0
            if not ok or img is None:
                length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
                cap.release()
                self._cap = None
                if length > 0 and index >= length - 1:  # a finite remote file (http://.../x.mp4) ended
                    break
                cap = self._reconnect("dropped")
                if cap is None:
                    break
                self._cap = cap
                continue
            now = time.perf_counter()
            if start is None:
                start = now
                fps = cap.get(cv2.CAP_PROP_FPS)
                self.info.fps = float(fps) if fps and 0 < fps < 1000 else 25.0
                self.info.height, self.info.width = img.shape[:2]
                if self.record_path:
                    writer = cv2.VideoWriter(
                        self.record_path,
                        cv2.VideoWriter.fourcc(*"mp4v"),
                        self.info.fps,
                        (self.info.width, self.info.height),
                    )
            if img.shape[0] != self.info.height or img.shape[1] != self.info.width:
                self.corrupt += 1
                continue
            self.read += 1
            if writer is not None:
                writer.write(img)
            if self._want(index):
                self._emit(index, now - start, img)
            index += 1
        if writer is not None:
            writer.release()


def open_sources(
    uris: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    offsets: Sequence[float] | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    queue_size: int = 16,
    reconnect_attempts: int = 5,
    reconnect_backoff: float = 0.5,
    record_dir: str | None = None,
    notify: threading.Event | None = None,
    pace: bool = False,
) -> list[Source]:
    """Open (and check) every source; nothing is started. Raises before any processing. ``pace``: files
    and image folders are read at their frame rate, as live cameras (see the module docstring)."""
    uris = [str(u) for u in uris]
    if not uris:
        raise UsageError("no --sources given")
    if any(not u.strip() for u in uris):
        raise UsageError(f"--sources {' '.join(map(repr, uris))}: a source is an empty name")
    if names is not None and len(names) != len(uris):
        raise UsageError(f"--names has {len(names)} names for {len(uris)} --sources")
    if offsets is not None and len(offsets) != len(uris):
        raise UsageError(f"--offsets has {len(offsets)} values for {len(uris)} --sources")
    cams = list(names) if names is not None else default_names(uris)
    if len(set(cams)) != len(cams):
        raise UsageError(f"--names must be unique, got {cams}")
    out = []
    for i, uri in enumerate(uris):
        kind = source_kind(uri)
        record = None
        if record_dir is not None and kind in ("stream", "webcam"):
            record = str(Path(record_dir) / f".{cams[i]}.raw.mp4")
        out.append(
            Source(
                uri,
                cams[i],
                offset=float(offsets[i]) if offsets else 0.0,
                stride=stride,
                max_frames=max_frames,
                queue_size=queue_size,
                reconnect_attempts=reconnect_attempts,
                reconnect_backoff=reconnect_backoff,
                record_path=record,
                notify=notify,
                pace=pace,
            )
        )
    return out


def round_robin(
    sources: Sequence[FrameSource],
    notify: threading.Event,
    *,
    waited: Callable[[float], None] | None = None,
    timeout: float = 0.05,
):
    """Interleave started sources, one frame per camera per round (cameras advance together).

    Yields ``(source, frame)`` for every frame and ``(source, None)`` once when a source ends (its
    ``error`` says why, if it failed). Files and image folders advance in strict lockstep — each round
    waits for the next frame of every one of them — so a run over files is deterministic (tracklets
    close, and are linked, in the same order every time). Live streams and webcams are never waited
    for: a round takes their frame when one is queued. Waiting is on ``notify`` (set by the reader
    threads), at most ``timeout`` seconds at a time; the seconds waited are reported to ``waited``.
    Paced files count as live. :func:`rounds` gives the same items grouped by round.
    """
    for items in rounds(sources, notify, waited=waited, timeout=timeout):
        yield from items


def rounds(
    sources: Sequence[FrameSource],
    notify: threading.Event,
    *,
    waited: Callable[[float], None] | None = None,
    timeout: float = 0.05,
):
    """The items of :func:`round_robin` as one list per round (at most one item per source, in source
    order; rounds where no live source had a frame are skipped): what a detector can take as one batch."""

    def wait() -> None:
        t0 = time.perf_counter()
        notify.wait(timeout)
        if waited is not None:
            waited(time.perf_counter() - t0)

    active = list(sources)
    while active:
        batch = []
        for src in list(active):
            while True:
                notify.clear()
                item = src.get()
                if item is not False or src.live:
                    break
                wait()
            if item is False:  # a live source with nothing queued yet
                continue
            if item is None:
                active.remove(src)
            batch.append((src, item))
        if batch:
            yield batch
        else:
            wait()


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image as ``cv2.imread`` gives it (EXIF orientation applied), read
    from its header by Pillow's parser for its extension; None when that parser cannot tell (the
    reader then decodes it). The parser is called directly, not through ``PIL.Image.open``, which
    ultralytics replaces with a version that installs a HEIF plugin when a file is not identified."""
    import struct

    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

    parsers: dict[str, Callable[[str], Any]] = {
        ".jpg": JpegImagePlugin.JpegImageFile,
        ".jpeg": JpegImagePlugin.JpegImageFile,
        ".png": PngImagePlugin.PngImageFile,
        ".bmp": BmpImagePlugin.BmpImageFile,
        ".tif": TiffImagePlugin.TiffImageFile,
        ".tiff": TiffImagePlugin.TiffImageFile,
        ".webp": WebPImagePlugin.WebPImageFile,
    }
    parser = parsers.get(path.suffix.lower())
    if parser is None:
        return None
    try:
        with parser(str(path)) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by a quarter turn
                w, h = h, w
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        return None
    return int(h), int(w)


def _check_one_size(uri: str, images: list[Path], size: tuple[int, int]) -> None:
    """Refuse an image folder whose frames differ in size, naming the first odd image."""
    for p in images:
        other = _header_size(p)
        if other is not None and other != tuple(size):
            raise MalformedInputError(
                f"image folder {uri}: {p.name} is {other[1]}x{other[0]}, its first frame {size[1]}x{size[0]}; "
                "the frames of one camera must have one size (resize them first)"
            )


def iter_frames(uri: str, *, stride: int = 1, max_frames: int | None = None):
    """Read one file or folder again in the caller's thread (used to draw annotated videos):
    yields ``(index, image)`` for the frames a run with the same stride and max_frames processed."""
    import cv2

    kind = source_kind(uri)
    if kind == "folder":
        images = sorted(p for p in Path(uri).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        size = None
        for index, p in enumerate(images):
            if max_frames is not None and index >= max_frames:
                break
            if index % stride == 0:
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if img is not None and img.ndim == 3 and size in (None, img.shape[:2]):  # as the run read them
                    size = img.shape[:2]
                    yield index, img
        return
    cap = _ffmpeg_capture(uri)
    try:
        index = 0
        while max_frames is None or index < max_frames:
            if index % stride == 0:
                ok, img = cap.read()
                if ok:
                    yield index, img
            else:
                ok = cap.grab()
            if not ok:
                break
            index += 1
    finally:
        cap.release()
