"""Exporters of ``reidpipe run``: ``trajectories.json``, ``events.jsonl``, MOTChallenge txt per camera,
annotated videos.

- :func:`write_trajectories` / :func:`read_trajectories` — schema ``reidpipe.trajectories/1``
  (docs/design.md §5.1). Identities are numbered 1..N in order of first sighting; each track carries its camera,
  track number, link evidence ``{score, margin, gap}`` and its points ``{frame, t, bbox, score}``
  (plus ``"interpolated": true`` on a point that fills a gap of the track).
  Written to a temporary file in the same folder, then ``os.replace``-d: a reader never sees half a file.
- :class:`EventWriter` — ``events.jsonl``, one JSON object per line, appended by a background thread
  that flushes after every burst, so the hot path only puts a dict in a queue.
- :func:`write_mot` — ``<camera>.txt`` in MOTChallenge format (``frame,id,x,y,w,h,conf,-1,-1,-1``,
  frames 1-based) with global ids; an interpolated box ends in ``,1`` instead of ``,-1``. The MOT
  files and the videos read the run's boxes back in frame order from a temporary SQLite database
  (:class:`_Boxes`), so a long run's boxes are never all in memory.
- :func:`write_videos` — ``<camera>.mp4`` with boxes and global-id labels (supervision
  ``BoxAnnotator`` + ``LabelAnnotator``). Global ids are known only after linking, so videos are drawn
  in a second pass at the end from the kept track points: file and folder sources are re-read; live
  sources are recorded raw during the run (by their reader thread) and that recording is re-read.
- :func:`check_output_dir` — creates the folder and proves it writable before any processing
  (``OutputError`` naming it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import InputNotFoundError, MalformedInputError, OutputError
from reidpipe.files import atomic_output, fresh_file
from reidpipe.limits import MAX_FRAME
from reidpipe.pipeline.io.sources import iter_frames, source_kind
from reidpipe.pipeline.types import Identity, LinkEvidence, SourceInfo, Tracklet
from reidpipe.pipeline.validate import camera_names

SCHEMA = "reidpipe.trajectories/1"


# ------------------------------------------------------------------------------------ folders
def check_output_dir(path: str | Path) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=str(p))
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"output folder cannot be written: {p} ({exc.strerror or type(exc).__name__})") from None
    return p


def discard_stale_outputs(folder: str | Path) -> None:
    """Remove an older run's ``trajectories.json`` (and its crop thumbnails) when a new run starts writing its events into
    ``folder``: a reader must never pair an old result with a new run's ``events.jsonl``."""
    thumbs = Path(folder) / "thumbs"
    if thumbs.is_symlink():  # its *.jpg would be removed, and crops written, in another folder
        raise OutputError(
            f"{thumbs} is a symbolic link: refused (its crops would be removed and written in another folder)"
        )
    try:
        (Path(folder) / "trajectories.json").unlink(missing_ok=True)
        for thumb in [*thumbs.glob("*.jpg"), *thumbs.glob("spares/*.jpg")]:  # an older run's crops
            thumb.unlink()
    except OSError as exc:
        raise OutputError(
            f"cannot remove the older {Path(folder) / 'trajectories.json'} ({exc.strerror or type(exc).__name__})"
        ) from None


# ------------------------------------------------------------------------------------ trajectories
def order_identities(identities: Sequence[Identity], renumber: bool = True) -> list[Identity]:
    """Identities sorted by first sighting (earliest point time; ties by camera, track), renumbered
    1..N in place unless ``renumber`` is off (a gallery's global ids); empty identities are dropped."""

    def first(ident: Identity):
        pts = [(t.start_t, t.camera, t.track) for t in ident.tracklets if t.points]
        return min(pts)

    kept = [i for i in identities if any(t.points for t in i.tracklets)]
    kept.sort(key=first)
    for n, ident in enumerate(kept if renumber else [], 1):
        ident.id = n
    return kept


def _track_json(t: Tracklet, ev: LinkEvidence | None) -> dict[str, Any]:
    ev = ev or LinkEvidence(score=1.0)
    d: dict[str, Any] = {"camera": t.camera, "track": int(t.track)}
    if t.split_from is not None:  # cut from that track where its appearance changed (pipeline/link/split.py)
        d["split_from"] = int(t.split_from)
    return {**d, "link": ev.to_json(), "points": [p.to_json() for p in t.points]}


