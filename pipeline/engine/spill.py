"""Closed tracks' points, and the tracks themselves, on disk, so that a run's memory stays flat however
long it goes.

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

Online linking goes further once no decision reads a track again (it left the window of recent
tracks, or it can never link): the linker *retires* it to the same file as one JSON record (key,
``split_from``, where its points are, link evidence) and holds no object for it any more; a
:class:`TrackShelf` is the linker's tracks by index, each in memory or read back from its record when
the outputs ask for it. A camera that runs around the clock so plateaus (docs/reliability.md).

The file is an anonymous temporary file in the output folder (unlinked at once: the kernel frees it
when the last reference to the store goes, or when the process ends, also after ``kill -9``); a disk
that fills up is an :class:`~reidpipe.errors.OutputError` naming the folder, like any other output.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from array import array
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from reidpipe.errors import OutputError
from reidpipe.pipeline.link.constraints import PLACE_BOXES
from reidpipe.pipeline.types import LinkEvidence, Tracklet, TrackPoint

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


def _ends(records: np.ndarray) -> np.ndarray:
    """The first ``KEEP`` records, then the last ``KEEP`` (both all of them in a short track)."""
    return np.concatenate([records[:KEEP], records[-KEEP:]])


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

    def spill(self, t: Tracklet, short: bool = False) -> SpilledPoints | None:
        """Move a closed track's points to the file and return them (a short track stays in memory
        unless ``short``: it is as small there; a track already spilled stays as it is)."""
        if isinstance(t.points, SpilledPoints):
            return t.points
        if len(t.points) <= 2 * KEEP and not short:
            return None
        records = to_records(t.points)
        offset = self._append(records.tobytes())
        t.points = SpilledPoints(self, offset, len(records), _ends(records))
        self.tracks += 1
        self.points += len(records)
        return t.points

    def points_at(self, offset: int, n: int) -> SpilledPoints:
        """The ``n`` points of the track spilled at ``offset``, its ends read back from the file."""
        head = self.read(offset, 0, min(n, KEEP))
        tail = self.read(offset, max(n - KEEP, 0), n)
        return SpilledPoints(self, offset, n, np.concatenate([head, tail]))

    def put(self, data: bytes) -> int:
        """Append ``data`` (a retired track's record, :class:`TrackShelf`); returns its offset."""
        return self._append(data)

    def get(self, offset: int, size: int) -> bytes:
        """The ``size`` bytes written at ``offset`` by :meth:`put`."""
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise OutputError(
                f"the closed tracks' records in {self.folder} were cut short ({len(data)} of {size} bytes)"
            )
        return data

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

    def __copy__(self) -> SpilledPoints:  # read-only: a copy of a track (ablation) shares its points
        return self

    def __deepcopy__(self, memo: dict) -> SpilledPoints:
        return self

    def __repr__(self) -> str:
        return f"SpilledPoints({self.n} points at {self.offset} in {self.store.folder})"


class TrackShelf(Sequence[Tracklet]):
    """A run's tracks by the index they were added in: those still in use as objects in memory, each
    *retired* one as one record in a :class:`PointStore` (its key, ``split_from``, where its points
    are and its link evidence) that is read back as a new :class:`Tracklet` when asked.

    The online linker retires a track once no decision reads it again (it left the window of recent
    tracks, or it could never link); only the outputs read it then, at the end of the run. What stays
    in memory per retired track is where its record is and what orders the identities by first
    sighting (start time, camera, track): 30 bytes, so a camera that runs around the clock plateaus.
    A retired track comes back without its embeddings, feature and segments (they were dropped)."""

    def __init__(self, store: PointStore | None = None):
        self.store = store
        self._live: dict[int, Tracklet] = {}
        self._cameras: list[str] = []
        self._camera = array("H")  # per index: its camera, as a position in _cameras
        self._track = array("q")
        self._start = array("d")  # its start time
        self._where = array("q")  # offset of its record once retired, -1 while in memory
        self._size = array("I")  # the record's length in bytes

    def append(self, t: Tracklet) -> int:
        """Keep ``t`` (its points set); returns its index."""
        if t.camera not in self._cameras:
            self._cameras.append(t.camera)
        i = len(self._track)
        self._live[i] = t
        self._camera.append(self._cameras.index(t.camera))
        self._track.append(int(t.track))
        self._start.append(float(t.start_t))
        self._where.append(-1)
        self._size.append(0)
        return i

    def retire(self, i: int, evidence: LinkEvidence) -> None:
        """Move track ``i`` and its ``evidence`` to the store; the object is no longer held here."""
        assert self.store is not None, "a shelf without a store keeps every track in memory"
        t = self._live.pop(i)
        points = self.store.spill(t, short=True)
        assert points is not None
        record = [t.camera, int(t.track), t.split_from, points.offset, points.n, *_evidence_row(evidence)]
        data = json.dumps(record, separators=(",", ":")).encode()
        self._where[i], self._size[i] = self.store.put(data), len(data)

    def retired(self, i: int) -> bool:
        return i not in self._live

    def evidence(self, i: int) -> LinkEvidence:
        """The link evidence track ``i`` was retired with."""
        return LinkEvidence(*self._record(i)[5:])

    def order(self, i: int) -> tuple[float, str, int]:
        """What orders track ``i`` by first sighting: (start time, camera, track)."""
        return (self._start[i], self._cameras[self._camera[i]], self._track[i])

    def find(self, key: tuple[str, int], among: Sequence[int] | None = None) -> int | None:
        """The index of the track ``key`` (of those ``among`` when given), None when there is none."""
        camera, track = key
        if camera not in self._cameras:
            return None
        code = self._cameras.index(camera)
        cameras, tracks = np.frombuffer(self._camera, np.uint16), np.frombuffer(self._track, np.int64)
        if among is not None:
            rows = np.asarray(among, np.int64)
            hit = rows[(cameras[rows] == code) & (tracks[rows] == track)]
        else:
            hit = np.flatnonzero((cameras == code) & (tracks == track))
        return int(hit[0]) if len(hit) else None

    def key(self, i: int) -> tuple[str, int]:
        return (self._cameras[self._camera[i]], self._track[i])

    @property
    def in_memory(self) -> int:
        """How many tracks are held as objects (the others are retired)."""
        return len(self._live)

    def _record(self, i: int) -> list:
        assert self.store is not None
        return json.loads(self.store.get(self._where[i], self._size[i]))

    def _load(self, i: int) -> Tracklet:
        t = self._live.get(i)
        if t is not None:
            return t
        assert self.store is not None
        camera, track, split_from, offset, n = self._record(i)[:5]
        return Tracklet(camera, track, points=self.store.points_at(offset, n), closed=True, split_from=split_from)

    def __len__(self) -> int:
        return len(self._track)

    @overload
    def __getitem__(self, index: int) -> Tracklet: ...

    @overload
    def __getitem__(self, index: slice) -> list[Tracklet]: ...

    def __getitem__(self, index: int | slice) -> Tracklet | list[Tracklet]:
        if isinstance(index, slice):
            return [self._load(i) for i in range(*index.indices(len(self)))]
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError("track index out of range")
        return self._load(i)

    def __iter__(self) -> Iterator[Tracklet]:
        return (self._load(i) for i in range(len(self)))


class ShelfTracks(Sequence[Tracklet]):
    """Some of a :class:`TrackShelf`'s tracks (an identity's), by index, read back when asked."""

    __slots__ = ("indices", "shelf")

    def __init__(self, shelf: TrackShelf, indices: list[int]):
        self.shelf, self.indices = shelf, indices

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, index: int) -> Tracklet: ...

    @overload
    def __getitem__(self, index: slice) -> list[Tracklet]: ...

    def __getitem__(self, index: int | slice) -> Tracklet | list[Tracklet]:
        if isinstance(index, slice):
            return [self.shelf[i] for i in self.indices[index]]
        return self.shelf[self.indices[index]]

    def __iter__(self) -> Iterator[Tracklet]:
        return (self.shelf[i] for i in self.indices)


def _evidence_row(ev: LinkEvidence) -> list:
    """``ev``'s fields as JSON values (a float as float: JSON keeps every bit of it)."""
    return [None if v is None else float(v) if k != "runner_up" else int(v) for k, v in vars(ev).items()]


__all__ = ["KEEP", "RECORD", "PointStore", "ShelfTracks", "SpilledPoints", "TrackShelf"]
