"""The `reidpipe run` command lines of the tests: a run over videos with their public detections and
the `hist` descriptor (no model to load), and that run over the two-camera sample scene
(reidpipe.samples.scene.make_scene)."""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike


def hist_run_args(videos: Iterable[str | PathLike], dets: Iterable[str | PathLike], out, *flags: str) -> list[str]:
    """`reidpipe run` on ``videos`` (public detections ``dets``, one per video, the `hist` descriptor,
    no progress bars), outputs in ``out``, then ``flags``."""
    return [
        "run",
        "--no-progress",
        "--sources",
        *map(str, videos),
        "--detections",
        *map(str, dets),
        "--reid",
        "hist",
        "--output",
        str(out),
        *flags,
    ]


def scene_run_args(scene, out, *flags: str) -> list[str]:
    """:func:`hist_run_args` on the scene's cameras, named as in the scene, then ``flags``."""
    cams = scene["cameras"]
    videos = [scene["videos"][c] for c in cams]
    return hist_run_args(videos, [scene["det"][c] for c in cams], out, "--names", *cams, *flags)