def _identity_json(ident: Identity) -> dict[str, Any]:
    tracks = sorted((t for t in ident.tracklets if t.points), key=lambda t: (t.start_t, t.camera, t.track))
    return {
        "id": ident.id,
        "cameras": ident.cameras,
        "first_seen": round(float(min(t.start_t for t in tracks)), 4),
        "last_seen": round(float(max(t.end_t for t in tracks)), 4),
        "tracks": [_track_json(t, ident.evidence.get(t.key)) for t in tracks],
    }


def trajectories_dict(
    sources: Sequence[SourceInfo],
    identities: Sequence[Identity],
    linker: dict[str, Any] | None = None,
    renumber: bool = True,
    embedder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``reidpipe.trajectories/1`` document; ``linker`` is the linker's operating point (how its
    decisions were calibrated), written under ``"linker"`` when given; ``embedder`` the ReID model
    the run used (kind, SHA-256 of its weights, its path and settings: what ``reidpipe adapt``
    fine-tunes); ids kept as they are without ``renumber`` (a gallery's global ids)."""
    out = [_identity_json(ident) for ident in order_identities(identities, renumber)]
    doc: dict[str, Any] = {"schema": SCHEMA, "sources": [s.to_json() for s in sources], "identities": out}
    if linker is not None:
        doc["linker"] = linker
    if embedder is not None:
        doc["embedder"] = embedder
    return doc


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)  # strict JSON


def write_trajectories(
    path: str | Path,
    sources: Sequence[SourceInfo],
    identities: Sequence[Identity],
    linker: dict[str, Any] | None = None,
    renumber: bool = True,
    embedder: dict[str, Any] | None = None,
) -> Path:
    """Write ``trajectories.json`` (schema ``reidpipe.trajectories/1``, :func:`trajectories_dict`'s
    document) atomically; returns the path. Written one identity at a time, so that only one
    identity's points are ever in memory as JSON (a long run's are read back from disk,
    pipeline/engine/spill.py)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(
                f'{{"schema":{_compact(SCHEMA)},"sources":{_compact([s.to_json() for s in sources])},"identities":['
            )
            for k, ident in enumerate(order_identities(identities, renumber)):
                fh.write(("," if k else "") + _compact(_identity_json(ident)))
            fh.write("]" + (f',"linker":{_compact(linker)}' if linker is not None else ""))
            fh.write((f',"embedder":{_compact(embedder)}' if embedder is not None else "") + "}\n")
    return path


def _bad(path, msg):
    return MalformedInputError(f"{path}: not a valid {SCHEMA} file: {msg}")


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _frame(v: Any, end: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < end


def read_trajectories(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``trajectories.json``; returns the parsed dict."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"trajectories file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(path, f"invalid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _bad(path, f"schema must be {SCHEMA!r}")
    if not isinstance(data.get("sources"), list) or not isinstance(data.get("identities"), list):
        raise _bad(path, "'sources' and 'identities' must be lists")
    cams = _check_sources(path, data["sources"])
    seen_tracks: set[tuple[Any, int]] = set()
    for i, ident in enumerate(data["identities"]):
        _check_identity(path, i, ident)
        for j, tr in enumerate(ident["tracks"]):
            _check_track(path, f"identities[{i}].tracks[{j}]", tr, cams, seen_tracks)
    return data


def _check_sources(path: Path, sources: list[Any]) -> set[Any]:
    """The cameras of a valid ``sources`` list."""
    cams = set()
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or not {"camera", "uri", "fps", "width", "height", "frames"} <= set(s):
            raise _bad(path, f"sources[{i}] lacks camera/uri/fps/width/height/frames")
        if s["frames"] is not None and not _frame(s["frames"], MAX_FRAME + 1):
            raise _bad(path, f"sources[{i}].frames must be null or an integer from 0 to {MAX_FRAME}")
        cams.add(s["camera"])
    unsafe = camera_names([s["camera"] for s in sources])  # the rule of --names: they name files
    if unsafe is not None:
        raise _bad(path, f"sources: {unsafe}")
    return cams


def _check_identity(path: Path, i: int, ident: Any) -> None:
    if (
        not isinstance(ident, dict)
        or not isinstance(ident.get("id"), int)
        or not isinstance(ident.get("tracks"), list)
        or not isinstance(ident.get("cameras"), list)
    ):
        raise _bad(path, f"identities[{i}] needs an integer id, cameras and tracks")
    if not (_num(ident.get("first_seen")) and _num(ident.get("last_seen"))):
        raise _bad(path, f"identities[{i}] needs numeric first_seen/last_seen")


def _check_track(path: Path, where: str, tr: Any, cams: set[Any], seen_tracks: set[tuple[Any, int]]) -> None:
    """One track of an identity: a source's camera, not seen before, a link and valid points."""
    if not isinstance(tr, dict) or tr.get("camera") not in cams or not isinstance(tr.get("track"), int):
        raise _bad(path, f"{where}: camera must be one of the sources and track an integer")
    key = (tr["camera"], tr["track"])
    if key in seen_tracks:
        raise _bad(path, f"{where}: track {key} appears twice")
    seen_tracks.add(key)
    link = tr.get("link")
    if not isinstance(link, dict) or not _num(link.get("score")) or "margin" not in link:
        raise _bad(path, f"{where}: link needs score and margin")
    if not isinstance(tr.get("points"), list):
        raise _bad(path, f"{where}: points must be a list")
    for k, p in enumerate(tr["points"]):
        if not _valid_point(p):
            raise _bad(
                path,
                f"{where}.points[{k}] needs frame (an integer from 0 to {MAX_FRAME - 1}), t, bbox [x1,y1,x2,y2], score",
            )


