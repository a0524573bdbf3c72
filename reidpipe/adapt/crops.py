"""Which boxes of a track become training crops, and reading them from the run's sources.

A box is a good crop when it shows one whole person: detected (not interpolated), at least
``min_height`` pixels tall (a few dozen pixels hold no texture to learn), not cut by the frame's
edge, and not overlapped by another box of that frame (the crop would show two people, the worst
label noise). Of a track's good boxes, ``per_track`` evenly spaced ones are kept: neighbouring frames
are near copies of each other, spacing gives the poses and places the track went through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from reidpipe.adapt.mine import MinedTrack
from reidpipe.adapt.runs import CameraSource
from reidpipe.errors import InputNotFoundError

EDGE_PX = 2.0  # a box this close to the frame border is cut by it
MAX_OVERLAP = 0.2  # share of a box another box of the frame may cover


@dataclass(frozen=True)
class CropRule:
    per_track: int = 16
    min_height: float = 48.0


@dataclass(frozen=True)
class PlannedCrop:
    """One crop to cut: track ``track`` of camera ``camera`` of run ``run``, frame ``frame``, box
    ``bbox`` (x1, y1, x2, y2)."""

    run: int
    camera: str
    track: int
    frame: int
    bbox: tuple[float, float, float, float]


Boxes = dict[tuple[str, int], list[tuple[float, ...]]]  # (camera, frame) -> every box of the run there


def run_boxes(trajectories: dict[str, Any]) -> Boxes:
    """Every box of a run (interpolated ones too: they still hide whoever is behind them), by camera
    and frame."""
    out: Boxes = defaultdict(list)
    for ident in trajectories["identities"]:
        for t in ident["tracks"]:
            for p in t["points"]:
                out[(str(t["camera"]), int(p["frame"]))].append(tuple(float(v) for v in p["bbox"]))
    return out


def plan_track(track: MinedTrack, source: CameraSource, boxes: Boxes, rule: CropRule) -> list[PlannedCrop]:
    """The crops of one track (module docstring)."""
    good = [p for p in track.points if _whole(p["bbox"], source, rule) and _alone(p, track.camera, boxes)]
    if len(good) > rule.per_track:
        picks = np.linspace(0, len(good) - 1, rule.per_track).round().astype(int)
        good = [good[i] for i in picks]
    return [PlannedCrop(track.run, track.camera, track.track, int(p["frame"]), _box(p["bbox"])) for p in good]


def _box(bbox: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return x1, y1, x2, y2


def _whole(bbox: list[float], source: CameraSource, rule: CropRule) -> bool:
    x1, y1, x2, y2 = bbox
    if y2 - y1 < rule.min_height or x2 <= x1:
        return False
    return x1 > EDGE_PX and y1 > EDGE_PX and x2 < source.width - EDGE_PX and y2 < source.height - EDGE_PX


def _alone(point: dict[str, Any], camera: str, boxes: Boxes) -> bool:
    """No other box of the frame covers more than ``MAX_OVERLAP`` of this one."""
    own = tuple(float(v) for v in point["bbox"])
    area = max((own[2] - own[0]) * (own[3] - own[1]), 1e-9)
    for other in boxes.get((camera, int(point["frame"])), []):
        if other == own:
            continue
        ix = min(own[2], other[2]) - max(own[0], other[0])
        iy = min(own[3], other[3]) - max(own[1], other[1])
        if ix > 0 and iy > 0 and ix * iy / area > MAX_OVERLAP:
            return False
    return True


def read_crops(
    source: CameraSource, crops: Iterable[PlannedCrop], write: Callable[[PlannedCrop, np.ndarray], None]
) -> None:
    """Read the frames of ``crops`` from one camera's source, in one pass, and hand each cut-out
    image to ``write``. A source whose frames are not the run's (another size, fewer frames) is an
    error naming it: the boxes would cut the wrong pixels."""
    from reidpipe.pipeline.io.sources import iter_frames

    wanted: dict[int, list[PlannedCrop]] = defaultdict(list)
    for c in crops:
        wanted[c.frame].append(c)
    if not wanted:
        return
    last = max(wanted)
    for index, image in iter_frames(source.uri, max_frames=last + 1):
        if image.shape[:2] != (source.height, source.width):
            h, w = image.shape[:2]
            raise InputNotFoundError(
                f"source {source.uri} of camera {source.camera} is {w}x{h}, the run read "
                f"{source.width}x{source.height} there: not the run's recording "
                f"(give the right one with --source {source.camera}=PATH)"
            )
        for c in wanted.pop(index, ()):
            write(c, _cut(image, c.bbox))
        if not wanted:
            return
    raise InputNotFoundError(
        f"source {source.uri} of camera {source.camera} ends before frame {min(wanted)} that the run "
        f"tracked: not the run's recording (give the right one with --source {source.camera}=PATH)"
    )


def _cut(image: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1 = max(int(round(bbox[0])), 0), max(int(round(bbox[1])), 0)
    x2, y2 = min(int(round(bbox[2])), w), min(int(round(bbox[3])), h)
    return image[y1:y2, x1:x2]


__all__ = ["CropRule", "PlannedCrop", "plan_track", "read_crops", "run_boxes"]
