"""Thumbnails of the crops the sampler picks for embedding, for ``reidpipe report``.

Two halves, so that every engine keeps them the same way:

- a :class:`ThumbKeeper` (in the camera worker, where the pixels are) keeps, per (camera, track), the
  ``keep`` best crops by the sampler's quality (:func:`reidpipe.pipeline.engine.sampler.quality_gate`),
  shrunk to ``height`` pixels and JPEG-encoded in memory; when the track closes the worker puts them
  on the closed :class:`~reidpipe.pipeline.types.Tracklet` (``thumbs``), which travels to the driver
  with the tracklet (in-process, or from a Ray actor on another machine);
- a :class:`ThumbWriter` (in the driver, beside the outputs) writes them as
  ``<folder>/<camera>_<track>_<k>.jpg`` (k = 0 is the best) and drops them from the tracklet.

A track that tracklet splitting cuts (``pipeline/link/split.py``) gives each piece the thumbnails
whose frames it holds. The best few may all show one side, so the keeper also keeps up to ``spares``
crops spread over the track's time (the best of each stretch of frames; the stretches widen as the
track goes on) and the writer holds them in ``spares/`` until the track's cut is
decided (at its close online, at the end of the run offline); a piece without any of the best few
takes its best spares, then all spares are removed, so a piece longer than a quarter of its track
always has one.

The sampler only picks crops of output tracks, and every output track closes (at the latest when the
run ends), so nothing stays in memory. ``--no-crops`` turns them off for sites that must not keep
images of people.

Thumbnails are a convenience, never a reason to stop a run: a write that fails (a full disk) removes
the half-written file and turns the writer off (``error`` says why); the run's own outputs then report
the disk (``events.jsonl``: exit 6), and the report shows no crops for the tracks without any.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

THUMB_HEIGHT = 64  # pixels
THUMBS_PER_TRACK = 3
THUMB_SPARES = 8  # crops spread over a track's time, for the pieces of a cut


def thumb_path(folder: str | Path, camera: str, track: int, k: int) -> Path:
    """Where the ``k``-th best thumbnail of ``camera``'s ``track`` is kept."""
    return Path(folder) / f"{camera}_{int(track)}_{int(k)}.jpg"


def spare_path(folder: str | Path, camera: str, track: int, k: int) -> Path:
    """Where the ``k``-th spare of ``camera``'s ``track`` waits for its cut to be decided."""
    return Path(folder) / "spares" / f"{camera}_{int(track)}_{int(k)}.jpg"


@dataclass
class _Spread:
    """At most ``spares`` crops of one track spread over its time: one per stretch of ``width`` frames
    from its first crop (the best there); when there are more stretches, their width doubles."""

    first: int
    width: int = 1
    items: dict[int, tuple[int, float, bytes | None]] = field(default_factory=dict)  # stretch -> crop

    def add(self, frame: int, quality: float, jpeg: bytes | None, spares: int) -> None:
        self._put(frame, quality, jpeg)
        while len(self.items) > spares:
            self.width *= 2
            crops, self.items = list(self.items.values()), {}
            for crop in crops:
                self._put(*crop)

    def _put(self, frame: int, quality: float, jpeg: bytes | None) -> None:
        k = (frame - self.first) // self.width
        if k not in self.items or quality > self.items[k][1]:
            self.items[k] = (frame, quality, jpeg)

    def holds(self, frame: int) -> bool:
        return any(f == frame for f, _, _ in self.items.values())