def _valid_point(p: Any) -> bool:
    return (
        isinstance(p, dict)
        and _frame(p.get("frame"), MAX_FRAME)
        and _num(p.get("t"))
        and isinstance(p.get("bbox"), list)
        and len(p["bbox"]) == 4
        and all(_num(v) for v in p["bbox"])
        and _num(p.get("score"))
    )


# ------------------------------------------------------------------------------------ events
class EventWriter:
    """Appends events to ``events.jsonl`` from a background thread. ``emit`` never blocks: it puts the
    record in an unbounded queue; the thread writes each burst of records as whole lines in one
    ``os.write`` (no user-space buffer).

    A write that fails (a full disk) is cut back to the last complete line, so every line in the file
    is always a whole JSON object; the writer then stops, and the next ``emit`` (or ``close``) raises
    one :class:`OutputError` naming the file, so the run stops instead of going on without its log."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = None
        self.count = 0
        self.error: OutputError | None = None  # set by the writer thread when a write failed
        self._raised = False
        self._size = 0  # bytes of complete lines in the file
        if self.path is not None:
            self._fd = fresh_file(self.path)  # a new run starts a new log (a link there is replaced, not followed)
            self._thread = threading.Thread(target=self._run, name="events-writer", daemon=True)
            self._thread.start()

    def emit(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        self._raise_once()
        if self.error is not None:
            return
        self.count += 1
        self._q.put({"event": event, "time": round(time.time(), 3), **fields})

    def _raise_once(self) -> None:
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # no half line stays in the file
            self.error = OutputError(
                f"cannot write {self.path} ({exc.strerror or type(exc).__name__}); "
                f"it holds the first {self._size} bytes of events, each line complete"
            )
            return False
        self._size += len(data)
        return True

    def _run(self) -> None:
        while True:
            batch = [self._q.get()]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            lines = [_json_line(rec) for rec in batch if rec is not None]
            if (lines and not self._write("".join(lines).encode())) or stop:
                return

    def close(self) -> None:
        """Write what is queued and close the file; raises the writer's ``OutputError`` if not raised yet."""
        if self._thread is None:
            return
        self._q.put(None)
        self._thread.join()
        self._thread = None
        os.close(self._fd)
        self._raise_once()


