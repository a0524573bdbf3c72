"""Thumbnails of the crops the sampler picks for embedding, for ``reidpipe report``.

A :class:`ThumbWriter` keeps, per (camera, track), the ``keep`` best crops by the sampler's quality
(:func:`reidpipe.pipeline.sampler.quality_gate`), shrunk to ``height`` pixels and JPEG-encoded in
memory; when the track closes they are written as ``<folder>/<camera>_<track>_<k>.jpg`` (k = 0 is the
best). The sampler only picks crops of output tracks, and every output track closes (at the latest
when the run ends), so nothing stays in memory.

Only the in-process engine keeps thumbnails (``--engine ray`` skips them: the crops stay on the
actors); ``--no-crops`` turns them off for sites that must not keep images of people.

Thumbnails are a convenience, never a reason to stop a run: a write that fails (a full disk) removes
the half-written file and turns the writer off (``error`` says why); the run's own outputs then report
the disk (``events.jsonl``: exit 6), and the report shows no crops for the tracks without any.
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
        self.error: str | None = None  # why thumbnails stopped being written, if they did

    def offer(self, camera: str, track: int, quality: float, crop: np.ndarray) -> None:
        """A crop the sampler picked: kept when it is among the track's ``keep`` best so far."""
        if self.error is not None:
            return
        best = self._best.setdefault((camera, int(track)), [])
        if len(best) >= self.keep and quality <= best[-1][0]:
            return
        jpeg = self._encode(crop)
        if jpeg is None:
            return
        best.append((float(quality), jpeg))
        best.sort(key=lambda qb: -qb[0])
        del best[self.keep :]

    def close(self, camera: str, track: int) -> list[Path]:
        """Write the closed track's thumbnails; returns their paths."""
        best = self._best.pop((camera, int(track)), [])
        if not best or self.error is not None:
            return []
        paths = []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for k, (_, jpeg) in enumerate(best):
                paths.append(thumb_path(self.folder, camera, track, k))
                paths[-1].write_bytes(jpeg)
        except OSError as exc:
            self.error = f"cannot write {paths[-1] if paths else self.folder} ({exc.strerror or type(exc).__name__})"
            self._best.clear()
            if paths:
                paths.pop().unlink(missing_ok=True)
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
