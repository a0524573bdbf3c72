"""What of a camera's view is its static background: OpenCV's MOG2 background model, per camera.

A detector fires now and then on a part of the scene that looks like a person but never moves (a
poster, a statue, a coat on a hook, a patch of texture): the same box, frame after frame, at a
confidence near its threshold. Once a peak of confidence starts a track, the tracker's second
(low-confidence) association stage keeps it alive for as long as the video lasts, and it becomes an
identity of its own. A person is *foreground*: they walked into the place where they stand, so a
background model that has watched the camera does not explain their pixels. :class:`ForegroundModel`
keeps that model (``cv2.createBackgroundSubtractorMOG2``: a mixture of Gaussians per pixel, on a
frame scaled down to ``WIDTH`` pixels wide, shadows off) and gives, for boxes of the current frame,
the share of their pixels it marks foreground: about 0.8 for a person's box, 0 for a static false
positive. The tracker (pipeline/engine/track.py, "Background") holds back a track whose boxes are
background.

The model learns at a rate set in seconds, not frames (``HISTORY_SECONDS``), so it means the same at
any frame rate, stride or detector interval: each update weighs the new frame by ``dt / HISTORY_SECONDS``
(the first few faster: MOG2's own schedule, :meth:`_rate`). It learns at most every
``UPDATE_SECONDS`` of video: between two updates the last frame's mask answers :meth:`share` (a
walker moves a few pixels of the scaled frame in that time, and a box is read as a share of its
pixels, about 0.8 against a threshold near 0.1), so a 25 fps camera costs what a 6 fps one does
instead of a millisecond of CPU a frame, which on a machine whose cores the detector fills is a
millisecond taken from the detector. A person who stands still for long enough becomes background
(with MOG2's default background ratio 0.9: after about a tenth of ``HISTORY_SECONDS``). A track
already output is never held back: its boxes from then on only get no crop, and if it closes while
the person still stands there (the end of the video) it ends where they were last foreground. A
track that starts on a person who has stood still that long waits until they move.
"""

from __future__ import annotations

import numpy as np

WIDTH = 240  # pixels: the model's frame width (a 960-px view at a quarter: a 30-px wide box is 7.5 px)
HISTORY_SECONDS = 120.0  # the model's memory; a still person is background after about 12 s
MIN_RATE = 1e-4  # the smallest learning rate an update uses (a frame 0.012 s after the last one)
WARMUP = 10  # the first updates learn at MOG2's own early rate, 1 / (2 x updates so far)
# seconds of video before the model knows the background: people in view when the camera starts are
# in its first frame, and one who walks on has left the pixels it showed them on within a second or two
LEARN_SECONDS = 2.0
# at most one update in this many seconds of video (a 10 fps camera: every 2nd frame)
UPDATE_SECONDS = 0.15


class ForegroundModel:
    """One camera's background model; :meth:`update` with each frame the tracker sees, then
    :meth:`share` of the frame's boxes."""

    def __init__(self, history_seconds: float = HISTORY_SECONDS, width: int = WIDTH) -> None:
        import cv2

        self.history_seconds = float(history_seconds)
        self.width = int(width)
        self._model = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
        self._mask: np.ndarray | None = None
        self._scale = 1.0
        self._last_t: float | None = None
        self._first_t: float | None = None
        self._updates = 0

    def update(self, image: np.ndarray, t: float) -> None:
        """Learn the frame at time ``t`` (seconds) and keep its foreground mask; a frame less than
        ``UPDATE_SECONDS`` after the last one learnt is skipped (the last mask stands for it)."""
        import cv2

        if self._last_t is not None and self._first_t is not None and self._too_soon(t):
            return
        h, w = image.shape[:2]
        self._scale = min(1.0, self.width / max(w, 1))
        small = image
        if self._scale < 1.0:
            size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
            # bilinear, not area averaging: a third of the CPU (0.27 against 0.8 ms for a 960x540 frame),
            # and the per-pixel variances absorb its extra noise. MOG2's cost goes with the pixels: at 240
            # px it is about half of 320's, and the suite's scenes keep the same tracks at both widths
            small = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        self._updates += 1
        if self._first_t is None:
            self._first_t = float(t)
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._mask = self._model.apply(small, learningRate=self._rate(dt))
        self._last_t = float(t)

    def _too_soon(self, t: float) -> bool:
        """Whether ``t`` is within ``UPDATE_SECONDS`` of the last update; the first ``WARMUP`` updates
        (the model settling on the first frames) and a jump back in time never are."""
        assert self._last_t is not None
        return self._updates > WARMUP and 0.0 <= t - self._last_t < UPDATE_SECONDS

    @property
    def learnt(self) -> bool:
        """Whether the model has watched the view for ``LEARN_SECONDS`` (before that, what it calls
        background may be a person who was in view from the start)."""
        return self._first_t is not None and self._last_t is not None and self._last_t - self._first_t >= LEARN_SECONDS

    def _rate(self, dt: float) -> float:
        """``dt / HISTORY_SECONDS``, but for the first ``WARMUP`` updates MOG2's own early schedule
        (1 / (2 × updates so far): the first frame sets the model, the next ones settle its variances)."""
        early = 1.0 / (2 * self._updates) if self._updates <= WARMUP else 0.0
        return float(min(1.0, max(MIN_RATE, dt / self.history_seconds, early)))

    def share(self, xyxy: np.ndarray) -> np.ndarray:
        """For each box (x1, y1, x2, y2 in source pixels) of the last frame, the share of its pixels
        that are foreground (1.0 for every box before the first frame: nothing is known yet)."""
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        if self._mask is None:
            return np.ones(len(boxes))
        mh, mw = self._mask.shape[:2]
        out = np.ones(len(boxes))
        for k, box in enumerate(boxes * self._scale):
            x1, y1 = int(np.clip(np.floor(box[0]), 0, mw - 1)), int(np.clip(np.floor(box[1]), 0, mh - 1))
            x2, y2 = int(np.clip(np.ceil(box[2]), x1 + 1, mw)), int(np.clip(np.ceil(box[3]), y1 + 1, mh))
            out[k] = float(np.count_nonzero(self._mask[y1:y2, x1:x2])) / ((y2 - y1) * (x2 - x1))
        return out