def _json_line(rec: dict[str, Any]) -> str:
    """One strict-JSON line (a NaN or infinity, which strict parsers reject, is written as null)."""
    try:
        return json.dumps(rec, separators=(",", ":"), default=_json_default, allow_nan=False) + "\n"
    except ValueError:
        return (
            json.dumps(
                _finite_or_none(json.loads(json.dumps(rec, default=_json_default))),
                separators=(",", ":"),
                allow_nan=False,
            )
            + "\n"
        )


def _finite_or_none(o):
    if isinstance(o, float):
        return o if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite_or_none(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite_or_none(v) for v in o]
    return o


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o).__name__)


# ------------------------------------------------------------------------------------ MOT txt
class _Boxes:
    """The run's boxes with their global ids, in SQLite's private temporary database (on disk, deleted
    when closed, also after ``kill -9``: SQLite unlinks it as it opens it), read back per camera in
    frame order: writing the MOT files and the videos of a long run never holds its boxes in memory.
    Boxes of one frame come by id, then in identity and track order (as they were put in)."""

    COLUMNS = "frame, gid, x1, y1, x2, y2, score, interp"

    def __init__(self, identities: Iterable[Identity]):
        try:
            self.db = sqlite3.connect("")
            self.db.execute(f"CREATE TABLE box (camera TEXT, {self.COLUMNS})")
            for ident in identities:
                for t in ident.tracklets:
                    self.db.executemany(
                        "INSERT INTO box VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            (t.camera, int(p.frame), int(ident.id), *map(float, p.bbox), float(p.score), p.interpolated)
                            for p in t.points
                        ),
                    )
            self.db.execute("CREATE INDEX box_order ON box (camera, frame, gid)")  # rowid: the order put in
        except sqlite3.Error as exc:
            raise _boxes_error(exc) from None

    def rows(self, camera: str) -> Iterator[tuple]:
        """``(frame, gid, x1, y1, x2, y2, score, interpolated)`` of ``camera``'s boxes, by frame, then id."""
        try:
            yield from self.db.execute(
                f"SELECT {self.COLUMNS} FROM box WHERE camera = ? ORDER BY frame, gid, rowid", (camera,)
            )
        except sqlite3.Error as exc:
            raise _boxes_error(exc) from None

    def by_frame(self, camera: str) -> Iterator[tuple[int, list[tuple]]]:
        """``camera``'s boxes grouped by frame, frames in order."""
        for frame, rows in itertools.groupby(self.rows(camera), key=lambda r: r[0]):
            yield frame, list(rows)

    def close(self) -> None:
        self.db.close()


def _boxes_error(exc: sqlite3.Error) -> OutputError:
    return OutputError(f"cannot keep the run's boxes in a temporary database in {tempfile.gettempdir()} ({exc})")


@contextlib.contextmanager
def _boxes(identities: Iterable[Identity]) -> Iterator[_Boxes]:
    boxes = _Boxes(identities)
    try:
        yield boxes
    finally:
        boxes.close()


def write_mot(
    folder: str | Path, sources: Sequence[SourceInfo], identities: Sequence[Identity], renumber: bool = True
) -> list[Path]:
    """One ``<camera>.txt`` per source in MOTChallenge format with global ids; returns the paths.
    Boxes in frame order, then by id; written as they are read back (:class:`_Boxes`)."""
    folder = Path(folder)
    paths = []
    with _boxes(order_identities(identities, renumber)) as boxes:
        for s in sources:
            p = folder / f"{s.camera}.txt"
            with atomic_output(p) as tmp, open(tmp, "w") as fh:
                fh.writelines(_mot_line(*row) for row in boxes.rows(s.camera))
            paths.append(p)
    return paths


def _mot_line(frame: int, gid: int, x1: float, y1: float, x2: float, y2: float, score: float, interp: int) -> str:
    mark = 1 if interp else -1  # last column: 1 = interpolated box (MOTChallenge leaves it -1 in 2D)
    return f"{frame + 1},{gid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,{mark}\n"


# ------------------------------------------------------------------------------------ videos
def _id_palette():
    """The palette of global ids: supervision's default, indexed by id (modulo its length)."""
    import supervision as sv

    return sv.ColorPalette.DEFAULT


def identity_color(gid: int):
    """The colour of global identity ``gid`` (a ``supervision.Color``), as the annotated videos draw
    it and as ``reidpipe report`` shows it."""
    return _id_palette().by_idx(int(gid))