class ThumbKeeper:
    """The best ``keep`` crops of each open track and ``spares`` spread over its time, as JPEG bytes,
    until the track closes."""

    def __init__(self, *, keep: int = THUMBS_PER_TRACK, spares: int = THUMB_SPARES, height: int = THUMB_HEIGHT):
        self.keep = int(keep)
        self.spares = int(spares)
        self.height = int(height)
        self._best: dict[tuple[str, int], list[tuple[float, int, bytes]]] = {}
        self._spread: dict[tuple[str, int], _Spread] = {}

    def offer(self, camera: str, track: int, quality: float, crop: np.ndarray, frame: int = 0) -> None:
        """A crop the sampler picked on ``frame``: kept when it is among the track's ``keep`` best so far
        or stays among its spares (crops arrive in time order); encoded only then."""
        key = (camera, int(track))
        best, spread = self._best.setdefault(key, []), self._spread.setdefault(key, _Spread(first=int(frame)))
        to_best = len(best) < self.keep or quality > best[-1][0]
        trial = deepcopy(spread)  # a few tuples: would this crop stay among the spares?
        trial.add(int(frame), float(quality), None, self.spares)
        to_spread = trial.holds(int(frame))
        if not (to_best or to_spread):
            return
        jpeg = self._encode(crop)
        if jpeg is None:
            return
        if to_best:
            best.append((float(quality), int(frame), jpeg))
            best.sort(key=lambda qb: -qb[0])
            del best[self.keep :]
        if to_spread:
            spread.add(int(frame), float(quality), jpeg, self.spares)

    def take(self, camera: str, track: int) -> list[bytes]:
        """The closed track's thumbnails, best first (forgotten here)."""
        return self.take_with_frames(camera, track)[0]

    def take_with_frames(self, camera: str, track: int) -> tuple[list[bytes], list[int]]:
        """The closed track's thumbnails, best first, then its spares that are not among them (best
        first), and the frame of each (forgotten here). Spares exist only once ``keep`` are kept."""
        key = (camera, int(track))
        best, spread = self._best.pop(key, []), self._spread.pop(key, None)
        taken = {frame for _, frame, _ in best}
        crops = spread.items.values() if spread is not None else []
        rest = sorted((e for e in crops if e[0] not in taken), key=lambda e: -e[1])
        jpegs = [jpeg for _, _, jpeg in best] + [jpeg for _, _, jpeg in rest if jpeg is not None]
        return jpegs, [frame for _, frame, _ in best] + [frame for frame, _, jpeg in rest if jpeg is not None]

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
    """Writes closed tracks' thumbnails into ``folder`` (the best ``keep``; the spares in ``spares/``
    until :meth:`settle`); turns itself off after a failed write."""

    def __init__(self, folder: str | Path, keep: int = THUMBS_PER_TRACK):
        self.folder = Path(folder)
        self.keep = int(keep)
        self.error: str | None = None  # why thumbnails stopped being written, if they did
        self.frames: dict[tuple[str, int], list[int]] = {}  # the frame of each written thumbnail (spares last)

    def write(self, camera: str, track: int, jpegs: list[bytes], frames: list[int] | None = None) -> list[Path]:
        """Write one closed track's thumbnails (best first, then spares: ``ThumbKeeper.take_with_frames``;
        ``frames``: the frame of each); returns the paths of the best ``keep``."""
        if not jpegs or self.error is not None:
            return []
        if frames is None:  # spares are only of use (and only removed again) with their frames
            jpegs = jpegs[: self.keep]
        else:
            self.frames[(camera, int(track))] = list(frames)
        paths: list[Path] = []
        try:
            for path, jpeg in zip(self._paths(camera, track, len(jpegs)), jpegs):
                path.parent.mkdir(parents=True, exist_ok=True)
                paths.append(path)
                path.write_bytes(jpeg)
        except OSError as exc:
            self.error = f"cannot write {paths[-1] if paths else self.folder} ({exc.strerror or type(exc).__name__})"
            if paths:
                paths.pop().unlink(missing_ok=True)
        return paths[: self.keep]

    def _paths(self, camera: str, track: int, n: int) -> list[Path]:
        best = [thumb_path(self.folder, camera, track, k) for k in range(min(n, self.keep))]
        return best + [spare_path(self.folder, camera, track, k) for k in range(n - len(best))]

    def split(self, camera: str, track: int, pieces: list[tuple[int, int, int]]) -> None:
        """A track cut into ``pieces`` ``(number, first frame, last frame)``: each piece gets the best
        ``keep`` of the thumbnails and spares its frames hold (best first); one between two pieces,
        where the track went from one person to the other, is removed. Without the thumbnails' frames
        nothing moves."""
        frames = self.frames.pop((camera, int(track)), None)
        if frames is None or self.error is not None:
            return
        old = self._paths(camera, track, len(frames))
        held = [(f, p.read_bytes()) for f, p in zip(frames, old) if p.is_file()]
        for p in old:
            p.unlink(missing_ok=True)
        for number, first, last in pieces:
            mine = [(f, jpeg) for f, jpeg in held if first <= f <= last][: self.keep]
            self.write(camera, number, [jpeg for _, jpeg in mine], [f for f, _ in mine])

    def settle(self, camera: str, track: int) -> None:
        """The track's cut is decided (it was not cut): its spares are removed."""
        key = (camera, int(track))
        frames = self.frames.get(key)
        if frames is None or len(frames) <= self.keep:
            return
        for p in self._paths(camera, track, len(frames))[self.keep :]:
            p.unlink(missing_ok=True)
        self.frames[key] = frames[: self.keep]

    def settle_all(self) -> None:
        """The end of the run: every spare left is removed."""
        for camera, track in list(self.frames):
            self.settle(camera, track)
        spares = self.folder / "spares"
        if spares.is_dir() and not any(spares.iterdir()):
            spares.rmdir()
