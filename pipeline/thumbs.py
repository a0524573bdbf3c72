"""Thumbnails of the crops the sampler picks for embedding, for ``reidpipe report``.

Two halves, so that every engine keeps them the same way:

- a :class:`ThumbKeeper` (in the camera worker, where the pixels are) keeps, per (camera, track), the
  ``keep`` best crops by the sampler's quality (:func:`reidpipe.pipeline.sampler.quality_gate`),
  shrunk to ``height`` pixels and JPEG-encoded in memory; when the track closes the worker puts them
  on the closed :class:`~reidpipe.pipeline.types.Tracklet` (``thumbs``), which travels to the driver
  with the tracklet (in-process, or from a Ray actor on another machine);
- a :class:`ThumbWriter` (in the driver, beside the outputs) writes them as
  ``<folder>/<camera>_<track>_<k>.jpg`` (k = 0 is the best) and drops them from the tracklet.

The sampler only picks crops of output tracks, and every output track closes (at the latest when the
run ends), so nothing stays in memory. ``--no-crops`` turns them off for sites that must not keep
images of people.

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


class ThumbKeeper:
    """The best ``keep`` crops of each open track, as JPEG bytes, until the track closes."""

    def __init__(self, *, keep: int = THUMBS_PER_TRACK, height: int = THUMB_HEIGHT):
        self.keep = int(keep)
        self.height = int(height)
        self._best: dict[tuple[str, int], list[tuple[float, int, bytes]]] = {}

    def offer(self, camera: str, track: int, quality: float, crop: np.ndarray, frame: int = 0) -> None:
        """A crop the sampler picked on ``frame``: kept when it is among the track's ``keep`` best so far."""
        best = self._best.setdefault((camera, int(track)), [])
        if len(best) >= self.keep and quality <= best[-1][0]:
            return
        jpeg = self._encode(crop)
        if jpeg is None:
            return
        best.append((float(quality), int(frame), jpeg))
        best.sort(key=lambda qb: -qb[0])
        del best[self.keep :]

    def take(self, camera: str, track: int) -> list[bytes]:
        """The closed track's thumbnails, best first (forgotten here)."""
        return self.take_with_frames(camera, track)[0]

    def take_with_frames(self, camera: str, track: int) -> tuple[list[bytes], list[int]]:
        """The closed track's thumbnails, best first, and the frame of each (forgotten here)."""
        best = self._best.pop((camera, int(track)), [])
        return [jpeg for _, _, jpeg in best], [frame for _, frame, _ in best]

    def _encode(self, crop: np.ndarray) -> bytes | None:
        import cv2

        h, w = crop.shape[:2]
        if h == 0 or w == 0:
            return None
        scale = self.height / h
        small = cv2.resize(crop, (max(1, round(w * scale)), self.height), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else None


class ThumbWriter:
    """Writes closed tracks' thumbnails into ``folder``; turns itself off after a failed write."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.error: str | None = None  # why thumbnails stopped being written, if they did
        self.frames: dict[tuple[str, int], list[int]] = {}  # the frame of each written thumbnail

    def write(self, camera: str, track: int, jpegs: list[bytes], frames: list[int] | None = None) -> list[Path]:
        """Write one closed track's thumbnails (best first; ``frames``: the frame of each); returns their
        paths."""
        if not jpegs or self.error is not None:
            return []
        if frames is not None:
            self.frames[(camera, int(track))] = list(frames)
        paths: list[Path] = []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for k, jpeg in enumerate(jpegs):
                paths.append(thumb_path(self.folder, camera, track, k))
                paths[-1].write_bytes(jpeg)
        except OSError as exc:
            self.error = f"cannot write {paths[-1] if paths else self.folder} ({exc.strerror or type(exc).__name__})"
            if paths:
                paths.pop().unlink(missing_ok=True)
        return paths

    def split(self, camera: str, track: int, pieces: list[tuple[int, int, int]]) -> None:
        """A track cut into ``pieces`` ``(number, first frame, last frame)``: each thumbnail goes to the
        piece whose frames hold it (best first there too); one between two pieces, where the track went
        from one person to the other, is removed. Without the thumbnails' frames nothing moves."""
        frames = self.frames.pop((camera, int(track)), None)
        if frames is None or self.error is not None:
            return
        old = [thumb_path(self.folder, camera, track, k) for k in range(len(frames))]
        held = [(f, p.read_bytes()) for f, p in zip(frames, old) if p.is_file()]
        for p in old:
            p.unlink(missing_ok=True)
        for number, first, last in pieces:
            mine = [(f, jpeg) for f, jpeg in held if first <= f <= last]
            self.write(camera, number, [jpeg for _, jpeg in mine], [f for f, _ in mine])