def _id_annotators():
    """Box and label annotators that colour each box by its global id (``tracker_id``: :func:`identity_color`)."""
    import supervision as sv

    by_id = {"color": _id_palette(), "color_lookup": sv.ColorLookup.TRACK}
    return sv.BoxAnnotator(thickness=2, **by_id), sv.LabelAnnotator(text_scale=0.5, text_padding=3, **by_id)


def write_videos(
    folder: str | Path,
    sources: Sequence[SourceInfo],
    identities: Sequence[Identity],
    *,
    stride: int = 1,
    max_frames: int | None = None,
    recordings: dict[str, str] | None = None,
    renumber: bool = True,
) -> list[Path]:
    """Draw every camera's boxes with global-id labels into ``<camera>.mp4`` (second pass over the
    sources, or over the raw recordings of live sources). Returns the written paths. The boxes are
    read back in frame order as the frames are drawn (:class:`_Boxes`)."""
    folder = Path(folder)
    box_ann, label_ann = _id_annotators()
    written = []
    with _boxes(order_identities(identities, renumber)) as boxes:
        for s in sources:
            video = _write_video(folder, s, boxes, stride, max_frames, recordings, (box_ann, label_ann))
            if video is not None:
                written.append(video)
    return written


def _write_video(
    folder: Path,
    s: SourceInfo,
    boxes: _Boxes,
    stride: int,
    max_frames: int | None,
    recordings: dict[str, str] | None,
    annotators: tuple,
) -> Path | None:
    """``<camera>.mp4`` of source ``s`` with its boxes drawn (None: a live source with no recording)."""
    import cv2
    import supervision as sv

    uri, stride_used, limit = s.uri, stride, max_frames
    if source_kind(uri) in ("stream", "webcam"):
        recorded = (recordings or {}).get(s.camera)
        stride_used, limit = 1, None  # the recording holds every frame read
        if not recorded or not Path(recorded).exists():
            return None
        uri = recorded
    box_ann, label_ann = annotators
    pending = boxes.by_frame(s.camera)  # read along with the frames, both in frame order
    nxt = next(pending, None)
    out = folder / f"{s.camera}.mp4"
    tmp = folder / f".{s.camera}.partial.mp4"
    writer, frames = None, 0
    try:
        for index, img in iter_frames(uri, stride=stride_used, max_frames=limit):
            if writer is None:
                fps = max(1.0, s.fps / stride_used)
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, (img.shape[1], img.shape[0]))
                if not writer.isOpened():
                    raise OutputError(f"cannot write video {out}")
            while nxt is not None and nxt[0] < index:
                nxt = next(pending, None)
            if nxt is not None and nxt[0] == index:
                dets = nxt[1]
                arr = np.asarray([d[2:6] for d in dets], np.float32)
                ids = np.asarray([d[1] for d in dets], int)
                d = sv.Detections(
                    xyxy=arr, class_id=ids, tracker_id=ids, confidence=np.asarray([d[6] for d in dets], np.float32)
                )
                img = box_ann.annotate(img.copy(), d)
                img = label_ann.annotate(img, d, labels=[f"#{i}" for i in ids.tolist()])
            writer.write(img)
            frames += 1
        if writer is None:
            return None
        writer.release()
        _publish_video(tmp, out, frames)
        return out
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)  # a partial video never stays


def _publish_video(tmp: Path, out: Path, frames: int) -> None:
    """Rename the finished ``tmp`` to ``out`` once it plays back with all its ``frames``: OpenCV's
    writer reports no failed write (a full disk leaves a file without its index, "moov atom not
    found"), so the file is opened and its frame count read back; a failure is an
    :class:`OutputError` naming ``out``."""
    import cv2

    cap = cv2.VideoCapture(str(tmp))
    try:
        playable = cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    finally:
        cap.release()
    if not playable:
        full = shutil.disk_usage(tmp.parent).free < 1 << 20
        why = "no space left on the device" if full else f"the written file does not play back its {frames} frames"
        raise OutputError(f"cannot write video {out} ({why})")
    try:
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write video {out} ({exc.strerror or type(exc).__name__})") from None
