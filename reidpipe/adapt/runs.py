"""A finished run folder as ``reidpipe adapt`` reads it: its ``trajectories.json`` (validated, every
number bounded), where each camera's frames are now, and the embedder the run used.

Runs are untrusted input: a moved or replaced source, a hand-edited file, a run of another version.
Every failure is one line naming the run and what is wrong (exit codes: docs/reliability.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reidpipe.errors import InputNotFoundError, MalformedInputError, UsageError
from reidpipe.limits import MAX_LINK_VALUE, MAX_SOURCE_SIDE

# --source CAM=PATH: the camera's frames are now at PATH (the run's own path moved)
SourceMap = dict[str, str]


@dataclass
class CameraSource:
    """Where one camera's frames are read from, and the size and frame count the run recorded."""

    camera: str
    uri: str
    width: int
    height: int
    frames: int | None


@dataclass
class Run:
    folder: Path
    index: int  # 1-based, in the order given (the ``sS`` of the mined file names)
    trajectories: dict[str, Any]
    sources: dict[str, CameraSource]

    @property
    def embedder(self) -> dict[str, Any] | None:
        """The embedder the run recorded (``trajectories.json`` ``"embedder"``), if any."""
        e = self.trajectories.get("embedder")
        return e if isinstance(e, dict) else None


def open_run(folder: str | Path, index: int, moved: SourceMap) -> Run:
    """Read and check one run folder; ``moved``: camera -> new path of its source."""
    from reidpipe.pipeline.io.export import read_trajectories

    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"run folder not found: {folder}")
    path = folder / "trajectories.json"
    if not path.is_file():
        raise InputNotFoundError(
            f"{folder} has no trajectories.json (not a finished reidpipe run: an interrupted run writes it "
            "when it ends; `reidpipe run` again to finish it)"
        )
    data = read_trajectories(path)
    _check_numbers(path, data)
    sources = {s["camera"]: _camera_source(path, s, moved) for s in data["sources"]}
    return Run(folder, index, data, sources)


def _bad(path: Path, msg: str) -> MalformedInputError:
    return MalformedInputError(f"{path}: {msg}")


def _check_numbers(path: Path, data: dict[str, Any]) -> None:
    """Bounds ``read_trajectories`` leaves to the reader: source sizes, link evidence, boxes."""
    for i, s in enumerate(data["sources"]):
        for key in ("width", "height"):
            v = s.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SOURCE_SIDE:
                raise _bad(path, f"sources[{i}].{key} must be a whole number from 1 to {MAX_SOURCE_SIDE}")
    for i, ident in enumerate(data["identities"]):
        for j, t in enumerate(ident["tracks"]):
            link = t["link"]
            for key in ("score", "margin"):
                v = link.get(key)
                if v is not None and not (_finite(v) and abs(v) <= MAX_LINK_VALUE):
                    raise _bad(path, f"identities[{i}].tracks[{j}].link.{key} must be a number in +-{MAX_LINK_VALUE}")
            for k, p in enumerate(t["points"]):
                if not all(_finite(v) for v in p["bbox"]):
                    raise _bad(path, f"identities[{i}].tracks[{j}].points[{k}].bbox is not finite")
    _check_negative_models(path, data.get("linker"))


def _check_negative_models(path: Path, linker: Any) -> None:
    """The operating point's negative models (``median``, ``scale``) that mining reads."""
    if linker is None:
        return
    if not isinstance(linker, dict):
        raise _bad(path, "linker must be an object")
    for part in ("in_camera", "cross_camera"):
        models = linker.get(part) or {}
        if not isinstance(models, dict):
            raise _bad(path, f"linker.{part} must be an object")
        for name, m in models.items():
            for key in ("median", "scale"):
                v = m.get(key) if isinstance(m, dict) else None
                if v is not None and not (_finite(v) and abs(v) <= MAX_LINK_VALUE):
                    raise _bad(path, f"linker.{part}.{name}.{key} must be a number in +-{MAX_LINK_VALUE}")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _camera_source(path: Path, s: dict[str, Any], moved: SourceMap) -> CameraSource:
    from reidpipe.pipeline.io.sources import source_kind

    camera = str(s["camera"])
    uri = moved.get(camera, str(s["uri"]))
    if source_kind(uri) in ("stream", "webcam"):
        raise UsageError(
            f"{path}: camera {camera} was a live source ({uri}); its frames are gone: "
            f"give a recording of it with --source {camera}=PATH"
        )
    if not Path(uri).exists():
        hint = f"give its new place with --source {camera}=PATH"
        raise InputNotFoundError(f"{path}: the source of camera {camera}, {uri}, is not there any more ({hint})")
    frames = s.get("frames")
    return CameraSource(camera, uri, int(s["width"]), int(s["height"]), frames if isinstance(frames, int) else None)


def parse_source_map(items: list[str]) -> SourceMap:
    """``--source CAM=PATH`` items."""
    out: SourceMap = {}
    for item in items:
        cam, sep, path = item.partition("=")
        if not sep or not cam or not path:
            raise UsageError(f"--source {item!r}: give CAMERA=PATH (a camera name of the run, its new path)")
        out[cam] = path
    return out


def check_moved_cameras(runs: list[Run], moved: SourceMap) -> None:
    """Every ``--source`` camera is a camera of some run (a typo would silently do nothing)."""
    known = {c for r in runs for c in r.sources}
    unknown = sorted(set(moved) - known)
    if unknown:
        raise UsageError(f"--source {unknown[0]}=...: no run has a camera {unknown[0]!r} (cameras: {sorted(known)})")


__all__ = ["CameraSource", "Run", "SourceMap", "check_moved_cameras", "open_run", "parse_source_map"]
