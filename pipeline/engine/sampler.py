"""Quality-gated crop sampling: which tracked boxes get embedded (docs/design.md §3.4).

A box of a confirmed track is embedded when all hold (vectorised over the boxes of a frame):

- size: height >= ``min_height`` and width >= ``min_width`` pixels;
- confidence >= ``min_conf``;
- not cut by the frame edge: every side at least ``border`` pixels inside the frame;
- little occlusion: the largest fraction of the box covered by any other tracked box of the frame
  is <= ``max_overlap``;
- the track was last sampled at least ``every`` source frames ago;
- the track's bank has fewer than ``bank`` crops, or this crop's quality beats the worst one in it
  (which it then replaces).

Quality weight of a crop (used for the bank and, by ``Tracklet.pooled_feature``, as the pooling
weight): ``conf * min(1, height / (2 * min_height)) * (1 - overlap)`` — confident, large, unoccluded
crops count most.
"""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.config import SamplerConfig
from reidpipe.pipeline.types import Tracklet


def covered_fraction(xyxy: np.ndarray) -> np.ndarray:
    """For each box, the largest fraction of its area covered by one other box (0 when alone)."""
    n = len(xyxy)
    if n < 2:
        return np.zeros(n, np.float32)
    b = xyxy.astype(np.float32)
    x1 = np.maximum(b[:, None, 0], b[None, :, 0])
    y1 = np.maximum(b[:, None, 1], b[None, :, 1])
    x2 = np.minimum(b[:, None, 2], b[None, :, 2])
    y2 = np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
    frac = inter / area[:, None]
    np.fill_diagonal(frac, 0.0)
    return frac.max(axis=1)


def quality_gate(
    xyxy: np.ndarray, conf: np.ndarray | None, frame_hw: tuple[int, int], cfg: SamplerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(passes, quality)`` for every box of one frame, without per-box Python work."""
    n = len(xyxy)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, np.float32)
    h_img, w_img = frame_hw
    b = np.asarray(xyxy, np.float32)
    c = np.ones(n, np.float32) if conf is None else np.asarray(conf, np.float32)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    overlap = covered_fraction(b)
    inside = (
        (b[:, 0] >= cfg.border)
        & (b[:, 1] >= cfg.border)
        & (b[:, 2] <= w_img - cfg.border)
        & (b[:, 3] <= h_img - cfg.border)
    )
    ok = (h >= cfg.min_height) & (w >= cfg.min_width) & (c >= cfg.min_conf) & inside & (overlap <= cfg.max_overlap)
    quality = c * np.minimum(1.0, h / (2.0 * max(cfg.min_height, 1))) * (1.0 - overlap)
    return ok, quality.astype(np.float32)


class CropSampler:
    """Keeps, per (camera, track), when it was last sampled and the qualities in its bank."""

    def __init__(self, cfg: SamplerConfig | None = None):
        self.cfg = cfg or SamplerConfig()
        self._last: dict[tuple[str, int], int] = {}
        self._bank_q: dict[tuple[str, int], list[float]] = {}

    def select(self, camera: str, tracked, frame_index: int, frame_hw: tuple[int, int]) -> list[tuple[int, int, float]]:
        """``[(row, track, quality)]`` of the rows of ``tracked`` (detections with ``tracker_id``) to
        embed now. Bookkeeping assumes each selected crop will be embedded."""
        if len(tracked) == 0:
            return []
        ok, quality = quality_gate(tracked.xyxy, tracked.confidence, frame_hw, self.cfg)
        rows = np.flatnonzero(ok)
        out = []
        for r in rows.tolist():  # only the boxes that passed the gate: a handful per frame
            tid = int(tracked.tracker_id[r])
            key = (camera, tid)
            last = self._last.get(key)
            if last is not None and frame_index - last < self.cfg.every:
                continue
            q = float(quality[r])
            bank = self._bank_q.setdefault(key, [])
            if len(bank) >= self.cfg.bank:
                worst = int(np.argmin(bank))
                if q <= bank[worst]:
                    continue
                bank[worst] = q
            else:
                bank.append(q)
            self._last[key] = frame_index
            out.append((r, tid, q))
        return out

    def forget(self, camera: str, track: int) -> None:
        self._last.pop((camera, track), None)
        self._bank_q.pop((camera, track), None)


def add_to_bank(tracklet: Tracklet, embedding: np.ndarray, quality: float, size: int) -> None:
    """Put an embedding in a tracklet's bank of at most ``size``: append, or replace the worst-quality
    one when full and this one is better."""
    if len(tracklet.bank) < size:
        tracklet.bank.append(np.asarray(embedding, np.float32))
        tracklet.qualities.append(float(quality))
        return
    worst = int(np.argmin(tracklet.qualities))
    if quality > tracklet.qualities[worst]:
        tracklet.bank[worst] = np.asarray(embedding, np.float32)
        tracklet.qualities[worst] = float(quality)


def crop(image: np.ndarray, box) -> np.ndarray:
    """The pixels of ``box`` (x1, y1, x2, y2), clipped to the image, as a contiguous copy."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1 = max(0, min(x1, w - 1)), max(0, min(y1, h - 1))
    x2, y2 = max(x1 + 1, min(x2, w)), max(y1 + 1, min(y2, h))
    return np.ascontiguousarray(image[y1:y2, x1:x2])
