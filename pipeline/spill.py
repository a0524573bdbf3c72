"""Closed tracks' points on disk, so that a run's memory stays flat however long it goes.

A camera that runs around the clock closes hundreds of tracks an hour, each with one box a frame
(a :class:`TrackPoint` is ~400 bytes as Python objects: ~170 kB for a 40 s track at 10 fps). Once a
track is closed and linked, linking needs only its length and its first and last few boxes (where it
was first and last seen: :func:`reidpipe.pipeline.link.constraints.places`); every box is needed
again only when the outputs are written at the end (``trajectories.json``, MOT files, videos) or when
the final offline pass cuts the track where it swapped people (:mod:`reidpipe.pipeline.link.split`).

So the runner hands each closed track to a :class:`PointStore`: its points are appended to one file
as fixed-size binary records (:data:`RECORD`: every value exactly as it was, 57 bytes a point) and
``Tracklet.points`` becomes a :class:`SpilledPoints`, a read-only sequence that keeps the first and
last ``PLACE_BOXES`` records in memory and reads the others back from the file when asked.

The file is an anonymous temporary file in the output folder (unlinked at once: the kernel frees it
when the last reference to the store goes, or when the process ends, also after ``kill -9``); a disk
that fills up is an :class:`~reidpipe.errors.OutputError` naming the folder, like any other output.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from reidpipe.errors import OutputError
from reidpipe.pipeline.link.constraints import PLACE_BOXES
from reidpipe.pipeline.types import Tracklet, TrackPoint

RECORD = np.dtype(
    [
        ("frame", "<i8"),
        ("t", "<f8"),
        ("x1", "<f8"),
        ("y1", "<f8"),
        ("x2", "<f8"),
        ("y2", "<f8"),
        ("score", "<f8"),
        ("interpolated", "?"),
    ]
)
KEEP = PLACE_BOXES  # records kept in memory at each end of a spilled track
READ_CHUNK = 4096  # records converted to TrackPoints at a time while iterating


def to_records(points: Iterable[TrackPoint]) -> np.ndarray:
    return np.array(
        [(p.frame, p.t, *p.bbox, p.score, p.interpolated) for p in points],
        dtype=RECORD,
    )


def to_points(records: np.ndarray) -> list[TrackPoint]:
    return [
        TrackPoint(frame=f, t=t, bbox=(x1, y1, x2, y2), score=s, interpolated=i)
        for f, t, x1, y1, x2, y2, s, i in records.tolist()
    ]


class PointStore:
    """Closed tracks' points, appended to an anonymous file in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        try:
            self._file = tempfile.TemporaryFile(prefix=".points-", dir=str(self.folder), buffering=0)
        except OSError as exc:
            raise self._error(exc) from None
        self._fd = self._file.fileno()
        self._size = 0
        self._lock = threading.Lock()
        self.tracks = 0  # tracks spilled so far
        self.points = 0  # their points

    def spill(self, t: Tracklet) -> None:
        """Move a closed track's points to the file (a short track, or one already spilled, stays)."""
        if isinstance(t.points, SpilledPoints) or len(t.points) <= 2 * KEEP:
            return
        records = to_records(t.points)
        offset = self._append(records.tobytes())
        t.points = SpilledPoints(self, offset, len(records), np.concatenate([records[:KEEP], records[-KEEP:]]))
        self.tracks += 1
        self.points += len(records)

    def read(self, offset: int, start: int, stop: int) -> np.ndarray:
        """Records ``start:stop`` of the track written at ``offset``."""
        size = RECORD.itemsize
        want = (stop - start) * size
        data = os.pread(self._fd, want, offset + start * size)
        if len(data) != want:
            raise OutputError(
                f"the closed tracks' points in {self.folder} were cut short ({len(data)} of {want} bytes)"
            )
        return np.frombuffer(data, dtype=RECORD)

    def close(self) -> None:
        self._file.close()

    def _append(self, data: bytes) -> int:
        with self._lock:
            offset = self._size
            view = memoryview(data)
            try:
                while view:
                    written = os.pwrite(self._fd, view, offset + len(data) - len(view))
                    view = view[written:]
            except OSError as exc:
                raise self._error(exc) from None
            self._size += len(data)
            return offset

    def _error(self, exc: OSError) -> OutputError:
        return OutputError(
            f"cannot write the closed tracks' points to {self.folder} ({exc.strerror or type(exc).__name__})"
        )


class SpilledPoints(MutableSequence[TrackPoint]):
    """A closed track's points in a :class:`PointStore`: its length and first and last ``KEEP`` points
    answer from memory; any other point, a slice across the middle or an iteration reads the file.
    Read-only: a closed track's points never change."""

    __slots__ = ("ends", "n", "offset", "store")

    def __init__(self, store: PointStore, offset: int, n: int, ends: np.ndarray):
        self.store, self.offset, self.n = store, offset, n
        self.ends = ends  # the first KEEP records, then the last KEEP

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> TrackPoint: ...

    @overload
    def __getitem__(self, index: slice) -> list[TrackPoint]: ...

    def __getitem__(self, index: int | slice) -> TrackPoint | list[TrackPoint]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.n)
            if step == 1 and stop <= start:
                return []
            if step == 1:
                return to_points(self._records(start, stop))
            return to_points(self._records(0, self.n))[index]
        i = index + self.n if index < 0 else index
        if not 0 <= i < self.n:
            raise IndexError("track point index out of range")
        return to_points(self._records(i, i + 1))[0]

    def __iter__(self) -> Iterator[TrackPoint]:
        for start in range(0, self.n, READ_CHUNK):
            yield from to_points(self._records(start, min(start + READ_CHUNK, self.n)))

    def _records(self, start: int, stop: int) -> np.ndarray:
        """Records ``start:stop`` (``start < stop``), from memory when they lie in the kept ends."""
        tail_start = self.n - KEEP
        if stop <= KEEP:
            return self.ends[start:stop]
        if start >= tail_start:
            return self.ends[KEEP + start - tail_start : KEEP + stop - tail_start]
        return self.store.read(self.offset, start, stop)

    def __eq__(self, other: object) -> bool:  # as a list of its points (a dataclass compares fields)
        return isinstance(other, Sequence) and len(other) == self.n and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def _read_only(self, *_: Any) -> None:
        raise TypeError("the points of a closed track are read-only (kept on disk)")

    __setitem__ = __delitem__ = insert = _read_only  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SpilledPoints({self.n} points at {self.offset} in {self.store.folder})"


__all__ = ["KEEP", "RECORD", "PointStore", "SpilledPoints"]
