"""Thumbnails of the crops the sampler picks for embedding, for ``reidpipe report``.

A :class:`ThumbWriter` keeps, per (camera, track), the ``keep`` best crops by the sampler's quality
(:func:`reidpipe.pipeline.sampler.quality_gate`), shrunk to ``height`` pixels and JPEG-encoded in
memory; when the track closes they are written as ``<folder>/<camera>_<track>_<k>.jpg`` (k = 0 is the
best). The sampler only picks crops of output tracks, and every output track closes (at the latest
when the run ends), so nothing stays in memory.

Only the in-process engine keeps thumbnails (``--engine ray`` skips them: the crops stay on the
actors); ``--no-crops`` turns them off for sites that must not keep images of people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

THUMB_HEIGHT = 64  # pixels
THUMBS_PER_TRACK = 3


def thumb_path(folder: str | Path, camera: str, track: int, k: int) -> Path:
    """Where the ``k``-th best thumbnail of ``camera``'s ``track`` is kept."""
    return Path(folder) / f"{camera}_{int(track)}_{int(k)}.jpg"


class ThumbWriter:
    """The best ``keep`` crops of each open track, written when it closes."""

    def __init__(self, folder: str | Path, *, keep: int = THUMBS_PER_TRACK, height: int = THUMB_HEIGHT):
        self.folder = Path(folder)
        self.keep = int(keep)
        self.height = int(height)
        self._best: dict[tuple[str, int], list[tuple[float, bytes]]] = {}

    def offer(self, camera: str, track: int, quality: float, crop: np.ndarray) -> None:
        """A crop the sampler picked: kept when it is among the track's ``keep`` best so far."""
        best = self._best.setdefault((camera, int(track)), [])
        if len(best) >= self.keep and quality <= best[-1][0]:
            return
        jpeg = self._encode(crop)
        if jpeg is None:
            return
        best.append((float(quality), jpeg))
        best.sort(key=lambda qb: -qb[0])
        del best[self.keep:]

    def close(self, camera: str, track: int) -> list[Path]:
        """Write the closed track's thumbnails; returns their paths."""
        best = self._best.pop((camera, int(track)), [])
        if not best:
            return []
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, (_, jpeg) in enumerate(best):
            p = thumb_path(self.folder, camera, track, k)
            p.write_bytes(jpeg)
            paths.append(p)
        return paths

    def _encode(self, crop: np.ndarray) -> bytes | None:
        import cv2

        h, w = crop.shape[:2]
        if h == 0 or w == 0:
            return None
        scale = self.height / h
        small = cv2.resize(crop, (max(1, round(w * scale)), self.height), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else None
